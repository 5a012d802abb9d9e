"""Double buffering: fill the next iteration's shared tile while the current one is read.

Applies to a serial loop whose body starts with the allocations of double-buffered stages (``Stage.double_buffer``,
named by the kernel attribute ``double_buffer``), then the statements that fill them, then the rest, which reads
them. Rewrite, with ``F(l, S)`` the fills of iteration ``l`` into copy ``S`` and ``R(l, S)`` the rest::

    for l in [m, m + n): allocate S; F(l, S); R(l, S)
    ->  allocate S.0, S.1
        F(m, S.0)
        for h in [0, ceil(n / 2)):
          if 2h + 1 < n: F(m + 2h + 1, S.1)          # loads of the next tile ...
          R(m + 2h, S.0)                             # ... overlap the computation on this one
          if 2h + 1 < n:
            if 2h + 2 < n: F(m + 2h + 2, S.0)
            R(m + 2h + 1, S.1)

The loop is unrolled twice so each copy is a buffer of its own: ``storage_sync`` (run after) then needs one barrier
per iteration instead of two. Loop and let variables inside the copies are renamed apart. Raises ``GPUError`` when
a double-buffered stage shares its loop with storage that is not double-buffered, or when the rest of the body
writes the tile. Returns the same kernel when no stage is double-buffered.
"""

from __future__ import annotations

from dataclasses import replace

from tcomp.arith import simplify
from tcomp.ir.buffer import Buffer
from tcomp.ir.expr import BufferLoad, Expr, Var, const, floordiv
from tcomp.ir.functor import Mutator, post_order_visit, substitute
from tcomp.ir.gpu import GPUError
from tcomp.ir.stmt import Allocate, BufferStore, For, ForKind, IfThenElse, LetStmt, PrimFunc, SeqStmt, Stmt, seq

ATTR = "double_buffer"  # kernel attribute: names of the buffers of double-buffered stages


class _Copy(Mutator):
    """A copy of a statement with buffers swapped and every loop and let variable fresh."""

    def __init__(self, buffers: dict[int, Buffer]) -> None:
        self.buffers = buffers
        self.vars: dict[Var, Var] = {}

    def visit_Var(self, node: Var) -> Var:
        return self.vars.get(node, node)

    def visit_For(self, node: For) -> Stmt:
        fresh = Var(node.loop_var.name, node.loop_var.dtype)
        self.vars[node.loop_var] = fresh
        return replace(node, loop_var=fresh, min=self.visit(node.min), extent=self.visit(node.extent),
                       body=self.visit(node.body))

    def visit_LetStmt(self, node: LetStmt) -> Stmt:
        fresh = Var(node.var.name, node.var.dtype)
        value = self.visit(node.value)
        self.vars[node.var] = fresh
        return LetStmt(fresh, value, self.visit(node.body))

    def visit_BufferLoad(self, node: BufferLoad) -> Expr:
        indices = tuple(self.visit(i) for i in node.indices)
        return BufferLoad(self.buffers.get(id(node.buffer), node.buffer), indices, node.dtype)

    def visit_BufferStore(self, node: BufferStore) -> Stmt:
        indices = tuple(self.visit(i) for i in node.indices)
        buffer = self.buffers.get(id(node.buffer), node.buffer)
        return BufferStore(buffer, self.visit(node.value), indices)


def _accesses(stmt: Stmt) -> tuple[set[int], set[int]]:
    written: set[int] = set()
    read: set[int] = set()

    def visit(node: object) -> None:
        if isinstance(node, BufferStore):
            written.add(id(node.buffer))
        elif isinstance(node, BufferLoad):
            read.add(id(node.buffer))

    post_order_visit(stmt, visit)
    return written, read


class _Injector(Mutator):
    def __init__(self, kernel: str, names: frozenset[str]) -> None:
        self.kernel = kernel
        self.names = names

    def visit_For(self, node: For) -> Stmt:
        body = self.visit(node.body)
        loop = node if body is node.body else replace(node, body=body)
        chain: list[Buffer] = []
        inner = loop.body
        while isinstance(inner, Allocate):
            chain.append(inner.buffer)
            inner = inner.body
        wanted = [b for b in chain if b.name in self.names]
        if not wanted or loop.kind not in (ForKind.SERIAL, ForKind.UNROLLED):
            return loop
        where = f"kernel {self.kernel}: double_buffer at loop {loop.loop_var.name}"
        others = [b.name for b in chain if b.name not in self.names]
        if others:
            raise GPUError(f"{where}: {', '.join(others)} is allocated there too but not double-buffered")
        return self.rewrite(loop, chain, list(inner.seq) if isinstance(inner, SeqStmt) else [inner], where)

    def rewrite(self, loop: For, chain: list[Buffer], stmts: list[Stmt], where: str) -> Stmt:
        tiles = {id(b) for b in chain}
        count = 0
        while count < len(stmts) and _accesses(stmts[count])[0] & tiles:
            count += 1
        fills, rest = stmts[:count], stmts[count:]
        for stmt in rest:
            if _accesses(stmt)[0] & tiles:
                raise GPUError(f"{where}: the loop body writes the tile after reading it")
        if not fills or not rest:
            return loop
        first = {id(b): replace(b, name=f"{b.name}.0") for b in chain}
        second = {id(b): replace(b, name=f"{b.name}.1") for b in chain}
        half = Var(f"{loop.loop_var.name}.pair", loop.loop_var.dtype)
        n = loop.extent
        step = [simplify(2 * half + k) for k in range(3)]

        def part(statements: list[Stmt], buffers: dict[int, Buffer], offset: Expr) -> Stmt:
            moved = substitute(seq(*statements), {loop.loop_var: simplify(loop.min + offset)})
            return _Copy(buffers).visit(moved)

        has_next = step[1] < n
        body = seq(
            IfThenElse(has_next, part(fills, second, step[1])),
            part(rest, first, step[0]),
            IfThenElse(has_next, seq(IfThenElse(step[2] < n, part(fills, first, step[2])),
                                     part(rest, second, step[1]))),
        )
        pairs = simplify(floordiv(n + 1, 2))
        result: Stmt = seq(part(fills, first, const(0)), For(half, const(0), pairs, loop.kind, body))
        for buffer in reversed(chain):
            result = Allocate(first[id(buffer)], Allocate(second[id(buffer)], result))
        return result


def inject_double_buffer(kernel: PrimFunc) -> PrimFunc:
    """Double-buffer the tiles of stages marked ``double_buffer`` (see the module docstring)."""
    names = frozenset(kernel.attr(ATTR, ()))
    if not names:
        return kernel
    body = _Injector(kernel.name, names).visit(kernel.body)
    return kernel if body is kernel.body else replace(kernel, body=body)
