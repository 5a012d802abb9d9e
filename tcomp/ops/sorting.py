"""Order statistics along one axis: ``argmax``, ``argmin`` and ``topk``.

- ``argmax(x, axis, keepdims, select_last_index)`` (``argmin`` likewise): the int64 position of the largest
  (smallest) element along ``axis``; among equal ones the first, or the last with ``select_last_index``. Two
  reductions: the extreme value, then the first (last) position holding it.
- ``topk(x, k, axis, largest)``: the ``k`` largest (smallest) elements along ``axis``, in order, and their int64
  positions; equal elements keep their order (the lower position first), as ONNX's TopK defines. Each element's
  rank is the number of elements that come before it in that order (a reduction over the axis), and output ``r``
  picks the element of rank ``r``: about ``n * n`` comparisons per row of ``n`` elements, for the short rows
  (vocabularies, detection scores) TopK sees in models.
"""

from __future__ import annotations

from typing import Any

from tcomp import te
from tcomp.ir.expr import Expr, min_expr
from tcomp.ops.utils import OpError, Tag, as_int, check_tensor, normalize_axis
from tcomp.te.tensor import Tensor

__all__ = ["argmax", "argmin", "topk"]


def _extent(op: str, x: Tensor, axis: int) -> int:
    extent = as_int(x.shape[axis])
    if extent is None or extent <= 0:
        raise OpError(f"{op}: dimension {axis} must be a positive constant, got {x.shape[axis]}")
    return extent


def _arg_extreme(op: str, x: Tensor, axis: int, keepdims: bool, select_last_index: bool, largest: bool,
                 name: str) -> Tensor:
    check_tensor(op, "x", x)
    axis = normalize_axis(op, axis, x.ndim)
    n = _extent(op, x, axis)
    kept = tuple(te.const(1) if d == axis else x.shape[d] for d in range(x.ndim))
    r = te.reduce_axis((0, n), name="r")
    reducer = te.max if largest else te.min
    extreme = te.compute(kept, lambda *i: reducer(x[(*i[:axis], r, *i[axis + 1:])], axis=r), name=f"{name}_value",
                         tag=Tag.COMM_REDUCE)
    out_shape = kept if keepdims else tuple(x.shape[d] for d in range(x.ndim) if d != axis)
    s = te.reduce_axis((0, n), name="s")

    def position(*i: Any) -> Expr:
        full = i if keepdims else (*i[:axis], 0, *i[axis:])
        found = x[(*full[:axis], s, *full[axis + 1:])] == extreme[(*full[:axis], 0, *full[axis + 1:])]
        index = te.cast(s.var, "int64")
        if select_last_index:
            return te.max(te.if_then_else(found, index, te.const(-1, "int64")), axis=s)
        return te.min(te.if_then_else(found, index, te.const(n, "int64")), axis=s)

    first = te.compute(out_shape, position, name=f"{name}_first", tag=Tag.COMM_REDUCE)
    # no element equals the extreme only when NaNs hide it: keep the position inside the axis
    bound = te.const(n - 1, "int64")
    return te.compute(out_shape, lambda *i: min_expr(te.max(first[i], te.const(0, "int64")), bound), name=name,
                      tag=Tag.ELEMWISE)


def argmax(x: Tensor, axis: int = 0, keepdims: bool = True, select_last_index: bool = False,
           name: str = "argmax") -> Tensor:
    return _arg_extreme("argmax", x, axis, keepdims, select_last_index, True, name)


def argmin(x: Tensor, axis: int = 0, keepdims: bool = True, select_last_index: bool = False,
           name: str = "argmin") -> Tensor:
    return _arg_extreme("argmin", x, axis, keepdims, select_last_index, False, name)


def topk(x: Tensor, k: int, axis: int = -1, largest: bool = True, name: str = "topk") -> tuple[Tensor, Tensor]:
    op = "topk"
    check_tensor(op, "x", x)
    axis = normalize_axis(op, axis, x.ndim)
    n = _extent(op, x, axis)
    if not 0 < k <= n:
        raise OpError(f"{op}: k={k} must be in [1, {n}] for dimension {axis} of extent {n}")

    def along(i: Any, position: Any) -> tuple[Any, ...]:
        return (*i[:axis], position, *i[axis + 1:])

    j = te.reduce_axis((0, n), name="j")

    def rank_of(*i: Any) -> Expr:
        mine, other = x[i], x[along(i, j)]
        better = other > mine if largest else other < mine
        before = te.any(better, te.all(other == mine, j.var < i[axis]))
        return te.sum(te.if_then_else(before, te.const(1, "int32"), te.const(0, "int32")), axis=j)

    rank = te.compute(x.shape, rank_of, name=f"{name}_rank", tag=Tag.COMM_REDUCE)
    out_shape = tuple(te.const(k) if d == axis else x.shape[d] for d in range(x.ndim))
    s = te.reduce_axis((0, n), name="s")
    t = te.reduce_axis((0, n), name="t")

    def value(*i: Any) -> Expr:
        hit = rank[along(i, s)] == i[axis]
        return te.max(te.if_then_else(hit, x[along(i, s)], te.min_value(x.dtype)), axis=s)

    def index(*i: Any) -> Expr:
        hit = rank[along(i, t)] == i[axis]
        return te.max(te.if_then_else(hit, te.cast(t.var, "int64"), te.const(-1, "int64")), axis=t)

    values = te.compute(out_shape, value, name=f"{name}_values", tag=Tag.COMM_REDUCE)
    indices = te.compute(out_shape, index, name=f"{name}_indices", tag=Tag.COMM_REDUCE)
    return values, indices
