"""ONNX converters for elementwise and tensor-manipulation operators (see ``onnx_nn.py`` for the others).

Each converter is registered with the operator-definition versions it implements. Type-only revisions (new element
types such as bfloat16 or float8, which tcomp rejects when they occur) count as implemented.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import onnx

from tcomp.graph.frontend.onnx_builder import Builder, infer_types_of_param
from tcomp.graph.frontend.onnx_common import (
    Attrs,
    axes_operand,
    cast_to,
    check_unused_outputs,
    const_ints,
    converts,
    optional,
    register,
    reshape,
)
from tcomp.graph.frontend.onnx_data import onnx_dtype
from tcomp.ir import dtype as dt

Convert = Callable[[Builder, onnx.NodeProto, list[str], Attrs, int], list[str]]
_TYPES_ONLY = (19, 21, 23, 24, 25)  # revisions that only added element types


# ---------------------------------------------------------------------------------------------------------------------
# elementwise
def _unary(op: str, **fixed: object) -> Convert:
    def convert(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
        return [b.add1(op, [ins[0]], output=node.output[0], **fixed)]

    return convert


for _onnx, _ir, _versions in [
    ("Relu", "relu", (6, 13, 14)), ("Sigmoid", "sigmoid", (6, 13)), ("Tanh", "tanh", (6, 13)),
    ("Sqrt", "sqrt", (6, 13)), ("Exp", "exp", (6, 13)), ("Log", "log", (6, 13)), ("Neg", "negative", (6, 13)),
    ("Abs", "abs", (6, 13)), ("Erf", "erf", (9, 13)), ("Softplus", "softplus", (1, 22)),
    ("HardSwish", "hard_swish", (14, 22)), ("Not", "logical_not", (1,)),
]:
    register(_onnx, _versions, _unary(_ir))


@converts("Identity", (1, 13, 14, 16, *_TYPES_ONLY))
def _identity(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    if ins[0] in b.sequences or ins[0] in b.optionals:  # known at compile time: the same value
        return [ins[0]]
    return [b.add1("identity", [ins[0]], output=node.output[0])]


@converts("LeakyRelu", (6, 16))
def _leaky_relu(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    return [b.add1("leaky_relu", [ins[0]], output=node.output[0], alpha=a.float("alpha", 0.01))]


@converts("HardSigmoid", (6, 22))
def _hard_sigmoid(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    return [b.add1("hard_sigmoid", [ins[0]], output=node.output[0], alpha=a.float("alpha", 0.2),
                   beta=a.float("beta", 0.5))]


@converts("Gelu", (20,))
def _gelu(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    approximate = a.string("approximate", "none")
    if approximate not in ("none", "tanh"):
        raise b.error(f"approximate={approximate!r} must be 'none' or 'tanh'")
    return [b.add1("gelu", [ins[0]], output=node.output[0], approximate=approximate)]


def _binary(op: str) -> Convert:
    def convert(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
        return [b.add1(op, [ins[0], ins[1]], output=node.output[0])]

    return convert


for _onnx, _ir, _versions in [
    ("Add", "add", (7, 13, 14)), ("Sub", "subtract", (7, 13, 14)), ("Mul", "multiply", (7, 13, 14)),
    ("Div", "divide", (7, 13, 14)), ("Pow", "power", (7, 12, 13, 15)),
    ("Equal", "equal", (7, 11, 13, 19)), ("Less", "less", (7, 9, 13)), ("Greater", "greater", (7, 9, 13)),
    ("LessOrEqual", "less_equal", (12, 16)), ("GreaterOrEqual", "greater_equal", (12, 16)),
]:
    register(_onnx, _versions, _binary(_ir))


def _variadic(op: str) -> Convert:
    def convert(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
        operands = [i for i in ins if i]
        if not operands:
            raise b.error("needs at least one input")
        if len(operands) == 1:
            return [b.add1("identity", operands, output=node.output[0])]
        result = operands[0]
        for position, operand in enumerate(operands[1:], start=1):
            last = position == len(operands) - 1
            result = b.add1(op, [result, operand], output=node.output[0] if last else None)
        return [result]

    return convert


register("Sum", (8, 13), _variadic("add"))
register("Max", (8, 12, 13), _variadic("maximum"))
register("Min", (8, 12, 13), _variadic("minimum"))


@converts("Where", (9, 16))
def _where(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    return [b.add1("where", ins[:3], output=node.output[0])]


@converts("Clip", (6, 11, 12, 13))
def _clip(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    x = ins[0]
    dtype = b.type(x).dtype
    if v < 11:
        lo: float | None = a.float("min", -math.inf)
        hi: float | None = a.float("max", math.inf)
        return [b.add1("clip", [x], output=node.output[0], min=_finite(lo), max=_finite(hi))]
    bounds: list[float | int | None] = []
    dynamic = False
    for index in (1, 2):
        name = optional(ins, index)
        if not name:
            bounds.append(None)
            continue
        value = b.const(name)
        if value is None:
            dynamic = True
            bounds.append(None)
        else:
            if value.size != 1:
                raise b.error(f"input {index} must be a scalar, got shape {value.shape}")
            item = value.reshape(-1)[0].item()
            bounds.append(item if dt.is_float(dtype) else int(item))
    if not dynamic:
        return [b.add1("clip", [x], output=node.output[0], min=bounds[0], max=bounds[1])]
    result = x
    for index, op in ((1, "maximum"), (2, "minimum")):
        name = optional(ins, index)
        if name:
            result = b.add1(op, [result, name])
    return [b.add1("identity", [result], output=node.output[0])]


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isinf(value) else value


@converts("Cast", (6, 9, 13, 19, 21, 23, 24, 25, 28))
def _cast(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    dtype = onnx_dtype(a.int("to"), f"node {b.node_name}: attribute 'to'")
    return [cast_to(b, ins[0], dtype, bool(a.int("saturate", 1)) if v >= 19 else True, node.output[0])]


# ---------------------------------------------------------------------------------------------------------------------
# constants and shapes
@converts("Constant", (9, 11, 12, 13, *_TYPES_ONLY))
def _constant(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    if a.has("sparse_value") or a.has("value_string") or a.has("value_strings"):
        raise b.error("sparse and string constants are not supported")
    value = a.tensor("value")
    if value is None:
        if a.has("value_float"):
            value = np.array(a.float("value_float"), dtype=np.float32)
        elif a.has("value_floats"):
            value = np.array(a.floats("value_floats"), dtype=np.float32)
        elif a.has("value_int"):
            value = np.array(a.int("value_int"), dtype=np.int64)
        elif a.has("value_ints"):
            value = np.array(a.ints("value_ints"), dtype=np.int64)
        else:
            raise b.error("has no value attribute")

    b.params[node.output[0]] = np.require(value, requirements="C")
    infer_types_of_param(b, node.output[0])
    return [node.output[0]]


@converts("Shape", (1, 13, 15, *_TYPES_ONLY))
def _shape(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    start = a.int("start", 0) if v >= 15 else 0
    end = a.int("end", b.type(ins[0]).ndim) if v >= 15 and a.has("end") else None
    return [b.add1("shape_of", [ins[0]], output=node.output[0], start=start, end=end)]


@converts("ConstantOfShape", (9, 20, 21, 23, 24, 25))
def _constant_of_shape(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    shape = const_ints(b, ins[0], "the shape")
    value = a.tensor("value")
    if value is None:
        value = np.zeros((1,), dtype=np.float32)
    if value.size != 1:
        raise b.error(f"value must hold one element, got shape {value.shape}")
    dtype = dt.normalize(value.dtype)
    return [b.add1("constant_of_shape", [], output=node.output[0], shape=tuple(shape),
                   value=value.reshape(-1)[0].item(), dtype=dtype)]


@converts("NonZero", (9, 13))
def _nonzero(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    """The indices of the non-zero elements, ``[rank, count]``: the count depends on the values, so they must be
    known when compiling; an input whose values come from graph inputs is specialized on them at run time."""
    value = b.require_const(ins[0], "the input of NonZero (the number of non-zero elements is its output's shape)")
    if value.ndim == 0:
        raise b.error("the input must have at least one dimension")
    return [b.param(np.array(np.nonzero(value), dtype=np.int64).reshape(value.ndim, -1), node.output[0])]


# ---------------------------------------------------------------------------------------------------------------------
# layout
@converts("Reshape", (5, 13, 14, *_TYPES_ONLY))
def _reshape(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    in_shape = b.type(ins[0]).shape
    target = const_ints(b, ins[1], "the target shape")
    allow_zero = v >= 14 and a.int("allowzero", 0) == 1
    shape: list[int] = []
    for position, dim in enumerate(target):
        if dim == 0 and not allow_zero:
            if position >= len(in_shape):
                raise b.error(f"shape {target} copies dimension {position}, which the input {in_shape} lacks")
            dim = in_shape[position]
        shape.append(dim)
    if shape.count(-1) > 1 or any(d < -1 for d in shape):
        raise b.error(f"invalid target shape {target}")
    if -1 in shape:
        known = math.prod(d for d in shape if d != -1)
        total = math.prod(in_shape)
        if known == 0 or total % known:
            raise b.error(f"cannot reshape {in_shape} into {target}")
        shape[shape.index(-1)] = total // known
    return [b.add1("reshape", [ins[0]], output=node.output[0], shape=tuple(shape))]


@converts("Flatten", (9, 11, 13, *_TYPES_ONLY))
def _flatten(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    shape = b.type(ins[0]).shape
    axis = a.int("axis", 1)
    if not -len(shape) <= axis <= len(shape):
        raise b.error(f"axis={axis} is out of range for {len(shape)} dimensions")
    axis = axis + len(shape) if axis < 0 else axis
    new = (math.prod(shape[:axis]), math.prod(shape[axis:]))
    return [b.add1("reshape", [ins[0]], output=node.output[0], shape=new)]


@converts("Transpose", (1, 13, *_TYPES_ONLY))
def _transpose(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    ndim = b.type(ins[0]).ndim
    perm = a.ints("perm", list(reversed(range(ndim))))
    return [b.add1("transpose", [ins[0]], output=node.output[0], perm=tuple(perm or ()))]


@converts("Squeeze", (1, 11, 13, *_TYPES_ONLY))
def _squeeze(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    shape = b.type(ins[0]).shape
    axes = axes_operand(b, ins, a, v, 13)
    if axes is None:
        chosen = {d for d, s in enumerate(shape) if s == 1}
    else:
        chosen = set()
        for axis in axes:
            if not -len(shape) <= axis < len(shape):
                raise b.error(f"axis {axis} is out of range for {len(shape)} dimensions")
            axis = axis + len(shape) if axis < 0 else axis
            if shape[axis] != 1:
                raise b.error(f"cannot squeeze dimension {axis} of extent {shape[axis]}")
            chosen.add(axis)
    new = tuple(s for d, s in enumerate(shape) if d not in chosen)
    return [b.add1("reshape", [ins[0]], output=node.output[0], shape=new)]


@converts("Unsqueeze", (1, 11, 13, *_TYPES_ONLY))
def _unsqueeze(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    shape = list(b.type(ins[0]).shape)
    axes = axes_operand(b, ins, a, v, 13)
    if not axes:
        raise b.error("axes are required")
    rank = len(shape) + len(axes)
    normalized = sorted(axis + rank if axis < 0 else axis for axis in axes)
    if len(set(normalized)) != len(normalized) or any(not 0 <= axis < rank for axis in normalized):
        raise b.error(f"axes {axes} are invalid for an output of {rank} dimensions")
    for axis in normalized:
        shape.insert(axis, 1)
    return [b.add1("reshape", [ins[0]], output=node.output[0], shape=tuple(shape))]


@converts("Concat", (4, 11, 13))
def _concat(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    operands = [i for i in ins if i]
    return [b.add1("concat", operands, output=node.output[0], axis=a.int("axis"))]


@converts("Split", (2, 11, 13, 18))
def _split(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    shape = b.type(ins[0]).shape
    axis = a.int("axis", 0)
    if not -len(shape) <= axis < len(shape):
        raise b.error(f"axis={axis} is out of range for {len(shape)} dimensions")
    extent = shape[axis]
    count = len(node.output)
    if v >= 13:
        name = optional(ins, 1)
        sizes = const_ints(b, name, "the split sizes") if name else None
    else:
        sizes = a.ints("split")
    if sizes is None:
        parts = a.int("num_outputs", count) if v >= 18 else count
        if parts <= 0:
            raise b.error(f"cannot split into {parts} parts")
        if v >= 18 and extent % parts:
            chunk = -(-extent // parts)
            sizes = [chunk] * (parts - 1) + [extent - chunk * (parts - 1)]
        else:
            if extent % parts:
                raise b.error(f"{parts} parts do not divide dimension {axis} of extent {extent}")
            sizes = [extent // parts] * parts
    if len(sizes) != count:
        raise b.error(f"{len(sizes)} split sizes for {count} outputs")
    outputs = [name or b.fresh(f"{b.node_name}/unused") for name in node.output]
    return b.add("split", [ins[0]], outputs, axis=axis, sizes=tuple(sizes))


@converts("Slice", (1, 10, 11, 13))
def _slice(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    ndim = b.type(ins[0]).ndim
    if v < 10:
        starts, ends = a.ints("starts", required=True) or [], a.ints("ends", required=True) or []
        axes = a.ints("axes", list(range(len(starts)))) or []
        steps = [1] * len(starts)
    else:
        starts, ends = const_ints(b, ins[1], "starts"), const_ints(b, ins[2], "ends")
        axes = const_ints(b, ins[3], "axes") if optional(ins, 3) else list(range(len(starts)))
        steps = const_ints(b, ins[4], "steps") if optional(ins, 4) else [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise b.error("starts, ends, axes and steps must have the same length")
    for axis in axes:
        if not -ndim <= axis < ndim:
            raise b.error(f"axis {axis} is out of range for {ndim} dimensions")
    return [b.add1("strided_slice", [ins[0]], output=node.output[0], begin=tuple(starts), end=tuple(ends),
                   strides=tuple(steps), axes=tuple(axes))]


@converts("Gather", (1, 11, 13))
def _gather(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    return [b.add1("take", [ins[0], ins[1]], output=node.output[0], axis=a.int("axis", 0))]


@converts("Expand", (8, 13))
def _expand(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    shape = const_ints(b, ins[1], "the shape")
    try:
        target = tuple(int(d) for d in np.broadcast_shapes(b.type(ins[0]).shape, tuple(shape)))
    except ValueError:
        raise b.error(f"cannot expand {b.type(ins[0]).shape} to {shape}") from None
    return [b.add1("broadcast_to", [ins[0]], output=node.output[0], shape=target)]


@converts("Tile", (6, 13))
def _tile(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    repeats = const_ints(b, ins[1], "the repeats")
    return [b.add1("tile", [ins[0]], output=node.output[0], repeats=tuple(repeats))]


@converts("Pad", (2, 11, 13, 18, 19, 21, 23, 24, 25))
def _pad(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    x = ins[0]
    ndim = b.type(x).ndim
    mode = a.string("mode", "constant")
    if v < 11:
        pads = a.ints("pads", required=True) or []
        value: float = a.float("value", 0.0)
        axes = list(range(ndim))
    else:
        pads = const_ints(b, ins[1], "the pads")
        value_name = optional(ins, 2)
        value = 0.0
        if value_name:
            constant = b.require_const(value_name, "the constant value")
            if constant.size != 1:
                raise b.error("the constant value must be a scalar")
            value = constant.reshape(-1)[0].item()
        axes_name = optional(ins, 3) if v >= 18 else ""
        axes = const_ints(b, axes_name, "the axes") if axes_name else list(range(ndim))
    if len(pads) != 2 * len(axes):
        raise b.error(f"pads {pads} must have two entries per padded axis ({len(axes)})")
    full = [0] * (2 * ndim)
    for position, axis in enumerate(axes):
        if not -ndim <= axis < ndim:
            raise b.error(f"axis {axis} is out of range for {ndim} dimensions")
        axis = axis + ndim if axis < 0 else axis
        full[axis] = pads[position]
        full[axis + ndim] = pads[position + len(axes)]
    if min(full, default=0) < 0:  # negative pads remove elements (as onnxruntime reads them): a slice first
        if mode != "constant":
            raise b.error(f"negative pads {tuple(full)} with mode {mode!r}: only constant pads may be negative")
        shape = b.type(x).shape
        cropped = [d for d in range(ndim) if full[d] < 0 or full[d + ndim] < 0]
        if any(max(0, -full[d]) + max(0, -full[d + ndim]) > shape[d] for d in cropped):
            raise b.error(f"negative pads {tuple(full)} remove more than the dimensions {shape} hold")
        x = b.add1("strided_slice", [x], begin=tuple(max(0, -full[d]) for d in cropped),
                   end=tuple(shape[d] - max(0, -full[d + ndim]) for d in cropped), strides=(1,) * len(cropped),
                   axes=tuple(cropped))
        full = [max(0, p) for p in full]
        if not any(full):
            return [b.add1("identity", [x], output=node.output[0])]
    return [b.add1("pad", [x], output=node.output[0], pads=tuple(full), mode=mode, value=value)]


__all__ = ["check_unused_outputs", "reshape"]
