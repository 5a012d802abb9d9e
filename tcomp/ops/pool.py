"""2-D pooling in NCHW layout: windowed max / average pooling and global pooling."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

from tcomp import te
from tcomp.ir import dtype as dt
from tcomp.ir.expr import Expr, Var, cast, const, convert, max_expr, min_expr
from tcomp.ops.conv import pad
from tcomp.ops.utils import OP_KIND, OpError, OpKind, Tag, as_int, check_tensor, fold, padding_2d, positive_tuple
from tcomp.te.tensor import Tensor

# attribute of a pooling window's reduction ``out[n, c, y, x(, b)] = reduce_{ry, rx} data[n, c, y * sh + ry, x * sw
# + rx(, b)]`` (its ``stride`` attribute is ``(sh, sw)``): schedules may tile it as a depthwise convolution
POOL_WINDOW = "pool_window"

__all__ = ["PoolType", "global_pool", "pool2d", "pool2d_output_size"]


class PoolType(enum.StrEnum):
    """How a window is reduced."""

    MAX = "max"
    AVG = "avg"


def _pool_type(op: str, value: Any) -> PoolType:
    try:
        return PoolType(value)
    except ValueError:
        raise OpError(f"{op}: pool_type must be one of {[p.value for p in PoolType]}, got {value!r}") from None


def pool2d_output_size(size: int, kernel: int, stride: int, pad_before: int, pad_after: int, ceil_mode: bool) -> int:
    """Output extent of one spatial dimension. With ``ceil_mode`` the last window may overhang the padded input,
    but it must start inside the input or the leading padding (PyTorch's rule)."""
    span = size + pad_before + pad_after - kernel
    if ceil_mode:
        out = -(-span // stride) + 1
        if (out - 1) * stride >= size + pad_before:
            out -= 1
    else:
        out = span // stride + 1
    return out


def _window_count(start: Expr, kernel: int, low: Any, high: Any) -> Expr:
    """Number of window positions ``[start, start + kernel)`` inside ``[low, high)``."""
    return max_expr(min_expr(start + kernel, high) - max_expr(start, low), 0)


def pool2d(
    data: Tensor,
    kernel: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] = 0,
    pool_type: PoolType | str = PoolType.MAX,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    name: str = "pool2d",
) -> Tensor:
    """Windowed pooling. ``data[N, C, H, W]`` -> ``out[N, C, OH, OW]``,
    ``OH = (H + pad_top + pad_bottom - KH) // stride_h + 1`` (rounded up with ``ceil_mode``), and

        max: out[n, c, y, x] = max_{ry, rx} pad[n, c, y * sh + ry, x * sw + rx]    (padding is -inf)
        avg: out[n, c, y, x] = sum_{ry, rx} pad[n, c, y * sh + ry, x * sw + rx] / count[y, x]

    where ``count`` is the number of window positions inside the padded input (``count_include_pad=True``) or
    inside the input itself (``False``). ``stride`` defaults to ``kernel``; ``padding`` is an int,
    ``(vertical, horizontal)`` or ``(top, left, bottom, right)``. Average pooling is two stages: the window sum
    (``<name>_sum``) and the division.
    """
    op = "pool2d"
    check_tensor(op, "data", data, 4)
    kind = _pool_type(op, pool_type)
    kh, kw = positive_tuple(op, "kernel", kernel, 2)
    sh, sw = positive_tuple(op, "stride", kernel if stride is None else stride, 2)
    top, left, bottom, right = padding_2d(op, padding)
    if top >= kh or bottom >= kh or left >= kw or right >= kw:
        raise OpError(f"{op}: padding {padding!r} must be smaller than the kernel {(kh, kw)} on every side")
    height, width = as_int(data.shape[2]), as_int(data.shape[3])
    if height is None or width is None:
        raise OpError(f"{op}: the spatial dimensions of data must be constants, got {data.shape[2]}, {data.shape[3]}")
    out_h = pool2d_output_size(height, kh, sh, top, bottom, ceil_mode)
    out_w = pool2d_output_size(width, kw, sw, left, right, ceil_mode)
    if out_h <= 0 or out_w <= 0:
        raise OpError(f"{op}: kernel {(kh, kw)} is larger than the padded input {(height, width)} of {data.name}")
    # with ceil_mode the last window may reach past the padded input: pad further (these positions never count)
    extra_h = max(0, (out_h - 1) * sh + kh - (height + top + bottom))
    extra_w = max(0, (out_w - 1) * sw + kw - (width + left + right))
    if dt.is_float(data.dtype):
        fill: float | int = float("-inf") if kind is PoolType.MAX else 0.0
    else:
        fill = dt.min_value(data.dtype) if kind is PoolType.MAX else 0
    before = (0, 0, top, left)
    after = (0, 0, bottom + extra_h, right + extra_w)
    padded = pad(data, before, after, fill, name="pad_data") if any(before + after) else data
    ry = te.reduce_axis((0, kh), name="ry")
    rx = te.reduce_axis((0, kw), name="rx")
    shape = (data.shape[0], data.shape[1], convert(out_h), convert(out_w))

    if kind is PoolType.MAX:

        def window_max(n: Var, c: Var, y: Var, x: Var) -> Expr:
            return te.max(padded[n, c, y * sh + ry, x * sw + rx], axis=[ry, rx])

        return te.compute(shape, window_max, name=name, tag=Tag.COMM_REDUCE,
                          attrs={OP_KIND: OpKind.POOL2D, POOL_WINDOW: True, "stride": (sh, sw)})

    def window_sum(n: Var, c: Var, y: Var, x: Var) -> Expr:
        return te.sum(padded[n, c, y * sh + ry, x * sw + rx], axis=[ry, rx])

    total = te.compute(shape, window_sum, name=f"{name}_sum", tag=Tag.COMM_REDUCE,
                       attrs={POOL_WINDOW: True, "stride": (sh, sw)})
    acc = data.dtype if dt.is_float(data.dtype) else "float32"
    if count_include_pad:
        limits = ((0, height + top + bottom), (0, width + left + right))
    else:
        limits = ((top, top + height), (left, left + width))

    def average(n: Var, c: Var, y: Var, x: Var) -> Expr:
        count_h = _window_count(y * sh, kh, *limits[0])
        count_w = _window_count(x * sw, kw, *limits[1])
        if not ceil_mode and count_include_pad:
            count: Expr = const(kh * kw)
        else:
            count = count_h * count_w
        return cast(total[n, c, y, x], acc) / cast(count, acc)

    return te.compute(shape, average, name=name, tag=Tag.ELEMWISE, attrs={OP_KIND: OpKind.POOL2D})


def global_pool(data: Tensor, pool_type: PoolType | str = PoolType.AVG, name: str = "global_pool") -> Tensor:
    """``data[N, C, H, W]`` -> ``out[N, C, 1, 1]``: the max or the mean over each ``H x W`` plane. Average pooling is
    a sum stage (``<name>_sum``) and a division."""
    op = "global_pool"
    check_tensor(op, "data", data, 4)
    kind = _pool_type(op, pool_type)
    ry = te.reduce_axis((0, data.shape[2]), name="ry")
    rx = te.reduce_axis((0, data.shape[3]), name="rx")
    shape = (data.shape[0], data.shape[1], const(1), const(1))
    reducer = te.max if kind is PoolType.MAX else te.sum

    def window(n: Var, c: Var, y: Var, x: Var) -> Expr:
        return reducer(data[n, c, ry, rx], axis=[ry, rx])

    if kind is PoolType.MAX:
        return te.compute(shape, window, name=name, tag=Tag.COMM_REDUCE, attrs={OP_KIND: OpKind.GLOBAL_POOL})
    total = te.compute(shape, window, name=f"{name}_sum", tag=Tag.COMM_REDUCE)
    acc = data.dtype if dt.is_float(data.dtype) else "float32"
    count = fold(convert(data.shape[2]) * data.shape[3])

    def average(n: Var, c: Var, y: Var, x: Var) -> Expr:
        return cast(total[n, c, y, x], acc) / cast(count, acc)

    return te.compute(shape, average, name=name, tag=Tag.ELEMWISE, attrs={OP_KIND: OpKind.GLOBAL_POOL})

