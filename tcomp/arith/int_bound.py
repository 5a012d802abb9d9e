"""Constant integer bounds: an inclusive interval ``[lo, hi]`` of Python ints for every integer or bool expression.

Rules (values are mathematical integers; overflow of the machine type is not modelled):

- constants are points; a ``Var`` takes its bound from the caller's ``bounds`` (intersected with its dtype range);
  an unbounded 32/64-bit signed value is ``(-inf, inf)``, unsigned values are ``>= 0``, bool is ``[0, 1]`` and
  narrow integers (8/16 bits) their dtype range;
- ``+ - *`` use interval arithmetic (``x * x`` is never negative); for types that wrap (unsigned, or narrower than
  32 bits) a result that leaves the type's range becomes the whole range (32/64-bit signed index arithmetic is assumed
  not to overflow);
- ``min``/``max`` are monotone; ``select`` is the union of its branches (or one branch when the condition's bound
  decides it);
- ``//`` (floor) and truncating ``/`` take the extreme corners over the divisor range with zero removed (division by
  zero has no value, so excluding it is sound); ``%`` by a positive constant is exact when the dividend stays inside
  one period, else ``[0, c - 1]``; remainders by ranges use ``|r| < |b|`` and the dividend's sign;
- comparisons are ``[1, 1]`` / ``[0, 0]`` when the operand intervals decide them, else ``[0, 1]``; ``&&``, ``||``,
  ``!`` combine those;
- casts to integer types keep the operand's bound when it fits the target type, else the target's range;
- ``Ramp``/``Broadcast`` give the bound over all lanes; ``Let`` binds its variable to the value's bound;
  loads, calls and everything else get the bound of their dtype.

Infinite ends are ``float('-inf')``/``float('inf')`` internally; the public function reports them as ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from tcomp.arith import dtypes as dt
from tcomp.arith.fold import trunc_div
from tcomp.arith.keys import same_tree
from tcomp.ir import expr as E

NEG_INF = float("-inf")
POS_INF = float("inf")

Num = int | float  # an int, or one of the two infinities
Bound = tuple[Num, Num]
Bounds = Mapping[E.Var, tuple[int, int]]

EVERYTHING: Bound = (NEG_INF, POS_INF)


def dtype_bound(dtype: str) -> Bound:
    """The bound a value of ``dtype`` has when nothing else is known."""
    if dt.is_bool(dtype):
        return (0, 1)
    if dt.is_float(dtype):
        return EVERYTHING
    bits = dt.bits(dtype)
    if not dt.is_signed(dtype):
        return (0, POS_INF if bits >= 32 else (1 << bits) - 1)
    if bits >= 32:
        return EVERYTHING
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def _fits(bound: Bound, dtype: str) -> bool:
    lo, hi = bound
    return lo >= dt.min_value(dtype) and hi <= dt.max_value(dtype)


def _mul(x: Num, y: Num) -> Num:
    if x == 0 or y == 0:
        return 0
    return x * y


def _add(x: Num, y: Num) -> Num:
    if math.isinf(x) and math.isinf(y) and x != y:
        return NEG_INF if x < 0 or y < 0 else POS_INF  # unreachable for valid bounds; keeps NaN away
    return x + y


def add_bounds(a: Bound, b: Bound) -> Bound:
    return (_add(a[0], b[0]), _add(a[1], b[1]))


def neg_bound(a: Bound) -> Bound:
    return (-a[1], -a[0])


def mul_bounds(a: Bound, b: Bound) -> Bound:
    corners = [_mul(a[0], b[0]), _mul(a[0], b[1]), _mul(a[1], b[0]), _mul(a[1], b[1])]
    return (min(corners), max(corners))


def square_bound(a: Bound) -> Bound:
    """Bound of ``x * x`` for ``x`` in ``a`` (never negative)."""
    lo, hi = a
    if lo >= 0:
        return (_mul(lo, lo), _mul(hi, hi))
    if hi <= 0:
        return (_mul(hi, hi), _mul(lo, lo))
    return (0, max(_mul(lo, lo), _mul(hi, hi)))


def floordiv_const(a: Bound, c: int) -> Bound:
    """Bound of ``a // c`` for a nonzero constant ``c``."""
    lo = a[0] if math.isinf(a[0]) else a[0] // c
    hi = a[1] if math.isinf(a[1]) else a[1] // c
    return (lo, hi) if c > 0 else (hi, lo)


