"""``reduce_cuda(M, N)``: ``sum(x, axis=1)`` with a cross-thread reduction (``schedule_reduce_stage_cross_thread``):
``threads`` per row, ``rows_per_block`` rows per block (along ``threadIdx.y``). Falls back to the default CUDA
schedule's thread count.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tcomp import ops, te
from tcomp.arith.factors import ceil_power_of_two, powers_of_two
from tcomp.autotune.space import Config
from tcomp.autotune.template import template
from tcomp.autotune.templates.cuda.knobs import MAX_THREADS_PER_BLOCK, thread_counts
from tcomp.ops.cuda.dispatch import REDUCE_THREADS, thread_count
from tcomp.ops.cuda.reduce import schedule_reduce_stage_cross_thread
from tcomp.schedule import Schedule, create_schedule
from tcomp.target import TargetKind
from tcomp.te.tensor import Tensor


def reduce_reference(inputs: Sequence[np.ndarray], *args: object) -> list[np.ndarray]:
    (x,) = inputs
    return [x.astype(np.float64).sum(axis=1).astype(x.dtype)]


@template("reduce_cuda", reference=reduce_reference, kind=TargetKind.CUDA)
def reduce_cuda(cfg: Config, M: int, N: int, dtype: str = "float32") -> tuple[Schedule, list[Tensor]]:
    """``sum(x, axis=1)`` of an ``M x N`` tensor, reduced across the threads of a block (module docstring)."""
    thread_choices = thread_counts(N, 32, 512, REDUCE_THREADS, cfg.target)
    threads = cfg.define_knob("threads", thread_choices, fallback=thread_count(REDUCE_THREADS, cfg.target))
    max_threads = cfg.target.max_threads_per_block if cfg.target is not None else MAX_THREADS_PER_BLOCK
    row_limit = min(8, ceil_power_of_two(M), max_threads // max(thread_choices))
    rows = cfg.define_knob("rows_per_block", powers_of_two(1, max(1, row_limit)), fallback=1)
    x = te.placeholder((M, N), name="x", dtype=dtype)
    out = ops.sum(x, axis=1)
    s = create_schedule(out)
    schedule_reduce_stage_cross_thread(s[out], threads.val, rows.val)
    return s, [x, out]
