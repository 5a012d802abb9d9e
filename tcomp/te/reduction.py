"""Reducers: ``sum``, ``max``, ``min`` and user-defined commutative reducers through ``comm_reducer``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tcomp.ir import dtype as dt
from tcomp.ir.expr import (
    CommReducer,
    Expr,
    IterKind,
    IterVar,
    Reduce,
    Var,
    _convert_pair,
    cast,
    convert,
    make_const,
    max_expr,
    min_expr,
)


class Reducer:
    """A callable reducer: ``reducer(expr, axis, where=None, init=None)`` builds a ``Reduce``."""

    def __init__(self, fcombine: Callable[[Expr, Expr], Expr], fidentity: Callable[[str], Expr], name: str) -> None:
        self.fcombine = fcombine
        self.fidentity = fidentity
        self.name = name

    def __call__(
        self,
        expr: Any,
        axis: IterVar | Sequence[IterVar],
        where: Any = None,
        init: Any = None,
    ) -> Expr:
        if not isinstance(axis, (IterVar, list, tuple)):
            # ``te.max(a, b)``: the combiner applied elementwise, as in TVM
            return convert(self.fcombine(*_unify_pair(expr, axis)))
        source = convert(expr)
        axes = (axis,) if isinstance(axis, IterVar) else tuple(axis)
        if not axes:
            raise ValueError(f"{self.name}: needs at least one reduction axis")
        for iv in axes:
            if not isinstance(iv, IterVar) or iv.kind is not IterKind.REDUCE:
                raise ValueError(f"{self.name}: axis {iv} is not a reduce_axis")
        dtype = source.dtype
        lhs, rhs = Var("x", dtype), Var("y", dtype)
        result = cast(convert(self.fcombine(lhs, rhs)), dtype)
        identity = cast(convert(self.fidentity(dtype)), dtype)
        combiner = CommReducer(self.name, lhs, rhs, result, identity)
        condition = None if where is None else convert(where)
        init_value = None if init is None else cast(convert(init), dtype)
        return Reduce(combiner, source, axes, condition, dtype, init_value)


def _unify_pair(a: Any, b: Any) -> tuple[Expr, Expr]:
    return _convert_pair(a, b)


def comm_reducer(
    fcombine: Callable[[Expr, Expr], Expr],
    fidentity: Callable[[str], Any],
    name: str = "reduce",
) -> Reducer:
    """A commutative reducer from ``fcombine(x, y)`` and ``fidentity(dtype)`` (the neutral element)."""
    return Reducer(fcombine, lambda dtype: convert(fidentity(dtype)), name)


def _zero(dtype: str) -> Expr:
    return make_const(0, dtype)


sum = Reducer(lambda x, y: x + y, _zero, "sum")  # noqa: A001
max = Reducer(max_expr, lambda dtype: make_const(dt.min_value(dtype), dtype), "max")  # noqa: A001
min = Reducer(min_expr, lambda dtype: make_const(dt.max_value(dtype), dtype), "min")  # noqa: A001
prod = Reducer(lambda x, y: x * y, lambda dtype: make_const(1, dtype), "prod")
