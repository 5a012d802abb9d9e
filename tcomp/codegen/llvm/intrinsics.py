"""Math calls of the loop IR (``Call(op="exp", ...)``) to LLVM intrinsics or libm functions.

float32 ``exp``, ``log``, ``tanh``, ``erf`` and ``sigmoid`` are tcomp's own vector code (``vecmath.py``); other LLVM
intrinsics are used where they exist (they take vector operands and LLVM scalarizes or vectorizes them); functions that
only libm has (``tanh``, ``erf`` ... in float64) are called per lane; ``pow`` by a constant whole exponent up to 4 is
products. ``float16`` math is computed in ``float32`` and rounded back. ``round`` rounds half to even, as numpy does.
The integer bit operations (``bitwise_and`` ... ``shift_right``) are LLVM's ``and or xor shl ashr lshr``;
``reinterpret`` (the same bits as another type of the same width) is a ``bitcast``; ``bfloat16_bits`` rounds float32 to
the nearest bfloat16's bits, ``<type>_bits`` and ``<type>_value`` convert float32 to and from an 8-bit float,
``<type>_from_float`` a float into a 4- or 2-bit integer (``tcomp.transform.storage_types``). An unknown op is a
``CodegenError``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import llvmlite.ir as ir

from tcomp.codegen.llvm import types as T
from tcomp.codegen.llvm.context import CodegenError
from tcomp.codegen.llvm.vecmath import VECTOR_MATH_OPS, call_vector_math
from tcomp.ir import dtype as dt
from tcomp.ir import expr as E

if TYPE_CHECKING:
    from tcomp.codegen.llvm.exprs import ExprEmitter

# op -> (LLVM intrinsic, number of arguments)
LLVM_INTRINSICS: dict[str, tuple[str, int]] = {
    "exp": ("llvm.exp", 1),
    "exp2": ("llvm.exp2", 1),
    "log": ("llvm.log", 1),
    "log2": ("llvm.log2", 1),
    "log10": ("llvm.log10", 1),
    "sqrt": ("llvm.sqrt", 1),
    "fabs": ("llvm.fabs", 1),
    "floor": ("llvm.floor", 1),
    "ceil": ("llvm.ceil", 1),
    "trunc": ("llvm.trunc", 1),
    "round": ("llvm.roundeven", 1),
    "sin": ("llvm.sin", 1),
    "cos": ("llvm.cos", 1),
    "pow": ("llvm.pow", 2),
    "fma": ("llvm.fma", 3),
}

# op -> (libm name for double, number of arguments); the float variant appends "f"
LIBM_FUNCTIONS: dict[str, tuple[str, int]] = {
    "tanh": ("tanh", 1),
    "erf": ("erf", 1),
    "tan": ("tan", 1),
    "asin": ("asin", 1),
    "acos": ("acos", 1),
    "atan": ("atan", 1),
    "sinh": ("sinh", 1),
    "cosh": ("cosh", 1),
    "asinh": ("asinh", 1),
    "acosh": ("acosh", 1),
    "atanh": ("atanh", 1),
    "log1p": ("log1p", 1),
    "expm1": ("expm1", 1),
    "atan2": ("atan2", 2),
    "fmod": ("fmod", 2),
}

# float32 to an 8-bit float's bits, rounded to nearest even and saturated: op -> format
FLOAT8_BITS = {f"{name}_bits": f for name, f in dt.FLOAT8_FORMATS.items()}
# an 8-bit float's bits to its float32 value: op -> format
FLOAT8_VALUE = {f"{name}_value": f for name, f in dt.FLOAT8_FORMATS.items()}
# a float truncated toward zero into a 4- or 2-bit integer, 0 outside its range: op -> (bits, signed)
SMALL_FROM_FLOAT = {f"{name}_from_float": kind for name, kind in dt.SMALL_INTEGERS.items()}
COMPOSITE = ("rsqrt", "sigmoid", "abs", "likely", "reinterpret", "bfloat16_bits", *FLOAT8_BITS, *FLOAT8_VALUE,
             *SMALL_FROM_FLOAT)

# integer bit operations (``te.BIT_OPS``): op -> number of arguments
BIT_OPS: dict[str, int] = {"bitwise_and": 2, "bitwise_or": 2, "bitwise_xor": 2, "bitwise_not": 1, "shift_left": 2,
                           "shift_right": 2}

SUPPORTED_OPS = tuple(sorted((*LLVM_INTRINSICS, *LIBM_FUNCTIONS, *COMPOSITE, *BIT_OPS)))


def call_intrinsic(emitter: ExprEmitter, name: str, args: list[ir.Value]) -> ir.Value:
    """Call the overloaded LLVM intrinsic ``name`` (``llvm.exp``) on operands of one type."""
    ty = args[0].type
    fn = emitter.ctx.declare(f"{name}.{T.intrinsic_suffix(ty)}", ty, [ty] * len(args))
    return emitter.builder.call(fn, args)


def _call_libm(emitter: ExprEmitter, base_name: str, args: list[ir.Value]) -> ir.Value:
    """Call ``base_name`` (double) or ``base_name + "f"`` (float) from libm, once per lane for vectors."""
    ty = args[0].type
    lanes = ty.count if isinstance(ty, ir.VectorType) else 1
    elem_ty = ty.element if isinstance(ty, ir.VectorType) else ty
    name = base_name if isinstance(elem_ty, ir.DoubleType) else base_name + "f"
    fn = emitter.ctx.declare(name, elem_ty, [elem_ty] * len(args))
    bld = emitter.builder
    if lanes == 1:
        return bld.call(fn, args)
    result: ir.Value = ir.Constant(ty, ir.Undefined)
    for lane in range(lanes):
        lane_args = [bld.extract_element(a, T.I32(lane)) for a in args]
        result = bld.insert_element(result, bld.call(fn, lane_args), T.I32(lane))
    return result


# ``pow(x, n)`` with a constant integer exponent up to this is emitted as ``n - 1`` products (as onnxruntime computes
# ``Pow`` by 2 and 3): within 2 ulp of ``pow``, where libm's ``pow`` would be called once per vector lane
POW_BY_PRODUCTS_MAX = 4


def small_integer_exponent(exponent: E.Expr) -> int | None:
    """The exponent ``n`` in ``[1, POW_BY_PRODUCTS_MAX]`` of a constant (or broadcast constant) float exponent that
    is a whole number, else ``None``."""
    if isinstance(exponent, E.Broadcast):
        exponent = exponent.value
    if not isinstance(exponent, E.FloatImm):
        return None
    value = float(exponent.value)
    if value != int(value) or not 1 <= value <= POW_BY_PRODUCTS_MAX:
        return None
    return int(value)


def _one(dtype: str) -> ir.Value:
    return T.constant(1.0, dtype)


def _float_op(emitter: ExprEmitter, op: str, args: list[ir.Value], dtype: str) -> ir.Value:
    """A float math op on operands of float ``dtype`` (float32 or float64, any lanes)."""
    bld = emitter.builder
    if op in VECTOR_MATH_OPS and dt.element(dtype) == "float32":
        return call_vector_math(emitter.ctx, bld, op, args[0])
    if op in LLVM_INTRINSICS:
        return call_intrinsic(emitter, LLVM_INTRINSICS[op][0], args)
    if op in LIBM_FUNCTIONS:
        return _call_libm(emitter, LIBM_FUNCTIONS[op][0], args)
    if op == "rsqrt":
        return bld.fdiv(_one(dtype), call_intrinsic(emitter, "llvm.sqrt", args))
    if op == "sigmoid":
        negated = bld.fneg(args[0])
        denominator = bld.fadd(_one(dtype), call_intrinsic(emitter, "llvm.exp", [negated]))
        return bld.fdiv(_one(dtype), denominator)
    if op == "abs":
        return call_intrinsic(emitter, "llvm.fabs", args)
    raise CodegenError(f"unknown intrinsic {op!r}")  # pragma: no cover - checked by emit_call


def _bit_op(emitter: ExprEmitter, call: E.Call) -> ir.Value:
    """An integer bit operation; shifts take amounts in ``[0, bits)`` (``te.shift_left`` ensures it)."""
    elem, lanes = dt.element(call.dtype), dt.lanes(call.dtype)
    if not dt.is_int(elem):
        raise CodegenError(f"intrinsic {call.op!r} needs an integer dtype, got {call.dtype} in {call}")
    args = [emitter.emit_lanes(arg, elem, lanes) for arg in call.args]
    bld = emitter.builder
    if call.op == "bitwise_not":
        return bld.not_(args[0])
    build = {"bitwise_and": bld.and_, "bitwise_or": bld.or_, "bitwise_xor": bld.xor, "shift_left": bld.shl,
             "shift_right": bld.ashr if dt.is_signed(elem) else bld.lshr}[call.op]
    return build(args[0], args[1])


def _reinterpret(emitter: ExprEmitter, call: E.Call) -> ir.Value:
    """The bits of ``call``'s argument as ``call.dtype``: same lanes, elements of the same width."""
    source, target = call.args[0].dtype, call.dtype
    if (dt.lanes(source) != dt.lanes(target) or dt.is_bool(source) or dt.is_bool(target)
            or dt.storage_bytes(source) != dt.storage_bytes(target)):
        raise CodegenError(f"reinterpret needs types of the same width and lanes, got {source} as {target} in {call}")
    value = emitter.emit(call.args[0])
    ty = T.llvm_type(target)
    return value if value.type == ty else emitter.builder.bitcast(value, ty)


