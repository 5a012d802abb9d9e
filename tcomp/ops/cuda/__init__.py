"""Default CUDA schedules and tunable schedule functions (knobs as plain values) for the operator library.

- ``schedule_cuda``: the default CUDA schedule of any fused group of library operators (``dispatch``).

- ``schedule_injective``: elementwise and broadcast operators, fused chains in one kernel (``elemwise``).
- ``schedule_reduce``: reductions, cross-thread (a shared-memory tree) or one thread per output (``reduce``).
- ``schedule_softmax``: softmax over the last axis, one block per row (``softmax``).
- ``schedule_matmul`` / ``matmul_cuda``: shared-memory tiles and register blocking (``matmul``, ``MatmulKnobs``).
- ``schedule_conv2d_nchw`` / ``conv2d_cuda``: shared-memory input and weight tiles (``conv2d``, ``Conv2dKnobs``).

A tuner calls these with knob values it chooses; ``default_*_knobs`` give values that fit a shape.
"""

from tcomp.ops.cuda.common import bind_blocks_threads, cooperative_fetch
from tcomp.ops.cuda.conv2d import Conv2dKnobs, conv2d_cuda, schedule_conv2d_nchw
from tcomp.ops.cuda.dispatch import schedule_cuda
from tcomp.ops.cuda.elemwise import schedule_injective
from tcomp.ops.cuda.matmul import MatmulKnobs, default_matmul_knobs, matmul_cuda, schedule_matmul
from tcomp.ops.cuda.reduce import (
    schedule_reduce,
    schedule_reduce_stage_cross_thread,
    schedule_reduce_stage_per_thread,
)
from tcomp.ops.cuda.softmax import schedule_softmax, softmax_cuda

__all__ = [
    "Conv2dKnobs", "MatmulKnobs", "bind_blocks_threads", "conv2d_cuda", "cooperative_fetch", "default_matmul_knobs",
    "matmul_cuda", "schedule_conv2d_nchw", "schedule_cuda", "schedule_injective", "schedule_matmul", "schedule_reduce",
    "schedule_reduce_stage_cross_thread", "schedule_reduce_stage_per_thread", "schedule_softmax", "softmax_cuda",
]
