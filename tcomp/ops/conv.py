"""Padding and 2-D convolutions in NCHW layout.

Convolutions pad their input in a separate stage (``pad_data``) when any padding is non-zero, so a schedule can
inline it (``s[pad].compute_inline()``) or compute it inside a loop of the convolution (``compute_at``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tcomp import te
from tcomp.ir import dtype as dt
from tcomp.ir.expr import Expr, IterVar, Var, cast, convert, floordiv, make_const
from tcomp.ops.utils import (
    OP_KIND,
    OpError,
    OpKind,
    Tag,
    as_int,
    check_tensor,
    clamp_index,
    fold,
    padding_2d,
    positive_tuple,
    static_dim,
)
from tcomp.te.tensor import Tensor

__all__ = ["conv2d_nchw", "conv2d_output_size", "conv_output_size", "depthwise_conv2d_nchw", "pad"]


def _pad_amounts(op: str, argument: str, value: Any, ndim: int) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,) * ndim
    if not isinstance(value, (tuple, list)) or len(value) != ndim:
        raise OpError(f"{op}: {argument} must be an int or a sequence of {ndim} ints (one per dimension), got {value}")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        raise OpError(f"{op}: {argument} must hold non-negative ints, got {value!r}")
    return tuple(value)


def pad(
    data: Tensor,
    pad_before: Sequence[int] | int,
    pad_after: Sequence[int] | int | None = None,
    pad_value: float | int = 0.0,
    name: str = "T_pad",
) -> Tensor:
    """Constant padding: ``out.shape[d] = before[d] + data.shape[d] + after[d]`` and
    ``out[i] = data[i - before]`` where every ``0 <= i[d] - before[d] < data.shape[d]``, else ``pad_value``.

    ``pad_after`` defaults to ``pad_before``. Reads of ``data`` use clamped indices, so the padded branch never
    touches memory outside ``data``.
    """
    check_tensor("pad", "data", data)
    before = _pad_amounts("pad", "pad_before", pad_before, data.ndim)
    after = before if pad_after is None else _pad_amounts("pad", "pad_after", pad_after, data.ndim)
    out_shape = tuple(fold(convert(d) + b + a) for d, b, a in zip(data.shape, before, after))
    value = make_const(pad_value, data.dtype)

    def body(*indices: Var) -> Expr:
        conditions: list[Expr] = []
        source: list[Expr] = []
        for index, dim, b, a in zip(indices, data.shape, before, after):
            if b == 0 and a == 0:
                source.append(index)
                continue
            shifted = index - b if b else index
            if b:
                conditions.append(index >= b)
            if a:
                conditions.append(index < fold(convert(dim) + b))
            source.append(clamp_index(shifted, convert(dim)))
        if not conditions:
            return data[tuple(source)]
        return te.if_then_else(te.all(*conditions), data[tuple(source)], value)

    attrs = {OP_KIND: OpKind.PAD, "pad_before": before, "pad_after": after}
    return te.compute(out_shape, body, name=name, tag=Tag.INJECTIVE, attrs=attrs)


def conv_output_size(size: Any, kernel: int, stride: int, pad_total: int, dilation: int = 1) -> Any:
    """The output extent of a convolution (or any sliding window) along one dimension of extent ``size`` (an int,
    or an expression): ``(size + pad_total - dilation * (kernel - 1) - 1) // stride + 1``. The one home of the
    rule, for the operators, the graph's type inference and the templates alike."""
    return (size + pad_total - dilation * (kernel - 1) - 1) // stride + 1


def conv2d_output_size(size: Any, kernel: int, stride: int, pad_total: int, dilation: int) -> Expr:
    """``conv_output_size`` as a folded expression."""
    return fold(conv_output_size(convert(size), kernel, stride, pad_total, dilation))


def _spatial_args(op: str, stride: Any, padding: Any, dilation: Any) -> tuple[tuple[int, ...], ...]:
    strides = positive_tuple(op, "stride", stride, 2)
    dilations = positive_tuple(op, "dilation", dilation, 2)
    pads = padding_2d(op, padding)
    return strides, pads, dilations