def _bfloat16_bits(emitter: ExprEmitter, call: E.Call) -> ir.Value:
    """The bits of float32 ``x`` rounded to the nearest bfloat16, ties to even: ``(u + 0x7fff + (u >> 16 & 1)) >>
    16`` of its bits ``u`` (overflow carries into infinity); a NaN keeps its top 16 bits, made quiet (``| 0x40``) only
    where its payload lies in the bits dropped (so a bfloat16 NaN widened and narrowed again keeps every bit)."""
    lanes = dt.lanes(call.dtype)
    value = emitter.emit_lanes(call.args[0], "float32", lanes)
    bld = emitter.builder
    u32 = T.llvm_type(dt.with_lanes("uint32", lanes))

    def k(number: int) -> ir.Constant:
        return T.constant(number, dt.with_lanes("uint32", lanes))

    bits = bld.bitcast(value, u32)
    high = bld.lshr(bits, k(16))
    rounded = bld.lshr(bld.add(bld.add(bits, k(0x7FFF)), bld.and_(high, k(1))), k(16))
    nan = bld.fcmp_unordered("uno", value, value)
    payload_dropped = bld.icmp_unsigned("==", bld.and_(high, k(0x7F)), k(0))
    nan_bits = bld.select(payload_dropped, bld.or_(high, k(0x40)), high)
    chosen = bld.select(nan, nan_bits, rounded)
    return bld.trunc(chosen, T.llvm_type(call.dtype))


