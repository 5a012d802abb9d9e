"""Data-dependent indexing: gathers and scatters by index tensors, one-hot encoding, triangular masks.

Index values may be negative (counting from the end of their dimension, as numpy and ONNX do). Gathers and
scatters take their indices through ``te.checked_index``: an index outside its axis fails the call at run time,
as ONNX defines (and no access ever leaves a buffer). ``one_hot`` defines out-of-range indices (all ``off``).

- ``gather_elements(data, indices, axis)``: ``out[i] = data[i with i[axis] = indices[i]]``; ``out.shape =
  indices.shape``.
- ``gather_nd(data, indices, batch_dims)``: the last dimension of ``indices`` (``q`` entries) addresses
  ``data``'s dimensions ``batch_dims .. batch_dims + q``; ``out.shape = indices.shape[:-1] +
  data.shape[batch_dims + q:]``.
- ``scatter_elements(data, indices, updates, axis, reduction)`` and ``scatter_nd(data, indices, updates,
  reduction)``: ``data`` with the ``updates`` written at the indexed positions. ``reduction`` ``"none"`` keeps the
  last update written to a position (in row-major order of the updates), ``"add"``, ``"mul"``, ``"max"``,
  ``"min"`` combine the position's value with every update written to it. Each output position searches the
  updates that may reach it (those along ``axis`` for ``scatter_elements``, all index tuples for ``scatter_nd``).
- ``one_hot(indices, values, depth, axis)``: ``values[1]`` where the position along the new ``axis`` equals the
  index, ``values[0]`` elsewhere.
- ``trilu(x, k, upper)``: the upper (``col - row >= k``) or lower (``col - row <= k``) triangle of the last two
  dimensions, zeros elsewhere; ``k`` is an int or a scalar expression.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tcomp import te
from tcomp.ir import dtype as dt
from tcomp.ir.expr import Expr, floordiv, floormod, max_expr, min_expr
from tcomp.ops.utils import OpError, Tag, as_int, check_tensor, normalize_axis
from tcomp.te.tensor import Tensor

__all__ = ["gather_elements", "gather_nd", "one_hot", "scatter_elements", "scatter_nd", "trilu"]

REDUCTIONS = ("none", "add", "mul", "max", "min")


def _wrap_index(raw: Expr, extent: int) -> Expr:
    """``raw`` (any integer or float dtype) as an int64 index, ``extent`` added when negative; not checked."""
    value = te.cast(raw, "int64")
    return te.if_then_else(value < 0, value + extent, value)


def _static_shape(op: str, name: str, t: Tensor) -> tuple[int, ...]:
    shape = tuple(as_int(d) for d in t.shape)
    if any(d is None for d in shape):
        raise OpError(f"{op}: {name} must have a static shape, got {t.shape}")
    return tuple(int(d) for d in shape if d is not None)


def gather_elements(data: Tensor, indices: Tensor, axis: int = 0, name: str = "gather_elements") -> Tensor:
    op = "gather_elements"
    check_tensor(op, "data", data)
    check_tensor(op, "indices", indices, data.ndim)
    axis = normalize_axis(op, axis, data.ndim)
    extent = data.shape[axis]  # may be symbolic: every index is checked against it

    def body(*i: Any) -> Expr:
        return data[(*i[:axis], te.checked_index(indices[i], extent), *i[axis + 1:])]

    return te.compute(indices.shape, body, name=name, tag=Tag.INJECTIVE)


def gather_nd(data: Tensor, indices: Tensor, batch_dims: int = 0, name: str = "gather_nd") -> Tensor:
    op = "gather_nd"
    d_shape = tuple(data.shape)  # dimensions may be symbolic: every coordinate is checked against its extent
    i_shape = tuple(indices.shape)
    if not i_shape:
        raise OpError(f"{op}: indices must have at least one dimension")
    depth = as_int(i_shape[-1])
    if depth is None:
        raise OpError(f"{op}: the last dimension of indices must be a constant, got {i_shape[-1]}")
    if not 0 <= batch_dims < len(i_shape) or batch_dims + depth > len(d_shape):
        raise OpError(f"{op}: indices {i_shape} with batch_dims={batch_dims} do not address data {d_shape}")
    lead = len(i_shape) - 1
    out_shape = i_shape[:-1] + d_shape[batch_dims + depth:]

    def body(*i: Any) -> Expr:
        coords = [te.checked_index(indices[(*i[:lead], k)], d_shape[batch_dims + k]) for k in range(depth)]
        return data[(*i[:batch_dims], *coords, *i[lead:])]

    return te.compute(out_shape, body, name=name, tag=Tag.INJECTIVE)


def _identity(reduction: str, dtype: str) -> Expr:
    if reduction == "add":
        return te.const(0, dtype)
    if reduction == "mul":
        return te.const(1, dtype)
    return te.min_value(dtype) if reduction == "max" else te.max_value(dtype)


_REDUCERS: dict[str, Any] = {"add": te.sum, "mul": te.prod, "max": te.max, "min": te.min}


def _combine(reduction: str, old: Expr, new: Expr) -> Expr:
    if reduction == "add":
        return old + new
    if reduction == "mul":
        return old * new
    return max_expr(old, new) if reduction == "max" else min_expr(old, new)


def _check_reduction(op: str, reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise OpError(f"{op}: reduction {reduction!r} is not one of {REDUCTIONS}")


def _scatter(data: Tensor, updates: Tensor, reduction: str, search: Sequence[Any],
             match: Callable[[Sequence[Any]], Expr], update_at: Callable[[Sequence[Any], Sequence[Any]], Expr],
             linear: Expr, unlinear: Callable[[Expr], Sequence[Expr]], name: str, key_ndim: int) -> Tensor:
    """The common scheme of both scatters: ``match(i)`` tests whether the update at the ``search`` position reaches
    output position ``i``; ``update_at(u, i)`` reads it. With no reduction, a first stage finds the last matching
    update (``linear`` numbers the search positions) over the output's first ``key_ndim`` dimensions."""
    shape = data.shape
    if reduction == "none":
        key_shape = shape[:key_ndim]

        def last(*i: Any) -> Expr:
            return te.max(te.if_then_else(match(i), linear, te.const(-1, "int64")), axis=list(search))

        which = te.compute(key_shape, last, name=f"{name}_which", tag=Tag.COMM_REDUCE)

        def pick(*i: Any) -> Expr:
            found = which[i[:key_ndim]]
            position = unlinear(max_expr(found, te.const(0, "int64")))
            return te.if_then_else(found >= 0, update_at(position, i), data[i])

        return te.compute(shape, pick, name=name, tag=Tag.INJECTIVE)
    identity = _identity(reduction, data.dtype)

    def gathered(*i: Any) -> Expr:
        value = te.if_then_else(match(i), update_at([s.var for s in search], i), identity)
        return _REDUCERS[reduction](value, axis=list(search))

    total = te.compute(shape, gathered, name=f"{name}_updates", tag=Tag.COMM_REDUCE)
    return te.compute(shape, lambda *i: _combine(reduction, data[i], total[i]), name=name, tag=Tag.ELEMWISE)


