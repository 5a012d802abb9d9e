"""Reductions over axes: ``sum``, ``prod``, ``max``, ``min``, ``mean``, with numpy's ``axis`` and ``keepdims``.

``axis`` is ``None`` (every axis), an int or a sequence of ints (negative counts from the end). The result drops the
reduced dimensions, or keeps them with extent 1 when ``keepdims=True``. Each reduced dimension becomes one
``reduce_axis`` of the compute, in the order of the input's dimensions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tcomp import te
from tcomp.ir import dtype as dt
from tcomp.ir.expr import Expr, Var, const
from tcomp.ops.utils import Tag, check_tensor, normalize_axes, shape_product
from tcomp.te.reduction import Reducer
from tcomp.te.tensor import Tensor

__all__ = ["max", "mean", "min", "prod", "reduce", "sum"]


def reduced_shape(shape: Sequence[Expr], axes: Sequence[int], keepdims: bool) -> tuple[Expr, ...]:
    result: list[Expr] = []
    for index, dim in enumerate(shape):
        if index in axes:
            if keepdims:
                result.append(const(1))
        else:
            result.append(dim)
    return tuple(result)


def reduce(
    op: str,
    x: Tensor,
    reducer: Reducer,
    axis: Any = None,
    keepdims: bool = False,
    name: str | None = None,
    atype: str | None = None,
) -> Tensor:
    """``out[kept] = reducer(x[...] over the reduced axes)``. ``atype`` is the accumulation dtype (default the
    input's)."""
    check_tensor(op, "x", x)
    axes = normalize_axes(op, axis, x.ndim)
    out_shape = reduced_shape(x.shape, axes, keepdims)
    if not axes:
        return te.compute(x.shape, lambda *idx: x[idx], name=name or f"{x.name}_{op}", tag=Tag.ELEMWISE)
    reduce_vars = [te.reduce_axis((0, x.shape[a]), name=f"k{a}") for a in axes]

    def body(*indices: Var) -> Expr:
        out_pos = 0
        red_pos = 0
        source_index: list[Any] = []
        for dim in range(x.ndim):
            if dim in axes:
                source_index.append(reduce_vars[red_pos])
                red_pos += 1
                if keepdims:
                    out_pos += 1
            else:
                source_index.append(indices[out_pos])
                out_pos += 1
        value = x[tuple(source_index)]
        if atype is not None:
            value = te.cast(value, atype)
        return reducer(value, reduce_vars)

    return te.compute(out_shape, body, name=name or f"{x.name}_{op}", tag=Tag.COMM_REDUCE)


def sum(x: Tensor, axis: Any = None, keepdims: bool = False, name: str | None = None) -> Tensor:  # noqa: A001
    """``sum(x)`` over ``axis``."""
    return reduce("sum", x, te.sum, axis, keepdims, name)


def prod(x: Tensor, axis: Any = None, keepdims: bool = False, name: str | None = None) -> Tensor:
    """``product(x)`` over ``axis``."""
    return reduce("prod", x, te.prod, axis, keepdims, name)


def max(x: Tensor, axis: Any = None, keepdims: bool = False, name: str | None = None) -> Tensor:  # noqa: A001
    """``max(x)`` over ``axis`` (the identity is the dtype's lowest value, -inf for floats)."""
    return reduce("max", x, te.max, axis, keepdims, name)


def min(x: Tensor, axis: Any = None, keepdims: bool = False, name: str | None = None) -> Tensor:  # noqa: A001
    """``min(x)`` over ``axis`` (the identity is the dtype's highest value, +inf for floats)."""
    return reduce("min", x, te.min, axis, keepdims, name)


def mean(x: Tensor, axis: Any = None, keepdims: bool = False, name: str | None = None) -> Tensor:
    """``sum(x) / count`` over ``axis``: a sum stage, then a division stage. Integer inputs are averaged in float64
    (as numpy does)."""
    check_tensor("mean", "x", x)
    axes = normalize_axes("mean", axis, x.ndim)
    count = shape_product([x.shape[a] for a in axes])
    atype = None if dt.is_float(x.dtype) else "float64"
    total = reduce("mean", x, te.sum, axes, keepdims, name=f"{x.name}_mean_sum", atype=atype)
    out_dtype = total.dtype

    def divide(*indices: Var) -> Expr:
        return total[indices] / te.cast(count, out_dtype)

    return te.compute(total.shape, divide, name=name or f"{x.name}_mean", tag=Tag.ELEMWISE)

