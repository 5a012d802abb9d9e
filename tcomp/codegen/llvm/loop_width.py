"""The widest vectors LLVM's loop vectorizer may give a loop whose indices divide its variable.

A loop body indexing by ``i % 8`` or ``i // 8`` is periodic in ``i``. LLVM's loop vectorizer (LLVM 22, seen with
16-lane float vectors on AVX-512) can take such an index as consecutive across a whole vector, which is wrong once
the vector spans two periods: with ``i % 8`` under a condition on it (a lazily evaluated select, as in
``RotaryEmbedding``'s rotate-half), lanes 8-15 read 8 elements past lanes 0-7 instead of the same ones. Vectors that
stay inside one period are right whichever way LLVM reads them, so every loop tcomp emits carries a vector-width
bound from ``width_limit``: the widest power of two ``w`` such that every integer division or remainder in the body
is constant (quotient) or consecutive (remainder) over each aligned block of ``w`` iterations. A body without such a
division keeps LLVM's own choice.

The analysis is affine: an index is ``c * i + r`` with a known power of two dividing ``r`` (the loop's other
variables and loads count as unknown multiples of 1). A division of ``c * i + r`` by a constant ``k`` is blockwise
affine for ``w`` when ``w * |c|`` divides both ``k`` and ``r``'s known factor; its quotient is then constant per
block and its remainder ``c * i + (r mod k)``. A division by a value that is not a constant, or of an index that
is not affine in ``i``, bounds the width to 1 (no vectors).

The bound goes only on loops LLVM's vectorizer can take (``vectorizer_hints``, from one walk of the body,
``survey``): with a width hint LLVM prints why it did not vectorize a loop ("remark: loop not vectorized: ..." on
stderr, for every such loop of a model), and a body that already holds vector code or a call statement (a
micro-kernel) is one it never vectorizes, so it needs no bound. A body with an assertion (an early exit) is not
vectorized where it needs a bound: LLVM 22 vectorizes some of those (the rotate-half above had index checks), so
the bound cannot go, but with it LLVM warns on every one it cannot take (a gather through runtime indices of a
reshaped table, ConvBERT's: "early exit loop with store but no supported condition load"); without a bound it
keeps LLVM's own choice, and a vectorized loop with one is not forced on LLVM. A bounded loop around a loop tcomp
does not unroll is not vectorized at all: LLVM could vectorize it only after unrolling the inner loop itself, and
where it then fails it prints why.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcomp.arith.factors import pow2_divisor
from tcomp.ir import dtype as dt
from tcomp.ir import expr as E
from tcomp.ir.functor import post_order_visit, uses_var
from tcomp.ir.stmt import AssertStmt, Evaluate, For, ForKind, Stmt

# the widest vector (in elements) LLVM may choose: 64 one-byte lanes of a 512-bit register
MAX_WIDTH = 64
_ALIGNED = 1 << 30  # "a multiple of every power of two we ask about" (the constant 0, the loop variable's start)
_DIVISIONS = (E.Div, E.Mod, E.FloorDiv, E.FloorMod)


class _NotAffine(Exception):
    pass


@dataclass(frozen=True)
class LoopBody:
    """What LLVM's vectorizer makes of a loop's body, gathered in one walk (``survey``)."""

    divisions: tuple[E.BinaryOp, ...]  # integer divisions and remainders of expressions of the loop variable
    vector_code: bool  # vector expressions (tcomp vectorized it) or a call statement (a micro-kernel)
    assertion: bool  # a branch out of the loop
    inner_loop: bool  # a loop tcomp does not unroll


def survey(var: E.Var, body: Stmt) -> LoopBody:
    """The ``LoopBody`` of the loop over ``var`` with ``body``."""
    divisions: list[E.BinaryOp] = []
    flags = {"vector_code": False, "assertion": False, "inner_loop": False}

    def visit(node: object) -> None:
        if isinstance(node, _DIVISIONS) and dt.is_int(node.dtype) and uses_var(node.a, [var]):
            divisions.append(node)
        elif isinstance(node, (E.Ramp, E.Broadcast, Evaluate)):
            flags["vector_code"] = True
        elif isinstance(node, AssertStmt):
            flags["assertion"] = True
        elif isinstance(node, For) and node.kind is not ForKind.UNROLLED:
            flags["inner_loop"] = True

    post_order_visit(body, visit)
    return LoopBody(tuple(divisions), **flags)


def vectorizer_hints(loop: For) -> list[tuple[str, bool | int]]:
    """The ``llvm.loop.vectorize`` options of a loop that tcomp does not unroll (see the module docstring): off
    where the width bound is 1, or below the widest vector around a loop tcomp does not unroll or over a body with
    an assertion; on a body LLVM can
    vectorize, forced for a vectorized loop without assertions, and the width bound where there is one; else
    none."""
    body = survey(loop.loop_var, loop.body)
    width = _width(loop.loop_var, loop.min, body.divisions)
    if width == 1 or (width < MAX_WIDTH and (body.inner_loop or body.assertion)):
        return [("llvm.loop.vectorize.enable", False)]
    if body.vector_code:
        return []
    hints: list[tuple[str, bool | int]] = []
    if loop.kind is ForKind.VECTORIZED and not body.assertion:
        hints.append(("llvm.loop.vectorize.enable", True))
    if width < MAX_WIDTH:
        hints.append(("llvm.loop.vectorize.width", width))
    return hints


def width_limit(var: E.Var, start: E.Expr, body: Stmt) -> int:
    """The widest vector (a power of two up to ``MAX_WIDTH``) for which the loop ``for var in [start, ...):
    body`` stays correct under LLVM's reading of its integer divisions (see the module docstring); ``MAX_WIDTH``
    when its body divides no expression of ``var``."""
    return _width(var, start, survey(var, body).divisions)


def _width(var: E.Var, start: E.Expr, divisions: tuple[E.BinaryOp, ...]) -> int:
    width = MAX_WIDTH
    while divisions and width > 1 and not _blockwise_affine(var, start, divisions, width):
        width //= 2
    return width


def _blockwise_affine(var: E.Var, start: E.Expr, divisions: tuple[E.BinaryOp, ...], width: int) -> bool:
    affine = _Affine(var, width)
    try:
        if affine.form(start)[1] % width:
            return False
        for division in divisions:
            affine.form(division)
    except _NotAffine:
        return False
    return True


def _pow2_factor(value: int) -> int:
    return pow2_divisor(value, _ALIGNED)


class _Affine:
    """``form(e)``: ``(c, f)`` with ``e = c * var + r`` over each aligned block of ``width`` iterations, ``f`` a
    power of two that divides ``r``; ``_NotAffine`` when a division in ``e`` breaks that."""

    def __init__(self, var: E.Var, width: int) -> None:
        self.var = var
        self.width = width
        self.memo: dict[int, tuple[int, int] | None] = {}

    def form(self, e: E.Expr) -> tuple[int, int]:
        result = self._form(e)
        if result is None:
            raise _NotAffine
        return result

    def _form(self, e: E.Expr) -> tuple[int, int] | None:
        key = id(e)
        if key not in self.memo:
            self.memo[key] = self._compute(e)
        return self.memo[key]

    def _compute(self, e: E.Expr) -> tuple[int, int] | None:
        if e is self.var:
            return 1, _ALIGNED
        if isinstance(e, E.IntImm):
            return 0, _pow2_factor(int(e.value))
        if isinstance(e, E.Cast) and dt.is_int(e.dtype) and dt.is_int(e.value.dtype):
            return self._form(e.value)
        if isinstance(e, (E.Add, E.Sub)):
            a, b = self._form(e.a), self._form(e.b)
            if a is None or b is None:
                return None
            return (a[0] + b[0] if isinstance(e, E.Add) else a[0] - b[0]), min(a[1], b[1])
        if isinstance(e, E.Mul):
            return self._product(e)
        if isinstance(e, _DIVISIONS) and dt.is_int(e.dtype):
            return self._division(e)
        return None if uses_var(e, [self.var]) else (0, 1)

    def _product(self, e: E.Mul) -> tuple[int, int] | None:
        for factor, other in ((e.a, e.b), (e.b, e.a)):
            k = E.const_int_value(factor)
            if k is not None:
                form = self._form(other)
                if form is None:
                    return None
                return form[0] * k, min(_ALIGNED, form[1] * _pow2_factor(k))
        a, b = self._form(e.a), self._form(e.b)
        if a is None or b is None or a[0] or b[0]:
            return None
        return 0, min(_ALIGNED, a[1] * b[1])

    def _division(self, e: E.BinaryOp) -> tuple[int, int] | None:
        dividend = self._form(e.a)
        is_quotient = isinstance(e, (E.Div, E.FloorDiv))
        k = E.const_int_value(e.b)
        if dividend is None:
            raise _NotAffine
        coefficient, factor = dividend
        if coefficient == 0:
            if k is None:
                return 0, 1
            return (0, 1) if is_quotient else (0, min(factor, _pow2_factor(k)))
        block = self.width * abs(coefficient)
        if k is None or k == 0 or k % block or factor % block:
            raise _NotAffine
        return (0, 1) if is_quotient else (coefficient, min(factor, _pow2_factor(k)))
