"""CUDA templates: thread-binding knobs and a tunable shared-memory matmul.

``define_thread_split`` defines a 4-way split ``[block, vthread, thread, inner]`` of an axis with power-of-two
factors and caps on threads and virtual threads; ``bind_thread_split`` binds such axes to ``blockIdx`` /
``vthread`` / ``threadIdx``. ``define_tile_split`` defines the 3-way ``[block, thread, inner]`` split used by the
shared-memory schedules of ``tcomp.ops.cuda``.

``matmul_cuda`` tunes ``tcomp.ops.cuda.schedule_matmul`` (shared-memory tiles of ``A`` and ``B``, a register tile
per thread, cooperative fetching): knobs ``tile_y`` / ``tile_x`` (threads and register tile along rows and
columns, so block tiles of 16 to 128), ``tile_k`` (the depth of a shared-memory slice), ``vector`` (float4 copies
into shared memory), ``double_buffer`` and ``smem_pad`` (padding against bank conflicts). Its fallback is
``default_matmul_knobs``, the schedule ``schedule_for`` uses, so tuning starts from the untuned kernel.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tcomp import te
from tcomp.autotune.space import Config, SplitEntity, SplitPolicy
from tcomp.autotune.template import template
from tcomp.ir.expr import IterVar
from tcomp.ops.cuda.matmul import MatmulKnobs, default_matmul_knobs, schedule_matmul
from tcomp.schedule import Schedule, create_schedule
from tcomp.schedule.stage import Stage
from tcomp.te.tensor import Tensor

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
    cap = 1 << max(0, (max(1, extent) - 1).bit_length())
    low = min(low, cap)

    def fits(entity: SplitEntity) -> bool:
        _, thread, inner = entity.size
        return thread <= max_threads and inner <= max_inner and low <= thread * inner <= high

    return cfg.define_split(name, extent, 3, SplitPolicy.POWER2, filter=fits, fallback=fallback)


def matmul_reference(inputs: Sequence[np.ndarray], *args: object) -> list[np.ndarray]:
    a, b = inputs
    return [np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(a.dtype)]


@template("matmul_cuda", reference=matmul_reference)
def matmul_cuda(cfg: Config, M: int, N: int, K: int, dtype: str = "float32") -> tuple[Schedule, list[Tensor]]:
    """``C = A @ B`` with the shared-memory CUDA schedule (see the module docstring)."""
    if cfg.target is not None and cfg.target.kind != "cuda":
        raise ValueError(f"matmul_cuda is a CUDA template; target {cfg.target} is not cuda")
    base = default_matmul_knobs(M, N, K)
    ty, tx = base.threads
    tile_y = define_tile_split(cfg, "tile_y", M, fallback=[-1, ty, base.thread_m])
    tile_x = define_tile_split(cfg, "tile_x", N, fallback=[-1, tx, base.thread_n])
    tile_k = cfg.define_knob("tile_k", [8, 16, 32], fallback=base.block_k)
    vector = cfg.define_knob("vector", [1, 4], fallback=base.vector)
    double_buffer = cfg.define_knob("double_buffer", [False, True], fallback=base.double_buffer)
    smem_pad = cfg.define_knob("smem_pad", [0, 1], fallback=base.smem_pad)
    _, threads_y, inner_y = tile_y.size
    _, threads_x, inner_x = tile_x.size
    knobs = MatmulKnobs(block_m=threads_y * inner_y, block_n=threads_x * inner_x, block_k=tile_k.val,
                        thread_m=inner_y, thread_n=inner_x, smem_pad=smem_pad.val,
                        double_buffer=double_buffer.val, vector=vector.val)
    A = te.placeholder((M, K), name="A", dtype=dtype)
    B = te.placeholder((K, N), name="B", dtype=dtype)
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    cfg.add_flop(2.0 * M * N * K)
    s = create_schedule(C)
    schedule_matmul(s, C, knobs)
    return s, [A, B, C]
