"""Statements of the loop IR to LLVM control flow, for one LLVM function.

Every function emitted here returns ``i32``: 0 on success, else the id of the failed assertion. Its first block
(``entry``) holds only the stack allocations, so loops never grow the stack; the code starts in the block after it.

- ``For`` loops have a preheader, a header with a phi induction variable, a body and a latch; unrolled loops carry
  ``llvm.loop.unroll.full`` (``unroll.enable`` when the trip count is symbolic), vectorized ones
  ``llvm.loop.vectorize.enable`` where LLVM can vectorize them (scalar code without assertions: otherwise LLVM
  warns that it could not); a loop whose indices divide its variable also carries the widest vector width that
  stays inside one period of those divisions (``loop_width.py``: LLVM's vectorizer can misread wider ones).
  Parallel loops are outlined (``parallel.py``) unless already inside one.
- ``Allocate``: scope ``local`` with a constant size up to 64 KiB is an ``alloca`` (align 64) in the entry block;
  anything else is ``aligned_alloc(64, round_up(bytes, 64))``, freed when the body ends. A failed heap allocation
  (or one whose byte count overflows 64 bits) fails the call like an assertion.
- ``AssertStmt``: on failure the first failing check wins the error area (``cmpxchg`` on slot 0, so threads of a
  parallel loop agree), records its values as int64 in slots 1.., frees the heap buffers this function allocated
  and returns the assertion id.
"""

from __future__ import annotations

from collections.abc import Callable

import llvmlite.ir as ir

from tcomp.codegen.llvm import types as T
from tcomp.codegen.llvm.context import CodegenError, ModuleContext
from tcomp.codegen.llvm.exprs import ExprEmitter
from tcomp.codegen.llvm.loop_width import vectorizer_hints
from tcomp.codegen.llvm.parallel import emit_parallel_for
from tcomp.ir import dtype as dt
from tcomp.ir import expr as E
from tcomp.ir import stmt as S
from tcomp.ir.buffer import Buffer

STACK_LIMIT_BYTES = 64 * 1024
ALLOC_ALIGN = 64


