"""Give each group of threads its own copy of a cross-thread reduction's shared buffer.

A cross-thread reduction over ``threadIdx.x`` (``schedule/cross_thread.py``) combines the partial results of the
threads of one row of the block in a shared buffer ``B.red`` of ``T`` slots, where ``T`` is the block's size along x.
Threads that differ along y or z reduce other rows (or the same row again), so each such group needs its own ``T``
slots. Rewrite, for a block of ``(T, Y, Z)`` threads::

    allocate B.red: [T], shared; S(B.red[i])
    ->  allocate B.red: [T * Y * Z], shared
        for ty in thread_binding(0, Y, threadIdx.y): for tz in thread_binding(0, Z, threadIdx.z):
            S(B.red[(tz * Y + ty) * T + i])

The buffers are those named by the ``thread_reduce`` annotation of a thread loop. Assumes flattened buffers and the
``launch`` attribute of ``bind_threads``. Returns the same kernel when it has no cross-thread reduction or its block
has threads along the reduced dimension only.
"""

from __future__ import annotations

from dataclasses import replace

from tcomp.arith import simplify
from tcomp.ir.buffer import Buffer
from tcomp.ir.expr import BufferLoad, Expr, Var, const
from tcomp.ir.functor import Mutator, post_order_visit
from tcomp.ir.gpu import THREAD_TAGS
from tcomp.ir.stmt import Allocate, BufferStore, For, ForKind, PrimFunc, Stmt
from tcomp.schedule.cross_thread import THREAD_REDUCE
from tcomp.transform.bind_threads import launch_dims


class _Redirect(Mutator):
    def __init__(self, old: Buffer, new: Buffer, offset: Expr) -> None:
        self.old, self.new, self.offset = old, new, offset

    def visit_BufferLoad(self, node: BufferLoad) -> Expr:
        if node.buffer is not self.old:
            return self.generic_visit(node)
        (index,) = (self.visit(i) for i in node.indices)
        return BufferLoad(self.new, (self.offset + index,), node.dtype)

    def visit_BufferStore(self, node: BufferStore) -> Stmt:
        if node.buffer is not self.old:
            return self.generic_visit(node)
        (index,) = (self.visit(i) for i in node.indices)
        return BufferStore(self.new, self.visit(node.value), (self.offset + index,))


class _Replicator(Mutator):
    def __init__(self, reduced: dict[str, str], block: tuple[int, int, int]) -> None:
        self.reduced = reduced
        self.block = block

    def visit_Allocate(self, node: Allocate) -> Stmt:
        tag = self.reduced.get(node.buffer.name)
        body = self.visit(node.body)
        others = [(t, n) for t, n in zip(THREAD_TAGS, self.block) if t != tag and n > 1]
        if tag is None or node.buffer.scope != "shared" or not others:
            return node if body is node.body else replace(node, body=body)
        group: Expr | None = None
        loops: list[tuple[Var, str, int]] = []
        for thread_tag, count in reversed(others):  # z outermost
            var = Var(f"{node.buffer.name}.{thread_tag}", "int32")
            loops.append((var, thread_tag, count))
            group = var if group is None else group * count + var
        assert group is not None
        (slots,) = node.buffer.shape
        copies = 1
        for _, count in others:
            copies *= count
        new = replace(node.buffer, shape=(simplify(slots * copies),))
        stmt = _Redirect(node.buffer, new, group * slots).visit(body)
        for var, thread_tag, count in reversed(loops):
            stmt = For(var, const(0), const(count), ForKind.THREAD_BINDING, stmt, thread_tag)
        return Allocate(new, stmt)


def replicate_reduce_buffers(kernel: PrimFunc) -> PrimFunc:
    """Replicate cross-thread reduction buffers per thread group (see the module docstring)."""
    reduced: dict[str, str] = {}

    def collect(node: object) -> None:
        if isinstance(node, For):
            for key, value in node.annotations:
                if key == THREAD_REDUCE:
                    reduced[str(value)] = node.thread_tag

    post_order_visit(kernel.body, collect)
    if not reduced:
        return kernel
    body = _Replicator(reduced, launch_dims(kernel).block).visit(kernel.body)
    return kernel if body is kernel.body else replace(kernel, body=body)
