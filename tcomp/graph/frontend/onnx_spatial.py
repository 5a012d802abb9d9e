"""ONNX converters for spatial rearrangements: ``AffineGrid``, ``Col2Im``, ``MaxUnpool``, ``MaxRoiPool``,
``DeformConv`` and ``Det``, each composed from graph IR operators.

- ``AffineGrid`` (2-D and 3-D): the sampling grid ``[N, (D,) H, W, 2 or 3]`` of ``GridSample`` for affine matrices
  ``theta`` ``[N, 2, 3]`` or ``[N, 3, 4]``: each output point's normalized coordinates ``(x, y(, z), 1)`` times
  ``theta`` transposed, a coordinate ``i`` of an axis of ``n`` points being ``-1 + 2 i / (n - 1)`` with
  ``align_corners`` (0 for ``n = 1``), else ``(2 i + 1) / n - 1``. ``size`` must be known at compile time; the
  coordinates are a constant, the kernel one batched ``matmul``. (ONNX defines the operator by a function too,
  whose ``Squeeze`` without axes breaks for a batch of one.)

- ``Col2Im`` sums overlapping blocks back into an ``[N, C, *image_shape]`` image (PyTorch's ``fold``, any rank):
  block ``l`` (in row-major order over the grid of ``conv_output_size`` blocks) at kernel offset ``k`` lands on
  image pixel ``l * stride - pad_begin + k * dilation``. ``image_shape`` and ``block_shape`` must be known at compile
  time; the converter computes, per image pixel and kernel offset, the column that lands there (or a zero column
  when none does), so the kernels are one gather and one sum over kernel offsets.
- ``MaxUnpool`` writes each value of ``X`` at its flat index ``I`` into a zero tensor of the shape pooling inverts,
  ``(in - 1) * stride - pad_begin - pad_end + kernel``, as onnx's reference does; an ``output_shape`` (known at
  compile time, no smaller in any dimension) pads that tensor with zeros at the ends. The indices are read at run
  time (a ``scatter_elements`` over the flat output, whose cost grows with the product of both sizes).
- ``MaxRoiPool`` (Caffe's ROI pooling, as onnxruntime computes it): region ``[batch, x1, y1, x2, y2]`` scaled by
  ``spatial_scale`` and rounded (half away from zero), at least one pixel high and wide, cut into
  ``pooled_shape`` bins (``floor`` to ``ceil`` of each bin's fractional bounds, clipped to the image); each output
  is the maximum over its bin, 0 for an empty bin. The regions must be known at compile time (specialized on when
  graph inputs decide them), as ``RoiAlign``'s are.
- ``DeformConv`` (2-D): each kernel tap of each output pixel samples the input at its regular position plus the
  run-time ``offset`` (per offset group), bilinearly with zeros outside the image (onnx's reference: GridSample with
  ``align_corners=1``), scaled by the optional ``mask``; the samples times the weight (per ``group``) is a
  ``matmul``, plus the optional bias.
- ``Det`` of ``[..., M, M]``: folded with numpy for a constant input, else Gaussian elimination with partial
  pivoting unrolled into graph operators (``M`` at most ``MAX_DET_SIZE``): per column, the row of largest magnitude
  is the pivot (a swap flips the sign), the rows below subtract their multiple of it, and the determinant is the
  signed product of the pivots. A zero pivot column gives 0.
"""

from __future__ import annotations

import math

import numpy as np
import onnx

from tcomp.graph.frontend.onnx_builder import Builder
from tcomp.graph.frontend.onnx_common import Attrs, const_ints, converts, optional, reshape, scalar_param
from tcomp.graph.frontend.onnx_detection import feature_map
from tcomp.graph.infer import check_size
from tcomp.graph.ir import TensorType
from tcomp.ir import dtype as dt
from tcomp.ops.conv import conv_output_size

MAX_DET_SIZE = 8  # the largest matrix a run-time Det unrolls
MAX_ROI_BINS = 1 << 20  # the most bins (regions x pooled_shape) MaxRoiPool lists the pixels of while compiling


