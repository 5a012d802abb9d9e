"""Simplify every expression of a function, knowing the range of each enclosing loop variable.

Rewrites: expressions through ``tcomp.arith.simplify`` with loop-variable bounds (and the declared ranges of the
symbolic sizes, ``Var.max_value``, so a loop over a symbolic extent is bounded too); guards proved true are
dropped (proved false: replaced by their else branch); loops of extent 0 vanish; loops of extent 1 (other than
thread-bound ones) become their body with the variable replaced by the loop's min.
Assumes loop mins and extents do not depend on the loop's own variable. Returns the same function if nothing changed.
"""

from __future__ import annotations

from dataclasses import replace

from tcomp.arith import Analyzer
from tcomp.ir.expr import Expr, Var, const_int_value, logical_not
from tcomp.ir.functor import Mutator, substitute
from tcomp.ir.stmt import NOOP, For, ForKind, IfThenElse, LetStmt, PrimFunc, Stmt


class _Simplifier(Mutator):
    """One ``Analyzer`` for the whole walk: its simplifier and memo tables live while the bounds stay the same (the
    expressions of one loop body)."""

    def __init__(self, bounds: dict[Var, tuple[int, int]]) -> None:
        self.analyzer = Analyzer(bounds)
        self.values: dict[Var, Expr] = {}  # the variables of enclosing loops of one iteration: their one value

    def visit(self, node: object) -> object:
        if isinstance(node, Expr):
            return self._expr(node)
        return super().visit(node)

    def _expr(self, e: Expr) -> Expr:
        return self.analyzer.simplify(substitute(e, self.values) if self.values else e)

    def _under(self, var: Var, known: tuple[int, int] | None, body: Stmt) -> Stmt:
        """``body`` simplified with ``var`` in ``known`` (None: unbounded, even where an outer binding of the same
        variable bounded it)."""
        if known is not None and known[0] <= known[1]:
            self.analyzer.bind(var, *known)
        else:
            self.analyzer.unbind(var)
        try:
            return self.visit(body)
        finally:
            self.analyzer.unbind(var)

    def visit_For(self, node: For) -> Stmt:
        minimum = self._expr(node.min)
        extent = self._expr(node.extent)
        count = const_int_value(extent)
        if count is not None and count <= 0:
            return NOOP
        if count == 1 and node.kind is not ForKind.THREAD_BINDING:
            # the body's expressions take the value as they are simplified: no copy of the body first
            self.values[node.loop_var] = minimum
            try:
                return self.visit(node.body)
            finally:
                del self.values[node.loop_var]
        lo, hi_min = self.analyzer.const_int_bound(minimum)
        _, hi_ext = self.analyzer.const_int_bound(extent)
        known = None if lo is None or hi_min is None or hi_ext is None else (lo, hi_min + max(hi_ext - 1, 0))
        body = self._under(node.loop_var, known, node.body)
        if body is NOOP:
            return NOOP
        if body is node.body and minimum is node.min and extent is node.extent:
            return node
        return replace(node, min=minimum, extent=extent, body=body)

    def visit_IfThenElse(self, node: IfThenElse) -> Stmt:
        condition = self._expr(node.condition)
        if self.analyzer.can_prove(condition):
            return self.visit(node.then_case)
        if self.analyzer.can_prove(logical_not(condition)):
            return NOOP if node.else_case is None else self.visit(node.else_case)
        then_case = self.visit(node.then_case)
        else_case = None if node.else_case is None else self.visit(node.else_case)
        if then_case is NOOP and else_case is None:
            return NOOP
        if condition is node.condition and then_case is node.then_case and else_case is node.else_case:
            return node
        return IfThenElse(condition, then_case, else_case)

    def visit_LetStmt(self, node: LetStmt) -> Stmt:
        value = self._expr(node.value)
        lo, hi = self.analyzer.const_int_bound(value)
        body = self._under(node.var, None if lo is None or hi is None else (lo, hi), node.body)
        if value is node.value and body is node.body:
            return node
        return LetStmt(node.var, value, body)


def simplify_func(func: PrimFunc) -> PrimFunc:
    """Simplify ``func``'s body (see the module docstring)."""
    # a symbolic size declared with a maximum takes no larger value (calls are checked): its loops get bounds too
    sizes = {v: v.declared_range() for v in func.size_vars if v.max_value is not None or v.min_value}
    body = _Simplifier(sizes).visit(func.body)
    return func if body is func.body else replace(func, body=body)
