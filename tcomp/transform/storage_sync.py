"""Insert ``__syncthreads()`` where threads of a block read shared memory that others wrote, or overwrite shared
memory that others may still read.

Rewrite: the kernel body is scanned in execution order with the shared buffers written and read since the last
barrier. A statement that reads a buffer written since then (read after write) or writes a buffer read since then
(write after read) gets a barrier right before it, at the outermost level of the sequence where the conflict shows,
so a loop that conflicts as a whole gets one barrier before the loop, not one per iteration. A loop is scanned until
the state at the start of its body is stable, so a conflict between the end of one iteration and the start of the
next (the next tile's fetch overwriting the tile still being read) gets a barrier at the top of the body.

Barriers may only sit in code every thread of the block runs: loops bound to ``threadIdx`` name the thread's index and
are transparent, as are loops and conditions that do not depend on it. A condition or loop bound that depends on the
thread (or on memory) is divergent: a barrier goes before it, never inside; one needed inside raises ``GPUError``.

Conservative: accesses are compared by buffer, not by index, so two statements touching disjoint parts of one shared
buffer are still separated. Assumes lowering placed guards around the innermost statements (a GPU schedule does).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tcomp.ir.expr import BufferLoad, Expr
from tcomp.ir.functor import free_vars, post_order_visit
from tcomp.ir.gpu import GPUError, barrier, is_launch_loop
from tcomp.ir.stmt import Allocate, BufferStore, For, IfThenElse, LetStmt, PrimFunc, SeqStmt, Stmt, seq


@dataclass(frozen=True)
class _State:
    """Shared buffers (by id) written and read since the last barrier."""

    writes: frozenset[int] = frozenset()
    reads: frozenset[int] = frozenset()

    def conflicts(self, other: _State) -> bool:
        return bool(other.reads & self.writes or other.writes & self.reads)

    def union(self, other: _State) -> _State:
        return _State(self.writes | other.writes, self.reads | other.reads)


_EMPTY = _State()


def _shared_accesses(stmt: Stmt) -> _State:
    writes: set[int] = set()
    reads: set[int] = set()

    def visit(node: object) -> None:
        if isinstance(node, BufferStore) and node.buffer.scope == "shared":
            writes.add(id(node.buffer))
        elif isinstance(node, BufferLoad) and node.buffer.scope == "shared":
            reads.add(id(node.buffer))

    post_order_visit(stmt, visit)
    return _State(frozenset(writes), frozenset(reads))


def _reads_memory(expr: Expr) -> bool:
    found = False

    def visit(node: object) -> None:
        nonlocal found
        found = found or isinstance(node, BufferLoad)

    post_order_visit(expr, visit)
    return found


class _Planner:
    def __init__(self, kernel_name: str) -> None:
        self.kernel_name = kernel_name
        self.varying: set[int] = set()  # ids of variables whose value differs between threads of a block
        self.accesses: dict[int, _State] = {}

    def access(self, stmt: Stmt) -> _State:
        found = self.accesses.get(id(stmt))
        if found is None:
            found = _shared_accesses(stmt)
            self.accesses[id(stmt)] = found
        return found

    def is_varying(self, expr: Expr) -> bool:
        if any(id(v) in self.varying for v in free_vars(expr)):
            return True
        return _reads_memory(expr)

    def visit(self, stmt: Stmt, state: _State) -> tuple[Stmt, _State]:
        """``stmt`` with barriers inserted, and the state after it."""
        if isinstance(stmt, SeqStmt):
            items: list[Stmt] = []
            for item in stmt.seq:
                new, state = self.visit(item, state)
                items.append(new)
            if all(a is b for a, b in zip(items, stmt.seq)):
                return stmt, state
            return seq(*items), state
        needs_barrier = state.conflicts(self.access(stmt))
        if needs_barrier:
            state = _EMPTY
        new, state = self.inside(stmt, state)
        return (seq(barrier(), new) if needs_barrier else new), state

    def inside(self, stmt: Stmt, state: _State) -> tuple[Stmt, _State]:
        if isinstance(stmt, For) and is_launch_loop(stmt):
            if stmt.thread_tag.startswith("threadIdx."):
                self.varying.add(id(stmt.loop_var))
            body, state = self.visit(stmt.body, state)
            return (stmt if body is stmt.body else replace(stmt, body=body)), state
        if isinstance(stmt, (Allocate, LetStmt)):
            if isinstance(stmt, LetStmt) and self.is_varying(stmt.value):
                self.varying.add(id(stmt.var))
            body, state = self.visit(stmt.body, state)
            return (stmt if body is stmt.body else replace(stmt, body=body)), state
        if isinstance(stmt, For) and not (self.is_varying(stmt.min) or self.is_varying(stmt.extent)):
            return self.uniform_loop(stmt, state)
        if isinstance(stmt, IfThenElse) and not self.is_varying(stmt.condition):
            then_case, then_state = self.visit(stmt.then_case, state)
            else_case, else_state = (None, state) if stmt.else_case is None else self.visit(stmt.else_case, state)
            if then_case is stmt.then_case and else_case is stmt.else_case:
                return stmt, then_state.union(else_state)
            return IfThenElse(stmt.condition, then_case, else_case), then_state.union(else_state)
        if isinstance(stmt, (For, IfThenElse)):
            self.check_divergent(stmt, state)
        return stmt, state.union(self.access(stmt))

    def uniform_loop(self, loop: For, state: _State) -> tuple[Stmt, _State]:
        entry = state
        while True:
            body, end = self.visit(loop.body, entry)
            merged = entry.union(end)
            if merged == entry:
                break
            entry = merged
        return (loop if body is loop.body else replace(loop, body=body)), merged

    def check_divergent(self, stmt: For | IfThenElse, state: _State) -> None:
        """Raise if ``stmt``, whose threads may take different paths, would need a barrier inside."""
        if isinstance(stmt, For):
            probe, _ = self.uniform_loop(stmt, state)
        else:
            probe, _ = self.visit(stmt.then_case, state)
            if probe is stmt.then_case and stmt.else_case is not None:
                probe, _ = self.visit(stmt.else_case, state)
                probe = stmt if probe is stmt.else_case else probe
            else:
                probe = stmt if probe is stmt.then_case else probe
        if probe is not stmt:
            what = f"loop {stmt.loop_var.name}" if isinstance(stmt, For) else f"condition {stmt.condition}"
            raise GPUError(
                f"kernel {self.kernel_name}: shared memory written and read inside the {what}, which depends on the "
                "thread: the __syncthreads() it needs would not be reached by every thread of the block"
            )


def storage_sync(kernel: PrimFunc) -> PrimFunc:
    """Insert the barriers shared memory needs (see the module docstring)."""
    body, _ = _Planner(kernel.name).visit(kernel.body, _EMPTY)
    return kernel if body is kernel.body else replace(kernel, body=body)

