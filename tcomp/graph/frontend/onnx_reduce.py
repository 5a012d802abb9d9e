"""ONNX converters for reductions and the normalizations built from them: every ``Reduce*`` operator,
``GroupNormalization``, ``MeanVarianceNormalization``, ``LpNormalization`` and ``RMSNormalization``.

The graph has the reductions ``sum``, ``mean``, ``max``, ``min`` and ``prod``; the others are composed from them and
elementwise operators, which fusion puts back together:

- ``ReduceL1 = sum(|x|)``, ``ReduceL2 = sqrt(sum(x * x))``, ``ReduceSumSquare = sum(x * x)``,
  ``ReduceLogSum = log(sum(x))``, ``ReduceLogSumExp = log(sum(exp(x - m))) + m`` with ``m`` the maximum (no
  overflow for large inputs). Integer inputs of the logarithmic and root forms are computed in float64 and cast
  back, as onnx's reference does.
- ``GroupNormalization``: a ``layer_norm`` over each group (the input reshaped to ``[N, groups, -1]``), then the
  per-channel scale and bias (opset 18's per-group ones repeated over each group's channels).
- ``MeanVarianceNormalization``: ``(x - mean) / (sqrt(mean((x - mean)^2)) + 1e-9)`` over ``axes``.
- ``LpNormalization``: ``x / ||x||_p`` along ``axis`` (``p`` 1 or 2), 0 where the norm is 0.
- ``RMSNormalization``: ``x / sqrt(mean(x * x) + epsilon) * scale`` over the axes from ``axis`` to the last, in
  float32 for a float16 input (``stash_type`` 1), the scale broadcast against the input.

``axes`` is an attribute before the definition that made it an input (13 for ``ReduceSum``, 18 for the others);
given as an input it must be known at compile time. Empty axes reduce every axis, or with
``noop_with_empty_axes`` none (leaving the elementwise part: ``ReduceL2`` gives ``|x|``, as onnx's reference and
onnxruntime do).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx

from tcomp.graph.frontend.onnx_builder import Builder
from tcomp.graph.frontend.onnx_common import Attrs, axes_operand, converts, register, reshape, scalar_param
from tcomp.ir import dtype as dt

Compose = Callable[[Builder, str, tuple[int, ...], bool, str], str]


def _reduce(compose: Compose, axes_input_since: int) -> object:
    def convert(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
        ndim = b.type(ins[0]).ndim
        axes = axes_operand(b, ins, a, v, axes_input_since)
        if not axes:  # every axis, or none (the elementwise part alone: ReduceL2 gives |x|, as onnx's reference)
            axes = [] if a.int("noop_with_empty_axes", 0) == 1 else list(range(ndim))
        normalized = []
        for axis in axes:
            if not -ndim <= axis < max(ndim, 1):
                raise b.error(f"axis {axis} is out of range for {ndim} dimensions")
            normalized.append(axis + ndim if axis < 0 else axis)
        return [compose(b, ins[0], tuple(normalized), bool(a.int("keepdims", 1)), node.output[0])]

    return convert


def _plain(op: str) -> Compose:
    def compose(b: Builder, x: str, axes: tuple[int, ...], keepdims: bool, output: str) -> str:
        return b.add1(op, [x], output=output, axes=axes, keepdims=keepdims)

    return compose


def _in_float(inner: Compose) -> Compose:
    """``inner`` computed in float64 for integer inputs, its result cast back to the input's dtype."""

    def compose(b: Builder, x: str, axes: tuple[int, ...], keepdims: bool, output: str) -> str:
        dtype = b.type(x).dtype
        if dt.is_float(dtype):
            return inner(b, x, axes, keepdims, output)
        wide = b.add1("cast", [x], dtype="float64")
        result = inner(b, wide, axes, keepdims, b.fresh(f"{b.node_name}/float"))
        return b.add1("cast", [result], output=output, dtype=dtype)

    return compose


