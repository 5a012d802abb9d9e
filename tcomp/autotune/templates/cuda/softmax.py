"""``softmax_cuda(M, N)``: ``softmax(x, axis=-1)`` with ``schedule_softmax``: ``threads`` per row (one block per
row). Falls back to the default CUDA schedule's thread count.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tcomp import ops, te
from tcomp.autotune.space import Config
from tcomp.autotune.template import template
from tcomp.autotune.templates.cuda.knobs import thread_counts
from tcomp.ops.cuda.dispatch import REDUCE_THREADS, thread_count
from tcomp.ops.cuda.softmax import schedule_softmax
from tcomp.schedule import Schedule
from tcomp.target import TargetKind
from tcomp.te.tensor import Tensor


def softmax_reference(inputs: Sequence[np.ndarray], *args: object) -> list[np.ndarray]:
    (x,) = inputs
    wide = x.astype(np.float64)
    e = np.exp(wide - wide.max(axis=-1, keepdims=True))
    return [(e / e.sum(axis=-1, keepdims=True)).astype(x.dtype)]


@template("softmax_cuda", reference=softmax_reference, kind=TargetKind.CUDA)
def softmax_cuda(cfg: Config, M: int, N: int, dtype: str = "float32") -> tuple[Schedule, list[Tensor]]:
    """``softmax(x, axis=-1)`` of an ``M x N`` tensor, one block of ``threads`` per row (module docstring)."""
    threads = cfg.define_knob("threads", thread_counts(N, 32, 1024, REDUCE_THREADS, cfg.target),
                              fallback=thread_count(REDUCE_THREADS, cfg.target))
    x = te.placeholder((M, N), name="x", dtype=dtype)
    out = ops.softmax(x)
    return schedule_softmax(out, threads.val), [x, out]
