"""Cumulative operators on ``te.scan``: ``cumsum`` and ``cumprod(x, axis, exclusive, reverse)``.

``te.scan`` recurs along the first axis, so the scanned axis is moved to the front (a transposing read), scanned
with ``state[t] = state[t - 1] + x[t]`` (``*`` for the product), and moved back. ``exclusive`` combines the
elements strictly before each position (the first is the identity: 0 for the sum, 1 for the product); ``reverse``
runs from the end of the axis. Integers accumulate in their own dtype (wrapping as numpy does), floats in theirs.
"""

from __future__ import annotations

from typing import Any

from tcomp import te
from tcomp.ir.expr import Expr
from tcomp.ops.utils import OpError, Tag, as_int, check_tensor, normalize_axis
from tcomp.te.tensor import Tensor

__all__ = ["cumprod", "cumsum"]


def cumsum(x: Tensor, axis: int = 0, exclusive: bool = False, reverse: bool = False, name: str = "cumsum") -> Tensor:
    return _cumulative("cumsum", x, axis, exclusive, reverse, name)


def cumprod(x: Tensor, axis: int = 0, exclusive: bool = False, reverse: bool = False,
            name: str = "cumprod") -> Tensor:
    return _cumulative("cumprod", x, axis, exclusive, reverse, name)


def _combine(op: str, a: Expr, b: Expr) -> Expr:
    return a * b if op == "cumprod" else a + b


def _cumulative(op: str, x: Tensor, axis: int, exclusive: bool, reverse: bool, name: str) -> Tensor:
    check_tensor(op, "x", x)
    if x.ndim == 0:
        raise OpError(f"{op}: x must have at least one dimension")
    axis = normalize_axis(op, axis, x.ndim)
    n: Any = as_int(x.shape[axis])
    if n is None:
        n = x.shape[axis]  # a symbolic dimension (positive where a kernel runs)
    elif n <= 0:
        raise OpError(f"{op}: dimension {axis} must be positive, got {n}")
    others = [x.shape[d] for d in range(x.ndim) if d != axis]

    def source(t: Any, rest: tuple[Any, ...]) -> Expr:
        position = (n - 1) - t if reverse else t
        return x[(*rest[:axis], position, *rest[axis:])]

    moved = (n, *others)
    state = te.placeholder(moved, x.dtype, name=f"{name}_state")
    identity = te.const(1 if op == "cumprod" else 0, x.dtype)
    if exclusive:
        init = te.compute((1, *others), lambda *i: identity, name=f"{name}_init", tag=Tag.ELEMWISE)

        def step(*i: Any) -> Expr:
            return _combine(op, state[(i[0] - 1, *i[1:])], source(i[0] - 1, i[1:]))
    else:
        init = te.compute((1, *others), lambda *i: source(i[0], i[1:]), name=f"{name}_init", tag=Tag.INJECTIVE)

        def step(*i: Any) -> Expr:
            return _combine(op, state[(i[0] - 1, *i[1:])], source(i[0], i[1:]))

    update = te.compute(moved, step, name=f"{name}_update", tag=Tag.INJECTIVE)
    scanned = te.scan(init, update, state, inputs=[x], name=f"{name}_scan")

    def back(*i: Any) -> Expr:
        t = (n - 1) - i[axis] if reverse else i[axis]
        return scanned[(t, *i[:axis], *i[axis + 1:])]

    return te.compute(x.shape, back, name=name, tag=Tag.INJECTIVE)
