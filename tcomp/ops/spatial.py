"""Convolutions and pooling over any number of spatial dimensions (1-D, 2-D, 3-D ...), layout ``N, C, *spatial``.

The 2-D operators of ``conv.py`` and ``pool.py`` have tuned schedules and layouts; these are the general forms the
graph uses for what those do not cover (3-D convolutions, transposed convolutions of any rank, dilated pooling,
Lp pooling, the argmax of a max pooling). Each is one reduction stage per output (plus a count stage for average
pooling), scheduled like any reduction. Padding is read inline: a window position outside the input is tested and
skipped, never read (reads use clamped indices), so no padded copy is made.

``pads`` are the begins of every spatial dimension, then the ends (ONNX's order).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tcomp import te
from tcomp.ir import dtype as dt
from tcomp.ir.expr import Expr, cast, const, floordiv, floormod
from tcomp.ops.conv import conv_output_size
from tcomp.ops.pool import pool2d_output_size
from tcomp.ops.utils import OpError, Tag, check_tensor, clamp_index, static_dim
from tcomp.te.tensor import Tensor

__all__ = ["conv_nd", "conv_output_size", "conv_transpose_nd", "conv_transpose_output_size", "max_pool_indices",
           "pool_nd", "pool_output_size"]


def conv_transpose_output_size(size: int, kernel: int, stride: int, pad_total: int, dilation: int,
                               output_padding: int) -> int:
    """``stride * (size - 1) + output_padding + dilation * (kernel - 1) + 1 - pad_total``."""
    return stride * (size - 1) + output_padding + dilation * (kernel - 1) + 1 - pad_total


def pool_output_size(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int, dilation: int,
                     ceil_mode: bool) -> int:
    """Output extent of a pooling window of ``kernel`` positions ``dilation`` apart (``pool2d_output_size``'s rule
    for the window's full span)."""
    return pool2d_output_size(size, dilation * (kernel - 1) + 1, stride, pad_begin, pad_end, ceil_mode)


def _spatial(op: str, data: Tensor, rank: int, values: Sequence[int], what: str, minimum: int) -> tuple[int, ...]:
    if len(values) != rank or any(not isinstance(v, int) or v < minimum for v in values):
        raise OpError(f"{op}: {what} {tuple(values)} must be {rank} ints of at least {minimum} for {data.name}")
    return tuple(values)


def _window(position: Sequence[Any], taps: Sequence[Any], kernel: Sequence[int], strides: Sequence[int],
            dilations: Sequence[int], begins: Sequence[int], sizes: Sequence[int],
            out: Sequence[int]) -> tuple[list[Expr], Expr | None]:
    """The input indices the window taps read (clamped into the input) and the condition that they are inside it
    (None when every window lies inside)."""
    indices, conditions = [], []
    for i, (y, tap) in enumerate(zip(position, taps)):
        index = y * strides[i] + tap.var * dilations[i] - begins[i]
        indices.append(clamp_index(index, const(sizes[i])))
        if begins[i]:
            conditions.append(index >= 0)
        if (out[i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] - begins[i] >= sizes[i]:
            conditions.append(index < sizes[i])  # the last window reaches past the end
    return indices, te.all(*conditions) if conditions else None


class _Conv:
    """The checked arguments of a (transposed) convolution: spatial rank, input sizes, kernel, strides,
    dilations, pads and the channel counts."""

    def __init__(self, op: str, data: Tensor, weight: Tensor, strides: Sequence[int], pads: Sequence[int],
                 dilations: Sequence[int]) -> None:
        check_tensor(op, "data", data)
        check_tensor(op, "weight", weight, data.ndim)
        self.rank = rank = data.ndim - 2
        self.sizes = tuple(static_dim(op, "data", data, 2 + i) for i in range(rank))
        self.kernel = tuple(static_dim(op, "weight", weight, 2 + i) for i in range(rank))
        self.strides = _spatial(op, data, rank, strides, "strides", 1)
        self.dilations = _spatial(op, data, rank, dilations, "dilations", 1)
        self.pads = _spatial(op, data, 2 * rank, pads, "pads", 0)
        self.channels = static_dim(op, "data", data, 1)
        self.weight_channels = (static_dim(op, "weight", weight, 0), static_dim(op, "weight", weight, 1))


def conv_nd(data: Tensor, weight: Tensor, strides: Sequence[int], pads: Sequence[int], dilations: Sequence[int],
            groups: int = 1, name: str = "conv_nd") -> Tensor:
    """Grouped convolution: ``data[N, C, *S]``, ``weight[O, C // groups, *K]`` -> ``out[N, O, *Y]`` with
    ``Y[i] = conv_output_size(S[i], K[i], strides[i], pads[i] + pads[rank + i], dilations[i])`` and

        out[n, o, *y] = sum_{rc, *k} data[n, g * C // groups + rc, *(y * strides + k * dilations - pads_begin)]
                                     * weight[o, rc, *k],   g = o // (O // groups),

    terms reading outside ``data`` being zero."""
    op = "conv_nd"
    conv = _Conv(op, data, weight, strides, pads, dilations)
    rank, sizes, kernel = conv.rank, conv.sizes, conv.kernel
    strides, dilations, pads = conv.strides, conv.dilations, conv.pads
    channels, (out_channels, group_in) = conv.channels, conv.weight_channels
    if groups <= 0 or channels % groups or out_channels % groups or group_in * groups != channels:
        raise OpError(f"{op}: weight {tuple(weight.shape)} does not fit {channels} input channels in {groups} groups")
    out = [conv_output_size(s, k, st, pads[i] + pads[rank + i], d)
           for i, (s, k, st, d) in enumerate(zip(sizes, kernel, strides, dilations))]
    if min(out) <= 0:
        raise OpError(f"{op}: the dilated kernel {kernel} is larger than the padded input {sizes}")
    group_out = out_channels // groups
    rc = te.reduce_axis((0, group_in), name="rc")
    taps = [te.reduce_axis((0, k), name=f"rk{i}") for i, k in enumerate(kernel)]

    def body(*index: Any) -> Expr:
        n, o, *y = index
        channel = rc.var if groups == 1 else floordiv(o, group_out) * group_in + rc.var
        indices, inside = _window(y, taps, kernel, strides, dilations, pads[:rank], sizes, out)
        product = data[(n, channel, *indices)] * weight[(o, rc.var, *[t.var for t in taps])]
        value = product if inside is None else te.if_then_else(inside, product, const(0, data.dtype))
        return te.sum(value, axis=[rc, *taps])

    return te.compute((data.shape[0], out_channels, *out), body, name=name, tag=Tag.OUT_ELEMWISE_FUSABLE)


def conv_transpose_nd(data: Tensor, weight: Tensor, strides: Sequence[int], pads: Sequence[int],
                      dilations: Sequence[int], output_padding: Sequence[int], groups: int = 1,
                      name: str = "conv_transpose_nd") -> Tensor:
    """Transposed convolution (the gradient of ``conv_nd``): ``data[N, C, *S]``, ``weight[C, O // groups, *K]`` ->
    ``out[N, O, *Y]`` with ``Y[i] = conv_transpose_output_size(...)`` and

        out[n, o, *y] = sum_{rc, *k} data[n, c, *x] * weight[c, o % (O // groups), *k],   c = g * C // groups + rc,

    over the taps where ``y + pads_begin = x * strides + k * dilations`` for an integer ``x`` inside ``data``."""
    op = "conv_transpose_nd"
    conv = _Conv(op, data, weight, strides, pads, dilations)
    rank, sizes, kernel = conv.rank, conv.sizes, conv.kernel
    strides, dilations, pads = conv.strides, conv.dilations, conv.pads
    output_padding = _spatial(op, data, rank, output_padding, "output_padding", 0)
    channels = conv.channels
    if groups <= 0 or channels % groups or conv.weight_channels[0] != channels:
        raise OpError(f"{op}: weight {tuple(weight.shape)} does not fit {channels} input channels in {groups} groups")
    group_in, group_out = channels // groups, conv.weight_channels[1]
    out = [conv_transpose_output_size(sizes[i], kernel[i], strides[i], pads[i] + pads[rank + i], dilations[i],
                                      output_padding[i]) for i in range(rank)]
    if min(out) <= 0:
        raise OpError(f"{op}: the output would be empty ({out})")
    rc = te.reduce_axis((0, group_in), name="rc")
    taps = [te.reduce_axis((0, k), name=f"rk{i}") for i, k in enumerate(kernel)]

    def body(*index: Any) -> Expr:
        n, o, *y = index
        channel = rc.var if groups == 1 else floordiv(o, group_out) * group_in + rc.var
        conditions, indices = [], []
        for i, (position, tap) in enumerate(zip(y, taps)):
            shifted = position + pads[i] - tap.var * dilations[i]
            index = floordiv(shifted, strides[i]) if strides[i] > 1 else shifted
            conditions.extend([shifted >= 0, index < sizes[i]])
            if strides[i] > 1:
                conditions.append(floormod(shifted, strides[i]) == 0)
            indices.append(clamp_index(index, const(sizes[i])))
        w = weight[(channel, o if groups == 1 else floormod(o, group_out), *[t.var for t in taps])]
        value = te.if_then_else(te.all(*conditions), data[(n, channel, *indices)] * w, const(0, data.dtype))
        return te.sum(value, axis=[rc, *taps])

    shape = (data.shape[0], group_out * groups, *out)
    return te.compute(shape, body, name=name, tag=Tag.OUT_ELEMWISE_FUSABLE)


class _Pool:
    """The checked arguments of a pooling and the output shape they give."""

    def __init__(self, op: str, data: Tensor, kernel: Sequence[int], strides: Sequence[int], pads: Sequence[int],
                 dilations: Sequence[int], ceil_mode: bool) -> None:
        check_tensor(op, "data", data)
        self.rank = rank = data.ndim - 2
        if rank < 1:
            raise OpError(f"{op}: data needs at least one spatial dimension, got {tuple(data.shape)}")
        self.sizes = tuple(static_dim(op, "data", data, 2 + i) for i in range(rank))
        self.kernel = _spatial(op, data, rank, kernel, "kernel", 1)
        self.strides = _spatial(op, data, rank, strides, "strides", 1)
        self.dilations = _spatial(op, data, rank, dilations, "dilations", 1)
        self.pads = _spatial(op, data, 2 * rank, pads, "pads", 0)
        self.out = [pool_output_size(self.sizes[i], self.kernel[i], self.strides[i], self.pads[i],
                                     self.pads[rank + i], self.dilations[i], ceil_mode) for i in range(rank)]
        if min(self.out) <= 0:
            raise OpError(f"{op}: the window {self.kernel} is larger than the padded input {self.sizes}")
        self.shape = (*data.shape[:2], *self.out)

    def taps(self) -> list[Any]:
        return [te.reduce_axis((0, k), name=f"rk{i}") for i, k in enumerate(self.kernel)]

    def window(self, y: Sequence[Any], taps: Sequence[Any]) -> tuple[list[Expr], Expr]:
        indices, inside = _window(y, taps, self.kernel, self.strides, self.dilations, self.pads[: self.rank],
                                  self.sizes, self.out)
        return indices, const(True, "bool") if inside is None else inside


def pool_nd(data: Tensor, kind: str, kernel: Sequence[int], strides: Sequence[int], pads: Sequence[int],
            dilations: Sequence[int], ceil_mode: bool = False, count_include_pad: bool = False, p: int = 2,
            name: str = "pool_nd") -> Tensor:
    """Pooling over windows of ``kernel`` positions ``dilations`` apart, ``strides`` apart, the input padded by
    ``pads`` (ONNX's MaxPool, AveragePool and LpPool):

        max: out[n, c, *y] = max of the window's positions inside the input
        avg: out[n, c, *y] = their sum / count, count = the positions inside the input (``count_include_pad``:
             inside the padded input; with ``ceil_mode`` an overhanging window counts only up to its end)
        lp:  out[n, c, *y] = (sum of |x|^p over the positions inside the input) ^ (1 / p)
    """
    op = "pool_nd"
    if kind not in ("max", "avg", "lp"):
        raise OpError(f"{op}: kind must be max, avg or lp, got {kind!r}")
    if kind == "lp" and p <= 0:
        raise OpError(f"{op}: p must be positive, got {p}")
    pool = _Pool(op, data, kernel, strides, pads, dilations, ceil_mode)
    taps = pool.taps()

    if kind == "max":
        lowest = float("-inf") if dt.is_float(data.dtype) else dt.min_value(data.dtype)

        def window_max(*index: Any) -> Expr:
            n, c, *y = index
            indices, inside = pool.window(y, taps)
            return te.max(te.if_then_else(inside, data[(n, c, *indices)], const(lowest, data.dtype)), axis=taps)

        return te.compute(pool.shape, window_max, name=name, tag=Tag.COMM_REDUCE)

    acc = data.dtype if dt.is_float(data.dtype) else "float32"

    def window_sum(*index: Any) -> Expr:
        n, c, *y = index
        indices, inside = pool.window(y, taps)
        value = cast(data[(n, c, *indices)], acc)
        if kind == "lp":
            value = value * value if p == 2 else te.pow(te.abs(value), const(float(p), acc))
        return te.sum(te.if_then_else(inside, value, const(0, acc)), axis=taps)

    total = te.compute(pool.shape, window_sum, name=f"{name}_sum", tag=Tag.COMM_REDUCE)
    if kind == "lp":
        def root(*i: Any) -> Expr:
            return te.sqrt(total[i]) if p == 2 else te.pow(total[i], const(1.0 / p, acc))

        return te.compute(pool.shape, root, name=name, tag=Tag.ELEMWISE)
    count_taps = pool.taps()
    rank = pool.rank

    def window_count(*y: Any) -> Expr:
        inside = []
        for i, (position, tap) in enumerate(zip(y, count_taps)):
            index = position * pool.strides[i] + tap.var * pool.dilations[i] - pool.pads[i]
            low, high = 0, pool.sizes[i]
            if count_include_pad:
                low, high = -pool.pads[i], pool.sizes[i] + pool.pads[rank + i]
            inside.extend([index >= low, index < high])
        return te.sum(te.if_then_else(te.all(*inside), const(1.0, acc), const(0.0, acc)), axis=count_taps)

    count = te.compute(tuple(pool.out), window_count, name=f"{name}_count", tag=Tag.COMM_REDUCE)
    def average(*index: Any) -> Expr:
        return total[index] / count[index[2:]]

    return te.compute(pool.shape, average, name=name, tag=Tag.BROADCAST)


def max_pool_indices(data: Tensor, pooled: Tensor, kernel: Sequence[int], strides: Sequence[int],
                     pads: Sequence[int], dilations: Sequence[int], ceil_mode: bool = False, storage_order: int = 0,
                     name: str = "max_pool_indices") -> Tensor:
    """Where each maximum of ``pooled = pool_nd(data, "max", ...)`` is: the smallest flat index (int64) into ``data``
    of a window position holding it (the first in window order, as onnxruntime and PyTorch give). The index counts
    batch and channel: ``(n * C + c) * prod(S) + s``, where ``s`` is the position row-major (``storage_order=0``) or,
    with ``storage_order=1``, column-major over the spatial dimensions."""
    op = "max_pool_indices"
    pool = _Pool(op, data, kernel, strides, pads, dilations, ceil_mode)
    check_tensor(op, "pooled", pooled, data.ndim)
    if storage_order not in (0, 1):
        raise OpError(f"{op}: storage_order must be 0 or 1, got {storage_order}")
    taps = pool.taps()
    plane = math.prod(pool.sizes)
    order = range(pool.rank) if storage_order == 0 else reversed(range(pool.rank))
    channels = static_dim(op, "data", data, 1)
    never = const(dt.max_value("int64"), "int64")

    def first_max(*index: Any) -> Expr:
        n, c, *y = index
        indices, inside = pool.window(y, taps)
        flat: Expr = (cast(n, "int64") * channels + cast(c, "int64")) * plane
        stride = 1
        offset: Expr = const(0, "int64")
        for i in reversed(list(order)):
            offset = offset + cast(indices[i], "int64") * stride
            stride *= pool.sizes[i]
        hit = te.all(inside, data[(n, c, *indices)] == pooled[(n, c, *y)])
        return te.min(te.if_then_else(hit, flat + offset, never), axis=taps)

    return te.compute(pool.shape, first_max, name=name, tag=Tag.COMM_REDUCE)
