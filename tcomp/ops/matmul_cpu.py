"""A hand-written CPU schedule for float32 matmul: packed A and B, cache blocking, tcomp's GEMM micro-kernel.

The computation is ``C[i, j] = sum_k A[i, k] * B[k, j]``. Two compute stages repack the inputs so that the
micro-kernel (``tcomp_sgemm_f32_{mr}x{nr}``, see ``tcomp/codegen/llvm/microkernels.py``) reads contiguous memory:

- ``packedB[j // nr, k, j % nr]``: ``nr``-column panels of B, one ``nr``-float row per k step;
- ``packedA[i // mr, i % mr, k]``: ``mr``-row micro-panels of A, each row a contiguous run of K.

Both are zero-padded to whole tiles (``M``, ``N``, ``K`` rounded up to ``mr``, ``nr``, ``kc``), so every tile is a
whole micro-kernel call whatever the shape; when ``M`` or ``N`` is not a multiple of its tile the product goes to a
padded buffer that a last stage copies into C. The loop nest (N split over the cores):

    for j.thread in parallel(cores):           # a block of B's column panels per core
      for k.outer in range(K / kc):            # pack this core's kc x N/cores slice of B (stays in L2)
        for i.block in range(M / mc):          # pack an mc x kc block of A (stays in L2)
          for j.panel in range(N / cores / nr):  # one kc x nr micro-panel of B (stays in L1)
            for i.panel in range(mc / mr):
              micro-kernel(mr x nr tile of C += A micro-panel @ B micro-panel)   # kc FMA steps in registers

When there are fewer column panels than cores, the row blocks run in parallel instead, each packing its own
(small) slice of B. Each core packs B for its own columns, so the packed slice is hot in its cache when used. Where
a core sweeps at most 4 column panels (N small) and M and K need no padding, A is read in place instead of packed.
Measured on 1024^3 (2 cores, AVX-512) against the previous schedule (B packed for all rows up front, one parallel
row block per core, A read in place, LLVM-vectorized loops): 0.85-0.9x of numpy's GFLOP/s before, 0.95-1.0x after.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcomp import te
from tcomp.ops.intrin_cpu import gemm_intrin
from tcomp.schedule import Schedule, create_schedule
from tcomp.target import Target
from tcomp.te.tensor import Tensor


@dataclass(frozen=True)
class GemmBlocking:
    mr: int
    nr: int
    mc: int
    kc: int


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def choose_blocking(M: int, N: int, K: int, target: Target | None = None) -> GemmBlocking:
    """Register and cache blocking for ``target`` (the host by default). ``mr`` prefers a divisor of M (no padded
    rows); ``kc`` cuts K into equal slices of at most 256 steps (a ``kc x nr`` micro-panel of B fits L1)."""
    target = target or Target.current_host()
    lanes = target.vector_bits // 32
    nr = 2 * lanes
    budget = target.vector_registers - 3  # one panel row (2 vectors) and a broadcast
    mr_max = max(1, budget // 2)
    candidates = [m for m in range(mr_max, 0, -1) if M % m == 0 and m >= 4] or [min(mr_max, 8)]
    mr = candidates[0]
    # measured on 1024^3 (2 cores, AVX-512): 256-row blocks of 256-deep slices beat 128 x 512 and 64 x 256
    mc = mr * max(1, 256 // mr)
    kc = _ceil_div(K, _ceil_div(K, 256))
    return GemmBlocking(mr=mr, nr=nr, mc=mc, kc=kc)


def split_columns_over_cores(row_blocks: int, panels: int, M: int, N: int, cores: int) -> bool:
    """Whether the cores take blocks of column panels (each packs all of A) rather than blocks of rows (each packs
    all of B): the one with enough blocks for every core, and where both have, the one that packs less twice."""
    if panels >= cores and row_blocks >= cores:
        return M * (cores - 1) <= N * (row_blocks - 1)
    if panels >= cores or row_blocks >= cores:
        return panels >= cores
    return panels >= row_blocks


def packed_matmul(
    M: int,
    N: int,
    K: int,
    blocking: GemmBlocking | None = None,
    target: Target | None = None,
    dtype: str = "float32",
) -> tuple[Schedule, list[Tensor]]:
    """The schedule and arguments ``[A, B, C]`` of a blocked, packed, parallel matmul on tcomp's micro-kernel."""
    if dtype != "float32":
        raise ValueError(f"packed_matmul: the GEMM micro-kernel is float32 only, got dtype={dtype!r}")
    target = target or Target.current_host()
    b = blocking or choose_blocking(M, N, K, target)
    lanes = target.vector_bits // 32
    Mp, Np = _ceil_div(M, b.mr) * b.mr, _ceil_div(N, b.nr) * b.nr
    Kp = _ceil_div(K, b.kc) * b.kc
    zero = te.const(0, dtype)
    A = te.placeholder((M, K), name="A", dtype=dtype)
    B = te.placeholder((K, N), name="B", dtype=dtype)

    def pack_b(x, y, z):
        column = x * b.nr + z
        if Np == N and Kp == K:
            return B[y, column]
        return te.if_then_else(te.all(column < N, y < K), B[te.min(y, K - 1), te.min(column, N - 1)], zero)

    def pack_a(x, z, y):
        row = x * b.mr + z
        if Mp == M and Kp == K:
            return A[row, y]
        return te.if_then_else(te.all(row < M, y < K), A[te.min(row, M - 1), te.min(y, K - 1)], zero)

    cores = max(1, target.num_cores)
    panels = Np // b.nr
    block_rows = max(1, min(b.mc, Mp) // b.mr) * b.mr
    by_columns = cores > 1 and split_columns_over_cores(_ceil_div(Mp, block_rows), panels, M, N, cores)
    # an A micro-panel serves the column panels a core sweeps: for a few of them, copying A costs more than it saves
    # (measured on 4096 x 64 x 1024 and 4096 x 128 x 1024: about 15% and 8% faster read in place)
    sweep = _ceil_div(panels, cores) if by_columns else panels
    in_place_a = Mp == M and Kp == K and sweep <= 4
    packed_b = te.compute((panels, Kp, b.nr), pack_b, name="packedB")
    packed_a = None if in_place_a else te.compute((Mp // b.mr, b.mr, Kp), pack_a, name="packedA")
    k = te.reduce_axis((0, Kp), name="k")

    def a_value(i, k):
        return A[i, k] if packed_a is None else packed_a[i // b.mr, i % b.mr, k]

    padded = Mp != M or Np != N
    product = te.compute(
        (Mp, Np),
        lambda i, j: te.sum(a_value(i, k) * packed_b[j // b.nr, k, j % b.nr], axis=k),
        name="C.padded" if padded else "C",
    )
    C = te.compute((M, N), lambda i, j: product[i, j], name="C") if padded else product
    s = create_schedule(C)

    stage = s[product]
    i, j = product.op.axis
    i_panel, i_inner = stage.split(i, factor=b.mr)  # whole tiles: the splits by mr, nr, kc divide Mp, Np, Kp
    i_block, i_panel = stage.split(i_panel, factor=block_rows // b.mr)
    j_panel, j_inner = stage.split(j, factor=b.nr)
    k_outer, k_inner = stage.split(k, factor=b.kc)
    if by_columns:
        j_thread, j_panel = stage.split(j_panel, nparts=cores)
        stage.reorder(j_thread, k_outer, i_block, j_panel, i_panel, i_inner, j_inner, k_inner)
        stage.parallel(j_thread)
        a_at = i_block
    else:
        stage.reorder(i_block, k_outer, j_panel, i_panel, i_inner, j_inner, k_inner)
        if cores > 1:
            stage.parallel(i_block)
        a_at = k_outer
    stage.tensorize(i_inner, gemm_intrin(b.mr, b.nr, b.kc, lanes))

    s[packed_b].compute_at(stage, k_outer)
    x, y, z = packed_b.op.axis
    s[packed_b].reorder(y, x, z)  # read B row by row
    s[packed_b].vectorize(z)
    if packed_a is not None:
        s[packed_a].compute_at(stage, a_at)
        _, run = s[packed_a].split(packed_a.op.axis[2], factor=lanes)
        s[packed_a].vectorize(run)

    if padded:
        row, column = C.op.axis
        _, column_inner = s[C].split(column, factor=lanes)
        s[C].vectorize(column_inner)
        if cores > 1:
            s[C].parallel(row)
    return s, [A, B, C]
