"""Run-time checks of indices read from data (``te.checked_index``: ONNX Gather and the other index-taking ops).

Rewrite (``insert_index_checks``): each statement whose expressions hold ``checked_index(raw, n)`` calls is
preceded by ``assert -n <= raw < n`` per call, failing the call with "index <raw> is out of range for an axis of
<n> elements", and each call becomes the wrapped index ``raw < 0 ? raw + n : raw``. A call inside a branch of a
``select`` is checked only when that branch is taken. An assertion whose condition does not depend on a loop's
variable, reads no buffer the loop writes or allocates, and sits first in the loop's body moves above the loop when
the loop provably runs at least once (so a gather's row copy still vectorizes: the row index is checked once per
row, not per element).

``drop_index_checks`` is the rewrite for targets without run-time assertions (CUDA kernels): the calls become the
wrapped index, and the clamp that ``te.checked_index`` puts around each call keeps every access inside the axis.

Assumes: loop IR before flattening. Guarantees: no ``checked_index`` call is left.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tcomp.ir import expr as E
from tcomp.ir.functor import Mutator, Visitor, child_fields, post_order_visit, uses_var
from tcomp.ir.stmt import Allocate, AssertStmt, BufferStore, For, PrimFunc, Stmt
from tcomp.te.math import CHECKED_INDEX
from tcomp.transform.bounds_check import PathVisitor

MESSAGE = "index {} is out of range for an axis of {} elements"


def _is_check(node: Any) -> bool:
    return isinstance(node, E.Call) and node.op == CHECKED_INDEX


def _wrapped(raw: E.Expr, extent: E.Expr) -> E.Expr:
    return E.select(raw < 0, raw + extent, raw)


class _Collector(PathVisitor):
    """The checked-index calls of an expression (inner ones first) with the path condition of each."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[E.Call, E.Expr | None]] = []

    def visit_Call(self, node: E.Call) -> None:
        self.generic_visit(node)
        if _is_check(node):
            self.calls.append((node, self.condition()))


class _Rewriter(Mutator):
    def __init__(self, checked: bool) -> None:
        self.checked = checked

    def visit(self, node: Any) -> Any:
        if not isinstance(node, Stmt):
            return super().visit(node)
        collector = _Collector()
        for name in child_fields(type(node)):
            value = getattr(node, name)
            for item in value if isinstance(value, tuple) else (value,):
                if isinstance(item, E.Expr):
                    collector.visit(item)
        rewritten = self.generic_visit(node)
        if isinstance(rewritten, For):
            rewritten = _hoist(rewritten)
        if not self.checked:
            return rewritten
        for call, path in reversed(collector.calls):
            raw, extent = (self.visit(a) for a in call.args)
            valid = E.logical_and(raw >= -extent, raw < extent)
            if path is not None:
                valid = E.logical_or(E.logical_not(self.visit(path)), valid)
            rewritten = AssertStmt(valid, MESSAGE, (raw, extent), rewritten)
        return rewritten

    def visit_Call(self, node: E.Call) -> E.Expr:
        visited = self.generic_visit(node)
        if _is_check(visited):
            return _wrapped(*visited.args)
        return visited


def _hoist(loop: For) -> Stmt:
    """Move the invariant assertions that open ``loop``'s body above the loop (see the module docstring)."""
    extent = E.const_int_value(loop.extent)
    if extent is None or extent < 1:
        return loop
    hoisted: list[AssertStmt] = []
    body = loop.body
    if not isinstance(body, AssertStmt):
        return loop
    changed = _touched_buffers(body)
    while isinstance(body, AssertStmt) and _invariant(body, loop.loop_var, changed):
        hoisted.append(body)
        body = body.body
    if not hoisted:
        return loop
    result: Stmt = replace(loop, body=body)
    for check in reversed(hoisted):
        result = replace(check, body=result)
    return result


def _invariant(check: AssertStmt, var: E.Var, changed: set[int]) -> bool:
    parts = (check.condition, *check.values)
    if any(uses_var(part, [var]) for part in parts):
        return False
    read: set[int] = set()

    def collect(node: Any) -> None:
        if isinstance(node, E.BufferLoad):
            read.add(id(node.buffer))

    for part in parts:
        post_order_visit(part, collect)
    return not read & changed


class _Stores(Visitor):
    """The buffers that statements store to or allocate (expressions hold no statement: not walked)."""

    def __init__(self) -> None:
        self.found: set[int] = set()

    def visit(self, node: Any) -> None:
        if not isinstance(node, E.Expr):
            super().visit(node)

    def visit_BufferStore(self, node: BufferStore) -> None:
        self.found.add(id(node.buffer))

    def visit_Allocate(self, node: Allocate) -> None:
        self.found.add(id(node.buffer))
        self.generic_visit(node)


def _touched_buffers(stmt: Stmt) -> set[int]:
    """Buffers that ``stmt`` stores to or allocates."""
    finder = _Stores()
    finder.visit(stmt)
    return finder.found


def insert_index_checks(func: PrimFunc) -> PrimFunc:
    """Check every ``checked_index`` at run time (see the module docstring)."""
    body = _Rewriter(checked=True).visit(func.body)
    return func if body is func.body else replace(func, body=body)


def drop_index_checks(func: PrimFunc) -> PrimFunc:
    """Replace every ``checked_index`` by the wrapped index, without a check (see the module docstring)."""
    body = _Rewriter(checked=False).visit(func.body)
    return func if body is func.body else replace(func, body=body)
