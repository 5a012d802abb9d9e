"""The public entry points of arithmetic analysis and the ``Analyzer`` that holds variable bounds.

``Bounds`` maps a ``Var`` (by identity) to its inclusive integer range ``(lo, hi)``. The free functions build a fresh
analysis per call; an ``Analyzer`` keeps one simplifier (and its memo tables) alive across calls until its bounds
change, which is what lowering wants when it simplifies thousands of indices under the same loop nest.
"""

from __future__ import annotations

from collections.abc import Mapping

from tcomp.arith import dtypes as dt
from tcomp.arith.int_bound import Bounds, to_public
from tcomp.arith.interval import IntervalSet, eval_interval
from tcomp.arith.recursion import deep as _deep
from tcomp.arith.rewrite import Simplifier, make_number
from tcomp.ir import expr as E
from tcomp.ir.functor import free_vars


def _const_int_bound(s: Simplifier, e: E.Expr) -> tuple[int | None, int | None]:
    lo, hi = s.bound(e)
    if lo != hi:
        simple_lo, simple_hi = s.bound(s(e))
        lo, hi = max(lo, simple_lo), min(hi, simple_hi)
    return to_public((lo, hi))


def _can_prove(s: Simplifier, cond: E.Expr) -> bool:
    value = s(cond)
    if isinstance(value, E.Broadcast):
        value = value.value
    return isinstance(value, E.IntImm) and value.value != 0


def simplify(e: E.Expr, bounds: Bounds | None = None) -> E.Expr:
    """An equivalent, canonically simplified expression of the same dtype (see ``rewrite.py`` for the rules)."""
    return _deep(lambda: Simplifier(bounds)(e))


def const_int_bound(e: E.Expr, bounds: Bounds | None = None) -> tuple[int | None, int | None]:
    """Inclusive constant bounds of an integer or bool expression; ``None`` is unknown on that side."""
    return _deep(lambda: _const_int_bound(Simplifier(bounds), e))


def can_prove(cond: E.Expr, bounds: Bounds | None = None) -> bool:
    """True only when ``cond`` holds for every value of the variables within ``bounds``."""
    return _deep(lambda: _can_prove(Simplifier(bounds), cond))


def declared_upper_bound(e: E.Expr) -> int | None:
    """The largest value of the integer expression ``e`` when each of its variables is a symbolic dimension in its
    declared range (``Var.declared_range``); None when unbounded."""
    return declared_bounds(e)[1]


def declared_bounds(e: E.Expr) -> tuple[int | None, int | None]:
    """The least and largest values of the integer expression ``e`` when each of its variables is a symbolic
    dimension in its declared range (``Var.declared_range``); None where unbounded."""
    bounds = {v: v.declared_range() for v in free_vars(e) if dt.is_scalar_int(v.dtype)}
    return const_int_bound(e, bounds)


class Analyzer:
    """Variable bounds plus a cached simplifier. ``bind`` a variable, then ask questions under those bounds."""

    def __init__(self, bounds: Bounds | None = None) -> None:
        self._bounds: dict[E.Var, tuple[int, int]] = dict(bounds) if bounds is not None else {}
        self._simplifier: Simplifier | None = None

    @property
    def bounds(self) -> Mapping[E.Var, tuple[int, int]]:
        return dict(self._bounds)

    def bind(self, var: E.Var | E.IterVar, lo: int, hi: int) -> None:
        """Declare ``lo <= var <= hi`` (replacing an earlier binding of ``var``)."""
        if isinstance(var, E.IterVar):
            var = var.var
        if lo > hi:
            raise ValueError(f"empty range [{lo}, {hi}] for {var.name}")
        self._bounds[var] = (int(lo), int(hi))
        self._simplifier = None

    def bind_range(self, var: E.Var | E.IterVar, rng: E.Range) -> bool:
        """Bind ``var`` to ``[min, min + extent - 1]`` when both are constants after simplification; tells if it did."""
        lo_hi = (self.simplify(rng.min), self.simplify(E.binary(E.Add, rng.min, rng.extent) - 1))
        if isinstance(lo_hi[0], E.IntImm) and isinstance(lo_hi[1], E.IntImm) and lo_hi[0].value <= lo_hi[1].value:
            self.bind(var, lo_hi[0].value, lo_hi[1].value)
            return True
        return False

    def unbind(self, var: E.Var) -> None:
        if self._bounds.pop(var, None) is not None:
            self._simplifier = None

    @property
    def simplifier(self) -> Simplifier:
        if self._simplifier is None:
            self._simplifier = Simplifier(dict(self._bounds))
        return self._simplifier

    def simplify(self, e: E.Expr) -> E.Expr:
        return _deep(lambda: self.simplifier(e))

    def const_int_bound(self, e: E.Expr) -> tuple[int | None, int | None]:
        return _deep(lambda: _const_int_bound(self.simplifier, e))

    def can_prove(self, cond: E.Expr) -> bool:
        return _deep(lambda: _can_prove(self.simplifier, cond))

    def eval_interval(self, e: E.Expr, dom: Mapping[E.Var, IntervalSet]) -> IntervalSet:
        return _deep(lambda: eval_interval(e, dom, self._bounds))


__all__ = ["Analyzer", "Bounds", "can_prove", "const_int_bound", "make_number", "simplify"]
