"""Checked mode: every buffer access verifies its indices before it happens.

Rewrite: a statement that loads or stores ``B[i0, ..., ik]`` is preceded by
``assert 0 <= i_d < shape_d`` for every dimension ``d``, raising at run time
"index out of bounds: buffer 'B' dimension d: index <value> is not in [0, <extent>)". A load inside a branch of a
``select`` is checked only when that branch is taken. Runs before flattening (indices are still per dimension).
Also sets the ``CHECK_DIVISION`` attribute: an integer division by zero fails the call instead of giving 0.
"""

from __future__ import annotations

from dataclasses import replace

from tcomp.ir.expr import BufferLoad, Expr, Select, cast, logical_and, logical_not, logical_or
from tcomp.ir.functor import Mutator, Visitor
from tcomp.ir.stmt import CHECK_DIVISION, AssertStmt, BufferStore, Evaluate, IfThenElse, PrimFunc, Stmt


class PathVisitor(Visitor):
    """A visitor that knows, at each node, the condition under which it is evaluated (``condition()``: the
    conditions of the ``select`` branches around it, or None when it always is)."""

    def __init__(self) -> None:
        self.path: list[Expr] = []

    def condition(self) -> Expr | None:
        if not self.path:
            return None
        result = self.path[0]
        for c in self.path[1:]:
            result = logical_and(result, c)
        return result

    def visit_Select(self, node: Select) -> None:
        self.visit(node.condition)
        self.path.append(node.condition)
        self.visit(node.true_value)
        self.path[-1] = logical_not(node.condition)
        self.visit(node.false_value)
        self.path.pop()


class _AccessCollector(PathVisitor):
    """Collects (buffer, dimension, index, path condition) for every load in an expression."""

    def __init__(self) -> None:
        super().__init__()
        self.accesses: list[tuple[object, int, Expr, Expr | None]] = []

    def visit_BufferLoad(self, node: BufferLoad) -> None:
        for dim, index in enumerate(node.indices):
            self.visit(index)
            self.accesses.append((node.buffer, dim, index, self.condition()))


def _checks(accesses: list[tuple[object, int, Expr, Expr | None]], body: Stmt) -> Stmt:
    for buffer, dim, index, path in reversed(accesses):
        extent = buffer.shape[dim]  # type: ignore[attr-defined]
        in_bounds = logical_and(index >= 0, index < extent)
        if path is not None:
            in_bounds = logical_or(logical_not(path), in_bounds)
        message = (
            f"index out of bounds: buffer '{buffer.name}' dimension {dim}: "  # type: ignore[attr-defined]
            "index {} is not in [0, {})"
        )
        body = AssertStmt(in_bounds, message, (cast(index, "int64"), cast(extent, "int64")), body)
    return body


class _Checker(Mutator):
    def visit_BufferStore(self, node: BufferStore) -> Stmt:
        collector = _AccessCollector()
        collector.visit(node.value)
        for index in node.indices:
            collector.visit(index)
        for dim, index in enumerate(node.indices):
            collector.accesses.append((node.buffer, dim, index, None))
        return _checks(collector.accesses, node)

    def visit_IfThenElse(self, node: IfThenElse) -> Stmt:
        collector = _AccessCollector()
        collector.visit(node.condition)
        rewritten = self.generic_visit(node)
        return _checks(collector.accesses, rewritten)

    def visit_Evaluate(self, node: Evaluate) -> Stmt:
        collector = _AccessCollector()
        collector.visit(node.value)
        return _checks(collector.accesses, node)


def insert_bounds_checks(func: PrimFunc) -> PrimFunc:
    """Guard every access of ``func`` with an index assertion (see the module docstring)."""
    return replace(func, body=_Checker().visit(func.body)).with_attr(CHECK_DIVISION, True)
