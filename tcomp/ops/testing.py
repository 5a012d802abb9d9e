"""Numpy reference implementations of the operators and random test data (``topi.testing``); building a schedule
and comparing it with a reference is ``tcomp.backend.testing.build_and_check``.

The references are written for clarity (explicit loops over kernel positions), not speed; they define what the
operators compute.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from tcomp.ops.conv import conv_output_size
from tcomp.ops.pool import pool2d_output_size

__all__ = [
    "conv2d_nchw_python",
    "depthwise_conv2d_nchw_python",
    "erf_python",
    "layer_norm_python",
    "log_softmax_python",
    "pool2d_python",
    "random_data",
    "rms_norm_python",
    "softmax_python",
]


def random_data(rng: np.random.Generator, shape: Sequence[int], dtype: str = "float32", low: float = -1.0,
                high: float = 1.0) -> np.ndarray:
    """Uniform random data in ``[low, high)`` (integers: ``[low, high)`` rounded down) of ``dtype``."""
    if np.dtype(dtype).kind in "iu":
        return rng.integers(int(low), int(high), size=tuple(shape)).astype(dtype)
    if np.dtype(dtype).kind == "b":
        return rng.random(tuple(shape)) < 0.5
    return rng.uniform(low, high, size=tuple(shape)).astype(dtype)


_erf_vectorized = np.vectorize(math.erf, otypes=[np.float64])


def erf_python(x: np.ndarray) -> np.ndarray:
    """``erf`` elementwise (``math.erf``; scipy is not needed), in the dtype of ``x``."""
    return _erf_vectorized(x).astype(x.dtype)


def _pad_nchw(data: np.ndarray, pads: tuple[int, int, int, int], value: float = 0.0) -> np.ndarray:
    top, left, bottom, right = pads
    return np.pad(data, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=value)


def _pads4(padding: Any) -> tuple[int, int, int, int]:
    if isinstance(padding, int):
        return (padding,) * 4
    if len(padding) == 2:
        return padding[0], padding[1], padding[0], padding[1]
    return tuple(padding)  # type: ignore[return-value]


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (value[0], value[1])


def conv2d_nchw_python(
    data: np.ndarray, kernel: np.ndarray, stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: int = 1
) -> np.ndarray:
    """Grouped NCHW convolution: ``data[N, C, H, W]``, ``kernel[O, C // groups, KH, KW]``; accumulates in float64."""
    sh, sw = _pair(stride)
    dh, dw = _pair(dilation)
    padded = _pad_nchw(data.astype(np.float64), _pads4(padding))
    batch = data.shape[0]
    out_channels, group_in, kh, kw = kernel.shape
    out_h = conv_output_size(padded.shape[2], kh, sh, 0, dh)
    out_w = conv_output_size(padded.shape[3], kw, sw, 0, dw)
    group_out = out_channels // groups
    out = np.zeros((batch, out_channels, out_h, out_w))
    weights = kernel.astype(np.float64)
    for g in range(groups):
        block = padded[:, g * group_in : (g + 1) * group_in]
        for ry in range(kh):
            for rx in range(kw):
                window = block[:, :, ry * dh : ry * dh + sh * (out_h - 1) + 1 : sh,
                               rx * dw : rx * dw + sw * (out_w - 1) + 1 : sw]
                w = weights[g * group_out : (g + 1) * group_out, :, ry, rx]
                out[:, g * group_out : (g + 1) * group_out] += np.einsum("nchw,oc->nohw", window, w)
    return out.astype(data.dtype)


def depthwise_conv2d_nchw_python(
    data: np.ndarray, kernel: np.ndarray, stride: Any = 1, padding: Any = 0, dilation: Any = 1
) -> np.ndarray:
    """Depthwise NCHW convolution with ``kernel[C, M, KH, KW]``: output channel ``c`` reads input channel
    ``c // M`` with filter ``kernel[c // M, c % M]``."""
    channels, multiplier, kh, kw = kernel.shape
    grouped = kernel.reshape(channels * multiplier, 1, kh, kw)
    return conv2d_nchw_python(data, grouped, stride, padding, dilation, groups=channels)


def pool2d_python(
    data: np.ndarray,
    kernel: Any,
    stride: Any = None,
    padding: Any = 0,
    pool_type: str = "max",
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> np.ndarray:
    """NCHW max / average pooling with PyTorch's conventions (``ceil_mode``, ``count_include_pad``)."""
    kh, kw = _pair(kernel)
    sh, sw = _pair(kernel if stride is None else stride)
    top, left, bottom, right = _pads4(padding)
    batch, channels, height, width = data.shape

    out_h = pool2d_output_size(height, kh, sh, top, bottom, ceil_mode)
    out_w = pool2d_output_size(width, kw, sw, left, right, ceil_mode)
    out = np.zeros((batch, channels, out_h, out_w), dtype=np.float64)
    source = data.astype(np.float64)
    for y in range(out_h):
        for x in range(out_w):
            y0, x0 = y * sh - top, x * sw - left
            y1, x1 = min(y0 + kh, height + bottom), min(x0 + kw, width + right)
            window = source[:, :, max(y0, 0) : min(y1, height), max(x0, 0) : min(x1, width)]
            if pool_type == "max":
                empty = window.shape[2] == 0 or window.shape[3] == 0
                out[:, :, y, x] = -np.inf if empty else window.max(axis=(2, 3))
            else:
                if count_include_pad:
                    count = (y1 - y0) * (x1 - x0)
                else:
                    count = (min(y1, height) - max(y0, 0)) * (min(x1, width) - max(x0, 0))
                out[:, :, y, x] = window.sum(axis=(2, 3)) / count
    return out.astype(data.dtype)


def softmax_python(x: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = x.astype(np.float64) - x.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    return (e / e.sum(axis=axis, keepdims=True)).astype(x.dtype)


def log_softmax_python(x: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = x.astype(np.float64) - x.max(axis=axis, keepdims=True)
    return (shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))).astype(x.dtype)


def layer_norm_python(
    x: np.ndarray,
    gamma: np.ndarray | None,
    beta: np.ndarray | None,
    axis: int | Sequence[int] = -1,
    epsilon: float = 1e-5,
) -> np.ndarray:
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    source = x.astype(np.float64)
    mean = source.mean(axis=axes, keepdims=True)
    var = ((source - mean) ** 2).mean(axis=axes, keepdims=True)
    out = (source - mean) / np.sqrt(var + epsilon)
    norm_axes = sorted(a % x.ndim for a in axes)
    param_shape = [x.shape[d] if d in norm_axes else 1 for d in range(x.ndim)]
    if gamma is not None:
        out = out * gamma.astype(np.float64).reshape(param_shape)
    if beta is not None:
        out = out + beta.astype(np.float64).reshape(param_shape)
    return out.astype(x.dtype)


def rms_norm_python(x: np.ndarray, gamma: np.ndarray | None, axis: int | Sequence[int] = -1,
                    epsilon: float = 1e-6) -> np.ndarray:
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    source = x.astype(np.float64)
    out = source / np.sqrt((source * source).mean(axis=axes, keepdims=True) + epsilon)
    if gamma is not None:
        norm_axes = sorted(a % x.ndim for a in axes)
        out = out * gamma.astype(np.float64).reshape([x.shape[d] if d in norm_axes else 1 for d in range(x.ndim)])
    return out.astype(x.dtype)
