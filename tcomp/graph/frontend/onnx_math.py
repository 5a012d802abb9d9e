"""ONNX converters for the elementwise math family: trigonometric and hyperbolic functions, rounding, ``Reciprocal``,
``Sign``, ``IsNaN``, ``IsInf``, the exponential-linear activations (``Elu Selu Celu Swish Mish Softsign
ThresholdedRelu PRelu``), ``Mod``, the logical connectives ``And Or Xor``, the integer bit operations ``BitwiseAnd
BitwiseOr BitwiseXor BitwiseNot BitShift``, ``CastLike``, ``Size``, ``Mean`` and ``Shrink``.

Each maps onto one graph operator of ``opdefs/math.py`` (or ``cast``, or a constant for ``Size``); attributes keep
the ONNX defaults. ``Mean`` is the inputs' sum divided by their count; ``Shrink`` is two comparisons and ``where``s
(for integer inputs, compared and shifted in float64 as onnx's reference does, then cast back). Versions that only
added element types count as implemented.
"""

from __future__ import annotations

import numpy as np
import onnx

from tcomp.graph.frontend.onnx_builder import Builder
from tcomp.graph.frontend.onnx_common import Attrs, cast_to, converts, register, scalar_param
from tcomp.ir import dtype as dt

_TYPES_ONLY = (19, 21, 23, 24, 25)  # revisions that only added element types


def _unary(op: str, **float_attrs: float) -> object:
    """A converter to the graph operator ``op``, passing the given float attributes (name: ONNX default)."""

    def convert(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
        attrs = {key: a.float(key, default) for key, default in float_attrs.items()}
        return [b.add1(op, [ins[0]], output=node.output[0], **attrs)]

    return convert


for _onnx, _ir, _versions in [
    ("Sin", "sin", (7, 22)), ("Cos", "cos", (7, 22)), ("Tan", "tan", (7, 22)), ("Asin", "asin", (7, 22)),
    ("Acos", "acos", (7, 22)), ("Atan", "atan", (7, 22)), ("Sinh", "sinh", (9, 22)), ("Cosh", "cosh", (9, 22)),
    ("Asinh", "asinh", (9, 22)), ("Acosh", "acosh", (9, 22)), ("Atanh", "atanh", (9, 22)),
    ("Reciprocal", "reciprocal", (6, 13)), ("Floor", "floor", (6, 13)), ("Ceil", "ceil", (6, 13)),
    ("Round", "round", (11, 22)), ("Sign", "sign", (9, 13)), ("IsNaN", "isnan", (9, 13, 20)),
    ("Softsign", "softsign", (1, 22)), ("Mish", "mish", (18, 22)),
]:
    register(_onnx, _versions, _unary(_ir))  # type: ignore[arg-type]

register("Elu", (6, 22), _unary("elu", alpha=1.0))  # type: ignore[arg-type]
register("Selu", (6, 22), _unary("selu", alpha=1.67326319217681884765625,  # type: ignore[arg-type]
                                 gamma=1.05070102214813232421875))
register("Celu", (12, 28), _unary("celu", alpha=1.0))  # type: ignore[arg-type]
register("ThresholdedRelu", (10, 22), _unary("thresholded_relu", alpha=1.0))  # type: ignore[arg-type]
register("Swish", (24,), _unary("swish", alpha=1.0))  # type: ignore[arg-type]


@converts("IsInf", (10, 20))
def _isinf(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    return [b.add1("isinf", [ins[0]], output=node.output[0], detect_positive=a.int("detect_positive", 1),
                   detect_negative=a.int("detect_negative", 1))]


@converts("Mod", (10, 13, 28))
def _mod(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    return [b.add1("mod", [ins[0], ins[1]], output=node.output[0], fmod=int(a.flag("fmod", 0)))]


@converts("PRelu", (7, 9, 16))
def _prelu(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    return [b.add1("prelu", [ins[0], ins[1]], output=node.output[0])]


def _logical(op: str) -> object:
    def convert(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
        return [b.add1(op, [ins[0], ins[1]], output=node.output[0])]

    return convert


register("And", (7,), _logical("logical_and"))  # type: ignore[arg-type]
register("Or", (7,), _logical("logical_or"))  # type: ignore[arg-type]
register("Xor", (7,), _logical("logical_xor"))  # type: ignore[arg-type]
register("BitwiseAnd", (18,), _logical("bitwise_and"))  # type: ignore[arg-type]
register("BitwiseOr", (18,), _logical("bitwise_or"))  # type: ignore[arg-type]
register("BitwiseXor", (18,), _logical("bitwise_xor"))  # type: ignore[arg-type]
register("BitwiseNot", (18,), _unary("bitwise_not"))  # type: ignore[arg-type]


@converts("BitShift", (11, 28))
def _bit_shift(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    direction = a.string("direction")
    if direction not in ("LEFT", "RIGHT"):
        raise b.error(f"direction {direction!r} is not LEFT or RIGHT")
    return [b.add1("bit_shift", [ins[0], ins[1]], output=node.output[0], direction=direction)]


@converts("CastLike", (15, *_TYPES_ONLY))
def _cast_like(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    saturate = bool(a.int("saturate", 1)) if v >= 19 else True
    return [cast_to(b, ins[0], b.type(ins[1]).dtype, saturate, node.output[0])]


@converts("Size", (1, 13, *_TYPES_ONLY))
def _size(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    return [b.param(np.array(b.type(ins[0]).numel, dtype=np.int64), node.output[0])]


@converts("Mean", (6, 8, 13))
def _mean(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    operands = [name for name in ins if name]
    if not operands:
        raise b.error("needs at least one input")
    dtype = b.type(operands[0]).dtype
    if not dt.is_float(dtype):
        raise b.error(f"inputs must be float tensors, got {dtype}")
    total = operands[0]
    for operand in operands[1:]:
        total = b.add1("add", [total, operand])
    if len(operands) == 1:
        return [b.add1("identity", [total], output=node.output[0])]
    count = scalar_param(b, len(operands), dtype, "count")
    return [b.add1("divide", [total, count], output=node.output[0])]


@converts("Shrink", (9,))
def _shrink(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    x = ins[0]
    dtype = b.type(x).dtype
    if dt.is_bool(dtype):
        raise b.error(f"input must be numeric, got {dtype}")
    lambd, bias = a.float("lambd", 0.5), a.float("bias", 0.0)
    work = x if dt.is_float(dtype) else b.add1("cast", [x], dtype="float64")
    kind = b.type(work).dtype
    below = b.add1("less", [work, scalar_param(b, -lambd, kind, "minus_lambd")])
    above = b.add1("greater", [work, scalar_param(b, lambd, kind, "lambd")])
    bias_value = scalar_param(b, bias, kind, "bias")
    raised = b.add1("add", [work, bias_value])
    lowered = b.add1("subtract", [work, bias_value])
    inner = b.add1("where", [above, lowered, scalar_param(b, 0, kind, "zero")])
    if work == x:
        return [b.add1("where", [below, raised, inner], output=node.output[0])]
    result = b.add1("where", [below, raised, inner])
    return [b.add1("cast", [result], output=node.output[0], dtype=dtype)]