def _float8_bits(emitter: ExprEmitter, call: E.Call, f: dt.Float8Format) -> ir.Value:
    """The bits of float32 ``x`` as the 8-bit float ``f``: its magnitude's bits ``a`` rounded to nearest even by
    ``(a + half - 1 + odd) >> (23 - M)`` and the exponent rebiased where the result is normal, ``roundeven(|x| *
    2^(bias - 1 + M))`` where it is subnormal; a finite value past the largest saturated to it, the sign put back
    (not on zero for ``fnuz``); an infinity stays one (``ieee``) or becomes NaN, as a NaN becomes the format's NaN
    (a cast that saturates clamps first: ``tcomp.transform.storage_types``)."""
    lanes = dt.lanes(call.dtype)
    value = emitter.emit_lanes(call.args[0], "float32", lanes)
    bld = emitter.builder
    u32, f32 = dt.with_lanes("uint32", lanes), dt.with_lanes("float32", lanes)

    def k(number: int) -> ir.Constant:
        return T.constant(number, u32)

    shift = 23 - f.mantissa
    bits = bld.bitcast(value, T.llvm_type(u32))
    magnitude = bld.and_(bits, k(0x7FFFFFFF))
    sign = bld.and_(bld.lshr(bits, k(24)), k(0x80))
    odd = bld.and_(bld.lshr(magnitude, k(shift)), k(1))
    rounded = bld.add(bld.add(magnitude, k((1 << (shift - 1)) - 1)), odd)
    normal = bld.sub(bld.lshr(rounded, k(shift)), k((127 - f.bias) << f.mantissa))
    absolute = call_intrinsic(emitter, "llvm.fabs", [value])
    scaled = bld.fmul(absolute, T.constant(2.0 ** (f.bias - 1 + f.mantissa), f32))
    bounded = call_intrinsic(emitter, "llvm.minnum", [scaled, T.constant(256.0, f32)])  # NaN -> 256: not taken
    tiny = bld.fptoui(call_intrinsic(emitter, "llvm.roundeven", [bounded]), T.llvm_type(u32))
    is_normal = bld.icmp_unsigned(">=", magnitude, k((128 - f.bias) << 23))
    code = bld.select(is_normal, normal, tiny)
    code = bld.select(bld.icmp_unsigned(">", code, k(f.largest)), k(f.largest), code)
    signed = bld.or_(code, sign)
    if f.kind == "fnuz":
        signed = bld.select(bld.icmp_unsigned("==", code, k(0)), k(0), signed)
    nan = k(0x80) if f.kind == "fnuz" else bld.or_(sign, k(0x7F))
    infinity = bld.or_(sign, k(0x7C)) if f.kind == "ieee" else nan
    special = bld.select(bld.icmp_unsigned(">", magnitude, k(0x7F800000)), nan, infinity)
    result = bld.select(bld.icmp_unsigned(">=", magnitude, k(0x7F800000)), special, signed)
    return bld.trunc(result, T.llvm_type(call.dtype))


