"""Indexing and order graph operators over ``tcomp.ops.indexing``, ``tcomp.ops.sorting`` and ``tcomp.ops.scan``.

- ``gather_elements(axis)`` and ``gather_nd(batch_dims)`` (data, indices): injective gathers.
- ``scatter_elements(axis, reduction)`` and ``scatter_nd(reduction)`` (data, indices, updates): ``reduction`` is
  ``none``, ``add``, ``mul``, ``max`` or ``min``.
- ``one_hot(depth, axis)`` (indices, values): ``values`` holds ``[off, on]``; the output takes its dtype.
- ``trilu(upper)`` (x[, k]): ``k`` an optional int64 scalar input (0 when absent), read at run time.
- ``cumsum`` / ``cumprod(axis, exclusive, reverse)``; ``argmax`` / ``argmin(axis, keepdims, select_last_index)``;
  ``topk(k, axis, largest)`` with two outputs, the values and their int64 positions.

Indices may be any integer dtype (``one_hot``'s also float); statically known indices out of range are refused at
inference, as ``take`` does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from tcomp.graph.ir import Node, TensorType
from tcomp.graph.op import InferContext, LowerContext, OpPattern, register_op
from tcomp.graph.opdefs.common import int_attr, normalize_axis, same_dtype
from tcomp.ir import dtype as dt
from tcomp.ops import indexing, scan, sorting
from tcomp.te.tensor import Tensor


def _require_indices(ctx: InferContext, index: int, floats_allowed: bool = False) -> TensorType:
    t = ctx.type(index)
    if not (dt.is_int(t.dtype) or (floats_allowed and dt.is_float(t.dtype))):
        raise ctx.error(f"input {index} (indices) must be integers, got {t.dtype}")
    return t


def _check_range(ctx: InferContext, index: int, extents: Sequence[int]) -> None:
    """Statically known indices (input ``index``, the last axis cycling over ``extents`` when several) in range."""
    value = ctx.value(index)
    if value is None or value.size == 0:
        return
    flat = value.reshape(-1, len(extents))
    for position, extent in enumerate(extents):
        column = flat[:, position]
        if column.min() < -extent or column.max() >= extent:
            raise ctx.error(f"indices {column[:8]} are out of range for a dimension of extent {extent}")


# gather_elements
def _infer_gather_elements(ctx: InferContext) -> list[TensorType]:
    data, indices = ctx.type(0), _require_indices(ctx, 1)
    axis = normalize_axis(ctx, ctx.attr("axis", 0), data.ndim)
    if indices.ndim != data.ndim:
        raise ctx.error(f"indices {indices.shape} must have the rank of data {data.shape}")
    _check_range(ctx, 1, [data.shape[axis]])
    return [TensorType(indices.shape, data.dtype)]


def _eval_gather_elements(node: Node, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    data, indices = arrays
    axis = node.attr("axis", 0)
    return [np.take_along_axis(data, np.where(indices < 0, indices + data.shape[axis], indices), axis=axis)]


register_op("gather_elements", OpPattern.INJECTIVE, _infer_gather_elements,
            lambda ctx: [indexing.gather_elements(ctx.tensor(0), ctx.tensor(1), int(ctx.attr("axis", 0)),
                                                  name=ctx.name)],
            _eval_gather_elements)


# gather_nd
def _infer_gather_nd(ctx: InferContext) -> list[TensorType]:
    data, indices = ctx.type(0), _require_indices(ctx, 1)
    batch = int_attr(ctx, "batch_dims", 0)
    if indices.ndim == 0 or not 0 <= batch < indices.ndim or batch > data.ndim:
        raise ctx.error(f"batch_dims={batch} is invalid for indices {indices.shape} and data {data.shape}")
    depth = indices.shape[-1]
    if batch + depth > data.ndim or indices.shape[:batch] != data.shape[:batch]:
        raise ctx.error(f"indices {indices.shape} with batch_dims={batch} do not address data {data.shape}")
    _check_range(ctx, 1, list(data.shape[batch:batch + depth]))
    return [TensorType(indices.shape[:-1] + data.shape[batch + depth:], data.dtype)]


def _eval_gather_nd(node: Node, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    data, indices = arrays
    batch = node.attr("batch_dims", 0)
    depth = indices.shape[-1]
    lead = indices.shape[:-1]
    out = np.empty(lead + data.shape[batch + depth:], dtype=data.dtype)
    for position in np.ndindex(*lead):
        coords = tuple(int(c) for c in indices[position])
        out[position] = data[position[:batch] + coords]
    return [out]


register_op("gather_nd", OpPattern.INJECTIVE, _infer_gather_nd,
            lambda ctx: [indexing.gather_nd(ctx.tensor(0), ctx.tensor(1), int(ctx.attr("batch_dims", 0)),
                                            name=ctx.name)],
            _eval_gather_nd)


# scatters
def _check_reduction(ctx: InferContext) -> None:
    if ctx.attr("reduction", "none") not in indexing.REDUCTIONS:
        raise ctx.error(f"reduction {ctx.attr('reduction')!r} is not one of {indexing.REDUCTIONS}")


def _infer_scatter_elements(ctx: InferContext) -> list[TensorType]:
    data, indices, updates = ctx.type(0), _require_indices(ctx, 1), ctx.type(2)
    same_dtype(ctx, [data, updates])
    _check_reduction(ctx)
    axis = normalize_axis(ctx, ctx.attr("axis", 0), data.ndim)
    if indices.shape != updates.shape or indices.ndim != data.ndim or any(
            i > d for position, (i, d) in enumerate(zip(indices.shape, data.shape)) if position != axis):
        raise ctx.error(f"indices {indices.shape} and updates {updates.shape} do not fit data {data.shape}")
    _check_range(ctx, 1, [data.shape[axis]])
    return [data]


def _infer_scatter_nd(ctx: InferContext) -> list[TensorType]:
    data, indices, updates = ctx.type(0), _require_indices(ctx, 1), ctx.type(2)
    same_dtype(ctx, [data, updates])
    _check_reduction(ctx)
    if indices.ndim == 0 or not 1 <= indices.shape[-1] <= data.ndim:
        raise ctx.error(f"the last dimension of indices {indices.shape} must address 1 to {data.ndim} dimensions")
    depth = indices.shape[-1]
    if updates.shape != indices.shape[:-1] + data.shape[depth:]:
        raise ctx.error(f"updates {updates.shape} must have shape {indices.shape[:-1] + data.shape[depth:]}")
    _check_range(ctx, 1, list(data.shape[:depth]))
    return [data]


register_op("scatter_elements", OpPattern.OPAQUE, _infer_scatter_elements,
            lambda ctx: [indexing.scatter_elements(ctx.tensor(0), ctx.tensor(1), ctx.tensor(2),
                                                   int(ctx.attr("axis", 0)), ctx.attr("reduction", "none"),
                                                   name=ctx.name)])
register_op("scatter_nd", OpPattern.OPAQUE, _infer_scatter_nd,
            lambda ctx: [indexing.scatter_nd(ctx.tensor(0), ctx.tensor(1), ctx.tensor(2),
                                             ctx.attr("reduction", "none"), name=ctx.name)])


# one_hot
def _infer_one_hot(ctx: InferContext) -> list[TensorType]:
    indices, values = _require_indices(ctx, 0, floats_allowed=True), ctx.type(1)
    depth = int_attr(ctx, "depth")
    if depth <= 0:
        raise ctx.error(f"depth must be positive, got {depth}")
    if values.shape != (2,):
        raise ctx.error(f"values must hold [off, on], got shape {values.shape}")
    axis = normalize_axis(ctx, ctx.attr("axis", -1), indices.ndim + 1)
    return [TensorType(indices.shape[:axis] + (depth,) + indices.shape[axis:], values.dtype)]


register_op("one_hot", OpPattern.INJECTIVE, _infer_one_hot,
            lambda ctx: [indexing.one_hot(ctx.tensor(0), ctx.tensor(1), int(ctx.attr("depth")),
                                          int(ctx.attr("axis", -1)), name=ctx.name)])


# trilu
def _infer_trilu(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    if x.ndim < 2:
        raise ctx.error(f"input must have at least 2 dimensions, got {x}")
    if ctx.has_input(1):
        k = ctx.type(1)
        if k.numel != 1 or not dt.is_int(k.dtype):
            raise ctx.error(f"k must be an integer scalar, got {k}")
    return [x]


def _lower_trilu(ctx: LowerContext) -> list[Tensor]:
    k = 0
    if ctx.has_input(1):
        k_tensor = ctx.tensor(1)
        k = k_tensor[(0,) * k_tensor.ndim]  # type: ignore[assignment]
    return [indexing.trilu(ctx.tensor(0), k, bool(ctx.attr("upper", True)), name=ctx.name)]


register_op("trilu", OpPattern.INJECTIVE, _infer_trilu, _lower_trilu)


# cumsum / cumprod
Evaluate = Callable[[Node, Sequence[np.ndarray]], list[np.ndarray]]


def _infer_cumulative(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    if x.ndim == 0 or dt.is_bool(x.dtype):
        raise ctx.error(f"input must be a numeric tensor of at least one dimension, got {x}")
    normalize_axis(ctx, ctx.attr("axis", 0), x.ndim)
    return [x]


def _cumulative(op: str) -> tuple[Callable[[LowerContext], list[Tensor]], Evaluate]:
    numpy_func = np.cumprod if op == "cumprod" else np.cumsum
    lower_func = scan.cumprod if op == "cumprod" else scan.cumsum

    def evaluate(node: Node, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        x, axis = arrays[0], node.attr("axis", 0)
        reverse = node.attr("reverse", False)
        source = np.flip(x, axis) if reverse else x
        if node.attr("exclusive", False):
            identity = np.ones_like if op == "cumprod" else np.zeros_like
            first = identity(np.take(source, [0], axis=axis))
            source = np.concatenate([first, np.delete(source, -1, axis=axis)], axis=axis)
        result = numpy_func(source, axis=axis, dtype=x.dtype)
        return [np.flip(result, axis) if reverse else result]

    def lower(ctx: LowerContext) -> list[Tensor]:
        return [lower_func(ctx.tensor(0), int(ctx.attr("axis", 0)), bool(ctx.attr("exclusive", False)),
                           bool(ctx.attr("reverse", False)), name=ctx.name)]

    return lower, evaluate


for _op in ("cumsum", "cumprod"):
    _lower, _evaluate = _cumulative(_op)
    register_op(_op, OpPattern.OPAQUE, _infer_cumulative, _lower, _evaluate)


# argmax / argmin
def _infer_arg(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    if x.ndim == 0 or dt.is_bool(x.dtype):
        raise ctx.error(f"input must be a numeric tensor of at least one dimension, got {x}")
    axis = normalize_axis(ctx, ctx.attr("axis", 0), x.ndim)
    if bool(ctx.attr("keepdims", True)):
        shape = tuple(1 if d == axis else s for d, s in enumerate(x.shape))
    else:
        shape = x.shape[:axis] + x.shape[axis + 1:]
    return [TensorType(shape, "int64")]


def _arg_lowering(fn: object) -> object:
    def lower(ctx: LowerContext) -> list[Tensor]:
        return [fn(ctx.tensor(0), int(ctx.attr("axis", 0)), bool(ctx.attr("keepdims", True)),  # type: ignore
                   bool(ctx.attr("select_last_index", False)), name=ctx.name)]

    return lower


register_op("argmax", OpPattern.OPAQUE, _infer_arg, _arg_lowering(sorting.argmax))  # type: ignore[arg-type]
register_op("argmin", OpPattern.OPAQUE, _infer_arg, _arg_lowering(sorting.argmin))  # type: ignore[arg-type]


# topk
def _infer_topk(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    if x.ndim == 0 or dt.is_bool(x.dtype):
        raise ctx.error(f"input must be a numeric tensor of at least one dimension, got {x}")
    axis = normalize_axis(ctx, ctx.attr("axis", -1), x.ndim)
    k = int_attr(ctx, "k")
    if not 0 < k <= x.shape[axis]:
        raise ctx.error(f"k={k} must be in [1, {x.shape[axis]}] (zero-size outputs are not supported)")
    shape = tuple(k if d == axis else s for d, s in enumerate(x.shape))
    return [TensorType(shape, x.dtype), TensorType(shape, "int64")]


def _lower_topk(ctx: LowerContext) -> list[Tensor]:
    values, indices = sorting.topk(ctx.tensor(0), int(ctx.attr("k")), int(ctx.attr("axis", -1)),
                                   bool(ctx.attr("largest", True)), name=ctx.name)
    return [values, indices]


register_op("topk", OpPattern.OPAQUE, _infer_topk, _lower_topk)
