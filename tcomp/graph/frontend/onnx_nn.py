"""ONNX converters for neural-network operators: convolutions, matrix products, pooling, normalizations, softmax,
LRN, Resize, the deprecated Upsample and GridSample.

1-D and 2-D convolutions and poolings run as the 2-D operators (``conv2d``, ``pool2d``: a 1-D one over a height of
1), which have tuned schedules and layouts; 3-D convolutions, transposed convolutions of any rank, dilated or Lp
pooling, and MaxPool's indices use the operators of any rank (``conv_nd``, ``conv_transpose``, ``pool``,
``max_pool_indices``). Biases become separate ``add`` nodes. ``auto_pad`` is resolved into explicit pads from the
static shapes. BatchNormalization in inference is one ``batch_norm`` node; in training mode it is composed from
reductions and elementwise operators (the batch's statistics, then the running ones).
"""

from __future__ import annotations

import math

import numpy as np
import onnx

from tcomp.graph.frontend.onnx_builder import Builder
from tcomp.graph.frontend.onnx_common import (
    Attrs,
    check_unused_outputs,
    const_ints,
    converts,
    optional,
    reshape,
    scalar_param,
)


def _spatial_rank(b: Builder, name: str, what: str) -> int:
    rank = b.type(name).ndim - 2
    if rank < 1:
        raise b.error(f"{what} needs data with at least one spatial dimension (N, C, ...), got {b.type(name)}")
    return rank


def _ints(b: Builder, a: Attrs, key: str, rank: int, default: int) -> list[int]:
    values = a.ints(key, [default] * rank) or []
    if len(values) != rank:
        raise b.error(f"attribute {key} {values} must have {rank} entries")
    return values


