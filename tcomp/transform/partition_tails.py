"""Split the guarded tail off a serial loop, so the iterations before it run without the guards.

Rewrite: ``for v in [m, m + n): S(v)`` (a serial loop with constant bounds) whose body holds guards
(``IfThenElse``) that depend on ``v`` and hold for every iteration ``v < m + k`` (``0 < k < n``, whatever the loops
inside the body iterate over), but not for all ``n``, becomes

    for v in [m, m + k): S(v)          # the guards hold: the next simplify drops them
    for v' in [m + k, m + n): S(v')    # the tail, a renamed copy; one iteration becomes S(m + k)

``k`` is the longest prefix on which every such guard is proved (guards proved on no prefix are left alone and do
not count). A split whose factor does not divide its extent (``split(ow, 12)`` of 109 columns) guards the body of
its inner loops with ``outer * 12 + inner < 109``: inside a register tile that guard sits around every multiply-add;
after this pass the full tiles run without it, and the last tile's inner loops split again, into the columns that
exist (unguarded) and the rest (guards proved false, dropped by simplify).

Loops are split outermost first, each under the bounds its enclosing copies give the variables around it. Every
split copies a loop body, and splits nest (a tail's inner loops split again), so the copies could grow as 2^depth:
the pass stops splitting once the copies would take the function past ``GROWTH`` times its statements (a
convolution's register tile with tails on columns and channels grows 2-3x; a padded convolution whose every loop
reads a padding guard would grow 700x, taking a minute to compile, for no gain).

Assumes: loop bounds do not depend on the loop's own variable. Guarantees: the same iterations in the same order;
only serial and unrolled loops are split (never parallel, vectorized or thread-bound ones); the function is returned
unchanged when no loop qualifies.
"""

from __future__ import annotations

from dataclasses import replace

from tcomp.arith import can_prove, const_int_bound
from tcomp.ir.expr import Expr, Var, const, const_int_value
from tcomp.ir.functor import Mutator, substitute, uses_var
from tcomp.ir.stmt import For, ForKind, IfThenElse, LetStmt, PrimFunc, Stmt, seq
from tcomp.transform.unroll import renamed_copy

Bounds = dict[Var, tuple[int, int]]
_SPLIT_KINDS = (ForKind.SERIAL, ForKind.UNROLLED)
GROWTH = 4  # the most statements the pass leaves, as a multiple of the function's own


def _guards(stmt: Stmt, var: Var, bounds: Bounds, found: list[tuple[Expr, Bounds]]) -> None:
    """Every guard under ``stmt`` whose condition reads ``var``, with the bounds of the loops around it."""
    if isinstance(stmt, For):
        lo, hi = const_int_value(stmt.min), const_int_value(stmt.extent)
        inner = dict(bounds)
        if lo is not None and hi is not None and hi > 0:
            inner[stmt.loop_var] = (lo, lo + hi - 1)
        _guards(stmt.body, var, inner, found)
        return
    if isinstance(stmt, IfThenElse):
        if uses_var(stmt.condition, [var]):
            found.append((stmt.condition, bounds))
        _guards(stmt.then_case, var, bounds, found)
        if stmt.else_case is not None:
            _guards(stmt.else_case, var, bounds, found)
        return
    for child in _children(stmt):
        _guards(child, var, bounds, found)


def _children(stmt: Stmt) -> list[Stmt]:
    out: list[Stmt] = []
    for name in ("body", "seq", "then_case", "else_case"):
        value = getattr(stmt, name, None)
        if isinstance(value, Stmt):
            out.append(value)
        elif isinstance(value, tuple):
            out.extend(item for item in value if isinstance(item, Stmt))
    return out


def _proved_prefix(condition: Expr, var: Var, start: int, count: int, bounds: Bounds) -> int:
    """The largest ``k <= count`` such that ``condition`` holds for ``var`` in ``[start, start + k)`` (binary search:
    a longer range is never easier to prove)."""
    low, high = 0, count
    while low < high:
        middle = (low + high + 1) // 2
        if can_prove(condition, {**bounds, var: (start, start + middle - 1)}):
            low = middle
        else:
            high = middle - 1
    return low


def _statements(stmt: Stmt) -> int:
    return 1 + sum(_statements(child) for child in _children(stmt))


class _Partitioner(Mutator):
    def __init__(self, budget: int) -> None:
        self.bounds: Bounds = {}
        self.budget = budget  # statements the copies may still add

    def visit_For(self, node: For) -> Stmt:
        start, count = const_int_value(node.min), const_int_value(node.extent)
        if start is None or count is None or count <= 0:
            return self.generic_visit(node)
        split = None
        if node.kind in _SPLIT_KINDS and count > 1:
            size = _statements(node) + 1  # the tail loop and its body, and the sequence of the two
            if size <= self.budget:
                split = self._split(node, start, count)
                if split is not None:
                    self.budget -= size
        if split is None:
            return self._visit_loop(node, start, count)
        head = replace(node, extent=const(split, node.extent.dtype))
        tail_var = Var(node.loop_var.name, node.loop_var.dtype)
        tail_body = renamed_copy(substitute(node.body, {node.loop_var: tail_var}))
        tail = replace(node, loop_var=tail_var, min=const(start + split, node.min.dtype),
                       extent=const(count - split, node.extent.dtype), body=tail_body)
        return seq(self._visit_loop(head, start, split), self._visit_loop(tail, start + split, count - split))

    def _split(self, node: For, start: int, count: int) -> int | None:
        found: list[tuple[Expr, Bounds]] = []
        _guards(node.body, node.loop_var, dict(self.bounds), found)
        prefixes = [_proved_prefix(cond, node.loop_var, start, count, bounds) for cond, bounds in found]
        useful = [k for k in prefixes if 0 < k < count]
        return min(useful) if useful else None

    def _visit_loop(self, node: For, start: int, count: int) -> Stmt:
        self.bounds[node.loop_var] = (start, start + count - 1)
        body = self.visit(node.body)
        self.bounds.pop(node.loop_var, None)
        return node if body is node.body else replace(node, body=body)

    def visit_LetStmt(self, node: LetStmt) -> Stmt:
        lo, hi = const_int_bound(node.value, self.bounds)
        if lo is not None and hi is not None:
            self.bounds[node.var] = (lo, hi)
        body = self.visit(node.body)
        self.bounds.pop(node.var, None)
        return node if body is node.body else LetStmt(node.var, node.value, body)


def partition_tails(func: PrimFunc) -> PrimFunc:
    """Split guarded tails off serial loops (see the module docstring)."""
    body = _Partitioner((GROWTH - 1) * _statements(func.body)).visit(func.body)
    return func if body is func.body else replace(func, body=body)
