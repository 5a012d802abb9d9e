"""Loop-IR expressions as CUDA C expressions, with C precedence (parentheses only where needed).

Repeated operands of ``&&`` print once: the same tree over the same variables (``y.o * 2 + y.i < 3`` and
``x.o * 2 + x.i < 3`` are two guards, though ``structural_equal``, equality up to renaming, calls them equal).
Integer ``//`` and ``%`` (floor semantics) print as C's ``/`` and ``%`` where the operands are provably non-negative
(the loop bounds known so far are used), else as the helpers ``tc_floordiv`` / ``tc_floormod`` of the preamble. An
integer division or remainder whose divisor is not a non-zero constant goes through the helpers too (``tc_div`` ...),
which give 0 for a zero divisor, numpy's result: a kernel has no error channel, and the CPU emulation would die of
SIGFPE (the LLVM backend raises ``KernelError`` instead).
Floats: ``float32`` constants get an ``f`` suffix and math calls their ``f`` variant (``expf``); infinities and NaN are
bit patterns (``__int_as_float``); ``reinterpret`` is ``__uint_as_float`` and its kin, or a C cast between integer types
(``bfloat16`` is its bits, ``unsigned short``, and an 8-bit float or a 4- or 2-bit integer its byte); ``bfloat16_bits``,
the 8-bit floats' ``<type>_bits`` and ``<type>_value`` and the small integers' ``<type>_from_float`` are helpers
(``tc_bfloat16_bits`` ...). ``float16`` and vector types are not supported in expressions; ``float16`` buffers may be
passed to tcomp's own device functions (``device_functions``), which see them as ``unsigned short`` bit patterns
(``storage_type``). Calls of kind ``extern`` must name a registered device function; ``address_of`` prints as a pointer
(``(buf + index)``).
"""

from __future__ import annotations

import math
import re

from tcomp.arith import const_int_bound
from tcomp.arith.keys import ExprKeys
from tcomp.codegen.cuda.device_functions import device_function
from tcomp.codegen.cuda.warp_intrinsics import HELPER_SOURCE as TENSOR_CORE_SOURCE
from tcomp.codegen.cuda.warp_intrinsics import TENSOR_CORE_HELPER
from tcomp.ir import dtype as dt
from tcomp.ir import expr as E
from tcomp.ir.gpu import is_shuffle
from tcomp.runtime.cuda_artifact import c_type as runtime_c_type
from tcomp.runtime.cuda_artifact import storage_type as runtime_storage_type


class CudaCodegenError(ValueError):
    """A loop-IR construct the CUDA backend cannot print."""


# precedence levels of C operators (higher binds tighter)
_ATOM, _UNARY, _MUL, _ADD, _REL, _EQ, _AND, _OR, _COND = 100, 14, 13, 12, 10, 9, 5, 4, 3
_BINARY: dict[type, tuple[str, int]] = {
    E.Add: ("+", _ADD),
    E.Sub: ("-", _ADD),
    E.Mul: ("*", _MUL),
    E.LT: ("<", _REL),
    E.LE: ("<=", _REL),
    E.GT: (">", _REL),
    E.GE: (">=", _REL),
    E.EQ: ("==", _EQ),
    E.NE: ("!=", _EQ),
    E.And: ("&&", _AND),
    E.Or: ("||", _OR),
}

# op -> C function for float64; float32 appends "f"
_MATH = {
    "exp": "exp", "exp2": "exp2", "log": "log", "log2": "log2", "log10": "log10", "sqrt": "sqrt", "fabs": "fabs",
    "floor": "floor", "ceil": "ceil", "trunc": "trunc", "round": "rint", "sin": "sin", "cos": "cos", "pow": "pow",
    "fma": "fma", "tanh": "tanh", "erf": "erf", "tan": "tan", "asin": "asin", "acos": "acos", "atan": "atan",
    "sinh": "sinh", "cosh": "cosh", "asinh": "asinh", "acosh": "acosh", "atanh": "atanh",
    "log1p": "log1p", "expm1": "expm1", "atan2": "atan2", "fmod": "fmod",
    "rsqrt": "rsqrt", "abs": "fabs",
}

