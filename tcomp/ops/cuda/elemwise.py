"""CUDA schedules for injective operators and fused elementwise groups: one thread per output element, or a few.

Intermediate injective stages (``ops.add``, ``ops.exp``, broadcasts, casts ...) are inlined into the outputs, so a
chain such as ``relu(a * b + c)`` is one kernel reading each input once. Each output's axes are fused and split over
blocks of ``num_threads`` threads (``blockIdx.x``, ``threadIdx.x``); consecutive threads write consecutive elements.
Works with symbolic shapes (the grid is computed at launch).

Two knobs give a thread more than one element (``bind_elementwise``): ``vector`` consecutive elements in a loop
marked vectorized (printed unrolled; contiguous per thread), and ``unroll`` such groups ``num_threads`` groups
apart in an unrolled loop (each step still coalesced across the block)::

    for block in blockIdx.x: for t in threadIdx.x: for u in unroll(unroll): for v in vectorized(vector):
      out[((block * unroll + u) * num_threads + t) * vector + v] = ...
"""

from __future__ import annotations

from collections.abc import Sequence

from tcomp import te
from tcomp.ir.expr import IterVar
from tcomp.ops.cuda.common import bind_blocks_threads
from tcomp.schedule import Schedule, create_schedule
from tcomp.schedule.stage import Stage
from tcomp.te.tensor import ComputeOp, Tensor


def _is_inlinable(s: Schedule, tensor: Tensor, outputs: set[int]) -> bool:
    stage = s[tensor]
    return isinstance(stage.op, ComputeOp) and not stage.is_reduction and id(stage.op) not in outputs


def bind_elementwise(stage: Stage, axis: IterVar, num_threads: int, vector: int = 1, unroll: int = 1) -> None:
    """Split ``axis`` over blocks of ``num_threads`` threads, each taking ``unroll`` groups of ``vector`` consecutive
    elements (see the module docstring); with both at 1 this is ``bind_blocks_threads``."""
    if num_threads < 1 or vector < 1 or unroll < 1:
        raise ValueError(f"bind_elementwise: num_threads ({num_threads}), vector ({vector}) and unroll ({unroll}) "
                         "must be positive")
    lanes = None
    if vector > 1:
        axis, lanes = stage.split(axis, factor=vector)
    if unroll > 1:
        block, rest = stage.split(axis, factor=num_threads * unroll)
        step, thread = stage.split(rest, factor=num_threads)
        stage.bind(block, te.thread_axis("blockIdx.x"))
        stage.bind(thread, te.thread_axis("threadIdx.x"))
        stage.reorder(block, thread, step)
        stage.unroll(step)
    else:
        bind_blocks_threads(stage, axis, num_threads)
    if lanes is not None:
        stage.vectorize(lanes)


def schedule_injective(outs: Tensor | Sequence[Tensor], num_threads: int = 256,
                       s: Schedule | None = None, vector: int = 1, unroll: int = 1) -> Schedule:
    """A schedule (new, or ``s``) in which every injective stage feeding ``outs`` is inlined and every output runs
    one element per thread (``vector * unroll`` with those knobs, see ``bind_elementwise``). The inputs must reach
    the outputs through injective stages only."""
    outputs = [outs] if isinstance(outs, Tensor) else list(outs)
    if s is None:
        s = create_schedule([t.op for t in outputs])
    output_ops = {id(t.op) for t in outputs}
    for stage in list(s.stages):
        tensor = stage.op.output(0) if stage.op.num_outputs else None
        if tensor is not None and _is_inlinable(s, tensor, output_ops):
            stage.compute_inline()
    for out in outputs:
        stage = s[out]
        fused = stage.fuse(*stage.op.axis)
        bind_elementwise(stage, fused, num_threads, vector, unroll)
    return s
