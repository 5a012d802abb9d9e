"""``matmul_cuda``: a tunable shared-memory matmul.

It tunes ``tcomp.ops.cuda.schedule_matmul`` (shared-memory tiles of ``A`` and ``B``, a register tile per thread,
cooperative fetching): knobs ``tile_y`` / ``tile_x`` (threads and register tile along rows and columns, so block
tiles of 16 to 128), ``tile_k`` (the depth of a shared-memory slice), ``vector`` (float4 copies into shared memory),
``double_buffer`` and ``smem_pad`` (padding against bank conflicts). Its fallback is ``default_matmul_knobs``, the
schedule the default CUDA schedule uses, so tuning starts from the untuned kernel.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tcomp import te
from tcomp.autotune.space import Config
from tcomp.autotune.template import template
from tcomp.autotune.templates.cuda.knobs import define_tile_split, require_cuda
from tcomp.ops.cuda.matmul import MatmulKnobs, default_matmul_knobs, schedule_matmul
from tcomp.schedule import Schedule, create_schedule
from tcomp.te.tensor import Tensor


def matmul_reference(inputs: Sequence[np.ndarray], *args: object) -> list[np.ndarray]:
    a, b = inputs
    return [np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(a.dtype)]


@template("matmul_cuda", reference=matmul_reference)
def matmul_cuda(cfg: Config, M: int, N: int, K: int, dtype: str = "float32") -> tuple[Schedule, list[Tensor]]:
    """``C = A @ B`` with the shared-memory CUDA schedule (see the module docstring)."""
    require_cuda(cfg, "matmul_cuda")
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
