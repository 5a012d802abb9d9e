"""Flatten multi-dimensional buffer accesses to one row-major index.

Rewrite: ``B[i0, ..., ik]`` -> ``B[((i0 * d1 + i1) * d2 + ...) + ik]`` for loads and stores; allocated buffers get the
1-d shape ``[d0 * ... * dk]``. Parameter buffers keep their logical shape (the runtime checks calls against it) but
are indexed with one index afterwards.

Index width, per buffer: the flat index of a buffer whose element count provably stays within 2^31 (its extents'
upper bounds: constants, and symbolic dimensions by their declared range, ``Var.declared_range``) is computed in the
indices' own type, 32 bits for ordinary shapes; any other buffer's index (and an allocation's size) is computed in 64
bits, each index widened before it is multiplied. A parameter never holds more than 2^63 elements (it is a numpy
array); an allocation whose symbolic size may not fit 63 bits is preceded by checks of its partial products, so 64
bits always suffice at run time; a buffer whose constant shape alone exceeds 2^63 elements is a
``BufferTooLargeError`` naming it.

Guarantees every access has exactly one index.
"""

from __future__ import annotations

from dataclasses import replace

from tcomp.arith import declared_upper_bound, simplify
from tcomp.ir import dtype as dt
from tcomp.ir.buffer import Buffer
from tcomp.ir.expr import BufferLoad, Expr, cast, const, max_expr, select
from tcomp.ir.functor import Mutator, free_vars
from tcomp.ir.stmt import Allocate, AssertStmt, BufferStore, PrimFunc, Stmt

INT32_ELEMENTS = 1 << 31  # a buffer of at most this many elements has every flat index in int32
INT64_ELEMENTS = 1 << 63


class BufferTooLargeError(ValueError):
    """A buffer no index type can address."""


def _widen(value: Expr, wide: bool) -> Expr:
    return cast(value, "int64") if wide and value.dtype != "int64" else value


def flat_index(shape: tuple[Expr, ...], indices: tuple[Expr, ...], strides: tuple[Expr, ...] | None = None,
               wide: bool = False) -> Expr:
    """The row-major (or strided) flat index; ``wide`` computes it in int64, widening every operand first."""
    if not indices:
        return const(0, "int64" if wide else "int32")
    if strides is not None:
        index: Expr = const(0, "int64" if wide else "int32")
        for stride, i in zip(strides, indices):
            index = index + _widen(i, wide) * _widen(stride, wide)
        return index
    index = _widen(indices[0], wide)
    for dim, i in zip(shape[1:], indices[1:]):
        index = index * _widen(dim, wide) + _widen(i, wide)
    return index


def element_count(buffer: Buffer, wide: bool = False) -> Expr:
    """The number of elements the buffer's storage spans (padded rows included)."""
    if buffer.strides is not None:
        return _widen(buffer.shape[0], wide) * _widen(buffer.strides[0], wide)
    size: Expr = const(1, "int64" if wide else "int32")
    for dim in buffer.shape:
        size = size * _widen(dim, wide)
    return size


def _storage_dims(buffer: Buffer) -> tuple[Expr, ...]:
    """The factors of the buffer's element count."""
    return buffer.shape if buffer.strides is None else (buffer.shape[0], buffer.strides[0])


def _count_bound(buffer: Buffer) -> int | None:
    """An upper bound of the buffer's element count (None: unbounded)."""
    count = 1
    for dim in _storage_dims(buffer):
        high = declared_upper_bound(dim)
        if high is None:
            return None
        count *= max(high, 0)
    return count


def needs_wide_index(buffer: Buffer) -> bool:
    """Whether ``buffer`` may hold more than 2^31 elements, so its flat index needs 64 bits (see the module
    docstring); raises ``BufferTooLargeError`` for a constant shape beyond 2^63 elements."""
    count = _count_bound(buffer)
    if count is not None and count <= INT32_ELEMENTS:
        return False
    constant = not any(free_vars(d) for d in _storage_dims(buffer))
    if constant and count is not None and count >= INT64_ELEMENTS:
        raise BufferTooLargeError(
            f"buffer {buffer.name!r} of shape ({', '.join(str(d) for d in buffer.shape)}) has {count} elements, "
            "more than a 64-bit index can address"
        )
    return True


