"""The default schedule of a fused group: ``schedule_for(outs, target)``.

Uses the operator library's ``tcomp.ops.cpu.schedule_for`` (schedules chosen by shape) when it exists. Otherwise a
simple, always-legal fallback: every non-reduction stage that is not an output is inlined into its readers; every
remaining stage gets its leading data-parallel axes fused into one parallel loop; an output without reduction
axes gets its innermost axis vectorized when its extent is a multiple of the vector width.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from tcomp.ir.expr import const_int_value
from tcomp.schedule import Schedule, create_schedule
from tcomp.schedule.relation import AttachType
from tcomp.target import Target
from tcomp.te.tensor import ComputeOp, Tensor

ScheduleFunc = Callable[..., Schedule]


@functools.cache
def _library_schedule() -> ScheduleFunc | None:
    try:
        from tcomp.ops.cpu import schedule_for as library
    except ImportError:
        return None
    return library  # type: ignore[no-any-return]


def schedule_for(outs: Sequence[Tensor], target: Target | None = None) -> Schedule:
    """A schedule computing ``outs`` (the outputs of one fused group, whose inputs are placeholders)."""
    library = _library_schedule()
    if library is not None:
        return library(list(outs), target)
    return fallback_schedule(outs, target)


def _extent(axis: Any) -> int | None:
    return const_int_value(axis.dom.extent) if axis.dom is not None else None


def fallback_schedule(outs: Sequence[Tensor], target: Target | None = None) -> Schedule:
    s = create_schedule([t.op for t in outs])
    output_ops = {id(t.op) for t in outs}
    for stage in s.stages:
        op = stage.op
        if isinstance(op, ComputeOp) and id(op) not in output_ops and not op.is_reduction:
            stage.compute_inline()
    lanes = 8 if target is None else max(1, target.vector_bits // 32)
    for stage in s.stages:
        op = stage.op
        if not isinstance(op, ComputeOp) or stage.attach_type is AttachType.INLINE:
            continue
        axes = list(stage.axis)
        if not axes:
            continue
        inner = axes[-1]
        inner_extent = _extent(inner)
        vectorize = (id(op) in output_ops and not op.is_reduction and inner_extent is not None
                     and inner_extent % lanes == 0 and len(axes) >= 1)
        if vectorize:
            outer_axes = axes[:-1]
            if inner_extent != lanes:
                rest, inner = stage.split(inner, factor=lanes)
                outer_axes.append(rest)
            stage.vectorize(inner)
        else:
            outer_axes = axes[:-1] if len(axes) > 1 else axes
        if outer_axes:
            fused = stage.fuse(*outer_axes) if len(outer_axes) > 1 else outer_axes[0]
            stage.parallel(fused)
    return s