# integer bit operations (``te.BIT_OPS``) -> C operator
_BIT_OPS = {"bitwise_and": "&", "bitwise_or": "|", "bitwise_xor": "^", "bitwise_not": "~", "shift_left": "<<",
            "shift_right": ">>"}

_RESERVED = {
    "auto", "bool", "break", "case", "char", "const", "continue", "default", "do", "double", "else", "enum", "extern",
    "float", "for", "goto", "if", "int", "long", "return", "short", "signed", "sizeof", "static", "struct", "switch",
    "typedef", "union", "unsigned", "void", "volatile", "while", "true", "false", "threadIdx", "blockIdx", "blockDim",
    "gridDim", "warpSize", "min", "max", "new", "delete", "class", "template", "this", "operator", "namespace",
}


def c_type(dtype: str) -> str:
    """The C type of ``dtype`` (``tcomp.runtime.cuda_artifact.c_type``), or ``CudaCodegenError``."""
    try:
        return runtime_c_type(dtype)
    except ValueError as error:
        raise CudaCodegenError(str(error)) from None


def storage_type(dtype: str) -> str:
    """The element type of a buffer of ``dtype`` (``tcomp.runtime.cuda_artifact.storage_type``: float16 as its
    bits), or ``CudaCodegenError``."""
    try:
        return runtime_storage_type(dtype)
    except ValueError as error:
        raise CudaCodegenError(str(error)) from None


class NameTable:
    """C identifiers for variables and buffers: sanitized, unique within one kernel."""

    def __init__(self) -> None:
        self.names: dict[int, str] = {}
        self.taken: set[str] = set()

    def define(self, key: object, hint: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_]", "_", hint) or "v"
        if base[0].isdigit():
            base = "v" + base
        if base in _RESERVED or base.startswith("__"):
            base = base + "_"
        name, count = base, 0
        while name in self.taken:
            count += 1
            name = f"{base}_{count}"
        self.taken.add(name)
        self.names[id(key)] = name
        return name

    def get(self, key: object, hint: str) -> str:
        name = self.names.get(id(key))
        if name is None:
            raise CudaCodegenError(f"{hint} is used outside the scope that defines it")
        return name


def _conjuncts(e: E.Expr) -> list[E.Expr]:
    """The operands of a chain of ``&&``, without repeats (bounds guards often repeat a condition)."""
    if not isinstance(e, E.And):
        return [e]
    keys = ExprKeys()
    result: list[E.Expr] = []
    for part in _conjuncts(e.a) + _conjuncts(e.b):
        if not any(keys.equal(part, seen) for seen in result):
            result.append(part)
    return result


