"""Helpers shared by the graph operator definitions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tcomp import te
from tcomp.graph.ir import TensorType
from tcomp.graph.op import InferContext
from tcomp.ir import dtype as dt
from tcomp.ir.expr import Expr, cast
from tcomp.ops.conv import conv_output_size
from tcomp.te.tensor import Tensor


def broadcast_shapes(ctx: InferContext, shapes: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
    try:
        return tuple(int(d) for d in np.broadcast_shapes(*shapes))
    except ValueError:
        raise ctx.error(f"input shapes {', '.join(str(s) for s in shapes)} do not broadcast") from None


def same_dtype(ctx: InferContext, types: Sequence[TensorType]) -> str:
    dtypes = {t.dtype for t in types}
    if len(dtypes) != 1:
        raise ctx.error(f"inputs have different dtypes: {', '.join(sorted(dtypes))}")
    return types[0].dtype


def require_float(ctx: InferContext, t: TensorType, what: str = "input 0") -> None:
    if not dt.is_float(t.dtype):
        raise ctx.error(f"{what} must be a float tensor, got {t.dtype}")


def require_float_or_int32(ctx: InferContext, t: TensorType, what: str = "input 0") -> None:
    """Convolutions take float tensors and int32 ones (the integer convolutions of quantized models)."""
    if not dt.is_float(t.dtype) and t.dtype != "int32":
        raise ctx.error(f"{what} must be a float or int32 tensor, got {t.dtype}")


def int_attr(ctx: InferContext, key: str, default: int | None = None) -> int:
    value = ctx.attr(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ctx.error(f"attribute {key} must be an int, got {value!r}")
    return int(value)


def ints_attr(ctx: InferContext, key: str, length: int | None = None) -> tuple[int, ...]:
    """Attribute ``key``, a tuple of ints (in a kernel compiled for symbolic dimensions, ``tcomp.graph.dynamic``,
    some may be expressions of them)."""
    value = ctx.attr(key)
    if not isinstance(value, tuple) or not all(isinstance(v, (int, np.integer, Expr)) and not isinstance(v, bool)
                                               for v in value):
        raise ctx.error(f"attribute {key} must be a tuple of ints, got {value!r}")
    if length is not None and len(value) != length:
        raise ctx.error(f"attribute {key} must have {length} entries, got {value!r}")
    return tuple(v if isinstance(v, Expr) else int(v) for v in value)


def conv2d_output_hw(ctx: InferContext, size: tuple[int, int], kernel: tuple[int, int]) -> tuple[int, int]:
    """The output height and width of a 2-D convolution node over an input of ``size`` with a ``kernel``, from the
    node's ``strides``, ``pads`` and ``dilations`` (``ops.conv.conv_output_size``); an error if either is empty."""
    strides, pads, dilations = ints_attr(ctx, "strides", 2), ints_attr(ctx, "pads", 4), ints_attr(ctx, "dilations", 2)
    out_h = conv_output_size(size[0], kernel[0], strides[0], pads[0] + pads[2], dilations[0])
    out_w = conv_output_size(size[1], kernel[1], strides[1], pads[1] + pads[3], dilations[1])
    if out_h <= 0 or out_w <= 0:
        raise ctx.error(f"the kernel {kernel} is larger than the padded input {size}")
    return out_h, out_w


def normalize_axis(ctx: InferContext, axis: Any, ndim: int, what: str = "axis") -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -ndim <= axis < max(ndim, 1):
        raise ctx.error(f"{what}={axis!r} is out of range for a tensor of {ndim} dimensions")
    return int(axis) + ndim if axis < 0 else int(axis)


def fill(shape: Sequence[int], value: Any, dtype: str, name: str) -> Tensor:
    """A compute whose every element is the constant ``value``."""
    constant = te.const(value, dtype)
    return te.compute(tuple(shape), lambda *idx: constant, name=name, tag="elemwise")


def const_tensor(values: np.ndarray | Sequence[Any], dtype: str, name: str) -> Tensor:
    """A 1-D compute holding the (few) ``values`` (numbers, or expressions of symbolic dimensions) as a chain of
    selects."""
    flat = [cast(v, dtype) if isinstance(v, Expr) else te.const(v.item() if isinstance(v, np.generic) else v, dtype)
            for v in np.asarray(values, dtype=object).reshape(-1)]

    def body(i: Any) -> Any:
        result = flat[-1]
        for position in range(len(flat) - 2, -1, -1):
            result = te.if_then_else(i == position, flat[position], result)
        return result

    return te.compute((len(flat),), body, name=name, tag="injective")


def safe_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return cleaned or "node"


def cubic_near(t: Any, a: float) -> Any:
    """Keys' cubic convolution kernel with coefficient ``a`` at a distance ``t`` of at most 1 (Resize's cubic mode,
    GridSample's): ``(a + 2) t^3 - (a + 3) t^2 + 1``."""
    return ((a + 2) * t - (a + 3)) * t * t + 1.0


def cubic_far(t: Any, a: float) -> Any:
    """Keys' cubic kernel at a distance ``t`` between 1 and 2: ``a t^3 - 5 a t^2 + 8 a t - 4 a``."""
    return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