def _nonzero_parts(b: Bound) -> list[Bound]:
    parts: list[Bound] = []
    if b[0] < 0:
        parts.append((b[0], min(b[1], -1)))
    if b[1] > 0:
        parts.append((max(b[0], 1), b[1]))
    return parts


def div_bounds(a: Bound, b: Bound, floor: bool) -> Bound:
    """Bound of ``a // b`` (floor) or ``truncdiv(a, b)``; lanes where ``b == 0`` are ignored."""
    parts = _nonzero_parts(b)
    if not parts:
        return EVERYTHING
    if math.isinf(a[0]) or math.isinf(a[1]):
        if b[0] == b[1] and not math.isinf(b[0]):
            c = int(b[0])
            if floor:
                return floordiv_const(a, c)
            ends = [x if math.isinf(x) else trunc_div(int(x), c) for x in a]
            ends = [-x if math.isinf(x) and c < 0 else x for x in ends]
            return (min(ends), max(ends))
        return EVERYTHING
    lo: Num = POS_INF
    hi: Num = NEG_INF
    for part in parts:
        if math.isinf(part[0]) or math.isinf(part[1]):
            magnitude = max(abs(a[0]), abs(a[1]))
            return (-magnitude, magnitude)
        for x in (a[0], a[1]):
            for y in (part[0], part[1]):
                q = x // y if floor else trunc_div(int(x), int(y))
                lo = min(lo, q)
                hi = max(hi, q)
    return (lo, hi)


def floormod_bounds(a: Bound, b: Bound) -> Bound:
    """Bound of ``a % b`` with Python (floor) semantics: the result has the sign of ``b``."""
    if b[0] == b[1] and b[0] > 0 and not math.isinf(b[0]):
        c = int(b[0])
        if not math.isinf(a[0]) and not math.isinf(a[1]) and a[0] // c == a[1] // c:
            k = a[0] // c
            return (a[0] - k * c, a[1] - k * c)
        return (0, c - 1)
    lo: Num = POS_INF
    hi: Num = NEG_INF
    for part in _nonzero_parts(b):
        if part[0] > 0:
            top = part[1] - 1
            if a[0] >= 0:
                top = min(top, a[1])
            lo, hi = min(lo, 0), max(hi, top)
        else:
            bottom = part[0] + 1
            if a[1] <= 0:
                bottom = max(bottom, a[0])
            lo, hi = min(lo, bottom), max(hi, 0)
    if lo > hi:
        return EVERYTHING
    return (lo, hi)


def truncmod_bounds(a: Bound, b: Bound) -> Bound:
    """Bound of C ``a % b``: the sign of ``a`` and ``|r| < |b|``."""
    limit = max(abs(b[0]), abs(b[1])) - 1
    lo: Num = 0 if a[0] >= 0 else max(a[0], -limit)
    hi: Num = 0 if a[1] <= 0 else min(a[1], limit)
    return (lo, hi)


def compare_bound(op: type, a: Bound, b: Bound) -> Bound:
    """Truth of ``a op b`` as a bound over {0, 1}."""
    if op is E.LT:
        true, false = a[1] < b[0], a[0] >= b[1]
    elif op is E.LE:
        true, false = a[1] <= b[0], a[0] > b[1]
    elif op is E.GT:
        true, false = a[0] > b[1], a[1] <= b[0]
    elif op is E.GE:
        true, false = a[0] >= b[1], a[1] < b[0]
    elif op is E.EQ:
        true, false = a[0] == a[1] == b[0] == b[1], a[1] < b[0] or b[1] < a[0]
    else:  # NE
        true, false = a[1] < b[0] or b[1] < a[0], a[0] == a[1] == b[0] == b[1]
    if true:
        return (1, 1)
    if false:
        return (0, 0)
    return (0, 1)