class FunctionEmitter(ExprEmitter):
    """Emits a statement as the body of ``function``.

    ``err_ptr`` is the ``i64*`` error area; ``in_parallel`` is True inside an outlined parallel body (where nested
    parallel loops run serially). Call ``emit_body`` once; the function is complete afterwards.
    """

    def __init__(self, ctx: ModuleContext, function: ir.Function, err_ptr: ir.Value, in_parallel: bool) -> None:
        self.function = function
        self.entry_block = function.append_basic_block("entry")
        self._start_block = function.append_basic_block("start")
        super().__init__(ctx, ir.IRBuilder(self._start_block))
        self.err_ptr = err_ptr
        self.in_parallel = in_parallel
        self.heap: list[ir.Value] = []
        self._stmt_dispatch: dict[type, Callable[[S.Stmt], None]] = {
            S.For: self._for,
            S.SeqStmt: self._seq,
            S.BufferStore: self._buffer_store,
            S.IfThenElse: self._if,
            S.Allocate: self._allocate,
            S.LetStmt: self._let_stmt,
            S.AssertStmt: self._assert,
            S.Evaluate: self._evaluate,
            S.NoOp: self._noop,
        }

    # ------------------------------------------------------------------------------------------------ driver
    def emit_body(self, body: S.Stmt) -> None:
        self.emit_stmt(body)
        self.finish()

    def finish(self) -> None:
        """Return 0 from where the builder stands and close the entry block."""
        self.builder.ret(T.I32(0))
        ir.IRBuilder(self.entry_block).branch(self._start_block)

    def emit_stmt(self, stmt: S.Stmt) -> None:
        handler = self._stmt_dispatch.get(type(stmt))
        if handler is None:
            raise CodegenError(f"the LLVM backend cannot translate {type(stmt).__name__}: {stmt}")
        handler(stmt)

    def alloca(self, ty: ir.Type, align: int) -> ir.Value:
        """A stack slot in the entry block."""
        slot = ir.IRBuilder(self.entry_block).alloca(ty)
        slot.align = align
        return slot

    def new_block(self, name: str) -> ir.Block:
        return self.function.append_basic_block(name)

    # ------------------------------------------------------------------------------------------------ simple
    def _noop(self, stmt: S.Stmt) -> None:
        pass

    def _seq(self, stmt: S.Stmt) -> None:
        assert isinstance(stmt, S.SeqStmt)
        for item in stmt.seq:
            self.emit_stmt(item)

    def _evaluate(self, stmt: S.Stmt) -> None:
        assert isinstance(stmt, S.Evaluate)
        if not isinstance(stmt.value, (E.IntImm, E.FloatImm)):
            self.emit(stmt.value)

    def _let_stmt(self, stmt: S.Stmt) -> None:
        assert isinstance(stmt, S.LetStmt)
        self.vars[stmt.var] = self.emit_as(stmt.value, stmt.var.dtype)
        try:
            self.emit_stmt(stmt.body)
        finally:
            del self.vars[stmt.var]

    def condition(self, expr: E.Expr) -> ir.Value:
        """An ``i1`` branch condition; ``likely(c)`` becomes ``llvm.expect(c, true)``."""
        if isinstance(expr, E.Call) and expr.op == "likely":
            value = self.emit_as(expr.args[0], "bool")
            expect = self.ctx.declare("llvm.expect.i1", T.I1, [T.I1, T.I1])
            return self.builder.call(expect, [value, T.I1(1)])
        if dt.lanes(expr.dtype) != 1:
            raise CodegenError(f"branch condition {expr} must be a scalar, got dtype {expr.dtype}")
        return self.emit_as(expr, "bool")

    def _if(self, stmt: S.Stmt) -> None:
        assert isinstance(stmt, S.IfThenElse)
        cond = self.condition(stmt.condition)
        then_block = self.new_block("if.then")
        merge_block = self.new_block("if.end")
        else_block = self.new_block("if.else") if stmt.else_case is not None else merge_block
        self.builder.cbranch(cond, then_block, else_block)
        self.builder.position_at_end(then_block)
        self.emit_stmt(stmt.then_case)
        self.builder.branch(merge_block)
        if stmt.else_case is not None:
            self.builder.position_at_end(else_block)
            self.emit_stmt(stmt.else_case)
            self.builder.branch(merge_block)
        self.builder.position_at_end(merge_block)

    # ------------------------------------------------------------------------------------------------ stores
    def _buffer_store(self, stmt: S.Stmt) -> None:
        assert isinstance(stmt, S.BufferStore)
        if len(stmt.indices) != 1:
            raise CodegenError(
                f"store to {stmt.buffer.name} has {len(stmt.indices)} indices; codegen expects flattened buffers")
        buffer, index = stmt.buffer, stmt.indices[0]
        buffer_lanes = dt.lanes(buffer.dtype)
        index_lanes = dt.lanes(index.dtype)
        lanes = max(dt.lanes(stmt.value.dtype), index_lanes * buffer_lanes)
        value_dtype = dt.with_lanes(dt.element(buffer.dtype), lanes)
        value = self.emit_lanes(stmt.value, dt.element(buffer.dtype), lanes)
        raw = self.to_storage(value, value_dtype)
        if lanes == buffer_lanes:
            ptr = self.element_pointer(buffer, self.index_i64(index))
            self.builder.store(raw, ptr, align=dt.storage_bytes(buffer.dtype))
            return
        if buffer_lanes != 1 or index_lanes != lanes:
            raise CodegenError(f"store of a {value_dtype} value to {buffer.name} with a {index.dtype} index")
        if isinstance(index, E.Ramp) and index.contiguous:
            ptr = self.element_pointer(buffer, self.index_i64(index.base))
            vec_ptr = self.builder.bitcast(ptr, raw.type.as_pointer())
            self.builder.store(raw, vec_ptr, align=dt.storage_bytes(buffer.dtype))
            return
        indices = self.index_i64(index)
        for lane in range(lanes):
            lane_index = self.builder.extract_element(indices, T.I32(lane))
            lane_value = self.builder.extract_element(raw, T.I32(lane))
            ptr = self.element_pointer(buffer, lane_index)
            self.builder.store(lane_value, ptr, align=dt.storage_bytes(buffer.dtype))

    # ------------------------------------------------------------------------------------------------ loops
    def _for(self, stmt: S.Stmt) -> None:
        assert isinstance(stmt, S.For)
        kind = stmt.kind
        if kind == S.ForKind.THREAD_BINDING:
            raise CodegenError(
                f"loop {stmt.loop_var.name} is bound to GPU thread {stmt.thread_tag!r}; the LLVM CPU backend "
                "cannot run it")
        if kind == S.ForKind.PARALLEL and self.ctx.use_threads and not self.in_parallel:
            emit_parallel_for(self, stmt)
            return
        options: list[tuple[str | bool | int, ...]] = []
        if kind == S.ForKind.UNROLLED:
            full = isinstance(stmt.extent, E.IntImm)
            options.append(("llvm.loop.unroll.full" if full else "llvm.loop.unroll.enable",))
        else:
            options.extend(vectorizer_hints(stmt))
        metadata = self.ctx.loop_metadata(options) if options else None
        begin = self.emit_as(stmt.min, stmt.loop_var.dtype)
        end = self.builder.add(begin, self.emit_as(stmt.extent, stmt.loop_var.dtype))
        self.loop(stmt.loop_var, begin, end, lambda: self.emit_stmt(stmt.body), metadata)

    def loop(self, var: E.Var, begin: ir.Value, end: ir.Value, body: Callable[[], None],
             metadata: ir.values.MDValue | None = None) -> None:
        """``for var in [begin, end): body()`` with a phi induction variable; ``metadata`` goes on the latch."""
        bld = self.builder
        signed = dt.is_signed(var.dtype)
        preheader = bld.block
        header = self.new_block(f"for.{var.name}.header")
        body_block = self.new_block(f"for.{var.name}.body")
        latch = self.new_block(f"for.{var.name}.latch")
        exit_block = self.new_block(f"for.{var.name}.end")
        bld.branch(header)
        bld.position_at_end(header)
        phi = bld.phi(T.llvm_type(var.dtype), name=var.name)
        phi.add_incoming(begin, preheader)
        in_range = bld.icmp_signed("<", phi, end) if signed else bld.icmp_unsigned("<", phi, end)
        bld.cbranch(in_range, body_block, exit_block)
        bld.position_at_end(body_block)
        self.vars[var] = phi
        try:
            body()
        finally:
            del self.vars[var]
        bld.branch(latch)
        bld.position_at_end(latch)
        step = bld.add(phi, ir.Constant(phi.type, 1), flags=["nsw"] if signed else ["nuw"])
        phi.add_incoming(step, latch)
        back_edge = bld.branch(header)
        if metadata is not None:
            back_edge.set_metadata("llvm.loop", metadata)
        bld.position_at_end(exit_block)

    # ------------------------------------------------------------------------------------------------ storage
    def _allocate(self, stmt: S.Stmt) -> None:
        assert isinstance(stmt, S.Allocate)
        buffer = stmt.buffer
        elem_type = T.storage_type(buffer.dtype)
        elem_bytes = dt.storage_bytes(buffer.dtype) * dt.lanes(buffer.dtype)
        extent = _extent_expr(buffer)
        const_extent = extent.value if isinstance(extent, E.IntImm) else None
        if (buffer.scope == "local" and const_extent is not None
                and const_extent * elem_bytes <= STACK_LIMIT_BYTES):
            slot = self.alloca(ir.ArrayType(elem_type, max(const_extent, 1)), ALLOC_ALIGN)
            self.buffers[buffer] = self.builder.bitcast(slot, elem_type.as_pointer())
            try:
                self.emit_stmt(stmt.body)
            finally:
                del self.buffers[buffer]
            return
        raw = self._heap_alloc(buffer, self.emit_as(extent, "int64"), elem_bytes)
        self.buffers[buffer] = self.builder.bitcast(raw, elem_type.as_pointer())
        self.heap.append(raw)
        try:
            self.emit_stmt(stmt.body)
        finally:
            self.heap.pop()
            del self.buffers[buffer]
        free = self.ctx.declare("free", T.VOID, [T.I8_PTR])
        self.builder.call(free, [raw])

    def _heap_alloc(self, buffer: Buffer, extent: ir.Value, elem_bytes: int) -> ir.Value:
        bld = self.builder
        product = bld.smul_with_overflow(extent, T.I64(elem_bytes))
        too_big = bld.or_(bld.extract_value(product, 1), bld.icmp_signed("<", extent, T.I64(0)))
        message = f"cannot allocate {{}} elements of {elem_bytes} bytes for buffer {buffer.name!r} (over 2^63 bytes)"
        self.guard(too_big, self.ctx.add_assert(message, 1), [extent])
        nbytes = bld.extract_value(product, 0)
        rounded = bld.and_(bld.add(nbytes, T.I64(ALLOC_ALIGN - 1)), T.I64(-ALLOC_ALIGN))
        small = bld.icmp_signed("<", rounded, T.I64(ALLOC_ALIGN))
        size = bld.select(small, T.I64(ALLOC_ALIGN), rounded)
        aligned_alloc = self.ctx.declare("aligned_alloc", T.I8_PTR, [T.I64, T.I64])
        raw = bld.call(aligned_alloc, [T.I64(ALLOC_ALIGN), size])
        failed = bld.icmp_unsigned("==", raw, ir.Constant(T.I8_PTR, None))
        message = f"cannot allocate {{}} bytes for buffer {buffer.name!r}"
        self.guard(failed, self.ctx.add_assert(message, 1), [nbytes])
        return raw

    # ------------------------------------------------------------------------------------------------ errors
    def _assert(self, stmt: S.Stmt) -> None:
        assert isinstance(stmt, S.AssertStmt)
        assert_id = self.ctx.add_assert(stmt.message, len(stmt.values))
        ok = self.condition(stmt.condition)
        failed = self.builder.not_(ok)
        values = list(stmt.values)
        self.guard(failed, assert_id, lambda: [self.emit_as(v, "int64") for v in values])
        self.emit_stmt(stmt.body)

    def fail_if(self, failed: ir.Value, assert_id: int) -> None:
        self.guard(failed, assert_id, [])

    def guard(self, failed: ir.Value, assert_id: int,
              values: list[ir.Value] | Callable[[], list[ir.Value]]) -> None:
        """If ``failed``, record ``assert_id`` and ``values`` (computed on the failure path when a callable) and
        return from the function; the builder continues on the success path."""
        bld = self.builder
        expect = self.ctx.declare("llvm.expect.i1", T.I1, [T.I1, T.I1])
        failed = bld.call(expect, [failed, T.I1(0)])
        fail_block = self.new_block("assert.fail")
        ok_block = self.new_block("assert.ok")
        bld.cbranch(failed, fail_block, ok_block)
        bld.position_at_end(fail_block)
        recorded = values() if callable(values) else values
        self.record_error(T.I64(assert_id), recorded)
        self.return_status(T.I32(assert_id))
        bld.position_at_end(ok_block)

    def record_error(self, assert_id: ir.Value, values: list[ir.Value]) -> None:
        """Claim the error area for ``assert_id`` if no other failure has, and store ``values`` there."""
        bld = self.builder
        exchange = bld.cmpxchg(self.err_ptr, T.I64(0), assert_id, "monotonic", "monotonic")
        won = bld.extract_value(exchange, 1)
        store_block = self.new_block("assert.record")
        done_block = self.new_block("assert.recorded")
        bld.cbranch(won, store_block, done_block)
        bld.position_at_end(store_block)
        for position, value in enumerate(values, start=1):
            bld.store(value, bld.gep(self.err_ptr, [T.I64(position)], inbounds=True))
        bld.branch(done_block)
        bld.position_at_end(done_block)

    def return_status(self, status: ir.Value) -> None:
        """Free the heap buffers this function holds and return ``status`` (ends the current block)."""
        free = self.ctx.declare("free", T.VOID, [T.I8_PTR])
        for raw in reversed(self.heap):
            self.builder.call(free, [raw])
        self.builder.ret(status)


def _extent_expr(buffer: Buffer) -> E.Expr:
    """The number of elements of an allocated buffer (the product of its shape)."""
    if not buffer.shape:
        return E.IntImm(1, "int64")
    extent: E.Expr = buffer.shape[0]
    for dim in buffer.shape[1:]:
        if isinstance(extent, E.IntImm) and isinstance(dim, E.IntImm):
            extent = E.IntImm(extent.value * dim.value, "int64")
        else:
            extent = E.Mul(E.Cast(extent, "int64"), E.Cast(dim, "int64"), "int64")
    return extent
