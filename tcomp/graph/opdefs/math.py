"""Elementwise math graph operators beyond ``elemwise.py``: trigonometric and hyperbolic functions, rounding,
reciprocal, sign, NaN / infinity tests, the exponential-linear family of activations, ``prelu``, ``mod`` and the
logical connectives.

- Float-only unary operators (``tan``, ``asinh``, ``reciprocal``, ``floor``, ``elu(alpha)``, ``selu(alpha, gamma)``,
  ``celu(alpha)``, ``swish(alpha)``, ``mish``, ``softsign``, ``thresholded_relu(alpha)`` ...) keep the input's type.
- ``sign`` keeps any numeric dtype (the sign of NaN is NaN, of zero zero); ``isnan`` and ``isinf(detect_positive,
  detect_negative)`` give bools.
- ``mod(fmod)``: with ``fmod=0`` the remainder takes the divisor's sign (Python's ``%``, for integers and floats);
  with ``fmod=1`` the dividend's (C's ``fmod``). An integer remainder by zero is 0, as numpy gives, instead of a
  trap.
- ``prelu(x, slope)``: ``x < 0 ? slope * x : x`` with ``slope`` broadcast to ``x``'s shape.
- ``logical_and``, ``logical_or``, ``logical_xor`` take bools and broadcast.
- ``bitwise_and``, ``bitwise_or``, ``bitwise_xor`` (broadcast) and ``bitwise_not`` take integers of one dtype;
  ``bit_shift(direction)`` shifts ``x`` by the broadcast amounts (``"LEFT"`` or ``"RIGHT"``, arithmetic for signed
  ``x``); an amount that is negative or not less than the bit width leaves only the sign fill: -1 for a right shift
  of a negative ``x``, else 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tcomp import te
from tcomp.graph.ir import Node, TensorType
from tcomp.graph.op import InferContext, LowerContext, OpPattern, register_op
from tcomp.graph.opdefs.common import broadcast_shapes, same_dtype
from tcomp.graph.opdefs.elemwise import binary_lowering, infer_float_unary, softplus_expr, unary_lowering
from tcomp.ir import dtype as dt
from tcomp.ir.expr import Expr, floormod, max_expr, min_expr, truncmod
from tcomp.te.tensor import Tensor


def _zero(v: Expr) -> Expr:
    return te.const(0, v.dtype)


def _expm1(v: Expr) -> Expr:
    return te.exp(v) - 1.0


def _elu(v: Expr, ctx: LowerContext) -> Expr:
    alpha = float(ctx.attr("alpha", 1.0))
    return te.if_then_else(v > _zero(v), v, _expm1(v) * alpha)


def _selu(v: Expr, ctx: LowerContext) -> Expr:
    alpha = float(ctx.attr("alpha", 1.67326319217681884765625))
    gamma = float(ctx.attr("gamma", 1.05070102214813232421875))
    return te.if_then_else(v > _zero(v), v * gamma, _expm1(v) * (alpha * gamma))


def _celu(v: Expr, ctx: LowerContext) -> Expr:
    alpha = float(ctx.attr("alpha", 1.0))
    return max_expr(v, _zero(v)) + min_expr(_expm1(v * (1.0 / alpha)) * alpha, _zero(v))


def _swish(v: Expr, ctx: LowerContext) -> Expr:
    return v * te.sigmoid(v * float(ctx.attr("alpha", 1.0)))


def _mish(v: Expr, ctx: LowerContext) -> Expr:
    return v * te.tanh(softplus_expr(v, ctx))


def _softsign(v: Expr, ctx: LowerContext) -> Expr:
    return v / (te.abs(v) + 1.0)


def _thresholded_relu(v: Expr, ctx: LowerContext) -> Expr:
    return te.if_then_else(v > float(ctx.attr("alpha", 1.0)), v, _zero(v))


_FLOAT_UNARY: dict[str, Callable[[Expr, LowerContext], Expr]] = {
    "sin": lambda v, ctx: te.sin(v), "cos": lambda v, ctx: te.cos(v), "tan": lambda v, ctx: te.tan(v),
    "asin": lambda v, ctx: te.asin(v), "acos": lambda v, ctx: te.acos(v), "atan": lambda v, ctx: te.atan(v),
    "sinh": lambda v, ctx: te.sinh(v), "cosh": lambda v, ctx: te.cosh(v), "asinh": lambda v, ctx: te.asinh(v),
    "acosh": lambda v, ctx: te.acosh(v), "atanh": lambda v, ctx: te.atanh(v),
    "reciprocal": lambda v, ctx: 1.0 / v, "floor": lambda v, ctx: te.floor(v), "ceil": lambda v, ctx: te.ceil(v),
    "round": lambda v, ctx: te.round(v), "elu": _elu, "selu": _selu, "celu": _celu, "swish": _swish, "mish": _mish,
    "softsign": _softsign, "thresholded_relu": _thresholded_relu,
}

for _name, _fmap in _FLOAT_UNARY.items():
    register_op(_name, OpPattern.ELEMWISE, infer_float_unary, unary_lowering(_fmap))


# sign: any numeric dtype
def _infer_numeric(ctx: InferContext) -> list[TensorType]:
    t = ctx.type(0)
    if dt.is_bool(t.dtype):
        raise ctx.error("input must be numeric, got bool")
    return [t]


def _sign(v: Expr, ctx: LowerContext) -> Expr:
    one = te.const(1, v.dtype)
    if not dt.is_signed(v.dtype) and not dt.is_float(v.dtype):
        return te.if_then_else(v > _zero(v), one, _zero(v))
    # NaN and zeros fall through unchanged
    return te.if_then_else(v > _zero(v), one, te.if_then_else(v < _zero(v), te.const(-1, v.dtype), v))


register_op("sign", OpPattern.ELEMWISE, _infer_numeric, unary_lowering(_sign),
            lambda node, arrays: [np.sign(arrays[0])])


# isnan / isinf: float -> bool
def _infer_float_test(ctx: InferContext) -> list[TensorType]:
    t = ctx.type(0)
    if not dt.is_float(t.dtype):
        raise ctx.error(f"input must be a float tensor, got {t.dtype}")
    return [TensorType(t.shape, "bool")]


def _isinf(v: Expr, ctx: LowerContext) -> Expr:
    positive, negative = bool(ctx.attr("detect_positive", 1)), bool(ctx.attr("detect_negative", 1))
    tests = []
    if positive:
        tests.append(v == te.const(math.inf, v.dtype))
    if negative:
        tests.append(v == te.const(-math.inf, v.dtype))
    return te.any(*tests) if tests else te.const(False, "bool")


register_op("isnan", OpPattern.ELEMWISE, _infer_float_test, unary_lowering(lambda v, ctx: v != v))
register_op("isinf", OpPattern.ELEMWISE, _infer_float_test, unary_lowering(_isinf))


# ---------------------------------------------------------------------------------------------------------------------
# mod
def _infer_mod(ctx: InferContext) -> list[TensorType]:
    a, b = ctx.type(0), ctx.type(1)
    dtype = same_dtype(ctx, [a, b])
    if dt.is_bool(dtype):
        raise ctx.error("inputs must be numeric, got bool")
    if ctx.attr("fmod", 0) not in (0, 1):
        raise ctx.error(f"fmod must be 0 or 1, got {ctx.attr('fmod')!r}")
    return [TensorType(broadcast_shapes(ctx, [a.shape, b.shape]), dtype)]


def _float_floor_mod(x: Expr, y: Expr) -> Expr:
    """``x - floor(x / y) * y`` computed exactly: C's remainder, moved into the divisor's sign; a zero result takes
    the divisor's sign too (numpy's ``mod``)."""
    rem = truncmod(x, y)
    zero = _zero(rem)
    fixed = te.if_then_else(te.all(rem != zero, (rem < zero) != (y < zero)), rem + y, rem)
    signed_zero = te.if_then_else(y < zero, te.const(-0.0, rem.dtype), zero)
    return te.if_then_else(fixed == zero, signed_zero, fixed)


def _mod_lowering(ctx: LowerContext) -> list[Tensor]:
    fmod = int(ctx.attr("fmod", 0))

    def combine(x: Expr, y: Expr) -> Expr:
        if dt.is_float(x.dtype):
            return truncmod(x, y) if fmod else _float_floor_mod(x, y)
        zero = _zero(y)
        safe = te.if_then_else(y == zero, te.const(1, y.dtype), y)
        rem = truncmod(x, safe) if fmod else floormod(x, safe)
        return te.if_then_else(y == zero, zero, rem)

    return binary_lowering(combine)(ctx)


def _eval_mod(node: Node, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    a, b = arrays
    if np.any(b == 0):
        raise ZeroDivisionError("integer modulo by zero")
    return [np.fmod(a, b) if node.attr("fmod", 0) else np.mod(a, b)]


register_op("mod", OpPattern.BROADCAST, _infer_mod, _mod_lowering, _eval_mod)


# prelu: slope broadcast to x
def _infer_prelu(ctx: InferContext) -> list[TensorType]:
    x, slope = ctx.type(0), ctx.type(1)
    same_dtype(ctx, [x, slope])
    if broadcast_shapes(ctx, [x.shape, slope.shape]) != x.shape:
        raise ctx.error(f"slope {slope.shape} does not broadcast to the input's shape {x.shape}")
    return [x]


def _prelu(x: Expr, slope: Expr) -> Expr:
    return te.if_then_else(x < _zero(x), x * slope, x)


register_op("prelu", OpPattern.BROADCAST, _infer_prelu, binary_lowering(_prelu))


# logical connectives
def _infer_logical(ctx: InferContext) -> list[TensorType]:
    a, b = ctx.type(0), ctx.type(1)
    if a.dtype != "bool" or b.dtype != "bool":
        raise ctx.error(f"inputs must be bool, got {a.dtype} and {b.dtype}")
    return [TensorType(broadcast_shapes(ctx, [a.shape, b.shape]), "bool")]


_LOGICAL: dict[str, tuple[Callable[[Expr, Expr], Expr], Callable[[Any, Any], np.ndarray]]] = {
    "logical_and": (te.logical_and, np.logical_and),
    "logical_or": (te.logical_or, np.logical_or),
    "logical_xor": (lambda x, y: x != y, np.logical_xor),
}

for _name, (_combine, _numpy) in _LOGICAL.items():
    register_op(_name, OpPattern.BROADCAST, _infer_logical, binary_lowering(_combine),
                lambda node, arrays, fn=_numpy: [fn(arrays[0], arrays[1])])


# integer bit operations
def _infer_bitwise(ctx: InferContext) -> list[TensorType]:
    types = [ctx.type(i) for i in range(len(ctx.node.inputs))]
    dtype = same_dtype(ctx, types)
    if not dt.is_int(dtype):
        raise ctx.error(f"inputs must be integers, got {dtype}")
    if ctx.node.op == "bit_shift" and ctx.attr("direction") not in ("LEFT", "RIGHT"):
        raise ctx.error(f"direction must be LEFT or RIGHT, got {ctx.attr('direction')!r}")
    return [TensorType(broadcast_shapes(ctx, [t.shape for t in types]), dtype)]


_BITWISE: dict[str, tuple[Callable[[Expr, Expr], Expr], Callable[[Any, Any], np.ndarray]]] = {
    "bitwise_and": (te.bitwise_and, np.bitwise_and),
    "bitwise_or": (te.bitwise_or, np.bitwise_or),
    "bitwise_xor": (te.bitwise_xor, np.bitwise_xor),
}

for _name, (_combine, _numpy) in _BITWISE.items():
    register_op(_name, OpPattern.BROADCAST, _infer_bitwise, binary_lowering(_combine),
                lambda node, arrays, fn=_numpy: [fn(arrays[0], arrays[1])])

register_op("bitwise_not", OpPattern.ELEMWISE, _infer_bitwise, unary_lowering(lambda v, ctx: te.bitwise_not(v)),
            lambda node, arrays: [np.bitwise_not(arrays[0])])


def _bit_shift_lowering(ctx: LowerContext) -> list[Tensor]:
    shift = te.shift_left if ctx.attr("direction") == "LEFT" else te.shift_right
    return binary_lowering(shift)(ctx)


def _eval_bit_shift(node: Node, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    x, amount = np.broadcast_arrays(*arrays)
    width = np.iinfo(x.dtype).bits
    in_range = (amount >= 0) & (amount < width)
    safe = np.where(in_range, amount, 0).astype(x.dtype)
    if node.attr("direction") == "LEFT":
        unsigned = np.dtype(f"u{x.dtype.itemsize}")
        shifted = np.left_shift(x.view(unsigned), safe.view(unsigned)).view(x.dtype)
        return [np.where(in_range, shifted, np.zeros_like(x))]
    fill = np.where(x < 0, -1, 0).astype(x.dtype) if x.dtype.kind == "i" else np.zeros_like(x)
    return [np.where(in_range, np.right_shift(x, safe), fill)]


register_op("bit_shift", OpPattern.BROADCAST, _infer_bitwise, _bit_shift_lowering, _eval_bit_shift)
