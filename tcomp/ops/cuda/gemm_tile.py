"""What a block-level GEMM tile kernel computes (``GemmProblem``) and how (``GemmTile``), with the resources a tile
needs (shared memory, threads, an estimate of registers) and the checks that keep every tile valid.

A block computes ``C[m, p] = sum_k A[m, k] * B[k, p]`` for a ``block_m x block_n`` tile of ``C``. The operands are
addressed through strides, so one kernel serves matmul (either operand transposed), batched matmul and convolution
(implicit GEMM): the column index ``p`` of a tile is a pixel ``(py, px) = (p // tile_x, p % tile_x)`` and the
reduction index ``k`` a window position ``(kc, ky, kx) = (k // (KH * KW), k // KW % KH, k % KW)``::

    A(m, k) = A[m * a_sm + k * a_sk]
    B(k, p) = B[kc * b_sc + (py * stride_y + ky * dilation_y) * b_sy + (px * stride_x + kx * dilation_x) * b_sx]
    C(m, p) = C[m * c_sm + py * c_sy + px * c_sx]

A matmul is the case ``KH = KW = 1``, ``tile_x = block_n``: ``B(k, p) = B[k * b_sc + p * b_sx]``. Rows ``m``,
pixel rows ``py`` and columns ``px`` past the limits given at the call, and ``k >= K``, read as zero and are not
written, so tiles may overhang the problem.

Each stage of the ``stages``-deep pipeline holds a ``block_m x block_k`` tile of ``A`` and a ``block_k x block_n``
tile of ``B`` in shared memory, each stored with its contiguous global dimension innermost, padded or swizzled
(``SmemLayout``). The block's ``warps_m x warps_n`` warps each own a ``(block_m / warps_m) x (block_n / warps_n)``
warp tile: with tensor cores (``Precision`` other than fp32) as ``16 x 8`` ``mma.sync`` tiles, in float32 as a
``lanes_m x (32 / lanes_m)`` grid of lanes, each with a register tile whose rows (and columns) come in groups of 4
spaced across the warp tile (so the lanes of a warp read consecutive 16-byte vectors of shared memory).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from tcomp.ir import dtype as dt
from tcomp.ir.gpu import GPUError
from tcomp.target import Precision, Target


class GemmError(GPUError):
    """A GEMM tile that cannot compute a problem or does not fit the target."""


class SmemLayout(enum.StrEnum):
    """``PAD``: rows padded by 16 bytes (32 for float32 operands read as tensor-core fragments, whose reads would
    otherwise collide). ``SWIZZLE``: 16-byte chunks permuted within each 128-byte line by the XOR of the row, no
    padding."""

    PAD = "pad"
    SWIZZLE = "swizzle"


ELEMENT_TYPES = ("float32", "float16")
REGISTERS_PER_SM = 65536
MAX_REGISTERS_PER_THREAD = 255
MAX_THREADS_PER_SM = 2048
SHARED_MEMORY_PER_SM = 228 * 1024


@dataclass(frozen=True)
class GemmTile:
    """The knobs of a block-level GEMM kernel (module docstring). ``vector``: bytes per copy into shared memory
    at most (16: ``cp.async`` of 16 bytes where the addresses allow); ``min_blocks``: blocks per multiprocessor the
    kernel asks the compiler to fit (``__launch_bounds__``), which caps its registers; ``k_outer``: store both
    tiles ``[k][m]`` and ``[k][p]`` whatever the operands' layout (a k-contiguous operand is then transposed while
    it is copied, 4 bytes at a time), so float32 lanes read their rows as vectors along ``m`` one step at a time
    (fewer registers than 4 steps of ``float4`` along ``k``)."""

    block_m: int = 128
    block_n: int = 128
    block_k: int = 16
    warps_m: int = 4
    warps_n: int = 2
    stages: int = 2
    lanes_m: int = 4
    layout: SmemLayout = SmemLayout.PAD
    vector: int = 16
    min_blocks: int = 1
    k_outer: bool = False

    @property
    def threads(self) -> int:
        return 32 * self.warps_m * self.warps_n

    @property
    def warp_tile(self) -> tuple[int, int]:
        return self.block_m // self.warps_m, self.block_n // self.warps_n

    @property
    def thread_tile(self) -> tuple[int, int]:
        """Rows and columns of ``C`` per lane in float32 (``lanes_m x lanes_n`` lanes per warp)."""
        warp_m, warp_n = self.warp_tile
        return warp_m // self.lanes_m, warp_n // (32 // self.lanes_m)

    def describe(self) -> str:
        warp_m, warp_n = self.warp_tile
        return (f"{self.block_m}x{self.block_n}x{self.block_k} block, {self.warps_m}x{self.warps_n} warps of "
                f"{warp_m}x{warp_n}, {self.stages} stage(s), {self.layout} shared memory, {self.vector}-byte copies")


@dataclass(frozen=True)
class GemmProblem:
    """The operands of a tile kernel (module docstring): strides in elements, the reduction extent ``K``, the
    convolution window (1 x 1 for a matmul), the full extents ``m_extent`` (rows), ``y_extent`` and ``x_extent``
    (pixel rows and columns; 1 and ``N`` for a matmul) that decide which vector copies stay inside."""

    precision: Precision
    a_dtype: str
    b_dtype: str
    c_dtype: str
    K: int
    a_sm: int
    a_sk: int
    b_sc: int
    b_sy: int
    b_sx: int
    c_sm: int
    c_sy: int
    c_sx: int
    m_extent: int
    y_extent: int
    x_extent: int
    tile_x: int = 0  # pixel columns per tile row (0: block_n, a matmul)
    window: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)

    @property
    def is_conv(self) -> bool:
        return self.window != (1, 1) or self.stride != (1, 1) or self.tile_x != 0

    @property
    def element_bytes(self) -> tuple[int, int]:
        return dt.storage_bytes(self.a_dtype), dt.storage_bytes(self.b_dtype)

    @property
    def a_k_contiguous(self) -> bool:
        """Whether the A tile is stored ``[m][k]`` (else ``[k][m]``)."""
        return self.a_sk == 1 or self.a_sm != 1

    @property
    def b_k_contiguous(self) -> bool:
        """Whether the B tile is stored ``[p][k]`` (else ``[k][p]``): a transposed matmul operand."""
        return not self.is_conv and self.b_sc == 1 and self.b_sx != 1


def smem_k_contiguous(tile: GemmTile, problem: GemmProblem) -> tuple[bool, bool]:
    """Whether the A and B tiles are stored with ``k`` innermost (``[m][k]``, ``[p][k]``) rather than outermost."""
    return problem.a_k_contiguous and not tile.k_outer, problem.b_k_contiguous and not tile.k_outer


def check_problem(problem: GemmProblem) -> None:
    for name in ("a_dtype", "b_dtype"):
        if getattr(problem, name) not in ELEMENT_TYPES:
            raise GemmError(f"GEMM tile: operand dtype {getattr(problem, name)} is not one of {ELEMENT_TYPES}")
    if problem.c_dtype != "float32":
        raise GemmError(f"GEMM tile: the result must be float32 (accumulated in float32), got {problem.c_dtype}")
    if problem.a_dtype != problem.b_dtype:
        raise GemmError(f"GEMM tile: operands of dtypes {problem.a_dtype} and {problem.b_dtype}; convert one")
    if problem.a_dtype == "float16" and problem.precision is not Precision.FP16:
        raise GemmError(f"GEMM tile: float16 operands multiply on float16 tensor cores (precision fp16), not "
                        f"{problem.precision}")
    if problem.K <= 0:
        raise GemmError(f"GEMM tile: reduction extent {problem.K} must be positive")


def mma_k(precision: Precision) -> int:
    """The reduction depth of one ``mma.sync``: 8 for TF32, 16 for float16 and bfloat16."""
    return 8 if precision is Precision.TF32 else 16


def _pow2(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def check_tile(tile: GemmTile, problem: GemmProblem, target: Target | None = None) -> None:
    """Raise ``GemmError`` unless ``tile`` can compute ``problem`` (on ``target``, within its limits)."""
    check_problem(problem)
    where = f"GEMM tile {tile.describe()}"
    for name in ("block_m", "block_n", "block_k", "warps_m", "warps_n", "lanes_m"):
        if not _pow2(getattr(tile, name)):
            raise GemmError(f"{where}: {name}={getattr(tile, name)} must be a power of two")
    if not 1 <= tile.stages <= 4:
        raise GemmError(f"{where}: stages={tile.stages} must be 1 to 4")
    if tile.vector not in (4, 8, 16):
        raise GemmError(f"{where}: vector={tile.vector} bytes must be 4, 8 or 16")
    if tile.min_blocks not in (1, 2, 3, 4):
        raise GemmError(f"{where}: min_blocks={tile.min_blocks} must be 1 to 4")
    if tile.threads > 1024:
        raise GemmError(f"{where}: {tile.threads} threads exceed 1024 per block")
    warp_m, warp_n = tile.warp_tile
    if warp_m < 1 or warp_n < 1:
        raise GemmError(f"{where}: more warps than the block tile has rows or columns")
    if problem.precision.uses_tensor_cores:
        if warp_m % 16 or warp_n % 8:
            raise GemmError(f"{where}: a warp tile of {warp_m}x{warp_n} is no multiple of the 16x8 mma tile")
        if tile.block_k % mma_k(problem.precision):
            raise GemmError(f"{where}: block_k must be a multiple of {mma_k(problem.precision)} for "
                            f"{problem.precision}")
    else:
        thread_m, thread_n = tile.thread_tile
        if tile.lanes_m > 32 or thread_m < 1 or thread_n < 1:
            raise GemmError(f"{where}: {tile.lanes_m} lanes along m do not fit a {warp_m}x{warp_n} warp tile")
        if thread_m * thread_n > 128:
            raise GemmError(f"{where}: {thread_m}x{thread_n} results per thread exceed the registers")
        if tile.block_k % 4:
            raise GemmError(f"{where}: block_k must be a multiple of 4")
    element = max(problem.element_bytes)
    if tile.k_outer and element != 4:
        raise GemmError(f"{where}: k_outer transposes 4-byte elements only (cp.async copies 4 bytes or more)")
    if tile.layout is SmemLayout.SWIZZLE and (tile.block_k * element < 16 or tile.block_k < 8):
        raise GemmError(f"{where}: a swizzled layout needs rows of 16 bytes and at least 8 of them")
    if problem.is_conv:
        tile_x = problem.tile_x or tile.block_n
        if tile.block_n % tile_x:
            raise GemmError(f"{where}: pixel tile width {tile_x} does not divide block_n")
    if target is not None:
        if tile.threads > target.max_threads_per_block:
            raise GemmError(f"{where}: {tile.threads} threads exceed the {target.max_threads_per_block} of {target}")
        smem = shared_bytes(tile, problem)
        if smem > target.max_shared_memory_per_block:
            raise GemmError(f"{where}: {smem} bytes of shared memory exceed the {target.max_shared_memory_per_block} "
                            f"per block of {target}")
        if problem.precision.uses_tensor_cores and target.compute_capability < 80:
            raise GemmError(f"{where}: tensor cores need compute capability 8.0, target {target}")
    if estimated_registers(tile, problem) > MAX_REGISTERS_PER_THREAD:
        raise GemmError(f"{where}: about {estimated_registers(tile, problem)} registers per thread, over "
                        f"{MAX_REGISTERS_PER_THREAD}")


# ---------------------------------------------------------------------------------------------------------------------
# shared-memory geometry
@dataclass(frozen=True)
class OperandTile:
    """One operand's tile in shared memory: ``rows x cols`` elements of ``element`` bytes, ``cols`` contiguous,
    rows ``row_stride`` elements apart (swizzled: ``row_stride == cols``)."""

    rows: int
    cols: int
    element: int
    layout: SmemLayout
    pad: int

    @property
    def row_stride(self) -> int:
        return self.cols + self.pad

    @property
    def elements(self) -> int:
        """Elements of one stage, rounded up to whole 16-byte chunks."""
        chunk = 16 // self.element
        return -(-self.rows * self.row_stride // chunk) * chunk

    @property
    def bytes(self) -> int:
        return self.elements * self.element


def _pad(tile: GemmTile, problem: GemmProblem, operand: str, element: int) -> int:
    """Padding in elements (module docstring of ``gemm_source`` for the bank arithmetic): 16 bytes, except for
    float32 tiles read as tensor-core fragments, where 4 or 8 words spread each fragment's reads over all banks."""
    if tile.layout is SmemLayout.SWIZZLE:
        return 0
    if problem.precision.uses_tensor_cores and element == 4:
        k_contiguous = smem_k_contiguous(tile, problem)[0 if operand == "a" else 1]
        if problem.precision is Precision.TF32:  # single words: rows 4 words apart along k, 8 across
            return 4 if k_contiguous else 8
        return 8 if k_contiguous else 4  # (k, k + 1) pairs: float2 reads along k, two words across
    return 16 // element


