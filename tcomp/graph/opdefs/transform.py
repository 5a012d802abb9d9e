"""Injective graph operators (layout and indexing: every output element is one input element) and reductions.

``reshape(shape)``, ``transpose(perm)``, ``concat(axis)``, ``split(axis, sizes)`` (one output per part),
``strided_slice(begin, end, strides, axes)`` (Python slice semantics), ``take(axis)`` (ONNX Gather: negative
indices count from the end, an out-of-range one fails the run with a ``KernelError``; on CUDA, which has no run-time
checks yet, it is clamped), ``broadcast_to(shape)``, ``tile(repeats)``, ``pad(pads, mode, value)`` (``pads`` =
begins then ends, modes constant / edge / reflect / wrap), ``shape_of(start, end)``, ``range(count)`` (``count``
values from a scalar start by a scalar delta), ``constant_of_shape(shape, value, dtype)``, and the reductions
``sum``/``mean``/``max``/``min`` over ``axes`` with ``keepdims``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tcomp import ops, te
from tcomp.graph.ir import Node, TensorType
from tcomp.graph.op import InferContext, LowerContext, OpPattern, register_op
from tcomp.graph.opdefs.common import const_tensor, fill, ints_attr, normalize_axis
from tcomp.ir import dtype as dt
from tcomp.ir.expr import Expr, floormod, max_expr, min_expr
from tcomp.ops.utils import as_int
from tcomp.te.tensor import Tensor


def _injective(name: str, infer: Callable[[InferContext], list[TensorType]], lower: Callable[[LowerContext], Any],
               evaluate: Callable[[Node, Sequence[np.ndarray]], list[np.ndarray]] | None = None) -> None:
    register_op(name, OpPattern.INJECTIVE, infer, lower, evaluate)


# reshape
def _infer_reshape(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    shape = ints_attr(ctx, "shape")
    if min(shape, default=1) < 0 or int(np.prod(shape, dtype=np.int64)) != x.numel:
        raise ctx.error(f"cannot reshape {x.shape} into {shape}")
    return [TensorType(shape, x.dtype)]


def _lower_reshape(ctx: LowerContext) -> list[Tensor]:
    return [ops.reshape(ctx.tensor(0), ctx.attr("shape"), name=ctx.name)]


_injective("reshape", _infer_reshape, _lower_reshape, lambda node, a: [a[0].reshape(node.attr("shape"))])


# transpose
def _infer_transpose(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    perm = ints_attr(ctx, "perm")
    if sorted(perm) != list(range(x.ndim)):
        raise ctx.error(f"perm {perm} is not a permutation of the {x.ndim} dimensions")
    return [TensorType(tuple(x.shape[p] for p in perm), x.dtype)]


_injective("transpose", _infer_transpose, lambda ctx: [ops.transpose(ctx.tensor(0), ctx.attr("perm"), name=ctx.name)],
           lambda node, a: [np.transpose(a[0], node.attr("perm"))])


# concat
def _infer_concat(ctx: InferContext) -> list[TensorType]:
    types = [ctx.type(i) for i in range(len(ctx.types))]
    if not types:
        raise ctx.error("needs at least one input")
    first = types[0]
    axis = normalize_axis(ctx, ctx.attr("axis", 0), first.ndim)
    total = 0
    for t in types:
        if t.ndim != first.ndim or t.dtype != first.dtype or any(
                t.shape[d] != first.shape[d] for d in range(first.ndim) if d != axis):
            raise ctx.error(f"input {t} does not match {first} outside axis {axis}")
        total += t.shape[axis]
    return [TensorType(tuple(total if d == axis else first.shape[d] for d in range(first.ndim)), first.dtype)]


def _lower_concat(ctx: LowerContext) -> list[Tensor]:
    tensors = [ctx.tensor(i) for i in range(len(ctx.tensors))]
    axis = int(ctx.attr("axis", 0))
    if len(tensors) == 1:
        return [te.compute(tensors[0].shape, lambda *i: tensors[0][i], name=ctx.name, tag="injective")]
    return [ops.concatenate(tensors, axis=axis, name=ctx.name)]


_injective("concat", _infer_concat, _lower_concat,
           lambda node, a: [np.concatenate(list(a), axis=node.attr("axis", 0))])


# split
def _infer_split(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    axis = normalize_axis(ctx, ctx.attr("axis", 0), x.ndim)
    sizes = ints_attr(ctx, "sizes")
    if not sizes or min(sizes) < 0 or sum(sizes) != x.shape[axis]:
        raise ctx.error(f"split sizes {sizes} must be non-negative and add up to {x.shape[axis]}")
    return [TensorType(tuple(s if d == axis else x.shape[d] for d in range(x.ndim)), x.dtype) for s in sizes]


def _lower_split(ctx: LowerContext) -> list[Tensor]:
    x = ctx.tensor(0)
    axis = int(ctx.attr("axis", 0))
    sizes = ctx.attr("sizes")
    if len(sizes) == 1:
        return [te.compute(x.shape, lambda *i: x[i], name=ctx.name, tag="injective")]
    points = list(np.cumsum(sizes)[:-1])
    return ops.split(x, [int(p) for p in points], axis=axis, name=ctx.name)


def _eval_split(node: Node, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    points = list(np.cumsum(node.attr("sizes"))[:-1])
    return list(np.split(arrays[0], points, axis=node.attr("axis", 0)))


_injective("split", _infer_split, _lower_split, _eval_split)


# strided_slice
def _slices(ctx: InferContext | None, node: Node, shape: tuple[int, ...]) -> list[slice]:
    begin, end = node.attr("begin"), node.attr("end")
    strides, axes = node.attr("strides"), node.attr("axes")
    result = [slice(None)] * len(shape)
    for a, b, e, s in zip(axes, begin, end, strides):
        if s == 0:
            raise ValueError("slice steps must be non-zero")
        a = a + len(shape) if a < 0 else a
        if not 0 <= a < len(shape):
            raise ValueError(f"slice axis {a} is out of range for {len(shape)} dimensions")
        result[a] = slice(b, e, s)
    return result


def _infer_strided_slice(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    lengths = [len(ints_attr(ctx, k)) for k in ("begin", "end", "strides", "axes")]
    if len(set(lengths)) != 1:
        raise ctx.error("begin, end, strides and axes must have the same length")
    axes = [a + x.ndim if a < 0 else a for a in ctx.attr("axes")]
    if len(set(axes)) != len(axes):
        raise ctx.error(f"axes {ctx.attr('axes')} repeat an axis")
    slices = _slices(ctx, ctx.node, x.shape)
    shape = tuple(len(range(*s.indices(d))) for s, d in zip(slices, x.shape))
    return [TensorType(shape, x.dtype)]


def _lower_strided_slice(ctx: LowerContext) -> list[Tensor]:
    return [ops.strided_slice(ctx.tensor(0), list(ctx.attr("begin")), list(ctx.attr("end")),
                              list(ctx.attr("strides")), axes=list(ctx.attr("axes")), name=ctx.name)]


_injective("strided_slice", _infer_strided_slice, _lower_strided_slice,
           lambda node, a: [a[0][tuple(_slices(None, node, a[0].shape))]])


# take (ONNX Gather)
def _infer_take(ctx: InferContext) -> list[TensorType]:
    data, indices = ctx.type(0), ctx.type(1)
    if not dt.is_int(indices.dtype):
        raise ctx.error(f"indices must be integers, got {indices.dtype}")
    if data.ndim == 0:
        raise ctx.error("data must have at least one dimension")
    axis = normalize_axis(ctx, ctx.attr("axis", 0), data.ndim)
    extent = data.shape[axis]
    value = ctx.value(1)
    if value is not None and value.size and (value.min() < -extent or value.max() >= extent):
        raise ctx.error(f"indices {value.reshape(-1)[:8]} are out of range for dimension {axis} of extent {extent}")
    return [TensorType(data.shape[:axis] + indices.shape + data.shape[axis + 1:], data.dtype)]


def _lower_take(ctx: LowerContext) -> list[Tensor]:
    data, indices = ctx.tensor(0), ctx.tensor(1)
    d_shape = ctx.types[0].shape  # type: ignore[union-attr]
    axis = int(ctx.attr("axis", 0))
    axis = axis + len(d_shape) if axis < 0 else axis
    k = indices.ndim
    extent = d_shape[axis]

    def body(*i: Any) -> Expr:
        raw = indices[i[axis:axis + k]] if k else indices[()]
        return data[(*i[:axis], te.checked_index(raw, extent), *i[axis + k:])]

    return [te.compute(ctx.out_types[0].shape, body, name=ctx.name, tag="injective")]


def _eval_take(node: Node, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    data, indices = arrays
    axis = node.attr("axis", 0)
    extent = data.shape[axis]
    return [np.take(data, np.where(indices < 0, indices + extent, indices), axis=axis)]


_injective("take", _infer_take, _lower_take, _eval_take)


# broadcast_to
def _infer_broadcast_to(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    shape = ints_attr(ctx, "shape")
    try:
        if tuple(np.broadcast_shapes(x.shape, shape)) != shape:
            raise ValueError
    except ValueError:
        raise ctx.error(f"cannot broadcast {x.shape} to {shape}") from None
    return [TensorType(shape, x.dtype)]


def _lower_broadcast_to(ctx: LowerContext) -> list[Tensor]:
    x = ctx.tensor(0)
    shape = ctx.attr("shape")
    offset = len(shape) - x.ndim
    x_shape = ctx.types[0].shape  # type: ignore[union-attr]

    def body(*i: Any) -> Expr:
        return x[tuple(te.const(0) if x_shape[d] == 1 and shape[d + offset] != 1 else i[d + offset]
                       for d in range(x.ndim))]

    return [te.compute(shape, body, name=ctx.name, tag="broadcast")]


register_op("broadcast_to", OpPattern.BROADCAST, _infer_broadcast_to, _lower_broadcast_to,
            lambda node, a: [np.broadcast_to(a[0], node.attr("shape")).copy()])


# tile
def _infer_tile(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    repeats = ints_attr(ctx, "repeats", x.ndim)
    if min(repeats, default=1) <= 0:
        raise ctx.error(f"repeats {repeats} must be positive")
    return [TensorType(tuple(d * r for d, r in zip(x.shape, repeats)), x.dtype)]


def _lower_tile(ctx: LowerContext) -> list[Tensor]:
    x = ctx.tensor(0)
    x_shape = ctx.types[0].shape  # type: ignore[union-attr]
    repeats = ctx.attr("repeats")

    def source(d: int, index: Any) -> Any:  # a repeat may be a symbolic dimension (a batch of copies)
        if as_int(x_shape[d]) == 1:
            return 0
        return index if as_int(repeats[d]) == 1 else floormod(index, x_shape[d])

    def body(*i: Any) -> Expr:
        return x[tuple(source(d, index) for d, index in enumerate(i))]

    return [te.compute(ctx.out_types[0].shape, body, name=ctx.name, tag="injective")]


_injective("tile", _infer_tile, _lower_tile, lambda node, a: [np.tile(a[0], node.attr("repeats"))])


# pad
_PAD_MODES = ("constant", "edge", "reflect", "wrap")


def _infer_pad(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    pads = ints_attr(ctx, "pads", 2 * x.ndim)
    mode = ctx.attr("mode", "constant")
    if mode not in _PAD_MODES:
        raise ctx.error(f"mode {mode!r} is not one of {_PAD_MODES}")
    if min(pads, default=0) < 0:
        raise ctx.error(f"negative pads {pads} are not supported")
    before, after = pads[: x.ndim], pads[x.ndim:]
    if mode == "reflect" and any((b or a) and (b >= d or a >= d) for b, a, d in zip(before, after, x.shape)):
        raise ctx.error(f"reflect pads {pads} must be smaller than the dimensions {x.shape}")
    if mode in ("edge", "wrap") and any((b or a) and d == 0 for b, a, d in zip(before, after, x.shape)):
        raise ctx.error("cannot pad an empty dimension")
    return [TensorType(tuple(d + b + a for d, b, a in zip(x.shape, before, after)), x.dtype)]


def _lower_pad(ctx: LowerContext) -> list[Tensor]:
    x = ctx.tensor(0)
    x_shape = ctx.types[0].shape  # type: ignore[union-attr]
    ndim = len(x_shape)
    pads = ctx.attr("pads")
    before, after = pads[:ndim], pads[ndim:]
    mode = ctx.attr("mode", "constant")
    if mode == "constant":
        value = ctx.attr("value", 0)
        value = float(value) if dt.is_float(x.dtype) else int(value)
        return [ops.pad(x, tuple(before), tuple(after), value, name=ctx.name)]

    def source(index: Expr, b: int, n: int) -> Expr:
        shifted = index - b
        if mode == "edge":
            return max_expr(min_expr(shifted, n - 1), 0)
        if mode == "wrap":
            return floormod(shifted + n * (1 + b // n), n)
        reflected = te.if_then_else(shifted < 0, -shifted, shifted)
        return te.if_then_else(reflected >= n, 2 * (n - 1) - reflected, reflected)

    def body(*i: Any) -> Expr:
        return x[tuple(source(i[d], before[d], x_shape[d]) if before[d] or after[d] else i[d] for d in range(ndim))]

    return [te.compute(ctx.out_types[0].shape, body, name=ctx.name, tag="injective")]


_injective("pad", _infer_pad, _lower_pad)


# shape_of: the (int64) shape of the input, dimensions [start, end)
def _shape_slice(node: Node, shape: tuple[int, ...]) -> tuple[int, ...]:
    start, end = node.attr("start", 0), node.attr("end")
    return shape[slice(start, end)]


def _infer_shape_of(ctx: InferContext) -> list[TensorType]:
    dims = _shape_slice(ctx.node, ctx.type(0).shape)
    ctx.set_value(0, np.array(dims, dtype=np.int64))
    return [TensorType((len(dims),), "int64")]


def _lower_shape_of(ctx: LowerContext) -> list[Tensor]:
    dims = _shape_slice(ctx.node, ctx.types[0].shape)  # type: ignore[union-attr]
    if not dims:
        raise ValueError(f"node {ctx.name}: an empty shape slice makes a zero-size tensor")
    return [const_tensor(dims, "int64", ctx.name)]


register_op("shape_of", OpPattern.OPAQUE, _infer_shape_of, _lower_shape_of)


# range: count values from a scalar start by a scalar delta (ONNX Range whose bounds are computed, as from shapes)
def _infer_range(ctx: InferContext) -> list[TensorType]:
    start, delta = ctx.type(0), ctx.type(1)
    count = ctx.attr("count")
    if start.numel != 1 or delta.numel != 1 or start.dtype != delta.dtype:
        raise ctx.error(f"start and delta must be scalars of one type, got {start} and {delta}")
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ctx.error(f"count must be a positive int, got {count!r}")
    return [TensorType((int(count),), start.dtype)]


def _lower_range(ctx: LowerContext) -> list[Tensor]:
    start, delta = ctx.tensor(0), ctx.tensor(1)
    t = ctx.out_types[0]
    first = (0,) * start.ndim
    return [te.compute(t.shape, lambda i: start[first] + i.astype(t.dtype) * delta[first], name=ctx.name,
                       tag="injective")]


def _evaluate_range(node: Node, values: Sequence[np.ndarray]) -> list[np.ndarray]:
    start, delta = (np.asarray(v).reshape(-1)[0] for v in values)
    return [(start + np.arange(node.attr("count"), dtype=start.dtype) * delta).astype(start.dtype)]


_injective("range", _infer_range, _lower_range, _evaluate_range)


# constant_of_shape: a tensor of `shape` filled with `value`
def _infer_constant_of_shape(ctx: InferContext) -> list[TensorType]:
    shape = ints_attr(ctx, "shape")
    if min(shape, default=0) < 0:
        raise ctx.error(f"shape {shape} must have non-negative dimensions")
    t = TensorType(shape, dt.normalize(ctx.attr("dtype", "float32")))
    if t.numel <= 1024:
        ctx.set_value(0, np.full(shape, ctx.attr("value", 0), dtype=dt.to_numpy(t.dtype)))
    return [t]


def _lower_constant_of_shape(ctx: LowerContext) -> list[Tensor]:
    t = ctx.out_types[0]
    return [fill(t.shape, ctx.attr("value", 0), t.dtype, ctx.name)]


register_op("constant_of_shape", OpPattern.INJECTIVE, _infer_constant_of_shape, _lower_constant_of_shape)


# ---------------------------------------------------------------------------------------------------------------------
# reductions
def _infer_reduce(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    axes = sorted({normalize_axis(ctx, a, x.ndim, "axes") for a in ints_attr(ctx, "axes")})
    keepdims = bool(ctx.attr("keepdims", True))
    shape = tuple(1 if d in axes else s for d, s in enumerate(x.shape) if keepdims or d not in axes)
    if ctx.node.op == "mean" and not dt.is_float(x.dtype):
        raise ctx.error(f"mean needs a float input, got {x.dtype}")
    return [TensorType(shape, x.dtype)]


def _reduce_lowering(fn: Callable[..., Tensor]) -> Callable[[LowerContext], list[Tensor]]:
    def lower(ctx: LowerContext) -> list[Tensor]:
        x = ctx.tensor(0)
        axes = tuple(a + x.ndim if a < 0 else a for a in ctx.attr("axes"))
        return [fn(x, axis=axes, keepdims=bool(ctx.attr("keepdims", True)), name=ctx.name)]

    return lower


def _reduce_eval(fn: Callable[..., np.ndarray]) -> Callable[[Node, Sequence[np.ndarray]], list[np.ndarray]]:
    return lambda node, a: [fn(a[0], axis=tuple(node.attr("axes")), keepdims=bool(node.attr("keepdims", True)))]


register_op("sum", OpPattern.COMM_REDUCE, _infer_reduce, _reduce_lowering(ops.sum), _reduce_eval(np.sum))
register_op("max", OpPattern.COMM_REDUCE, _infer_reduce, _reduce_lowering(ops.max), _reduce_eval(np.max))
register_op("min", OpPattern.COMM_REDUCE, _infer_reduce, _reduce_lowering(ops.min), _reduce_eval(np.min))
register_op("prod", OpPattern.COMM_REDUCE, _infer_reduce, _reduce_lowering(ops.prod), _reduce_eval(np.prod))
register_op("mean", OpPattern.COMM_REDUCE, _infer_reduce, _reduce_lowering(ops.mean))
