"""Math intrinsics, casts, conditionals and integer division helpers of the tensor-expression language."""

from __future__ import annotations

from typing import Any

from tcomp.ir import dtype as dt
from tcomp.ir.expr import (
    Call,
    Expr,
    IntImm,
    cast,
    convert,
    floordiv,
    floormod,
    logical_and,
    logical_not,
    logical_or,
    make_const,
    max_expr,
    min_expr,
    select,
    truncdiv,
    truncmod,
)

CHECKED_INDEX = "tcomp.checked_index"

__all__ = [
    "abs",
    "acos",
    "acosh",
    "all",
    "any",
    "asin",
    "asinh",
    "atan",
    "atanh",
    "bitwise_and",
    "bitwise_not",
    "bitwise_or",
    "bitwise_xor",
    "cast",
    "ceil",
    "checked_index",
    "cos",
    "cosh",
    "erf",
    "exp",
    "floor",
    "floordiv",
    "floormod",
    "if_then_else",
    "log",
    "logical_and",
    "logical_not",
    "logical_or",
    "max_value",
    "min_value",
    "max",
    "min",
    "pow",
    "reinterpret",
    "round",
    "rsqrt",
    "shift_left",
    "shift_right",
    "sigmoid",
    "sin",
    "sinh",
    "sqrt",
    "tan",
    "tanh",
    "truncdiv",
    "truncmod",
]


def _float_call(op: str, x: Any) -> Expr:
    value = convert(x)
    if not dt.is_float(value.dtype):
        value = cast(value, "float32")
    return Call(op, (value,), value.dtype)


def exp(x: Any) -> Expr:
    return _float_call("exp", x)


def log(x: Any) -> Expr:
    return _float_call("log", x)


def sqrt(x: Any) -> Expr:
    return _float_call("sqrt", x)


def rsqrt(x: Any) -> Expr:
    return _float_call("rsqrt", x)


def tanh(x: Any) -> Expr:
    return _float_call("tanh", x)


def sigmoid(x: Any) -> Expr:
    return _float_call("sigmoid", x)


def erf(x: Any) -> Expr:
    return _float_call("erf", x)


def sin(x: Any) -> Expr:
    return _float_call("sin", x)


def cos(x: Any) -> Expr:
    return _float_call("cos", x)


def tan(x: Any) -> Expr:
    return _float_call("tan", x)


def asin(x: Any) -> Expr:
    return _float_call("asin", x)


def acos(x: Any) -> Expr:
    return _float_call("acos", x)


def atan(x: Any) -> Expr:
    return _float_call("atan", x)


def sinh(x: Any) -> Expr:
    return _float_call("sinh", x)


def cosh(x: Any) -> Expr:
    return _float_call("cosh", x)


def asinh(x: Any) -> Expr:
    return _float_call("asinh", x)


def acosh(x: Any) -> Expr:
    return _float_call("acosh", x)


def atanh(x: Any) -> Expr:
    return _float_call("atanh", x)


def floor(x: Any) -> Expr:
    value = convert(x)
    return value if not dt.is_float(value.dtype) else Call("floor", (value,), value.dtype)


def ceil(x: Any) -> Expr:
    value = convert(x)
    return value if not dt.is_float(value.dtype) else Call("ceil", (value,), value.dtype)


def round(x: Any) -> Expr:  # noqa: A001
    """Round half to even (as numpy does)."""
    value = convert(x)
    return value if not dt.is_float(value.dtype) else Call("round", (value,), value.dtype)


def abs(x: Any) -> Expr:  # noqa: A001
    value = convert(x)
    if dt.is_float(value.dtype):
        return Call("fabs", (value,), value.dtype)
    if dt.is_signed(value.dtype):
        return select(value < 0, -value, value)
    return value


def pow(x: Any, y: Any) -> Expr:  # noqa: A001
    base = convert(x)
    if not dt.is_float(base.dtype):
        base = cast(base, "float32")
    exponent = cast(convert(y), base.dtype)
    return Call("pow", (base, exponent), base.dtype)


# Integer bit operations: pure calls on operands of one integer dtype (codegen emits the machine's ``and or xor not
# shl ashr lshr``). ``shift_left`` / ``shift_right`` calls take an amount in ``[0, bits)`` only (as C's shifts do);
# the functions below give every amount its ONNX meaning around them.
BIT_OPS = ("bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not", "shift_left", "shift_right")


def _int_operands(op: str, *args: Any) -> tuple[Expr, ...]:
    values = tuple(convert(a) for a in args)
    dtype = values[0].dtype
    if not dt.is_int(dtype):
        raise TypeError(f"{op}: operands must be integers, got {dtype}")
    if [v.dtype for v in values] != [dtype] * len(values):  # (``any`` here is the expression's)
        raise TypeError(f"{op}: operands must have one dtype, got {[v.dtype for v in values]}")
    return values


def bitwise_and(a: Any, b: Any) -> Expr:
    x, y = _int_operands("bitwise_and", a, b)
    return Call("bitwise_and", (x, y), x.dtype)


def bitwise_or(a: Any, b: Any) -> Expr:
    x, y = _int_operands("bitwise_or", a, b)
    return Call("bitwise_or", (x, y), x.dtype)


