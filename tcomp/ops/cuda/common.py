"""Building blocks of CUDA schedules: binding an axis to blocks and threads, cooperative fetching.

Thread layouts are given outermost first, as ``[("threadIdx.y", 8), ("threadIdx.x", 16)]``; a cooperative fetch binds
the fetch stage's loops to exactly these thread counts, so its loops and its consumer's agree in every kernel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from tcomp import te
from tcomp.ir.expr import IterVar
from tcomp.ir.gpu import UNROLL_MAX_EXTENT
from tcomp.schedule.stage import Stage

ThreadLayout = Sequence[tuple[str, int]]

# A cooperative fetch whose serial loop has at most this many steps is unrolled, so each thread issues all its loads
# before it waits for the first one (a loop would wait for one load per step): the pragma ``UNROLL_MAX_EXTENT``.
MAX_UNROLLED_FETCH = 64


def bind_blocks_threads(stage: Stage, axis: IterVar, num_threads: int,
                        block_tag: str = "blockIdx.x", thread_tag: str = "threadIdx.x") -> tuple[IterVar, IterVar]:
    """Split ``axis`` by ``num_threads`` and bind the parts to ``block_tag`` and ``thread_tag``."""
    outer, inner = stage.split(axis, factor=num_threads)
    stage.bind(outer, te.thread_axis(block_tag))
    stage.bind(inner, te.thread_axis(thread_tag))
    return outer, inner


def cooperative_fetch(stage: Stage, threads: ThreadLayout, vector: int = 1) -> None:
    """Let all threads of a block copy the tile of a cache stage together.

    The stage's axes are fused; ``vector`` consecutive elements of the innermost axis (a vectorized loop: one
    ``float4`` access where the addresses are aligned) go to one thread, and consecutive threads (x fastest) take
    consecutive groups, so global reads coalesce; a serial loop outside covers a tile bigger than the block (unrolled
    when it has at most ``MAX_UNROLLED_FETCH`` steps).
    """
    *outer_axes, last = stage.op.axis
    if vector > 1:
        last, lanes = stage.split(last, factor=vector)  # split before fusing, so each group's start is aligned
        stage.vectorize(lanes)
    fused = stage.fuse(*outer_axes, last)
    total = math.prod(count for _, count in threads)
    serial, thread = stage.split(fused, factor=total)
    # every load of the tile in flight at once, not one round trip per step (the tile's size is known after bound
    # inference, so the code generator decides)
    stage.pragma(serial, UNROLL_MAX_EXTENT, MAX_UNROLLED_FETCH)
    parts: list[IterVar] = []
    for _, count in reversed(threads[1:]):
        thread, part = stage.split(thread, factor=count)
        parts.append(part)
    parts.append(thread)
    for (tag, _), part in zip(threads, reversed(parts)):
        stage.bind(part, te.thread_axis(tag))

