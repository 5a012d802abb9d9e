"""Flatten multi-dimensional buffer accesses to one row-major index.

Rewrite: ``B[i0, ..., ik]`` -> ``B[((i0 * d1 + i1) * d2 + ...) + ik]`` for loads and stores; allocated buffers get the
1-d shape ``[d0 * ... * dk]``. Parameter buffers keep their logical shape (the runtime checks calls against it) but
are indexed with one index afterwards. Guarantees every access has exactly one index.
"""

from __future__ import annotations

from dataclasses import replace

from tcomp.arith import simplify
from tcomp.ir.buffer import Buffer
from tcomp.ir.expr import BufferLoad, Expr, const
from tcomp.ir.functor import Mutator
from tcomp.ir.stmt import Allocate, BufferStore, PrimFunc, Stmt


def flat_index(shape: tuple[Expr, ...], indices: tuple[Expr, ...], strides: tuple[Expr, ...] | None = None) -> Expr:
    if not indices:
        return const(0)
    if strides is not None:
        index: Expr = const(0)
        for stride, i in zip(strides, indices):
            index = index + i * stride
        return index
    index = indices[0]
    for dim, i in zip(shape[1:], indices[1:]):
        index = index * dim + i
    return index


def flat_size(shape: tuple[Expr, ...]) -> Expr:
    size: Expr = const(1)
    for dim in shape:
        size = size * dim
    return size


class _Flattener(Mutator):
    def __init__(self) -> None:
        self.remap: dict[Buffer, Buffer] = {}

    def target(self, buffer: Buffer) -> Buffer:
        return self.remap.get(buffer, buffer)

    def visit_Allocate(self, node: Allocate) -> Stmt:
        buffer = node.buffer
        size = flat_size(buffer.shape) if buffer.strides is None else buffer.shape[0] * buffer.strides[0]
        flat = replace(buffer, shape=(simplify(size),), strides=None)
        self.remap[node.buffer] = flat
        return Allocate(flat, self.visit(node.body))

    def visit_BufferLoad(self, node: BufferLoad) -> Expr:
        indices = tuple(self.visit(i) for i in node.indices)
        if len(indices) == 1 and node.buffer not in self.remap:
            if indices[0] is node.indices[0]:
                return node
            return BufferLoad(node.buffer, indices, node.dtype)
        index = flat_index(node.buffer.shape, indices, node.buffer.strides)
        return BufferLoad(self.target(node.buffer), (index,), node.dtype)

    def visit_BufferStore(self, node: BufferStore) -> Stmt:
        indices = tuple(self.visit(i) for i in node.indices)
        value = self.visit(node.value)
        index = flat_index(node.buffer.shape, indices, node.buffer.strides)
        return BufferStore(self.target(node.buffer), value, (index,))


def flatten_buffers(func: PrimFunc) -> PrimFunc:
    """Give every buffer access a single index (see the module docstring)."""
    return replace(func, body=_Flattener().visit(func.body))
