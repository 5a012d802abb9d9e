"""Vector loads that read only some lanes: the branches of a vector select that read memory.

A vector ``select(c, A[i], B[j])`` whose condition depends on the lane (a padded read ``0 < x ? A[x - 1] : 0``,
vectorized over ``x``) promises what the scalar program does: a lane reads ``A`` only where ``c`` holds and ``B``
only where it does not. ``ExprEmitter`` emits each branch under its mask (``ExprEmitter._mask``) and its loads
through ``masked_load``:

- a contiguous index (``ramp(base, 1, n)``): ``llvm.masked.load``, one instruction on AVX-512 and AVX2;
- a clamped contiguous index (``b + clamp(ramp(r, 1, n), lo, hi)``, what ``pad`` reads at a border): the lanes
  inside ``[lo, hi]`` are contiguous, a masked load reads them; the clamped lanes, if the mask holds any of them,
  take a masked gather of their clamped indices (a branch skips it where none does: in a padded copy the border
  lanes are the ones the mask leaves out);
- any other vector index: ``llvm.masked.gather``;
- a scalar index (a broadcast load, or an element of a vector-typed buffer): loaded only if a lane of the mask
  holds, else zero.

Masked-off lanes are zero. Only the addresses the scalar program reads are read, so a guarded read past a buffer's
end never faults; the pointer to a masked load's first lane is computed without ``inbounds`` for that reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import llvmlite.ir as ir

from tcomp.codegen.llvm import types as T
from tcomp.codegen.llvm.control import if_else
from tcomp.ir import dtype as dt
from tcomp.ir import expr as E
from tcomp.ir.buffer import Buffer
from tcomp.transform.vectorize import clamped_ramp

if TYPE_CHECKING:
    from tcomp.codegen.llvm.exprs import ExprEmitter


def any_lane(emitter: ExprEmitter, mask: ir.Value) -> ir.Value:
    """An ``i1``: whether a lane of the ``<n x i1>`` ``mask`` holds."""
    reduce = emitter.ctx.declare(f"llvm.vector.reduce.or.v{mask.type.count}i1", T.I1, [mask.type])
    return emitter.builder.call(reduce, [mask])


def masked_load(emitter: ExprEmitter, buffer: Buffer, index: E.Expr, dtype: str, mask: ir.Value) -> ir.Value:
    """``buffer[index]`` (``dtype``: the load's) for the lanes of ``mask``, zero elsewhere (see the module
    docstring)."""
    lanes = dt.lanes(dtype)
    storage = T.storage_type(dtype)
    zero = ir.Constant(storage, None)
    if dt.lanes(index.dtype) == 1 or isinstance(index, E.Broadcast):
        scalar = index.value if isinstance(index, E.Broadcast) else index
        element = dt.element(dtype) if dt.lanes(buffer.dtype) == 1 else dtype

        def load() -> ir.Value:
            value = emitter.load_scalar(buffer, emitter.index_i64(scalar), element)
            return emitter.to_storage(emitter.match_lanes(value, element, lanes), dtype)

        return emitter.from_storage(if_else(emitter.builder, any_lane(emitter, mask), load, lambda: zero, "masked"),
                                    dtype)
    if isinstance(index, E.Ramp) and index.contiguous:
        return emitter.from_storage(_contiguous(emitter, buffer, emitter.index_i64(index.base), dtype, mask), dtype)
    clamped = clamped_ramp(index)
    if clamped is not None:
        return emitter.from_storage(_clamped(emitter, buffer, index, clamped, dtype, mask), dtype)
    return emitter.from_storage(_gather(emitter, buffer, emitter.index_i64(index), dtype, mask), dtype)


def _contiguous(emitter: ExprEmitter, buffer: Buffer, start: ir.Value, dtype: str, mask: ir.Value) -> ir.Value:
    """``llvm.masked.load`` of ``dtype``'s lanes from element ``start`` on."""
    bld = emitter.builder
    storage = T.storage_type(dtype)
    first = bld.gep(emitter.buffer_pointer(buffer), [start])  # not inbounds: lane 0 may lie outside the buffer
    pointer = bld.bitcast(first, storage.as_pointer())
    align = dt.storage_bytes(dt.element(dtype))
    name = f"llvm.masked.load.{T.intrinsic_suffix(storage)}.p0"
    function = emitter.ctx.declare(name, storage, [pointer.type, T.I32, mask.type, storage])
    return bld.call(function, [pointer, T.I32(align), mask, ir.Constant(storage, None)])


def _gather(emitter: ExprEmitter, buffer: Buffer, indices: ir.Value, dtype: str, mask: ir.Value) -> ir.Value:
    """``llvm.masked.gather`` of the elements at the ``i64`` vector ``indices``."""
    bld = emitter.builder
    storage = T.storage_type(dtype)
    lanes = storage.count
    element_bytes = dt.storage_bytes(dt.element(dtype))
    base = bld.ptrtoint(emitter.buffer_pointer(buffer), T.I64)
    offsets = bld.mul(indices, ir.Constant(indices.type, [ir.Constant(T.I64, element_bytes)] * lanes))
    pointers = bld.inttoptr(bld.add(emitter.splat(base, lanes), offsets),
                            ir.VectorType(storage.element.as_pointer(), lanes))
    name = f"llvm.masked.gather.{T.intrinsic_suffix(storage)}.v{lanes}p0"
    function = emitter.ctx.declare(name, storage, [pointers.type, T.I32, mask.type, storage])
    return bld.call(function, [pointers, T.I32(element_bytes), mask, ir.Constant(storage, None)])


def _clamped(emitter: ExprEmitter, buffer: Buffer, index: E.Expr, clamped: tuple[E.Expr, E.Ramp, E.Expr, E.Expr],
             dtype: str, mask: ir.Value) -> ir.Value:
    """A masked load of ``offset + clamp(ramp, lo, hi)``: the lanes inside ``[lo, hi]`` (where either clamp is
    the ramp itself; none when ``lo > hi``) in one masked load, the others by a masked gather of the clamped
    index when the mask holds any of them."""
    bld = emitter.builder
    offset, ramp, lo_expr, hi_expr = clamped
    lanes = ramp.lanes
    values = emitter.emit_as(ramp, dt.with_lanes("int64", lanes))
    lo = emitter.splat(emitter.emit_as(lo_expr, "int64"), lanes)
    hi = emitter.splat(emitter.emit_as(hi_expr, "int64"), lanes)
    inside = bld.and_(bld.icmp_signed(">=", values, lo), bld.icmp_signed("<=", values, hi))
    start = bld.add(emitter.emit_as(offset, "int64"), emitter.emit_as(ramp.base, "int64"))
    direct = _contiguous(emitter, buffer, start, dtype, bld.and_(mask, inside))
    outside = bld.and_(mask, bld.not_(inside))
    clamped_values = if_else(bld, any_lane(emitter, outside),
                             lambda: _gather(emitter, buffer, emitter.index_i64(index), dtype, outside),
                             lambda: ir.Constant(T.storage_type(dtype), None), "clamped")
    return bld.select(inside, direct, clamped_values)
