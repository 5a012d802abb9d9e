"""CUDA softmax over the last axis (``ops.softmax``): one block per row, two kernels.

The four stages of ``ops.softmax`` (row max, ``exp(x - max)``, row sum, normalization) become::

    kernel 0: for row in blockIdx.x:
                T_softmax_maxelem[row] <- cross-thread max of x[row, :]   (a tree in shared memory)
    kernel 1: for row in blockIdx.x:
                T_softmax_expsum <- cross-thread sum of exp(x[row, :] - max[row])   (exp recomputed, not stored)
                for t in threadIdx.x: for chunk: out[row, chunk * num_threads + t] = exp(x - max) / sum

The sum lives in registers (every thread keeps the tree's result). The max gets its own kernel because two stages
read it (the sum and the normalization), and a stage is computed inside one reader's loop only when it has no other.
"""

from __future__ import annotations

from tcomp import te
from tcomp.ops.cuda.reduce import schedule_reduce_stage_cross_thread
from tcomp.ops.nn import softmax
from tcomp.schedule import Schedule, create_schedule
from tcomp.te.tensor import Tensor


def schedule_softmax(out: Tensor, num_threads: int = 64, s: Schedule | None = None) -> Schedule:
    """Schedule the output of ``ops.softmax(x, axis=-1)`` as described in the module docstring."""
    if s is None:
        s = create_schedule(out)
    expo, expsum = out.op.input_tensors()
    if expsum.op.name.endswith("_exp"):
        expo, expsum = expsum, expo
    maxelem = next(t for t in expo.op.input_tensors() if t.op.name.endswith("_maxelem"))
    s[expo].compute_inline()
    stage = s[out]
    *rows, col = stage.op.axis
    row = stage.fuse(*rows) if len(rows) > 1 else rows[0]
    chunk, lane = stage.split(col, factor=num_threads)
    stage.bind(row, te.thread_axis("blockIdx.x"))
    stage.bind(lane, te.thread_axis("threadIdx.x"))
    stage.reorder(row, lane, chunk)
    s[expsum].compute_at(stage, row)
    schedule_reduce_stage_cross_thread(s[expsum], num_threads, bind_rows=False)
    schedule_reduce_stage_cross_thread(s[maxelem], num_threads)
    return s


def softmax_cuda(shape: tuple[int, ...], num_threads: int = 64,
                 dtype: str = "float32") -> tuple[Schedule, list[Tensor]]:
    """``softmax(x, axis=-1)`` for ``x`` of ``shape``; returns ``(schedule, [x, out])``."""
    x = te.placeholder(shape, name="x", dtype=dtype)
    out = softmax(x)
    return schedule_softmax(out, num_threads), [x, out]
