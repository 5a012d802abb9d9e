"""The simplifier: a bottom-up rewrite of expressions under constant bounds of variables.

Every node's children are simplified first (memoized by object identity); then the rules of the node's kind apply:

- constants fold for every operator (``//``/``%`` with Python floor semantics, ``Div``/``Mod`` on integers with C
  truncation, floats rounded to their dtype, float ``min``/``max`` NaN if an operand is); a division or remainder by
  zero is never folded;
- scalar integer ``+ - *`` go through the canonical linear form (``canonical.py``): like terms combine, constants
  gather, ``c*(x // c) + x % c`` becomes ``x``, and the result prints in a deterministic order;
- integer ``// % Div Mod``: the rules of ``divmod.py``;
- ``min``/``max``, integer comparisons, ``&&``/``||``: the rules of ``compare.py``; ``!!x -> x`` and
  ``!(a < b) -> b <= a`` on integers;
- ``select`` with a constant condition picks a branch; equal branches collapse; on index integers
  ``select(a < b, a, b) -> min(a, b)`` and ``select(a < b, b, a) -> max(a, b)``;
- casts fold constants, drop casts to the same type and collapse ``T1(T2(x))`` to ``T1(x)`` when ``T2`` holds
  every value of ``x``; an integer ``Ramp`` cast to another integer type is the ``Ramp`` of the cast base and
  stride where the bounds show that no lane wraps around and the new type holds every lane, and a widening cast
  of a vector ``min``/``max`` is the ``min``/``max`` of the casts;
- float and vector identities ``x + 0``, ``x - 0``, ``x * 1``, ``x / 1``; the vector rules of ``vector.py``;
- ``Let`` with a constant or variable value is substituted, otherwise its body is simplified under the value's bound;
- every other node (loads, calls, reductions) keeps its kind with simplified children;
- finally, a scalar integer or bool result whose bound is a single value becomes that constant.

The result has the dtype of the input. A node that no rule changes comes back as the very same object.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tcomp.arith import compare as cmp
from tcomp.arith import divmod as dm
from tcomp.arith import dtypes as dt
from tcomp.arith.canonical import Linear, LinearForms, MonomialKey, Term, add_terms, int_const
from tcomp.arith.fold import fold_binary
from tcomp.arith.int_bound import Bound, Bounds, ConstIntBound, add_bounds, compare_bound, mul_bounds
from tcomp.arith.keys import ExprKeys, same_tree
from tcomp.arith.vector import vector_binary
from tcomp.ir import expr as E
from tcomp.ir.functor import Mutator, substitute

_MEMO_LIMIT = 200_000
_NOT_FOLDED = (E.IntImm, E.FloatImm, E.Add, E.Sub, E.Mul)
_RING = (E.Add, E.Sub, E.Mul)
_NEGATE = {E.LT: E.GE, E.LE: E.GT, E.GT: E.LE, E.GE: E.LT, E.EQ: E.NE, E.NE: E.EQ}


def _number(e: E.Expr) -> int | float | None:
    """The value of a scalar constant or of a broadcast constant, else ``None``."""
    if isinstance(e, E.Broadcast):
        e = e.value
    if isinstance(e, (E.IntImm, E.FloatImm)):
        return e.value
    return None


def make_number(value: int | float, dtype: str) -> E.Expr:
    """A constant of ``dtype`` (vector dtypes give a ``Broadcast``); ints wrap, floats round to the dtype."""
    element, lanes = dt.split_lanes(dtype)
    scalar: E.Expr
    if dt.is_float(element):
        scalar = E.FloatImm(float(np.array(value, dtype=element)), element)
    else:
        scalar = int_const(int(value), element)
    return scalar if lanes == 1 else E.Broadcast(scalar, lanes, dtype)


class Simplifier(Mutator):
    """Simplifies expressions under fixed ``bounds``; reusable across calls while the bounds stay the same."""

    def __init__(self, bounds: Bounds | None = None) -> None:
        self.bounds: Bounds = bounds if bounds is not None else {}
        self.bound = ConstIntBound(self.bounds)
        self._reset()

    def _reset(self) -> None:
        self.keys = ExprKeys()
        self.lin = LinearForms(self.keys)
        self._memo: dict[int, tuple[Any, Any]] = {}

    def __call__(self, e: E.Expr) -> E.Expr:
        """Simplify ``e``. Long-lived simplifiers (an ``Analyzer``'s) drop their tables between calls when they grow
        large; inside one call the tables only grow, so keys stay consistent."""
        if len(self.keys) > _MEMO_LIMIT:
            self._reset()
            self.bound.clear()
        return self.visit(e)

    def visit(self, node: Any) -> Any:
        hit = self._memo.get(id(node))
        if hit is not None:
            return hit[1]
        result = super().visit(node)
        if isinstance(result, E.Expr):
            result = self._finish(node, result)
        if len(self._memo) > _MEMO_LIMIT:
            self._memo.clear()
        self._memo[id(node)] = (node, result)
        if result is not node:
            self._memo[id(result)] = (result, result)
        return result

    def _finish(self, node: E.Expr, result: E.Expr) -> E.Expr:
        # A sum or product of atoms is a point only when an atom is, and atoms were folded already.
        if isinstance(result, _NOT_FOLDED):
            return result
        dtype = result.dtype
        if not dt.is_float(dtype) and dt.lanes(dtype) == 1:
            lo, hi = self.bound(result)
            if lo == hi and not math.isinf(lo):
                return int_const(int(lo), dtype)
        return result

    # -- bounds of linear forms -----------------------------------------------------------------------------------

    def lin_bound(self, lin: Linear) -> Bound:
        total: Bound = (lin.const, lin.const)
        for term in lin.terms.values():
            monomial = self._monomial_bound(term.atoms)
            total = add_bounds(total, mul_bounds(monomial, (term.coeff, term.coeff)))
        return total

    def _monomial_bound(self, atoms: tuple[E.Expr, ...]) -> Bound:
        result: Bound = (1, 1)
        index = 0
        while index < len(atoms):
            power = 1
            while index + power < len(atoms) and self.keys.equal(atoms[index + power], atoms[index]):
                power += 1
            result = mul_bounds(result, _power_bound(self.bound(atoms[index]), power))
            index += power
        return result

    # -- leaves and generic nodes ---------------------------------------------------------------------------------

    def visit_IntImm(self, e: E.IntImm) -> E.Expr:
        return e

    def visit_FloatImm(self, e: E.FloatImm) -> E.Expr:
        return e

    def visit_Var(self, e: E.Var) -> E.Expr:
        return e

    # -- binary operators -----------------------------------------------------------------------------------------

    def visit_BinaryOp(self, e: E.BinaryOp) -> E.Expr:
        if isinstance(e, _RING) and dt.is_scalar_int(e.dtype):
            lin = self.lin
            result = lin.to_expr(lin.merge_divmod(self._linear_tree(e)))
            return e if same_tree(result, e) else result
        a, b = self.visit(e.a), self.visit(e.b)
        result = self._binary(type(e), a, b, e.dtype)
        unchanged = a is e.a and b is e.b
        if result is not None:
            if unchanged and same_tree(result, e):
                return e
            return result
        if unchanged:
            return e
        return type(e)(a, b, e.dtype)

    def _linear_tree(self, e: E.Expr) -> Linear:
        """The linear form of the ``+ - *`` tree rooted at ``e``, gathered in one pass (linear in the tree's size):
        only the atoms at its leaves are simplified, intermediate sums are never built."""
        terms: dict[MonomialKey, Term] = {}
        const = 0
        stack: list[tuple[E.Expr, int]] = [(e, 1)]
        while stack:
            node, k = stack.pop()
            if k == 0:
                continue
            if isinstance(node, E.IntImm):
                const += k * node.value
            elif isinstance(node, E.Add):
                stack.append((node.b, k))
                stack.append((node.a, k))
            elif isinstance(node, E.Sub):
                stack.append((node.b, -k))
                stack.append((node.a, k))
            elif isinstance(node, E.Mul) and isinstance(node.b, E.IntImm):
                stack.append((node.a, k * node.b.value))
            elif isinstance(node, E.Mul) and isinstance(node.a, E.IntImm):
                stack.append((node.b, k * node.a.value))
            else:
                if isinstance(node, E.Mul):
                    form = self.lin.mul(self._linear_tree(node.a), self._linear_tree(node.b))
                else:
                    form = self.lin.of(self.visit(node))
                const += k * form.const
                add_terms(terms, form, k)
        return Linear(e.dtype, terms, const)

    def _binary(self, cls: type[E.BinaryOp], a: E.Expr, b: E.Expr, dtype: str) -> E.Expr | None:
        operand = a.dtype
        is_float = dt.is_float(operand)
        x, y = _number(a), _number(b)
        if x is not None and y is not None:
            value = fold_binary(cls, x, y, is_float)
            if value is not None:
                return make_number(value, dtype)
            return None
        if dt.lanes(operand) > 1:
            result = vector_binary(self, cls, a, b, dtype)
            if result is not None:
                return result
        if cls is E.And or cls is E.Or:
            return cmp.logic(self, cls, a, b, x, y)
        if issubclass(cls, E.CmpOp):
            if dt.is_index(operand):
                return cmp.compare(self, cls, a, b)
            if dt.is_scalar_int(operand):
                decided = compare_bound(cls, self.bound(a), self.bound(b))
                return E.IntImm(int(decided[0]), "bool") if decided[0] == decided[1] else None
            return None
        if dt.is_scalar_int(dtype):
            return self._integer(cls, a, b)
        return self._identities(cls, a, b, x, y)

    def _integer(self, cls: type[E.BinaryOp], a: E.Expr, b: E.Expr) -> E.Expr | None:
        if cls is E.FloorDiv:
            return dm.floordiv(self, a, b)
        if cls is E.FloorMod:
            return dm.floormod(self, a, b)
        if cls is E.Div:
            return dm.truncdiv(self, a, b)
        if cls is E.Mod:
            return dm.truncmod(self, a, b)
        if cls is E.Min or cls is E.Max:
            return cmp.minmax(self, cls, a, b)
        return None

    def _identities(
        self, cls: type[E.BinaryOp], a: E.Expr, b: E.Expr, x: int | float | None, y: int | float | None
    ) -> E.Expr | None:
        if cls is E.Add:
            if y == 0:
                return a
            if x == 0:
                return b
        elif cls is E.Sub and y == 0:
            return a
        elif cls is E.Mul:
            if y == 1:
                return a
            if x == 1:
                return b
        elif cls is E.Div and y == 1:
            return a
        elif (cls is E.Min or cls is E.Max) and self.keys.equal(a, b):
            return a
        return None

    def visit_Not(self, e: E.Not) -> E.Expr:
        a = self.visit(e.a)
        value = _number(a)
        if value is not None:
            return make_number(not value, e.dtype)
        if isinstance(a, E.Not):
            return a.a
        if isinstance(a, E.CmpOp) and dt.is_scalar_int(a.a.dtype):
            return self.visit(_NEGATE[type(a)](a.a, a.b, a.dtype))
        if isinstance(a, E.Broadcast):
            return E.Broadcast(self.visit(E.Not(a.value, a.value.dtype)), a.lanes, e.dtype)
        return e if a is e.a else E.Not(a, e.dtype)

    def visit_Select(self, e: E.Select) -> E.Expr:
        cond = self.visit(e.condition)
        value = _number(cond)
        if value is not None:
            return self.visit(e.true_value if value else e.false_value)
        t, f = self.visit(e.true_value), self.visit(e.false_value)
        if self.keys.equal(t, f):
            return t
        if isinstance(cond, E.LT) and dt.is_index(e.dtype) and dt.is_index(cond.a.dtype):
            as_minmax = self._select_minmax(cond, t, f)
            if as_minmax is not None:
                return as_minmax
        if cond is e.condition and t is e.true_value and f is e.false_value:
            return e
        return E.Select(cond, t, f, e.dtype)

    def _select_minmax(self, cond: E.LT, t: E.Expr, f: E.Expr) -> E.Expr | None:
        """``select(t < f, t, f) -> min(t, f)`` and ``select(f < t, t, f) -> max(t, f)``, comparing linear forms."""
        lin = self.lin
        condition = lin.add(lin.of(cond.a), lin.of(cond.b), -1)
        branches = lin.add(lin.of(t), lin.of(f), -1)
        if _same_form(condition, branches):
            return self.visit(E.Min(t, f, t.dtype))
        if _same_form(condition, lin.scale(branches, -1)):
            return self.visit(E.Max(t, f, t.dtype))
        return None

    def visit_Cast(self, e: E.Cast) -> E.Expr:
        value = self.visit(e.value)
        if value.dtype == e.dtype:
            return value
        number = _number(value)
        if number is not None:
            if dt.is_float(e.dtype):
                return make_number(float(number), e.dtype)
            if dt.is_bool(e.dtype):
                return make_number(number != 0, e.dtype)
            if isinstance(number, float) and not math.isfinite(number):
                return e if value is e.value else E.Cast(value, e.dtype)
            return make_number(int(number), e.dtype)
        if isinstance(value, E.Broadcast):
            inner = self.visit(E.Cast(value.value, dt.element(e.dtype)))
            return E.Broadcast(inner, value.lanes, e.dtype)
        if isinstance(value, E.Cast) and _holds_all(self, value.value, value.dtype):
            inner = value.value
            return inner if inner.dtype == e.dtype else self.visit(E.Cast(inner, e.dtype))
        if isinstance(value, (E.Min, E.Max)) and dt.lanes(value.dtype) > 1 and dt.widens(value.dtype, e.dtype):
            # a widened clamp of a ramp stays a clamp of a ramp (a padded row's read: one masked load, not a gather)
            element = dt.with_lanes(dt.element(e.dtype), dt.lanes(e.dtype))
            return self.visit(type(value)(E.Cast(value.a, element), E.Cast(value.b, element), e.dtype))
        if isinstance(value, E.Ramp) and _lanes_exact(self, value, e.dtype):
            # a widened ramp of indices stays a ramp (a contiguous vector access, not one load per lane)
            element = dt.element(e.dtype)
            base, stride = self.visit(E.Cast(value.base, element)), self.visit(E.Cast(value.stride, element))
            return self.visit(E.Ramp(base, stride, value.lanes, e.dtype))
        return e if value is e.value else E.Cast(value, e.dtype)

    def visit_Ramp(self, e: E.Ramp) -> E.Expr:
        base, stride = self.visit(e.base), self.visit(e.stride)
        if isinstance(stride, E.IntImm) and stride.value == 0:
            return E.Broadcast(base, e.lanes, e.dtype)
        if base is e.base and stride is e.stride:
            return e
        return E.Ramp(base, stride, e.lanes, e.dtype)

    def visit_Let(self, e: E.Let) -> E.Expr:
        value = self.visit(e.value)
        if isinstance(value, (E.IntImm, E.FloatImm, E.Var)):
            return self.visit(substitute(e.body, {e.var: value}))
        self.bound._let[e.var] = self.bound(value)
        try:
            body = self.visit(e.body)
        finally:
            del self.bound._let[e.var]
        if value is e.value and body is e.body:
            return e
        return E.Let(e.var, value, body, e.dtype)


def _same_form(a: Linear, b: Linear) -> bool:
    if a.const != b.const or len(a.terms) != len(b.terms):
        return False
    for key, term in a.terms.items():
        other = b.terms.get(key)
        if other is None or other.coeff != term.coeff:
            return False
    return True


def _lanes_exact(s: Simplifier, ramp: E.Ramp, dtype: str) -> bool:
    """True when every lane of the integer ``ramp`` is its exact value (no lane wraps around its dtype) and
    ``dtype``'s element holds it: the cast of the ramp is the ramp of the casts."""
    if not (dt.is_int(ramp.dtype) and dt.is_int(dtype)):
        return False
    lo, hi = s.bound(ramp)
    low = max(dt.min_value(ramp.dtype), dt.min_value(dtype))
    high = min(dt.max_value(ramp.dtype), dt.max_value(dtype))
    return lo >= low and hi <= high


def _holds_all(s: Simplifier, value: E.Expr, dtype: str) -> bool:
    """True when converting the integer ``value`` to ``dtype`` keeps every possible value."""
    if dt.is_float(value.dtype) or dt.is_float(dtype) or dt.is_bool(dtype):
        return False
    if dt.widens(value.dtype, dtype):
        return True
    lo, hi = s.bound(value)
    return lo >= dt.min_value(dtype) and hi <= dt.max_value(dtype)


def _power_bound(bound: Bound, power: int) -> Bound:
    if power == 1:
        return bound
    lo, hi = bound
    if power % 2 == 1 or lo >= 0:
        return (lo**power, hi**power)
    if hi <= 0:
        return (hi**power, lo**power)
    return (0, max(-lo, hi) ** power)
