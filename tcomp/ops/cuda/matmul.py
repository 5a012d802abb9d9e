"""CUDA matmul: shared-memory tiling, cooperative fetching, register blocking.

Each block computes a ``block_m x block_n`` tile of ``C``; each of its ``(block_m / thread_m) x (block_n / thread_n)``
threads a ``thread_m x thread_n`` sub-tile, accumulated in registers (``C.local``). The reduction runs in steps of
``block_k``: the block copies the ``block_m x block_k`` tile of ``A`` and the ``block_k x block_n`` tile of ``B`` into
shared memory together (each thread a few elements, consecutive threads consecutive addresses), then every thread
updates its sub-tile from them (loops unrolled, so the compiler keeps the values it reuses in registers)::

    for by in blockIdx.y, bx in blockIdx.x, ty in threadIdx.y, tx in threadIdx.x:
      C.local = 0
      for ko:                                       # block_k-deep slices of K
        A.shared, B.shared <- tiles (all threads)   # __syncthreads() before and after
        for ki: C.local += A.shared[rows, ki] x B.shared[ki, columns]
      C <- C.local

``smem_pad`` pads the rows of ``A.shared`` (``storage_align``) so threads reading one column of it hit different
banks; ``double_buffer`` keeps two copies of each tile, filling the next while computing on this one. The knobs
are plain values (``MatmulKnobs``) so a tuner can search them; ``default_matmul_knobs`` picks values that fit the
shape. ``matmul_cuda`` builds a matmul with this schedule when given knobs, else with the block-level GEMM tile
kernel (``gemm_intrin``: ``cp.async`` pipelines, warp tiles, tensor cores for the reduced precisions).
"""

from __future__ import annotations

from dataclasses import dataclass

from tcomp import ops, te
from tcomp.ops.cuda.common import cooperative_fetch
from tcomp.ops.cuda.gemm_choice import default_tile, matmul_problem, precision_for
from tcomp.ops.cuda.gemm_intrin import schedule_matmul_tile
from tcomp.ops.cuda.gemm_tile import GemmTile
from tcomp.ops.cuda.limits import REGISTER_OVERHEAD, BlockResources
from tcomp.schedule import Schedule, create_schedule
from tcomp.target import Precision, Target, as_target
from tcomp.te.tensor import Tensor


@dataclass(frozen=True)
class MatmulKnobs:
    block_m: int = 64
    block_n: int = 64
    block_k: int = 8
    thread_m: int = 4
    thread_n: int = 4
    smem_pad: int = 0
    unroll: bool = True
    double_buffer: bool = False
    vector: int = 1  # elements per thread and step of the copies to shared memory (4: float4 where aligned)

    @property
    def threads(self) -> tuple[int, int]:
        """Threads per block along y (rows) and x (columns)."""
        return self.block_m // self.thread_m, self.block_n // self.thread_n

    def resources(self, element_bytes: int = 4) -> BlockResources:
        """The block ``schedule_matmul`` launches: its threads, the shared tiles of ``A`` (padded) and ``B`` (two of
        each when double-buffered), and a thread's accumulators and operands in registers."""
        threads_y, threads_x = self.threads
        elements = self.block_m * (self.block_k + self.smem_pad) + self.block_k * self.block_n
        copies = 2 if self.double_buffer else 1
        registers = self.thread_m * self.thread_n + self.thread_m + self.thread_n
        return BlockResources((threads_x, threads_y, 1), copies * elements * element_bytes,
                              REGISTER_OVERHEAD + registers)

    def check(self) -> None:
        if self.block_m % self.thread_m or self.block_n % self.thread_n:
            raise ValueError(f"matmul knobs {self}: thread tiles must divide block tiles")
        if not 0 <= self.smem_pad < self.block_k:
            raise ValueError(f"matmul knobs {self}: smem_pad must be in [0, block_k)")


def default_matmul_knobs(M: int, N: int, K: int) -> MatmulKnobs:
    """Tiles no bigger than the problem: 128x128 blocks of 16x16 threads (8x8 outputs each) for shapes of at least
    1024 rows and columns, 64x64 blocks of 16x16 threads for large shapes, 16x16 blocks of 8x8 threads for small
    ones."""
    if M >= 1024 and N >= 1024 and K >= 16:
        return MatmulKnobs(128, 128, 16, 8, 8, smem_pad=1)
    block_m = 64 if M >= 64 else 16
    block_n = 64 if N >= 64 else 16
    thread_m = 4 if block_m == 64 else 2
    thread_n = 4 if block_n == 64 else 2
    return MatmulKnobs(block_m, block_n, 8, thread_m, thread_n, smem_pad=1)


