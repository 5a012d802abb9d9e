"""Expressions of the loop IR to LLVM instructions.

``ExprEmitter`` holds the builder, the values of variables in scope and the pointers of buffers in scope; its
``emit`` returns the LLVM value of an expression. Semantics (the loop-IR interpreter is the reference): integer
``Div``/``Mod`` truncate (C); ``FloorDiv``/``FloorMod`` round toward negative infinity for signed integers;
an integer division or modulo by zero gives 0, as numpy's does (it never traps), or fails the call with a
``KernelError`` in functions with the ``check_division`` attribute (checked mode, ONNX models);
float comparisons are ordered except ``!=``, which is true on NaN (as in C and numpy); float ``min``/``max``
propagate NaN (IEEE 754-2019 ``minimum``/``maximum``, as numpy and ONNX); a cast to ``bool`` tests
for nonzero. Element addresses are ``pointer + sext(index)``.
"""

from __future__ import annotations

from collections.abc import Callable

import llvmlite.ir as ir

from tcomp.codegen.llvm import types as T
from tcomp.codegen.llvm.context import CodegenError, ModuleContext
from tcomp.codegen.llvm.control import if_else
from tcomp.codegen.llvm.extern import emit_address_of, emit_extern_call
from tcomp.codegen.llvm.intrinsics import call_intrinsic, emit_call
from tcomp.codegen.llvm.masked import any_lane, masked_load
from tcomp.ir import dtype as dt
from tcomp.ir import expr as E
from tcomp.ir.buffer import Buffer
from tcomp.ir.functor import may_fail
from tcomp.transform.vectorize import clamped_ramp

_PREDICATES = {E.EQ: "==", E.NE: "!=", E.LT: "<", E.LE: "<=", E.GT: ">", E.GE: ">="}


