"""Generic schedules that apply to any operator's stages, for differential tests against numpy.

Each recipe takes the schedule and the output tensor and applies one kind of transformation to every compute stage
it fits: splits with tails, tiling with reorders, fuse + parallel, vectorizing the innermost data-parallel axis,
unrolling, inlining elementwise producers, computing producers inside their consumer's loops.
"""

from __future__ import annotations

from collections.abc import Callable

from tcomp.ir.expr import IterKind, IterVar
from tcomp.schedule.relation import AttachType
from tcomp.schedule.schedule import Schedule
from tcomp.schedule.stage import Stage
from tcomp.te.tensor import ComputeOp, Tensor

Recipe = Callable[[Schedule, Tensor], None]


def compute_stages(s: Schedule) -> list[Stage]:
    """Stages of computes (not placeholders, not inlined), producers first."""
    return [st for st in s.stages if isinstance(st.op, ComputeOp) and st.attach_type is not AttachType.INLINE]


def data_leaves(stage: Stage) -> list[IterVar]:
    return [lv for lv in stage.leaf_iter_vars if lv.kind is not IterKind.REDUCE]


def reduce_leaves(stage: Stage) -> list[IterVar]:
    return [lv for lv in stage.leaf_iter_vars if lv.kind is IterKind.REDUCE]


def split_tails(s: Schedule, output: Tensor) -> None:
    """Every data-parallel axis split by 3 and every reduction axis by 2 (tails wherever the extent is not a
    multiple)."""
    for stage in compute_stages(s):
        for axis in stage.axis:
            stage.split(axis, factor=3)
        for axis in stage.reduce_axis:
            stage.split(axis, factor=2)


def tile_reorder(s: Schedule, output: Tensor) -> None:
    """The last two data-parallel axes tiled by (4, 5); the first reduction axis split by 3 and its outer part placed
    between the tile loops, its inner part between the point loops."""
    for stage in compute_stages(s):
        axes = stage.axis
        if len(axes) >= 2:
            xo, yo, xi, yi = stage.tile(axes[-2], axes[-1], 4, 5)
            if stage.reduce_axis:
                ko, ki = stage.split(stage.reduce_axis[0], factor=3)
                stage.reorder(xo, ko, yo, xi, ki, yi)
        elif len(axes) == 1:
            outer, inner = stage.split(axes[0], factor=4)
            if stage.reduce_axis:
                ko, ki = stage.split(stage.reduce_axis[0], factor=3)
                stage.reorder(ko, outer, ki, inner)


def fuse_parallel(s: Schedule, output: Tensor) -> None:
    """All data-parallel axes fused into one parallel loop."""
    for stage in compute_stages(s):
        if stage.axis:
            fused = stage.fuse(*stage.axis)
            stage.parallel(fused)


def vectorize_inner(s: Schedule, output: Tensor) -> None:
    """The innermost data-parallel axis split by 4, the inner part moved innermost (inside the reduction loops) and
    vectorized."""
    for stage in compute_stages(s):
        if not stage.axis:
            continue
        outer, inner = stage.split(stage.axis[-1], factor=4)
        if stage.reduce_axis:
            order = [lv for lv in stage.leaf_iter_vars if lv is not inner] + [inner]
            stage.reorder(*order)
        stage.vectorize(inner)


def unroll_inner(s: Schedule, output: Tensor) -> None:
    """The innermost loop split by 3 and its inner part unrolled; the data-parallel axis also split and unrolled."""
    for stage in compute_stages(s):
        last = stage.leaf_iter_vars[-1]
        _, inner = stage.split(last, factor=3)
        stage.unroll(inner)
        if stage.reduce_axis and stage.axis:
            _, dp_inner = stage.split(stage.axis[-1], factor=2)
            stage.unroll(dp_inner)


def inline_injective(s: Schedule, output: Tensor) -> None:
    """Every non-output, non-reduction compute (pad, exp, ...) inlined into its readers; the rest split with
    tails."""
    for stage in compute_stages(s):
        if not stage.is_output and not stage.is_reduction and isinstance(stage.op, ComputeOp):
            stage.compute_inline()
    split_tails(s, output)


def _attach_all(s: Schedule, choose: Callable[[Stage], IterVar]) -> None:
    for stage in compute_stages(s):
        if stage.axis:
            stage.split(stage.axis[0], factor=2)
    for stage in reversed(compute_stages(s)):
        if stage.is_output:
            continue
        readers = s.readers(stage)
        if len(readers) == 1:
            stage.compute_at(readers[0], choose(readers[0]))


def compute_at_outer(s: Schedule, output: Tensor) -> None:
    """First axes split by 2; every producer with a single reader computed at the reader's outermost loop."""
    _attach_all(s, lambda reader: reader.leaf_iter_vars[0])


def compute_at_inner(s: Schedule, output: Tensor) -> None:
    """First axes split by 2; every producer with a single reader computed at the reader's innermost loop."""
    _attach_all(s, lambda reader: reader.leaf_iter_vars[-1])


def compute_at_inline_mix(s: Schedule, output: Tensor) -> None:
    """Non-reduction producers inlined, then reduction producers computed at their reader's second loop."""
    for stage in compute_stages(s):
        if not stage.is_output and not stage.is_reduction:
            stage.compute_inline()
    _attach_all(s, lambda reader: reader.leaf_iter_vars[min(1, len(reader.leaf_iter_vars) - 1)])


RECIPES: dict[str, Recipe] = {
    "split_tails": split_tails,
    "tile_reorder": tile_reorder,
    "fuse_parallel": fuse_parallel,
    "vectorize_inner": vectorize_inner,
    "unroll_inner": unroll_inner,
    "inline_injective": inline_injective,
    "compute_at_outer": compute_at_outer,
    "compute_at_inner": compute_at_inner,
    "compute_at_inline_mix": compute_at_inline_mix,
}