def _float8_value(emitter: ExprEmitter, call: E.Call, f: dt.Float8Format) -> ir.Value:
    """The float32 value of the 8-bit float ``f`` whose bits (``uint8``) ``call`` reads: the sign, the exponent
    rebiased and the mantissa moved into a float32's fields, or ``mantissa * 2^(1 - bias - M)`` with the sign where
    the exponent field is 0; ``f``'s NaN codes (and infinities, ``ieee``) as float32's."""
    lanes = dt.lanes(call.dtype)
    u32, f32 = dt.with_lanes("uint32", lanes), dt.with_lanes("float32", lanes)
    bld = emitter.builder
    bits = bld.zext(emitter.emit_lanes(call.args[0], "uint8", lanes), T.llvm_type(u32))

    def k(number: int) -> ir.Constant:
        return T.constant(number, u32)

    exponent_mask = (1 << f.exponent) - 1
    exponent = bld.and_(bld.lshr(bits, k(f.mantissa)), k(exponent_mask))
    mantissa = bld.and_(bits, k((1 << f.mantissa) - 1))
    sign = bld.shl(bld.and_(bits, k(0x80)), k(24))
    fields = bld.or_(bld.shl(bld.add(exponent, k(127 - f.bias)), k(23)), bld.shl(mantissa, k(23 - f.mantissa)))
    normal = bld.or_(sign, fields)
    tiny = bld.fmul(bld.uitofp(mantissa, T.llvm_type(f32)), T.constant(2.0 ** (1 - f.bias - f.mantissa), f32))
    signed_tiny = bld.or_(bld.bitcast(tiny, T.llvm_type(u32)), sign)
    value = bld.select(bld.icmp_unsigned("==", exponent, k(0)), signed_tiny, normal)
    nan = k(0x7FC00000)
    if f.kind == "fnuz":
        value = bld.select(bld.icmp_unsigned("==", bits, k(0x80)), nan, value)
    elif f.kind == "fn":
        value = bld.select(bld.icmp_unsigned("==", bld.and_(bits, k(0x7F)), k(0x7F)), nan, value)
    else:
        infinity = bld.or_(sign, k(0x7F800000))
        special = bld.select(bld.icmp_unsigned("==", mantissa, k(0)), infinity, nan)
        value = bld.select(bld.icmp_unsigned("==", exponent, k(exponent_mask)), special, value)
    return bld.bitcast(value, T.llvm_type(f32))


