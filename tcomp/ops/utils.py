"""Helpers shared by the operator definitions: argument checking, shape arithmetic, axis normalization, tags."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

from tcomp.arith import simplify
from tcomp.ir.expr import Expr, const, const_int_value, convert, max_expr, min_expr
from tcomp.te.tensor import Tensor

Shape = tuple[Expr, ...]


class OpError(ValueError):
    """An operator called with ill-formed shapes or attributes; the message names the operator and the argument."""


class Tag:
    """Pattern tags put on computes (as in TOPI), read later by graph fusion and default schedules."""

    ELEMWISE = "elemwise"
    BROADCAST = "broadcast"
    INJECTIVE = "injective"
    COMM_REDUCE = "comm_reduce"
    OUT_ELEMWISE_FUSABLE = "out_elemwise_fusable"


class OpKind(enum.StrEnum):
    """Which library operator a compute stage is, kept in ``op.attrs[OP_KIND]`` (with the operator's attributes
    beside it) so default schedules can recognize it whatever the stage is named. Multi-stage operators mark the
    stage that produces their result."""

    PAD = "pad"
    CONV2D_NCHW = "conv2d_nchw"
    DEPTHWISE_CONV2D_NCHW = "depthwise_conv2d_nchw"
    CONV2D_NCHWC = "conv2d_nchwc"
    DEPTHWISE_CONV2D_NCHWC = "depthwise_conv2d_nchwc"
    MATMUL = "matmul"
    BATCH_MATMUL = "batch_matmul"
    PACKED_MATVEC = "packed_matvec"
    QUANTIZED_MATMUL = "quantized_matmul"
    IM2COL = "im2col"
    SOFTMAX = "softmax"
    LOG_SOFTMAX = "log_softmax"
    LAYER_NORM = "layer_norm"
    RMS_NORM = "rms_norm"
    POOL2D = "pool2d"
    GLOBAL_POOL = "global_pool"
    LAYOUT_TRANSFORM = "layout_transform"
    ATTENTION = "attention"
    WINOGRAD_KERNEL = "winograd_kernel"
    WINOGRAD_INPUT = "winograd_input"
    CONV2D_WINOGRAD = "conv2d_winograd"
    WINOGRAD_OUTPUT = "winograd_output"
    RESIZE_ROWS = "resize_rows"  # a linear resize's first axis, computed once for the pass over the others


OP_KIND = "op_kind"


def op_kind(op: Any) -> OpKind | None:
    """The ``OpKind`` recorded on an operation, or ``None`` for a stage that is not a marked operator."""
    attrs = getattr(op, "attrs", None) or {}
    kind = attrs.get(OP_KIND)
    return OpKind(kind) if kind is not None else None


def check_tensor(op: str, name: str, value: Any, ndim: int | None = None) -> Tensor:
    """``value`` as a tensor (of ``ndim`` dimensions when given), or an ``OpError``."""
    if not isinstance(value, Tensor):
        raise OpError(f"{op}: argument {name} must be a tensor, got {type(value).__name__}")
    if ndim is not None and value.ndim != ndim:
        raise OpError(f"{op}: argument {name} must have {ndim} dimensions, got shape {shape_str(value.shape)}")
    return value


def shape_str(shape: Sequence[Any]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def as_int(value: Any) -> int | None:
    """The Python int of a constant dimension, else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return const_int_value(value)


def as_dim(value: Any) -> Any:
    """A dimension as a Python int where it is constant, else the expression itself (a batch, a cache's length)."""
    number = as_int(value)
    return value if number is None else number


def same_dim(a: Any, b: Any) -> bool:
    """Whether two dimensions are provably equal: equal constants, or expressions whose difference simplifies to 0
    (the same symbolic variables, not merely structurally alike ones)."""
    ia, ib = as_int(a), as_int(b)
    if ia is not None and ib is not None:
        return ia == ib
    if convert(a) is convert(b):
        return True
    return as_int(simplify(convert(a) - convert(b))) == 0


def fold(value: Expr) -> Expr:
    """A simplified dimension expression (a constant when it is one)."""
    return simplify(value)


def shape_product(shape: Sequence[Any]) -> Expr:
    """The number of elements of ``shape``, folded."""
    result: Expr = const(1)
    for dim in shape:
        result = result * convert(dim)
    return fold(result)


def element_count(shape: Sequence[Any]) -> Any:
    """The number of elements of ``shape``: an int, or an expression of symbolic dimensions."""
    return as_dim(shape_product(shape))


def normalize_axis(op: str, axis: Any, ndim: int, argument: str = "axis") -> int:
    """A (possibly negative) axis as an index in ``[0, ndim)``."""
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise OpError(f"{op}: {argument} must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise OpError(f"{op}: {argument}={axis} is out of range for a tensor of {ndim} dimensions")
    return axis + ndim if axis < 0 else axis


def normalize_axes(op: str, axis: Any, ndim: int, argument: str = "axis") -> tuple[int, ...]:
    """``None`` (all axes), an int or a sequence of ints as sorted, distinct, non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (tuple, list)):
        items = list(axis)
    else:
        items = [axis]
    result = [normalize_axis(op, a, ndim, argument) for a in items]
    if len(set(result)) != len(result):
        raise OpError(f"{op}: {argument}={tuple(items)} repeats an axis")
    return tuple(sorted(result))


def int_tuple(op: str, argument: str, value: Any, length: int) -> tuple[int, ...]:
    """An int (repeated ``length`` times) or a sequence of ``length`` ints."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,) * length
    if isinstance(value, (tuple, list)) and len(value) == length:
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return tuple(value)
    raise OpError(f"{op}: {argument} must be an int or a tuple of {length} ints, got {value!r}")


def positive_tuple(op: str, argument: str, value: Any, length: int) -> tuple[int, ...]:
    result = int_tuple(op, argument, value, length)
    if any(v <= 0 for v in result):
        raise OpError(f"{op}: {argument} must be positive, got {value!r}")
    return result


def padding_2d(op: str, padding: Any) -> tuple[int, int, int, int]:
    """``padding`` as (top, left, bottom, right): an int, (vertical, horizontal) or (top, left, bottom, right)."""
    if isinstance(padding, int) and not isinstance(padding, bool):
        values: tuple[int, ...] = (padding,) * 4
    elif isinstance(padding, (tuple, list)) and len(padding) == 2:
        pair = int_tuple(op, "padding", padding, 2)
        values = (pair[0], pair[1], pair[0], pair[1])
    elif isinstance(padding, (tuple, list)) and len(padding) == 4:
        values = int_tuple(op, "padding", padding, 4)
    else:
        raise OpError(
            f"{op}: padding must be an int, a 2-tuple (vertical, horizontal) or a 4-tuple (top, left, bottom, right), "
            f"got {padding!r}"
        )
    if any(v < 0 for v in values):
        raise OpError(f"{op}: padding must be non-negative, got {padding!r}")
    return values[0], values[1], values[2], values[3]


def static_dim(op: str, argument: str, tensor: Tensor, axis: int) -> int:
    """A dimension that must be a known constant (for example the channels of a convolution)."""
    value = as_int(tensor.shape[axis])
    if value is None:
        raise OpError(
            f"{op}: dimension {axis} of {argument} ({tensor.name}) must be a constant, got {tensor.shape[axis]}"
        )
    return value


def clamp_index(index: Expr, extent: Expr) -> Expr:
    """``index`` clamped into ``[0, extent)``. Used for reads inside ``if_then_else``, whose branches are both
    evaluated: the clamped read stays inside the buffer whichever branch is taken."""
    return max_expr(min_expr(index, extent - 1), 0)
