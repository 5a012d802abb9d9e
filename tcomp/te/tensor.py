"""Tensors and the operations that produce them.

An ``Operation`` says *what* is computed: a placeholder (an input), a compute (an index lambda over a domain,
possibly reducing), or a scan (a recurrence along a time axis). A ``Tensor`` is one output of an operation;
indexing it (``A[i, j]``) builds a ``ProducerLoad``. Operations and tensors compare by identity.
"""

from __future__ import annotations

from typing import Any

from tcomp.ir import dtype as dt
from tcomp.ir.expr import (
    Expr,
    IterVar,
    ProducerLoad,
    Reduce,
    convert,
)
from tcomp.ir.functor import post_order_visit


class Tensor:
    """Output ``value_index`` of ``op``: a ``shape`` of ``dtype`` elements."""

    __slots__ = ("op", "value_index", "shape", "dtype", "name")

    def __init__(self, op: Operation, value_index: int, shape: tuple[Expr, ...], dtype: str, name: str) -> None:
        self.op = op
        self.value_index = value_index
        self.shape = shape
        self.dtype = dtype
        self.name = name

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, indices: Any) -> Expr:
        if not isinstance(indices, tuple):
            indices = (indices,)
        if len(indices) != len(self.shape):
            raise IndexError(f"tensor {self.name} has {len(self.shape)} dimensions, indexed with {len(indices)}")
        converted = []
        for index in indices:
            expr = convert(index)
            if dt.is_float(expr.dtype):
                raise TypeError(f"tensor {self.name}: index {expr} has float dtype {expr.dtype}")
            converted.append(expr)
        return ProducerLoad(self, tuple(converted), self.dtype)

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other

    def __repr__(self) -> str:
        dims = ", ".join(str(s) for s in self.shape)
        return f"Tensor({self.name}: {self.dtype}[{dims}])"

    __str__ = __repr__


class Operation:
    """Base class: an operation has a name, outputs and input tensors."""

    name: str
    tag: str
    attrs: dict[str, Any]
    _outputs: tuple[Tensor, ...]

    @property
    def num_outputs(self) -> int:
        return len(self._outputs)

    def output(self, index: int) -> Tensor:
        return self._outputs[index]

    @property
    def outputs(self) -> tuple[Tensor, ...]:
        return self._outputs

    def input_tensors(self) -> list[Tensor]:
        return []

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


class PlaceholderOp(Operation):
    def __init__(self, name: str, shape: tuple[Expr, ...], dtype: str) -> None:
        self.name = name
        self.tag = ""
        self.attrs = {}
        self.shape = shape
        self.dtype = dtype
        self._outputs = (Tensor(self, 0, shape, dtype, name),)


def tensors_read(exprs: Any) -> list[Tensor]:
    """Tensors read by ``exprs`` (an expression or an iterable of them), in order of first read."""
    if isinstance(exprs, Expr):
        exprs = [exprs]
    found: dict[int, Tensor] = {}

    def visit(node: Any) -> None:
        if isinstance(node, ProducerLoad) and id(node.producer) not in found:
            found[id(node.producer)] = node.producer

    for e in exprs:
        post_order_visit(e, visit)
    return list(found.values())


class ComputeOp(Operation):
    """``output[axis...] = body`` over the domain of ``axis``; ``body`` may be a ``Reduce`` over ``reduce_axis``."""

    def __init__(
        self,
        name: str,
        tag: str,
        attrs: dict[str, Any],
        axis: tuple[IterVar, ...],
        body: tuple[Expr, ...],
    ) -> None:
        self.name = name
        self.tag = tag
        self.attrs = dict(attrs)
        self.axis = axis
        self.body = body
        first = body[0]
        self.reduce_axis: tuple[IterVar, ...] = first.axis if isinstance(first, Reduce) else ()
        shape = tuple(iv.dom.extent for iv in axis if iv.dom is not None)
        if len(body) == 1:
            self._outputs = (Tensor(self, 0, shape, first.dtype, name),)
        else:
            self._outputs = tuple(Tensor(self, i, shape, b.dtype, f"{name}.v{i}") for i, b in enumerate(body))

    @property
    def is_reduction(self) -> bool:
        return bool(self.reduce_axis)

    def input_tensors(self) -> list[Tensor]:
        return tensors_read(self.body)


class ScanOp(Operation):
    """A recurrence along ``scan_axis``: rows ``[0, init_rows)`` come from ``init``, the rest from ``update``, which
    may read earlier rows through ``state_placeholder``."""

    def __init__(
        self,
        name: str,
        scan_axis: IterVar,
        init: Tensor,
        update: Tensor,
        state_placeholder: Tensor,
        inputs: tuple[Tensor, ...],
    ) -> None:
        self.name = name
        self.tag = "scan"
        self.attrs = {}
        self.scan_axis = scan_axis
        self.init = init
        self.update = update
        self.state_placeholder = state_placeholder
        self.inputs = inputs
        self._outputs = (Tensor(self, 0, state_placeholder.shape, state_placeholder.dtype, name),)

    def input_tensors(self) -> list[Tensor]:
        return [self.init, self.update]