def _output_plane(op: str, data: Tensor, kernel_hw: tuple[int, int], strides: tuple[int, ...],
                  pads: tuple[int, ...], dilations: tuple[int, ...]) -> tuple[Expr, Expr]:
    """The output height and width of a 2-D window over ``data``'s dimensions 2 and 3 (pads top, left, bottom,
    right); an ``OpError`` when either is known not to be positive."""
    out_h = conv2d_output_size(data.shape[2], kernel_hw[0], strides[0], pads[0] + pads[2], dilations[0])
    out_w = conv2d_output_size(data.shape[3], kernel_hw[1], strides[1], pads[1] + pads[3], dilations[1])
    for value, what in ((out_h, "height"), (out_w, "width")):
        constant = as_int(value)
        if constant is not None and constant <= 0:
            raise OpError(
                f"{op}: output {what} would be {constant}: the (dilated) kernel is larger than the padded input "
                f"of {data.name}"
            )
    return out_h, out_w


def _window_axes(kh: int, kw: int) -> tuple[IterVar, IterVar]:
    """The reduction axes over a ``kh`` x ``kw`` window."""
    return te.reduce_axis((0, kh), name="ry"), te.reduce_axis((0, kw), name="rx")


def _padded_input(data: Tensor, pads: tuple[int, ...], name: str = "pad_data", value: float = 0.0) -> Tensor:
    """``data`` with ``value`` around dimensions 2 and 3 (pads top, left, bottom, right); later dimensions (a
    blocked layout's channel block) are not padded."""
    top, left, bottom, right = pads
    if not any(pads):
        return data
    rest = (0,) * (len(data.shape) - 4)
    return pad(data, (0, 0, top, left, *rest), (0, 0, bottom, right, *rest), value, name=name)


def _out_dtype(op: str, data: Tensor, out_dtype: str | None) -> str:
    if out_dtype is None:
        return data.dtype
    try:
        return dt.normalize(out_dtype)
    except dt.DTypeError as exc:
        raise OpError(f"{op}: out_dtype: {exc}") from exc


def conv2d_nchw(
    data: Tensor,
    kernel: Tensor,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    out_dtype: str | None = None,
    name: str = "conv2d_nchw",
) -> Tensor:
    """Grouped 2-D convolution. ``data[N, C, H, W]``, ``kernel[O, C // groups, KH, KW]`` ->
    ``out[N, O, OH, OW]`` with ``OH = (H + pad_top + pad_bottom - dilation_h * (KH - 1) - 1) // stride_h + 1``
    (likewise ``OW``) and

        out[n, o, y, x] = sum_{rc, ry, rx} pad[n, g * (C // groups) + rc, y * sh + ry * dh, x * sw + rx * dw]
                                           * kernel[o, rc, ry, rx],   g = o // (O // groups).

    ``padding``: an int, ``(vertical, horizontal)`` or ``(top, left, bottom, right)``. Products accumulate in
    ``out_dtype`` (default the input's).
    """
    op = "conv2d_nchw"
    check_tensor(op, "data", data, 4)
    check_tensor(op, "kernel", kernel, 4)
    strides, pads, dilations = _spatial_args(op, stride, padding, dilation)
    if isinstance(groups, bool) or not isinstance(groups, int) or groups <= 0:
        raise OpError(f"{op}: groups must be a positive int, got {groups!r}")
    in_channels = static_dim(op, "data", data, 1)
    out_channels = static_dim(op, "kernel", kernel, 0)
    kernel_in = static_dim(op, "kernel", kernel, 1)
    kh, kw = static_dim(op, "kernel", kernel, 2), static_dim(op, "kernel", kernel, 3)
    if in_channels % groups:
        raise OpError(f"{op}: groups={groups} does not divide the {in_channels} input channels of data")
    if out_channels % groups:
        raise OpError(f"{op}: groups={groups} does not divide the {out_channels} output channels of kernel")
    group_in = in_channels // groups
    if kernel_in != group_in:
        raise OpError(
            f"{op}: kernel dimension 1 is {kernel_in}, expected input channels // groups = {in_channels} // "
            f"{groups} = {group_in}"
        )
    out_h, out_w = _output_plane(op, data, (kh, kw), strides, pads, dilations)
    acc = _out_dtype(op, data, out_dtype)
    padded = _padded_input(data, pads)
    group_out = out_channels // groups
    rc = te.reduce_axis((0, group_in), name="rc")
    ry, rx = _window_axes(kh, kw)
    (sh, sw), (dh, dw) = strides, dilations

    def body(n: Var, o: Var, y: Var, x: Var) -> Expr:
        channel: Any = rc if groups == 1 else floordiv(o, group_out) * group_in + rc.var
        value = padded[n, channel, y * sh + ry * dh, x * sw + rx * dw]
        weight = kernel[o, rc, ry, rx]
        return te.sum(cast(value, acc) * cast(weight, acc), axis=[rc, ry, rx])

    shape = (data.shape[0], convert(out_channels), out_h, out_w)
    attrs = {OP_KIND: OpKind.CONV2D_NCHW, "stride": strides, "padding": pads, "dilation": dilations, "groups": groups}
    return te.compute(shape, body, name=name, tag=Tag.OUT_ELEMWISE_FUSABLE, attrs=attrs)