def operand_tiles(tile: GemmTile, problem: GemmProblem) -> tuple[OperandTile, OperandTile]:
    """The A and B tiles of one pipeline stage."""
    ea, eb = problem.element_bytes
    a_kc, b_kc = smem_k_contiguous(tile, problem)
    a_rows, a_cols = (tile.block_m, tile.block_k) if a_kc else (tile.block_k, tile.block_m)
    b_rows, b_cols = (tile.block_n, tile.block_k) if b_kc else (tile.block_k, tile.block_n)
    a = OperandTile(a_rows, a_cols, ea, tile.layout, _pad(tile, problem, "a", ea))
    b = OperandTile(b_rows, b_cols, eb, tile.layout, _pad(tile, problem, "b", eb))
    return a, b


def shared_bytes(tile: GemmTile, problem: GemmProblem) -> int:
    a, b = operand_tiles(tile, problem)
    return tile.stages * (a.bytes + b.bytes)


def estimated_registers(tile: GemmTile, problem: GemmProblem) -> int:
    """Accumulators, the fragments of one step and about 40 for addresses and loop state."""
    warp_m, warp_n = tile.warp_tile
    if problem.precision.uses_tensor_cores:
        mi, ni = warp_m // 16, warp_n // 8
        return mi * ni * 4 + mi * 4 + ni * 2 + 40
    thread_m, thread_n = tile.thread_tile
    a_kc, b_kc = smem_k_contiguous(tile, problem)
    a_regs = 4 * thread_m if a_kc else thread_m
    b_regs = 4 * thread_n if b_kc else thread_n
    return thread_m * thread_n + a_regs + b_regs + 40