def _window(b: Builder, a: Attrs, rank: int, keys: tuple[str, ...]) -> dict[str, list[int]]:
    """The node's ``strides`` / ``dilations`` (positive, 1 by default) and ``pads`` (non-negative, begins then
    ends, 0 by default) for ``rank`` spatial dimensions."""
    found: dict[str, list[int]] = {}
    for key in keys:
        length, default, low = (2 * rank, 0, 0) if key == "pads" else (rank, 1, 1)
        values = a.ints(key, [default] * length) or []
        if len(values) != length or min(values, default=low) < low:
            kind = "non-negative" if low == 0 else "positive"
            raise b.error(f"attribute {key} {values} must be {length} {kind} ints")
        found[key] = values
    return found


def _shape_input(b: Builder, name: str, what: str, rank: int | None) -> list[int]:
    """A 1-D shape operand known at compile time, of ``rank`` positive entries (any number when None)."""
    values = const_ints(b, name, what)
    if (rank is not None and len(values) != rank) or not values or min(values) < 1:
        count = f"{rank}" if rank is not None else "one or more"
        raise b.error(f"{what} {values} must hold {count} positive sizes")
    return values


# ---------------------------------------------------------------------------------------------------------------------
def _normalized_coordinates(points: int, align_corners: bool) -> np.ndarray:
    if align_corners:
        return np.linspace(-1.0, 1.0, points) if points > 1 else np.zeros(1)
    return (2 * np.arange(points) + 1) / points - 1


def affine_grid_points(spatial: list[int], align_corners: bool) -> np.ndarray:
    """``[prod(spatial), len(spatial) + 1]``: per output point (row-major over ``(D,) H, W``) its normalized
    coordinates ``x, y(, z)`` (``x`` along the last axis) and 1."""
    axes = [_normalized_coordinates(points, align_corners) for points in spatial]
    mesh = np.meshgrid(*axes, indexing="ij")
    coordinates = [m.reshape(-1) for m in reversed(mesh)]  # x first
    return np.stack([*coordinates, np.ones(math.prod(spatial))], axis=1)