def depthwise_conv2d_nchw(
    data: Tensor,
    kernel: Tensor,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    out_dtype: str | None = None,
    name: str = "depthwise_conv2d_nchw",
) -> Tensor:
    """Depthwise 2-D convolution. ``data[N, C, H, W]``, ``kernel[C, M, KH, KW]`` (``M`` the channel multiplier)
    -> ``out[N, C * M, OH, OW]`` (sizes as in ``conv2d_nchw``) with

        out[n, c, y, x] = sum_{ry, rx} pad[n, c // M, y * sh + ry * dh, x * sw + rx * dw]
                                       * kernel[c // M, c % M, ry, rx].
    """
    op = "depthwise_conv2d_nchw"
    check_tensor(op, "data", data, 4)
    check_tensor(op, "kernel", kernel, 4)
    strides, pads, dilations = _spatial_args(op, stride, padding, dilation)
    in_channels = static_dim(op, "data", data, 1)
    kernel_channels = static_dim(op, "kernel", kernel, 0)
    multiplier = static_dim(op, "kernel", kernel, 1)
    kh, kw = static_dim(op, "kernel", kernel, 2), static_dim(op, "kernel", kernel, 3)
    if kernel_channels != in_channels:
        raise OpError(
            f"{op}: kernel dimension 0 is {kernel_channels}, expected the {in_channels} input channels of data"
        )
    out_h, out_w = _output_plane(op, data, (kh, kw), strides, pads, dilations)
    acc = _out_dtype(op, data, out_dtype)
    padded = _padded_input(data, pads)
    ry, rx = _window_axes(kh, kw)
    (sh, sw), (dh, dw) = strides, dilations

    def body(n: Var, c: Var, y: Var, x: Var) -> Expr:
        if multiplier == 1:
            channel: Expr = c
            weight = kernel[c, 0, ry, rx]
        else:
            channel = floordiv(c, multiplier)
            weight = kernel[channel, te.floormod(c, multiplier), ry, rx]
        value = padded[n, channel, y * sh + ry * dh, x * sw + rx * dw]
        return te.sum(cast(value, acc) * cast(weight, acc), axis=[ry, rx])

    shape = (data.shape[0], convert(in_channels * multiplier), out_h, out_w)
    attrs = {OP_KIND: OpKind.DEPTHWISE_CONV2D_NCHW, "stride": strides, "padding": pads, "dilation": dilations}
    return te.compute(shape, body, name=name, tag=Tag.OUT_ELEMWISE_FUSABLE, attrs=attrs)