def schedule_matmul(s: Schedule, C: Tensor, knobs: MatmulKnobs) -> None:
    """Schedule the 2-D reduction ``C[i, j] = sum_k A[i, k] * B[k, j]`` (any compute of that shape with two inputs
    read as ``A[i, k]`` and ``B[k, j]``, such as ``ops.matmul``) as described in the module docstring."""
    knobs.check()
    A, B = C.op.input_tensors()
    CL = s.cache_write(C, "local")
    AS = s.cache_read(A, "shared", [CL])
    BS = s.cache_read(B, "shared", [CL])
    ty_count, tx_count = knobs.threads
    i, j = s[C].op.axis
    by, yi = s[C].split(i, factor=knobs.block_m)
    bx, xi = s[C].split(j, factor=knobs.block_n)
    ty, yi = s[C].split(yi, nparts=ty_count)
    tx, xi = s[C].split(xi, nparts=tx_count)
    s[C].reorder(by, bx, ty, tx, yi, xi)
    s[C].bind(by, te.thread_axis("blockIdx.y"))
    s[C].bind(bx, te.thread_axis("blockIdx.x"))
    s[C].bind(ty, te.thread_axis("threadIdx.y"))
    s[C].bind(tx, te.thread_axis("threadIdx.x"))
    if knobs.unroll:
        s[C].unroll(yi)
        s[C].unroll(xi)
    s[CL].compute_at(s[C], tx)
    ci, cj = s[CL].op.axis
    (k,) = s[CL].op.reduce_axis
    ko, ki = s[CL].split(k, factor=knobs.block_k)
    s[CL].reorder(ko, ki, ci, cj)
    if knobs.unroll:
        s[CL].unroll(ki)
        s[CL].unroll(ci)
        s[CL].unroll(cj)
    s[AS].compute_at(s[CL], ko)
    s[BS].compute_at(s[CL], ko)
    layout = [("threadIdx.y", ty_count), ("threadIdx.x", tx_count)]
    if knobs.smem_pad:
        s[AS].storage_align(s[AS].op.axis[0], knobs.block_k, knobs.smem_pad)
    cooperative_fetch(s[AS], layout, knobs.vector)
    cooperative_fetch(s[BS], layout, knobs.vector)
    if knobs.double_buffer:
        s[AS].double_buffer()
        s[BS].double_buffer()


def matmul_cuda(M: int, N: int, K: int, knobs: MatmulKnobs | None = None, dtype: str = "float32", *,
                precision: Precision | str | None = None, tile: GemmTile | None = None,
                target: Target | str | None = None) -> tuple[Schedule, list[Tensor]]:
    """``C = A @ B`` for ``A[M, K]``, ``B[K, N]`` (``dtype``; ``C`` float32); returns ``(schedule, [A, B, C])``.

    With ``knobs``: the schedule of this module (float32 only). Otherwise the block-level GEMM tile kernel
    (``gemm_intrin``): ``tile``, or the default tile for the shape, with ``precision`` (``"fp32"``, ``"tf32"``,
    ``"fp16"``, ``"bf16"``; default: the target's, and fp16 for float16 operands)."""
    resolved = as_target(target) if target is not None else None
    A = te.placeholder((M, K), name="A", dtype=dtype)
    B = te.placeholder((K, N), name="B", dtype=dtype)
    if knobs is not None:
        if precision is not None and Precision.parse(precision) is not Precision.FP32:
            raise ValueError("matmul_cuda: MatmulKnobs schedule float32 arithmetic; pass a tile for tensor cores")
        k = te.reduce_axis((0, K), name="k")
        C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
        s = create_schedule(C)
        schedule_matmul(s, C, knobs)
        return s, [A, B, C]
    chosen = Precision.parse(precision) if precision is not None else precision_for(dtype, resolved)
    C = ops.matmul(A, B, out_dtype="float32", name="C")
    s = create_schedule(C)
    tile = tile or default_tile(matmul_problem(M, N, K, dtype, chosen), M, N, target=resolved)
    schedule_matmul_tile(s, C, tile, chosen, resolved)
    return s, [A, B, C]