def _checked_count(buffer: Buffer, body: Stmt) -> Stmt:
    """``body`` behind checks that the element count of the symbolic ``buffer`` fits 63 bits, when it may not:
    each partial product ``p`` of its dimensions times the next one ``d`` must satisfy ``p <= MAX // d``."""
    count = _count_bound(buffer)
    if count is not None and count < INT64_ELEMENTS:
        return body
    dims = [_widen(d, True) for d in _storage_dims(buffer)]
    checks: list[tuple[Expr, Expr]] = []
    prefix = dims[0]
    for dim in dims[1:]:
        fits = select(dim == 0, const(True), prefix <= const(INT64_ELEMENTS - 1, "int64") // max_expr(dim, 1))
        checks.append((fits, dim))
        prefix = prefix * dim
    message = f"buffer {buffer.name!r}: {{}} x {{}} elements overflow a 64-bit size"
    for (fits, dim), prefix_value in reversed(list(zip(checks, _prefixes(dims)))):
        body = AssertStmt(fits, message, (prefix_value, dim), body)
    return body


def _prefixes(dims: list[Expr]) -> list[Expr]:
    """The products ``d0``, ``d0 * d1``, ... of all but the last of ``dims``."""
    result, prefix = [], dims[0]
    for dim in dims[1:]:
        result.append(prefix)
        prefix = prefix * dim
    return result


class _Flattener(Mutator):
    def __init__(self) -> None:
        self.remap: dict[Buffer, Buffer] = {}
        self.wide: dict[Buffer, bool] = {}

    def target(self, buffer: Buffer) -> Buffer:
        return self.remap.get(buffer, buffer)

    def is_wide(self, buffer: Buffer) -> bool:
        wide = self.wide.get(buffer)
        if wide is None:
            wide = self.wide[buffer] = needs_wide_index(buffer)
        return wide

    def visit_Allocate(self, node: Allocate) -> Stmt:
        buffer = node.buffer
        flat = replace(buffer, shape=(simplify(element_count(buffer, self.is_wide(buffer))),), strides=None)
        self.remap[node.buffer] = flat
        self.wide[flat] = self.wide[buffer]
        allocate = Allocate(flat, self.visit(node.body))
        return _checked_count(buffer, allocate) if self.wide[buffer] else allocate

    def index(self, buffer: Buffer, indices: tuple[Expr, ...]) -> Expr:
        wide = self.is_wide(buffer)
        if len(indices) == 1 and buffer.strides is None and buffer not in self.remap:
            return _widen(indices[0], wide and dt.lanes(indices[0].dtype) == 1)
        return flat_index(buffer.shape, indices, buffer.strides, wide)

    def visit_BufferLoad(self, node: BufferLoad) -> Expr:
        indices = tuple(self.visit(i) for i in node.indices)
        if len(indices) == 1 and node.buffer not in self.remap and not self.is_wide(node.buffer):
            if indices[0] is node.indices[0]:
                return node
            return BufferLoad(node.buffer, indices, node.dtype)
        return BufferLoad(self.target(node.buffer), (self.index(node.buffer, indices),), node.dtype)

    def visit_BufferStore(self, node: BufferStore) -> Stmt:
        indices = tuple(self.visit(i) for i in node.indices)
        value = self.visit(node.value)
        return BufferStore(self.target(node.buffer), value, (self.index(node.buffer, indices),))


def flatten_buffers(func: PrimFunc) -> PrimFunc:
    """Give every buffer access a single index (see the module docstring)."""
    return replace(func, body=_Flattener().visit(func.body))