class ExprEmitter:
    """Emits expressions into ``self.builder``.

    Assumes every ``Var`` used is bound in ``self.vars`` and every buffer read in ``self.buffers`` (a pointer to
    its storage type); operand dtypes agree with the node's dtype as the IR constructors make them (a scalar
    operand of a vector operation is splatted).
    """

    def __init__(self, ctx: ModuleContext, builder: ir.IRBuilder) -> None:
        self.ctx = ctx
        self.builder = builder
        self.vars: dict[E.Var, ir.Value] = {}
        self.buffers: dict[Buffer, ir.Value] = {}
        self._mask: ir.Value | None = None  # the lanes that take the vector select branch being emitted (masked)
        self._dispatch: dict[type, Callable[[E.Expr], ir.Value]] = {
            E.IntImm: self._imm,
            E.FloatImm: self._imm,
            E.Var: self._var,
            E.Not: self._not,
            E.Select: self._select,
            E.Cast: self._cast_node,
            E.Call: self._call,
            E.Ramp: self._ramp,
            E.Broadcast: self._broadcast,
            E.Let: self._let,
            E.BufferLoad: self._buffer_load,
        }

    # ------------------------------------------------------------------------------------------------ entry point
    def emit(self, expr: E.Expr) -> ir.Value:
        if self._mask is not None and dt.lanes(expr.dtype) == 1 and (
                isinstance(expr, E.BufferLoad) or E.divides_by_maybe_zero(expr)):
            return self._scalar_under_mask(expr)
        handler = self._dispatch.get(type(expr))
        if handler is not None:
            return handler(expr)
        if isinstance(expr, E.BinaryOp):
            return self._binary(expr)
        raise CodegenError(f"the LLVM backend cannot translate {type(expr).__name__} node {expr}")

    def emit_as(self, expr: E.Expr, dtype: str) -> ir.Value:
        """Emit ``expr`` and cast the result to ``dtype``."""
        return self.cast(self.emit(expr), expr.dtype, dtype)

    def emit_lanes(self, expr: E.Expr, elem: str, lanes: int) -> ir.Value:
        """Emit ``expr`` converted to element type ``elem``, a scalar splatted to ``lanes`` lanes."""
        value = self.emit_as(expr, dt.with_lanes(elem, dt.lanes(expr.dtype)))
        return self.match_lanes(value, expr.dtype, lanes)

    # ------------------------------------------------------------------------------------------------ leaves
    def _imm(self, expr: E.Expr) -> ir.Value:
        assert isinstance(expr, (E.IntImm, E.FloatImm))
        return T.constant(expr.value, expr.dtype)

    def _var(self, expr: E.Expr) -> ir.Value:
        assert isinstance(expr, E.Var)
        value = self.vars.get(expr)
        if value is None:
            raise CodegenError(f"variable {expr.name!r} ({expr.dtype}) is used but not defined")
        return value

    def _let(self, expr: E.Expr) -> ir.Value:
        assert isinstance(expr, E.Let)
        self.vars[expr.var] = self.emit_as(expr.value, expr.var.dtype)
        try:
            return self.emit(expr.body)
        finally:
            del self.vars[expr.var]

    # ------------------------------------------------------------------------------------------------ vectors
    def splat(self, value: ir.Value, lanes: int) -> ir.Value:
        """The vector with ``lanes`` copies of the scalar ``value``."""
        vec_type = ir.VectorType(value.type, lanes)
        if isinstance(value, ir.Constant):
            return ir.Constant(vec_type, [value] * lanes)
        b = self.builder
        first = b.insert_element(ir.Constant(vec_type, ir.Undefined), value, T.I32(0))
        mask = ir.Constant(ir.VectorType(T.I32, lanes), [0] * lanes)
        return b.shuffle_vector(first, ir.Constant(vec_type, ir.Undefined), mask)

    def match_lanes(self, value: ir.Value, from_dtype: str, lanes: int) -> ir.Value:
        """Splat a scalar to ``lanes`` lanes when the operation is a vector one."""
        if lanes > 1 and dt.lanes(from_dtype) == 1:
            return self.splat(value, lanes)
        return value

    def _broadcast(self, expr: E.Expr) -> ir.Value:
        assert isinstance(expr, E.Broadcast)
        return self.splat(self.emit(expr.value), expr.lanes)

    def _ramp(self, expr: E.Expr) -> ir.Value:
        assert isinstance(expr, E.Ramp)
        elem = dt.element(expr.dtype)
        base = self.splat(self.emit_as(expr.base, elem), expr.lanes)
        lane_ids = ir.Constant(ir.VectorType(T.scalar_type(elem), expr.lanes), list(range(expr.lanes)))
        if isinstance(expr.stride, E.IntImm):
            steps = [T.constant(lane * expr.stride.value, elem) for lane in range(expr.lanes)]
            offsets: ir.Value = ir.Constant(lane_ids.type, steps)
        else:
            stride = self.splat(self.emit_as(expr.stride, elem), expr.lanes)
            offsets = self.builder.mul(stride, lane_ids)
        return self.builder.add(base, offsets)

    # ------------------------------------------------------------------------------------------------ operators
    def _operands(self, expr: E.BinaryOp) -> tuple[ir.Value, ir.Value, str]:
        """Both operands in the operation's dtype (the operands' common dtype for comparisons)."""
        lanes = max(dt.lanes(expr.a.dtype), dt.lanes(expr.b.dtype))
        if isinstance(expr, (E.CmpOp, E.And, E.Or)):
            op_dtype = dt.with_lanes(dt.promote(dt.element(expr.a.dtype), dt.element(expr.b.dtype)), lanes)
        else:
            op_dtype = dt.with_lanes(dt.element(expr.dtype), lanes)
        a = self.emit_lanes(expr.a, dt.element(op_dtype), lanes)
        b = self.emit_lanes(expr.b, dt.element(op_dtype), lanes)
        return a, b, op_dtype

    def _binary(self, expr: E.BinaryOp) -> ir.Value:
        a, b, op_dtype = self._operands(expr)
        if self.ctx.check_division and E.divides_by_maybe_zero(expr):
            self._check_divisor(expr, b)
        return self.binary_values(type(expr), a, b, op_dtype)

    def _check_divisor(self, expr: E.BinaryOp, divisor: ir.Value) -> None:
        """Fail the call (``KernelError`` naming ``expr``) if a lane of ``divisor`` is zero, in functions with the
        ``CHECK_DIVISION`` attribute (elsewhere such a division gives 0). One branch per division whose divisor is
        not a constant; the optimizer removes those it proves non-zero and hoists loop-invariant ones."""
        bld = self.builder
        zero = bld.icmp_unsigned("==", divisor, ir.Constant(divisor.type, None))
        if isinstance(divisor.type, ir.VectorType):
            any_lane = self.ctx.declare(f"llvm.vector.reduce.or.v{divisor.type.count}i1", T.I1, [zero.type])
            zero = bld.call(any_lane, [zero])
        text = str(expr).replace("{", "{{").replace("}", "}}")
        self.fail_if(zero, self.ctx.add_assert(f"integer division by zero in {text}", 0))

    def fail_if(self, failed: ir.Value, assert_id: int) -> None:
        """Return ``assert_id`` from the function if ``failed`` (statement emitters implement it)."""
        raise CodegenError(f"check {assert_id} needs a function to return from")

    def binary_values(self, kind: type, a: ir.Value, b: ir.Value, dtype: str) -> ir.Value:
        """``a <kind> b`` on values of ``dtype`` (the operands' dtype, also for comparisons)."""
        bld = self.builder
        if issubclass(kind, E.CmpOp):
            if dt.is_float(dtype):
                if kind is E.NE:
                    return bld.fcmp_unordered("!=", a, b)
                return bld.fcmp_ordered(_PREDICATES[kind], a, b)
            if dt.is_signed(dtype):
                return bld.icmp_signed(_PREDICATES[kind], a, b)
            return bld.icmp_unsigned(_PREDICATES[kind], a, b)
        if kind is E.And:
            return bld.and_(a, b)
        if kind is E.Or:
            return bld.or_(a, b)
        if dt.is_float(dtype):
            return self._float_binary(kind, a, b, dtype)
        return self._int_binary(kind, a, b, dtype)

    def _float_binary(self, kind: type, a: ir.Value, b: ir.Value, dtype: str) -> ir.Value:
        bld = self.builder
        if kind is E.Add:
            return _contract(bld.fadd(a, b))
        if kind is E.Sub:
            return _contract(bld.fsub(a, b))
        if kind is E.Mul:
            return _contract(bld.fmul(a, b))
        if kind is E.Div:
            return bld.fdiv(a, b)
        if kind is E.Mod:
            return bld.frem(a, b)
        if kind is E.Min or kind is E.Max:
            return self._float_min_max(kind is E.Max, a, b)
        if kind in (E.FloorDiv, E.FloorMod):
            quotient = call_intrinsic(self, "llvm.floor", [bld.fdiv(a, b)])
            if kind is E.FloorDiv:
                return quotient
            return bld.fsub(a, bld.fmul(b, quotient))
        raise CodegenError(f"unsupported float operation {kind.__name__} on {dtype}")

    def _float_min_max(self, is_max: bool, a: ir.Value, b: ir.Value) -> ir.Value:
        """IEEE 754-2019 ``maximum``/``minimum``: NaN when either operand is NaN (the sign of a zero result is
        unspecified, as in numpy). Against a constant that is not NaN (``relu``, ``clip``) one unordered compare
        does it, which x86 computes with a single ``maxps``/``minps``; otherwise a second select passes a NaN
        first operand through."""
        bld = self.builder
        predicate = ">" if is_max else "<"
        if _non_nan_constant(a):
            a, b = b, a
        if _non_nan_constant(b):
            return bld.select(bld.fcmp_unordered(predicate, a, b), a, b)
        ordered = bld.select(bld.fcmp_ordered(predicate, a, b), a, b)  # b when either is NaN
        return bld.select(bld.fcmp_unordered("uno", a, a), a, ordered)

    def _int_binary(self, kind: type, a: ir.Value, b: ir.Value, dtype: str) -> ir.Value:
        bld = self.builder
        signed = dt.is_signed(dtype)
        if kind is E.Add:
            return bld.add(a, b)
        if kind is E.Sub:
            return bld.sub(a, b)
        if kind is E.Mul:
            return bld.mul(a, b)
        if kind is E.Min:
            cmp = bld.icmp_signed("<", a, b) if signed else bld.icmp_unsigned("<", a, b)
            return bld.select(cmp, a, b)
        if kind is E.Max:
            cmp = bld.icmp_signed(">", a, b) if signed else bld.icmp_unsigned(">", a, b)
            return bld.select(cmp, a, b)
        if kind in (E.Div, E.Mod, E.FloorDiv, E.FloorMod):
            return self._int_division(kind, a, b, signed)
        raise CodegenError(f"unsupported integer operation {kind.__name__} on {dtype}")

    def _int_division(self, kind: type, a: ir.Value, b: ir.Value, signed: bool) -> ir.Value:
        """Integer ``Div``/``Mod``/``FloorDiv``/``FloorMod`` that never traps: a zero divisor gives 0 (numpy's
        result; x86 would stop the process), and so does the remainder of MIN by -1, whose quotient is MIN (the
        wrapped value numpy gives). Both guards fold away for a constant divisor."""
        bld = self.builder
        zero = ir.Constant(a.type, None)
        by_zero = bld.icmp_unsigned("==", b, zero)
        unsafe = by_zero
        if signed:
            elem = a.type.element if isinstance(a.type, ir.VectorType) else a.type
            minimum = _int_constant(a.type, -(1 << (elem.width - 1)))
            overflow = bld.and_(bld.icmp_signed("==", a, minimum), bld.icmp_signed("==", b, _int_constant(b.type, -1)))
            unsafe = bld.or_(by_zero, overflow)
        b = bld.select(unsafe, _int_constant(b.type, 1), b)
        if kind is E.Div:
            result = bld.sdiv(a, b) if signed else bld.udiv(a, b)
        elif kind is E.Mod:
            result = bld.srem(a, b) if signed else bld.urem(a, b)
        elif not signed:
            result = bld.udiv(a, b) if kind is E.FloorDiv else bld.urem(a, b)
        else:
            result = self._floor_div_mod(kind, a, b)
        return bld.select(by_zero, zero, result)

    def _floor_div_mod(self, kind: type, a: ir.Value, b: ir.Value) -> ir.Value:
        """Python's ``a // b`` and ``a % b``: the truncated results, fixed up when the remainder is nonzero and
        its sign differs from the divisor's."""
        bld = self.builder
        zero = ir.Constant(a.type, None)
        rem = bld.srem(a, b)
        nonzero = bld.icmp_signed("!=", rem, zero)
        signs_differ = bld.icmp_signed("<", bld.xor(rem, b), zero)
        adjust = bld.and_(nonzero, signs_differ)
        if kind is E.FloorDiv:
            quotient = bld.sdiv(a, b)
            return bld.sub(quotient, bld.zext(adjust, a.type))
        return bld.select(adjust, bld.add(rem, b), rem)

    def _not(self, expr: E.Expr) -> ir.Value:
        assert isinstance(expr, E.Not)
        value = self.emit_as(expr.a, dt.with_lanes("bool", dt.lanes(expr.a.dtype)))
        return self.builder.not_(value)

    def _select(self, expr: E.Expr) -> ir.Value:
        assert isinstance(expr, E.Select)
        lanes = dt.lanes(expr.dtype)
        guarded = may_fail(expr.true_value) or may_fail(expr.false_value)
        if lanes == 1 and dt.lanes(expr.condition.dtype) == 1 and guarded:
            return self._lazy_select(expr)
        cond = self.emit(expr.condition)
        if guarded and lanes > 1 and dt.lanes(expr.condition.dtype) > 1:
            return self._masked_select(expr, cond)
        true_value = self.emit_lanes(expr.true_value, dt.element(expr.dtype), lanes)
        false_value = self.emit_lanes(expr.false_value, dt.element(expr.dtype), lanes)
        return self.builder.select(cond, true_value, false_value)

    def _masked_select(self, expr: E.Select, cond: ir.Value) -> ir.Value:
        """A vector select whose branches read memory (``masked``): each branch is emitted under the lanes that
        take it, so its loads read those lanes only."""
        bld = self.builder
        outer = self._mask
        lanes = dt.lanes(expr.dtype)
        element = dt.element(expr.dtype)
        taken = cond if outer is None else bld.and_(outer, cond)
        others = bld.not_(cond) if outer is None else bld.and_(outer, bld.not_(cond))
        try:
            self._mask = taken
            true_value = self.emit_lanes(expr.true_value, element, lanes)
            self._mask = others
            false_value = self.emit_lanes(expr.false_value, element, lanes)
        finally:
            self._mask = outer
        return bld.select(cond, true_value, false_value)

    def _scalar_under_mask(self, expr: E.Expr) -> ir.Value:
        """A scalar read or a division that may fail, inside a masked branch: evaluated (its operands too) only if a
        lane takes the branch, else zero. Checked node by node as ``emit`` descends, not by walking subtrees."""
        mask = self._mask
        assert mask is not None
        self._mask = None
        try:
            return if_else(self.builder, any_lane(self, mask), lambda: self.emit(expr),
                           lambda: ir.Constant(T.llvm_type(expr.dtype), None), "masked")
        finally:
            self._mask = mask

    def _lazy_select(self, expr: E.Select) -> ir.Value:
        """A select whose branches read memory or divide evaluates only the branch taken (as ``if_then_else``
        promises): a guarded read such as ``i >= 1 ? A[i - 1] : 0`` must not touch ``A[-1]``, and
        ``b != 0 ? a / b : 0`` must not divide by zero."""
        element = dt.element(expr.dtype)
        return if_else(self.builder, self.emit(expr.condition),
                       lambda: self.emit_lanes(expr.true_value, element, 1),
                       lambda: self.emit_lanes(expr.false_value, element, 1), "select")

    # ------------------------------------------------------------------------------------------------ casts
    def _cast_node(self, expr: E.Expr) -> ir.Value:
        assert isinstance(expr, E.Cast)
        value = self.emit(expr.value)
        lanes = dt.lanes(expr.dtype)
        value = self.match_lanes(value, expr.value.dtype, lanes)
        return self.cast(value, dt.with_lanes(dt.element(expr.value.dtype), lanes), expr.dtype)

    def cast(self, value: ir.Value, src: str, dst: str) -> ir.Value:
        """Convert ``value`` of dtype ``src`` to ``dst`` (lanes must agree; a scalar ``dst`` keeps the lanes)."""
        src_elem, dst_elem = dt.element(src), dt.element(dst)
        if src_elem == dst_elem:
            return value
        bld = self.builder
        dst_type = T.with_lanes_type(T.scalar_type(dst_elem), dt.lanes(src))
        if dst_elem == "bool":
            zero = ir.Constant(value.type, None)
            if dt.is_float(src_elem):
                return bld.fcmp_unordered("!=", value, zero)
            return bld.icmp_unsigned("!=", value, zero)
        if src_elem == "bool":
            return bld.uitofp(value, dst_type) if dt.is_float(dst_elem) else bld.zext(value, dst_type)
        src_float, dst_float = dt.is_float(src_elem), dt.is_float(dst_elem)
        if src_float and dst_float:
            if dt.bits(src_elem) < dt.bits(dst_elem):
                return bld.fpext(value, dst_type)
            return bld.fptrunc(value, dst_type)
        if src_float:
            return bld.fptosi(value, dst_type) if dt.is_signed(dst_elem) else bld.fptoui(value, dst_type)
        if dst_float:
            return bld.sitofp(value, dst_type) if dt.is_signed(src_elem) else bld.uitofp(value, dst_type)
        src_bits, dst_bits = dt.bits(src_elem), dt.bits(dst_elem)
        if src_bits == dst_bits:
            return value
        if src_bits > dst_bits:
            return bld.trunc(value, dst_type)
        return bld.sext(value, dst_type) if dt.is_signed(src_elem) else bld.zext(value, dst_type)

    # ------------------------------------------------------------------------------------------------ calls
    def _call(self, expr: E.Expr) -> ir.Value:
        assert isinstance(expr, E.Call)
        if expr.kind == "extern":
            return emit_extern_call(self, expr)
        if expr.op == "address_of":
            return emit_address_of(self, expr)
        return emit_call(self, expr)

    # ------------------------------------------------------------------------------------------------ memory
    def buffer_pointer(self, buffer: Buffer) -> ir.Value:
        pointer = self.buffers.get(buffer)
        if pointer is None:
            raise CodegenError(f"buffer {buffer.name!r} is used outside the allocation or parameters that define it")
        return pointer

    def index_i64(self, index: E.Expr) -> ir.Value:
        """The index as ``i64`` (or a vector of ``i64``), sign- or zero-extended by its dtype."""
        return self.emit_as(index, dt.with_lanes("int64", dt.lanes(index.dtype)))

    def element_pointer(self, buffer: Buffer, index: ir.Value) -> ir.Value:
        return self.builder.gep(self.buffer_pointer(buffer), [index], inbounds=True)

    def load_scalar(self, buffer: Buffer, index: ir.Value, dtype: str) -> ir.Value:
        """Load one element (of ``buffer``'s dtype, which may be a vector dtype) at the ``i64`` ``index``."""
        ptr = self.element_pointer(buffer, index)
        raw = self.builder.load(ptr, align=dt.storage_bytes(dt.element(buffer.dtype)))
        return self.from_storage(raw, dtype)

    def from_storage(self, raw: ir.Value, dtype: str) -> ir.Value:
        if dt.is_bool(dtype):
            return self.builder.icmp_unsigned("!=", raw, ir.Constant(raw.type, None))
        return raw

    def to_storage(self, value: ir.Value, dtype: str) -> ir.Value:
        if dt.is_bool(dtype):
            return self.builder.zext(value, T.storage_type(dtype))
        return value

    def _buffer_load(self, expr: E.Expr) -> ir.Value:
        assert isinstance(expr, E.BufferLoad)
        if len(expr.indices) != 1:
            raise CodegenError(
                f"load of {expr.buffer.name} has {len(expr.indices)} indices; codegen expects flattened buffers")
        index = expr.indices[0]
        lanes = dt.lanes(expr.dtype)
        buffer_lanes = dt.lanes(expr.buffer.dtype)
        if self._mask is not None and lanes > 1:  # a branch of a vector select: the lanes that take it
            return masked_load(self, expr.buffer, index, expr.dtype, self._mask)
        if lanes == buffer_lanes:
            return self.load_scalar(expr.buffer, self.index_i64(index), expr.dtype)
        if buffer_lanes != 1 or dt.lanes(index.dtype) != lanes:
            raise CodegenError(f"load {expr} of dtype {expr.dtype}: index has {dt.lanes(index.dtype)} lanes")
        if isinstance(index, E.Ramp) and index.contiguous:
            return self._contiguous_load(expr.buffer, index.base, lanes, expr.dtype)
        if isinstance(index, E.Broadcast):
            scalar = self.load_scalar(expr.buffer, self.index_i64(index.value), dt.element(expr.dtype))
            return self.splat(scalar, lanes)
        if clamped_ramp(index) is not None:  # a padded row's read: one load, a gather only for clamped lanes
            return masked_load(self, expr.buffer, index, expr.dtype, ir.Constant(ir.VectorType(T.I1, lanes), 1))
        return self._gather(expr.buffer, self.index_i64(index), lanes, expr.dtype)

    def _contiguous_load(self, buffer: Buffer, base: E.Expr, lanes: int, dtype: str) -> ir.Value:
        ptr = self.element_pointer(buffer, self.index_i64(base))
        vec_ptr = self.builder.bitcast(ptr, T.storage_type(dtype).as_pointer())
        raw = self.builder.load(vec_ptr, align=dt.storage_bytes(dtype))
        return self.from_storage(raw, dtype)

    def _gather(self, buffer: Buffer, indices: ir.Value, lanes: int, dtype: str) -> ir.Value:
        result: ir.Value = ir.Constant(T.llvm_type(dtype), ir.Undefined)
        for lane in range(lanes):
            index = self.builder.extract_element(indices, T.I32(lane))
            element = self.load_scalar(buffer, index, dt.element(dtype))
            result = self.builder.insert_element(result, element, T.I32(lane))
        return result


def _int_constant(ty: ir.Type, value: int) -> ir.Constant:
    """The integer constant ``value`` of type ``ty`` (splatted when ``ty`` is a vector type)."""
    if isinstance(ty, ir.VectorType):
        return ir.Constant(ty, [ir.Constant(ty.element, value)] * ty.count)
    return ir.Constant(ty, value)


def _non_nan_constant(value: ir.Value) -> bool:
    """Whether ``value`` is a float constant (or a vector of them) none of whose elements is NaN."""
    if not isinstance(value, ir.Constant):
        return False
    elements = value.constant if isinstance(value.constant, (list, tuple)) else [value]
    for element in elements:
        number = element.constant if isinstance(element, ir.Constant) else None
        if not isinstance(number, (int, float)) or number != number:
            return False
    return True


def _contract(instruction: ir.Instruction) -> ir.Instruction:
    """Allow LLVM to fuse a multiply and an add into one FMA (as C compilers do with -ffp-contract=fast)."""
    instruction.flags.append("contract")
    return instruction