def _small_from_float(emitter: ExprEmitter, call: E.Call, width: int, signed: bool) -> ir.Value:
    """A float truncated toward zero into a ``width``-bit integer (``call.dtype``, its 8-bit compute type), 0 where
    it lies outside the range or is NaN (as ``ml_dtypes`` converts)."""
    value = emitter.emit(call.args[0])
    source = call.args[0].dtype
    bld = emitter.builder
    low, high = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
    above = bld.fcmp_ordered(">", value, T.constant(low - 1, source))
    below = bld.fcmp_ordered("<", value, T.constant(high + 1, source))
    kept = bld.select(bld.and_(above, below), value, T.constant(0, source))
    target = T.llvm_type(call.dtype)
    return bld.fptosi(kept, target) if signed else bld.fptoui(kept, target)


def _arity(op: str) -> int:
    if op in BIT_OPS:
        return BIT_OPS[op]
    if op in LLVM_INTRINSICS:
        return LLVM_INTRINSICS[op][1]
    if op in LIBM_FUNCTIONS:
        return LIBM_FUNCTIONS[op][1]
    return 1


def emit_call(emitter: ExprEmitter, call: E.Call) -> ir.Value:
    """The value of the pure call ``call``."""
    op = call.op
    if op not in SUPPORTED_OPS or call.kind != "pure":
        raise CodegenError(
            f"unknown intrinsic {op!r} (call kind {call.kind!r}) in {call}; the LLVM backend supports "
            + ", ".join(SUPPORTED_OPS)
        )
    if len(call.args) != _arity(op):
        raise CodegenError(f"intrinsic {op!r} takes {_arity(op)} argument(s), got {len(call.args)} in {call}")
    if op == "likely":
        return emitter.emit_as(call.args[0], call.dtype)
    if op == "reinterpret":
        return _reinterpret(emitter, call)
    if op == "bfloat16_bits":
        return _bfloat16_bits(emitter, call)
    if op in FLOAT8_BITS:
        return _float8_bits(emitter, call, FLOAT8_BITS[op])
    if op in FLOAT8_VALUE:
        return _float8_value(emitter, call, FLOAT8_VALUE[op])
    if op in SMALL_FROM_FLOAT:
        return _small_from_float(emitter, call, *SMALL_FROM_FLOAT[op])
    if op in BIT_OPS:
        return _bit_op(emitter, call)
    lanes = dt.lanes(call.dtype)
    elem = dt.element(call.dtype)
    if op == "abs" and not dt.is_float(elem):
        value = emitter.emit_lanes(call.args[0], elem, lanes)
        if not dt.is_signed(elem):
            return value
        ty = value.type
        fn = emitter.ctx.declare(f"llvm.abs.{T.intrinsic_suffix(ty)}", ty, [ty, T.I1])
        return emitter.builder.call(fn, [value, T.I1(0)])
    if not dt.is_float(elem):
        raise CodegenError(f"intrinsic {op!r} needs a float dtype, got {call.dtype} in {call}")
    compute = dt.with_lanes("float32" if elem == "float16" else elem, lanes)
    exponent = small_integer_exponent(call.args[1]) if op == "pow" else None
    if exponent is not None:  # x ** 2, x ** 3 (tanh-form GELU): products, not pow called per lane
        base = emitter.emit_lanes(call.args[0], dt.element(compute), lanes)
        result = base
        for _ in range(exponent - 1):
            result = emitter.builder.fmul(result, base)
        return emitter.cast(result, compute, call.dtype)
    args = [emitter.emit_lanes(arg, dt.element(compute), lanes) for arg in call.args]
    result = _float_op(emitter, op, args, compute)
    return emitter.cast(result, compute, call.dtype)
