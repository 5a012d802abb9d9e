"""CUDA schedules for injective operators and fused elementwise groups: one thread per output element.

Intermediate injective stages (``ops.add``, ``ops.exp``, broadcasts, casts ...) are inlined into the outputs, so a
chain such as ``relu(a * b + c)`` is one kernel reading each input once. Each output's axes are fused and split over
blocks of ``num_threads`` threads (``blockIdx.x``, ``threadIdx.x``); consecutive threads write consecutive elements.
Works with symbolic shapes (the grid is computed at launch).
"""

from __future__ import annotations

from collections.abc import Sequence

from tcomp.ops.cuda.common import bind_blocks_threads
from tcomp.schedule import Schedule, create_schedule
from tcomp.te.tensor import ComputeOp, Tensor


def _is_inlinable(s: Schedule, tensor: Tensor, outputs: set[int]) -> bool:
    stage = s[tensor]
    return isinstance(stage.op, ComputeOp) and not stage.is_reduction and id(stage.op) not in outputs


def schedule_injective(outs: Tensor | Sequence[Tensor], num_threads: int = 256,
                       s: Schedule | None = None) -> Schedule:
    """A schedule (new, or ``s``) in which every injective stage feeding ``outs`` is inlined and every output runs
    one element per thread. The inputs must reach the outputs through injective stages only."""
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
        bind_blocks_threads(stage, fused, num_threads)
    return s
