"""Knobs shared by the CUDA templates: thread splits, tile splits and the checks every CUDA template makes.

``define_thread_split`` defines a 4-way split ``[block, vthread, thread, inner]`` of an axis with power-of-two
factors and caps on threads and virtual threads; ``bind_thread_split`` binds such axes to ``blockIdx`` /
``vthread`` / ``threadIdx``. ``define_tile_split`` defines the 3-way ``[block, thread, inner]`` split used by the
shared-memory schedules of ``tcomp.ops.cuda``. ``thread_counts`` and ``tile_sizes`` list the candidates of the
thread-count and tile knobs.
"""

from __future__ import annotations

from collections.abc import Sequence

from tcomp import te
from tcomp.arith.factors import ceil_power_of_two, powers_of_two
from tcomp.autotune.space import Config, SplitEntity, SplitPolicy
from tcomp.ir.expr import IterVar, const_int_value
from tcomp.ops.cuda.dispatch import thread_count
from tcomp.schedule.stage import Stage
from tcomp.target import Target
from tcomp.te.tensor import Tensor

MAX_THREADS_PER_BLOCK = 1024

THREAD_TAGS = ("blockIdx", "vthread", "threadIdx")


def define_thread_split(cfg: Config, name: str, extent: int, max_threads: int = 32, max_vthreads: int = 4,
                        fallback: Sequence[int] | None = None) -> SplitEntity:
    """A 4-way split ``[block, vthread, thread, inner]`` of ``extent`` with power-of-two factors, at most
    ``max_vthreads`` virtual threads and ``max_threads`` threads along this axis."""

    def fits(entity: SplitEntity) -> bool:
        _, vthread, thread, _ = entity.size
        return vthread <= max_vthreads and thread <= max_threads

    return cfg.define_split(name, extent, 4, SplitPolicy.POWER2, filter=fits, fallback=fallback)


def bind_thread_split(stage: Stage, axes: Sequence[IterVar], dim: str) -> None:
    """Bind ``[block, vthread, thread, inner]`` axes to ``blockIdx.<dim>``, ``vthread``, ``threadIdx.<dim>``."""
    block, vthread, thread, _ = axes
    stage.bind(block, te.thread_axis(f"blockIdx.{dim}"))
    stage.bind(vthread, te.thread_axis(f"vthread.{dim}"))
    stage.bind(thread, te.thread_axis(f"threadIdx.{dim}"))


def define_tile_split(cfg: Config, name: str, extent: int, max_threads: int = 32, max_inner: int = 8,
                      block_range: tuple[int, int] = (16, 128),
                      fallback: Sequence[int] | None = None) -> SplitEntity:
    """A 3-way split ``[block, thread, inner]`` with power-of-two factors: at most ``max_threads`` threads and
    ``max_inner`` register elements along this axis, and a block tile (``thread * inner``) within ``block_range``
    (capped at the extent rounded up to a power of two, so small shapes keep some choices)."""
    low, high = block_range
    cap = ceil_power_of_two(extent)
    low = min(low, cap)

    def fits(entity: SplitEntity) -> bool:
        _, thread, inner = entity.size
        return thread <= max_threads and inner <= max_inner and low <= thread * inner <= high

    return cfg.define_split(name, extent, 3, SplitPolicy.POWER2, filter=fits, fallback=fallback)


def tile_sizes(extent: int, limit: int, default: int) -> list[int]:
    """Tiles up to ``limit``: the divisors of ``extent``, the powers of two below it (the last tile partial, its
    threads guarded) and ``default``."""
    divisors = [d for d in range(1, min(limit, extent) + 1) if extent % d == 0]
    powers = [p for p in powers_of_two(1, limit) if p < extent]
    return sorted(set(divisors) | set(powers) | {default})


def thread_counts(extent: int, low: int, high: int, default: int, target: Target | None = None) -> list[int]:
    """Powers of two from ``low`` to ``high`` threads, no more than ``extent`` rounded up needs, and ``default``;
    none over the threads a block of ``target`` may have."""
    if target is not None and target.thread_blocks:
        cap = target.max_threads_per_block
        high, low, default = min(high, cap), min(low, cap), thread_count(default, target)
    top = max(low, min(high, ceil_power_of_two(extent)))
    return sorted({p for p in powers_of_two(low, top) if p <= high} | {default})


def static_shape(tensor: Tensor) -> tuple[int, ...]:
    return tuple(int(const_int_value(d) or 0) for d in tensor.shape)