def _l1(b: Builder, x: str, axes: tuple[int, ...], keepdims: bool, output: str) -> str:
    return b.add1("sum", [b.add1("abs", [x])], output=output, axes=axes, keepdims=keepdims)


def _sum_square(b: Builder, x: str, axes: tuple[int, ...], keepdims: bool, output: str) -> str:
    return b.add1("sum", [b.add1("multiply", [x, x])], output=output, axes=axes, keepdims=keepdims)


def _l2(b: Builder, x: str, axes: tuple[int, ...], keepdims: bool, output: str) -> str:
    return b.add1("sqrt", [_sum_square(b, x, axes, keepdims, b.fresh(f"{b.node_name}/sumsq"))], output=output)


def _log_sum(b: Builder, x: str, axes: tuple[int, ...], keepdims: bool, output: str) -> str:
    return b.add1("log", [b.add1("sum", [x], axes=axes, keepdims=keepdims)], output=output)


def _log_sum_exp(b: Builder, x: str, axes: tuple[int, ...], keepdims: bool, output: str) -> str:
    peak = b.add1("max", [x], axes=axes, keepdims=True)
    # an infinite maximum would make x - peak NaN: shift by 0 there instead
    finite = b.add1("where", [b.add1("isinf", [peak]), scalar_param(b, 0.0, b.type(x).dtype, "zero"), peak])
    exponentials = b.add1("exp", [b.add1("subtract", [x, finite])])
    total = b.add1("log", [b.add1("sum", [exponentials], axes=axes, keepdims=keepdims)])
    shift = finite if keepdims else reshape(b, finite, b.type(total).shape)
    return b.add1("add", [total, shift], output=output)


