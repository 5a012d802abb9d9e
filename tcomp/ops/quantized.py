"""Products of 8-bit quantized rows with a constant int8 weight packed for the integer GEMM micro-kernels.

``A`` (uint8, ``[M, K]``) times a weight ``W`` (int8, ``[K, N]``), minus ``A``'s zero point, in int32:

    out[i, j] = sum_k (A[i, k] - a_zero) * W[k, j] = sum_k A[i, k] W[k, j] - a_zero * sum_k W[k, j]

``pack_quantized_panels`` stores ``W`` once as ``[ceil(N / nr), depth / g, nr, g]``: ``nr``-column panels whose
rows are groups of ``g`` steps of K, the layout the micro-kernels read (``tcomp/codegen/llvm/microkernels.py``):
groups of four bytes (``BYTES``) for VNNI's ``vpdpbusd``, which adds four byte products per int32 lane, or pairs of
int16 (``PAIRS``) for ``pmaddwd``, which adds two; zeros beyond ``K`` and ``N``. The column sums of ``W`` are folded
with it, so the zero point costs one multiply-add per output. ``quantized_matmul`` is the product
(``OpKind.QUANTIZED_MATMUL``) and that correction, an elementwise stage that fuses into what follows (the
conversion to float and the scales of a dynamically quantized model).

A convolution of uint8 images with such a weight is that product over the windows of its input: ``im2col`` gathers
them from ``[N, H, W, C]`` data (channels last) as the rows ``[N * OH * OW, KH * KW * C]``, steps of K in the order
(kernel row, kernel column, channel), the padding the zero point; the weight is ``[KH, KW, C, O]`` read as
``[KH * KW * C, O]`` (``conv_weight_matrix``). ``quantized_conv2d`` is the whole convolution on ``[N, C, H, W]``
data (its result ``[N, O, OH, OW]``); the CPU graph compiler runs it on channels-last rows instead (the graph pass
``alter_layout``), where a 1x1 convolution needs no gathering at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tcomp import te
from tcomp.ir.expr import Expr, Var
from tcomp.ops.conv import conv_output_size
from tcomp.ops.panels import PAIRS, pack_grouped_panels
from tcomp.ops.utils import (
    OP_KIND,
    OpError,
    OpKind,
    Tag,
    as_int,
    check_tensor,
    padding_2d,
    positive_tuple,
    shape_str,
)
from tcomp.te.tensor import Tensor

__all__ = ["BYTES", "PAIRS", "Window", "conv_weight_matrix", "im2col", "pack_quantized_panels", "panel_dtype",
           "quantized_conv2d", "quantized_matmul"]

# channels-last data with fewer channels than this is padded before ``im2col`` gathers its windows: a pixel's
# channels are too few for a vector, a kernel row's taps one run of them (7x7 windows of a 3-channel 224x224 image:
# 0.33 -> 0.08 ms; with 64 channels the bounds test per tap costs less than the padded copy, 3x3 over 56x56: 22 us
# against 45)
RUN_CHANNELS = 16
BYTES = 4  # steps of K per group of int8 panels: the bytes one lane of ``vpdpbusd`` multiplies and adds
# PAIRS (``tcomp.ops.panels``): steps of K per group of int16 panels, the int16 one lane of ``pmaddwd`` multiplies
# and adds


def panel_dtype(group: int) -> str:
    """The element type of panels in groups of ``group`` steps (``BYTES`` or ``PAIRS``)."""
    if group not in (BYTES, PAIRS):
        raise OpError(f"quantized panels come in groups of {BYTES} (int8) or {PAIRS} (int16), not {group}")
    return "int8" if group == BYTES else "int16"


def pack_quantized_panels(weight: np.ndarray, nr: int, depth: int, group: int) -> np.ndarray:
    """``weight[K, N]`` (int8) as ``[ceil(N / nr), depth / group, nr, group]`` (``panel_dtype(group)``) with
    ``panels[b, g, c, s] = weight[group g + s, b * nr + c]``, zeros beyond ``K`` and ``N`` (``depth >= K``, a
    multiple of ``group``)."""
    dtype = panel_dtype(group)
    if weight.ndim != 2 or weight.dtype != np.int8 or nr < 1 or depth < weight.shape[0] or depth % group:
        raise OpError(f"pack_quantized_panels: need a 2-D int8 weight, a positive nr and depth >= K in groups of "
                      f"{group}, got {weight.dtype} {weight.shape}, {nr}, {depth}")
    return pack_grouped_panels(weight, nr, depth, group, dtype)


def quantized_matmul(x: Tensor, panels: Tensor, column_sums: Tensor, x_zero: Tensor, columns: int,
                     name: str = "T_quantized_matmul") -> Tensor:
    """``(x - x_zero) @ W`` in int32 for uint8 ``x[M, K]``, ``W`` packed by ``pack_quantized_panels`` (``panels``),
    ``column_sums[N]`` its column sums (int32) and ``x_zero`` a scalar int32 tensor; ``columns`` is ``N``."""
    op = "quantized_matmul"
    check_tensor(op, "x", x, 2)
    check_tensor(op, "panels", panels, 4)
    check_tensor(op, "column_sums", column_sums, 1)
    check_tensor(op, "x_zero", x_zero, 0)
    blocks, groups, nr, group = (as_int(d) for d in panels.shape)
    k_extent = as_int(x.shape[1])
    if None in (blocks, groups, nr, group, k_extent) or group not in (BYTES, PAIRS):
        raise OpError(f"{op}: x{shape_str(x.shape)} and panels{shape_str(panels.shape)} must have constant shapes, "
                      f"the panels groups of {BYTES} or {PAIRS}")
    if isinstance(columns, bool) or not isinstance(columns, int) or not (blocks - 1) * nr < columns <= blocks * nr:
        raise OpError(f"{op}: {columns!r} columns do not fill {blocks} panels of {nr}")
    if k_extent > groups * group:
        raise OpError(f"{op}: x{shape_str(x.shape)} has more K than panels{shape_str(panels.shape)}")
    if as_int(column_sums.shape[0]) != columns:
        raise OpError(f"{op}: column_sums{shape_str(column_sums.shape)} must have {columns} entries")
    dtypes = (x.dtype, panels.dtype, column_sums.dtype, x_zero.dtype)
    if dtypes != ("uint8", panel_dtype(group), "int32", "int32"):
        raise OpError(f"{op}: x, panels in groups of {group}, column_sums and x_zero must be uint8, "
                      f"{panel_dtype(group)}, int32, int32, got {dtypes}")
    g = te.reduce_axis((0, groups), name="kg")
    s = te.reduce_axis((0, group), name="s")

    def product_body(i: Var, j: Var) -> Expr:
        step = te.min(g * group + s, k_extent - 1)  # steps beyond K meet zeros in the panels
        wide = te.cast(x[i, step], "int32") * te.cast(panels[j // nr, g, j % nr, s], "int32")
        return te.sum(wide, axis=[g, s])

    product = te.compute((x.shape[0], columns), product_body, name=f"{name}.product",
                         attrs={OP_KIND: OpKind.QUANTIZED_MATMUL})
    return te.compute((x.shape[0], columns), lambda i, j: product[i, j] - x_zero[()] * column_sums[j], name=name,
                      tag=Tag.ELEMWISE)


@dataclass(frozen=True)
class Window:
    """A 2-D convolution's window: ``kernel`` (height, width), ``strides``, ``pads`` (top, left, bottom, right) and
    ``dilations``, checked by ``Window.of``."""

    kernel: tuple[int, int]
    strides: tuple[int, int]
    pads: tuple[int, int, int, int]
    dilations: tuple[int, int]

    @staticmethod
    def of(op: str, kernel: Any, strides: Any, pads: Any, dilations: Any) -> Window:
        sizes = positive_tuple(op, "kernel", kernel, 2)
        steps = positive_tuple(op, "strides", strides, 2)
        dilated = positive_tuple(op, "dilations", dilations, 2)
        padding = padding_2d(op, pads)
        return Window((sizes[0], sizes[1]), (steps[0], steps[1]), padding, (dilated[0], dilated[1]))

    def output(self, height: int, width: int) -> tuple[int, int]:
        """The output plane of the window over a ``height x width`` input."""
        top, left, bottom, right = self.pads
        return (conv_output_size(height, self.kernel[0], self.strides[0], top + bottom, self.dilations[0]),
                conv_output_size(width, self.kernel[1], self.strides[1], left + right, self.dilations[1]))

    @property
    def pointwise(self) -> bool:
        """Whether each output pixel reads its own input pixel alone (1x1, stride 1, no padding): the rows are the
        input's."""
        return self.kernel == (1, 1) and self.strides == (1, 1) and not any(self.pads)


