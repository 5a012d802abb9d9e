"""Elementwise graph operators: activations and unary math, broadcast binary arithmetic, comparisons, ``where``,
``clip``, ``cast``, ``identity``.

Unary operators keep the input's shape and dtype (``cast`` changes the dtype); binary operators broadcast as numpy
does and need equal input dtypes. Integer division truncates toward zero (as C and onnxruntime do); ``power``
returns the base's dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tcomp import ops, te
from tcomp.graph.ir import GraphError, Node, TensorType
from tcomp.graph.op import InferContext, LowerContext, OpPattern, register_op
from tcomp.graph.opdefs.common import broadcast_shapes, same_dtype
from tcomp.ir import dtype as dt
from tcomp.ir.expr import Expr, max_expr, min_expr
from tcomp.te.tensor import Tensor
from tcomp.transform.storage_types import saturated


# ---------------------------------------------------------------------------------------------------------------------
# unary
def infer_same(ctx: InferContext) -> list[TensorType]:
    return [ctx.type(0)]


def infer_float_unary(ctx: InferContext) -> list[TensorType]:
    t = ctx.type(0)
    if not dt.is_float(t.dtype):
        raise ctx.error(f"input must be a float tensor, got {t.dtype}")
    return [t]


def unary_lowering(fmap: Callable[[Expr, LowerContext], Any]) -> Callable[[LowerContext], list[Tensor]]:
    def lower(ctx: LowerContext) -> list[Tensor]:
        x = ctx.tensor(0)
        return [te.compute(x.shape, lambda *i: fmap(x[i], ctx), name=ctx.name, tag="elemwise")]

    return lower


def softplus_expr(v: Expr, ctx: LowerContext) -> Expr:
    # log(1 + exp(v)) computed as max(v, 0) + log(1 + exp(-|v|)): no overflow for large |v|
    return max_expr(v, te.const(0.0, v.dtype)) + te.log(te.exp(-te.abs(v)) + 1.0)


def _hard_sigmoid(v: Expr, ctx: LowerContext) -> Expr:
    alpha, beta = float(ctx.attr("alpha", 0.2)), float(ctx.attr("beta", 0.5))
    return max_expr(min_expr(v * alpha + beta, te.const(1.0, v.dtype)), te.const(0.0, v.dtype))


def _hard_swish(v: Expr, ctx: LowerContext) -> Expr:
    gate = max_expr(min_expr(v * (1.0 / 6.0) + 0.5, te.const(1.0, v.dtype)), te.const(0.0, v.dtype))
    return v * gate


def _gelu(v: Expr, ctx: LowerContext) -> Expr:
    if ctx.attr("approximate", "none") == "tanh":  # 0.5 (1 + tanh(u)) = sigmoid(2 u): see passes/simplify.py
        inner = (v + v * v * v * 0.044715) * (2.0 * math.sqrt(2.0 / math.pi))
        return v * te.sigmoid(inner)
    return v * 0.5 * (te.erf(v * (1.0 / math.sqrt(2.0))) + 1.0)


def _leaky_relu(v: Expr, ctx: LowerContext) -> Expr:
    alpha = float(ctx.attr("alpha", 0.01))
    return te.if_then_else(v > te.const(0, v.dtype), v, v * alpha)


def _relu(v: Expr, ctx: LowerContext) -> Expr:
    return max_expr(v, te.const(0, v.dtype))


def _neg(v: Expr, ctx: LowerContext) -> Expr:
    return ops.elemwise.negate(v)


def _abs(v: Expr, ctx: LowerContext) -> Expr:
    return te.abs(v)


def _identity(v: Expr, ctx: LowerContext) -> Expr:
    return v


_FLOAT_UNARY: dict[str, Callable[[Expr, LowerContext], Any]] = {
    "sigmoid": lambda v, ctx: te.sigmoid(v),
    "tanh": lambda v, ctx: te.tanh(v),
    "exp": lambda v, ctx: te.exp(v),
    "log": lambda v, ctx: te.log(v),
    "sqrt": lambda v, ctx: te.sqrt(v),
    "erf": lambda v, ctx: te.erf(v),
    "softplus": softplus_expr,
    "hard_sigmoid": _hard_sigmoid,
    "hard_swish": _hard_swish,
    "gelu": _gelu,
    "leaky_relu": _leaky_relu,
}


def eval_unary(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[Node, Sequence[np.ndarray]], list[np.ndarray]]:
    return lambda node, arrays: [fn(arrays[0])]


# the float operators whose numpy value is the generated code's (correctly rounded in both: constant folding)
_FLOAT_UNARY_EVAL = {"sqrt": eval_unary(np.sqrt)}
for _name, _fmap in _FLOAT_UNARY.items():
    register_op(_name, OpPattern.ELEMWISE, infer_float_unary, unary_lowering(_fmap), _FLOAT_UNARY_EVAL.get(_name))


register_op("relu", OpPattern.ELEMWISE, infer_same, unary_lowering(_relu), eval_unary(lambda a: np.maximum(a, 0)))
register_op("negative", OpPattern.ELEMWISE, infer_same, unary_lowering(_neg), eval_unary(np.negative))
register_op("abs", OpPattern.ELEMWISE, infer_same, unary_lowering(_abs), eval_unary(np.abs))
register_op("identity", OpPattern.ELEMWISE, infer_same, unary_lowering(_identity), eval_unary(lambda a: a))
register_op("dropout", OpPattern.ELEMWISE, infer_same, unary_lowering(_identity), eval_unary(lambda a: a))  # inference


# clip: attributes min / max (None: unbounded); min > max gives max everywhere (as numpy.clip)
def _infer_clip(ctx: InferContext) -> list[TensorType]:
    for key in ("min", "max"):
        value = ctx.attr(key)
        if value is not None and not isinstance(value, (int, float)):
            raise ctx.error(f"attribute {key} must be a number, got {value!r}")
    return [ctx.type(0)]


def _clip(v: Expr, ctx: LowerContext) -> Expr:
    lo, hi = ctx.attr("min"), ctx.attr("max")
    integer = not dt.is_float(v.dtype)
    if lo is not None:
        v = max_expr(v, te.const(int(lo) if integer else float(lo), v.dtype))
    if hi is not None:
        v = min_expr(v, te.const(int(hi) if integer else float(hi), v.dtype))
    return v


def _eval_clip(node: Node, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    lo, hi = node.attr("min"), node.attr("max")
    value = arrays[0]
    if lo is not None:
        value = np.maximum(value, lo)
    if hi is not None:
        value = np.minimum(value, hi)
    return [value]


register_op("clip", OpPattern.ELEMWISE, _infer_clip, unary_lowering(_clip), _eval_clip)


# cast
def _infer_cast(ctx: InferContext) -> list[TensorType]:
    try:
        dtype = dt.normalize(ctx.attr("dtype"))
    except dt.DTypeError as exc:
        raise ctx.error(f"attribute dtype: {exc}") from None
    return [TensorType(ctx.type(0).shape, dtype)]


def _cast(v: Expr, ctx: LowerContext) -> Expr:
    target = dt.normalize(ctx.attr("dtype"))
    if dt.is_bool(target) and not dt.is_bool(v.dtype):
        return v != te.const(0, v.dtype)
    return te.cast(v, target)


def _eval_cast(node: Node, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    dtype = dt.normalize(node.attr("dtype"))
    values = arrays[0]
    if dtype in dt.FLOAT8_FORMATS:  # the kernels' cast saturates (ONNX's default)
        with np.errstate(over="ignore", invalid="ignore"):
            values = saturated(values.astype(np.float32), dtype)
    return [values.astype(dt.to_numpy(dtype))]


register_op("cast", OpPattern.ELEMWISE, _infer_cast, unary_lowering(_cast), _eval_cast)


# bitcast: each element's bits read as another type of the same width
def _infer_bitcast(ctx: InferContext) -> list[TensorType]:
    [t] = _infer_cast(ctx)
    source = ctx.type(0).dtype
    if dt.is_bool(source) or dt.is_bool(t.dtype) or dt.bits(source) != dt.bits(t.dtype):
        raise ctx.error(f"cannot read the bits of {source} as {t.dtype}: the types differ in width")
    return [t]


def _eval_bitcast(node: Node, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [np.ascontiguousarray(arrays[0]).view(dt.to_numpy(dt.normalize(node.attr("dtype"))))]


register_op("bitcast", OpPattern.ELEMWISE, _infer_bitcast,
            unary_lowering(lambda v, ctx: te.reinterpret(v, ctx.attr("dtype"))), _eval_bitcast)


# ---------------------------------------------------------------------------------------------------------------------
# binary
def infer_binary(ctx: InferContext) -> list[TensorType]:
    a, b = ctx.type(0), ctx.type(1)
    dtype = same_dtype(ctx, [a, b])
    return [TensorType(broadcast_shapes(ctx, [a.shape, b.shape]), dtype)]


def infer_compare(ctx: InferContext) -> list[TensorType]:
    return [TensorType(infer_binary(ctx)[0].shape, "bool")]


def _infer_power(ctx: InferContext) -> list[TensorType]:
    a, b = ctx.type(0), ctx.type(1)
    return [TensorType(broadcast_shapes(ctx, [a.shape, b.shape]), a.dtype)]


def _divide(x: Expr, y: Expr) -> Expr:
    if dt.is_float(x.dtype):
        return x / y
    return te.truncdiv(x, y)


def _power(x: Expr, y: Expr) -> Expr:
    result_dtype = x.dtype
    compute_dtype = x.dtype if dt.is_float(x.dtype) else "float64"
    value = te.pow(te.cast(x, compute_dtype), te.cast(y, compute_dtype))
    if not dt.is_float(result_dtype):
        value = te.round(value)
    return te.cast(value, result_dtype)


_BINARY: dict[str, Callable[[Expr, Expr], Expr]] = {
    "add": lambda x, y: x + y,
    "subtract": lambda x, y: x - y,
    "multiply": lambda x, y: x * y,
    "divide": _divide,
    "maximum": max_expr,
    "minimum": min_expr,
}

_COMPARE: dict[str, Callable[[Expr, Expr], Expr]] = {
    "equal": lambda x, y: x == y,
    "less": lambda x, y: x < y,
    "greater": lambda x, y: x > y,
    "less_equal": lambda x, y: x <= y,
    "greater_equal": lambda x, y: x >= y,
}


def _truncate_divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype.kind == "f":
        return a / b
    if np.any(b == 0):
        raise ZeroDivisionError("integer division by zero")
    quotient = np.abs(a) // np.abs(b)
    return np.where((a < 0) != (b < 0), -quotient, quotient).astype(a.dtype)


_BINARY_EVAL: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "add": np.add, "subtract": np.subtract, "multiply": np.multiply, "divide": _truncate_divide,
    "maximum": np.maximum, "minimum": np.minimum, "equal": np.equal, "less": np.less, "greater": np.greater,
    "less_equal": np.less_equal, "greater_equal": np.greater_equal,
}


def binary_lowering(fcombine: Callable[[Expr, Expr], Expr]) -> Callable[[LowerContext], list[Tensor]]:
    def lower(ctx: LowerContext) -> list[Tensor]:
        a, b = ctx.tensor(0), ctx.tensor(1)
        out_shape = ctx.out_types[0].shape

        def body(*idx: Any) -> Expr:
            return fcombine(a[broadcast_index(a, out_shape, idx)], b[broadcast_index(b, out_shape, idx)])

        return [te.compute(out_shape, body, name=ctx.name, tag="broadcast")]

    return lower


def broadcast_index(t: Tensor, out_shape: tuple[int, ...], idx: Sequence[Any]) -> tuple[Any, ...]:
    offset = len(out_shape) - t.ndim
    result = []
    for axis in range(t.ndim):
        dim = ops.utils.as_int(t.shape[axis])
        result.append(te.const(0) if dim == 1 and out_shape[axis + offset] != 1 else idx[axis + offset])
    return tuple(result)


def eval_binary(name: str) -> Callable[[Node, Sequence[np.ndarray]], list[np.ndarray]]:
    fn = _BINARY_EVAL[name]
    return lambda node, arrays: [fn(arrays[0], arrays[1])]


for _name, _fcombine in _BINARY.items():
    register_op(_name, OpPattern.BROADCAST, infer_binary, binary_lowering(_fcombine), eval_binary(_name))
for _name, _fcombine in _COMPARE.items():
    register_op(_name, OpPattern.BROADCAST, infer_compare, binary_lowering(_fcombine), eval_binary(_name))
register_op("power", OpPattern.BROADCAST, _infer_power, binary_lowering(_power))


# logical not
def _infer_not(ctx: InferContext) -> list[TensorType]:
    if ctx.type(0).dtype != "bool":
        raise ctx.error(f"input must be bool, got {ctx.type(0).dtype}")
    return [ctx.type(0)]


register_op("logical_not", OpPattern.ELEMWISE, _infer_not, unary_lowering(lambda v, ctx: te.logical_not(v)),
            eval_unary(np.logical_not))


# where
def _infer_where(ctx: InferContext) -> list[TensorType]:
    cond, a, b = ctx.type(0), ctx.type(1), ctx.type(2)
    if cond.dtype != "bool":
        raise ctx.error(f"the condition must be a bool tensor, got {cond.dtype}")
    dtype = same_dtype(ctx, [a, b])
    return [TensorType(broadcast_shapes(ctx, [cond.shape, a.shape, b.shape]), dtype)]


def _lower_where(ctx: LowerContext) -> list[Tensor]:
    cond, a, b = ctx.tensor(0), ctx.tensor(1), ctx.tensor(2)
    out_shape = ctx.out_types[0].shape

    def body(*idx: Any) -> Expr:
        return te.if_then_else(cond[broadcast_index(cond, out_shape, idx)], a[broadcast_index(a, out_shape, idx)],
                               b[broadcast_index(b, out_shape, idx)])

    return [te.compute(out_shape, body, name=ctx.name, tag="broadcast")]


def _eval_where(node: Node, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [np.where(arrays[0], arrays[1], arrays[2])]


register_op("where", OpPattern.BROADCAST, _infer_where, _lower_where, _eval_where)

__all__ = ["GraphError"]
