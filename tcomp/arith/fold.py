"""Binary operators on Python numbers with the loop IR's semantics: the one constant-folding table.

``fold_binary(Add, 7, -2, is_float=False)`` is ``5``. Integer ``Div`` / ``Mod`` truncate toward zero (C's ``/`` and
``%``, ``trunc_div``), ``FloorDiv`` / ``FloorMod`` round toward minus infinity; on floats they are ``x / y``,
``fmod``, ``floor(x / y)`` and ``x - y * floor(x / y)``. Float ``Min`` / ``Max`` give NaN if an operand is NaN
(IEEE 754-2019 ``minimum`` / ``maximum``, as the generated code computes them). Comparisons and ``And`` / ``Or``
give booleans. The interpreter (``evaluate.py``) and the simplifier's constant folding (``rewrite.py``) both use
this table, so folding an expression and evaluating it cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from tcomp.ir import expr as E

DIVISIONS = (E.Div, E.Mod, E.FloorDiv, E.FloorMod)


def trunc_div(x: int, y: int) -> int:
    """``x / y`` rounded toward zero, as C divides integers."""
    q = abs(x) // abs(y)
    return q if (x >= 0) == (y > 0) else -q


def _floor_div(x: Any, y: Any, is_float: bool) -> Any:
    return math.floor(x / y) if is_float else x // y


def _floor_mod(x: Any, y: Any, is_float: bool) -> Any:
    return x - y * math.floor(x / y) if is_float else x % y


def _div(x: Any, y: Any, is_float: bool) -> Any:
    return x / y if is_float else trunc_div(x, y)


def _mod(x: Any, y: Any, is_float: bool) -> Any:
    return math.fmod(x, y) if is_float else x - trunc_div(x, y) * y


def _min(x: Any, y: Any, is_float: bool) -> Any:
    return math.nan if is_float and (math.isnan(x) or math.isnan(y)) else min(x, y)


def _max(x: Any, y: Any, is_float: bool) -> Any:
    return math.nan if is_float and (math.isnan(x) or math.isnan(y)) else max(x, y)


_RULES: dict[type, Callable[[Any, Any, bool], Any]] = {
    E.Add: lambda x, y, _: x + y,
    E.Sub: lambda x, y, _: x - y,
    E.Mul: lambda x, y, _: x * y,
    E.FloorDiv: _floor_div,
    E.FloorMod: _floor_mod,
    E.Div: _div,
    E.Mod: _mod,
    E.Min: _min,
    E.Max: _max,
    E.And: lambda x, y, _: bool(x) and bool(y),
    E.Or: lambda x, y, _: bool(x) or bool(y),
    E.LT: lambda x, y, _: x < y,
    E.LE: lambda x, y, _: x <= y,
    E.GT: lambda x, y, _: x > y,
    E.GE: lambda x, y, _: x >= y,
    E.EQ: lambda x, y, _: x == y,
    E.NE: lambda x, y, _: x != y,
}


def fold_binary(cls: type[E.BinaryOp], x: Any, y: Any, is_float: bool) -> int | float | bool | None:
    """``x op y`` for the operator class ``cls``; ``None`` for a division by zero or an operator it does not know."""
    if cls in DIVISIONS and y == 0:
        return None
    rule = _RULES.get(cls)
    return rule(x, y, is_float) if rule is not None else None
