"""The default schedule of one fused group, in the steps every target takes (``schedule_cpu``, ``schedule_cuda``).

1. ``inline(s)``: the injective stages that are not outputs are inlined into their readers (each target keeps some
   at the root: the padding a convolution reads, a stage whose inlining would repeat a costly call);
2. ``anchors(s)``: the anchors (convolutions, matrix products, ...) get their tiled schedules, with the epilogues
   they host; it returns every stage it scheduled;
3. ``generic(s, stage)``: every other compute stage at the root, in the schedule's order before step 2, gets the
   target's generic schedule of its kind (a reduction, an elementwise stage).

The targets differ in what each step does, not in the steps or their order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tcomp.ops.utils import OpError
from tcomp.schedule.relation import AttachType
from tcomp.schedule.schedule import Schedule, create_schedule
from tcomp.schedule.stage import Stage
from tcomp.te.tensor import ComputeOp, Tensor


def output_tensors(entry: str, outs: Tensor | Sequence[Tensor]) -> list[Tensor]:
    """``outs`` as a non-empty list of tensors; an ``OpError`` naming ``entry`` otherwise."""
    tensors = [outs] if isinstance(outs, Tensor) else list(outs)
    if not tensors:
        raise OpError(f"{entry}: give at least one output tensor")
    for tensor in tensors:
        if not isinstance(tensor, Tensor):
            raise OpError(f"{entry}: outputs must be tensors, got {type(tensor).__name__}")
    return tensors


def schedule_in_steps(entry: str, outs: Tensor | Sequence[Tensor], inline: Callable[[Schedule], None],
                      anchors: Callable[[Schedule], set[Stage]],
                      generic: Callable[[Schedule, Stage], None]) -> Schedule:
    """The schedule of the group computing ``outs`` (see the module docstring); ``entry`` names it in errors."""
    s = create_schedule(output_tensors(entry, outs))
    inline(s)
    original = list(s.stages)
    done = anchors(s)
    for stage in original:
        if stage not in done and stage.attach_type is AttachType.ROOT and isinstance(stage.op, ComputeOp):
            generic(s, stage)
    return s