def bitwise_xor(a: Any, b: Any) -> Expr:
    x, y = _int_operands("bitwise_xor", a, b)
    return Call("bitwise_xor", (x, y), x.dtype)


def bitwise_not(a: Any) -> Expr:
    (x,) = _int_operands("bitwise_not", a)
    return Call("bitwise_not", (x,), x.dtype)


def reinterpret(x: Any, dtype: str) -> Expr:
    """The bits of ``x`` read as ``dtype``, a type of the same width (``float32`` <-> ``int32`` ...; not ``bool``)."""
    value, target = convert(x), dt.normalize(dtype)
    source = value.dtype
    if dt.is_bool(source) or dt.is_bool(target) or dt.bits(source) != dt.bits(target) or dt.lanes(source) != 1:
        raise TypeError(f"reinterpret: {source} and {target} are not scalar types of the same width")
    return value if source == target else Call("reinterpret", (value,), target)


def _amount_in_range(amount: Expr) -> Expr:
    width = make_const(dt.bits(amount.dtype), amount.dtype)
    below = amount < width
    return logical_and(amount >= make_const(0, amount.dtype), below) if dt.is_signed(amount.dtype) else below


def shift_left(x: Any, amount: Any) -> Expr:
    """``x << amount``: bits moved past the top (the sign bit included) are dropped; an amount that is negative or
    not less than the bit width gives 0."""
    value, shift = _int_operands("shift_left", x, amount)
    in_range = _amount_in_range(shift)
    safe = select(in_range, shift, make_const(0, shift.dtype))
    return select(in_range, Call("shift_left", (value, safe), value.dtype), make_const(0, value.dtype))


def shift_right(x: Any, amount: Any) -> Expr:
    """``x >> amount``, arithmetic (sign-filling) for signed ``x``: an amount that is negative or not less than the
    bit width leaves the sign fill alone (-1 for a negative ``x``, else 0)."""
    value, shift = _int_operands("shift_right", x, amount)
    in_range = _amount_in_range(shift)
    top = make_const(dt.bits(shift.dtype) - 1, shift.dtype)
    if dt.is_signed(value.dtype):  # a shift by bits - 1 is the sign fill
        return Call("shift_right", (value, select(in_range, shift, top)), value.dtype)
    safe = select(in_range, shift, make_const(0, shift.dtype))
    return select(in_range, Call("shift_right", (value, safe), value.dtype), make_const(0, value.dtype))


def if_then_else(condition: Any, true_value: Any, false_value: Any) -> Expr:
    """``condition ? true_value : false_value``."""
    return select(condition, true_value, false_value)


def max(a: Any, b: Any) -> Expr:  # noqa: A001
    return max_expr(a, b)


def min(a: Any, b: Any) -> Expr:  # noqa: A001
    return min_expr(a, b)


def all(*conditions: Any) -> Expr:  # noqa: A001
    result = convert(conditions[0])
    for c in conditions[1:]:
        result = logical_and(result, c)
    return result


def any(*conditions: Any) -> Expr:  # noqa: A001
    result = convert(conditions[0])
    for c in conditions[1:]:
        result = logical_or(result, c)
    return result


def max_value(dtype: str) -> Expr:
    return make_const(dt.max_value(dtype), dtype)


def min_value(dtype: str) -> Expr:
    return make_const(dt.min_value(dtype), dtype)


def checked_index(index: Any, extent: Any) -> Expr:
    """``index`` into an axis of ``extent`` elements, as ONNX's index-taking operators define it: a negative index
    counts from the end (``-1`` is the last element), and an index outside ``[-extent, extent)`` fails the call at
    run time with an error naming the index (the pass ``insert_index_checks`` turns the check into an assertion).
    The index is taken as int64, so ``2**40`` is out of range, never wrapped to a small number. The result is in
    ``[0, extent)`` (int32 when the extent fits, else int64); the clamp around the check tells bound analysis so
    (and is a no-op once checked). ``extent`` is a positive int, or an int32 expression of symbolic sizes."""
    symbolic = isinstance(extent, Expr) and not isinstance(extent, IntImm)
    if symbolic and extent.dtype != "int32":
        raise ValueError(f"checked_index: a symbolic extent must be an int32 expression, got {extent!r}")
    if isinstance(extent, IntImm):
        extent = extent.value
    if not symbolic and (not isinstance(extent, int) or isinstance(extent, bool) or extent < 1):
        raise ValueError(f"checked_index: the extent must be a positive int, got {extent!r}")
    value = convert(index)
    if not dt.is_int(value.dtype):
        raise TypeError(f"checked_index: the index must be an integer, got {value.dtype}")
    raw = cast(value, "int64")
    size = cast(extent, "int64") if symbolic else make_const(extent, "int64")
    last = size - make_const(1, "int64") if symbolic else make_const(extent - 1, "int64")
    checked = Call(CHECKED_INDEX, (raw, size), "int64")
    index = max_expr(min_expr(checked, last), make_const(0, "int64"))
    # an axis that int32 indexes gets an int32 index, like the loop variables it is combined with when the read is
    # inlined into index arithmetic (a reshape's flat index)
    return cast(index, "int32") if symbolic or extent <= dt.max_value("int32") else index


_ = (floordiv, floormod, truncdiv, truncmod)
