"""A small reference evaluator of expressions over Python numbers: the semantics the simplifier must preserve.

Integers are mathematical (no overflow); ``//`` and ``%`` are floor division and remainder, integer ``Div``/``Mod``
truncate toward zero (C), float ``min``/``max`` propagate NaN (IEEE 754-2019 ``minimum``/``maximum``), comparisons
and logic give ``bool``, ``Select`` evaluates the chosen branch, casts to integer types truncate floats and wrap to
the target width. Vector expressions evaluate to tuples, one value per lane. Loads, calls and reductions are not
evaluable: ``EvaluationError`` is raised, as it is for a division by zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tcomp.arith import dtypes as dt
from tcomp.arith.canonical import wrap_int
from tcomp.arith.fold import DIVISIONS, fold_binary
from tcomp.ir import expr as E

Value = Any  # int | float | bool, or a tuple of those for vectors


class EvaluationError(ValueError):
    """The expression has no value: a division by zero, an unbound variable or an unsupported node."""


def _scalar_binary(cls: type, x: Any, y: Any, is_float: bool) -> Any:
    if cls in DIVISIONS and y == 0:
        raise EvaluationError("division by zero")
    value = fold_binary(cls, x, y, is_float)
    if value is None:
        raise EvaluationError(f"cannot evaluate operator {cls.__name__}")
    return value


def _lanes(value: Value, count: int) -> tuple[Any, ...]:
    return value if isinstance(value, tuple) else (value,) * count


def _cast(value: Any, dtype: str) -> Any:
    if dt.is_float(dtype):
        return float(value)
    if dt.is_bool(dtype):
        return bool(value)
    return wrap_int(int(value), dtype)


def evaluate(e: E.Expr, env: Mapping[E.Var, Value] | None = None) -> Value:
    """The value of ``e`` with each free variable taking its value from ``env`` (keyed by the ``Var`` object)."""
    return _Evaluator(env or {}).eval(e)


class _Evaluator:
    def __init__(self, env: Mapping[E.Var, Value]) -> None:
        self.env = dict(env)

    def eval(self, e: E.Expr) -> Value:
        if isinstance(e, E.IntImm):
            return bool(e.value) if dt.is_bool(e.dtype) else e.value
        if isinstance(e, E.FloatImm):
            return e.value
        if isinstance(e, E.Var):
            if e not in self.env:
                raise EvaluationError(f"variable {e.name} has no value")
            return self.env[e]
        if isinstance(e, E.BinaryOp):
            a, b = self.eval(e.a), self.eval(e.b)
            is_float = dt.is_float(e.a.dtype)
            count = dt.lanes(e.dtype)
            if count == 1:
                return _scalar_binary(type(e), a, b, is_float)
            pairs = zip(_lanes(a, count), _lanes(b, count))
            return tuple(_scalar_binary(type(e), x, y, is_float) for x, y in pairs)
        if isinstance(e, E.Not):
            value = self.eval(e.a)
            return tuple(not x for x in value) if isinstance(value, tuple) else not value
        if isinstance(e, E.Select):
            cond = self.eval(e.condition)
            if isinstance(cond, tuple):
                t, f = self.eval(e.true_value), self.eval(e.false_value)
                count = len(cond)
                return tuple(x if c else y for c, x, y in zip(cond, _lanes(t, count), _lanes(f, count)))
            return self.eval(e.true_value if cond else e.false_value)
        if isinstance(e, E.Cast):
            value = self.eval(e.value)
            element = dt.element(e.dtype)
            if isinstance(value, tuple):
                return tuple(_cast(x, element) for x in value)
            return _cast(value, element)
        if isinstance(e, E.Broadcast):
            return (self.eval(e.value),) * e.lanes
        if isinstance(e, E.Ramp):
            base, stride = self.eval(e.base), self.eval(e.stride)
            return tuple(base + stride * i for i in range(e.lanes))
        if isinstance(e, E.Let):
            self.env[e.var] = self.eval(e.value)
            return self.eval(e.body)
        raise EvaluationError(f"cannot evaluate {type(e).__name__} nodes")