def scatter_elements(data: Tensor, indices: Tensor, updates: Tensor, axis: int = 0, reduction: str = "none",
                     name: str = "scatter_elements") -> Tensor:
    op = "scatter_elements"
    _check_reduction(op, reduction)
    d_shape = _static_shape(op, "data", data)
    i_shape = _static_shape(op, "indices", indices)
    if _static_shape(op, "updates", updates) != i_shape or len(i_shape) != len(d_shape):
        raise OpError(f"{op}: indices {i_shape} and updates must have one shape, of data's rank {len(d_shape)}")
    axis = normalize_axis(op, axis, len(d_shape))
    k = te.reduce_axis((0, i_shape[axis]), name="k")

    def position(i: Sequence[Any], along: Any) -> tuple[Any, ...]:
        return tuple(along if d == axis else min_expr(i[d], i_shape[d] - 1) for d in range(len(d_shape)))

    def match(i: Sequence[Any]) -> Expr:
        inside = [i[d] < i_shape[d] for d in range(len(d_shape)) if d != axis and i_shape[d] < d_shape[d]]
        hit = te.checked_index(indices[position(i, k.var)], d_shape[axis]) == te.cast(i[axis], "int64")
        return te.all(*inside, hit) if inside else hit

    def update_at(u: Sequence[Any], i: Sequence[Any]) -> Expr:
        return updates[position(i, te.cast(u[0], "int32"))]

    return _scatter(data, updates, reduction, [k], match, update_at, te.cast(k.var, "int64"), lambda w: [w], name,
                    len(d_shape))


