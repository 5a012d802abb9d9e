"""Elementwise operators: broadcast binary arithmetic, unary math, activations and casts.

Binary operators follow numpy broadcasting: shapes are aligned at the last dimension, a missing leading dimension
or a dimension of extent 1 is broadcast, and any other pair of dimensions must be equal (constants) or the same
symbolic expression. Either operand may be a scalar (a Python number takes the tensor's dtype, as in numpy's
"weak" scalars) but not both. The result dtype is the promotion of the operand dtypes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tcomp import te
from tcomp.ir import dtype as dt
from tcomp.ir.expr import Expr, IterVar, Var, const, convert, max_expr, min_expr
from tcomp.ops.utils import OpError, Shape, Tag, as_int, check_tensor, same_dim, shape_str
from tcomp.te.tensor import Tensor

Scalar = int | float | Expr
Operand = Tensor | Scalar

__all__ = [
    "abs", "add", "broadcast_shape", "broadcast_to", "cast", "ceil", "clip", "cos", "divide", "equal", "erf", "exp",
    "floor", "floor_divide", "floor_mod", "greater", "greater_equal", "leaky_relu", "less", "less_equal", "log",
    "maximum", "minimum", "multiply", "negate", "negative", "not_equal", "power", "relu", "round", "rsqrt", "sigmoid",
    "sin", "sqrt", "square", "subtract", "tanh", "where",
]


# ---------------------------------------------------------------------------------------------------------------------
# broadcasting
def broadcast_shape(op: str, *shapes: Sequence[Any]) -> Shape:
    """The numpy broadcast of ``shapes``, or an ``OpError`` naming ``op`` and the two shapes that disagree."""
    ndim = max((len(s) for s in shapes), default=0)
    result: list[Expr] = []
    for position in range(ndim):
        chosen: Expr | None = None
        for shape in shapes:
            offset = ndim - len(shape)
            if position < offset:
                continue
            dim = convert(shape[position - offset])
            if chosen is None or as_int(chosen) == 1:
                chosen = dim
            elif as_int(dim) == 1 or same_dim(chosen, dim):
                continue
            else:
                text = " and ".join(shape_str(s) for s in shapes)
                raise OpError(
                    f"{op}: shapes {text} do not broadcast: dimension {position} of the result would be both "
                    f"{chosen} and {dim}"
                )
        assert chosen is not None
        result.append(chosen)
    return tuple(result)


def broadcast_indices(tensor: Tensor, out_shape: Shape, indices: Sequence[Var]) -> tuple[Expr, ...]:
    """Indices into ``tensor`` for the output element at ``indices``: trailing-aligned, 0 on broadcast dims."""
    offset = len(out_shape) - tensor.ndim
    result: list[Expr] = []
    for axis, dim in enumerate(tensor.shape):
        out_dim = out_shape[axis + offset]
        if as_int(dim) == 1 and as_int(out_dim) != 1:
            result.append(const(0))
        else:
            result.append(indices[axis + offset])
    return tuple(result)


def _read(value: Operand, out_shape: Shape, indices: Sequence[Var]) -> Any:
    if isinstance(value, Tensor):
        return value[broadcast_indices(value, out_shape, indices)]
    return value


def _check_operand(op: str, name: str, value: Any) -> Operand:
    if isinstance(value, (Tensor, Expr)) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    if isinstance(value, IterVar):
        return value.var
    raise OpError(f"{op}: argument {name} must be a tensor or a scalar, got {type(value).__name__}")


def broadcast_binary(
    op: str, lhs: Any, rhs: Any, fcombine: Callable[[Any, Any], Expr], name: str | None = None
) -> Tensor:
    """``out[idx] = fcombine(lhs[bcast(idx)], rhs[bcast(idx)])`` over the broadcast shape of the operands."""
    a = _check_operand(op, "lhs", lhs)
    b = _check_operand(op, "rhs", rhs)
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        raise OpError(f"{op}: at least one operand must be a tensor; for two scalars use the expression directly")
    shapes = [t.shape for t in (a, b) if isinstance(t, Tensor)]
    out_shape = broadcast_shape(op, *shapes)
    same = all(len(s) == len(out_shape) and all(same_dim(x, y) for x, y in zip(s, out_shape)) for s in shapes)
    tag = Tag.ELEMWISE if same else Tag.BROADCAST

    def body(*indices: Var) -> Expr:
        return fcombine(_read(a, out_shape, indices), _read(b, out_shape, indices))

    return te.compute(out_shape, body, name=name or f"T_{op}", tag=tag)


def broadcast_to(x: Tensor, shape: Sequence[Any], name: str = "T_broadcast_to") -> Tensor:
    """``out[idx] = x[bcast(idx)]`` with ``out.shape == shape``; ``x.shape`` must broadcast to ``shape``."""
    check_tensor("broadcast_to", "x", x)
    target = tuple(convert(d) for d in shape)
    result = broadcast_shape("broadcast_to", x.shape, target)
    if len(result) != len(target) or not all(same_dim(r, t) for r, t in zip(result, target)):
        raise OpError(f"broadcast_to: shape {shape_str(x.shape)} cannot be broadcast to {shape_str(target)}")
    return te.compute(target, lambda *idx: x[broadcast_indices(x, target, idx)], name=name, tag=Tag.BROADCAST)


def add(lhs: Any, rhs: Any, name: str = "T_add") -> Tensor:
    """``lhs + rhs`` with broadcasting."""
    return broadcast_binary("add", lhs, rhs, lambda x, y: x + y, name)


def subtract(lhs: Any, rhs: Any, name: str = "T_subtract") -> Tensor:
    """``lhs - rhs`` with broadcasting."""
    return broadcast_binary("subtract", lhs, rhs, lambda x, y: x - y, name)


def multiply(lhs: Any, rhs: Any, name: str = "T_multiply") -> Tensor:
    """``lhs * rhs`` with broadcasting."""
    return broadcast_binary("multiply", lhs, rhs, lambda x, y: x * y, name)


def _dtype_of(value: Operand) -> str | None:
    if isinstance(value, (Tensor, Expr)):
        return value.dtype
    return None


def divide(lhs: Any, rhs: Any, name: str = "T_divide") -> Tensor:
    """``lhs / rhs`` (true division) with broadcasting; the operands must be floats (use ``floor_divide`` for
    integers)."""
    for value, which in ((lhs, "lhs"), (rhs, "rhs")):
        dtype = _dtype_of(value)
        if dtype is not None and not dt.is_float(dtype):
            raise OpError(f"divide: argument {which} has integer dtype {dtype}; use floor_divide for integers")
    return broadcast_binary("divide", lhs, rhs, lambda x, y: x / y, name)


def floor_divide(lhs: Any, rhs: Any, name: str = "T_floor_divide") -> Tensor:
    """``floor(lhs / rhs)`` (Python's ``//``) with broadcasting."""
    return broadcast_binary("floor_divide", lhs, rhs, te.floordiv, name)


def floor_mod(lhs: Any, rhs: Any, name: str = "T_floor_mod") -> Tensor:
    """``lhs - floor(lhs / rhs) * rhs`` (Python's ``%``, the sign of ``rhs``) with broadcasting."""
    return broadcast_binary("floor_mod", lhs, rhs, te.floormod, name)


def maximum(lhs: Any, rhs: Any, name: str = "T_maximum") -> Tensor:
    """``max(lhs, rhs)`` with broadcasting."""
    return broadcast_binary("maximum", lhs, rhs, max_expr, name)


def minimum(lhs: Any, rhs: Any, name: str = "T_minimum") -> Tensor:
    """``min(lhs, rhs)`` with broadcasting."""
    return broadcast_binary("minimum", lhs, rhs, min_expr, name)


def power(lhs: Any, rhs: Any, name: str = "T_power") -> Tensor:
    """``lhs ** rhs`` with broadcasting (float result: integer bases are computed in float32)."""
    return broadcast_binary("power", lhs, rhs, te.pow, name)


def _comparison(op: str, fcompare: Callable[[Any, Any], Expr]) -> Callable[..., Tensor]:
    def compare(lhs: Any, rhs: Any, name: str = f"T_{op}") -> Tensor:
        return broadcast_binary(op, lhs, rhs, fcompare, name)

    compare.__name__ = op
    compare.__doc__ = f"``{op}(lhs, rhs)`` elementwise with broadcasting; a bool tensor."
    return compare


equal = _comparison("equal", lambda x, y: x == y)
not_equal = _comparison("not_equal", lambda x, y: x != y)
less = _comparison("less", lambda x, y: x < y)
less_equal = _comparison("less_equal", lambda x, y: x <= y)
greater = _comparison("greater", lambda x, y: x > y)
greater_equal = _comparison("greater_equal", lambda x, y: x >= y)


def where(condition: Tensor, lhs: Any, rhs: Any, name: str = "T_where") -> Tensor:
    """``condition ? lhs : rhs`` elementwise, all three broadcast together; ``condition`` is a bool tensor."""
    check_tensor("where", "condition", condition)
    if not dt.is_bool(condition.dtype):
        raise OpError(f"where: argument condition must be a bool tensor, got dtype {condition.dtype}")
    a = _check_operand("where", "lhs", lhs)
    b = _check_operand("where", "rhs", rhs)
    shapes = [t.shape for t in (condition, a, b) if isinstance(t, Tensor)]
    out_shape = broadcast_shape("where", *shapes)

    def body(*indices: Var) -> Expr:
        cond = condition[broadcast_indices(condition, out_shape, indices)]
        return te.if_then_else(cond, _read(a, out_shape, indices), _read(b, out_shape, indices))

    return te.compute(out_shape, body, name=name, tag=Tag.BROADCAST)


# ---------------------------------------------------------------------------------------------------------------------
# unary
def unary(op: str, x: Tensor, fmap: Callable[[Expr], Any], name: str | None = None) -> Tensor:
    """``out[idx] = fmap(x[idx])``, same shape as ``x``."""
    check_tensor(op, "x", x)
    return te.compute(x.shape, lambda *idx: fmap(x[idx]), name=name or f"T_{op}", tag=Tag.ELEMWISE)


def _math_unary(op: str, fmath: Callable[[Any], Expr]) -> Callable[..., Tensor]:
    def apply(x: Tensor, name: str = f"T_{op}") -> Tensor:
        return unary(op, x, fmath, name)

    apply.__name__ = op
    apply.__doc__ = f"``{op}(x)`` elementwise (integer inputs give float32 for transcendental functions)."
    return apply


exp = _math_unary("exp", te.exp)
log = _math_unary("log", te.log)
sqrt = _math_unary("sqrt", te.sqrt)
rsqrt = _math_unary("rsqrt", te.rsqrt)
tanh = _math_unary("tanh", te.tanh)
sigmoid = _math_unary("sigmoid", te.sigmoid)
erf = _math_unary("erf", te.erf)
sin = _math_unary("sin", te.sin)
cos = _math_unary("cos", te.cos)
abs = _math_unary("abs", te.abs)  # noqa: A001
floor = _math_unary("floor", te.floor)
ceil = _math_unary("ceil", te.ceil)
round = _math_unary("round", te.round)  # noqa: A001


def negate(v: Expr) -> Expr:
    """``-v``; for floats ``v * -1``, which flips the sign of a zero as negation does (``0 - v``, the IR's ``-``,
    gives +0 for +0)."""
    return v * const(-1, v.dtype) if v.dtype.startswith(("float", "bfloat")) else -v


def negative(x: Tensor, name: str = "T_negative") -> Tensor:
    """``-x`` elementwise (``negate``)."""
    return unary("negative", x, negate, name)


def square(x: Tensor, name: str = "T_square") -> Tensor:
    """``x * x`` elementwise."""
    return unary("square", x, lambda v: v * v, name)


def relu(x: Tensor, name: str = "T_relu") -> Tensor:
    """``max(x, 0)`` elementwise."""
    return unary("relu", x, lambda v: max_expr(v, const(0, x.dtype)), name)


def leaky_relu(x: Tensor, alpha: float = 0.01, name: str = "T_leaky_relu") -> Tensor:
    """``x if x > 0 else alpha * x`` elementwise."""
    if not dt.is_float(check_tensor("leaky_relu", "x", x).dtype):
        raise OpError(f"leaky_relu: argument x must be a float tensor, got dtype {x.dtype}")
    return unary("leaky_relu", x, lambda v: te.if_then_else(v > 0, v, v * alpha), name)


def clip(x: Tensor, a_min: Scalar, a_max: Scalar, name: str = "T_clip") -> Tensor:
    """``min(max(x, a_min), a_max)`` elementwise."""
    check_tensor("clip", "x", x)
    if isinstance(a_min, (int, float)) and isinstance(a_max, (int, float)) and a_min > a_max:
        raise OpError(f"clip: a_min={a_min} is greater than a_max={a_max}")
    return unary("clip", x, lambda v: min_expr(max_expr(v, a_min), a_max), name)


def cast(x: Tensor, dtype: str, name: str = "T_cast") -> Tensor:
    """``x`` converted elementwise to ``dtype`` (float to int truncates toward zero, as numpy's ``astype``)."""
    check_tensor("cast", "x", x)
    try:
        target = dt.normalize(dtype)
    except dt.DTypeError as exc:
        raise OpError(f"cast: argument dtype: {exc}") from exc
    return unary("cast", x, lambda v: te.cast(v, target), name)