class ExprPrinter:
    """Prints expressions; ``bounds`` holds the ranges of the enclosing loop variables."""

    def __init__(self, names: NameTable) -> None:
        self.names = names
        self.bounds: dict[E.Var, tuple[int, int]] = {}
        self.helpers: set[str] = set()
        self.device_functions: set[str] = set()

    def __call__(self, e: E.Expr) -> str:
        return self.expr(e)[0]

    def paren(self, e: E.Expr, prec: int) -> str:
        text, own = self.expr(e)
        return f"({text})" if own < prec else text

    def expr(self, e: E.Expr) -> tuple[str, int]:
        if dt.lanes(e.dtype) != 1:
            raise CudaCodegenError(f"vector expression {e} ({e.dtype}) is not supported by the CUDA backend")
        if isinstance(e, E.IntImm):
            return self.int_const(e)
        if isinstance(e, E.FloatImm):
            return self.float_const(e)
        if isinstance(e, E.Var):
            return self.names.get(e, f"variable {e.name}"), _ATOM
        if isinstance(e, E.BufferLoad):
            name = self.names.get(e.buffer, f"buffer {e.buffer.name}")
            return f"{name}[{self(e.indices[0])}]", _ATOM
        if isinstance(e, E.And):
            return " && ".join(self.paren(c, _AND + 1) for c in _conjuncts(e)), _AND
        if type(e) in _BINARY:
            assert isinstance(e, E.BinaryOp)
            symbol, prec = _BINARY[type(e)]
            return f"{self.paren(e.a, prec)} {symbol} {self.paren(e.b, prec + 1)}", prec
        if isinstance(e, (E.Div, E.Mod, E.FloorDiv, E.FloorMod)):
            return self.division(e)
        if isinstance(e, (E.Min, E.Max)):
            name = ("min" if isinstance(e, E.Min) else "max")
            if dt.is_float(e.dtype):
                name = f"tc_{name}_nan"  # fminf/fmaxf drop a NaN operand; min and max propagate it
                self.helpers.add("tc_minmax_nan")
            return f"{name}({self(e.a)}, {self(e.b)})", _ATOM
        if isinstance(e, E.Not):
            return f"!{self.paren(e.a, _UNARY)}", _UNARY
        if isinstance(e, E.Select):
            cond = self.paren(e.condition, _COND + 1)
            return f"{cond} ? {self.paren(e.true_value, _COND + 1)} : {self.paren(e.false_value, _COND)}", _COND
        if isinstance(e, E.Cast):
            return f"({c_type(e.dtype)}){self.paren(e.value, _UNARY)}", _UNARY
        if isinstance(e, E.Call):
            return self.call(e), _ATOM
        raise CudaCodegenError(f"{type(e).__name__} expression {e} is not supported by the CUDA backend")

    def int_const(self, e: E.IntImm) -> tuple[str, int]:
        value = e.value
        if e.dtype == "bool":
            return ("true" if value else "false"), _ATOM
        suffix = {"int64": "LL", "uint32": "U", "uint64": "ULL"}.get(e.dtype, "")
        if e.dtype == "int32" and value == -(2**31):
            return "(-2147483647 - 1)", _ATOM
        if e.dtype == "int64" and value == -(2**63):
            return "(-9223372036854775807LL - 1)", _ATOM
        text = f"{value}{suffix}"
        if e.dtype in ("int8", "int16", "uint8", "uint16"):
            return f"({c_type(e.dtype)}){value}", _UNARY
        return text, (_ATOM if value >= 0 else _UNARY)

    def float_const(self, e: E.FloatImm) -> tuple[str, int]:
        value = float(e.value)
        single = e.dtype == "float32"
        if e.dtype not in ("float32", "float64"):
            raise CudaCodegenError(f"dtype {e.dtype} is not supported by the CUDA backend")
        if math.isinf(value) or math.isnan(value):
            if single:
                bits = "0x7fc00000" if math.isnan(value) else ("0x7f800000" if value > 0 else "0xff800000")
                return f"__int_as_float({bits})", _ATOM
            bits = "0x7ff8000000000000" if math.isnan(value) else (
                "0x7ff0000000000000" if value > 0 else "0xfff0000000000000")
            return f"__longlong_as_double({bits}LL)", _ATOM
        text = repr(value)
        if "e" not in text and "." not in text:
            text += ".0"
        return text + ("f" if single else ""), (_ATOM if value >= 0 and not text.startswith("-") else _UNARY)

    def non_negative(self, e: E.Expr) -> bool:
        low, _ = const_int_bound(e, self.bounds)
        return low is not None and low >= 0

    def division(self, e: E.BinaryOp) -> tuple[str, int]:
        a, b = e.a, e.b
        if dt.is_float(e.dtype):
            if isinstance(e, (E.Div, E.FloorDiv)):
                text = f"{self.paren(a, _MUL)} / {self.paren(b, _MUL + 1)}"
                if isinstance(e, E.FloorDiv):
                    return f"{_MATH['floor']}{'f' if e.dtype == 'float32' else ''}({text})", _ATOM
                return text, _MUL
            return f"fmod{'f' if e.dtype == 'float32' else ''}({self(a)}, {self(b)})", _ATOM
        symbol = "/" if isinstance(e, (E.Div, E.FloorDiv)) else "%"
        truncating = isinstance(e, (E.Div, E.Mod))
        if E.divides_by_maybe_zero(e):
            helper = {E.Div: "tc_div", E.Mod: "tc_mod", E.FloorDiv: "tc_floordiv", E.FloorMod: "tc_floormod"}[type(e)]
        elif truncating or (self.non_negative(a) and self.non_negative(b)):
            return f"{self.paren(a, _MUL)} {symbol} {self.paren(b, _MUL + 1)}", _MUL
        else:
            helper = "tc_floordiv" if isinstance(e, E.FloorDiv) else "tc_floormod"
        self.helpers.add("tc_division")
        return f"{helper}({self(a)}, {self(b)})", _ATOM

    def call(self, e: E.Call) -> str:
        if e.kind == "extern":
            return self.extern_call(e)
        if e.op == "address_of" and len(e.args) == 1 and isinstance(e.args[0], E.BufferLoad):
            load = e.args[0]
            name = self.names.get(load.buffer, f"buffer {load.buffer.name}")
            return f"({name} + {self(load.indices[0])})"
        if is_shuffle(e):
            value, lane_mask, width = e.args
            self.helpers.add("tc_warp_mask")
            return f"__shfl_xor_sync(tc_warp_mask(), {self(value)}, {self(lane_mask)}, {self(width)})"
        if e.kind != "pure":
            raise CudaCodegenError(f"call {e} of kind {e.kind!r} cannot run in a CUDA kernel")
        op, args = e.op, e.args
        if op == "likely":
            return self(args[0])
        if op == "reinterpret":
            return self.reinterpret(e)
        if op == "bfloat16_bits" or op in _FLOAT8_BITS or op in _FLOAT8_VALUE or op in _SMALL_FROM_FLOAT:
            self.helpers.add(f"tc_{op}")
            return f"tc_{op}({self(args[0])})"
        if op in _BIT_OPS:
            return self.bit_op(e)
        if op == "abs" and not dt.is_float(e.dtype):
            return f"{'llabs' if dt.bits(e.dtype) == 64 else 'abs'}({self(args[0])})"
        if not dt.is_float(e.dtype) or e.dtype not in ("float32", "float64"):
            raise CudaCodegenError(f"math call {e} needs a float32 or float64 operand, got {e.dtype}")
        suffix = "f" if e.dtype == "float32" else ""
        if op == "sigmoid":
            one = "1.0f" if suffix else "1.0"
            return f"({one} / ({one} + exp{suffix}(-{self.paren(args[0], _UNARY)})))"
        if op not in _MATH:
            raise CudaCodegenError(f"math call {op!r} is not supported by the CUDA backend")
        return f"{_MATH[op]}{suffix}({', '.join(self(a) for a in args)})"


    def reinterpret(self, e: E.Call) -> str:
        """The bits of ``e``'s argument as ``e.dtype`` (a scalar type of the same width)."""
        source, target = e.args[0].dtype, e.dtype
        if dt.is_bool(source) or dt.is_bool(target) or dt.storage_bytes(source) != dt.storage_bytes(target):
            raise CudaCodegenError(f"reinterpret needs types of the same width, got {source} as {target} in {e}")
        value, kind = self(e.args[0]), c_type(target)
        if target in ("float32", "float64"):
            if source == target:
                return value
            bits = "unsigned int" if target == "float32" else "long long"
            name = "__uint_as_float" if target == "float32" else "__longlong_as_double"
            return f"{name}(({bits})({value}))"
        if source in ("float32", "float64"):
            name = "__float_as_uint" if source == "float32" else "__double_as_longlong"
            return f"(({kind}){name}({value}))"
        if source == "float16":
            raise CudaCodegenError(f"float16 values are not supported in CUDA expressions: {e}")
        return f"(({kind})({value}))"

    def bit_op(self, e: E.Call) -> str:
        """An integer bit operation, cast back to its type (C promotes narrow operands to int). A left shift runs on
        the unsigned type of the same width (a signed overflow would be undefined); shifts take amounts in
        ``[0, bits)`` (``te.shift_left`` ensures it); ``>>`` of a signed value is arithmetic in nvcc and gcc."""
        if not dt.is_int(e.dtype):
            raise CudaCodegenError(f"bit operation {e} needs an integer operand, got {e.dtype}")
        kind = c_type(e.dtype)
        args = [self(a) for a in e.args]
        if e.op == "bitwise_not":
            return f"(({kind})~({args[0]}))"
        if e.op == "shift_left":
            unsigned = c_type(e.dtype if not dt.is_signed(e.dtype) else "u" + e.dtype)
            return f"(({kind})(({unsigned})({args[0]}) << ({args[1]})))"
        return f"(({kind})(({args[0]}) {_BIT_OPS[e.op]} ({args[1]})))"

    def extern_call(self, e: E.Call) -> str:
        """A call of a registered device function; its name goes to ``device_functions`` (the code generator puts
        its source before the kernels)."""
        if device_function(e.op) is None:
            raise CudaCodegenError(f"call of {e.op!r}: CUDA kernels can call only device functions tcomp generated")
        self.device_functions.add(e.op)
        return f"{e.op}({', '.join(self(a) for a in e.args)})"


