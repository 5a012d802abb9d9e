"""Hooks for CUDA templates: thread-binding knobs and a matmul template skeleton that uses them.

A CUDA template tiles each output axis four ways, ``[block, vthread, thread, inner]``, binds the parts to
``blockIdx`` / ``vthread`` / ``threadIdx`` and keeps ``inner`` in registers. ``define_thread_split`` defines such a
knob with power-of-two factors and a cap on threads per axis; ``bind_thread_split`` binds the axes. The space,
the schedule and lowering work today (``tcomp.lower(..., simple_mode=True)``); building waits for the CUDA backend,
so ``matmul_cuda`` refuses any target but ``cuda``.
"""

from __future__ import annotations

from collections.abc import Sequence

from tcomp import te
from tcomp.autotune.space import Config, SplitEntity, SplitPolicy
from tcomp.autotune.template import template
from tcomp.ir.expr import IterVar
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


@template("matmul_cuda")
def matmul_cuda(cfg: Config, M: int, N: int, K: int, dtype: str = "float32") -> tuple[Schedule, list[Tensor]]:
    """``C = A @ B`` tiled for a GPU: 2-D thread blocks, register tiles, a tiled reduction (knob ``tile_k``) and
    an unroll knob for the code generator (``auto_unroll_max_step``, passed as a pragma)."""
    if cfg.target is not None and cfg.target.kind != "cuda":
        raise ValueError(f"matmul_cuda is a CUDA template; target {cfg.target} is not cuda")
    tile_y = define_thread_split(cfg, "tile_y", M, fallback=[-1, 1, 8, 4])
    tile_x = define_thread_split(cfg, "tile_x", N, fallback=[-1, 1, 16, 4])
    tile_k = cfg.define_split("tile_k", K, 2, SplitPolicy.FACTORS, max_factor=64, fallback=[-1, 8])
    unroll_step = cfg.define_knob("auto_unroll_max_step", [0, 512, 1500])
    A = te.placeholder((M, K), name="A", dtype=dtype)
    B = te.placeholder((K, N), name="B", dtype=dtype)
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    s = create_schedule(C)
    i, j = C.op.axis
    by, vy, ty, yi = tile_y.apply(s[C], i)
    bx, vx, tx, xi = tile_x.apply(s[C], j)
    ko, ki = tile_k.apply(s[C], k)
    s[C].reorder(by, bx, vy, vx, ty, tx, ko, ki, yi, xi)
    bind_thread_split(s[C], [by, vy, ty, yi], "y")
    bind_thread_split(s[C], [bx, vx, tx, xi], "x")
    s[C].pragma(ko, "auto_unroll_max_step", unroll_step.val)
    return s, [A, B, C]