def resolve_pads(b: Builder, a: Attrs, spatial: tuple[int, ...], kernel: list[int], strides: list[int],
                 dilations: list[int]) -> list[int]:
    """Explicit pads (begins, then ends) from ``pads`` or ``auto_pad``."""
    rank = len(spatial)
    auto = a.string("auto_pad", "NOTSET")
    if auto == "NOTSET":
        pads = a.ints("pads", [0] * 2 * rank) or []
        if len(pads) != 2 * rank or min(pads) < 0:
            raise b.error(f"pads {pads} must be {2 * rank} non-negative ints")
        return pads
    if auto == "VALID":
        return [0] * 2 * rank
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise b.error(f"auto_pad {auto!r} is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER")
    begins, ends = [], []
    for size, k, s, d in zip(spatial, kernel, strides, dilations):
        out = -(-size // s)
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
        small = total // 2
        begins.append(small if auto == "SAME_UPPER" else total - small)
        ends.append(total - begins[-1])
    return begins + ends


def _as_2d(b: Builder, name: str) -> str:
    shape = b.type(name).shape
    return reshape(b, name, (*shape[:2], 1, *shape[2:]))


def _add_bias(b: Builder, y: str, bias: str, channels: int, output: str | None) -> str:
    rank = b.type(y).ndim
    bias = reshape(b, bias, (1, channels) + (1,) * (rank - 2))
    return b.add1("add", [y, bias], output=output)


# ---------------------------------------------------------------------------------------------------------------------
@converts("Conv", (1, 11, 22))
def _conv(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    return [convolve(b, a, ins[0], ins[1], optional(ins, 2), node.output[0])]


def convolve(b: Builder, a: Attrs, x: str, w: str, bias: str, output: str | None) -> str:
    """ONNX Conv of ``x`` by ``w`` (plus ``bias`` unless empty) with the node's attributes ``a``, named ``output``
    (a fresh name when None); ConvInteger and QLinearConv convolve their offset operands with it."""
    rank = _spatial_rank(b, x, "convolution")
    xt, wt = b.type(x), b.type(w)
    if wt.ndim != xt.ndim:
        raise b.error(f"weight {wt} does not match the input {xt}")
    kernel = list(wt.shape[2:])
    if a.has("kernel_shape") and (a.ints("kernel_shape") or []) != kernel:
        raise b.error(f"kernel_shape {a.ints('kernel_shape')} differs from the weight's {kernel}")
    strides, dilations = _ints(b, a, "strides", rank, 1), _ints(b, a, "dilations", rank, 1)
    pads = resolve_pads(b, a, xt.shape[2:], kernel, strides, dilations)
    groups = a.int("group", 1)
    if rank > 2:
        y = b.add1("conv_nd", [x, w], output=None if bias else output, strides=tuple(strides),
                   pads=tuple(pads), dilations=tuple(dilations), groups=groups)
        return _add_bias(b, y, bias, wt.shape[0], output) if bias else y
    last = output if not bias and rank == 2 else None
    if rank == 1:
        x, w = _as_2d(b, x), _as_2d(b, w)
        strides, dilations, pads = [1, *strides], [1, *dilations], [0, pads[0], 0, pads[1]]
    y = b.add1("conv2d", [x, w], output=last, strides=tuple(strides), pads=tuple(pads),
               dilations=tuple(dilations), groups=groups)
    if bias:
        y = _add_bias(b, y, bias, wt.shape[0], output if rank == 2 else None)
    if rank == 1:
        shape = b.type(y).shape
        y = b.add1("reshape", [y], output=output, shape=(shape[0], shape[1], shape[3]))
    return y


@converts("ConvTranspose", (1, 11, 22))
def _conv_transpose(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    x, w, bias = ins[0], ins[1], optional(ins, 2)
    rank = _spatial_rank(b, x, "transposed convolution")
    xt, wt = b.type(x), b.type(w)
    if wt.ndim != xt.ndim:
        raise b.error(f"weight {wt} does not match the input {xt}")
    kernel = list(wt.shape[2:])
    strides, dilations = _ints(b, a, "strides", rank, 1), _ints(b, a, "dilations", rank, 1)
    output_padding = _ints(b, a, "output_padding", rank, 0)
    groups = a.int("group", 1)
    auto = a.string("auto_pad", "NOTSET")
    output_shape = a.ints("output_shape")
    if output_shape is not None or auto in ("SAME_UPPER", "SAME_LOWER"):
        if output_shape is None:
            output_shape = [size * s for size, s in zip(xt.shape[2:], strides)]
        output_shape = list(output_shape[-rank:])
        begins, ends = [], []
        for i in range(rank):
            total = (strides[i] * (xt.shape[2 + i] - 1) + output_padding[i] + (kernel[i] - 1) * dilations[i] + 1
                     - output_shape[i])
            if total < 0:  # a larger output than the padding-free convolution makes: extra output padding
                output_padding[i] += -total
                total = 0
            if auto == "SAME_UPPER":
                begins.append(total // 2)
                ends.append(total - total // 2)
            else:
                begins.append(total - total // 2)
                ends.append(total // 2)
        pads = begins + ends
    elif auto == "VALID":
        pads = [0] * 2 * rank
    else:
        pads = a.ints("pads", [0] * 2 * rank) or []
        if len(pads) != 2 * rank or min(pads) < 0:
            raise b.error(f"pads {pads} must be {2 * rank} non-negative ints")
    y = b.add1("conv_transpose", [x, w], output=None if bias else node.output[0], strides=tuple(strides),
               pads=tuple(pads), dilations=tuple(dilations), groups=groups, output_padding=tuple(output_padding))
    return [_add_bias(b, y, bias, b.type(y).shape[1], node.output[0]) if bias else y]


# ---------------------------------------------------------------------------------------------------------------------
@converts("MatMul", (1, 9, 13))
def _matmul(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    return [b.add1("matmul", [ins[0], ins[1]], output=node.output[0])]


@converts("Gemm", (6, 7, 9, 11, 13))
def _gemm(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    lhs, rhs, c = ins[0], ins[1], optional(ins, 2)
    alpha, beta = a.float("alpha", 1.0), a.float("beta", 1.0)
    for name in (lhs, rhs):
        if b.type(name).ndim != 2:
            raise b.error(f"Gemm operands must be 2-D, got {b.type(name)}")
    if a.int("transA", 0):
        lhs = b.add1("transpose", [lhs], perm=(1, 0))
    if a.int("transB", 0):
        rhs = b.add1("transpose", [rhs], perm=(1, 0))
    dtype = b.type(lhs).dtype
    last = node.output[0] if not c and alpha == 1.0 else None
    y = b.add1("matmul", [lhs, rhs], output=last)
    if alpha != 1.0:
        y = b.add1("multiply", [y, scalar_param(b, alpha, dtype, f"{b.node_name}/alpha")],
                   output=None if c else node.output[0])
    if c:
        if beta != 1.0:
            c = b.add1("multiply", [c, scalar_param(b, beta, dtype, f"{b.node_name}/beta")])
        y = b.add1("add", [y, c], output=node.output[0])
    return [y]


# ---------------------------------------------------------------------------------------------------------------------
@converts("BatchNormalization", (9, 14, 15))
def _batch_norm(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    epsilon = a.float("epsilon", 1e-5)
    # definitions 9 to 13 train when asked for the statistics (1 or 5 outputs); 14 on has ``training_mode``
    training = bool(a.int("training_mode", 0)) if v >= 14 else len(node.output) > 1
    if not training:
        check_unused_outputs(b, node, 1, "training statistics, which only training mode computes")
        return [b.add1("batch_norm", ins[:5], output=node.output[0], epsilon=epsilon)]
    momentum = float(np.float32(a.float("momentum", 0.9)))  # the attribute's float32 value, as onnxruntime takes it
    return _batch_norm_training(b, node, ins, epsilon, momentum, v)


def _batch_norm_training(b: Builder, node: onnx.NodeProto, ins: list[str], epsilon: float, momentum: float,
                         v: int) -> list[str]:
    """Training mode: ``x`` normalized by its own per-channel mean and (population) variance; the running
    statistics are ``mean * momentum + batch_mean * (1 - momentum)`` (in the running statistics' element type).
    Definitions 9 to 13 also give the batch mean and, as onnxruntime does, the batch's inverse standard
    deviation ``1 / sqrt(var + epsilon)`` as ``saved_var``."""
    x, scale, bias, mean, var = ins[:5]
    xt = b.type(x)
    if xt.ndim < 2:
        raise b.error(f"input must have at least 2 dimensions, got {xt}")
    if xt.shape[0] * math.prod(xt.shape[2:]) == 0:
        raise b.error(f"training mode needs a non-empty batch to take statistics of, got {xt}")
    channels = xt.shape[1]
    axes = (0, *range(2, xt.ndim))
    column = (1, channels) + (1,) * (xt.ndim - 2)
    batch_mean = b.add1("mean", [x], axes=axes, keepdims=True)
    centered = b.add1("subtract", [x, batch_mean])
    batch_var = b.add1("mean", [b.add1("multiply", [centered, centered])], axes=axes, keepdims=True)
    eps = scalar_param(b, epsilon, xt.dtype, f"{b.node_name}/epsilon")
    inv_std = b.add1("reciprocal", [b.add1("sqrt", [b.add1("add", [batch_var, eps])])])
    normalized = b.add1("multiply", [centered, inv_std])
    y = b.add1("multiply", [normalized, reshape(b, scale, column)])
    outputs = [b.add1("add", [y, reshape(b, bias, column)], output=node.output[0])]
    stats_dtype = b.type(mean).dtype
    for batch_stat, running in ((batch_mean, mean), (batch_var, var)):
        stat = b.add1("reshape", [batch_stat], shape=(channels,))
        if b.type(stat).dtype != stats_dtype:
            stat = b.add1("cast", [stat], dtype=stats_dtype)
        kept = b.add1("multiply", [running, scalar_param(b, momentum, stats_dtype, f"{b.node_name}/momentum")])
        added = b.add1("multiply", [stat, scalar_param(b, 1.0 - momentum, stats_dtype, f"{b.node_name}/rest")])
        outputs.append(b.add1("add", [kept, added]))
    if v < 14:
        outputs.append(b.add1("reshape", [batch_mean], shape=(channels,)))
        outputs.append(b.add1("reshape", [inv_std], shape=(channels,)))
    return outputs


@converts("InstanceNormalization", (6, 22))
def _instance_norm(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    return [b.add1("instance_norm", ins[:3], output=node.output[0], epsilon=a.float("epsilon", 1e-5))]


@converts("LayerNormalization", (17,))
def _layer_norm(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    operands = [ins[0], ins[1]] + ([ins[2]] if optional(ins, 2) else [])
    stats = len(node.output) > 1 and any(node.output[1:])
    outputs = [name or b.fresh(f"{b.node_name}/unused") for name in node.output[:3]] if stats else [node.output[0]]
    if stats and len(outputs) == 2:
        outputs.append(b.fresh(f"{b.node_name}/inv_std"))
    return b.add("layer_norm", operands, outputs, axis=a.int("axis", -1), epsilon=a.float("epsilon", 1e-5))


@converts("LRN", (1, 13))
def _lrn(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    return [b.add1("lrn", [ins[0]], output=node.output[0], size=a.int("size"), alpha=a.float("alpha", 1e-4),
                   beta=a.float("beta", 0.75), bias=a.float("bias", 1.0))]


def _softmax(op: str) -> object:
    def convert(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
        shape = b.type(ins[0]).shape
        if v >= 13:
            return [b.add1(op, [ins[0]], output=node.output[0], axis=a.int("axis", -1))]
        axis = a.int("axis", 1)
        if not -len(shape) <= axis < max(len(shape), 1):
            raise b.error(f"axis={axis} is out of range for {len(shape)} dimensions")
        axis = axis + len(shape) if axis < 0 else axis
        flat = b.add1("reshape", [ins[0]], shape=(math.prod(shape[:axis]), math.prod(shape[axis:])))
        y = b.add1(op, [flat], axis=1)
        return [b.add1("reshape", [y], output=node.output[0], shape=shape)]

    return convert


converts("Softmax", (1, 11, 13))(_softmax("softmax"))  # type: ignore[arg-type]
converts("LogSoftmax", (1, 11, 13))(_softmax("log_softmax"))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------------------
def _pool(kind: str) -> object:
    def convert(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
        x = ins[0]
        rank = _spatial_rank(b, x, "pooling")
        kernel = a.ints("kernel_shape", required=True) or []
        if len(kernel) != rank:
            raise b.error(f"kernel_shape {kernel} must have {rank} entries")
        strides = _ints(b, a, "strides", rank, 1)
        dilations = _ints(b, a, "dilations", rank, 1)
        pads = resolve_pads(b, a, b.type(x).shape[2:], kernel, strides, dilations)
        ceil_mode = bool(a.int("ceil_mode", 0))
        include_pad = bool(a.int("count_include_pad", 0))
        p = int(a.float("p", 2.0)) if kind == "lp" else 2
        indices = kind == "max" and len(node.output) > 1 and bool(node.output[1])
        check_unused_outputs(b, node, 2 if kind == "max" else 1, "unknown output")
        small_pads = all(pads[i] < kernel[i] and pads[rank + i] < kernel[i] for i in range(rank))
        if kind == "lp" or indices or rank > 2 or max(dilations) > 1 or not small_pads:
            attrs = dict(kind=kind, kernel=tuple(kernel), strides=tuple(strides), pads=tuple(pads),
                         dilations=tuple(dilations), ceil_mode=ceil_mode, count_include_pad=include_pad, p=p)
            y = b.add1("pool", [x], output=node.output[0], **attrs)
            if not indices:
                return [y]
            order = a.int("storage_order", 0)
            return [y, b.add1("max_pool_indices", [x, y], output=node.output[1], storage_order=order, **attrs)]
        if rank == 1:
            x = _as_2d(b, x)
            kernel, strides, pads = [1, *kernel], [1, *strides], [0, pads[0], 0, pads[1]]
        y = b.add1("pool2d", [x], output=node.output[0] if rank == 2 else None, kind=kind, kernel=tuple(kernel),
                   strides=tuple(strides), pads=tuple(pads), ceil_mode=ceil_mode, count_include_pad=include_pad)
        if rank == 1:
            shape = b.type(y).shape
            y = b.add1("reshape", [y], output=node.output[0], shape=(shape[0], shape[1], shape[3]))
        return [y]

    return convert


converts("MaxPool", (8, 10, 11, 12, 22))(_pool("max"))  # type: ignore[arg-type]
converts("AveragePool", (7, 10, 11, 19, 22))(_pool("avg"))  # type: ignore[arg-type]
converts("LpPool", (2, 11, 18, 22))(_pool("lp"))  # type: ignore[arg-type]


def _global_pool(op: str) -> object:
    def convert(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
        shape = b.type(ins[0]).shape
        if len(shape) < 3:
            raise b.error(f"expects at least 3 dimensions, got {b.type(ins[0])}")
        if op == "lp":
            rank = len(shape) - 2
            return [b.add1("pool", [ins[0]], output=node.output[0], kind="lp", kernel=shape[2:], strides=(1,) * rank,
                           pads=(0,) * 2 * rank, dilations=(1,) * rank, p=int(a.float("p", 2.0)))]
        return [b.add1(op, [ins[0]], output=node.output[0], axes=tuple(range(2, len(shape))), keepdims=True)]

    return convert


converts("GlobalAveragePool", (1, 22))(_global_pool("mean"))  # type: ignore[arg-type]
converts("GlobalMaxPool", (1, 22))(_global_pool("max"))  # type: ignore[arg-type]
converts("GlobalLpPool", (2, 22))(_global_pool("lp"))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------------------
@converts("Resize", (10, 11, 13, 18, 19))
def _resize(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    x = ins[0]
    in_shape = b.type(x).shape
    ndim = len(in_shape)
    mode = a.string("mode", "nearest")
    if mode not in ("nearest", "linear", "cubic"):
        raise b.error(f"mode {mode!r} is not one of nearest, linear, cubic")
    antialias = v >= 18 and bool(a.int("antialias", 0)) and mode != "nearest"
    if v < 11:
        coord, nearest_mode, roi_name, scales_name, sizes_name = "asymmetric", "floor", "", ins[1], ""
    else:
        coord = a.string("coordinate_transformation_mode", "half_pixel")
        nearest_mode = a.string("nearest_mode", "round_prefer_floor")
        roi_name, scales_name, sizes_name = optional(ins, 1), optional(ins, 2), optional(ins, 3)
    axes = a.ints("axes") if v >= 18 else None
    axes = list(range(ndim)) if axes is None else [d + ndim if d < 0 else d for d in axes]
    if any(not 0 <= d < ndim for d in axes) or len(set(axes)) != len(axes):
        raise b.error(f"axes {a.ints('axes')} are invalid for {ndim} dimensions")
    roi = [0.0] * ndim + [1.0] * ndim
    if roi_name and coord == "tf_crop_and_resize":
        given = [float(r) for r in b.require_const(roi_name, "the roi").reshape(-1)]
        if len(given) != 2 * len(axes):
            raise b.error(f"roi {given} must have two entries per axis")
        for position, d in enumerate(axes):
            roi[d], roi[d + ndim] = given[position], given[position + len(axes)]
    scales_value = b.require_const(scales_name, "the scales") if scales_name else None
    if scales_value is not None and scales_value.size == 0:
        scales_value = None
    scales = [1.0] * ndim
    sizes = list(in_shape)
    if scales_value is not None:
        given_scales = [float(s) for s in scales_value.astype(np.float32).reshape(-1)]
        if len(given_scales) != len(axes) or min(given_scales) <= 0:
            raise b.error(f"scales {given_scales} must be {len(axes)} positive numbers")
        for d, s in zip(axes, given_scales):
            scales[d] = s
            extent = in_shape[d] * (roi[d + ndim] - roi[d]) if coord == "tf_crop_and_resize" else in_shape[d]
            sizes[d] = int(math.floor(extent * s))
    elif sizes_name:
        given_sizes = const_ints(b, sizes_name, "the sizes")
        if len(given_sizes) != len(axes) or min(given_sizes) <= 0:
            raise b.error(f"sizes {given_sizes} must be {len(axes)} positive ints")
        policy = a.string("keep_aspect_ratio_policy", "stretch") if v >= 18 else "stretch"
        if policy == "stretch":
            for d, size in zip(axes, given_sizes):
                sizes[d], scales[d] = size, size / in_shape[d]
        elif policy in ("not_larger", "not_smaller"):
            ratios = [size / in_shape[d] for d, size in zip(axes, given_sizes)]
            scale = min(ratios) if policy == "not_larger" else max(ratios)
            for d in axes:
                sizes[d] = int(math.floor(scale * in_shape[d] + 0.5))
                scales[d] = scale
        else:
            raise b.error(f"keep_aspect_ratio_policy {policy!r} is not supported")
    else:
        raise b.error("needs scales or sizes")
    attrs = dict(sizes=tuple(sizes), scales=tuple(scales), mode=mode, coord=coord, nearest_mode=nearest_mode,
                 roi=tuple(roi), extrapolation_value=a.float("extrapolation_value", 0.0))
    if mode == "cubic" or antialias:
        return [b.add1("resize_filtered", [x], output=node.output[0], antialias=antialias,
                       cubic_coeff_a=a.float("cubic_coeff_a", -0.75),
                       exclude_outside=bool(a.int("exclude_outside", 0)), **attrs)]
    return [b.add1("resize", [x], output=node.output[0], **attrs)]


@converts("GridSample", (16, 20, 22))
def _grid_sample(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    """GridSample: definition 16 names the modes ``bilinear`` and ``bicubic`` (2 spatial axes), 20 on ``linear``
    and ``cubic`` (any number of axes; tcomp takes 2 or 3)."""
    names = {"bilinear": "linear", "bicubic": "cubic", "nearest": "nearest"} if v < 20 else \
        {"linear": "linear", "cubic": "cubic", "nearest": "nearest"}
    given = a.string("mode", "bilinear" if v < 20 else "linear")
    if given not in names:
        raise b.error(f"mode {given!r} is not one of {', '.join(names)}")
    if v < 20 and b.type(ins[0]).ndim != 4:
        raise b.error(f"GridSample-{v} takes a 4-D input, got {b.type(ins[0]).ndim}-D")
    return [b.add1("grid_sample", ins[:2], output=node.output[0], mode=names[given],
                   padding=a.string("padding_mode", "zeros"), align_corners=bool(a.int("align_corners", 0)))]


@converts("Upsample", (7, 9))
def _upsample(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    """Upsample (deprecated from opset 10 on) is Resize-10: ``floor(size * scale)`` outputs, asymmetric
    coordinates, nearest rounding down; its scales, an attribute before definition 9, must all be at least 1."""
    mode = a.string("mode", "nearest")
    if mode not in ("nearest", "linear"):
        raise b.error(f"mode {mode!r} is not one of nearest, linear")
    ndim = b.type(ins[0]).ndim
    if v < 9:
        scales = np.array(a.floats("scales") or [], dtype=np.float32)
        if not a.has("scales"):
            raise b.error("attribute 'scales' is required")
    else:
        scales = b.require_const(ins[1], "the scales").astype(np.float32).reshape(-1)
    if scales.size != ndim or not np.all(scales >= 1):
        raise b.error(f"scales {scales.tolist()} must be {ndim} numbers of at least 1")
    return _resize(b, node, [ins[0], b.param(scales, f"{b.node_name}/scales")], a, 10)