class ConstIntBound:
    """Memoized bound analysis under fixed variable bounds. Call it on an expression to get its ``Bound``."""

    def __init__(self, bounds: Bounds | None = None) -> None:
        self.bounds: Bounds = bounds if bounds is not None else {}
        self._let: dict[E.Var, Bound] = {}
        self._memo: dict[int, tuple[E.Expr, Bound]] = {}

    def clear(self) -> None:
        self._memo.clear()

    def __call__(self, e: E.Expr) -> Bound:
        hit = self._memo.get(id(e))
        if hit is not None:
            return hit[1]
        result = self._compute(e)
        if len(self._memo) > 200_000:
            self._memo.clear()
        self._memo[id(e)] = (e, result)
        return result

    def _compute(self, e: E.Expr) -> Bound:
        if isinstance(e, E.IntImm):
            return (e.value, e.value)
        dtype = e.dtype
        if dt.is_float(dtype):
            return EVERYTHING
        if isinstance(e, E.Var):
            return self._var(e)
        if isinstance(e, E.BinaryOp):
            return self._binary(e)
        if isinstance(e, E.Not):
            lo, hi = self(e.a)
            return (1 - hi, 1 - lo)
        if isinstance(e, E.Select):
            cond = self(e.condition)
            if cond[0] >= 1:
                return self(e.true_value)
            if cond[1] <= 0:
                return self(e.false_value)
            t, f = self(e.true_value), self(e.false_value)
            return (min(t[0], f[0]), max(t[1], f[1]))
        if isinstance(e, E.Cast):
            return self._cast(e)
        if isinstance(e, E.Broadcast):
            return self(e.value)
        if isinstance(e, E.Ramp):
            base = self(e.base)
            span = mul_bounds(self(e.stride), (0, e.lanes - 1))
            return add_bounds(base, (min(span[0], 0), max(span[1], 0)))
        if isinstance(e, E.Let):
            self._let[e.var] = self(e.value)
            try:
                return self(e.body)
            finally:
                del self._let[e.var]
        return dtype_bound(dtype)

    def _var(self, v: E.Var) -> Bound:
        own = dtype_bound(v.dtype)
        given = self._let.get(v)
        if given is None:
            given = self.bounds.get(v)
        if given is None:
            return own
        return (max(own[0], given[0]), min(own[1], given[1]))

    def _binary(self, e: E.BinaryOp) -> Bound:
        cls = type(e)
        if issubclass(cls, E.CmpOp):
            if dt.is_float(e.a.dtype):
                return (0, 1)
            return compare_bound(cls, self(e.a), self(e.b))
        a, b = self(e.a), self(e.b)
        if cls is E.Add or cls is E.Sub or cls is E.Mul:
            if cls is E.Add:
                result = add_bounds(a, b)
            elif cls is E.Sub:
                result = add_bounds(a, neg_bound(b))
            elif e.a is e.b or same_tree(e.a, e.b):
                result = square_bound(a)
            else:
                result = mul_bounds(a, b)
            if dt.wraps(e.dtype) and not _fits(result, e.dtype):
                return dtype_bound(e.dtype)
            return result
        if cls is E.FloorDiv:
            return div_bounds(a, b, floor=True)
        if cls is E.Div:
            return div_bounds(a, b, floor=False)
        if cls is E.FloorMod:
            return floormod_bounds(a, b)
        if cls is E.Mod:
            return truncmod_bounds(a, b)
        if cls is E.Min:
            return (min(a[0], b[0]), min(a[1], b[1]))
        if cls is E.Max:
            return (max(a[0], b[0]), max(a[1], b[1]))
        if cls is E.And:
            return (1 if a[0] >= 1 and b[0] >= 1 else 0, 0 if a[1] <= 0 or b[1] <= 0 else 1)
        if cls is E.Or:
            return (1 if a[0] >= 1 or b[0] >= 1 else 0, 0 if a[1] <= 0 and b[1] <= 0 else 1)
        return dtype_bound(e.dtype)

    def _cast(self, e: E.Cast) -> Bound:
        source = e.value.dtype
        if dt.is_bool(e.dtype):
            lo, hi = self(e.value) if not dt.is_float(source) else (NEG_INF, POS_INF)
            if lo > 0 or hi < 0:
                return (1, 1)
            if lo == hi == 0:
                return (0, 0)
            return (0, 1)
        if dt.is_float(source):
            return dtype_bound(e.dtype)
        inner = self(e.value)
        if _fits(inner, e.dtype):
            return inner
        return dtype_bound(e.dtype)


def to_public(bound: Bound) -> tuple[int | None, int | None]:
    lo, hi = bound
    return (None if math.isinf(lo) else int(lo), None if math.isinf(hi) else int(hi))
