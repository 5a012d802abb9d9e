"""Rewrite rules for vector expressions built from ``Ramp`` and ``Broadcast`` (operands already simplified).

- ``Broadcast(x, n) op Broadcast(y, n) -> Broadcast(x op y, n)`` for every binary operator (comparisons included);
- ``Ramp(b, s, n) + Broadcast(x, n) -> Ramp(b + x, s, n)`` (either order), ``Ramp + Ramp -> Ramp(b1 + b2, s1 + s2)``,
  and the same for ``-`` (``Broadcast(x) - Ramp(b, s) -> Ramp(x - b, -s)``);
- ``Ramp(b, s, n) * Broadcast(x, n) -> Ramp(b*x, s*x, n)`` (either order);
- ``Ramp(b, s, n) // Broadcast(c)`` and ``% Broadcast(c)`` for a positive constant ``c`` and a constant stride
  ``s >= 0``: with ``b = c*q + r`` (as in ``divmod``), when every lane ``r + s*i`` stays in one period
  ``[k*c, k*c + c)``, the quotient is ``Broadcast(q + k)`` and the remainder ``Ramp(r - k*c, s, n)``;
- ``Ramp(b, 0, n) -> Broadcast(b, n)`` (in the simplifier's ``Ramp`` visitor).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from tcomp.arith import dtypes as dt
from tcomp.arith.canonical import int_const
from tcomp.arith.divmod import split_multiples
from tcomp.arith.int_bound import add_bounds
from tcomp.ir import expr as E

if TYPE_CHECKING:
    from tcomp.arith.rewrite import Simplifier


def _ramp(s: Simplifier, base: E.Expr, stride: E.Expr, lanes: int) -> E.Expr:
    return s.visit(E.Ramp(base, stride, lanes, dt.with_lanes(base.dtype, lanes)))


def vector_binary(s: Simplifier, cls: type[E.BinaryOp], a: E.Expr, b: E.Expr, dtype: str) -> E.Expr | None:
    """Apply the vector rules to ``cls(a, b)``; ``None`` when none applies."""
    if isinstance(a, E.Broadcast) and isinstance(b, E.Broadcast) and a.lanes == b.lanes:
        element = dt.element(dtype)
        scalar = s.visit(cls(a.value, b.value, element))
        return E.Broadcast(scalar, a.lanes, dtype)
    if not dt.is_int(dtype):
        return None
    ramp_a, ramp_b = isinstance(a, E.Ramp), isinstance(b, E.Ramp)
    if cls is E.Add or cls is E.Sub:
        sign_add = cls is E.Add
        if ramp_a and isinstance(b, E.Broadcast):
            assert isinstance(a, E.Ramp)
            return _ramp(s, s.visit(cls(a.base, b.value, a.base.dtype)), a.stride, a.lanes)
        if isinstance(a, E.Broadcast) and ramp_b:
            assert isinstance(b, E.Ramp)
            base = s.visit(cls(a.value, b.base, b.base.dtype))
            stride = b.stride if sign_add else s.visit(E.Sub(int_const(0, b.stride.dtype), b.stride, b.stride.dtype))
            return _ramp(s, base, stride, b.lanes)
        if ramp_a and ramp_b:
            assert isinstance(a, E.Ramp) and isinstance(b, E.Ramp)
            base = s.visit(cls(a.base, b.base, a.base.dtype))
            stride = s.visit(cls(a.stride, b.stride, a.stride.dtype))
            return _ramp(s, base, stride, a.lanes)
        return None
    if cls is E.Mul:
        if ramp_a and isinstance(b, E.Broadcast):
            assert isinstance(a, E.Ramp)
            ramp, factor = a, b.value
        elif ramp_b and isinstance(a, E.Broadcast):
            assert isinstance(b, E.Ramp)
            ramp, factor = b, a.value
        else:
            return None
        base = s.visit(E.Mul(ramp.base, factor, ramp.base.dtype))
        stride = s.visit(E.Mul(ramp.stride, factor, ramp.stride.dtype))
        return _ramp(s, base, stride, ramp.lanes)
    if (cls is E.FloorDiv or cls is E.FloorMod) and ramp_a and isinstance(b, E.Broadcast):
        assert isinstance(a, E.Ramp)
        return _ramp_divmod(s, cls is E.FloorDiv, a, b)
    return None


def _ramp_divmod(s: Simplifier, is_div: bool, ramp: E.Ramp, divisor: E.Broadcast) -> E.Expr | None:
    if not isinstance(divisor.value, E.IntImm) or not isinstance(ramp.stride, E.IntImm):
        return None
    c, stride = divisor.value.value, ramp.stride.value
    if c <= 0 or stride < 0:
        return None
    quotient, rest = split_multiples(s.lin.of(ramp.base), c)
    lo, hi = add_bounds(s.lin_bound(rest), (0, stride * (ramp.lanes - 1)))
    if math.isinf(lo) or math.isinf(hi) or lo // c != hi // c:
        return None
    k = int(lo // c)
    if is_div:
        quotient.const += k
        return E.Broadcast(s.lin.to_expr(quotient), ramp.lanes, ramp.dtype)
    rest.const -= k * c
    return _ramp(s, s.lin.to_expr(rest), ramp.stride, ramp.lanes)
