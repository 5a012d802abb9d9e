"""Rewrite rules for ``min``/``max``, integer comparisons and ``&&``/``||`` (operands already simplified).

- ``min``/``max``: decided by the operands' bounds or, for index integers, by the bound of their difference (so
  ``min(x + 1, x + 3) -> x + 1``); nested constants merge (``min(min(x, 4), 2) -> min(x, 2)``); operands are
  ordered (by name, constants second) so that ``min(y, x)`` and ``min(x, y)`` are the same expression;
- index-integer comparisons: the bound of ``a - b`` decides them; otherwise they are rewritten to a canonical
  ``lhs < rhs``, ``lhs == rhs`` or ``lhs != rhs`` (``a > b -> b < a``, ``a <= b -> a < b + 1``): positive terms
  left, negative terms right, the constant alone on a side without terms or else where it is positive
  (``x >= -2 -> -3 < x``, ``y < x - 4 -> y + 4 < x``), a common factor of the coefficients divided out
  (``x*4 < 8 -> x < 2``), and ``g*q + r < 0 -> q + k < 0`` when ``r`` stays in ``[k*g, k*g + g)``
  (``i*4 + j < n*4 -> i < n`` for ``j`` in ``[0, 3]``); comparisons of wrapping types (narrow, unsigned) are only
  decided from their operands' bounds;
- ``&&``/``||`` with a constant operand, ``x && x -> x``; two constant limits on one expression merge
  (``x < 4 && x < 6 -> x < 4``, ``x < 2 && 5 < x -> false``, ``x < 4 || 2 < x -> true``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from tcomp.arith import divmod as dm
from tcomp.arith import dtypes as dt
from tcomp.arith.canonical import Linear, int_const
from tcomp.arith.int_bound import compare_bound
from tcomp.arith.keys import same_tree
from tcomp.ir import expr as E

if TYPE_CHECKING:
    from tcomp.arith.rewrite import Simplifier

_FLIP = {E.GT: E.LT, E.GE: E.LE, E.LT: E.LT, E.LE: E.LE, E.EQ: E.EQ, E.NE: E.NE}


def minmax(s: Simplifier, cls: type[E.BinaryOp], a: E.Expr, b: E.Expr) -> E.Expr | None:
    is_min = cls is E.Min
    ba, bb = s.bound(a), s.bound(b)
    if ba[1] <= bb[0]:
        return a if is_min else b
    if bb[1] <= ba[0]:
        return b if is_min else a
    if dt.is_index(a.dtype):
        lo, hi = s.lin_bound(s.lin.merge_divmod(s.lin.add(s.lin.of(a), s.lin.of(b), -1)))
        if hi <= 0:
            return a if is_min else b
        if lo >= 0:
            return b if is_min else a
    if isinstance(a, E.IntImm) or (not isinstance(b, E.IntImm) and s.keys.order_key(b) < s.keys.order_key(a)):
        a, b = b, a
    if isinstance(b, E.IntImm) and type(a) is cls:
        assert isinstance(a, E.BinaryOp)
        if isinstance(a.b, E.IntImm):
            inner = min(a.b.value, b.value) if is_min else max(a.b.value, b.value)
            return cls(a.a, int_const(inner, b.dtype), a.dtype)
    return cls(a, b, a.dtype)


def compare(s: Simplifier, cls: type[E.BinaryOp], a: E.Expr, b: E.Expr) -> E.Expr | None:
    lin = s.lin
    diff = lin.merge_divmod(lin.add(lin.of(a), lin.of(b), -1))
    decided = compare_bound(cls, s.lin_bound(diff), (0, 0))
    if decided[0] == decided[1]:
        return E.IntImm(int(decided[0]), "bool")
    if cls is E.GT or cls is E.GE:
        diff = lin.scale(diff, -1)  # a > b  <=>  b - a < 0
    op = _FLIP[cls]
    if op is E.LE:  # integers: d <= 0  <=>  d - 1 < 0
        diff, op = lin.add(diff, lin.const(-1, diff.dtype)), E.LT
    if op is E.LT:
        split = _split_compare(s, diff)
        if split is not None:
            diff = split
    g = 0
    for term in diff.terms.values():
        g = math.gcd(g, term.coeff)
    const = diff.const
    if g > 1:
        if op is E.LT:  # g*S + c < 0  <=>  S <= floor((-c - 1) / g)
            const = -((-const - 1) // g) - 1
        elif const % g != 0:
            return E.IntImm(int(op is E.NE), "bool")
        else:
            const //= g
        diff = Linear(diff.dtype, {k: type(t)(t.atoms, t.coeff // g) for k, t in diff.terms.items()}, const)
    if op is not E.LT and all(t.coeff < 0 for t in diff.terms.values()):
        diff = lin.scale(diff, -1)  # x == 1, not 1 == x
        const = diff.const
    left = Linear(diff.dtype, {k: t for k, t in diff.terms.items() if t.coeff > 0}, 0)
    right = Linear(diff.dtype, {}, 0)
    for key, term in diff.terms.items():
        if term.coeff < 0:
            right.terms[key] = type(term)(term.atoms, -term.coeff)
    if not left.terms or (right.terms and const > 0):
        left.const = const  # -3 < x, x + 4 < y
    else:
        right.const = -const  # x < 4, x < y + 4
    return op(lin.to_expr(left), lin.to_expr(right), "bool")


def _split_compare(s: Simplifier, diff: Linear) -> Linear | None:
    """For ``diff < 0``: with ``diff = g*q + r`` and ``r`` in ``[k*g, k*g + g)``, ``diff < 0 <=> q + k < 0``."""
    factors = sorted({abs(t.coeff) for t in diff.terms.values() if abs(t.coeff) > 1}, reverse=True)
    for g in factors[:3]:
        quotient, rest = dm.split_multiples(diff, g)
        if not rest.terms or not quotient.terms:
            continue
        k = dm.one_period(s, rest, g)
        if k is not None:
            quotient.const += k
            return quotient
    return None


def logic(
    s: Simplifier, cls: type[E.BinaryOp], a: E.Expr, b: E.Expr, x: int | float | None, y: int | float | None
) -> E.Expr | None:
    absorbing = 0 if cls is E.And else 1
    for value, this, other in ((x, a, b), (y, b, a)):
        if value is None:
            continue
        if bool(value) == bool(absorbing):
            return this
        return other
    if s.keys.equal(a, b):
        return a
    return _merge_bounds(cls is E.And, a, b)


# -- other operators ------------------------------------------------------------------------------------------


def _as_limit(e: E.Expr) -> tuple[E.Expr, int, bool] | None:
    """``x < c`` / ``x <= c`` as ``(x, c', True)`` meaning ``x < c'``; ``c < x`` / ``c <= x`` as ``(x, c', False)``
    meaning ``x > c'`` (index integers only)."""
    if not isinstance(e, (E.LT, E.LE)) or not dt.is_index(e.a.dtype):
        return None
    inclusive = 1 if isinstance(e, E.LE) else 0
    if isinstance(e.b, E.IntImm) and not isinstance(e.a, E.IntImm):
        return e.a, e.b.value + inclusive, True
    if isinstance(e.a, E.IntImm) and not isinstance(e.b, E.IntImm):
        return e.b, e.a.value - inclusive, False
    return None


def _merge_bounds(is_and: bool, a: E.Expr, b: E.Expr) -> E.Expr | None:
    """Two constant limits on the same expression: ``x < 4 && x < 6 -> x < 4``, ``x < 4 || 2 < x -> true``..."""
    first, second = _as_limit(a), _as_limit(b)
    if first is None or second is None or not same_tree(first[0], second[0]):
        return None
    x, c1, upper1 = first
    _, c2, upper2 = second
    dtype = x.dtype
    if upper1 == upper2:
        keep_smaller = is_and == upper1
        c = min(c1, c2) if keep_smaller else max(c1, c2)
        if upper1:
            return E.LT(x, int_const(c, dtype), "bool")
        return E.LT(int_const(c, dtype), x, "bool")
    upper, lower = (c1, c2) if upper1 else (c2, c1)  # x < upper, x > lower
    if is_and and upper <= lower + 1:
        return E.IntImm(0, "bool")
    if not is_and and lower < upper:
        return E.IntImm(1, "bool")
    return None