def conv_weight_matrix(weight: np.ndarray) -> np.ndarray:
    """A convolution's weight ``[O, C, KH, KW]`` as the ``[KH * KW * C, O]`` matrix ``im2col``'s rows multiply."""
    return weight.transpose(2, 3, 1, 0).reshape(-1, weight.shape[0])


def _static_shape(op: str, name: str, tensor: Tensor) -> tuple[int, ...]:
    shape = tuple(as_int(d) for d in tensor.shape)
    if None in shape:
        raise OpError(f"{op}: {name}{shape_str(tensor.shape)} must have a constant shape")
    return shape  # type: ignore[return-value]


def im2col(x: Tensor, pad_value: Tensor | None, window: Window, channels_last: bool = True,
           name: str = "T_im2col") -> Tensor:
    """The windows of ``x[N, H, W, C]`` (``x[N, C, H, W]`` where not ``channels_last``) as rows
    ``[N * OH * OW, KH * KW * C]`` (see the module docstring):
    ``out[(n OH + oh) OW + ow, (ry KW + rx) C + c] = x[n, oh sh - top + ry dh, ow sw - left + rx dw, c]``, and
    ``pad_value`` (a scalar int32 tensor, cast to ``x``'s type; needed where the window pads) outside ``x``. With a
    1x1 window, the rows of NCHW data: its pixels, channels last. Where the window pads data of fewer than
    ``RUN_CHANNELS`` channels, or NCHW data, that is first copied channels last and padded (a ``pad`` stage)."""
    op = "im2col"
    check_tensor(op, "x", x, 4)
    if pad_value is not None:
        check_tensor(op, "pad_value", pad_value, 0)
        if pad_value.dtype != "int32":
            raise OpError(f"{op}: pad_value must be int32, got {pad_value.dtype}")
    elif any(window.pads):
        raise OpError(f"{op}: a window with pads {window.pads} needs a pad value")
    if channels_last:
        n, h, w, c = _static_shape(op, "x", x)
    else:
        n, c, h, w = _static_shape(op, "x", x)
    oh, ow = window.output(h, w)
    if oh <= 0 or ow <= 0:
        raise OpError(f"{op}: the window {window} does not fit x{shape_str(x.shape)}")
    kh, kw = window.kernel
    (sh, sw), (dh, dw), (top, left) = window.strides, window.dilations, window.pads[:2]
    # few channels a pixel: padded first, so that a kernel row's taps are one run (no bounds test per tap)
    padded = any(window.pads) and (not channels_last or c < RUN_CHANNELS)
    source = _padded_channels_last(x, pad_value, window, channels_last, name) if padded else x  # type: ignore[arg-type]

    def body(row: Var, step: Var) -> Expr:
        image, pixel = row // (oh * ow), row % (oh * ow)
        tap, channel = step // c, step % c
        y = pixel // ow * sh + tap // kw * dh
        x_ = pixel % ow * sw + tap % kw * dw
        if padded or not any(window.pads):
            return source[image, y, x_, channel] if channels_last or padded else source[image, channel, y, x_]
        y, x_ = y - top, x_ - left
        inside = te.all(y >= 0, y < h, x_ >= 0, x_ < w)
        value = source[image, te.max(te.min(y, h - 1), 0), te.max(te.min(x_, w - 1), 0), channel]
        return te.if_then_else(inside, value, te.cast(pad_value[()], x.dtype))  # type: ignore[index]

    # ``contiguous``: the source's channels are adjacent in memory (not NCHW x read in place); ``runs``: and the
    # taps of a kernel row are one run of it (undilated along the width, no bounds tests)
    contiguous = channels_last or padded
    attrs = {OP_KIND: OpKind.IM2COL, "channels": c, "plane": (oh, ow), "kernel_width": kw, "contiguous": contiguous,
             "runs": contiguous and dw == 1 and (padded or not any(window.pads))}
    return te.compute((n * oh * ow, kh * kw * c), body, name=name, tag=Tag.INJECTIVE, attrs=attrs)


