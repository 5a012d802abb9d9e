"""Blocked layouts: layout strings, ``layout_transform`` between them, and 2-D convolution in NCHW[x]c.

A layout string names each dimension in storage order: an upper-case letter is a primal axis (``N``, ``C``, ``H``,
``W``; ``O``, ``I`` for kernels) and ``<factor><letter>`` in lower case is a block of that axis's primal of
``factor`` elements, stored as its own (inner) dimension. ``NCHW16c`` holds ``x[n, c // 16, h, w, c % 16]`` and
``OIHW16i16o`` holds ``w[o // 16, i // 16, h, w, i % 16, o % 16]``.

``conv2d_nchwc`` (and ``depthwise_conv2d_nchwc``, one channel per group) computes on blocked data ``[N, C // ic, H,
W, ic]`` and a blocked kernel ``[O // oc, C // ic, KH, KW, ic, oc]``: the innermost ``oc`` output channels of a block
are contiguous, so a CPU schedule keeps one SIMD vector of them per output pixel and reads each input channel as a
broadcast.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from tcomp import te
from tcomp.ir import dtype as dt
from tcomp.ir.expr import Expr, Var, cast, convert, floordiv, floormod
from tcomp.ops.conv import _out_dtype, _output_plane, _padded_input, _spatial_args, _window_axes
from tcomp.ops.utils import OP_KIND, OpError, OpKind, Tag, check_tensor, fold, static_dim
from tcomp.te.tensor import Tensor

__all__ = [
    "BlockedConv", "Layout", "choose_channel_block", "conv2d_nchw_via_nchwc", "conv2d_nchwc",
    "depthwise_conv2d_nchwc", "layout_transform", "pack_kernel",
]

_TOKEN = re.compile(r"(\d*)([A-Za-z])")


@dataclass(frozen=True)
class Layout:
    """A parsed layout string: ``axes[d]`` is the letter of dimension ``d`` (upper case: primal, lower case: a
    block of the upper-case axis) and ``factors[d]`` the block size (``None`` for primal axes)."""

    name: str
    axes: tuple[str, ...]
    factors: tuple[int | None, ...]

    @staticmethod
    def parse(text: str) -> Layout:
        if not isinstance(text, str) or not text:
            raise OpError(f"layout: expected a layout string such as 'NCHW16c', got {text!r}")
        axes: list[str] = []
        factors: list[int | None] = []
        position = 0
        while position < len(text):
            match = _TOKEN.match(text, position)
            if match is None:
                raise OpError(f"layout {text!r}: cannot read {text[position:]!r}")
            digits, letter = match.groups()
            if letter.isupper():
                if digits:
                    raise OpError(f"layout {text!r}: primal axis {letter} cannot have a factor")
                factors.append(None)
            else:
                if not digits or int(digits) <= 0:
                    raise OpError(f"layout {text!r}: block axis {letter} needs a positive factor, as in 16{letter}")
                factors.append(int(digits))
            axes.append(letter)
            position = match.end()
        if len(set(axes)) != len(axes):
            raise OpError(f"layout {text!r}: an axis appears twice")
        for letter in axes:
            if letter.islower() and letter.upper() not in axes:
                raise OpError(f"layout {text!r}: block axis {letter} has no primal axis {letter.upper()}")
        return Layout(text, tuple(axes), tuple(factors))

    @property
    def primal(self) -> frozenset[str]:
        return frozenset(a for a in self.axes if a.isupper())

    def block(self, primal: str) -> int | None:
        """The block factor of ``primal`` in this layout, or ``None`` when it is not blocked."""
        lower = primal.lower()
        return self.factors[self.axes.index(lower)] if lower in self.axes else None


def layout_transform(x: Tensor, src_layout: str, dst_layout: str, name: str = "T_layout_trans") -> Tensor:
    """``x`` (stored in ``src_layout``) rearranged into ``dst_layout`` over the same primal axes. Every primal
    coordinate ``p`` is rebuilt from the destination index (``p = outer * factor + inner`` for a blocked axis) and read
    from ``x`` at ``(p // f, ..., p % f)`` for the source's blocks. A primal extent must be a multiple of the
    destination's block factor."""
    op = "layout_transform"
    check_tensor(op, "x", x)
    src, dst = Layout.parse(src_layout), Layout.parse(dst_layout)
    if len(src.axes) != x.ndim:
        raise OpError(f"{op}: layout {src.name!r} has {len(src.axes)} dimensions, {x.name} has {x.ndim}")
    if src.primal != dst.primal:
        raise OpError(f"{op}: layouts {src.name!r} and {dst.name!r} have different primal axes")
    extents: dict[str, Expr] = {}
    for letter in src.axes:
        if letter.isupper():
            extent = convert(x.shape[src.axes.index(letter)])
            factor = src.block(letter)
            extents[letter] = fold(extent * factor) if factor else extent
    out_shape: list[Expr] = []
    for letter, factor in zip(dst.axes, dst.factors):
        if factor is not None:
            out_shape.append(convert(factor))
            continue
        block = dst.block(letter)
        if block is None:
            out_shape.append(extents[letter])
            continue
        extent = static_dim(op, "x", x, src.axes.index(letter)) * (src.block(letter) or 1)
        if extent % block:
            raise OpError(
                f"{op}: axis {letter} has {extent} elements, not a multiple of the block {block}{letter.lower()}"
            )
        out_shape.append(convert(extent // block))

    def body(*index: Var) -> Expr:
        primal: dict[str, Expr] = {}
        for letter in dst.primal:
            outer = index[dst.axes.index(letter)]
            block = dst.block(letter)
            primal[letter] = outer * block + index[dst.axes.index(letter.lower())] if block else outer
        source: list[Expr] = []
        for letter, factor in zip(src.axes, src.factors):
            if factor is not None:
                source.append(floormod(primal[letter.upper()], factor))
            else:
                block = src.block(letter)
                source.append(floordiv(primal[letter], block) if block else primal[letter])
        return x[tuple(source)]

    attrs = {OP_KIND: OpKind.LAYOUT_TRANSFORM, "src_layout": src.name, "dst_layout": dst.name}
    return te.compute(tuple(out_shape), body, name=name, tag=Tag.INJECTIVE, attrs=attrs)


def pack_kernel(kernel: Tensor, ic_block: int, oc_block: int, name: str = "kernel_packed") -> Tensor:
    """An ``OIHW`` kernel in ``OIHW{ic_block}i{oc_block}o`` (``conv2d_nchwc``'s kernel layout)."""
    check_tensor("pack_kernel", "kernel", kernel, 4)
    return layout_transform(kernel, "OIHW", f"OIHW{ic_block}i{oc_block}o", name=name)


def choose_channel_block(channels: int, lanes: int, full_rate_lanes: int | None = None) -> int:
    """The channel block for ``channels``: the divisor up to ``lanes`` (so odd channel counts still block exactly, as
    TVM's x86 conv2d does) whose vectors do the most useful multiply-adds per cycle, the larger of equals: ``lanes``
    when it divides them. A block of ``b`` channels takes vectors of the next power of two lanes (LLVM widens 10
    lanes to 16), and a vector of up to ``full_rate_lanes`` (``lanes`` by default; half of them on a CPU that runs
    its widest vectors at half the rate: ``Target.full_rate_vector_bits``) costs as much as one of that many lanes:
    1000 channels take blocks of 10 of 16 lanes (10 useful lanes a vector), or of 8 where 8 lanes run at the full
    rate."""
    full = max(1, min(lanes, full_rate_lanes or lanes))
    best, best_rate = 1, 0.0
    for block in range(min(lanes, channels), 0, -1):
        if channels % block == 0:
            rate = block / max(full, 1 << (block - 1).bit_length())
            if rate > best_rate:
                best, best_rate = block, rate
    return best


def conv2d_nchwc(
    data: Tensor,
    kernel: Tensor,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    out_dtype: str | None = None,
    name: str = "conv2d_nchwc",
    groups: int = 1,
) -> Tensor:
    """2-D convolution in blocked layout. ``data[N, C // ic, H, W, ic]`` (``NCHW{ic}c``) and
    ``kernel[O // oc, C // groups // ic, KH, KW, ic, oc]`` (``OIHW{ic}i{oc}o`` of the ``[O, C // groups, KH, KW]``
    kernel) -> ``out[N, O // oc, OH, OW, oc]`` (``NCHW{oc}c``), sizes as in ``conv2d_nchw``, and

        out[n, g, y, x, b] = sum_{c, ry, rx, i} pad[n, first(g) + c, y * sh + ry * dh, x * sw + rx * dw, i]
                                                * kernel[g, c, ry, rx, i, b],

    where ``first(g) = g // (O // oc // groups) * (C // groups // ic)`` is the first input block of output block
    ``g``'s group (0 with one group). With ``groups`` the blocks must not straddle groups: ``ic`` divides
    ``C // groups`` and ``oc`` divides ``O // groups``. The padding is its own stage (``pad_data``) so a schedule can
    place it.
    """
    op = "conv2d_nchwc"
    check_tensor(op, "data", data, 5)
    check_tensor(op, "kernel", kernel, 6)
    strides, pads, dilations = _spatial_args(op, stride, padding, dilation)
    chunks, ic_block = static_dim(op, "data", data, 1), static_dim(op, "data", data, 4)
    k_chunks, k_ic = static_dim(op, "kernel", kernel, 1), static_dim(op, "kernel", kernel, 4)
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise OpError(f"{op}: groups must be a positive int, got {groups!r}")
    out_chunks = static_dim(op, "kernel", kernel, 0)
    if (k_chunks * groups, k_ic) != (chunks, ic_block):
        per_group = f" per group ({groups} groups)" if groups > 1 else ""
        raise OpError(
            f"{op}: kernel input channels are {k_chunks} blocks of {k_ic}{per_group}, data has {chunks} blocks of "
            f"{ic_block}"
        )
    if out_chunks % groups:
        raise OpError(f"{op}: {out_chunks} output channel blocks do not split into {groups} groups")
    kh, kw = static_dim(op, "kernel", kernel, 2), static_dim(op, "kernel", kernel, 3)
    out_h, out_w = _output_plane(op, data, (kh, kw), strides, pads, dilations)
    acc = _out_dtype(op, data, out_dtype)
    padded = _padded_input(data, pads)
    ic = te.reduce_axis((0, k_chunks), name="ic")
    blocks_per_group = out_chunks // groups
    ry, rx = _window_axes(kh, kw)
    icb = te.reduce_axis((0, ic_block), name="icb")
    (sh, sw), (dh, dw) = strides, dilations

    def body(n: Var, g: Var, y: Var, x: Var, b: Var) -> Expr:
        block = ic if groups == 1 else g // blocks_per_group * k_chunks + ic
        value = padded[n, block, y * sh + ry * dh, x * sw + rx * dw, icb]
        weight = kernel[g, ic, ry, rx, icb, b]
        return te.sum(cast(value, acc) * cast(weight, acc), axis=[ic, ry, rx, icb])

    shape = (data.shape[0], kernel.shape[0], out_h, out_w, kernel.shape[5])
    attrs = {OP_KIND: OpKind.CONV2D_NCHWC, "stride": strides, "padding": pads, "dilation": dilations}
    if groups != 1:
        attrs["groups"] = groups
    return te.compute(shape, body, name=name, tag=Tag.OUT_ELEMWISE_FUSABLE, attrs=attrs)


def depthwise_conv2d_nchwc(
    data: Tensor,
    kernel: Tensor,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    name: str = "depthwise_conv2d_nchwc",
    pad_value: int = 0,
) -> Tensor:
    """Depthwise 2-D convolution in blocked layout. ``data[N, C // b, H, W, b]`` (``NCHW{b}c``) and
    ``kernel[C // b, 1, KH, KW, 1, b]`` (``OIHW1i{b}o`` of the ``[C, 1, KH, KW]`` kernel) ->
    ``out[N, C // b, OH, OW, b]``, sizes as in ``conv2d_nchw``, and

        out[n, g, y, x, b] = sum_{ry, rx} pad[n, g, y * sh + ry * dh, x * sw + rx * dw, b] * kernel[g, 0, ry, rx, 0, b].

    ``data`` may also be ``uint8`` with a float kernel: each value is converted as it is read, the padding is
    ``pad_value`` (a dequantized tensor's zero point), and ``out`` has the kernel's type.
    """
    op = "depthwise_conv2d_nchwc"
    check_tensor(op, "data", data, 5)
    check_tensor(op, "kernel", kernel, 6)
    if data.dtype != kernel.dtype and not (data.dtype == "uint8" and dt.is_float(kernel.dtype)):
        raise OpError(f"{op}: data of {data.dtype} and a kernel of {kernel.dtype}: the same float type, or uint8 data "
                      "and a float kernel, expected")
    if not 0 <= pad_value <= 255 or (pad_value and data.dtype != "uint8"):
        raise OpError(f"{op}: pad_value {pad_value} is for uint8 data (0 to 255)")
    strides, pads, dilations = _spatial_args(op, stride, padding, dilation)
    chunks, block = static_dim(op, "data", data, 1), static_dim(op, "data", data, 4)
    expected = (chunks, 1, 1, block)
    got = tuple(static_dim(op, "kernel", kernel, axis) for axis in (0, 1, 4, 5))
    if got != expected:
        raise OpError(f"{op}: a kernel of {chunks} blocks [C // b, 1, KH, KW, 1, b] with b = {block} expected, got "
                      f"shape {tuple(kernel.shape)}")
    kh, kw = static_dim(op, "kernel", kernel, 2), static_dim(op, "kernel", kernel, 3)
    out_h, out_w = _output_plane(op, data, (kh, kw), strides, pads, dilations)
    padded = _padded_input(data, pads, value=pad_value)
    ry, rx = _window_axes(kh, kw)
    (sh, sw), (dh, dw) = strides, dilations

    def body(n: Var, g: Var, y: Var, x: Var, b: Var) -> Expr:
        value = padded[n, g, y * sh + ry * dh, x * sw + rx * dw, b]
        if value.dtype != kernel.dtype:
            value = cast(value, kernel.dtype)
        return te.sum(value * kernel[g, 0, ry, rx, 0, b], axis=[ry, rx])

    shape = (data.shape[0], data.shape[1], out_h, out_w, data.shape[4])
    attrs = {OP_KIND: OpKind.DEPTHWISE_CONV2D_NCHWC, "stride": strides, "padding": pads, "dilation": dilations}
    return te.compute(shape, body, name=name, tag=Tag.OUT_ELEMWISE_FUSABLE, attrs=attrs)


@dataclass(frozen=True)
class BlockedConv:
    """The stages of ``conv2d_nchw_via_nchwc`` by role."""

    data_blocked: Tensor  # data in NCHW{ic}c
    kernel_packed: Tensor  # kernel in OIHW{ic}i{oc}o
    conv: Tensor  # conv2d_nchwc's result, NCHW{oc}c
    out: Tensor  # the result in NCHW


def conv2d_nchw_via_nchwc(
    data: Tensor,
    kernel: Tensor,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    ic_block: int | None = None,
    oc_block: int | None = None,
    lanes: int = 16,
) -> BlockedConv:
    """``conv2d_nchw`` computed in the blocked layout: ``data`` (NCHW) transformed to ``NCHW{ic}c``, the ``OIHW``
    kernel packed, ``conv2d_nchwc``, and the result transformed back to NCHW. Blocks default to
    ``choose_channel_block(channels, lanes)``."""
    op = "conv2d_nchw_via_nchwc"
    check_tensor(op, "data", data, 4)
    check_tensor(op, "kernel", kernel, 4)
    ic = ic_block or choose_channel_block(static_dim(op, "data", data, 1), lanes)
    oc = oc_block or choose_channel_block(static_dim(op, "kernel", kernel, 0), lanes)
    blocked = layout_transform(data, "NCHW", f"NCHW{ic}c", name="data_blocked")
    packed = pack_kernel(kernel, ic, oc)
    conv = conv2d_nchwc(blocked, packed, stride, padding, dilation)
    out = layout_transform(conv, f"NCHW{oc}c", "NCHW", name="conv_nchw")
    return BlockedConv(blocked, packed, conv, out)
