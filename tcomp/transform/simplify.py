"""Simplify every expression of a function, knowing the range of each enclosing loop variable.

Rewrites: expressions through ``tcomp.arith.simplify`` with loop-variable bounds (and the declared ranges of the
symbolic sizes, ``Var.max_value``, so a loop over a symbolic extent is bounded too); guards proved true are
dropped (proved false: replaced by their else branch); loops of extent 0 vanish; loops of extent 1 (other than
thread-bound ones) become their body with the variable replaced by the loop's min.
Assumes loop mins and extents do not depend on the loop's own variable. Returns the same function if nothing changed.
"""

from __future__ import annotations

from dataclasses import replace

from tcomp.arith import can_prove, const_int_bound, simplify
from tcomp.ir.expr import Expr, Var, const_int_value, logical_not
from tcomp.ir.functor import Mutator, substitute
from tcomp.ir.stmt import NOOP, For, ForKind, IfThenElse, LetStmt, PrimFunc, Stmt


class _Simplifier(Mutator):
    def __init__(self, bounds: dict[Var, tuple[int, int]]) -> None:
        self.bounds = bounds

    def visit(self, node: object) -> object:
        if isinstance(node, Expr):
            return simplify(node, self.bounds)
        return super().visit(node)

    def visit_For(self, node: For) -> Stmt:
        minimum = simplify(node.min, self.bounds)
        extent = simplify(node.extent, self.bounds)
        count = const_int_value(extent)
        if count is not None and count <= 0:
            return NOOP
        if count == 1 and node.kind is not ForKind.THREAD_BINDING:
            return self.visit(substitute(node.body, {node.loop_var: minimum}))
        lo, _ = const_int_bound(minimum, self.bounds)
        _, hi_min = const_int_bound(minimum, self.bounds)
        _, hi_ext = const_int_bound(extent, self.bounds)
        if lo is not None and hi_min is not None and hi_ext is not None:
            self.bounds[node.loop_var] = (lo, hi_min + max(hi_ext - 1, 0))
        body = self.visit(node.body)
        self.bounds.pop(node.loop_var, None)
        if body is NOOP:
            return NOOP
        if body is node.body and minimum is node.min and extent is node.extent:
            return node
        return replace(node, min=minimum, extent=extent, body=body)

    def visit_IfThenElse(self, node: IfThenElse) -> Stmt:
        condition = simplify(node.condition, self.bounds)
        if can_prove(condition, self.bounds):
            return self.visit(node.then_case)
        if can_prove(logical_not(condition), self.bounds):
            return NOOP if node.else_case is None else self.visit(node.else_case)
        then_case = self.visit(node.then_case)
        else_case = None if node.else_case is None else self.visit(node.else_case)
        if then_case is NOOP and else_case is None:
            return NOOP
        if condition is node.condition and then_case is node.then_case and else_case is node.else_case:
            return node
        return IfThenElse(condition, then_case, else_case)

    def visit_LetStmt(self, node: LetStmt) -> Stmt:
        value = simplify(node.value, self.bounds)
        lo, hi = const_int_bound(value, self.bounds)
        if lo is not None and hi is not None:
            self.bounds[node.var] = (lo, hi)
        body = self.visit(node.body)
        self.bounds.pop(node.var, None)
        if value is node.value and body is node.body:
            return node
        return LetStmt(node.var, value, body)


def simplify_func(func: PrimFunc) -> PrimFunc:
    """Simplify ``func``'s body (see the module docstring)."""
    # a symbolic size declared with a maximum takes no larger value (calls are checked): its loops get bounds too
    sizes = {v: v.declared_range() for v in func.size_vars if v.max_value is not None or v.min_value}
    body = _Simplifier(sizes).visit(func.body)
    return func if body is func.body else replace(func, body=body)