def scatter_nd(data: Tensor, indices: Tensor, updates: Tensor, reduction: str = "none",
               name: str = "scatter_nd") -> Tensor:
    op = "scatter_nd"
    _check_reduction(op, reduction)
    d_shape = _static_shape(op, "data", data)
    i_shape = _static_shape(op, "indices", indices)
    if not i_shape or not 1 <= i_shape[-1] <= len(d_shape):
        raise OpError(f"{op}: the last dimension of indices {i_shape} must address 1 to {len(d_shape)} dimensions")
    depth = i_shape[-1]
    batch = i_shape[:-1]
    if _static_shape(op, "updates", updates) != batch + d_shape[depth:]:
        raise OpError(f"{op}: updates must have shape {batch + d_shape[depth:]}")
    search = [te.reduce_axis((0, extent), name=f"u{position}") for position, extent in enumerate(batch)]
    if not search:  # one index tuple: a search over a single position
        search = [te.reduce_axis((0, 1), name="u")]
    strides = [1] * len(batch)
    for d in range(len(batch) - 2, -1, -1):
        strides[d] = strides[d + 1] * batch[d + 1]

    def tuple_at(u: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(u[:len(batch)])

    def match(i: Sequence[Any]) -> Expr:
        u = tuple_at([s.var for s in search])
        hits = [te.checked_index(indices[(*u, k)], d_shape[k]) == te.cast(i[k], "int64") for k in range(depth)]
        return te.all(*hits)

    def update_at(u: Sequence[Any], i: Sequence[Any]) -> Expr:
        return updates[(*tuple_at(u), *i[depth:])]

    linear: Expr = te.const(0, "int64")
    for s, stride in zip(search, strides):
        linear = linear + te.cast(s.var, "int64") * stride

    def unlinear(w: Expr) -> list[Expr]:
        return [te.cast(floormod(floordiv(w, stride), extent), "int32") for stride, extent in zip(strides, batch)]

    return _scatter(data, updates, reduction, search, match, update_at, linear, unlinear, name, depth)


def one_hot(indices: Tensor, values: Tensor, depth: int, axis: int = -1, name: str = "one_hot") -> Tensor:
    op = "one_hot"
    check_tensor(op, "values", values, 1)
    if depth <= 0:
        raise OpError(f"{op}: depth must be positive, got {depth}")
    ndim = indices.ndim + 1
    axis = normalize_axis(op, axis, ndim)
    out_shape = (*indices.shape[:axis], depth, *indices.shape[axis:])

    def body(*i: Any) -> Expr:
        index = indices[(*i[:axis], *i[axis + 1:])]
        value = te.cast(index, "int64") if dt.is_float(index.dtype) else index
        hit = _wrap_index(value, depth) == te.cast(i[axis], "int64")
        return te.if_then_else(hit, values[1], values[0])

    return te.compute(out_shape, body, name=name, tag=Tag.INJECTIVE)


def trilu(x: Tensor, k: Expr | int = 0, upper: bool = True, name: str = "trilu") -> Tensor:
    op = "trilu"
    check_tensor(op, "x", x)
    if x.ndim < 2:
        raise OpError(f"{op}: x must have at least 2 dimensions, got {x.ndim}")
    offset = te.cast(te.const(k, "int64") if isinstance(k, int) else k, "int64")

    def body(*i: Any) -> Expr:
        diagonal = te.cast(i[-1], "int64") - te.cast(i[-2], "int64")
        keep = diagonal >= offset if upper else diagonal <= offset
        return te.if_then_else(keep, x[i], te.const(0, x.dtype))

    return te.compute(x.shape, body, name=name, tag=Tag.ELEMWISE)
