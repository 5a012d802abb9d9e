"""Symbolic interval analysis: the range of values an expression takes when some variables range over intervals.

``eval_interval(e, dom, bounds)`` returns an ``IntervalSet`` ``[min, max]`` (inclusive; ``None`` = unbounded) whose
ends are expressions over the variables *not* in ``dom``. First ``e`` is simplified with ``bounds`` extended by the
constant bounds of the variables in ``dom`` (so ``(o*4 + i) % 4`` with ``i`` in ``[0, 3]`` is already ``i``); then:

- constants and free variables are points; a variable of ``dom`` is its interval;
- ``a + b -> [a.min + b.min, a.max + b.max]``, ``a - b -> [a.min - b.max, a.max - b.min]``;
- ``a * b``: points multiply; a range times a point ``p`` of known sign keeps or swaps its ends (unknown sign: the
  ``min``/``max`` of both products); two ranges of known sign use the matching corners, else all four corners;
- ``a // c`` with a constant ``c != 0`` divides the ends (swapped when ``c < 0``); ``a % c`` with ``c > 0`` is the
  ends reduced by ``c`` when both ends provably fall in one period, else ``[0, c - 1]``; a symbolic divisor ``d``
  that is a point with ``d >= 1`` gives ``[a.min // d, a.max // d]`` and ``a % d`` in ``a`` (when ``0 <= a < d``)
  or ``[0, d - 1]``;
- truncating ``Div``/``Mod`` follow the floor rules when the dividend is provably ``>= 0``;
- ``min``/``max`` are monotone; ``select`` is the union of its branches; integer casts keep the ends when the
  values fit the target type; ``Broadcast`` is its value, ``Ramp`` spans its first and last lanes;
- comparisons are points when provably decided, else ``[false, true]``;
- anything else: a point when it uses no variable of ``dom``, else the constant bound of ``e`` (or unbounded).

Every end is simplified with ``bounds``; an unbounded end is replaced by a constant when the constant bound of ``e``
provides one. For ``dom = {i: [0, 3]}``, ``o*4 + i`` gives ``[o*4, o*4 + 3]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from tcomp.arith import dtypes as dt
from tcomp.arith.canonical import Linear, MonomialKey, Term, add_terms, int_const
from tcomp.arith.int_bound import Bounds, ConstIntBound
from tcomp.arith.keys import ExprKeys
from tcomp.arith.recursion import deep
from tcomp.arith.rewrite import Simplifier
from tcomp.ir import expr as E
from tcomp.ir.functor import children, uses_var


@dataclass(frozen=True, eq=False)
class IntervalSet:
    """The inclusive symbolic interval ``[min, max]``; ``None`` on a side means unbounded."""

    min: E.Expr | None
    max: E.Expr | None

    @staticmethod
    def point(e: E.ExprLike) -> IntervalSet:
        value = E.convert(e)
        return IntervalSet(value, value)

    @staticmethod
    def from_range(min: E.ExprLike, extent: E.ExprLike) -> IntervalSet:
        """``[min, min + extent - 1]``, simplified."""
        lo = E.convert(min)
        hi = Simplifier()(E.binary(E.Sub, E.binary(E.Add, lo, extent), 1))
        return IntervalSet(lo, hi)

    @staticmethod
    def everything() -> IntervalSet:
        return IntervalSet(None, None)

    def is_point(self) -> bool:
        if self.min is None or self.max is None:
            return False
        return self.min is self.max or ExprKeys().equal(self.min, self.max)

    def is_everything(self) -> bool:
        return self.min is None and self.max is None

    def union(self, other: IntervalSet) -> IntervalSet:
        """The smallest interval holding both, as ``[min(a.min, b.min), max(a.max, b.max)]`` simplified."""
        return _union(self, other, Simplifier())

    def __str__(self) -> str:
        lo = "-inf" if self.min is None else str(self.min)
        hi = "+inf" if self.max is None else str(self.max)
        return f"[{lo}, {hi}]"

    __repr__ = __str__


def _union(a: IntervalSet, b: IntervalSet, s: Simplifier) -> IntervalSet:
    lo = None if a.min is None or b.min is None else s(E.binary(E.Min, a.min, b.min))
    hi = None if a.max is None or b.max is None else s(E.binary(E.Max, a.max, b.max))
    return IntervalSet(lo, hi)


class _IntervalEval:
    def __init__(self, dom: Mapping[E.Var, IntervalSet], s: Simplifier) -> None:
        self.dom = dict(dom)
        self.s = s
        self._uses: dict[int, tuple[E.Expr, bool]] = {}

    def uses_dom(self, e: E.Expr) -> bool:
        """Whether ``e`` uses a variable of the domain (memoized by identity)."""
        hit = self._uses.get(id(e))
        if hit is not None:
            return hit[1]
        if isinstance(e, E.Var):
            result = e in self.dom
        elif isinstance(e, E.Reduce):
            result = uses_var(e, list(self.dom))
        else:
            result = any(self.uses_dom(child) for child in children(e) if isinstance(child, E.Expr))
        self._uses[id(e)] = (e, result)
        return result

    def simplify(self, e: E.Expr | None) -> E.Expr | None:
        return None if e is None else self.s(e)

    def make(self, lo: E.Expr | None, hi: E.Expr | None) -> IntervalSet:
        return IntervalSet(self.simplify(lo), self.simplify(hi))

    def sign(self, e: E.Expr) -> int | None:
        """1 when ``e >= 0``, -1 when ``e <= 0``, None when unknown."""
        lo, hi = self.s.bound(e)
        if lo >= 0:
            return 1
        if hi <= 0:
            return -1
        return None

    def eval(self, e: E.Expr) -> IntervalSet:
        if isinstance(e, (E.IntImm, E.FloatImm)):
            return IntervalSet.point(e)
        if isinstance(e, E.Var):
            return self.dom.get(e) or IntervalSet.point(e)
        if not self.uses_dom(e):
            return IntervalSet.point(e)
        result = self._eval(e)
        return self._clamp(e, result)

    def _clamp(self, e: E.Expr, result: IntervalSet) -> IntervalSet:
        if result.min is not None and result.max is not None:
            return result
        if dt.is_float(e.dtype) or dt.lanes(e.dtype) > 1:
            return result
        lo, hi = self.s.bound(e)
        scalar = e.dtype
        new_lo = result.min if result.min is not None or math.isinf(lo) else int_const(int(lo), scalar)
        new_hi = result.max if result.max is not None or math.isinf(hi) else int_const(int(hi), scalar)
        return IntervalSet(new_lo, new_hi)

    def _eval(self, e: E.Expr) -> IntervalSet:
        if isinstance(e, E.BinaryOp):
            return self._binary(e)
        if isinstance(e, E.Select):
            return _union(self.eval(e.true_value), self.eval(e.false_value), self.s)
        if isinstance(e, E.Cast):
            inner = self.eval(e.value)
            if not dt.is_float(e.dtype) and not dt.is_float(e.value.dtype) and not dt.is_bool(e.dtype):
                lo, hi = self.s.bound(e.value)
                if lo >= dt.min_value(e.dtype) and hi <= dt.max_value(e.dtype):
                    lo_e = None if inner.min is None else E.cast(inner.min, e.dtype)
                    hi_e = None if inner.max is None else E.cast(inner.max, e.dtype)
                    return self.make(lo_e, hi_e)
            return IntervalSet.everything()
        if isinstance(e, E.Broadcast):
            return self.eval(e.value)
        if isinstance(e, E.Ramp):
            last = E.binary(E.Add, e.base, E.binary(E.Mul, e.stride, e.lanes - 1))
            return _union(self.eval(e.base), self.eval(self.s(last)), self.s)
        if isinstance(e, E.Let):
            self.dom[e.var] = self.eval(e.value)
            self._uses.clear()
            return self.eval(e.body)
        return IntervalSet.everything()

    def _linear(self, e: E.BinaryOp) -> IntervalSet | None:
        """A sum of monomials, term by term (one pass, however long the sum): terms without a domain variable go to
        both ends unchanged; each other term contributes the end of its interval that its coefficient's sign picks."""
        lin = self.s.lin.of(e)
        single = next(iter(lin.terms.values())) if len(lin.terms) == 1 else None
        if single is not None and single.coeff == 1 and lin.const == 0 and single.atoms[-1] is e:
            return None  # a product kept whole (too large to expand): evaluate it as a binary node
        forms = self.s.lin
        low: dict[MonomialKey, Term] | None = {}
        high: dict[MonomialKey, Term] | None = {}
        const_lo = const_hi = lin.const
        for key, term in lin.terms.items():
            if not any(self.uses_dom(atom) for atom in term.atoms):
                fixed = Linear(e.dtype, {key: term}, 0)
                for side in (low, high):
                    if side is not None:
                        add_terms(side, fixed, 1)
                continue
            interval = self.eval(term.atoms[0])
            for atom in term.atoms[1:]:
                interval = self._mul(interval, self.eval(atom))
            ends = (interval.min, interval.max) if term.coeff > 0 else (interval.max, interval.min)
            if low is not None:
                if ends[0] is None:
                    low = None
                else:
                    part = forms.of(self.s(ends[0]))
                    const_lo += term.coeff * part.const
                    add_terms(low, part, term.coeff)
            if high is not None:
                if ends[1] is None:
                    high = None
                else:
                    part = forms.of(self.s(ends[1]))
                    const_hi += term.coeff * part.const
                    add_terms(high, part, term.coeff)
        lo = None if low is None else forms.to_expr(Linear(e.dtype, low, const_lo))
        hi = None if high is None else forms.to_expr(Linear(e.dtype, high, const_hi))
        return self.make(lo, hi)

    def _binary(self, e: E.BinaryOp) -> IntervalSet:
        cls = type(e)
        if cls in (E.Add, E.Sub, E.Mul) and dt.is_scalar_int(e.dtype):
            result = self._linear(e)
            if result is not None:
                return result
        if issubclass(cls, E.CmpOp) or cls is E.And or cls is E.Or:
            return self._boolean(e)
        a, b = self.eval(e.a), self.eval(e.b)
        if cls is E.Add:
            return self.make(_op(E.Add, a.min, b.min), _op(E.Add, a.max, b.max))
        if cls is E.Sub:
            return self.make(_op(E.Sub, a.min, b.max), _op(E.Sub, a.max, b.min))
        if cls is E.Mul:
            return self._mul(a, b)
        if cls in (E.FloorDiv, E.FloorMod, E.Div, E.Mod):
            return self._divmod(cls, e, a, b)
        if cls is E.Min:
            lo = _op(E.Min, a.min, b.min)
            hi = b.max if a.max is None else (a.max if b.max is None else E.binary(E.Min, a.max, b.max))
            return self.make(lo, hi)
        if cls is E.Max:
            lo = b.min if a.min is None else (a.min if b.min is None else E.binary(E.Max, a.min, b.min))
            return self.make(lo, _op(E.Max, a.max, b.max))
        return IntervalSet.everything()

    def _boolean(self, e: E.BinaryOp) -> IntervalSet:
        value = self.s(e)
        if isinstance(value, E.IntImm):
            return IntervalSet.point(value)
        if isinstance(e, E.CmpOp) and dt.is_int(e.a.dtype) and dt.lanes(e.a.dtype) == 1:
            a, b = self.eval(e.a), self.eval(e.b)
            decided = _decide(type(e), a, b, self.s)
            if decided is not None:
                return IntervalSet.point(E.IntImm(int(decided), "bool"))
        return IntervalSet(E.IntImm(0, "bool"), E.IntImm(1, "bool"))

    def _mul(self, a: IntervalSet, b: IntervalSet) -> IntervalSet:
        if a.is_point() and b.is_point():
            assert a.min is not None and b.min is not None
            return IntervalSet.point(self.s(E.binary(E.Mul, a.min, b.min)))
        if b.is_point():
            return self._scale(a, b.min)
        if a.is_point():
            return self._scale(b, a.min)
        if any(end is None for end in (a.min, a.max, b.min, b.max)):
            return IntervalSet.everything()
        assert a.min is not None and a.max is not None and b.min is not None and b.max is not None
        sa, sb = self.sign_of(a), self.sign_of(b)
        if sa == 1 and sb == 1:
            return self.make(E.binary(E.Mul, a.min, b.min), E.binary(E.Mul, a.max, b.max))
        corners = [E.binary(E.Mul, x, y) for x in (a.min, a.max) for y in (b.min, b.max)]
        lo, hi = corners[0], corners[0]
        for corner in corners[1:]:
            lo, hi = E.binary(E.Min, lo, corner), E.binary(E.Max, hi, corner)
        return self.make(lo, hi)

    def sign_of(self, x: IntervalSet) -> int | None:
        assert x.min is not None and x.max is not None
        if self.sign(x.min) == 1:
            return 1
        if self.sign(x.max) == -1:
            return -1
        return None

    def _scale(self, a: IntervalSet, p: E.Expr | None) -> IntervalSet:
        assert p is not None
        sign = self.sign(p)
        lo, hi = _op(E.Mul, a.min, p), _op(E.Mul, a.max, p)
        if sign == 1:
            return self.make(lo, hi)
        if sign == -1:
            return self.make(hi, lo)
        if lo is None or hi is None:
            return IntervalSet.everything()
        return self.make(E.binary(E.Min, lo, hi), E.binary(E.Max, lo, hi))

    def _divmod(self, cls: type, e: E.BinaryOp, a: IntervalSet, b: IntervalSet) -> IntervalSet:
        if a.is_point() and b.is_point():
            assert a.min is not None and b.min is not None
            return IntervalSet.point(self.s(cls(a.min, b.min, e.dtype)))
        if not isinstance(e.b, E.IntImm):
            return self._symbolic_divisor(cls, e, a, b)
        if e.b.value == 0:
            return IntervalSet.everything()
        c = e.b.value
        if cls in (E.Div, E.Mod):
            if c < 0 or a.min is None or self.sign(a.min) != 1:
                return IntervalSet.everything()
            cls = E.FloorDiv if cls is E.Div else E.FloorMod
        divisor = e.b
        if cls is E.FloorDiv:
            lo, hi = _op(E.FloorDiv, a.min, divisor), _op(E.FloorDiv, a.max, divisor)
            return self.make(lo, hi) if c > 0 else self.make(hi, lo)
        if c < 0:
            return IntervalSet(int_const(c + 1, e.dtype), int_const(0, e.dtype))
        if a.min is not None and a.max is not None:
            period = self.s(E.binary(E.Sub, E.binary(E.FloorDiv, a.max, c), E.binary(E.FloorDiv, a.min, c)))
            if isinstance(period, E.IntImm) and period.value == 0:
                return self.make(E.binary(E.FloorMod, a.min, c), E.binary(E.FloorMod, a.max, c))
        return IntervalSet(int_const(0, e.dtype), int_const(c - 1, e.dtype))

    def _symbolic_divisor(self, cls: type, e: E.BinaryOp, a: IntervalSet, b: IntervalSet) -> IntervalSet:
        """Division by a non-negative point ``d`` (positive, since a division by zero has no value):
        ``[a.min // d, a.max // d]``; ``a % d`` is ``a`` when ``0 <= a < d``, else ``[0, d - 1]``. Truncating forms
        need ``a >= 0``."""
        d = b.min
        if not b.is_point() or d is None or self.s.bound(d)[0] < 0:  # a zero divisor has no value: d >= 1
            return IntervalSet.everything()
        nonneg = a.min is not None and self.sign(a.min) == 1
        if cls in (E.Div, E.Mod) and not nonneg:
            return IntervalSet.everything()
        if cls in (E.FloorDiv, E.Div):
            return self.make(_op(E.FloorDiv, a.min, d), _op(E.FloorDiv, a.max, d))
        if nonneg and a.max is not None and _proves(self.s, E.LT, a.max, d):
            return self.make(a.min, a.max)
        return self.make(int_const(0, e.dtype), E.binary(E.Sub, d, 1))


