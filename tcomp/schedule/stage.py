"""Schedule stages and the relations between their iteration axes.

A ``Stage`` schedules one operation. Its root axes are the operation's own (data-parallel then reduce); splitting
and fusing replace leaf axes by new ones and record a relation; the leaf axes, in order, become the loop nest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tcomp.ir.expr import IterKind, IterVar
from tcomp.schedule.primitives import StagePrimitives
from tcomp.schedule.relation import AttachType, IterAttr, Relation, schedule_error
from tcomp.te.tensor import ComputeOp, Operation, PlaceholderOp, ScanOp

if TYPE_CHECKING:
    from tcomp.schedule.schedule import Schedule


class Stage(StagePrimitives):
    """The schedule of one operation."""

    def __init__(self, op: Operation, schedule: Schedule) -> None:
        self.op = op
        self.origin_op = op
        self.schedule = schedule
        self.relations: list[Relation] = []
        self.iter_attrs: dict[IterVar, IterAttr] = {}
        self.attach_type = AttachType.ROOT
        self.attach_stage: Stage | None = None
        self.attach_ivar: IterVar | None = None
        self.is_output = False
        self.scope = "global"
        self.storage_aligns: list[tuple[int, int, int]] = []
        self.double_buffered = False  # set by double_buffer()
        self.root_iter_vars: tuple[IterVar, ...] = _root_iter_vars(op)
        self.all_iter_vars: list[IterVar] = list(self.root_iter_vars)
        self.leaf_iter_vars: list[IterVar] = list(self.root_iter_vars)
        self.group: Stage | None = None
        self.scan_parent: Stage | None = None  # the scan stage, for the init and update stages of a scan

    # -----------------------------------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.op.name

    @property
    def is_placeholder(self) -> bool:
        return isinstance(self.op, PlaceholderOp)

    @property
    def is_reduction(self) -> bool:
        return isinstance(self.op, ComputeOp) and self.op.is_reduction

    @property
    def axis(self) -> tuple[IterVar, ...]:
        """The data-parallel root axes (``s[C].op.axis`` in TVM)."""
        return tuple(iv for iv in self.root_iter_vars if iv.kind is not IterKind.REDUCE)

    @property
    def reduce_axis(self) -> tuple[IterVar, ...]:
        return tuple(iv for iv in self.root_iter_vars if iv.kind is IterKind.REDUCE)

    def attr(self, iv: IterVar) -> IterAttr:
        if iv not in self.iter_attrs:
            self.iter_attrs[iv] = IterAttr()
        return self.iter_attrs[iv]

    def leaf_index(self, axis: Any, primitive: str) -> int:
        """Position of ``axis`` among the leaf axes, or a ScheduleError saying why it is not a leaf."""
        if not isinstance(axis, IterVar):
            raise schedule_error(self, primitive, axis, f"expected an axis (IterVar), got {type(axis).__name__}")
        for index, leaf in enumerate(self.leaf_iter_vars):
            if leaf is axis:
                return index
        if any(iv is axis for iv in self.all_iter_vars):
            raise schedule_error(self, primitive, axis, "is no longer a leaf axis: it was already split or fused")
        raise schedule_error(self, primitive, axis, "is not an axis of this stage")

    def __repr__(self) -> str:
        return f"Stage({self.name}, leaves=[{', '.join(iv.var.name for iv in self.leaf_iter_vars)}])"

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other


def _root_iter_vars(op: Operation) -> tuple[IterVar, ...]:
    if isinstance(op, ComputeOp):
        return op.axis + op.reduce_axis
    if isinstance(op, ScanOp):
        return (op.scan_axis,)
    return ()


__all__ = ["AttachType", "IterAttr", "Stage"]
