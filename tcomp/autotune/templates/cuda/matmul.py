"""``matmul_cuda``: a tunable matmul on the block-level GEMM tile kernel (``tcomp.ops.cuda.gemm_intrin``).

It multiplies in the precision of the target (``cuda -precision=fp16`` ...; float16 operands always use float16
tensor cores). Knob ``tile`` is one of ``gemm_choice.candidate_tiles`` (block and warp tiles, float32 lanes, 2-4
``cp.async`` stages, padded or swizzled shared memory; every one fits the target), ``k_outer`` stores float32 tiles
k-outermost, ``min_blocks`` asks the compiler to fit 2 blocks per multiprocessor (at most 128 registers for 256
threads). Its fallback is ``gemm_choice.default_tile``, the kernel ``tcomp.ops.cuda.matmul_cuda`` builds untuned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from tcomp import ops, te
from tcomp.autotune.space import Config
from tcomp.autotune.template import template
from tcomp.ops.cuda.gemm_choice import (
    candidate_tiles,
    default_tile,
    fits,
    matmul_problem,
    parse_tile_name,
    precision_for,
    tile_name,
)
from tcomp.ops.cuda.gemm_intrin import schedule_matmul_tile
from tcomp.schedule import Schedule, create_schedule
from tcomp.target import TargetKind
from tcomp.te.tensor import Tensor


def matmul_reference(inputs: Sequence[np.ndarray], *args: object) -> list[np.ndarray]:
    a, b = inputs
    return [np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(np.float32)]


@template("matmul_cuda", reference=matmul_reference, kind=TargetKind.CUDA)
def matmul_cuda(cfg: Config, M: int, N: int, K: int, dtype: str = "float32") -> tuple[Schedule, list[Tensor]]:
    """``C = A @ B`` (``C`` float32) with the GEMM tile kernel (see the module docstring)."""
    precision = precision_for(dtype, cfg.target)
    problem = matmul_problem(M, N, K, dtype, precision)
    default = default_tile(problem, M, N, target=cfg.target)
    outer = [False, True] if dtype == "float32" else [False]
    tiles = [tile_name(t) for t in candidate_tiles(problem, cfg.target)
             if all(fits(replace(t, k_outer=k, min_blocks=b), problem, cfg.target) for k in outer for b in (1, 2))]
    if tile_name(default) not in tiles:
        tiles.append(tile_name(default))
    shape = cfg.define_knob("tile", tiles, fallback=tile_name(default))
    k_outer = cfg.define_knob("k_outer", outer, fallback=default.k_outer)
    min_blocks = cfg.define_knob("min_blocks", [1, 2], fallback=default.min_blocks)
    tile = parse_tile_name(str(shape.val), k_outer=bool(k_outer.val), min_blocks=int(min_blocks.val))
    A = te.placeholder((M, K), name="A", dtype=dtype)
    B = te.placeholder((K, N), name="B", dtype=dtype)
    C = ops.matmul(A, B, out_dtype="float32", name="C")
    cfg.add_flop(2.0 * M * N * K)
    s = create_schedule(C)
    schedule_matmul_tile(s, C, tile, precision, cfg.target)
    return s, [A, B, C]
