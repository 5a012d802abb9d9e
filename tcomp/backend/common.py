"""Stages every backend shares: the schedule printed as the ``te`` stage, and its lowering to the ``tir`` stage."""

from __future__ import annotations

from tcomp.backend.base import BuildContext
from tcomp.ir.stmt import PrimFunc
from tcomp.schedule.loop_nest import lower_schedule
from tcomp.schedule.schedule import Schedule


def lower_tir(schedule: Schedule, context: BuildContext) -> PrimFunc:
    """The ``tir`` stage: the loop nest of ``schedule`` over the build's arguments (``lower_schedule``)."""
    return lower_schedule(schedule, context.args, context.name)


def schedule_text(schedule: Schedule) -> str:
    """The ``te`` stage as text: one line per stage, its operation, its leaf axes and where it is computed."""
    lines = []
    for stage in schedule.stages:
        if stage.is_placeholder:
            shape = ", ".join(str(d) for d in stage.op.output(0).shape)
            lines.append(f"{stage.name}: placeholder [{shape}]")
            continue
        axes = ", ".join(iv.var.name for iv in stage.leaf_iter_vars)
        where = stage.attach_type.value
        if stage.attach_stage is not None and stage.attach_ivar is not None:
            where += f" {stage.attach_stage.name}.{stage.attach_ivar.var.name}"
        lines.append(f"{stage.name}: {type(stage.op).__name__} [{axes}] {where}")
    return "\n".join(lines)