# Asynchronous copies from global to shared memory (``cp.async``, compute capability 8.0 and later; a plain copy on
# older GPUs and in the CPU emulation). ``tc_cp_async_wait_all`` waits for this thread's copies.
_CP_ASYNC = (
    "static __device__ __forceinline__ unsigned tc_shared_address(const void* p) {\n"
    "  unsigned address;\n"
    "  asm volatile(\"{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }\" : \"=r\"(address) : \"l\"(p));\n"
    "  return address;\n"
    "}\n"
    "static __device__ __forceinline__ void tc_cp_async4(void* dst, const void* src) {\n"
    "  asm volatile(\"cp.async.ca.shared.global [%0], [%1], 4;\" :: \"r\"(tc_shared_address(dst)), \"l\"(src));\n"
    "}\n"
    "static __device__ __forceinline__ void tc_cp_async16(void* dst, const void* src) {\n"
    "  asm volatile(\"cp.async.cg.shared.global [%0], [%1], 16;\" :: \"r\"(tc_shared_address(dst)), \"l\"(src));\n"
    "}\n"
    "static __device__ __forceinline__ void tc_cp_async_wait_all() {\n"
    "  asm volatile(\"cp.async.wait_all;\" ::: \"memory\");\n"
    "}\n"
)
_CP_SYNC = (
    "static __device__ __forceinline__ void tc_cp_async4(void* dst, const void* src) {\n"
    "  __builtin_memcpy(dst, src, 4);\n"
    "}\n"
    "static __device__ __forceinline__ void tc_cp_async16(void* dst, const void* src) {\n"
    "  __builtin_memcpy(dst, src, 16);\n"
    "}\n"
    "static __device__ __forceinline__ void tc_cp_async_wait_all() {}\n"
)

