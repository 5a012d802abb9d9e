"""Explicit unrolling of loops marked ``pragma(axis, "unroll_explicit")``.

Rewrite: ``for v in [m, m + n): S(v)`` with constant ``n <= MAX_UNROLL`` becomes ``S(m); S(m + 1); ...; S(m + n - 1)``
in the loop IR itself (loops of kind ``unrolled`` are instead left to LLVM's unroller through loop metadata).
A marked loop with a non-constant or larger extent stays a loop. Loop variables inside the copies are renamed
apart so every copy defines its own. A ``select`` whose condition compares the unrolled variable with a constant
(``select(e == 2, a, b)``, as an operator picks one row of a constant matrix) keeps only the chosen side in each
copy, so a chain of such selects is not copied whole into every copy before ``simplify`` runs.
"""

from __future__ import annotations

from dataclasses import replace

from tcomp.arith.fold import fold_binary
from tcomp.ir.expr import CmpOp, Expr, IntImm, Select, Var, const_int_value, convert, make_const
from tcomp.ir.functor import Mutator
from tcomp.ir.stmt import For, LetStmt, PrimFunc, Stmt, seq

MAX_UNROLL = 256


class _Renamer(Mutator):
    """Gives loop and let variables defined inside a copy fresh identities."""

    def __init__(self) -> None:
        self.mapping: dict[Var, Expr] = {}

    def visit_Var(self, node: Var) -> Expr:
        return self.mapping.get(node, node)

    def visit_For(self, node: For) -> Stmt:
        fresh = Var(node.loop_var.name, node.loop_var.dtype)
        self.mapping[node.loop_var] = fresh
        body = self.visit(node.body)
        return replace(node, loop_var=fresh, min=self.visit(node.min), extent=self.visit(node.extent), body=body)

    def visit_LetStmt(self, node: LetStmt) -> Stmt:
        fresh = Var(node.var.name, node.var.dtype)
        value = self.visit(node.value)
        self.mapping[node.var] = fresh
        return LetStmt(fresh, value, self.visit(node.body))


def renamed_copy(stmt: Stmt) -> Stmt:
    """``stmt`` with every loop and let variable it defines given a fresh identity (a copy that may sit beside the
    original)."""
    return _Renamer().visit(stmt)


class _Copier(_Renamer):
    """One copy of an unrolled body, in one pass: ``var`` replaced by ``value``, the loop and let variables it
    defines renamed apart, selects on constant comparisons resolved."""

    def __init__(self, var: Var, value: Expr) -> None:
        super().__init__()
        self.mapping[var] = value

    def visit_Select(self, node: Select) -> Expr:
        condition = self.visit(node.condition)
        if isinstance(condition, CmpOp) and isinstance(condition.a, IntImm) and isinstance(condition.b, IntImm):
            taken = fold_binary(type(condition), condition.a.value, condition.b.value, False)
            if taken is not None:
                return self.visit(node.true_value if taken else node.false_value)
        return self.generic_visit(node)


class _Unroller(Mutator):
    def visit_For(self, node: For) -> Stmt:
        body = self.visit(node.body)
        wanted = any(key == "unroll_explicit" and value for key, value in node.annotations)
        count = const_int_value(node.extent)
        if wanted and count is not None and 0 <= count <= MAX_UNROLL:
            start = const_int_value(node.min)
            values = [make_const(start + i, node.loop_var.dtype) if start is not None else node.min + i
                      for i in range(count)]
            copies = [_Copier(node.loop_var, convert(value)).visit(body) for value in values]
            return seq(*copies)
        return node if body is node.body else replace(node, body=body)


def unroll_explicit(func: PrimFunc) -> PrimFunc:
    """Unroll loops marked ``unroll_explicit`` (see the module docstring)."""
    body = _Unroller().visit(func.body)
    return func if body is func.body else replace(func, body=body)
