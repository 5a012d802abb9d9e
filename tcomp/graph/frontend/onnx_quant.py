"""ONNX converters for linear quantization: ``QuantizeLinear`` and ``DequantizeLinear``, so that a QDQ model runs
(in float: each quantize-dequantize pair rounds and saturates as the quantized model would).

- ``DequantizeLinear``: ``y = (x - zero_point) * scale`` in float32, cast to the scale's dtype (or
  ``output_dtype``, opset 23).
- ``QuantizeLinear``: ``y = saturate(round(x / scale) + zero_point)``, rounding half to even, saturating to the
  output type's range; the output type is the zero point's, else ``output_dtype`` (opset 21), else uint8. To an
  8-bit float, ``x / scale + zero_point`` is cast to it (saturating unless ``saturate`` is 0).

The scale and zero point are per tensor (one element), per axis (1-D along ``axis``) or blocked (opset 21:
``x``'s shape with ``ceil(D / block_size)`` along ``axis``, each entry repeated over its block): weights quantized
to 4 bits by blocks (weight-only quantized language models) dequantize so. Element types tcomp lacks (float8,
float4, float8_e8m0) are refused where the model declares them.

The integer operators, as onnxruntime's dynamic and operator-format quantization writes them, compute exactly in
int32 on the operands minus their zero points:

- ``DynamicQuantizeLinear``: ``x`` to uint8 with the scale and zero point of its range (taken with 0).
- ``MatMulInteger`` / ``ConvInteger``: the product or convolution of the offset operands, int32.
- ``QLinearMatMul`` / ``QLinearConv``: that, plus ``QLinearConv``'s int32 bias, requantized:
  ``saturate(round(total * scale_a * scale_b / scale_y) + zero_y)`` with the multiplier in float32.
"""

from __future__ import annotations

import math

import numpy as np
import onnx

from tcomp.graph.frontend.onnx_builder import Builder
from tcomp.graph.frontend.onnx_common import Attrs, axis_index, cast_to, converts, optional, reshape, scalar_param
from tcomp.graph.frontend.onnx_data import onnx_dtype
from tcomp.graph.frontend.onnx_nn import convolve
from tcomp.ir import dtype as dt

QUANTIZED_TYPES = ("uint8", "int8", "uint16", "int16", "uint4", "int4", "uint2", "int2")
_TYPES_ONLY = (24, 25, 28)  # revisions that only added element types (float4, 2-bit)


