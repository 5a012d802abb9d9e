"""Neural-network graph operators: convolutions, matrix products, normalizations, pooling, softmax, LRN.

Layouts are NCHW (``conv2d``, ``pool2d``) with weights OIHW; ``pads`` are ``(top, left, bottom, right)``. Other
ranks, transposed convolutions and the other poolings are in ``spatial.py``. Biases are separate ``add`` nodes (the
frontend splits them off), so a bias is fused like any other elementwise consumer.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tcomp import ops, te
from tcomp.graph.ir import TensorType
from tcomp.graph.op import InferContext, LowerContext, OpPattern, register_op
from tcomp.graph.opdefs.common import (
    conv2d_output_hw,
    ints_attr,
    normalize_axis,
    require_float,
    require_float_or_int32,
    same_dtype,
)
from tcomp.ir.expr import Expr, const, max_expr, min_expr
from tcomp.ops.matvec import packed_matvec
from tcomp.ops.panels import PAIRS, panel_matmul
from tcomp.ops.pool import pool2d_output_size
from tcomp.ops.utils import as_dim, as_int, element_count, same_dim
from tcomp.te.tensor import Tensor


# ---------------------------------------------------------------------------------------------------------------------
# conv2d
def _infer_conv2d(ctx: InferContext) -> list[TensorType]:
    x, w = ctx.type(0), ctx.type(1)
    require_float_or_int32(ctx, x)
    same_dtype(ctx, [x, w])
    if x.ndim != 4 or w.ndim != 4:
        raise ctx.error(f"expects 4-D data and weight, got {x} and {w}")
    strides, dilations = ints_attr(ctx, "strides", 2), ints_attr(ctx, "dilations", 2)
    pads = ints_attr(ctx, "pads", 4)
    groups = int(ctx.attr("groups", 1))
    if min(strides) <= 0 or min(dilations) <= 0 or min(pads) < 0 or groups <= 0:
        raise ctx.error(f"strides {strides}, dilations {dilations}, groups {groups} must be positive and pads {pads} "
                        "non-negative")
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    if c % groups or o % groups or cg * groups != c:
        raise ctx.error(f"weight {w.shape} does not match {c} input channels in {groups} groups")
    oh, ow = conv2d_output_hw(ctx, (h, wd), (kh, kw))
    return [TensorType((n, o, oh, ow), x.dtype)]


def _lower_conv2d(ctx: LowerContext) -> list[Tensor]:
    x, w = ctx.tensor(0), ctx.tensor(1)
    strides, pads, dilations = ctx.attr("strides"), ctx.attr("pads"), ctx.attr("dilations")
    groups = int(ctx.attr("groups", 1))
    channels = ctx.types[0].shape[1]  # type: ignore[union-attr]
    weight_shape = ctx.types[1].shape  # type: ignore[union-attr]
    if groups > 1 and groups == channels and weight_shape[0] == channels and weight_shape[1] == 1:
        out = ops.depthwise_conv2d_nchw(x, w, stride=strides, padding=pads, dilation=dilations, name=ctx.name)
    else:
        out = ops.conv2d_nchw(x, w, stride=strides, padding=pads, dilation=dilations, groups=groups, name=ctx.name)
    return [out]


register_op("conv2d", OpPattern.OUT_ELEMWISE_FUSABLE, _infer_conv2d, _lower_conv2d)


# ---------------------------------------------------------------------------------------------------------------------
# matmul with numpy semantics (1-D operands, broadcast batch dimensions)
def _matmul_shapes(ctx: InferContext | None, a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    a2 = (1, a[0]) if len(a) == 1 else a
    b2 = (b[0], 1) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise ValueError(f"matmul: inner dimensions differ: {a} and {b}")
    batch = tuple(int(d) for d in np.broadcast_shapes(a2[:-2], b2[:-2]))
    out = (*batch, a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return out


def _infer_matmul(ctx: InferContext) -> list[TensorType]:
    """``a @ b``; with ``transpose_b`` the 2-D ``b`` is stored ``[N, K]`` (``a @ b.T``)."""
    a, b = ctx.type(0), ctx.type(1)
    dtype = same_dtype(ctx, [a, b])
    if a.ndim == 0 or b.ndim == 0:
        raise ctx.error("operands must have at least one dimension")
    b_shape = b.shape
    if ctx.attr("transpose_b", False):
        if b.ndim != 2:
            raise ctx.error(f"transpose_b needs a 2-D second operand, got {b}")
        b_shape = (b.shape[1], b.shape[0])
    return [TensorType(_matmul_shapes(ctx, a.shape, b_shape), dtype)]


def _lower_matmul(ctx: LowerContext) -> list[Tensor]:
    a, b = ctx.tensor(0), ctx.tensor(1)
    sa, sb = ctx.types[0].shape, ctx.types[1].shape  # type: ignore[union-attr]
    name = ctx.name
    if len(sa) == 1:
        a, sa = ops.reshape(a, (1, sa[0]), name=f"{name}_a2"), (1, sa[0])
    if len(sb) == 1:
        b, sb = ops.reshape(b, (sb[0], 1), name=f"{name}_b2"), (sb[0], 1)
    out_shape = ctx.out_types[0].shape
    if ctx.attr("transpose_b", False):  # b is [N, K]
        flat = a if len(sa) == 2 else ops.reshape(a, (element_count(sa[:-1]), sa[-1]), name=f"{name}_rows")
        result = ops.dense(flat, b, name=name if len(sa) == 2 else f"{name}_mm")
    elif len(sa) == 2 and len(sb) == 2:
        result = ops.matmul(a, b, name=name)
    elif len(sb) == 2:  # fold a's batch dimensions into its rows
        flat = ops.reshape(a, (element_count(sa[:-1]), sa[-1]), name=f"{name}_rows")
        result = ops.matmul(flat, b, name=f"{name}_mm")
    else:
        batch = tuple(as_dim(d) for d in ops.broadcast_shape("matmul", sa[:-2], sb[:-2]))
        count = element_count(batch)
        a3 = _as_batch(a, sa, batch, count, f"{name}_a3")
        b3 = _as_batch(b, sb, batch, count, f"{name}_b3")
        result = ops.batch_matmul(a3, b3, name=f"{name}_bmm")
    if len(result.shape) != len(out_shape) or not all(map(same_dim, result.shape, out_shape)):
        result = ops.reshape(result, out_shape, name=name)
    return [result]


def _as_batch(t: Tensor, shape: tuple[Any, ...], batch: tuple[Any, ...], count: Any, name: str) -> Tensor:
    own = shape[:-2]
    if (len(own) != len(batch) or not all(map(same_dim, own, batch))) and any(as_int(d) != 1 for d in own):
        t = ops.broadcast_to(t, (*batch, *shape[-2:]), name=f"{name}_bcast")
        return ops.reshape(t, (count, *shape[-2:]), name=name)
    return ops.reshape(t, (element_count(own), *shape[-2:]), name=name)


register_op("matmul", OpPattern.OUT_ELEMWISE_FUSABLE, _infer_matmul, _lower_matmul)


# ---------------------------------------------------------------------------------------------------------------------
# packed_matvec: a few rows times a constant weight packed in column blocks (``tcomp.ops.matvec``; the CPU graph pass
# ``matvec_weights`` makes these from matmul)
def _weight_product_dtype(ctx: InferContext, x: TensorType, weight: TensorType) -> str:
    """The type of rows ``x`` times a packed ``weight``: float32 for a bfloat16 weight of float32 rows (``-precision
    bf16``: widened as it is read), else the type both share."""
    if (x.dtype, weight.dtype) == ("float32", "bfloat16"):
        return x.dtype
    return same_dtype(ctx, [x, weight])


def _infer_packed_matvec(ctx: InferContext) -> list[TensorType]:
    """``x[..., K]`` times ``packed[ceil(N / NB), K, NB]`` with the attribute ``columns`` (``N``) -> ``[..., N]``;
    with a third input ``scales[ceil(N / NB), ceil(K / block), NB]`` and the attribute ``block``, ``packed`` holds
    int8 weights of blocks of ``block`` along K, dequantized by their scale as they are read. A bfloat16 ``packed``
    weight of float32 ``x`` is widened as it is read."""
    x, packed = ctx.type(0), ctx.type(1)
    columns = ctx.attr("columns")
    if isinstance(columns, bool) or not isinstance(columns, int):
        raise ctx.error(f"the attribute columns must be an int, got {columns!r}")
    if x.ndim == 0 or packed.ndim != 3:
        raise ctx.error(f"expects data with a K axis and a 3-D packed weight, got {x} and {packed}")
    blocks, k, width = packed.shape
    if x.shape[-1] != k or not (blocks - 1) * width < columns <= blocks * width:
        raise ctx.error(f"data {x} and {columns} columns do not match the packed weight {packed}")
    if not ctx.has_input(2):
        return [TensorType((*x.shape[:-1], columns), _weight_product_dtype(ctx, x, packed))]
    scales, block = ctx.type(2), ctx.attr("block")
    if packed.dtype != "int8" or scales.dtype != x.dtype or isinstance(block, bool) or not isinstance(block, int) \
            or block < 1 or scales.shape != (blocks, -(-k // block), width):
        raise ctx.error(f"expects int8 weights {packed} and {x.dtype} scales of blocks of {block!r}, got {scales}")
    return [TensorType((*x.shape[:-1], columns), x.dtype)]


def _lower_packed_matvec(ctx: LowerContext) -> list[Tensor]:
    x, packed = ctx.tensor(0), ctx.tensor(1)
    shape = ctx.types[0].shape  # type: ignore[union-attr]
    columns = int(ctx.attr("columns"))
    rows = math.prod(shape[:-1])
    flat = x if len(shape) == 2 else ops.reshape(x, (rows, shape[-1]), name=f"{ctx.name}_rows")
    scales = ctx.tensor(2) if ctx.has_input(2) else None
    result = packed_matvec(flat, packed, columns, name=ctx.name if len(shape) == 2 else f"{ctx.name}_mv",
                           scales=scales, block=int(ctx.attr("block", 0)) if scales is not None else 0)
    if len(shape) != 2:
        result = ops.reshape(result, ctx.out_types[0].shape, name=ctx.name)
    return [result]


register_op("packed_matvec", OpPattern.OUT_ELEMWISE_FUSABLE, _infer_packed_matvec, _lower_packed_matvec)


# ---------------------------------------------------------------------------------------------------------------------
# panel_matmul: rows times a constant weight packed into the GEMM's column panels (``tcomp.ops.panels``; the CPU
# graph pass ``gemm_panels`` makes these from matmul)
def _infer_panel_matmul(ctx: InferContext) -> list[TensorType]:
    """``x[..., K]`` times ``panels[ceil(N / nr), Kp >= K, nr]`` (or float32 ``x`` times bfloat16
    ``panels[ceil(N / nr), Kp / 2, nr, 2]``) with the attribute ``columns`` (``N``) -> ``[..., N]``."""
    x, panels = ctx.type(0), ctx.type(1)
    pairs = panels.dtype == "bfloat16"
    dtype = _weight_product_dtype(ctx, x, panels)
    columns = ctx.attr("columns")
    if isinstance(columns, bool) or not isinstance(columns, int):
        raise ctx.error(f"the attribute columns must be an int, got {columns!r}")
    if x.ndim == 0 or panels.ndim != (4 if pairs else 3) or (pairs and panels.shape[3] != PAIRS):
        raise ctx.error(f"expects data with a K axis and 3-D panels (4-D in pairs of bfloat16), got {x} and "
                        f"{panels}")
    blocks, depth, nr = panels.shape[:3]
    depth = depth * PAIRS if pairs else depth
    if x.shape[-1] > depth or not (blocks - 1) * nr < columns <= blocks * nr:
        raise ctx.error(f"data {x} and {columns} columns do not match the panels {panels}")
    return [TensorType((*x.shape[:-1], columns), dtype)]


def _lower_panel_matmul(ctx: LowerContext) -> list[Tensor]:
    x, panels = ctx.tensor(0), ctx.tensor(1)
    shape = ctx.types[0].shape  # type: ignore[union-attr]
    rows = math.prod(shape[:-1])
    flat = x if len(shape) == 2 else ops.reshape(x, (rows, shape[-1]), name=f"{ctx.name}_rows")
    result = panel_matmul(flat, panels, int(ctx.attr("columns")), name=ctx.name if len(shape) == 2 else
                          f"{ctx.name}_mm")
    if len(shape) != 2:
        result = ops.reshape(result, ctx.out_types[0].shape, name=ctx.name)
    return [result]


register_op("panel_matmul", OpPattern.OUT_ELEMWISE_FUSABLE, _infer_panel_matmul, _lower_panel_matmul)


# ---------------------------------------------------------------------------------------------------------------------
# batch_norm(x, scale, bias, mean, var): inference normalization over axis 1
def _infer_batch_norm(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    require_float(ctx, x)
    if x.ndim < 2:
        raise ctx.error(f"input must have at least 2 dimensions, got {x}")
    for index in range(1, 5):
        p = ctx.type(index)
        if p.shape != (x.shape[1],):
            raise ctx.error(f"input {index} has shape {p.shape}, expected ({x.shape[1]},)")
    return [x]


def _lower_batch_norm(ctx: LowerContext) -> list[Tensor]:
    x, scale, bias, mean, var = (ctx.tensor(i) for i in range(5))
    out = ops.batch_norm(x, mean, var, scale, bias, axis=1, epsilon=float(ctx.attr("epsilon", 1e-5)), name=ctx.name)
    return [out]


register_op("batch_norm", OpPattern.BROADCAST, _infer_batch_norm, _lower_batch_norm)


# ---------------------------------------------------------------------------------------------------------------------
# pool2d(kind in {max, avg}, kernel, strides, pads, ceil_mode, count_include_pad)
def _infer_pool2d(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    if x.ndim != 4:
        raise ctx.error(f"expects a 4-D input, got {x}")
    kernel, strides, pads = ints_attr(ctx, "kernel", 2), ints_attr(ctx, "strides", 2), ints_attr(ctx, "pads", 4)
    if ctx.attr("kind") not in ("max", "avg"):
        raise ctx.error(f"kind must be 'max' or 'avg', got {ctx.attr('kind')!r}")
    if min(kernel) <= 0 or min(strides) <= 0 or min(pads) < 0:
        raise ctx.error(f"kernel {kernel} and strides {strides} must be positive, pads {pads} non-negative")
    if pads[0] >= kernel[0] or pads[2] >= kernel[0] or pads[1] >= kernel[1] or pads[3] >= kernel[1]:
        raise ctx.error(f"pads {pads} must be smaller than the kernel {kernel}")
    ceil_mode = bool(ctx.attr("ceil_mode", False))
    oh = pool2d_output_size(x.shape[2], kernel[0], strides[0], pads[0], pads[2], ceil_mode)
    ow = pool2d_output_size(x.shape[3], kernel[1], strides[1], pads[1], pads[3], ceil_mode)
    if oh <= 0 or ow <= 0:
        raise ctx.error(f"the kernel {kernel} is larger than the padded input {x.shape[2:]}")
    return [TensorType((x.shape[0], x.shape[1], oh, ow), x.dtype)]


def _lower_pool2d(ctx: LowerContext) -> list[Tensor]:
    out = ops.pool2d(ctx.tensor(0), ctx.attr("kernel"), ctx.attr("strides"), ctx.attr("pads"),
                     pool_type=ctx.attr("kind"), ceil_mode=bool(ctx.attr("ceil_mode", False)),
                     count_include_pad=bool(ctx.attr("count_include_pad", False)), name=ctx.name)
    return [out]


register_op("pool2d", OpPattern.OUT_ELEMWISE_FUSABLE, _infer_pool2d, _lower_pool2d)


# ---------------------------------------------------------------------------------------------------------------------
# softmax / log_softmax over one axis
def _infer_softmax(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    require_float(ctx, x)
    normalize_axis(ctx, ctx.attr("axis", -1), x.ndim)
    return [x]


def _lower_softmax(ctx: LowerContext) -> list[Tensor]:
    return [ops.softmax(ctx.tensor(0), axis=int(ctx.attr("axis", -1)), name=ctx.name)]


def _lower_log_softmax(ctx: LowerContext) -> list[Tensor]:
    return [ops.log_softmax(ctx.tensor(0), axis=int(ctx.attr("axis", -1)), name=ctx.name)]


register_op("softmax", OpPattern.OPAQUE, _infer_softmax, _lower_softmax)
register_op("log_softmax", OpPattern.OPAQUE, _infer_softmax, _lower_log_softmax)


# ---------------------------------------------------------------------------------------------------------------------
# layer_norm(x, scale[, bias]) over the axes from `axis` to the last; scale and bias broadcast to those axes
def _infer_layer_norm(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    require_float(ctx, x)
    axis = normalize_axis(ctx, ctx.attr("axis", -1), x.ndim)
    normalized = x.shape[axis:]
    for index in (1, 2):
        if ctx.has_input(index):
            p = ctx.type(index)
            try:
                if tuple(np.broadcast_shapes(p.shape, normalized)) != normalized:
                    raise ValueError
            except ValueError:
                raise ctx.error(f"input {index} of shape {p.shape} does not broadcast to {normalized}") from None
    if len(ctx.node.outputs) == 3:  # also the mean and the inverse standard deviation, reduced axes kept as 1
        stats = TensorType(x.shape[:axis] + (1,) * (x.ndim - axis), x.dtype)
        return [x, stats, stats]
    if len(ctx.node.outputs) != 1:
        raise ctx.error("has 1 or 3 outputs (y, or y, mean and inverse standard deviation)")
    return [x]


def _lower_layer_norm(ctx: LowerContext) -> list[Tensor]:
    x = ctx.tensor(0)
    x_type = ctx.types[0]
    assert x_type is not None
    axis = normalize_axis_int(int(ctx.attr("axis", -1)), x_type.ndim)
    normalized = x_type.shape[axis:]
    axes = tuple(range(axis, x_type.ndim))
    epsilon = float(ctx.attr("epsilon", 1e-5))
    params = [ctx.tensor(i) if ctx.has_input(i) else None for i in (1, 2)]
    if len(ctx.out_types) == 3:
        return _layer_norm_with_stats(ctx, x, params, axis, epsilon)
    exact = all(p is None or ctx.types[i + 1].shape == normalized for i, p in enumerate(params))  # type: ignore
    if exact:
        return [ops.layer_norm(x, params[0], params[1], axis=axes, epsilon=epsilon, name=ctx.name)]
    out = ops.layer_norm(x, axis=axes, epsilon=epsilon, name=f"{ctx.name}_norm")
    if params[0] is not None:
        out = ops.multiply(out, params[0], name=f"{ctx.name}_scale")
    if params[1] is not None:
        out = ops.add(out, params[1], name=ctx.name)
    return [out]


def _layer_norm_with_stats(ctx: LowerContext, x: Tensor, params: list[Tensor | None], axis: int,
                           epsilon: float) -> list[Tensor]:
    stats_shape = ctx.out_types[1].shape
    count = 1
    for d in ctx.out_types[0].shape[axis:]:
        count *= d
    reduce_vars = [te.reduce_axis((0, d), name=f"k{i}") for i, d in enumerate(ctx.out_types[0].shape[axis:])]

    def full_index(idx: tuple[Any, ...]) -> tuple[Any, ...]:
        return (*idx[:axis], *reduce_vars)

    total = te.compute(stats_shape, lambda *i: te.sum(x[full_index(i)], axis=reduce_vars), name=f"{ctx.name}_sum",
                       tag="comm_reduce")
    mean = te.compute(stats_shape, lambda *i: total[i] / float(count), name=f"{ctx.name}_mean", tag="elemwise")
    sq_vars = [te.reduce_axis((0, d), name=f"s{i}") for i, d in enumerate(ctx.out_types[0].shape[axis:])]

    def squares(*i: Any) -> Expr:
        value = x[(*i[:axis], *sq_vars)] - mean[i]
        return te.sum(value * value, axis=sq_vars)

    sqsum = te.compute(stats_shape, squares, name=f"{ctx.name}_sqsum", tag="comm_reduce")
    inv_std = te.compute(stats_shape, lambda *i: te.rsqrt(sqsum[i] / float(count) + epsilon), name=f"{ctx.name}_rstd",
                         tag="elemwise")
    scale, bias = params
    normalized_ndim = ctx.out_types[0].ndim - axis

    def param_index(p: Tensor, i: tuple[Any, ...]) -> tuple[Any, ...]:
        tail = i[len(i) - p.ndim:]
        return tuple(te.const(0) if ops.utils.as_int(p.shape[k]) == 1 else tail[k] for k in range(p.ndim))

    def body(*i: Any) -> Expr:
        stat = (*i[:axis], *([te.const(0)] * normalized_ndim))
        value = (x[i] - mean[stat]) * inv_std[stat]
        if scale is not None:
            value = value * scale[param_index(scale, i)]
        if bias is not None:
            value = value + bias[param_index(bias, i)]
        return value

    out = te.compute(ctx.out_types[0].shape, body, name=ctx.name, tag="injective")
    return [out, mean, inv_std]


def normalize_axis_int(axis: int, ndim: int) -> int:
    return axis + ndim if axis < 0 else axis


register_op("layer_norm", OpPattern.OPAQUE, _infer_layer_norm, _lower_layer_norm)


# rms_norm(x[, scale]) over the axes from `axis` to the last: x / sqrt(mean(x^2) + epsilon) * scale, with scale of the
# normalized axes' shape (the pass recognize_norms makes it from the operators exporters write for RMSNorm)
def _infer_rms_norm(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    require_float(ctx, x)
    axis = normalize_axis(ctx, ctx.attr("axis", -1), x.ndim)
    if ctx.has_input(1):
        same_dtype(ctx, [x, ctx.type(1)])
        if ctx.type(1).shape != x.shape[axis:]:
            raise ctx.error(f"scale of shape {ctx.type(1).shape} must have the normalized shape {x.shape[axis:]}")
    if float(ctx.attr("epsilon", 1e-6)) < 0:
        raise ctx.error(f"epsilon must be non-negative, got {ctx.attr('epsilon')}")
    return [x]


def _lower_rms_norm(ctx: LowerContext) -> list[Tensor]:
    x_type = ctx.types[0]
    assert x_type is not None
    axis = normalize_axis_int(int(ctx.attr("axis", -1)), x_type.ndim)
    scale = ctx.tensor(1) if ctx.has_input(1) else None
    return [ops.rms_norm(ctx.tensor(0), scale, axis=tuple(range(axis, x_type.ndim)),
                         epsilon=float(ctx.attr("epsilon", 1e-6)), name=ctx.name)]


register_op("rms_norm", OpPattern.OPAQUE, _infer_rms_norm, _lower_rms_norm)


# instance_norm(x, scale, bias): per (n, c) normalization over the spatial axes, then per-channel scale and bias
def _infer_instance_norm(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    require_float(ctx, x)
    if x.ndim < 3:
        raise ctx.error(f"input must have at least 3 dimensions, got {x}")
    for index in (1, 2):
        if ctx.type(index).shape != (x.shape[1],):
            raise ctx.error(f"input {index} has shape {ctx.type(index).shape}, expected ({x.shape[1]},)")
    return [x]


def _lower_instance_norm(ctx: LowerContext) -> list[Tensor]:
    x, scale, bias = ctx.tensor(0), ctx.tensor(1), ctx.tensor(2)
    axes = tuple(range(2, x.ndim))
    norm = ops.layer_norm(x, axis=axes, epsilon=float(ctx.attr("epsilon", 1e-5)), name=f"{ctx.name}_norm")
    out = te.compute(x.shape, lambda *i: norm[i] * scale[i[1]] + bias[i[1]], name=ctx.name, tag="broadcast")
    return [out]


register_op("instance_norm", OpPattern.OPAQUE, _infer_instance_norm, _lower_instance_norm)


# ---------------------------------------------------------------------------------------------------------------------
# lrn: y = x / (bias + alpha / size * sum_{window over channels} x^2) ^ beta
def _infer_lrn(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    require_float(ctx, x)
    if x.ndim < 3:
        raise ctx.error(f"input must have at least 3 dimensions, got {x}")
    if int(ctx.attr("size", 0)) <= 0:
        raise ctx.error(f"size must be positive, got {ctx.attr('size')!r}")
    return [x]


_LRN_UNROLLED_WINDOW = 16  # windows up to this size are summed term by term, in one element-wise kernel


def _lrn_value(value: Expr, square_sum: Expr, alpha: float, beta: float, bias: float, size: int) -> Expr:
    """``value / (bias + alpha / size * square_sum) ^ beta``."""
    base = square_sum * (alpha / size) + bias
    if beta == 0.75:  # AlexNet's, ZFNet's and GoogLeNet's: two square roots, exact to rounding
        root = te.sqrt(base)
        return value / (root * te.sqrt(root))
    if bias > 0 and alpha >= 0:  # base >= bias > 0: the power by the vectorized exp and log
        return value * te.exp(te.log(base) * -beta)
    return value / te.pow(base, const(beta, base.dtype))


def _lower_lrn(ctx: LowerContext) -> list[Tensor]:
    x = ctx.tensor(0)
    size = int(ctx.attr("size"))
    alpha, beta, bias = float(ctx.attr("alpha", 1e-4)), float(ctx.attr("beta", 0.75)), float(ctx.attr("bias", 1.0))
    channels = ctx.types[0].shape[1]  # type: ignore[union-attr]
    before = (size - 1) // 2

    def window_square(i: tuple[Any, ...], c: Any) -> Expr:
        """``x[c]^2``, 0 outside the channels. The read is clamped in bounds and its square capped at +inf inside,
        at 0 outside (a select of two constants vectorizes; a select of a read branches). A NaN read outside
        stays NaN, which is right: the clamped channel is in the window too."""
        cap = te.if_then_else(te.all(c >= 0, c < channels), const(float("inf"), x.dtype), const(0.0, x.dtype))
        value = x[(i[0], max_expr(min_expr(c, channels - 1), 0), *i[2:])]
        return te.min(value * value, cap)

    if size <= _LRN_UNROLLED_WINDOW:  # one element-wise kernel, vectorized along the rows
        def square_sum(*i: Any) -> Expr:
            total = window_square(i, i[1] - before)
            for k in range(1, size):
                total = total + window_square(i, i[1] - before + k)
            return total

        def body(*i: Any) -> Expr:
            return _lrn_value(x[i], square_sum(*i), alpha, beta, bias, size)

        return [te.compute(x.shape, body, name=ctx.name, tag="elemwise")]

    r = te.reduce_axis((0, size), name="r")
    total = te.compute(x.shape, lambda *i: te.sum(window_square(i, i[1] - before + r.var), axis=r),
                       name=f"{ctx.name}_sqsum", tag="comm_reduce")
    return [te.compute(x.shape, lambda *i: _lrn_value(x[i], total[i], alpha, beta, bias, size), name=ctx.name,
                       tag="elemwise")]


register_op("lrn", OpPattern.OPAQUE, _infer_lrn, _lower_lrn)
