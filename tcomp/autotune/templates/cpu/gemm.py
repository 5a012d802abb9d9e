"""Tunable matrix-product templates for CPUs: ``matmul``, ``dense`` (B given as ``[N, K]``) and ``batch_matmul``.

``matmul`` and ``dense`` follow the hand schedule of ``tcomp.ops.cpu.packed_matmul`` (packed B panels, cache blocking, a
register-blocked micro-kernel), with its choices turned into knobs:

    for i.0 in parallel(M / (mid * mr)):       # tile_i = [i.0, mid, mr]
      <order: a permutation of k.0, j.0, i.1>  # tile_k = [k.0, kc], tile_j = [j.0, nr]
        for k.1 in range(kc):                  # split again by unroll_k and unrolled when > 1
          for i.2 in unroll_mr?(mr):           # mr x nr accumulators in vector registers
            for j.1 in vectorized(nr):

or, with the knob ``micro_kernel`` on (float32, ``nr`` dividing N), the ``mr x nr x kc`` tile inside the order loops
is one call of tcomp's GEMM micro-kernel (``unroll_mr`` and ``unroll_k`` then do not apply). ``nr`` is a multiple of
the target's vector lanes (B is packed into ``[N / nr, K, nr]`` panels, zero-padded past N). The fallback config is
the hand schedule's blocking (``choose_blocking``) with the micro-kernel, so tuning starts from it.

A ``dense`` product that the default schedule computes as dot products (a row vector or a few rows: W's rows are
contiguous along K, ``tcomp.ops.cpu.dense``) keeps that schedule, its tile turned into knobs: each output's sum in
``dot_lanes`` partial sums, ``dot_rows x dot_cols`` outputs at once, the tile's loops unrolled or not
(``dot_unroll``). Its fallback is the default schedule's tile.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from tcomp import te
from tcomp.arith.factors import divisors
from tcomp.autotune.space import (
    AnnotatePolicy,
    Annotation,
    Config,
    ConfigEntity,
    ReorderPolicy,
    SplitEntity,
    SplitPolicy,
)
from tcomp.autotune.template import template
from tcomp.ir import dtype as dt
from tcomp.ops.cpu.common import CpuTarget
from tcomp.ops.cpu.dense import DotTile, default_dot_tile, packed_plan, schedule_dot_tiles
from tcomp.ops.cpu.gemm_plan import GemmBlocking, choose_blocking
from tcomp.ops.cpu.intrin import gemm_intrin
from tcomp.ops.nn import batch_matmul as batch_matmul_compute
from tcomp.ops.nn import matmul as matmul_compute
from tcomp.schedule import Schedule, create_schedule
from tcomp.target import Target, TargetKind
from tcomp.te.tensor import ComputeOp, Tensor

MAX_MR = 16


def vector_lanes(target: Target | None, dtype: str) -> int:
    return max(1, _vector_bits(target or Target.current_host()) // dt.bits(dtype))


@functools.lru_cache(maxsize=64)
def _vector_bits(target: Target) -> int:
    return target.vector_bits  # asks LLVM for the host's features: cached, templates run per config


@functools.lru_cache(maxsize=256)
def _blocking(M: int, N: int, K: int, target: Target | None) -> GemmBlocking:
    return choose_blocking(M, N, K, target)


def panel_width_candidates(extent: int, lanes: int) -> list[list[int]]:
    """Split sizes ``[-1, nr]`` with ``nr`` in 1..4 vectors; those dividing ``extent`` when any does."""
    widths = [m * lanes for m in (1, 2, 3, 4)]
    dividing = [w for w in widths if extent % w == 0]
    chosen = dividing or [w for w in widths if w <= max(extent, lanes)]
    if extent < lanes:
        chosen = [extent]
    return [[-1, w] for w in chosen]


def _register_tile(entity: SplitEntity) -> bool:
    return entity.size[-1] <= MAX_MR and entity.size[-1] * entity.size[-2] <= 512


def _define_gemm_knobs(cfg: Config, M: int, N: int, K: int, dtype: str) -> None:
    lanes = vector_lanes(cfg.target, dtype)
    guide = _blocking(M, N, K, cfg.target)
    cores = max(1, (cfg.target or Target.current_host()).num_cores)
    block_rows = min(guide.mc, max(guide.mr, -(-M // cores)))  # a block of rows per core at least (i.0 is parallel)
    cfg.define_split("tile_i", M, 3, SplitPolicy.FACTORS, filter=_register_tile,
                     fallback=[-1, max(1, block_rows // guide.mr), guide.mr])
    cfg.define_split("tile_j", N, 2, SplitPolicy.CANDIDATES, candidates=panel_width_candidates(N, lanes),
                     fallback=[-1, guide.nr])
    cfg.define_split("tile_k", K, 2, SplitPolicy.FACTORS, filter=lambda e: e.size[1] >= min(K, 8),
                     fallback=[-1, guide.kc])
    cfg.define_reorder("order", 3, ReorderPolicy.ALL, fallback=(0, 1, 2))
    cfg.define_annotate("unroll_mr", 1, AnnotatePolicy.TRY_UNROLL, fallback=(Annotation.UNROLL,))
    cfg.define_knob("unroll_k", [1, 2, 4, 8], fallback=1)
    if not (isinstance(cfg, ConfigEntity) and "micro_kernel" not in cfg.choices):
        # a record written before this knob existed has no choice for it and keeps its plain loops
        cfg.define_knob("micro_kernel", [0, 1], fallback=1)


def _micro_kernel_fits(N: int, nr: int, lanes: int, dtype: str) -> bool:
    """Whether every ``mr x nr x kc`` tile is whole and the micro-kernel (float32, ``nr`` whole vectors) applies:
    the splits of M and K (FACTORS) always give whole tiles, the panel width may not divide N."""
    return dtype == "float32" and nr % lanes == 0 and N % nr == 0


def _packed_gemm(cfg: Config, M: int, N: int, K: int, dtype: str, transpose_b: bool) -> tuple[Schedule, list[Tensor]]:
    _define_gemm_knobs(cfg, M, N, K, dtype)
    tile_i, tile_j, tile_k = cfg["tile_i"], cfg["tile_j"], cfg["tile_k"]
    assert isinstance(tile_j, SplitEntity)
    nr = tile_j.size[1]
    A = te.placeholder((M, K), name="A", dtype=dtype)
    B = te.placeholder((N, K) if transpose_b else (K, N), name="B", dtype=dtype)
    panels = -(-N // nr)

    def pack(x: Any, y: Any, z: Any) -> Any:
        column = te.min(x * nr + z, N - 1)
        value = B[column, y] if transpose_b else B[y, column]
        if N % nr == 0:
            return value
        return te.if_then_else(x * nr + z < N, value, te.const(0, dtype))

    packed = te.compute((panels, K, nr), pack, name="packedB")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * packed[j // nr, k, j % nr], axis=k), name="C")
    s = create_schedule(C)
    i, j = C.op.axis
    io, im, ii = tile_i.apply(s[C], i)  # type: ignore[union-attr]
    jo, ji = tile_j.apply(s[C], j)
    ko, ki = tile_k.apply(s[C], k)  # type: ignore[union-attr]
    middle = cfg["order"].permute([ko, jo, im])  # type: ignore[union-attr]
    lanes = vector_lanes(cfg.target, dtype)
    micro_kernel = "micro_kernel" in cfg.choices if isinstance(cfg, ConfigEntity) else True
    if micro_kernel and cfg["micro_kernel"].val and _micro_kernel_fits(N, nr, lanes, dtype):  # type: ignore[union-attr]
        # each mr x nr x kc tile is a call of tcomp's GEMM micro-kernel (unroll_mr and unroll_k do not apply)
        s[C].reorder(io, *middle, ii, ji, ki)
        s[C].tensorize(ii, gemm_intrin(tile_i.size[-1], nr, tile_k.size[-1], lanes))  # type: ignore[union-attr]
    else:
        unroll_k = int(cfg["unroll_k"].val)  # type: ignore[union-attr]
        inner_k = [ki]
        if unroll_k > 1:
            kio, kii = s[C].split(ki, factor=unroll_k)
            inner_k = [kio, kii]
        s[C].reorder(io, *middle, *inner_k, ii, ji)
        if unroll_k > 1:
            s[C].unroll(inner_k[1])
        cfg["unroll_mr"].apply(s[C], [ii])  # type: ignore[union-attr]
        s[C].vectorize(ji)
    s[C].parallel(io)
    x, y, z = packed.op.axis
    if not transpose_b:
        s[packed].reorder(y, x, z)  # read B row by row (about 2x faster than panel by panel)
    s[packed].vectorize(z)
    s[packed].parallel(y if not transpose_b else x)
    return s, [A, B, C]


def matmul_reference(inputs: list[np.ndarray], M: int, N: int, K: int, dtype: str = "float32") -> list[np.ndarray]:
    a, b = inputs
    return [np.matmul(a, b)]


def dense_reference(inputs: list[np.ndarray], M: int, N: int, K: int, dtype: str = "float32") -> list[np.ndarray]:
    x, w = inputs
    return [np.matmul(x, w.T)]


@template("matmul", reference=matmul_reference, kind=TargetKind.LLVM)
def matmul(cfg: Config, M: int, N: int, K: int, dtype: str = "float32") -> tuple[Schedule, list[Tensor]]:
    """``C[M, N] = A[M, K] @ B[K, N]``."""
    return _packed_gemm(cfg, M, N, K, dtype, transpose_b=False)


@template("dense", reference=dense_reference, kind=TargetKind.LLVM)
def dense(cfg: Config, M: int, N: int, K: int, dtype: str = "float32") -> tuple[Schedule, list[Tensor]]:
    """``C[M, N] = X[M, K] @ W[N, K]^T`` (a fully connected layer without bias). Where the default schedule runs
    it as dot products (``tcomp.ops.cpu.dense``: a row vector, or rows too few for the packed GEMM), the knobs are
    that schedule's tile; otherwise the packed GEMM's."""
    cpu = CpuTarget.of(cfg.target)
    X = te.placeholder((M, K), name="X", dtype=dtype)
    W = te.placeholder((N, K), name="W", dtype=dtype)
    C = matmul_compute(X, W, transpose_b=True, name="C")
    assert isinstance(C.op, ComputeOp)
    default = default_dot_tile(M, N, K, cpu.lanes(dtype))
    if default is None or packed_plan(C.op, C, M, N, K, cpu) is not None:
        return _packed_gemm(cfg, M, N, K, dtype, transpose_b=True)
    tile = _dot_knobs(cfg, M, N, K, cpu, dtype, default)
    s = create_schedule(C)
    schedule_dot_tiles(s, s[C], C, [], M, N, K, cpu, tile)
    return s, [X, W, C]


def _dot_knobs(cfg: Config, M: int, N: int, K: int, cpu: CpuTarget, dtype: str, default: DotTile) -> DotTile:
    """The dot-product tile's knobs: ``dot_lanes`` (partial sums per output: half a vector to four vectors, dividing
    K), ``dot_rows`` and ``dot_cols`` (outputs per tile: divisors of M up to 4 and of N up to 16) and ``dot_unroll``.
    A tile other than the default whose accumulators and loads would not fit the vector registers is outside the
    space (``ValueError``)."""
    lanes = cpu.lanes(dtype)
    widths = [w for w in (lanes // 2, lanes, 2 * lanes, 4 * lanes) if w >= 1 and K % w == 0 and K >= 2 * w]
    width = int(cfg.define_knob("dot_lanes", sorted({default.lanes, *widths}), fallback=default.lanes).val)
    rows = int(cfg.define_knob("dot_rows", [d for d in divisors(M) if d <= max(4, default.rows)],
                               fallback=default.rows).val)
    cols = int(cfg.define_knob("dot_cols", [d for d in divisors(N) if d <= max(16, default.cols)],
                               fallback=default.cols).val)
    unroll = bool(cfg.define_knob("dot_unroll", [True, False], fallback=default.unroll).val)
    tile = DotTile(width, rows, cols, unroll)
    registers = (rows * cols + rows + 1) * -(-width // lanes)  # accumulators, the rows of X, a row of W
    if registers > cpu.vector_registers and (rows, cols, width) != (default.rows, default.cols, default.lanes):
        raise ValueError(f"dense: a {rows} x {cols} tile of {width}-lane partial sums needs {registers} vector "
                         f"registers, the target has {cpu.vector_registers}")
    return tile


def batch_matmul_reference(inputs: list[np.ndarray], batch: int, M: int, N: int, K: int,
                           dtype: str = "float32") -> list[np.ndarray]:
    a, b = inputs
    return [np.matmul(a, b)]


@template("batch_matmul", reference=batch_matmul_reference, kind=TargetKind.LLVM)
def batch_matmul(cfg: Config, batch: int, M: int, N: int, K: int,
                 dtype: str = "float32") -> tuple[Schedule, list[Tensor]]:
    """``C[b] = A[b] @ B[b]`` for ``A[batch, M, K]``, ``B[batch, K, N]`` (the compute of ``tcomp.ops``), tiled
    without packing: ``for (b, i.0) in parallel: for <order of j.0, k.0>: for k.1: for i.1 unroll?: for j.1 vec``."""
    lanes = vector_lanes(cfg.target, dtype)
    tile_i = cfg.define_split("tile_i", M, 2, SplitPolicy.FACTORS, max_factor=MAX_MR, fallback=[-1, 8])
    tile_j = cfg.define_split("tile_j", N, 2, SplitPolicy.CANDIDATES, candidates=panel_width_candidates(N, lanes),
                              fallback=[-1, 2 * lanes])
    tile_k = cfg.define_split("tile_k", K, 2, SplitPolicy.FACTORS, fallback=[-1, 256])
    order = cfg.define_reorder("order", 2, ReorderPolicy.ALL)
    unroll = cfg.define_annotate("unroll_mr", 1, AnnotatePolicy.TRY_UNROLL, fallback=(Annotation.UNROLL,))
    A = te.placeholder((batch, M, K), name="A", dtype=dtype)
    B = te.placeholder((batch, K, N), name="B", dtype=dtype)
    C = batch_matmul_compute(A, B, name="C")
    s = create_schedule(C)
    b, i, j = C.op.axis
    (k,) = C.op.reduce_axis
    io, ii = tile_i.apply(s[C], i)
    jo, ji = tile_j.apply(s[C], j)
    ko, ki = tile_k.apply(s[C], k)
    s[C].reorder(b, io, *order.permute([jo, ko]), ki, ii, ji)
    unroll.apply(s[C], [ii])
    s[C].vectorize(ji)
    s[C].parallel(s[C].fuse(b, io))
    return s, [A, B, C]
