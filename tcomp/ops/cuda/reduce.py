"""CUDA schedules for reductions (``ops.sum``, ``ops.max`` ... and any single-stage ``te`` reduction).

Two shapes of reduction, two schedules:

- ``schedule_reduce_cross_thread``: one block per group of ``rows_per_block`` outputs; the reduction axes are fused
  and split so ``num_threads`` threads (``threadIdx.x``) each reduce a strided share (consecutive threads read
  consecutive elements when the reduction runs over the innermost axis), then combine their partial results in
  shared memory with a tree (a cross-thread reduction: the reduction axis bound to ``threadIdx.x``).
- ``schedule_reduce_per_thread``: one thread per output element, each reducing serially; right when the reduced axes
  are not the innermost ones (``sum(x, axis=0)``): consecutive threads then read consecutive elements.

``schedule_reduce`` picks one by where the reduced axes lie.
"""

from __future__ import annotations

from tcomp import te
from tcomp.ir.expr import ProducerLoad
from tcomp.ir.functor import post_order_visit
from tcomp.ops.cuda.common import bind_blocks_threads
from tcomp.schedule import Schedule, create_schedule
from tcomp.schedule.stage import Stage
from tcomp.te.tensor import ComputeOp, Tensor


def schedule_reduce_stage_cross_thread(stage: Stage, num_threads: int = 64, rows_per_block: int = 1,
                                       bind_rows: bool = True) -> None:
    """Cross-thread reduction of one reduction stage (see the module docstring). ``bind_rows=False`` leaves the
    data-parallel axes alone, for a stage computed inside another stage's block loop."""
    reduce = stage.fuse(*stage.reduce_axis)
    ko, ki = stage.split(reduce, factor=num_threads)
    if stage.axis and not bind_rows:
        stage.reorder(*stage.axis, ki, ko)
    elif stage.axis:
        rows = stage.fuse(*stage.axis)
        if rows_per_block > 1:
            block, row = stage.split(rows, factor=rows_per_block)
            stage.reorder(block, row, ki, ko)
            stage.bind(row, te.thread_axis("threadIdx.y"))
        else:
            block = rows
            stage.reorder(block, ki, ko)
        stage.bind(block, te.thread_axis("blockIdx.x"))
    else:
        stage.reorder(ki, ko)
    stage.bind(ki, te.thread_axis("threadIdx.x"))


def schedule_reduce_stage_per_thread(stage: Stage, num_threads: int = 256) -> None:
    """One thread per output element, reducing serially."""
    rows = stage.fuse(*stage.axis)
    bind_blocks_threads(stage, rows, num_threads)


def _reduces_innermost(op: ComputeOp) -> bool:
    """Whether the reduction reads its first input with the last reduction axis in the last index."""
    reduce = op.body[0]
    last = op.reduce_axis[-1].var
    found: list[bool] = []

    def visit(node: object) -> None:
        if isinstance(node, ProducerLoad) and not found:
            found.append(node.indices[-1] is last)

    post_order_visit(reduce, visit)
    return bool(found and found[0])


def schedule_reduce(out: Tensor, num_threads: int = 64, s: Schedule | None = None) -> Schedule:
    """A CUDA schedule for the reduction ``out`` (stages feeding it are inlined when injective)."""
    if s is None:
        s = create_schedule(out)
    stage = s[out]
    op = stage.op
    if not isinstance(op, ComputeOp) or not op.is_reduction:
        raise ValueError(f"schedule_reduce: {out.name} is not a reduction")
    for other in s.stages:
        if other is not stage and isinstance(other.op, ComputeOp) and not other.is_reduction:
            other.compute_inline()
    if _reduces_innermost(op) or not stage.axis:
        schedule_reduce_stage_cross_thread(stage, num_threads)
    else:
        schedule_reduce_stage_per_thread(stage, max(num_threads, 128))
    return s