# Float min and max that propagate NaN (IEEE 754-2019 minimum / maximum), as the LLVM backend and the loop-IR
# semantics do; the operands are evaluated once.
_MINMAX_NAN = "".join(
    f"static __device__ __forceinline__ {t} tc_{name}_nan({t} a, {t} b) {{\n"
    f"  return (a {op} b || a != a) ? a : b;\n"
    "}\n"
    for t in ("float", "double")
    for name, op in (("min", "<"), ("max", ">"))
)

# Integer division and remainder that cannot trap: a zero divisor gives 0 (numpy's result; kernels have no error
# channel, and the CPU emulation would die of SIGFPE), and MIN / -1 wraps to MIN with remainder 0 (numpy's result,
# as in the LLVM backend). ``tc_div``/``tc_mod`` truncate (C); ``tc_floordiv``/``tc_floormod`` round toward
# negative infinity.
def _division_helpers(t: str, unsigned: str | None) -> str:
    """The four helpers for C type ``t``; ``unsigned`` is its unsigned counterpart when ``t`` is signed."""
    def f(name: str, body: str) -> str:
        return f"static __device__ __forceinline__ {t} {name}({t} a, {t} b) {{\n{body}}}\n"

    if unsigned is None:
        text = f("tc_div", "  return b == 0 ? 0 : a / b;\n") + f("tc_mod", "  return b == 0 ? 0 : a % b;\n")
        return text + f("tc_floordiv", "  return tc_div(a, b);\n") + f("tc_floormod", "  return tc_mod(a, b);\n")
    negate = f"({t})(({unsigned})0 - ({unsigned})a)"
    text = f("tc_div", f"  if (b == 0) return 0;\n  if (b == -1) return {negate};\n  return a / b;\n")
    text += f("tc_mod", "  if (b == 0 || b == -1) return 0;\n  return a % b;\n")
    text += f("tc_floordiv", f"  if (b == 0) return 0;\n  if (b == -1) return {negate};\n  {t} q = a / b;\n"
              "  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;\n")
    text += f("tc_floormod", f"  if (b == 0 || b == -1) return 0;\n  {t} r = a % b;\n"
              "  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;\n")
    return text