def _padded_channels_last(x: Tensor, pad_value: Tensor, window: Window, channels_last: bool, name: str) -> Tensor:
    """``x`` (``[N, H, W, C]``, or ``[N, C, H, W]`` where not ``channels_last``) channels last and padded with
    ``pad_value`` as ``window`` pads it (a ``pad`` stage): ``im2col``'s windows then read it without a bounds test,
    the taps of a kernel row (a window not dilated along the width) one contiguous run."""
    if channels_last:
        n, h, w, c = (as_int(d) for d in x.shape)
    else:
        n, c, h, w = (as_int(d) for d in x.shape)
    top, left, bottom, right = window.pads

    def body(image: Var, y: Var, x_: Var, channel: Var) -> Expr:
        row, column = y - top, x_ - left
        clamped = (te.max(te.min(row, h - 1), 0), te.max(te.min(column, w - 1), 0))
        value = x[image, clamped[0], clamped[1], channel] if channels_last else \
            x[image, channel, clamped[0], clamped[1]]
        inside = te.all(row >= 0, row < h, column >= 0, column < w)
        return te.if_then_else(inside, value, te.cast(pad_value[()], x.dtype))

    attrs = {OP_KIND: OpKind.PAD, "pad_before": (0, top, left, 0), "pad_after": (0, bottom, right, 0),
             "channels_last": channels_last}
    return te.compute((n, top + h + bottom, left + w + right, c), body, name=f"{name}.padded", tag=Tag.INJECTIVE,
                      attrs=attrs)


def quantized_conv2d(x: Tensor, panels: Tensor, column_sums: Tensor, x_zero: Tensor, window: Window, channels: int,
                     name: str = "T_quantized_conv2d") -> Tensor:
    """``conv2d(x - x_zero, W)`` in int32 for uint8 ``x[N, C, H, W]`` and a weight ``W[O, C, KH, KW]`` given as
    ``pack_quantized_panels(conv_weight_matrix(W))`` (``panels``) and that matrix's column sums; ``channels`` is
    ``O``. The result is ``[N, O, OH, OW]``: ``quantized_matmul`` of the windows (``im2col``) of ``x`` laid out
    channels last."""
    op = "quantized_conv2d"
    check_tensor(op, "x", x, 4)
    n, c, h, w = _static_shape(op, "x", x)
    oh, ow = window.output(h, w)
    rows = im2col(x, x_zero, window, channels_last=False, name=f"{name}.windows")
    product = quantized_matmul(rows, panels, column_sums, x_zero, channels, name=f"{name}.rows")
    return te.compute((n, channels, oh, ow), lambda i, o, y, x_: product[(i * oh + y) * ow + x_, o], name=name,
                      tag=Tag.INJECTIVE)