def _proves(s: Simplifier, op: type[E.BinaryOp], x: E.Expr | None, y: E.Expr | None) -> bool:
    if x is None or y is None:
        return False
    value = s(E.binary(op, x, y))
    return isinstance(value, E.IntImm) and value.value == 1


def _op(cls: type[E.BinaryOp], a: E.Expr | None, b: E.Expr | None) -> E.Expr | None:
    if a is None or b is None:
        return None
    return E.binary(cls, a, b)


def _decide(cls: type, a: IntervalSet, b: IntervalSet, s: Simplifier) -> bool | None:
    """Decide ``a op b`` for every pair of values from the two intervals, when the ends allow it."""

    def proves(op: type[E.BinaryOp], x: E.Expr | None, y: E.Expr | None) -> bool:
        return _proves(s, op, x, y)

    if cls is E.LT or cls is E.GE:
        holds = proves(E.LT, a.max, b.min)
        fails = proves(E.GE, a.min, b.max)
    elif cls is E.LE or cls is E.GT:
        holds = proves(E.LE, a.max, b.min)
        fails = proves(E.GT, a.min, b.max)
    else:
        return None
    if cls is E.GE or cls is E.GT:
        holds, fails = fails, holds
    if holds:
        return True
    if fails:
        return False
    return None


def eval_interval(e: E.Expr, dom: Mapping[E.Var, IntervalSet], bounds: Bounds | None = None) -> IntervalSet:
    """The interval of values ``e`` takes when each variable of ``dom`` ranges over its interval."""
    return deep(lambda: _eval_interval(e, dom, bounds))


def _eval_interval(e: E.Expr, dom: Mapping[E.Var, IntervalSet], bounds: Bounds | None) -> IntervalSet:
    base = dict(bounds) if bounds is not None else {}
    extended: dict[E.Var, tuple[int, int]] = dict(base)
    outer = ConstIntBound(base)
    for var, interval in dom.items():
        lo = -math.inf if interval.min is None else outer(interval.min)[0]
        hi = math.inf if interval.max is None else outer(interval.max)[1]
        if not math.isinf(lo) or not math.isinf(hi):
            extended[var] = (lo, hi)  # type: ignore[assignment]
        else:
            extended.pop(var, None)  # the domain replaces whatever ``bounds`` said about the variable
    inner = Simplifier(extended)
    evaluator = _IntervalEval(dom, inner)
    result = evaluator.eval(inner(e))
    return IntervalSet(evaluator.simplify(result.min), evaluator.simplify(result.max))