def _spread(b: Builder, name: str, shape: tuple[int, ...], axis: int, block: int, what: str) -> str:
    """``name`` (a scale or zero point) shaped to broadcast against ``x`` of ``shape``."""
    t = b.type(name)
    rank = len(shape)
    if t.numel == 1 and t.ndim <= 1:
        return reshape(b, name, ())
    axis = axis_index(b, axis, rank)
    if block > 0:
        expected = tuple(math.ceil(d / block) if k == axis else d for k, d in enumerate(shape))
        if t.shape != expected:
            raise b.error(f"the blocked {what} must have shape {expected}, got {t.shape}")
        rows = b.param(np.arange(shape[axis], dtype=np.int64) // block, f"{name}/blocks")
        return b.add1("take", [name, rows], axis=axis)
    if t.shape != (shape[axis],):
        raise b.error(f"the {what} must be a scalar or a 1-D tensor of {shape[axis]} (axis {axis}), got {t.shape}")
    return reshape(b, name, tuple(shape[axis] if k == axis else 1 for k in range(rank)))


def _as_float32(b: Builder, name: str) -> str:
    return name if b.type(name).dtype == "float32" else b.add1("cast", [name], dtype="float32")


def _block_size(b: Builder, a: Attrs, v: int) -> int:
    block = a.int("block_size", 0) if v >= 21 else 0
    if block < 0:
        raise b.error(f"block_size={block} must not be negative")
    return block


def _output_dtype(b: Builder, a: Attrs, since: int, v: int) -> str | None:
    code = a.int("output_dtype", 0) if v >= since else 0
    return onnx_dtype(code, f"node {b.node_name}: attribute 'output_dtype'") if code else None


@converts("DequantizeLinear", (10, 13, 19, 21, 23, *_TYPES_ONLY))
def _dequantize(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    x, scale, zero = ins[0], ins[1], optional(ins, 2)
    shape = b.type(x).shape
    axis, block = a.int("axis", 1) if v >= 13 else 1, _block_size(b, a, v)
    if not (dt.is_int(b.type(x).dtype) or b.type(x).dtype in dt.FLOAT8_FORMATS):
        raise b.error(f"x must be an integer or 8-bit float tensor, got {b.type(x).dtype}")
    out_dtype = _output_dtype(b, a, 23, v) or b.type(scale).dtype
    if not dt.is_float(out_dtype):
        raise b.error(f"the output type must be a float type, got {out_dtype}")
    value = _as_float32(b, x)
    if zero:
        value = b.add1("subtract", [value, _as_float32(b, _spread(b, zero, shape, axis, block, "zero point"))])
    last = node.output[0] if out_dtype == "float32" else None
    result = b.add1("multiply", [value, _as_float32(b, _spread(b, scale, shape, axis, block, "scale"))], output=last)
    if out_dtype != "float32":
        result = b.add1("cast", [result], output=node.output[0], dtype=out_dtype)
    return [result]


@converts("QuantizeLinear", (10, 13, 19, 21, 23, *_TYPES_ONLY))
def _quantize(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    x, scale, zero = ins[0], ins[1], optional(ins, 2)
    shape = b.type(x).shape
    axis, block = a.int("axis", 1) if v >= 13 else 1, _block_size(b, a, v)
    out_dtype = b.type(zero).dtype if zero else (_output_dtype(b, a, 21, v) or "uint8")
    if out_dtype not in QUANTIZED_TYPES and out_dtype not in dt.FLOAT8_FORMATS:
        raise b.error(f"quantizing to {out_dtype} is not supported "
                      f"({', '.join((*QUANTIZED_TYPES, *dt.FLOAT8_FORMATS))})")
    scaled = b.add1("divide", [_as_float32(b, x), _as_float32(b, _spread(b, scale, shape, axis, block, "scale"))])
    float8 = out_dtype in dt.FLOAT8_FORMATS  # rounded to the nearest 8-bit float by the cast, saturated or not
    value = scaled if float8 else b.add1("round", [scaled])
    if zero:
        value = b.add1("add", [value, _as_float32(b, _spread(b, zero, shape, axis, block, "zero point"))])
    if float8:
        return [cast_to(b, value, out_dtype, bool(a.int("saturate", 1)) if v >= 19 else True, node.output[0])]
    clipped = b.add1("clip", [value], min=float(dt.min_value(out_dtype)), max=float(dt.max_value(out_dtype)))
    return [b.add1("cast", [clipped], output=node.output[0], dtype=out_dtype)]


# ---------------------------------------------------------------------------------------------------------------------
# the integer operators: DynamicQuantizeLinear, MatMulInteger, ConvInteger, QLinearMatMul, QLinearConv
_EIGHT_BITS = ("uint8", "int8")


def _check_eight_bits(b: Builder, name: str, what: str) -> str:
    dtype = b.type(name).dtype
    if dtype not in _EIGHT_BITS:
        raise b.error(f"{what} must be uint8 or int8, got {dtype}")
    return dtype


def _along(b: Builder, name: str, rank: int, axis: int, extent: int, what: str) -> str:
    """A scale or zero point ``name`` shaped to broadcast against a rank-``rank`` operand: one element (per tensor),
    a vector of ``extent`` along ``axis`` (per row, column or channel; a 1-D operand has none), or an array of the
    operand's rank."""
    t = b.type(name)
    if t.numel == 1 and t.ndim <= 1:
        return reshape(b, name, ())
    if t.ndim == 1 and t.shape[0] == extent and rank > 1:
        return reshape(b, name, tuple(extent if k == axis % rank else 1 for k in range(rank)))
    if t.ndim == rank and t.ndim > 1:
        return name
    raise b.error(f"the {what} must have one element, {extent} (one per {'row' if axis == rank - 2 else 'column'}"
                  f" or channel) or the operand's rank, got {t.shape}")


def _offset(b: Builder, x: str, zero: str, axis: int, what: str) -> str:
    """``int32(x) - int32(zero)`` for an 8-bit ``x`` and its optional zero point (of ``x``'s type) along ``axis``."""
    dtype = _check_eight_bits(b, x, what)
    wide = b.add1("cast", [x], dtype="int32")
    if not zero:
        return wide
    if b.type(zero).dtype != dtype:
        raise b.error(f"the zero point of {what} must be {dtype} like it, got {b.type(zero).dtype}")
    rank = b.type(x).ndim
    shaped = _along(b, zero, rank, axis, b.type(x).shape[axis] if rank else 1, f"zero point of {what}")
    return b.add1("subtract", [wide, b.add1("cast", [shaped], dtype="int32")])


def _requantize(b: Builder, total: str, multiplier: str, y_zero: str, output: str) -> str:
    """``saturate(round(total * multiplier) + y_zero)`` in ``y_zero``'s 8-bit type (rounding half to even)."""
    dtype = _check_eight_bits(b, y_zero, "y_zero_point")
    scaled = b.add1("round", [b.add1("multiply", [b.add1("cast", [total], dtype="float32"), multiplier])])
    shifted = b.add1("add", [scaled, _as_float32(b, reshape(b, y_zero, ()))])
    clipped = b.add1("clip", [shifted], min=float(dt.min_value(dtype)), max=float(dt.max_value(dtype)))
    return b.add1("cast", [clipped], output=output, dtype=dtype)


def _scalar_scale(b: Builder, name: str, what: str) -> str:
    t = b.type(name)
    if t.numel != 1 or t.ndim > 1 or not dt.is_float(t.dtype):
        raise b.error(f"{what} must be one float, got {t}")
    return _as_float32(b, reshape(b, name, ()))


@converts("DynamicQuantizeLinear", (11,))
def _dynamic_quantize(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    """uint8 with the scale and zero point that map ``[min(x, 0), max(x, 0)]`` onto ``[0, 255]``; the scale is 1
    where that range is empty (``x`` all zeros), as onnxruntime gives."""
    x = ins[0]
    if b.type(x).dtype != "float32":
        raise b.error(f"x must be float32, got {b.type(x).dtype}")
    axes = tuple(range(b.type(x).ndim))
    zero = scalar_param(b, 0.0, "float32", "zero")
    high = b.add1("maximum", [b.add1("max", [x], axes=axes, keepdims=False), zero])
    low = b.add1("minimum", [b.add1("min", [x], axes=axes, keepdims=False), zero])
    span = b.add1("subtract", [high, low])
    spread = b.add1("divide", [span, scalar_param(b, 255.0, "float32", "levels")])
    empty = b.add1("equal", [span, zero])
    scale = b.add1("where", [empty, scalar_param(b, 1.0, "float32", "one"), spread], output=node.output[1] or None)
    point = b.add1("round", [b.add1("clip", [b.add1("divide", [b.add1("negative", [low]), scale])], min=0.0,
                                    max=255.0)])
    zero_point = b.add1("cast", [point], output=node.output[2] or None, dtype="uint8")
    value = b.add1("add", [b.add1("round", [b.add1("divide", [x, scale])]), point])
    clipped = b.add1("clip", [value], min=0.0, max=255.0)
    return [b.add1("cast", [clipped], output=node.output[0] or None, dtype="uint8"), scale, zero_point]


def _product_axes(b: Builder, a: str, bb: str) -> tuple[int, int]:
    """The axes of ``a``'s rows and ``bb``'s columns: where per-row and per-column parameters lie."""
    ra, rb = b.type(a).ndim, b.type(bb).ndim
    if ra < 1 or rb < 1:
        raise b.error(f"the operands must have at least one dimension, got {b.type(a)} and {b.type(bb)}")
    return max(ra - 2, 0), rb - 1


@converts("MatMulInteger", (10,))
def _matmul_integer(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    """``(A - a_zero_point) @ (B - b_zero_point)`` in int32; zero points per tensor, per row of A, per column of B."""
    row_axis, column_axis = _product_axes(b, ins[0], ins[1])
    lhs = _offset(b, ins[0], optional(ins, 2), row_axis, "A")
    rhs = _offset(b, ins[1], optional(ins, 3), column_axis, "B")
    return [b.add1("matmul", [lhs, rhs], output=node.output[0])]


@converts("QLinearMatMul", (10, 21))
def _qlinear_matmul(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    """The integer product of the offset operands, requantized with ``a_scale * b_scale / y_scale`` (scales per
    tensor, per row of A, per column of B) to ``y_zero_point``'s type."""
    if len(ins) < 8 or not all(ins[:8]):
        raise b.error("QLinearMatMul needs its eight inputs")
    qa, a_scale, a_zero, qb, b_scale, b_zero, y_scale, y_zero = ins[:8]
    row_axis, column_axis = _product_axes(b, qa, qb)
    total = b.add1("matmul", [_offset(b, qa, a_zero, row_axis, "a"), _offset(b, qb, b_zero, column_axis, "b")])
    rows = _as_float32(b, _along(b, a_scale, b.type(qa).ndim, row_axis, b.type(qa).shape[row_axis], "a_scale"))
    columns = _as_float32(b, _along(b, b_scale, b.type(qb).ndim, column_axis, b.type(qb).shape[column_axis],
                                    "b_scale"))
    multiplier = b.add1("divide", [b.add1("multiply", [rows, columns]), _scalar_scale(b, y_scale, "y_scale")])
    return [_requantize(b, total, multiplier, y_zero, node.output[0])]


def _conv_offsets(b: Builder, x: str, w: str, x_zero: str, w_zero: str) -> tuple[str, str]:
    if b.type(x).ndim < 3:
        raise b.error(f"x needs a batch, channel and spatial dimensions, got {b.type(x)}")
    if x_zero and b.type(x_zero).numel != 1:
        raise b.error(f"the input's zero point must be one element, got {b.type(x_zero).shape}")
    return _offset(b, x, x_zero, 1, "x"), _offset(b, w, w_zero, 0, "w")


@converts("ConvInteger", (10,))
def _conv_integer(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    """Conv of ``x - x_zero_point`` by ``w - w_zero_point`` (per tensor or per output channel) in int32; pads add
    zeros to the offset input, as if padded with the zero point."""
    x, w = _conv_offsets(b, ins[0], ins[1], optional(ins, 2), optional(ins, 3))
    return [convolve(b, a, x, w, "", node.output[0])]


@converts("QLinearConv", (10,))
def _qlinear_conv(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    """The integer convolution plus the int32 bias ``B``, requantized with ``x_scale * w_scale / y_scale``
    (``w_scale`` per tensor or per output channel) to ``y_zero_point``'s type."""
    if len(ins) < 8 or not all(ins[:8]):
        raise b.error("QLinearConv needs its first eight inputs")
    qx, x_scale, x_zero, qw, w_scale, w_zero, y_scale, y_zero = ins[:8]
    bias = optional(ins, 8)
    if bias and b.type(bias).dtype != "int32":
        raise b.error(f"the bias must be int32, got {b.type(bias).dtype}")
    x, w = _conv_offsets(b, qx, qw, x_zero, w_zero)
    total = convolve(b, a, x, w, bias, None)
    rank = b.type(total).ndim
    channels = _as_float32(b, _along(b, w_scale, rank, 1, b.type(qw).shape[0], "w_scale"))
    multiplier = b.add1("divide", [b.add1("multiply", [_scalar_scale(b, x_scale, "x_scale"), channels]),
                                   _scalar_scale(b, y_scale, "y_scale")])
    return [_requantize(b, total, multiplier, y_zero, node.output[0])]
