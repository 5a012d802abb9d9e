"""Convolutions and pooling over any number of spatial dimensions (``tcomp.ops.spatial``), layout ``N, C, *S``.

- ``conv_nd(x, w, strides, pads, dilations, groups)``: what ``conv2d`` (the 2-D form with tuned schedules and the
  NCHW[x]c layout) does not cover: 3-D convolutions.
- ``conv_transpose(x, w, strides, pads, dilations, groups, output_padding)``: transposed convolutions of any rank,
  weights ``[C, O // groups, *K]`` as ONNX stores them.
- ``pool(x, kind, kernel, strides, pads, dilations, ceil_mode, count_include_pad, p)``: max, average and Lp pooling
  of any rank, with dilations (``pool2d`` is the 2-D max and average pooling without them).
- ``max_pool_indices(x, pooled, ...)``: the flat input index of each maximum of a ``pool`` of kind max (ONNX
  MaxPool's second output), ``storage_order`` 0 (row-major) or 1 (column-major).

``pads`` list the begins of every spatial dimension, then the ends.
"""

from __future__ import annotations

from tcomp.graph.ir import TensorType
from tcomp.graph.op import InferContext, LowerContext, OpPattern, register_op
from tcomp.graph.opdefs.common import int_attr, ints_attr, require_float, require_float_or_int32, same_dtype
from tcomp.ops import spatial
from tcomp.te.tensor import Tensor


