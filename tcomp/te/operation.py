"""Constructors of the tensor-expression language: ``var``, ``placeholder``, ``compute``, ``reduce_axis``, ``scan``."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from tcomp.ir import dtype as dt
from tcomp.ir.expr import Expr, IterKind, IterVar, Range, Reduce, Var, const, convert
from tcomp.ir.functor import post_order_visit
from tcomp.te.tensor import ComputeOp, PlaceholderOp, ScanOp, Tensor


class TEError(ValueError):
    """An ill-formed tensor expression."""


def var(name: str = "v", dtype: str = "int32", max_value: int | None = None, min_value: int = 0) -> Var:
    """A symbolic scalar, e.g. a dimension ``n`` of a symbolic shape.

    ``max_value`` declares the largest value the dimension takes (calls with a larger one are refused). Index
    arithmetic is 32-bit for every buffer whose size provably fits, 64-bit otherwise; declaring small maxima keeps
    symbolic kernels on 32-bit indices, which vectorize better. ``min_value`` declares the least (calls with a
    smaller one are refused; a slice ending before it stays inside the dimension)."""
    dtype = dt.normalize(dtype)
    if max_value is not None:
        if isinstance(max_value, bool) or not isinstance(max_value, int):
            raise TEError(f"var {name}: max_value must be an int, got {max_value!r}")
        if not dt.is_int(dtype) or not 0 <= max_value <= dt.max_value(dtype):
            raise TEError(f"var {name}: max_value {max_value} is not a non-negative value of its dtype {dtype}")
    if isinstance(min_value, bool) or not isinstance(min_value, int):
        raise TEError(f"var {name}: min_value must be an int, got {min_value!r}")
    if min_value != 0 and not (dt.is_int(dtype) and 0 <= min_value <= (dt.max_value(dtype) if max_value is None
                                                                         else max_value)):
        raise TEError(f"var {name}: min_value {min_value} is not a non-negative value of its dtype {dtype} at most "
                      f"max_value {max_value}")
    return Var(name, dtype, max_value, min_value)


size_var = var


def _shape(shape: Any, what: str) -> tuple[Expr, ...]:
    if isinstance(shape, (int, Expr)):
        shape = (shape,)
    result = []
    for dim in shape:
        expr = convert(dim)
        if dt.is_float(expr.dtype) or dt.is_bool(expr.dtype):
            raise TEError(f"{what}: shape dimension {expr} must be an integer, got dtype {expr.dtype}")
        value = getattr(expr, "value", None)
        if isinstance(value, int) and value < 0:
            raise TEError(f"{what}: shape dimension {value} is negative")
        result.append(expr)
    return tuple(result)


def _index_dtype(*dims: Expr) -> str:
    """int64 index variables for dimensions that need them, int32 otherwise."""
    return "int64" if any(d.dtype == "int64" for d in dims) else "int32"


def placeholder(shape: Any, dtype: str = "float32", name: str = "placeholder") -> Tensor:
    """An input tensor of ``shape`` (ints or symbolic ``var``s)."""
    return PlaceholderOp(name, _shape(shape, f"placeholder {name}"), dt.normalize(dtype)).output(0)


def reduce_axis(dom: Any, name: str = "rv") -> IterVar:
    """A reduction axis over ``dom``: ``(begin, end)`` or an extent."""
    if isinstance(dom, Range):
        rng = dom
    elif isinstance(dom, (tuple, list)):
        if len(dom) != 2:
            raise TEError(f"reduce_axis {name}: domain must be (begin, end), got {dom!r}")
        begin, end = convert(dom[0]), convert(dom[1])
        rng = Range(begin, end - begin if not (isinstance(begin, Expr) and getattr(begin, "value", None) == 0) else end)
    else:
        rng = Range(const(0), convert(dom))
    return IterVar(Var(name, _index_dtype(rng.min, rng.extent)), rng, IterKind.REDUCE)


def thread_axis(tag: str, name: str | None = None) -> IterVar:
    """A GPU thread axis such as ``"blockIdx.x"`` or ``"threadIdx.y"``, for ``Stage.bind``."""
    valid = {f"{k}.{c}" for k in ("blockIdx", "threadIdx", "vthread") for c in "xyz"} | {"vthread"}
    if tag not in valid:
        raise TEError(f"thread_axis: unknown thread tag {tag!r}; expected one of {sorted(valid)}")
    return IterVar(Var(name or tag, "int32"), None, IterKind.THREAD, tag)


def _arg_names(fcompute: Callable[..., Any], ndim: int) -> list[str]:
    try:
        params = list(inspect.signature(fcompute).parameters.values())
    except (TypeError, ValueError):
        params = []
    if params and params[0].kind is inspect.Parameter.VAR_POSITIONAL:
        return [f"i{d}" for d in range(ndim)]
    names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(names) != ndim:
        raise TEError(f"compute: the function takes {len(names)} index arguments but the shape has {ndim} dimensions")
    return names


def _check_reduce_top_level(body: Sequence[Expr], name: str) -> None:
    for expr in body:
        top = expr

        def check(node: Any, top: Expr = top) -> None:
            if isinstance(node, Reduce) and node is not top:
                raise TEError(
                    f"compute {name}: a reduction must be the whole body of a compute, found one inside {top}; "
                    "compute the reduction in its own stage and use it in a second compute"
                )

        post_order_visit(expr, check)


def compute(
    shape: Any,
    fcompute: Callable[..., Any],
    name: str = "compute",
    tag: str = "",
    attrs: dict[str, Any] | None = None,
) -> Tensor:
    """``out[i, j, ...] = fcompute(i, j, ...)`` over ``shape``. Returns the output tensor (or a tuple of tensors if
    ``fcompute`` returns a tuple)."""
    dims = _shape(shape, f"compute {name}")
    names = _arg_names(fcompute, len(dims))
    axis = tuple(IterVar(Var(n, _index_dtype(d)), Range(const(0), d), IterKind.DATA_PAR) for n, d in zip(names, dims))
    result = fcompute(*[iv.var for iv in axis])
    body = tuple(convert(b) for b in result) if isinstance(result, (tuple, list)) else (convert(result),)
    if not body:
        raise TEError(f"compute {name}: the function returned no value")
    _check_reduce_top_level(body, name)
    reduces = [b for b in body if isinstance(b, Reduce)]
    if reduces and len(body) > 1:
        raise TEError(f"compute {name}: multiple outputs cannot contain a reduction")
    op = ComputeOp(name, tag, attrs or {}, axis, body)
    return op.output(0) if len(body) == 1 else op.outputs  # type: ignore[return-value]


def scan(
    init: Tensor,
    update: Tensor,
    state_placeholder: Tensor,
    inputs: Sequence[Tensor] | None = None,
    name: str = "scan",
) -> Tensor:
    """A recurrence along the first axis: ``out[0:k] = init``, ``out[t] = update[t]`` for ``t >= k``, where
    ``update`` reads earlier rows through ``state_placeholder`` (TVM's ``scan``)."""
    if not isinstance(state_placeholder.op, PlaceholderOp):
        raise TEError(f"scan {name}: the state must be a placeholder, got {state_placeholder}")
    for t, what in ((init, "init"), (update, "update")):
        if not isinstance(t.op, ComputeOp):
            raise TEError(f"scan {name}: {what} must be a compute, got {t}")
        if t.ndim != state_placeholder.ndim:
            raise TEError(f"scan {name}: {what} has {t.ndim} dimensions, the state has {state_placeholder.ndim}")
        if t.dtype != state_placeholder.dtype:
            raise TEError(f"scan {name}: {what} dtype {t.dtype} differs from the state's {state_placeholder.dtype}")
    scan_axis = IterVar(
        Var(f"{name}.t", "int32"),
        Range(init.shape[0], state_placeholder.shape[0] - init.shape[0]),
        IterKind.ORDERED,
    )
    op = ScanOp(name, scan_axis, init, update, state_placeholder, tuple(inputs or ()))
    return op.output(0)