register("ReduceSum", (1, 11, 13), _reduce(_plain("sum"), 13))  # type: ignore[arg-type]
register("ReduceMean", (1, 11, 13, 18), _reduce(_plain("mean"), 18))  # type: ignore[arg-type]
register("ReduceMax", (1, 11, 12, 13, 18, 20), _reduce(_plain("max"), 18))  # type: ignore[arg-type]
register("ReduceMin", (1, 11, 12, 13, 18, 20), _reduce(_plain("min"), 18))  # type: ignore[arg-type]
register("ReduceProd", (1, 11, 13, 18), _reduce(_plain("prod"), 18))  # type: ignore[arg-type]
register("ReduceL1", (1, 11, 13, 18), _reduce(_l1, 18))  # type: ignore[arg-type]
register("ReduceL2", (1, 11, 13, 18), _reduce(_in_float(_l2), 18))  # type: ignore[arg-type]
register("ReduceSumSquare", (1, 11, 13, 18), _reduce(_sum_square, 18))  # type: ignore[arg-type]
register("ReduceLogSum", (1, 11, 13, 18, 28), _reduce(_in_float(_log_sum), 18))  # type: ignore[arg-type]
register("ReduceLogSumExp", (1, 11, 13, 18, 28), _reduce(_in_float(_log_sum_exp), 18))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------------------
def _channel_param(b: Builder, name: str, channels: int, groups: int, per_group: bool, rank: int) -> str:
    """A scale or bias as ``[1, C, 1, ...]``; per-group values (opset 18) repeated over each group's channels."""
    if per_group:
        value = b.const(name)
        if value is not None and name in b.params:
            name = b.param(np.repeat(value.reshape(groups), channels // groups), f"{name}/channels")
        else:
            column = reshape(b, name, (groups, 1))
            name = b.add1("reshape", [b.add1("broadcast_to", [column], shape=(groups, channels // groups))],
                          shape=(channels,))
    return reshape(b, name, (1, channels) + (1,) * (rank - 2))


@converts("GroupNormalization", (18, 21))
def _group_norm(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    x, scale, bias = ins[0], ins[1], ins[2]
    t = b.type(x)
    if t.ndim < 3:
        raise b.error(f"expects at least 3 dimensions (N, C, ...), got {t}")
    groups = a.int("num_groups")
    channels = t.shape[1]
    if groups <= 0 or channels % groups:
        raise b.error(f"num_groups={groups} must be positive and divide the {channels} channels")
    per_group = v < 21
    expected = (groups,) if per_group else (channels,)
    for name in (scale, bias):
        if b.type(name).shape != expected:
            raise b.error(f"scale and bias must have shape {expected}, got {b.type(name).shape}")
    stash = v >= 21 and a.int("stash_type", 1) == 1 and t.dtype == "float16"
    data = b.add1("cast", [x], dtype="float32") if stash else x
    grouped = b.add1("reshape", [data], shape=(t.shape[0], groups, t.numel // (t.shape[0] * groups)))
    normalized = b.add1("layer_norm", [grouped], axis=2, epsilon=a.float("epsilon", 1e-5))
    restored = b.add1("reshape", [normalized], shape=t.shape)
    if stash:
        restored = b.add1("cast", [restored], dtype=t.dtype)
    scaled = b.add1("multiply", [restored, _channel_param(b, scale, channels, groups, per_group, t.ndim)])
    return [b.add1("add", [scaled, _channel_param(b, bias, channels, groups, per_group, t.ndim)],
                   output=node.output[0])]


@converts("MeanVarianceNormalization", (9, 13))
def _mean_variance_norm(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    x = ins[0]
    t = b.type(x)
    axes = tuple(d + t.ndim if d < 0 else d for d in a.ints("axes", [0, 2, 3]) or [])
    mean = b.add1("mean", [x], axes=axes, keepdims=True)
    centered = b.add1("subtract", [x, mean])
    variance = b.add1("mean", [b.add1("multiply", [centered, centered])], axes=axes, keepdims=True)
    deviation = b.add1("add", [b.add1("sqrt", [variance]), scalar_param(b, 1e-9, t.dtype, "epsilon")])
    return [b.add1("divide", [centered, deviation], output=node.output[0])]


@converts("LpNormalization", (1, 22))
def _lp_norm(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    x = ins[0]
    t = b.type(x)
    axis = a.int("axis", -1)
    if not -t.ndim <= axis < t.ndim:
        raise b.error(f"axis={axis} is out of range for {t.ndim} dimensions")
    axes = (axis + t.ndim if axis < 0 else axis,)
    p = a.int("p", 2)
    if p == 1:
        norm = _l1(b, x, axes, True, b.fresh(f"{b.node_name}/norm"))
    elif p == 2:
        norm = _l2(b, x, axes, True, b.fresh(f"{b.node_name}/norm"))
    else:
        raise b.error(f"p={p} must be 1 or 2")
    zero = scalar_param(b, 0, t.dtype, "zero")
    quotient = b.add1("divide", [x, norm])
    return [b.add1("where", [b.add1("equal", [norm, zero]), zero, quotient], output=node.output[0])]


@converts("RMSNormalization", (23,))
def _rms_norm(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    x, scale = ins[0], ins[1]
    t = b.type(x)
    axis = a.int("axis", -1)
    if not -t.ndim <= axis < t.ndim:
        raise b.error(f"axis={axis} is out of range for {t.ndim} dimensions")
    stash = a.int("stash_type", 1)
    if stash != 1:
        raise b.error(f"stash_type={stash} is not supported (1, float32, is)")
    first = axis + t.ndim if axis < 0 else axis
    stashed = t.dtype == "float16"
    data = b.add1("cast", [x], dtype="float32") if stashed else x
    compute_dtype = "float32" if stashed else t.dtype
    square_mean = b.add1("mean", [b.add1("multiply", [data, data])], axes=tuple(range(first, t.ndim)), keepdims=True)
    shifted = b.add1("add", [square_mean, scalar_param(b, a.float("epsilon", 1e-5), compute_dtype, "epsilon")])
    normalized = b.add1("divide", [data, b.add1("sqrt", [shifted])])
    if stashed:
        normalized = b.add1("cast", [normalized], dtype=t.dtype)
    return [b.add1("multiply", [normalized, scale], output=node.output[0])]
