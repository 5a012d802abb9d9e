"""Blocked-layout graph operators (used by ``passes/alter_layout.py``):

- ``layout_transform(src, dst)``: the tensor rearranged between layouts such as ``NCHW`` and ``NCHW8c`` or ``OIHW``
  and ``OIHW8i8o`` (``tcomp.ops.nchwc.layout_transform``);
- ``conv2d_nchwc(strides, pads, dilations, groups=1)``: data ``NCHW{ic}c``, kernel ``OIHW{ic}i{oc}o`` (of the
  ``[O, C // groups, KH, KW]`` kernel) -> ``NCHW{oc}c`` (``tcomp.ops.nchwc.conv2d_nchwc``);
- ``depthwise_conv2d_nchwc(strides, pads, dilations, pad_value=0)``: data ``NCHW{b}c``, kernel ``OIHW1i{b}o`` (from
  ``[C, 1, KH, KW]``) -> ``NCHW{b}c`` of the kernel's type (``tcomp.ops.nchwc.depthwise_conv2d_nchwc``); uint8 data
  is converted as it is read and padded with ``pad_value``.

- ``winograd_kernel(tile, ic_block, oc_block)``: an ``OIHW`` 3x3 kernel transformed for F(tile x tile, 3 x 3) ->
  ``[a, a, O // oc, I // ic, ic, oc]`` (``tcomp.ops.winograd.winograd_kernel``; a constant, folded at compile time);
- ``conv2d_winograd_nchwc(pads, tile)``: a 3x3, stride-1 convolution of ``NCHW{ic}c`` data by such a kernel ->
  ``NCHW{oc}c`` (``tcomp.ops.winograd.conv2d_winograd_nchwc``; ``passes/winograd.py`` makes both).
- ``max_pool2d_nchwc(kernel, strides, pads, ceil_mode)``: max pooling of ``NCHW{b}c`` data.
- ``channel_shuffle(groups)``: ShuffleNet's channel shuffle (ONNX writes it ``Reshape [N, g, C/g, H, W] ->
  Transpose (0, 2, 1, 3, 4) -> Reshape [N, C, H, W]``) of NCHW or ``NCHW{b}c`` data: output channel ``c`` is input
  channel ``shuffle_source(c, C, groups)`` (``passes/channel_shuffle.py`` makes it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tcomp import te
from tcomp.graph.ir import TensorType
from tcomp.graph.op import InferContext, LowerContext, OpPattern, register_op
from tcomp.graph.opdefs.common import conv2d_output_hw, ints_attr, require_float
from tcomp.ir import dtype as dt
from tcomp.ir.expr import Expr
from tcomp.ops import pad
from tcomp.ops.nchwc import Layout, conv2d_nchwc, depthwise_conv2d_nchwc, layout_transform
from tcomp.ops.pool import POOL_WINDOW, pool2d_output_size
from tcomp.ops.winograd import WINOGRAD_TILES, conv2d_winograd_nchwc, winograd_kernel
from tcomp.te.tensor import Tensor


def layout_shape(shape: tuple[int, ...], src: str, dst: str) -> tuple[int, ...]:
    """The shape of a ``src``-layout tensor of ``shape`` stored in ``dst`` (``ValueError`` if blocks do not divide)."""
    source, target = Layout.parse(src), Layout.parse(dst)
    if len(source.axes) != len(shape) or source.primal != target.primal:
        raise ValueError(f"cannot transform a {len(shape)}-D tensor from layout {src} to {dst}")
    extents: dict[str, int] = {}
    for letter, dim in zip(source.axes, shape):
        if letter.isupper():
            extents[letter] = dim * (source.block(letter) or 1)
    result = []
    for letter, factor in zip(target.axes, target.factors):
        if factor is not None:
            result.append(factor)
            continue
        block = target.block(letter) or 1
        if extents[letter] % block:
            raise ValueError(f"axis {letter} of extent {extents[letter]} is not a multiple of the block {block}")
        result.append(extents[letter] // block)
    return tuple(result)


def transform_layout(x: np.ndarray, src: str, dst: str) -> np.ndarray:
    """``x`` (in layout ``src``) in layout ``dst``, as ``tcomp.ops.nchwc.layout_transform`` computes it: each primal
    axis gathered whole (its blocks after it), then split into ``dst``'s blocks and ordered as ``dst`` has them."""
    layout_shape(x.shape, src, dst)  # ValueError where the blocks do not fit
    source, target = Layout.parse(src), Layout.parse(dst)
    primal = [letter for letter in source.axes if letter.isupper()]
    order = [source.axes.index(a) for letter in primal for a in (letter, letter.lower()) if a in source.axes]
    whole = x.transpose(order).reshape([x.shape[source.axes.index(p)] * (source.block(p) or 1) for p in primal])
    split, names = [], []
    for letter, extent in zip(primal, whole.shape):
        block = target.block(letter)
        split += [extent // block, block] if block else [extent]
        names += [letter, letter.lower()] if block else [letter]
    return np.ascontiguousarray(whole.reshape(split).transpose([names.index(a) for a in target.axes]))


def _infer_layout_transform(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    try:
        shape = layout_shape(x.shape, str(ctx.attr("src")), str(ctx.attr("dst")))
    except Exception as exc:  # OpError (a ValueError) or a parse failure
        raise ctx.error(str(exc)) from None
    return [TensorType(shape, x.dtype)]


def _lower_layout_transform(ctx: LowerContext) -> list[Tensor]:
    return [layout_transform(ctx.tensor(0), ctx.attr("src"), ctx.attr("dst"), name=ctx.name)]


def _infer_conv2d_nchwc(ctx: InferContext) -> list[TensorType]:
    x, w = ctx.type(0), ctx.type(1)
    require_float(ctx, x)
    groups = _groups(ctx)
    if x.ndim != 5 or w.ndim != 6 or x.shape[1] != w.shape[1] * groups or x.shape[4] != w.shape[4] \
            or w.shape[0] % groups:
        raise ctx.error(f"data {x} and kernel {w} are not NCHW[x]c / OIHW[x]i[y]o of matching channels in "
                        f"{groups} group(s)")
    oh, ow = conv2d_output_hw(ctx, (x.shape[2], x.shape[3]), (w.shape[2], w.shape[3]))
    return [TensorType((x.shape[0], w.shape[0], oh, ow, w.shape[5]), x.dtype)]


def _lower_conv2d_nchwc(ctx: LowerContext) -> list[Tensor]:
    return [conv2d_nchwc(ctx.tensor(0), ctx.tensor(1), ctx.attr("strides"), ctx.attr("pads"), ctx.attr("dilations"),
                         name=ctx.name, groups=int(ctx.attr("groups", 1)))]


def _groups(ctx: InferContext) -> int:
    groups = ctx.attr("groups", 1)
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ctx.error(f"groups must be a positive int, got {groups!r}")
    return groups


def _infer_depthwise_nchwc(ctx: InferContext) -> list[TensorType]:
    x, w = ctx.type(0), ctx.type(1)
    require_float(ctx, w)
    if x.dtype != w.dtype and x.dtype != "uint8":
        raise ctx.error(f"data {x} must be of the kernel's type or uint8")
    pad_value = ctx.attr("pad_value", 0)
    if isinstance(pad_value, bool) or not isinstance(pad_value, int) or not 0 <= pad_value <= 255 \
            or (pad_value and x.dtype != "uint8"):
        raise ctx.error(f"pad_value {pad_value!r} must be 0, or a byte for uint8 data")
    if x.ndim != 5 or w.ndim != 6 or w.shape[0] != x.shape[1] or w.shape[5] != x.shape[4] or w.shape[1] != 1 \
            or w.shape[4] != 1:
        raise ctx.error(f"data {x} and kernel {w} are not NCHW[b]c / OIHW1i[b]o depthwise operands")
    oh, ow = conv2d_output_hw(ctx, (x.shape[2], x.shape[3]), (w.shape[2], w.shape[3]))
    return [TensorType((x.shape[0], x.shape[1], oh, ow, x.shape[4]), w.dtype)]


def _lower_depthwise_nchwc(ctx: LowerContext) -> list[Tensor]:
    return [depthwise_conv2d_nchwc(ctx.tensor(0), ctx.tensor(1), ctx.attr("strides"), ctx.attr("pads"),
                                   ctx.attr("dilations"), name=ctx.name, pad_value=ctx.attr("pad_value", 0))]


def _tile(ctx: InferContext) -> int:
    tile = ctx.attr("tile")
    if isinstance(tile, bool) or tile not in WINOGRAD_TILES:
        raise ctx.error(f"tile must be one of {WINOGRAD_TILES}, got {tile!r}")
    return int(tile)


def _infer_winograd_kernel(ctx: InferContext) -> list[TensorType]:
    w = ctx.type(0)
    require_float(ctx, w)
    size = _tile(ctx) + 2
    ic, oc = ctx.attr("ic_block"), ctx.attr("oc_block")
    if w.ndim != 4 or w.shape[2:] != (3, 3):
        raise ctx.error(f"expects a 3x3 OIHW kernel, got {w}")
    for block, channels, what in ((ic, w.shape[1], "ic_block"), (oc, w.shape[0], "oc_block")):
        if isinstance(block, bool) or not isinstance(block, int) or block < 1 or channels % block:
            raise ctx.error(f"{what} must be a positive divisor of {channels}, got {block!r}")
    return [TensorType((size, size, w.shape[0] // oc, w.shape[1] // ic, ic, oc), w.dtype)]


def _lower_winograd_kernel(ctx: LowerContext) -> list[Tensor]:
    return [winograd_kernel(ctx.tensor(0), ctx.attr("tile"), ctx.attr("ic_block"), ctx.attr("oc_block"),
                            name=ctx.name)]


def _infer_conv2d_winograd(ctx: InferContext) -> list[TensorType]:
    x, u = ctx.type(0), ctx.type(1)
    require_float(ctx, x)
    size = _tile(ctx) + 2
    top, left, bottom, right = ints_attr(ctx, "pads", 4)
    if x.ndim != 5 or u.ndim != 6 or u.shape[:2] != (size, size) or u.shape[3:5] != x.shape[1:2] + x.shape[4:5]:
        raise ctx.error(f"data {x} and transformed kernel {u} are not NCHW[x]c data and a kernel for tile "
                        f"{size - 2} of matching channels")
    oh, ow = x.shape[2] + top + bottom - 2, x.shape[3] + left + right - 2
    if min(top, left, bottom, right) < 0 or oh <= 0 or ow <= 0:
        raise ctx.error(f"pads {(top, left, bottom, right)} leave no output for {x}")
    return [TensorType((x.shape[0], u.shape[2], oh, ow, u.shape[5]), x.dtype)]


def _lower_conv2d_winograd(ctx: LowerContext) -> list[Tensor]:
    return [conv2d_winograd_nchwc(ctx.tensor(0), ctx.tensor(1), ctx.attr("pads"), ctx.attr("tile"), name=ctx.name)]


def _infer_max_pool_nchwc(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    if x.ndim != 5:
        raise ctx.error(f"expects NCHW[x]c data, got {x}")
    kernel, strides, pads = ints_attr(ctx, "kernel", 2), ints_attr(ctx, "strides", 2), ints_attr(ctx, "pads", 4)
    ceil_mode = bool(ctx.attr("ceil_mode", False))
    oh = pool2d_output_size(x.shape[2], kernel[0], strides[0], pads[0], pads[2], ceil_mode)
    ow = pool2d_output_size(x.shape[3], kernel[1], strides[1], pads[1], pads[3], ceil_mode)
    return [TensorType((x.shape[0], x.shape[1], oh, ow, x.shape[4]), x.dtype)]


def _lower_max_pool_nchwc(ctx: LowerContext) -> list[Tensor]:
    """``out[n, g, y, x, b] = max_{ry, rx} pad[n, g, y * sh + ry, x * sw + rx, b]`` (padding is -inf)."""
    x = ctx.tensor(0)
    (kh, kw), (sh, sw) = ctx.attr("kernel"), ctx.attr("strides")
    top, left, bottom, right = ctx.attr("pads")
    shape = ctx.out_types[0].shape
    height, width = ctx.types[0].shape[2], ctx.types[0].shape[3]  # type: ignore[union-attr]
    extra_h = max(0, (shape[2] - 1) * sh + kh - (height + top + bottom))
    extra_w = max(0, (shape[3] - 1) * sw + kw - (width + left + right))
    fill = float("-inf") if dt.is_float(x.dtype) else dt.min_value(x.dtype)
    before, after = (0, 0, top, left, 0), (0, 0, bottom + extra_h, right + extra_w, 0)
    padded = pad(x, before, after, fill, name="pad_data") if any(before + after) else x
    ry = te.reduce_axis((0, kh), name="ry")
    rx = te.reduce_axis((0, kw), name="rx")

    def body(n: Any, g: Any, y: Any, xx: Any, b: Any) -> Expr:
        return te.max(padded[n, g, y * sh + ry, xx * sw + rx, b], axis=[ry, rx])

    return [te.compute(shape, body, name=ctx.name, tag="comm_reduce", attrs={POOL_WINDOW: True, "stride": (sh, sw)})]


def shuffle_source(channel: Any, channels: int, groups: int) -> Any:
    """The input channel that output channel ``channel`` of a shuffle of ``channels`` in ``groups`` reads (an int
    or an index expression): ``(c % groups) * (channels / groups) + c / groups``."""
    return (channel % groups) * (channels // groups) + channel // groups


def _infer_channel_shuffle(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    groups = ctx.attr("groups")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ctx.error(f"groups must be a positive int, got {groups!r}")
    if x.ndim not in (4, 5):
        raise ctx.error(f"expects NCHW or NCHW[x]c data, got {x}")
    channels = x.shape[1] * (x.shape[4] if x.ndim == 5 else 1)
    if channels % groups:
        raise ctx.error(f"{channels} channels do not split into {groups} groups")
    return [x]


def _lower_channel_shuffle(ctx: LowerContext) -> list[Tensor]:
    x = ctx.tensor(0)
    shape = ctx.out_types[0].shape
    groups = int(ctx.attr("groups"))
    if len(shape) == 4:
        channels = shape[1]
        return [te.compute(shape, lambda n, c, h, w: x[n, shuffle_source(c, channels, groups), h, w],
                           name=ctx.name, tag="injective")]
    block = shape[4]
    channels = shape[1] * block

    def body(n: Any, cb: Any, h: Any, w: Any, lane: Any) -> Expr:
        source = shuffle_source(cb * block + lane, channels, groups)
        return x[n, source // block, h, w, source % block]

    return [te.compute(shape, body, name=ctx.name, tag="injective")]


def _evaluate_channel_shuffle(node: Any, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    x = arrays[0]
    channels = x.shape[1] * (x.shape[4] if x.ndim == 5 else 1)
    order = np.array([shuffle_source(c, channels, int(node.attr("groups"))) for c in range(channels)])
    if x.ndim == 4:
        return [x[:, order]]
    n, blocks, h, w, block = x.shape
    plain = x.transpose(0, 1, 4, 2, 3).reshape(n, channels, h, w)[:, order]
    return [np.ascontiguousarray(plain.reshape(n, blocks, block, h, w).transpose(0, 1, 3, 4, 2))]


register_op("layout_transform", OpPattern.INJECTIVE, _infer_layout_transform, _lower_layout_transform,
            lambda node, arrays: [transform_layout(arrays[0], str(node.attr("src")), str(node.attr("dst")))])
register_op("conv2d_nchwc", OpPattern.OUT_ELEMWISE_FUSABLE, _infer_conv2d_nchwc, _lower_conv2d_nchwc)
register_op("winograd_kernel", OpPattern.INJECTIVE, _infer_winograd_kernel, _lower_winograd_kernel)
register_op("conv2d_winograd_nchwc", OpPattern.OUT_ELEMWISE_FUSABLE, _infer_conv2d_winograd, _lower_conv2d_winograd)
register_op("depthwise_conv2d_nchwc", OpPattern.OUT_ELEMWISE_FUSABLE, _infer_depthwise_nchwc, _lower_depthwise_nchwc)
register_op("max_pool2d_nchwc", OpPattern.OUT_ELEMWISE_FUSABLE, _infer_max_pool_nchwc, _lower_max_pool_nchwc)
register_op("channel_shuffle", OpPattern.INJECTIVE, _infer_channel_shuffle, _lower_channel_shuffle,
            _evaluate_channel_shuffle)
