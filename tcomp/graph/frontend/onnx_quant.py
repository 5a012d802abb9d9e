"""ONNX converters for linear quantization: ``QuantizeLinear`` and ``DequantizeLinear``, so that a QDQ model runs
(in float: each quantize-dequantize pair rounds and saturates as the quantized model would).

- ``DequantizeLinear``: ``y = (x - zero_point) * scale`` in float32, cast to the scale's dtype (or
  ``output_dtype``, opset 23).
- ``QuantizeLinear``: ``y = saturate(round(x / scale) + zero_point)``, rounding half to even, saturating to the
  output type's range; the output type is the zero point's, else ``output_dtype`` (opset 21), else uint8.

The scale and zero point are per tensor (one element), per axis (1-D along ``axis``) or blocked (opset 21:
``x``'s shape with ``ceil(D / block_size)`` along ``axis``, each entry repeated over its block). Element types tcomp
lacks (float8, 4-bit) are refused where the model declares them.
"""

from __future__ import annotations

import math

import numpy as np
import onnx

from tcomp.graph.frontend.onnx_builder import Builder
from tcomp.graph.frontend.onnx_common import Attrs, converts, optional, reshape
from tcomp.graph.frontend.onnx_data import onnx_dtype
from tcomp.ir import dtype as dt

_RANGES = {"uint8": (0, 255), "int8": (-128, 127), "uint16": (0, 65535), "int16": (-32768, 32767)}
_TYPES_ONLY = (24, 25, 28)  # revisions that only added element types (float4, 2-bit)


def _spread(b: Builder, name: str, shape: tuple[int, ...], axis: int, block: int, what: str) -> str:
    """``name`` (a scale or zero point) shaped to broadcast against ``x`` of ``shape``."""
    t = b.type(name)
    rank = len(shape)
    if t.numel == 1 and t.ndim <= 1:
        return reshape(b, name, ())
    if not -rank <= axis < rank:
        raise b.error(f"axis={axis} is out of range for {rank} dimensions")
    axis = axis + rank if axis < 0 else axis
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
    if not dt.is_int(b.type(x).dtype):
        raise b.error(f"x must be an integer tensor, got {b.type(x).dtype}")
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
    if out_dtype not in _RANGES:
        raise b.error(f"quantizing to {out_dtype} is not supported (int8, uint8, int16, uint16)")
    scaled = b.add1("divide", [_as_float32(b, x), _as_float32(b, _spread(b, scale, shape, axis, block, "scale"))])
    value = b.add1("round", [scaled])
    if zero:
        value = b.add1("add", [value, _as_float32(b, _spread(b, zero, shape, axis, block, "zero point"))])
    low, high = _RANGES[out_dtype]
    clipped = b.add1("clip", [value], min=float(low), max=float(high))
    return [b.add1("cast", [clipped], output=node.output[0], dtype=out_dtype)]