_DIVISION = "".join(_division_helpers(t, unsigned) for t, unsigned in (
    ("int", "unsigned"), ("long long", "unsigned long long"), ("unsigned", None), ("unsigned long long", None)))

# float32 to an 8-bit float's bits and back (the LLVM backend's ``_float8_bits``, ``_float8_value``): op -> format
_FLOAT8_BITS = {f"{name}_bits": f for name, f in dt.FLOAT8_FORMATS.items()}
_FLOAT8_VALUE = {f"{name}_value": f for name, f in dt.FLOAT8_FORMATS.items()}


# a float into a 4- or 2-bit integer (the LLVM backend's ``_small_from_float``): op -> (bits, signed)
_SMALL_FROM_FLOAT = {f"{name}_from_float": kind for name, kind in dt.SMALL_INTEGERS.items()}


def _small_from_float_helper(op: str, width: int, signed: bool) -> str:
    """``tc_<op>(x)``: ``x`` truncated toward zero, 0 outside the ``width``-bit integer's range or for NaN."""
    low, high = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
    kind = "signed char" if signed else "unsigned char"
    return (
        f"static __device__ __forceinline__ {kind} tc_{op}(double x) {{\n"
        f"  return x > {low - 1}.0 && x < {high + 1}.0 ? ({kind})(int)x : ({kind})0;\n"
        "}\n"
    )


def _float8_value_helper(op: str, f: dt.Float8Format) -> str:
    """``tc_<op>(b)``: the float32 value of the 8-bit float ``f`` whose bits are ``b``."""
    top = (1 << f.exponent) - 1
    if f.kind == "fnuz":
        special = "  if (b == 0x80u) return __uint_as_float(0x7fc00000u);\n"
    elif f.kind == "fn":
        special = "  if ((b & 0x7fu) == 0x7fu) return __uint_as_float(0x7fc00000u);\n"
    else:
        special = (f"  if (exponent == {top}u) return __uint_as_float(mantissa ? 0x7fc00000u : sign | 0x7f800000u);\n")
    return (
        f"static __device__ __forceinline__ float tc_{op}(unsigned char bits) {{\n"
        "  const unsigned b = bits, sign = (b & 0x80u) << 24;\n"
        f"  const unsigned exponent = (b >> {f.mantissa}) & {top}u, mantissa = b & {(1 << f.mantissa) - 1}u;\n"
        + special +
        f"  if (exponent == 0u) return __uint_as_float(__float_as_uint((float)mantissa * "
        f"{2.0 ** (1 - f.bias - f.mantissa)!r}f) | sign);\n"
        f"  return __uint_as_float(sign | ((exponent + {127 - f.bias}u) << 23) | (mantissa << {23 - f.mantissa}));\n"
        "}\n"
    )


