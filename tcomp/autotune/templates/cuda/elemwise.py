"""``elemwise_cuda(M, N)``: ``relu(a * b + c)`` (``c`` a row broadcast along ``M``) fused in one kernel by
``schedule_injective``: ``threads`` per block, and per thread ``unroll`` groups of ``vector`` consecutive elements.
Falls back to the default CUDA schedule's thread count.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tcomp import ops, te
from tcomp.autotune.space import Config
from tcomp.autotune.template import template
from tcomp.autotune.templates.cuda.knobs import thread_counts
from tcomp.ops.cuda.dispatch import ELEMWISE_THREADS, thread_count
from tcomp.ops.cuda.elemwise import schedule_injective
from tcomp.schedule import Schedule
from tcomp.target import TargetKind
from tcomp.te.tensor import Tensor


def elemwise_reference(inputs: Sequence[np.ndarray], *args: object) -> list[np.ndarray]:
    a, b, c = inputs
    return [np.maximum(a * b + c, 0).astype(a.dtype)]


@template("elemwise_cuda", reference=elemwise_reference, kind=TargetKind.CUDA)
def elemwise_cuda(cfg: Config, M: int, N: int, dtype: str = "float32") -> tuple[Schedule, list[Tensor]]:
    """``relu(a * b + c)`` for ``M x N`` tensors ``a``, ``b`` and a row ``c`` of ``N``, fused in one kernel."""
    threads = cfg.define_knob("threads", thread_counts(M * N, 32, 1024, ELEMWISE_THREADS, cfg.target),
                              fallback=thread_count(ELEMWISE_THREADS, cfg.target))
    vector = cfg.define_knob("vector", [1, 2, 4], fallback=1)
    unroll = cfg.define_knob("unroll", [1, 2, 4], fallback=1)
    a = te.placeholder((M, N), name="a", dtype=dtype)
    b = te.placeholder((M, N), name="b", dtype=dtype)
    c = te.placeholder((N,), name="c", dtype=dtype)
    out = ops.relu(ops.add(ops.multiply(a, b), c))
    s = schedule_injective(out, threads.val, vector=vector.val, unroll=unroll.val)
    return s, [a, b, c, out]
