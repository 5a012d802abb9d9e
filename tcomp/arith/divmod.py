"""Rewrite rules for integer division and remainder (scalar), given simplified operands.

Floor semantics (``//``, ``%``), ``c`` a positive constant, ``x`` any integer expression:

- constants fold (Python semantics); a division or remainder by zero is never folded;
- ``x // 1 -> x``, ``x % 1 -> 0``, ``x % -1 -> 0``;
- ``(x // a) // b -> x // (a*b)`` and ``(x % a) % b -> x % b`` when ``b`` divides ``a`` (``a, b > 0``);
- common factor: ``(g*y) // (g*c) -> y // c`` and ``(g*y) % (g*c) -> g * (y % c)`` where ``g`` divides every
  coefficient, the constant and the divisor;
- split: with ``x = c*q + r`` (``q`` the terms whose coefficient ``c`` divides, ``r`` the rest, its constant reduced
  into ``[0, c)``): ``x // c -> q + r // c`` and ``x % c -> r % c``; when the bound of ``r`` lies in one period
  ``[k*c, k*c + c)``, ``r // c -> k`` and ``r % c -> r - k*c``. This gives ``(o*4 + i) // 4 -> o``,
  ``(o*4 + i) % 4 -> i`` for ``i`` in ``[0, 3]``, and ``x // c -> 0``, ``x % c -> x`` for ``0 <= x < c``;
- coarser period: with ``r = c1*x + y``, ``c1 > 1`` dividing ``c`` and ``y`` in ``[0, c1)``: ``r // c -> x // (c/c1)``
  and ``r % c -> c1 * (x % (c/c1)) + y`` (``(k*17 + o) // 68 -> k // 4`` for ``o`` in ``[0, 16]``);
- a symbolic divisor ``b >= 1`` that is one monomial (``n``, ``n*4``): ``(b*q + r) // b -> q + r // b`` and
  ``(b*q + r) % b -> r % b``, with ``r // b`` folding to 0 or -1 (``r % b`` to ``r`` or ``r + b``) when the bound of
  ``r`` lies in ``[0, min(b))`` or ``[-min(b), 0)``, or ``r >= 0`` lies below ``b`` with its clamps at their limits
  (``(min(j, n - 1)*768 + c) // (n*768) -> 0`` for ``c`` in ``[0, 767]``);
- any divisor ``b > 0``: ``x // b -> 0`` and ``x % b -> x`` when ``0 <= x < min(b)``; this and constant folding
  are the only rules for types that wrap (unsigned, narrower than 32 bits) and for negative constant divisors,
  except ``truncmod(x, -c) -> truncmod(x, c)``.

Truncating (C) ``Div``/``Mod``: constants fold with C semantics; an exact division (every coefficient and the constant
divisible by ``c``) folds for any sign; otherwise, when the dividend is provably ``>= 0`` and ``c > 0``, the floor
rules apply (floor and truncation agree there) and a remaining top-level ``//`` turns back into truncation.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from tcomp.arith import dtypes as dt
from tcomp.arith.canonical import Linear, add_terms, int_const
from tcomp.arith.fold import trunc_div
from tcomp.arith.keys import ExprKeys
from tcomp.ir import expr as E

if TYPE_CHECKING:
    from tcomp.arith.rewrite import Simplifier


def _coeff_gcd(lin: Linear, c: int) -> int:
    g = c
    for term in lin.terms.values():
        g = math.gcd(g, term.coeff)
        if g == 1:
            return 1
    return math.gcd(g, lin.const)


def _divide(lin: Linear, g: int) -> Linear:
    terms = {key: type(t)(t.atoms, t.coeff // g) for key, t in lin.terms.items()}
    return Linear(lin.dtype, terms, lin.const // g)


def split_multiples(lin: Linear, c: int) -> tuple[Linear, Linear]:
    """``lin = c*quotient + rest``, with ``rest``'s coefficients not divisible by ``c`` and its constant in [0, c)."""
    quotient = Linear(lin.dtype, {}, lin.const // c)
    rest = Linear(lin.dtype, {}, lin.const % c)
    for key, term in lin.terms.items():
        if term.coeff % c == 0:
            quotient.terms[key] = type(term)(term.atoms, term.coeff // c)
        else:
            rest.terms[key] = term
    return quotient, rest


def one_period(s: Simplifier, rest: Linear, c: int) -> int | None:
    lo, hi = s.lin_bound(rest)
    if math.isinf(lo) or math.isinf(hi):
        return None
    if lo // c == hi // c:
        return int(lo // c)
    return None


def coarser_period(s: Simplifier, rest: Linear, c: int) -> tuple[int, Linear, Linear] | None:
    """``(c1, x, y)`` with ``rest = c1*x + y``, ``c1 > 1`` dividing ``c`` and ``y`` in ``[0, c1)``, or None: then
    ``rest // c = x // (c / c1)`` and ``rest % c = c1 * (x % (c / c1)) + y`` (a tile of ``c1`` channels inside a
    group of ``c``: ``(k*17 + o) // 68 -> k // 4`` for ``o`` in ``[0, 17)``)."""
    for c1 in sorted({t.coeff for t in rest.terms.values() if 1 < t.coeff < c and c % t.coeff == 0}, reverse=True):
        x, y = split_multiples(rest, c1)
        if not x.terms:
            continue
        lo, hi = s.lin_bound(y)
        if 0 <= lo and hi < c1:
            return c1, x, y
    return None


def _small_dividend(s: Simplifier, a: E.Expr, b: E.Expr, is_div: bool) -> E.Expr | None:
    ba, bb = s.bound(a), s.bound(b)
    if bb[0] > 0 and ba[0] >= 0 and ba[1] < bb[0]:
        return int_const(0, a.dtype) if is_div else a
    return None


def _remove_atoms(atoms: tuple[E.Expr, ...], factor: tuple[E.Expr, ...], keys: ExprKeys) -> tuple[E.Expr, ...] | None:
    """``atoms`` without one occurrence of each atom of ``factor`` (by key), or None when some is missing."""
    remaining = list(atoms)
    for atom in factor:
        key = keys.key(atom)
        for index, candidate in enumerate(remaining):
            if keys.key(candidate) == key:
                del remaining[index]
                break
        else:
            return None
    return tuple(remaining)


def _symbolic_divisor(s: Simplifier, a: E.Expr, b: E.Expr, is_div: bool) -> E.Expr | None:
    """``(b*q + r) // b -> q + r // b`` and ``(b*q + r) % b -> r % b`` for a divisor ``b >= 1`` that is one
    monomial; then ``r // b`` is 0 (or -1) and ``r % b`` is ``r`` (or ``r + b``) when ``r`` lies in ``[0, min(b))``
    (or in ``[-min(b), 0)``)."""
    lo_b = s.bound(b)[0]
    divisor = s.lin.of(b)
    if lo_b < 1 or not dt.is_index(a.dtype) or divisor.const != 0 or len(divisor.terms) != 1:
        return _small_dividend(s, a, b, is_div)
    (factor,) = divisor.terms.values()
    lin = s.lin.of(a)
    quotient = Linear(a.dtype, {}, 0)
    rest = Linear(a.dtype, {}, lin.const)
    for key, term in lin.terms.items():
        reduced = _remove_atoms(term.atoms, factor.atoms, s.keys)
        if reduced is None or term.coeff % factor.coeff != 0:
            rest.terms[key] = term
        elif reduced:
            add_terms(quotient.terms, s.lin.monomial(reduced, term.coeff // factor.coeff, a.dtype), 1)
        else:
            quotient.const += term.coeff // factor.coeff
    lo, hi = s.lin_bound(rest)
    rest_expr = s.lin.to_expr(rest)
    if 0 <= lo and (hi < lo_b or _below(s, rest, divisor)):
        shift = 0
    elif -lo_b <= lo and hi < 0:
        shift = -1
    elif not quotient.terms and quotient.const == 0:
        return None
    else:
        inner = (E.FloorDiv if is_div else E.FloorMod)(rest_expr, b, a.dtype)
        return s.lin.to_expr(s.lin.add(quotient, s.lin.atom(inner))) if is_div else inner
    if is_div:
        quotient.const += shift
        return s.lin.to_expr(quotient)
    return rest_expr if shift == 0 else s.visit(E.Add(rest_expr, b, a.dtype))


MAX_CLAMPS = 3  # the clamped atoms ``_below`` tries each operand of (2^3 combinations at most)


def _below(s: Simplifier, rest: Linear, divisor: Linear) -> bool:
    """Whether ``rest < divisor`` for every value, the bound of ``divisor - 1 - rest`` taken with each ``min(x, y)``
    of ``rest`` (a positive coefficient) at one of its operands, which bounds it above: a clamped index
    ``min(j, n - 1)*768 + c`` (``c`` in ``[0, 767]``) lies below ``n*768``."""
    clamps = [(key, term) for key, term in rest.terms.items()
              if term.coeff > 0 and len(term.atoms) == 1 and isinstance(term.atoms[0], E.Min)]
    if not clamps or len(clamps) > MAX_CLAMPS:
        return False
    others = Linear(rest.dtype, {k: t for k, t in rest.terms.items() if all(k != key for key, _ in clamps)},
                    rest.const)
    gap = s.lin.add(s.lin.add(divisor, s.lin.const(-1, rest.dtype)), others, -1)
    choices = [[(term.coeff, operand) for operand in (term.atoms[0].a, term.atoms[0].b)] for _, term in clamps]

    def search(index: int, form: Linear) -> bool:
        if index == len(choices):
            return s.lin_bound(form)[0] >= 0
        return any(search(index + 1, s.lin.add(form, s.lin.scale(s.lin.of(operand), coeff), -1))
                   for coeff, operand in choices[index])

    return search(0, gap)


def floordiv(s: Simplifier, a: E.Expr, b: E.Expr) -> E.Expr | None:
    """Simplified ``a // b`` or ``None`` to keep ``FloorDiv(a, b)``."""
    dtype = a.dtype
    if not isinstance(b, E.IntImm):
        return _symbolic_divisor(s, a, b, True)
    c = b.value
    if c == 0:
        return None
    if isinstance(a, E.IntImm):
        return int_const(a.value // c, dtype)
    if c == 1:
        return a
    if c < 0 or not dt.is_index(dtype):
        return _small_dividend(s, a, b, True)
    if isinstance(a, E.FloorDiv) and isinstance(a.b, E.IntImm) and a.b.value > 0:
        return s.visit(E.FloorDiv(a.a, int_const(a.b.value * c, dtype), dtype))
    lin = s.lin.of(a)
    g = _coeff_gcd(lin, c)
    if g > 1:
        lin, c = _divide(lin, g), c // g
        if c == 1:
            return s.lin.to_expr(lin)
    quotient, rest = split_multiples(lin, c)
    k = one_period(s, rest, c)
    if k is not None:
        quotient.const += k
        return s.lin.to_expr(quotient)
    coarser = coarser_period(s, rest, c)
    if coarser is not None:
        c1, x, _ = coarser
        inner_div = s.visit(E.FloorDiv(s.lin.to_expr(x), int_const(c // c1, dtype), dtype))
        return s.lin.to_expr(s.lin.add(quotient, s.lin.of(inner_div)))
    if g == 1 and not quotient.terms and quotient.const == 0:
        return None
    inner = E.FloorDiv(s.lin.to_expr(rest), int_const(c, dtype), dtype)
    return s.lin.to_expr(s.lin.add(quotient, s.lin.atom(inner)))


def floormod(s: Simplifier, a: E.Expr, b: E.Expr) -> E.Expr | None:
    """Simplified ``a % b`` or ``None`` to keep ``FloorMod(a, b)``."""
    dtype = a.dtype
    if not isinstance(b, E.IntImm):
        return _symbolic_divisor(s, a, b, False)
    c = b.value
    if c == 0:
        return None
    if isinstance(a, E.IntImm):
        return int_const(a.value % c, dtype)
    if c in (1, -1):
        return int_const(0, dtype)
    if c < 0 or not dt.is_index(dtype):
        return _small_dividend(s, a, b, False)
    if isinstance(a, E.FloorMod) and isinstance(a.b, E.IntImm) and a.b.value > 0 and a.b.value % c == 0:
        return s.visit(E.FloorMod(a.a, b, dtype))
    lin = s.lin.of(a)
    g = _coeff_gcd(lin, c)
    if g > 1:
        lin, c = _divide(lin, g), c // g
    _, rest = split_multiples(lin, c)
    k = one_period(s, rest, c)
    if k is not None:
        rest.const -= k * c
        return s.lin.to_expr(s.lin.scale(rest, g))
    coarser = coarser_period(s, rest, c)
    if coarser is not None:
        c1, x, y = coarser
        inner_mod = s.visit(E.FloorMod(s.lin.to_expr(x), int_const(c // c1, dtype), dtype))
        return s.lin.to_expr(s.lin.scale(s.lin.add(s.lin.scale(s.lin.of(inner_mod), c1), y), g))
    if g == 1 and len(rest.terms) == len(lin.terms) and rest.const == lin.const:
        return None
    inner = E.FloorMod(s.lin.to_expr(rest), int_const(c, dtype), dtype)
    return s.lin.to_expr(s.lin.scale(s.lin.atom(inner), g))


def truncdiv(s: Simplifier, a: E.Expr, b: E.Expr) -> E.Expr | None:
    """Simplified C division ``a / b`` or ``None`` to keep ``Div(a, b)``."""
    dtype = a.dtype
    if not isinstance(b, E.IntImm):
        return _small_dividend(s, a, b, True)
    c = b.value
    if c == 0:
        return None
    if isinstance(a, E.IntImm):
        return int_const(trunc_div(a.value, c), dtype)
    if c == 1:
        return a
    if not dt.is_index(dtype):
        return _small_dividend(s, a, b, True)
    lin = s.lin.of(a)
    if _coeff_gcd(lin, abs(c)) == abs(c):
        return s.lin.to_expr(s.lin.scale(_divide(lin, abs(c)), 1 if c > 0 else -1))
    if c < 0 or s.bound(a)[0] < 0:
        return None
    result = floordiv(s, a, b)
    if isinstance(result, E.FloorDiv) and isinstance(result.b, E.IntImm) and s.bound(result.a)[0] >= 0:
        return E.Div(result.a, result.b, dtype)
    return result


def truncmod(s: Simplifier, a: E.Expr, b: E.Expr) -> E.Expr | None:
    """Simplified C remainder ``a % b`` or ``None`` to keep ``Mod(a, b)``."""
    dtype = a.dtype
    if not isinstance(b, E.IntImm):
        return _small_dividend(s, a, b, False)
    c = b.value
    if c == 0:
        return None
    if isinstance(a, E.IntImm):
        return int_const(a.value - trunc_div(a.value, c) * c, dtype)
    if c in (1, -1):
        return int_const(0, dtype)
    if not dt.is_index(dtype):
        return _small_dividend(s, a, b, False)
    if c < 0:  # the C remainder takes the dividend's sign: x % -c == x % c
        return s.visit(E.Mod(a, int_const(-c, dtype), dtype))
    lin = s.lin.of(a)
    if _coeff_gcd(lin, abs(c)) == abs(c):
        return int_const(0, dtype)
    if c < 0 or s.bound(a)[0] < 0:
        return None
    result = floormod(s, a, b)
    if isinstance(result, E.FloorMod) and isinstance(result.b, E.IntImm) and s.bound(result.a)[0] >= 0:
        return E.Mod(result.a, result.b, dtype)
    return result