def _float8_helper(op: str, f: dt.Float8Format) -> str:
    """``tc_<op>(x)``: ``x`` rounded to nearest even to the 8-bit float ``f``, as its bits (the LLVM backend's
    ``_float8_bits``: finite values past the largest saturate, an infinity stays one or becomes NaN)."""
    shift = 23 - f.mantissa
    nan = "0x80u" if f.kind == "fnuz" else "sign | 0x7fu"
    infinity = "sign | 0x7cu" if f.kind == "ieee" else nan
    signed = "(code ? code | sign : 0u)" if f.kind == "fnuz" else "code | sign"
    return (
        f"static __device__ __forceinline__ unsigned char tc_{op}(float x) {{\n"
        "  const unsigned u = __float_as_uint(x), magnitude = u & 0x7fffffffu, sign = (u >> 24) & 0x80u;\n"
        f"  if (magnitude > 0x7f800000u) return (unsigned char)({nan});\n"
        f"  if (magnitude == 0x7f800000u) return (unsigned char)({infinity});\n"
        f"  unsigned code = magnitude >= {(128 - f.bias) << 23}u\n"
        f"      ? ((magnitude + {(1 << (shift - 1)) - 1}u + ((magnitude >> {shift}) & 1u)) >> {shift}) - "
        f"{(127 - f.bias) << f.mantissa}u\n"
        f"      : (unsigned)rintf(fminf(fabsf(x) * {2.0 ** (f.bias - 1 + f.mantissa)!r}f, 256.0f));\n"
        f"  if (code > {f.largest}u) code = {f.largest}u;\n"
        f"  return (unsigned char)({signed});\n"
        "}\n"
    )


HELPERS = {
    # the lanes of this thread's warp that exist: all 32, or the first threads % 32 in a block's partial last warp
    "tc_warp_mask": (
        "static __device__ __forceinline__ unsigned tc_warp_mask() {\n"
        "  const unsigned threads = blockDim.x * blockDim.y * blockDim.z;\n"
        "  const unsigned thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);\n"
        "  const unsigned lanes = threads - (thread & ~31u);\n"
        "  return lanes >= 32u ? 0xffffffffu : (1u << lanes) - 1u;\n"
        "}\n"
    ),
    TENSOR_CORE_HELPER: TENSOR_CORE_SOURCE,
    # the block's dynamic shared memory (the CPU emulation defines it as a static array of `bytes`)
    "tc_dynamic_shared": (
        "#ifndef TC_DYNAMIC_SHARED\n"
        "#define TC_DYNAMIC_SHARED(name, bytes) extern __shared__ __align__(16) unsigned char name[]\n"
        "#endif\n"
    ),
    "tc_minmax_nan": _MINMAX_NAN,
    # float32 to the nearest bfloat16's bits, ties to even; a NaN keeps its top bits (made quiet where that leaves no
    # payload)
    "tc_bfloat16_bits": (
        "static __device__ __forceinline__ unsigned short tc_bfloat16_bits(float x) {\n"
        "  const unsigned u = __float_as_uint(x);\n"
        "  if (x != x) return (unsigned short)((u >> 16) | ((u >> 16) & 0x7fu ? 0u : 0x40u));\n"
        "  return (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);\n"
        "}\n"
    ),
    **{f"tc_{op}": _float8_helper(op, f) for op, f in _FLOAT8_BITS.items()},
    **{f"tc_{op}": _float8_value_helper(op, f) for op, f in _FLOAT8_VALUE.items()},
    **{f"tc_{op}": _small_from_float_helper(op, *kind) for op, kind in _SMALL_FROM_FLOAT.items()},
    "tc_cp_async": (
        "#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800\n" + _CP_ASYNC + "#else\n" + _CP_SYNC + "#endif\n"
    ),
    "tc_division": _DIVISION,
}