def resident_blocks(threads: int, registers: int, shared: int) -> int:
    """Blocks of ``threads`` threads using ``registers`` each and ``shared`` bytes of shared memory that one
    multiprocessor holds at once (Hopper's and Ampere's limits: 64K registers allocated 8 at a time, 2048 threads,
    228 KB of shared memory with 1 KB reserved per block, 32 blocks)."""
    regs = min(MAX_REGISTERS_PER_THREAD, -(-max(1, registers) // 8) * 8)
    by_regs = REGISTERS_PER_SM // max(1, regs * threads)
    by_threads = MAX_THREADS_PER_SM // max(1, threads)
    by_smem = SHARED_MEMORY_PER_SM // max(1, shared + 1024)
    return max(0, min(by_regs, by_threads, by_smem, 32))


def occupancy(threads: int, registers: int, shared: int) -> float:
    """Resident warps per multiprocessor over the 64 it can hold (``resident_blocks``)."""
    return resident_blocks(threads, registers, shared) * threads / MAX_THREADS_PER_SM


def copy_vector(tile: GemmTile, contiguous_tile: int, element: int, strides: tuple[int, ...],
                extent: int) -> int:
    """Elements per copy into shared memory: at most ``tile.vector`` bytes, and only as many as keep every copy
    aligned (the tile's contiguous extent, the other strides and the problem's extent multiples of it), so a copy
    is either wholly inside the problem or wholly outside."""
    lanes = max(1, tile.vector // element)
    while lanes > 1:
        aligned = contiguous_tile % lanes == 0 and extent % lanes == 0 and all(s % lanes == 0 for s in strides)
        if aligned and lanes * element >= 4:
            return lanes
        lanes //= 2
    return 1


def gcd_all(*values: int) -> int:
    return math.gcd(*values) if values else 0