@converts("AffineGrid", (20,))
def _affine_grid(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    theta = b.type(ins[0])
    size = _shape_input(b, ins[1], "size", None)
    if len(size) not in (4, 5):
        raise b.error(f"size {size} must be [N, C, H, W] or [N, C, D, H, W]")
    dims = len(size) - 2
    if theta.shape != (size[0], dims, dims + 1) or not dt.is_float(theta.dtype):
        raise b.error(f"theta {theta} must be floats of shape [{size[0]}, {dims}, {dims + 1}] for size {size}")
    align_corners = bool(a.int("align_corners", 0))
    spatial = size[2:]
    check_size(TensorType((math.prod(spatial), dims + 1), theta.dtype), f"node {b.node_name}: the grid")
    points = affine_grid_points(spatial, align_corners).astype(dt.to_numpy(theta.dtype))
    base = b.param(points.reshape(1, *points.shape), f"{b.node_name}/points")
    transposed = b.add1("transpose", [ins[0]], perm=(0, 2, 1))
    grid = b.add1("matmul", [base, transposed])
    return [b.add1("reshape", [grid], output=node.output[0], shape=(size[0], *spatial, dims))]


# ---------------------------------------------------------------------------------------------------------------------
def col2im_columns(image: list[int], block: list[int], blocks: list[int], window: dict[str, list[int]]) -> np.ndarray:
    """``[prod(image), prod(block)]``: per image pixel and kernel offset, the column (``offset * L + block``, with
    ``L = prod(blocks)``) that lands on the pixel, or ``prod(block) * L`` (a zero column) where none does."""
    rank = len(image)
    pads, strides, dilations = window["pads"], window["strides"], window["dilations"]
    column = np.zeros((1,) * 2 * rank, np.int64)
    kernel = np.zeros((1,) * 2 * rank, np.int64)
    valid = np.ones((1,) * 2 * rank, bool)
    for axis in range(rank):
        shape = [1] * 2 * rank
        shape[axis], shape[rank + axis] = image[axis], block[axis]
        taps = np.arange(block[axis])[None, :]
        start = np.arange(image[axis])[:, None] + pads[axis] - taps * dilations[axis]
        index = start // strides[axis]
        hit = (start % strides[axis] == 0) & (index >= 0) & (index < blocks[axis])
        column = column * blocks[axis] + index.reshape(shape)
        kernel = kernel * block[axis] + np.broadcast_to(taps, (image[axis], block[axis])).reshape(shape)
        valid = valid & hit.reshape(shape)
    total = math.prod(blocks)
    flat = np.where(valid, kernel * total + column, math.prod(block) * total)
    return flat.reshape(math.prod(image), math.prod(block))


@converts("Col2Im", (18,))
def _col2im(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    xt = b.type(ins[0])
    if xt.ndim != 3:
        raise b.error(f"input must be [N, C * prod(block_shape), L], got {xt}")
    image = _shape_input(b, ins[1], "image_shape", None)
    block = _shape_input(b, ins[2], "block_shape", len(image))
    window = _window(b, a, len(image), ("dilations", "pads", "strides"))
    batch, rows, length = xt.shape
    kernel = math.prod(block)
    if rows % kernel:
        raise b.error(f"input dimension 1 ({rows}) is not a multiple of prod(block_shape) = {kernel}")
    pads = window["pads"]
    blocks = [conv_output_size(size, k, s, pads[axis] + pads[len(image) + axis], d)
              for axis, (size, k, s, d) in enumerate(zip(image, block, window["strides"], window["dilations"]))]
    if min(blocks) < 1 or math.prod(blocks) != length:
        raise b.error(f"the blocks of image_shape {image} (block_shape {block}, {window}) are a grid of {blocks}, "
                      f"which does not match the input's {length} blocks")
    channels = rows // kernel
    columns = col2im_columns(image, block, blocks, window)
    flat = b.add1("reshape", [ins[0]], shape=(batch, channels, kernel * length))
    padded = b.add1("pad", [flat], pads=(0, 0, 0, 0, 0, 1), mode="constant", value=0)
    taken = b.add1("take", [padded, b.param(columns, f"{b.node_name}/columns")], axis=2)
    summed = b.add1("sum", [taken], axes=(3,), keepdims=False)
    return [b.add1("reshape", [summed], output=node.output[0], shape=(batch, channels, *image))]


# ---------------------------------------------------------------------------------------------------------------------
@converts("MaxUnpool", (9, 11, 22))
def _max_unpool(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    x, indices = ins[0], ins[1]
    xt, it = b.type(x), b.type(indices)
    rank = xt.ndim - 2
    if rank < 1:
        raise b.error(f"X must be [N, C, D1, ...], got {xt}")
    if it.shape != xt.shape or not dt.is_int(it.dtype):
        raise b.error(f"the indices {it} must be integers of X's shape {list(xt.shape)}")
    kernel = a.ints("kernel_shape", required=True) or []
    if len(kernel) != rank or min(kernel) < 1:
        raise b.error(f"kernel_shape {kernel} must be {rank} positive sizes")
    window = _window(b, a, rank, ("pads", "strides"))
    pads, strides = window["pads"], window["strides"]
    spatial = [(size - 1) * s - pads[axis] - pads[rank + axis] + k
               for axis, (size, k, s) in enumerate(zip(xt.shape[2:], kernel, strides))]
    if min(spatial) < 1:
        raise b.error(f"the unpooled spatial shape {spatial} is empty")
    unpooled = (*xt.shape[:2], *spatial)
    shape_name = optional(ins, 2)
    shape = _shape_input(b, shape_name, "output_shape", xt.ndim) if shape_name else list(unpooled)
    if any(o < u for o, u in zip(shape, unpooled)):
        raise b.error(f"output_shape {shape} is smaller than the unpooled shape {list(unpooled)}")
    total = math.prod(unpooled)
    zero = scalar_param(b, 0, xt.dtype, f"{b.node_name}/zero")
    zeros = b.add1("broadcast_to", [zero], shape=(total,))
    flat_indices = b.add1("reshape", [indices], shape=(xt.numel,))
    values = b.add1("reshape", [x], shape=(xt.numel,))
    scattered = b.add1("scatter_elements", [zeros, flat_indices, values], axis=0, reduction="none")
    if tuple(shape) == unpooled:
        return [b.add1("reshape", [scattered], output=node.output[0], shape=unpooled)]
    result = b.add1("reshape", [scattered], shape=unpooled)
    ends = tuple(o - u for o, u in zip(shape, unpooled))
    return [b.add1("pad", [result], output=node.output[0], pads=(0,) * len(ends) + ends, mode="constant",
                   value=0)]


# ---------------------------------------------------------------------------------------------------------------------
def roi_pool_bins(rois: np.ndarray, height: int, width: int, pooled: tuple[int, int],
                  scale: float) -> tuple[np.ndarray, np.ndarray]:
    """``[regions * bins, samples]`` flat positions in ``[batch, height, width]`` of each bin's pixels (the first
    repeated to fill the row), and the ``[regions * bins]`` mask of non-empty bins (see the module docstring)."""
    ftype = rois.dtype.type if rois.dtype.kind == "f" else np.float64
    per_bin: list[np.ndarray] = []
    for roi in rois:
        corners = roi[1:].astype(ftype) * ftype(scale)
        start_w, start_h, end_w, end_h = (int(c) for c in np.sign(corners) * np.floor(np.abs(corners) + 0.5))
        bin_h = ftype(max(end_h - start_h + 1, 1)) / ftype(pooled[0])
        bin_w = ftype(max(end_w - start_w + 1, 1)) / ftype(pooled[1])
        base = int(roi[0]) * height * width
        for ph in range(pooled[0]):
            h0 = min(max(int(np.floor(ph * bin_h)) + start_h, 0), height)
            h1 = min(max(int(np.ceil((ph + 1) * bin_h)) + start_h, 0), height)
            for pw in range(pooled[1]):
                w0 = min(max(int(np.floor(pw * bin_w)) + start_w, 0), width)
                w1 = min(max(int(np.ceil((pw + 1) * bin_w)) + start_w, 0), width)
                hs, ws = np.meshgrid(np.arange(h0, h1), np.arange(w0, w1), indexing="ij")
                per_bin.append(base + (hs * width + ws).reshape(-1))
    samples = max(len(p) for p in per_bin)
    check_size(TensorType((len(per_bin), max(samples, 1)), "int64"), "the table of the bins' pixels")
    positions = np.zeros((len(per_bin), max(samples, 1)), np.int64)
    filled = np.array([len(p) > 0 for p in per_bin])
    for row, found in enumerate(per_bin):
        if len(found):
            positions[row] = found[0]
            positions[row, :len(found)] = found
    return positions, filled


@converts("MaxRoiPool", (1, 22))
def _max_roi_pool(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    x = ins[0]
    xt = b.type(x)
    batches, channels, height, width = feature_map(b, x)
    rois = b.require_const(ins[1], "the regions (the bins are computed from them while compiling)")
    if rois.ndim != 2 or rois.shape[1] != 5 or rois.shape[0] < 1:
        raise b.error(f"rois {list(rois.shape)} must be [regions, 5] rows [batch, x1, y1, x2, y2]")
    if not np.isfinite(rois).all() or rois[:, 0].min() < 0 or rois[:, 0].max() >= batches:
        raise b.error(f"the regions' batch indices {rois[:8, 0].tolist()} must be in [0, {batches}) and the "
                      "corners finite")
    pooled = a.ints("pooled_shape", required=True) or []
    if len(pooled) != 2 or min(pooled) < 1:
        raise b.error(f"pooled_shape {pooled} must be two positive sizes")
    bins = len(rois) * pooled[0] * pooled[1]
    if bins > MAX_ROI_BINS:
        raise b.error(f"{len(rois)} regions of {pooled[0]} x {pooled[1]} bins are {bins} bins, more than the "
                      f"{MAX_ROI_BINS} whose pixels are listed while compiling")
    positions, filled = roi_pool_bins(rois, height, width, (pooled[0], pooled[1]), a.float("spatial_scale", 1.0))
    cells, samples = positions.shape
    rows = b.add1("reshape", [b.add1("transpose", [x], perm=(0, 2, 3, 1))], shape=(batches * height * width, channels))
    taken = b.add1("take", [rows, b.param(positions.reshape(-1), f"{b.node_name}/positions")], axis=0)
    binned = b.add1("reshape", [taken], shape=(cells, samples, channels))
    pooled_max = b.add1("max", [binned], axes=(1,), keepdims=False)
    if not filled.all():
        mask = b.param(filled.reshape(cells, 1), f"{b.node_name}/filled")
        pooled_max = b.add1("where", [mask, pooled_max, scalar_param(b, 0, xt.dtype, f"{b.node_name}/zero")])
    grid = b.add1("reshape", [pooled_max], shape=(len(rois), pooled[0], pooled[1], channels))
    return [b.add1("transpose", [grid], output=node.output[0], perm=(0, 3, 1, 2))]


# ---------------------------------------------------------------------------------------------------------------------
def _bilinear_corners(b: Builder, y: str, x: str, height: int, width: int) -> tuple[str, str]:
    """The flat positions (int64, clipped into the image) and weights (0 for a corner outside the image) of the
    four bilinear corners of the sample points ``y``, ``x`` (float tensors ``[..., L]`` of one shape), each
    ``[..., 4 * L]``: the corners ``(low y, low x), (low y, high x), (high y, low x), (high y, high x)`` in turn."""
    dtype = b.type(y).dtype
    one = scalar_param(b, 1, dtype, f"{b.node_name}/one")
    row = scalar_param(b, width, dtype, f"{b.node_name}/width")
    low_y, low_x = b.add1("floor", [y]), b.add1("floor", [x])
    frac_y, frac_x = b.add1("subtract", [y, low_y]), b.add1("subtract", [x, low_x])
    high_y, high_x = b.add1("add", [low_y, one]), b.add1("add", [low_x, one])
    rest_y, rest_x = b.add1("subtract", [one, frac_y]), b.add1("subtract", [one, frac_x])
    positions, weights = [], []
    for corner_y, weight_y in ((low_y, rest_y), (high_y, frac_y)):
        for corner_x, weight_x in ((low_x, rest_x), (high_x, frac_x)):
            bounded_y = b.add1("clip", [corner_y], min=0.0, max=float(height - 1))
            bounded_x = b.add1("clip", [corner_x], min=0.0, max=float(width - 1))
            inside_y = b.add1("cast", [b.add1("equal", [corner_y, bounded_y])], dtype=dtype)
            inside_x = b.add1("cast", [b.add1("equal", [corner_x, bounded_x])], dtype=dtype)
            weight = b.add1("multiply", [b.add1("multiply", [weight_y, weight_x]),
                                         b.add1("multiply", [inside_y, inside_x])])
            flat = b.add1("add", [b.add1("multiply", [bounded_y, row]), bounded_x])
            positions.append(b.add1("cast", [flat], dtype="int64"))
            weights.append(weight)
    last = b.type(y).ndim - 1
    return b.add1("concat", positions, axis=last), b.add1("concat", weights, axis=last)


def _deform_geometry(b: Builder, a: Attrs, xt_shape: tuple[int, ...], wt_shape: tuple[int, ...],
                     out_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The ``[K * P]`` regular sample positions (rows, columns) of each kernel tap and output pixel, checked
    against the attributes and the offset's output size."""
    kernel = list(wt_shape[2:])
    if a.has("kernel_shape") and (a.ints("kernel_shape") or []) != kernel:
        raise b.error(f"kernel_shape {a.ints('kernel_shape')} differs from the weight's {kernel}")
    window = _window(b, a, 2, ("dilations", "pads", "strides"))
    pads, strides, dilations = window["pads"], window["strides"], window["dilations"]
    expected = tuple(conv_output_size(size, k, s, pads[axis] + pads[2 + axis], d)
                     for axis, (size, k, s, d) in enumerate(zip(xt_shape[2:], kernel, strides, dilations)))
    if expected != out_hw or min(expected) < 1:
        raise b.error(f"the offset's output size {list(out_hw)} differs from the convolution's {list(expected)}")
    tap_y, tap_x, out_y, out_x = np.meshgrid(np.arange(kernel[0]), np.arange(kernel[1]), np.arange(out_hw[0]),
                                             np.arange(out_hw[1]), indexing="ij")
    rows = out_y * strides[0] - pads[0] + tap_y * dilations[0]
    columns = out_x * strides[1] - pads[1] + tap_x * dilations[1]
    return rows.reshape(-1), columns.reshape(-1)


@converts("DeformConv", (19, 22))
def _deform_conv(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    x, w, offset = ins[0], ins[1], ins[2]
    xt, wt, ot = b.type(x), b.type(w), b.type(offset)
    if xt.ndim != 4 or wt.ndim != 4 or ot.ndim != 4:
        raise b.error(f"X {xt}, W {wt} and offset {ot} must be 4-D (only 2-D deformable convolutions are "
                      "supported)")
    if not dt.is_float(xt.dtype) or wt.dtype != xt.dtype or ot.dtype != xt.dtype:
        raise b.error(f"X, W and offset must have one float type, got {xt.dtype}, {wt.dtype}, {ot.dtype}")
    batch, channels, height, width = xt.shape
    out_channels, group_channels = wt.shape[:2]
    groups, offset_groups = a.int("group", 1), a.int("offset_group", 1)
    if groups < 1 or offset_groups < 1 or channels != groups * group_channels or out_channels % groups \
            or channels % offset_groups:
        raise b.error(f"group {groups} and offset_group {offset_groups} must divide the {channels} input "
                      f"channels (W {list(wt.shape)} has {group_channels} per group) and the output channels")
    taps = wt.shape[2] * wt.shape[3]
    out_hw = (ot.shape[2], ot.shape[3])
    pixels = out_hw[0] * out_hw[1]
    if ot.shape[:2] != (batch, offset_groups * taps * 2):
        raise b.error(f"offset {ot} must be [{batch}, {offset_groups * taps * 2}, oH, oW]")
    rows, columns = _deform_geometry(b, a, xt.shape, wt.shape, out_hw)
    numpy_dtype = dt.to_numpy(xt.dtype)
    split = b.add1("reshape", [offset], shape=(batch, offset_groups, taps, 2, pixels))
    points = []
    for axis, regular in ((0, rows), (1, columns)):
        delta = b.add1("strided_slice", [split], begin=(axis,), end=(axis + 1,), strides=(1,), axes=(3,))
        delta = b.add1("reshape", [delta], shape=(batch, offset_groups, taps * pixels))
        points.append(b.add1("add", [delta, b.param(regular.astype(numpy_dtype), f"{b.node_name}/regular")]))
    positions, weights = _bilinear_corners(b, points[0], points[1], height, width)
    weights = b.add1("reshape", [weights], shape=(batch, offset_groups, 4, taps * pixels, 1))
    mask = optional(ins, 4)
    if mask:
        if b.type(mask).shape != (batch, offset_groups * taps, *out_hw) or b.type(mask).dtype != xt.dtype:
            raise b.error(f"mask {b.type(mask)} must be [{batch}, {offset_groups * taps}, {out_hw[0]}, {out_hw[1]}]"
                          f" of {xt.dtype}")
        scale = b.add1("reshape", [mask], shape=(batch, offset_groups, 1, taps * pixels, 1))
        weights = b.add1("multiply", [weights, scale])
    per_group = channels // offset_groups
    image = b.add1("reshape", [x], shape=(batch, offset_groups, per_group, height * width))
    image = b.add1("transpose", [image], perm=(0, 1, 3, 2))
    where = b.add1("reshape", [positions], shape=(batch, offset_groups, 4 * taps * pixels, 1))
    corners = b.add1("gather_nd", [image, where], batch_dims=2)
    corners = b.add1("reshape", [corners], shape=(batch, offset_groups, 4, taps * pixels, per_group))
    samples = b.add1("sum", [b.add1("multiply", [corners, weights])], axes=(2,), keepdims=False)
    samples = b.add1("reshape", [samples], shape=(batch, offset_groups, taps, pixels, per_group))
    samples = b.add1("transpose", [samples], perm=(0, 1, 4, 2, 3))
    samples = b.add1("reshape", [samples], shape=(batch, groups, group_channels * taps, pixels))
    kernel = reshape(b, w, (groups, out_channels // groups, group_channels * taps))
    product = b.add1("matmul", [kernel, samples])
    bias = optional(ins, 3)
    result = b.add1("reshape", [product], output=None if bias else node.output[0],
                    shape=(batch, out_channels, *out_hw))
    if not bias:
        return [result]
    if b.type(bias).shape != (out_channels,):
        raise b.error(f"B {b.type(bias)} must be [{out_channels}]")
    return [b.add1("add", [result, reshape(b, bias, (1, out_channels, 1, 1))], output=node.output[0])]


# ---------------------------------------------------------------------------------------------------------------------
def _columns(b: Builder, name: str, axis: int, start: int, end: int) -> str:
    return b.add1("strided_slice", [name], begin=(start,), end=(end,), strides=(1,), axes=(axis,))


def _eliminate(b: Builder, matrices: str, size: int, dtype: str) -> str:
    """The ``[B, 1, 1]`` determinants of ``[B, size, size]`` matrices (see the module docstring)."""
    zero = scalar_param(b, 0, dtype, f"{b.node_name}/zero")
    one = scalar_param(b, 1, dtype, f"{b.node_name}/one")
    minus_one = scalar_param(b, -1, dtype, f"{b.node_name}/minus_one")
    first = scalar_param(b, 0, "int64", f"{b.node_name}/first")
    det = ""
    rest = matrices
    for m in range(size, 0, -1):
        column = _columns(b, rest, 2, 0, 1)
        pivot_at = b.add1("argmax", [b.add1("abs", [column])], axis=1, keepdims=1, select_last_index=0)
        rows = b.param(np.arange(m, dtype=np.int64).reshape(1, m, 1), f"{b.node_name}/rows")
        hot = b.add1("equal", [rows, pivot_at])
        pivot_row = b.add1("sum", [b.add1("where", [hot, rest, zero])], axes=(1,), keepdims=True)
        pivot = _columns(b, pivot_row, 2, 0, 1)
        sign = b.add1("where", [b.add1("equal", [pivot_at, first]), one, minus_one])
        factor = b.add1("multiply", [pivot, sign])
        det = b.add1("multiply", [det, factor]) if det else factor
        if m == 1:
            break
        below = b.add1("where", [_columns(b, hot, 1, 1, m), _columns(b, rest, 1, 0, 1), _columns(b, rest, 1, 1, m)])
        safe = b.add1("where", [b.add1("equal", [pivot, zero]), one, pivot])
        ratio = b.add1("divide", [_columns(b, below, 2, 0, 1), safe])
        update = b.add1("multiply", [ratio, _columns(b, pivot_row, 2, 1, m)])
        rest = b.add1("subtract", [_columns(b, below, 2, 1, m), update])
    return det


@converts("Det", (11, 22))
def _det(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    xt = b.type(ins[0])
    if xt.ndim < 2 or xt.shape[-1] != xt.shape[-2] or xt.shape[-1] < 1:
        raise b.error(f"input must be [..., M, M] square matrices, got {xt}")
    if not dt.is_float(xt.dtype):
        raise b.error(f"input must be a float tensor, got {xt.dtype}")
    size, batch = xt.shape[-1], xt.shape[:-2]
    value = b.const(ins[0])
    if value is not None:
        return [b.param(np.asarray(np.linalg.det(value), dtype=value.dtype), node.output[0])]
    if size > MAX_DET_SIZE:
        raise b.error(f"{size} x {size} matrices are larger than the {MAX_DET_SIZE} x {MAX_DET_SIZE} a run-time "
                      "Det unrolls")
    matrices = reshape(b, ins[0], (math.prod(batch), size, size))
    det = _eliminate(b, matrices, size, xt.dtype)
    return [b.add1("reshape", [det], output=node.output[0], shape=batch)]
