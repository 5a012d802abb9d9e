"""Matching a loop nest against a tensor intrinsic and replacing it (``Stage.tensorize``).

Rule: the leaves of a stage from the tensorized axis inward must correspond one to one with the intrinsic's axes
(data-parallel leaves, in order, with its data-parallel axes; reduction leaves with its reduction axes), with equal
constant extents and no bounds guard inside. The stage's body must have the intrinsic's structure (same operations,
dtypes, reducer and constants), each tensor read must map to one of the intrinsic's inputs, and every index must
move with the inner loops exactly as the intrinsic's index moves with its axes; leading dimensions the intrinsic
does not have must stay fixed. The regions read and written (start, shape, strides) are handed to the intrinsic's
``lower``, whose statement replaces the nest. Every mismatch is a ``TensorizeError`` saying what differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tcomp.arith import can_prove, simplify
from tcomp.ir import expr as E
from tcomp.ir.buffer import Buffer
from tcomp.ir.functor import children, substitute
from tcomp.ir.structural import structural_equal
from tcomp.schedule.relation import ScheduleError
from tcomp.te.intrin import TensorIntrin, TensorRegion
from tcomp.te.tensor import Tensor


class TensorizeError(ScheduleError):
    """The loop nest under a tensorized axis does not compute what the intrinsic declares."""


@dataclass
class _Read:
    start: tuple[E.Expr, ...]
    tensor: Tensor


class Matcher:
    def __init__(
        self,
        stage_name: str,
        intrin: TensorIntrin,
        var_map: dict[E.Var, E.Expr],
        zero_map: dict[E.Var, E.Expr],
        bounds: dict[E.Var, tuple[int, int]],
    ) -> None:
        self.stage_name = stage_name
        self.intrin = intrin
        self.var_map = var_map
        self.zero_map = zero_map
        self.bounds = bounds
        self.reads: dict[Tensor, _Read] = {}  # intrinsic placeholder -> stage tensor read and its start

    def fail(self, what: str) -> TensorizeError:
        return TensorizeError(f"stage {self.stage_name}: tensorize with {self.intrin.name}: {what}")

    def region_start(self, indices: tuple[E.Expr, ...], intrin_indices: tuple[E.Expr, ...], what: str) -> tuple:
        """Check that ``indices`` move like ``intrin_indices`` and return where the region starts."""
        rank, irank = len(indices), len(intrin_indices)
        if irank > rank:
            raise self.fail(f"{what} has {rank} dimensions, the intrinsic's has {irank}")
        start = tuple(simplify(substitute(i, self.zero_map), self.bounds) for i in indices)
        for dim, (index, first) in enumerate(zip(indices, start)):
            moved = simplify(index - first, self.bounds)
            expected: E.Expr = E.const(0)
            if dim >= rank - irank:
                expected = simplify(substitute(intrin_indices[dim - (rank - irank)], self.var_map), self.bounds)
            if not can_prove(E.binary(E.EQ, moved, expected), self.bounds):
                raise self.fail(
                    f"{what}: dimension {dim} index moves by {moved} inside the nest, the intrinsic expects {expected}"
                )
        return start

    def match(self, s: E.Expr, i: E.Expr) -> None:
        if isinstance(i, E.ProducerLoad):
            if not isinstance(s, E.ProducerLoad):
                raise self.fail(f"the nest computes {s} where the intrinsic reads {i.producer.name}")
            placeholder = i.producer
            if s.dtype != i.dtype:
                raise self.fail(f"{s.producer.name} has dtype {s.dtype}, intrinsic input {placeholder.name} {i.dtype}")
            start = self.region_start(s.indices, i.indices, f"read of {s.producer.name}")
            previous = self.reads.get(placeholder)
            if previous is None:
                for other, read in self.reads.items():
                    if read.tensor is s.producer and other is not placeholder:
                        raise self.fail(f"{s.producer.name} is read as two different intrinsic inputs")
                self.reads[placeholder] = _Read(start, s.producer)
            elif previous.tensor is not s.producer:
                raise self.fail(
                    f"intrinsic input {placeholder.name} is {previous.tensor.name} in one place and "
                    f"{s.producer.name} in another"
                )
            return
        if type(s) is not type(i):
            raise self.fail(f"the nest computes {s}, the intrinsic computes {i}")
        if s.dtype != i.dtype:
            raise self.fail(f"{s} has dtype {s.dtype}, the intrinsic's {i} has {i.dtype}")
        if isinstance(i, (E.IntImm, E.FloatImm)):
            if s.value != i.value:  # type: ignore[attr-defined]
                raise self.fail(f"constant {s} differs from the intrinsic's {i}")
            return
        if isinstance(i, E.Var):
            raise self.fail(f"the value depends on the loop variable {s}; only indices may")
        if isinstance(i, E.Reduce):
            assert isinstance(s, E.Reduce)
            if not structural_equal(s.combiner.result, i.combiner.result) or not structural_equal(
                s.combiner.identity, i.combiner.identity
            ):
                raise self.fail(f"reducer {s.combiner.name} differs from the intrinsic's {i.combiner.name}")
            if s.condition is not None or i.condition is not None:
                raise self.fail("reductions with a where= condition cannot be tensorized")
            self.match(s.source, i.source)
            return
        if isinstance(i, E.Call) and (s.op != i.op):  # type: ignore[attr-defined]
            raise self.fail(f"call {s} differs from the intrinsic's {i}")
        s_children, i_children = children(s), children(i)
        if len(s_children) != len(i_children):
            raise self.fail(f"the nest computes {s}, the intrinsic computes {i}")
        for a, b in zip(s_children, i_children):
            self.match(a, b)


def buffer_strides(buffer: Buffer) -> tuple[E.Expr, ...]:
    if buffer.strides is not None:
        return buffer.strides
    strides: list[E.Expr] = [E.const(1)] * len(buffer.shape)
    for dim in range(len(buffer.shape) - 2, -1, -1):
        strides[dim] = simplify(strides[dim + 1] * buffer.shape[dim + 1])
    return tuple(strides)


def make_region(
    buffer: Buffer, start: tuple[E.Expr, ...], offset: tuple[E.Expr, ...] | None, shape: Any
) -> TensorRegion:
    if offset is not None:
        start = tuple(simplify(s - o) for s, o in zip(start, offset))
    strides = buffer_strides(buffer)
    dims = tuple(int(E.const_int_value(d) or 0) for d in shape)
    return TensorRegion(buffer, start, dims, strides[len(strides) - len(dims):])
