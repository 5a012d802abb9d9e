"""CUDA templates for the operators a graph compiles besides matmul: conv2d, row reductions, softmax, fused
elementwise groups. Each tunes the default CUDA schedule of ``tcomp.ops.cuda`` and falls back to the knobs the graph
compiler uses today (``tcomp.ops.cuda.dispatch``), so tuning starts from the untuned kernel.

- ``conv2d_nchw_cuda(N, CI, H, W, CO, KH, KW, stride, padding)``: ``schedule_conv2d_nchw``. ``tile_f`` splits the
  output channels ``[blocks, threads along z, channels per thread]`` (tiles that divide ``CO``); ``tile_y`` /
  ``tile_x`` are the output rows / columns of a block (one per thread), ``tile_rc`` the input channels per
  shared-memory chunk, each ``[blocks, tile]`` with the tile a divisor of the extent or a power of two below it
  (a partial last tile is guarded). At most 8 x 8 x 16 threads; the build rejects a config whose shared tiles
  exceed the GPU's limit (big kernels with big tiles).
- ``reduce_cuda(M, N)``: ``sum(x, axis=1)`` with a cross-thread reduction (``schedule_reduce_stage_cross_thread``):
  ``threads`` per row, ``rows_per_block`` rows per block (along ``threadIdx.y``).
- ``softmax_cuda(M, N)``: ``softmax(x, axis=-1)`` with ``schedule_softmax``: ``threads`` per row.
- ``elemwise_cuda(M, N)``: ``relu(a * b + c)`` (``c`` a row broadcast along ``M``) fused in one kernel by
  ``schedule_injective``: ``threads`` per block, and per thread ``unroll`` groups of ``vector`` consecutive elements.

Every template refuses a target other than cuda (``ValueError``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tcomp import ops, te
from tcomp.autotune.space import Config, SplitEntity, SplitPolicy
from tcomp.autotune.template import template
from tcomp.ir.expr import const_int_value
from tcomp.ops.conv import conv2d_nchw
from tcomp.ops.cuda.conv2d import Conv2dKnobs, schedule_conv2d_nchw
from tcomp.ops.cuda.dispatch import ELEMWISE_THREADS, REDUCE_THREADS, conv_knobs
from tcomp.ops.cuda.elemwise import schedule_injective
from tcomp.ops.cuda.reduce import schedule_reduce_stage_cross_thread
from tcomp.ops.cuda.softmax import schedule_softmax
from tcomp.schedule import Schedule, create_schedule
from tcomp.te.tensor import Tensor

MAX_THREADS_PER_BLOCK = 1024


def _require_cuda(cfg: Config, name: str) -> None:
    if cfg.target is not None and cfg.target.kind != "cuda":
        raise ValueError(f"{name} is a CUDA template; target {cfg.target} is not cuda")


def _powers_of_two(low: int, high: int) -> list[int]:
    return [1 << p for p in range(high.bit_length()) if low <= (1 << p) <= high]


def _ceil_power_of_two(value: int) -> int:
    return 1 << max(0, (max(1, value) - 1).bit_length())


def _tile_sizes(extent: int, limit: int, default: int) -> list[int]:
    """Tiles up to ``limit``: the divisors of ``extent``, the powers of two below it (the last tile partial, its
    threads guarded) and ``default``."""
    divisors = [d for d in range(1, min(limit, extent) + 1) if extent % d == 0]
    powers = [p for p in _powers_of_two(1, limit) if p < extent]
    return sorted(set(divisors) | set(powers) | {default})


def _thread_counts(extent: int, low: int, high: int, default: int) -> list[int]:
    """Powers of two from ``low`` to ``high`` threads, no more than ``extent`` rounded up needs, and ``default``."""
    top = max(low, min(high, _ceil_power_of_two(extent)))
    return sorted(set(_powers_of_two(low, top)) | {default})


def _static(tensor: Tensor) -> tuple[int, ...]:
    return tuple(int(const_int_value(d) or 0) for d in tensor.shape)


# ---------------------------------------------------------------------------------------------------------------------
def _channel_splits(channels: int, default: Conv2dKnobs, max_threads: int = 8,
                    max_per_thread: int = 8) -> list[list[int]]:
    """``[-1, threads, per_thread]`` with ``threads * per_thread`` dividing ``channels``, and the default's."""
    splits = {(default.threads[0], default.thread_f)}
    for per_thread in range(1, min(max_per_thread, channels) + 1):
        if channels % per_thread:
            continue
        for threads in range(1, min(max_threads, channels // per_thread) + 1):
            if (channels // per_thread) % threads == 0:
                splits.add((threads, per_thread))
    return [[-1, threads, per_thread] for threads, per_thread in sorted(splits)]


def _tile_split(cfg: Config, name: str, extent: int, limit: int, default: int) -> None:
    """A ``[blocks, tile]`` split knob over ``_tile_sizes``."""
    candidates = [[-1, tile] for tile in _tile_sizes(extent, limit, default)]
    cfg.define_split(name, extent, 2, SplitPolicy.CANDIDATES, candidates=candidates, fallback=[-1, default])


def _split_sizes(cfg: Config, name: str) -> tuple[int, ...]:
    entity = cfg[name]
    assert isinstance(entity, SplitEntity), f"knob {name} is not a split"
    return entity.size


def conv2d_knobs_of(cfg: Config) -> Conv2dKnobs:
    """The ``Conv2dKnobs`` that a config of ``conv2d_nchw_cuda`` chooses (a space: its fallback)."""
    _, threads_f, thread_f = _split_sizes(cfg, "tile_f")
    return Conv2dKnobs(tile_f=threads_f * thread_f, thread_f=thread_f, tile_y=_split_sizes(cfg, "tile_y")[1],
                       tile_x=_split_sizes(cfg, "tile_x")[1], tile_rc=_split_sizes(cfg, "tile_rc")[1])


def conv2d_nchw_reference(inputs: Sequence[np.ndarray], N: int, CI: int, H: int, W: int, CO: int, KH: int, KW: int,
                          stride: int = 1, padding: int = 0, dtype: str = "float32") -> list[np.ndarray]:
    data, kernel = (a.astype(np.float64) for a in inputs)
    padded = np.pad(data, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out_h = (H + 2 * padding - KH) // stride + 1
    out_w = (W + 2 * padding - KW) // stride + 1
    out = np.zeros((N, CO, out_h, out_w))
    for ry in range(KH):
        for rx in range(KW):
            window = padded[:, :, ry: ry + stride * out_h: stride, rx: rx + stride * out_w: stride]
            out += np.einsum("nchw,oc->nohw", window, kernel[:, :, ry, rx])
    return [out.astype(inputs[0].dtype)]


@template("conv2d_nchw_cuda", reference=conv2d_nchw_reference)
def conv2d_nchw_cuda(cfg: Config, N: int, CI: int, H: int, W: int, CO: int, KH: int, KW: int, stride: int = 1,
                     padding: int = 0, dtype: str = "float32") -> tuple[Schedule, list[Tensor]]:
    """``conv2d_nchw`` (``groups=1``) with the shared-memory CUDA schedule (see the module docstring)."""
    _require_cuda(cfg, "conv2d_nchw_cuda")
    data = te.placeholder((N, CI, H, W), name="data", dtype=dtype)
    kernel = te.placeholder((CO, CI, KH, KW), name="kernel", dtype=dtype)
    out = conv2d_nchw(data, kernel, stride, padding)
    _, _, out_h, out_w = _static(out)
    base = conv_knobs(out, CI, max(KH, KW))
    cfg.define_split("tile_f", CO, 3, SplitPolicy.CANDIDATES, candidates=_channel_splits(CO, base),
                     fallback=[-1, base.threads[0], base.thread_f])
    _tile_split(cfg, "tile_y", out_h, 8, base.tile_y)
    _tile_split(cfg, "tile_x", out_w, 16, base.tile_x)
    _tile_split(cfg, "tile_rc", CI, 16, base.tile_rc)
    cfg.add_flop(2.0 * N * CO * out_h * out_w * CI * KH * KW)
    s = create_schedule(out)
    schedule_conv2d_nchw(s, out, conv2d_knobs_of(cfg))
    return s, [data, kernel, out]


# ---------------------------------------------------------------------------------------------------------------------
def reduce_reference(inputs: Sequence[np.ndarray], *args: object) -> list[np.ndarray]:
    (x,) = inputs
    return [x.astype(np.float64).sum(axis=1).astype(x.dtype)]


@template("reduce_cuda", reference=reduce_reference)
def reduce_cuda(cfg: Config, M: int, N: int, dtype: str = "float32") -> tuple[Schedule, list[Tensor]]:
    """``sum(x, axis=1)`` of an ``M x N`` tensor, reduced across the threads of a block (module docstring)."""
    _require_cuda(cfg, "reduce_cuda")
    thread_choices = _thread_counts(N, 32, 512, REDUCE_THREADS)
    threads = cfg.define_knob("threads", thread_choices, fallback=REDUCE_THREADS)
    row_limit = min(8, _ceil_power_of_two(M), MAX_THREADS_PER_BLOCK // max(thread_choices))
    rows = cfg.define_knob("rows_per_block", _powers_of_two(1, max(1, row_limit)), fallback=1)
    x = te.placeholder((M, N), name="x", dtype=dtype)
    out = ops.sum(x, axis=1)
    s = create_schedule(out)
    schedule_reduce_stage_cross_thread(s[out], threads.val, rows.val)
    return s, [x, out]


def softmax_reference(inputs: Sequence[np.ndarray], *args: object) -> list[np.ndarray]:
    (x,) = inputs
    wide = x.astype(np.float64)
    e = np.exp(wide - wide.max(axis=-1, keepdims=True))
    return [(e / e.sum(axis=-1, keepdims=True)).astype(x.dtype)]


@template("softmax_cuda", reference=softmax_reference)
def softmax_cuda(cfg: Config, M: int, N: int, dtype: str = "float32") -> tuple[Schedule, list[Tensor]]:
    """``softmax(x, axis=-1)`` of an ``M x N`` tensor, one block of ``threads`` per row (module docstring)."""
    _require_cuda(cfg, "softmax_cuda")
    threads = cfg.define_knob("threads", _thread_counts(N, 32, 1024, REDUCE_THREADS), fallback=REDUCE_THREADS)
    x = te.placeholder((M, N), name="x", dtype=dtype)
    out = ops.softmax(x)
    return schedule_softmax(out, threads.val), [x, out]


def elemwise_reference(inputs: Sequence[np.ndarray], *args: object) -> list[np.ndarray]:
    a, b, c = inputs
    return [np.maximum(a * b + c, 0).astype(a.dtype)]


@template("elemwise_cuda", reference=elemwise_reference)
def elemwise_cuda(cfg: Config, M: int, N: int, dtype: str = "float32") -> tuple[Schedule, list[Tensor]]:
    """``relu(a * b + c)`` for ``M x N`` tensors ``a``, ``b`` and a row ``c`` of ``N``, fused in one kernel."""
    _require_cuda(cfg, "elemwise_cuda")
    threads = cfg.define_knob("threads", _thread_counts(M * N, 32, 1024, ELEMWISE_THREADS),
                              fallback=ELEMWISE_THREADS)
    vector = cfg.define_knob("vector", [1, 2, 4], fallback=1)
    unroll = cfg.define_knob("unroll", [1, 2, 4], fallback=1)
    a = te.placeholder((M, N), name="a", dtype=dtype)
    b = te.placeholder((M, N), name="b", dtype=dtype)
    c = te.placeholder((N,), name="c", dtype=dtype)
    out = ops.relu(ops.add(ops.multiply(a, b), c))
    s = schedule_injective(out, threads.val, vector=vector.val, unroll=unroll.val)
    return s, [a, b, c, out]