def _spatial_attrs(ctx: InferContext, rank: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    strides, dilations = ints_attr(ctx, "strides", rank), ints_attr(ctx, "dilations", rank)
    pads = ints_attr(ctx, "pads", 2 * rank)
    if min(strides) <= 0 or min(dilations) <= 0 or min(pads) < 0:
        raise ctx.error(f"strides {strides} and dilations {dilations} must be positive, pads {pads} non-negative")
    return strides, pads, dilations


def _rank(ctx: InferContext, x: TensorType) -> int:
    if x.ndim < 3:
        raise ctx.error(f"expects data with at least one spatial dimension (N, C, ...), got {x}")
    return x.ndim - 2


def _conv_types(ctx: InferContext) -> tuple[TensorType, TensorType, int]:
    """The data and weight types of a (transposed) convolution, checked, and the spatial rank."""
    x, w = ctx.type(0), ctx.type(1)
    require_float_or_int32(ctx, x)
    same_dtype(ctx, [x, w])
    rank = _rank(ctx, x)
    if w.ndim != x.ndim:
        raise ctx.error(f"weight {w} does not match the data {x}")
    return x, w, rank


# ---------------------------------------------------------------------------------------------------------------------
def _infer_conv_nd(ctx: InferContext) -> list[TensorType]:
    x, w, rank = _conv_types(ctx)
    strides, pads, dilations = _spatial_attrs(ctx, rank)
    groups = int_attr(ctx, "groups", 1)
    if groups <= 0 or x.shape[1] % groups or w.shape[0] % groups or w.shape[1] * groups != x.shape[1]:
        raise ctx.error(f"weight {w.shape} does not match {x.shape[1]} input channels in {groups} groups")
    out = [spatial.conv_output_size(x.shape[2 + i], w.shape[2 + i], strides[i], pads[i] + pads[rank + i],
                                    dilations[i]) for i in range(rank)]
    if min(out) <= 0:
        raise ctx.error(f"the dilated kernel {w.shape[2:]} is larger than the padded input {x.shape[2:]}")
    return [TensorType((x.shape[0], w.shape[0], *out), x.dtype)]


def _lower_conv_nd(ctx: LowerContext) -> list[Tensor]:
    return [spatial.conv_nd(ctx.tensor(0), ctx.tensor(1), ctx.attr("strides"), ctx.attr("pads"),
                            ctx.attr("dilations"), int(ctx.attr("groups", 1)), name=ctx.name)]


register_op("conv_nd", OpPattern.OUT_ELEMWISE_FUSABLE, _infer_conv_nd, _lower_conv_nd)


# ---------------------------------------------------------------------------------------------------------------------
def _infer_conv_transpose(ctx: InferContext) -> list[TensorType]:
    x, w, rank = _conv_types(ctx)
    strides, pads, dilations = _spatial_attrs(ctx, rank)
    output_padding = ints_attr(ctx, "output_padding", rank)
    groups = int_attr(ctx, "groups", 1)
    if min(output_padding) < 0 or groups <= 0 or w.shape[0] != x.shape[1] or x.shape[1] % groups:
        raise ctx.error(f"weight {w.shape} does not match {x.shape[1]} input channels in {groups} groups "
                        f"(output_padding {output_padding} must be non-negative)")
    out = [spatial.conv_transpose_output_size(x.shape[2 + i], w.shape[2 + i], strides[i], pads[i] + pads[rank + i],
                                              dilations[i], output_padding[i]) for i in range(rank)]
    if min(out) <= 0:
        raise ctx.error(f"the output would be empty ({out})")
    return [TensorType((x.shape[0], w.shape[1] * groups, *out), x.dtype)]


def _lower_conv_transpose(ctx: LowerContext) -> list[Tensor]:
    return [spatial.conv_transpose_nd(ctx.tensor(0), ctx.tensor(1), ctx.attr("strides"), ctx.attr("pads"),
                                      ctx.attr("dilations"), ctx.attr("output_padding"),
                                      int(ctx.attr("groups", 1)), name=ctx.name)]


register_op("conv_transpose", OpPattern.OUT_ELEMWISE_FUSABLE, _infer_conv_transpose, _lower_conv_transpose)


# ---------------------------------------------------------------------------------------------------------------------
def _infer_pool(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    rank = _rank(ctx, x)
    kind = ctx.attr("kind")
    if kind not in ("max", "avg", "lp"):
        raise ctx.error(f"kind must be max, avg or lp, got {kind!r}")
    if kind != "max":
        require_float(ctx, x)
    if kind == "lp" and int_attr(ctx, "p", 2) <= 0:
        raise ctx.error(f"p must be positive, got {ctx.attr('p')}")
    kernel = ints_attr(ctx, "kernel", rank)
    strides, pads, dilations = _spatial_attrs(ctx, rank)
    if min(kernel) <= 0:
        raise ctx.error(f"kernel {kernel} must be positive")
    ceil_mode = bool(ctx.attr("ceil_mode", False))
    out = [spatial.pool_output_size(x.shape[2 + i], kernel[i], strides[i], pads[i], pads[rank + i], dilations[i],
                                    ceil_mode) for i in range(rank)]
    if min(out) <= 0:
        raise ctx.error(f"the window {kernel} is larger than the padded input {x.shape[2:]}")
    return [TensorType((*x.shape[:2], *out), x.dtype)]


def _lower_pool(ctx: LowerContext) -> list[Tensor]:
    return [spatial.pool_nd(ctx.tensor(0), ctx.attr("kind"), ctx.attr("kernel"), ctx.attr("strides"),
                            ctx.attr("pads"), ctx.attr("dilations"), bool(ctx.attr("ceil_mode", False)),
                            bool(ctx.attr("count_include_pad", False)), int(ctx.attr("p", 2)), name=ctx.name)]


register_op("pool", OpPattern.OUT_ELEMWISE_FUSABLE, _infer_pool, _lower_pool)


def _infer_max_pool_indices(ctx: InferContext) -> list[TensorType]:
    x, pooled = ctx.type(0), ctx.type(1)
    if ctx.attr("kind", "max") != "max":
        raise ctx.error("indices exist for max pooling only")
    [expected] = _infer_pool(ctx)
    if pooled != expected:
        raise ctx.error(f"input 1 is {pooled}, the max pooling of {x} is {expected}")
    if int_attr(ctx, "storage_order", 0) not in (0, 1):
        raise ctx.error(f"storage_order must be 0 or 1, got {ctx.attr('storage_order')}")
    return [TensorType(expected.shape, "int64")]


def _lower_max_pool_indices(ctx: LowerContext) -> list[Tensor]:
    return [spatial.max_pool_indices(ctx.tensor(0), ctx.tensor(1), ctx.attr("kernel"), ctx.attr("strides"),
                                     ctx.attr("pads"), ctx.attr("dilations"), bool(ctx.attr("ceil_mode", False)),
                                     int(ctx.attr("storage_order", 0)), name=ctx.name)]


register_op("max_pool_indices", OpPattern.OPAQUE, _infer_max_pool_indices, _lower_max_pool_indices)
