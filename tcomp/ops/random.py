"""Random numbers from a counter-based generator: each element is a hash of its position, so any kernel, schedule or
fusion computes the same values, in any order, in parallel, on any target.

``random(state, shape, dtype, distribution, a, b, stream, seed)`` draws a tensor of ``shape``:

- ``uniform``: ``a + (b - a) * u`` with ``u`` uniform in [0, 1) (24 random bits for float32 and float16, 53 for
  float64);
- ``normal``: ``a + b * z`` with ``z`` standard normal, by the Box-Muller transform of two uniforms.

The bits of element ``i`` (its row-major position) are SplitMix64's output for a starting point that mixes the key,
the stream and the run: ``mix(run + (i + 1) * GAMMA)`` with ``run = mix(key + mix(stream) + counter * GAMMA)``
(SplitMix64, Steele, Lea and Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014). Two mixes deep
at most: a mix reads its argument eight times, and the expression printed for a target (CUDA C) repeats it.
``state`` is a uint64 tensor of two elements: a key, then a run counter that the graph executor advances before
every run. A node given a ``seed`` uses the seed's bits as its key instead of ``state[0]``, so its draws repeat from
one executor to the next; ``stream`` tells the random nodes of one graph apart. A float64 normal draw hashes
positions ``2i`` and ``2i + 1``; the other draws hash ``i`` once.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tcomp import te
from tcomp.ir import dtype as dt
from tcomp.ir.expr import Expr
from tcomp.ops.utils import OpError, Tag, as_int, check_tensor, shape_str
from tcomp.te.tensor import Tensor

GAMMA = 0x9E3779B97F4A7C15  # SplitMix64's increment: 2^64 / the golden ratio, odd
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_MASK = (1 << 64) - 1
DISTRIBUTIONS = ("uniform", "normal")


def mix64(z: int) -> int:
    """SplitMix64's finalizer on a Python int (the same function ``_mix`` builds in the IR)."""
    z = ((z ^ (z >> 30)) * _MIX1) & _MASK
    z = ((z ^ (z >> 27)) * _MIX2) & _MASK
    return z ^ (z >> 31)


def seed_key(seed: float) -> int:
    """The 64-bit key of a float seed (ONNX's ``seed`` attribute): its float64 bits."""
    return int(np.array(seed, np.float64).view(np.uint64))


def _u64(value: int) -> Expr:
    return te.const(value & _MASK, "uint64")


def _mix(z: Expr) -> Expr:
    z = te.bitwise_xor(z, te.shift_right(z, _u64(30))) * _u64(_MIX1)
    z = te.bitwise_xor(z, te.shift_right(z, _u64(27))) * _u64(_MIX2)
    return te.bitwise_xor(z, te.shift_right(z, _u64(31)))


def _unit(bits: Expr, precision: int, shift: int, dtype: str) -> Expr:
    """``precision`` bits of ``bits`` from bit ``shift`` up, as a float of ``dtype`` in [0, 1)."""
    mantissa = te.shift_right(bits, _u64(shift))
    if precision + shift < 64:
        mantissa = te.bitwise_and(mantissa, _u64((1 << precision) - 1))
    return te.cast(te.cast(mantissa, "int64"), dtype) * te.const(2.0 ** -precision, dtype)


def random(state: Tensor, shape: tuple[int, ...], dtype: str, distribution: str, a: float, b: float, stream: int,
           seed: float | None = None, name: str = "random") -> Tensor:
    op = "random"
    check_tensor(op, "state", state, ndim=1)
    if state.dtype != "uint64" or as_int(state.shape[0]) != 2:
        raise OpError(f"{op}: state must be a uint64 tensor of two elements, got {state.dtype}{shape_str(state.shape)}")
    if not dt.is_float(dtype):
        raise OpError(f"{op}: draws float tensors, not {dtype}")
    if distribution not in DISTRIBUTIONS:
        raise OpError(f"{op}: distribution must be one of {DISTRIBUTIONS}, got {distribution!r}")
    compute = "float64" if dtype == "float64" else "float32"
    key = _u64(seed_key(seed)) if seed is not None else state[0]
    run = _mix(key + _u64(mix64(stream)) + state[1] * _u64(GAMMA))
    strides = [math.prod(shape[k + 1:]) for k in range(len(shape))]

    def bits(position: Expr) -> Expr:
        return _mix(run + (position + _u64(1)) * _u64(GAMMA))

    def body(*index: Any) -> Expr:
        flat = _u64(0)
        for axis, stride in zip(index, strides):
            flat = flat + te.cast(axis, "uint64") * _u64(stride)
        if distribution == "uniform":
            draw = bits(flat)
            u = _unit(draw, 53, 11, compute) if compute == "float64" else _unit(draw, 24, 40, compute)
            value = te.const(a, compute) + te.const(b - a, compute) * u
        else:
            if compute == "float64":
                first, second = bits(flat * _u64(2)), bits(flat * _u64(2) + _u64(1))
                u1, u2 = _unit(first, 53, 11, compute), _unit(second, 53, 11, compute)
            else:
                draw = bits(flat)
                u1, u2 = _unit(draw, 24, 40, compute), _unit(draw, 24, 8, compute)
            one = te.const(1.0, compute)
            radius = te.sqrt(te.const(-2.0, compute) * te.log(one - u1))  # 1 - u1 in (0, 1]: the log is finite
            z = radius * te.cos(te.const(2.0 * math.pi, compute) * u2)
            value = te.const(a, compute) + te.const(b, compute) * z
        return value if compute == dtype else te.cast(value, dtype)

    return te.compute(shape, body, name=name, tag=Tag.INJECTIVE)


__all__ = ["DISTRIBUTIONS", "GAMMA", "mix64", "random", "seed_key"]
