"""Register tiles of the blocked convolution (``conv2d_nchwc``): which output columns, rows and channel blocks one
tile of accumulators covers, how its reduction is blocked and which loop runs outside (``conv2d_nchwc_tile``), chosen
by the multiply-adds each load feeds and the bytes the loop order moves from beyond L2. ``conv2d.py`` schedules the
tile it gets; Winograd's products take the same register tile (``register_tile``)."""

from __future__ import annotations

from dataclasses import dataclass

from tcomp.arith.factors import divisors, largest_divisor
from tcomp.ops.cpu.common import CpuTarget

# vector registers a register tile leaves free besides its accumulators, weight vectors and broadcast input
TILE_FREE_REGISTERS = 3
# how much better a register tile with a tail must score than one that divides the row (``register_tile``)
EXACT_TILE_PREFERENCE = 1.1


@dataclass(frozen=True)
class NCHWcTile:
    """How ``conv2d_nchwc`` is tiled: a register tile of ``reg_n`` output columns x ``oc_chunks`` output-channel
    blocks (one vector of ``oc`` lanes each); ``unroll_kw`` unrolls the kernel-width loop around the tile.

    ``ic_chunks = 0``: each tile runs its whole reduction in registers (a local cache) and is written once, after the
    fused epilogue. ``ic_chunks > 0``: the reduction is blocked by that many input-channel blocks, outside the
    output rows, and accumulates in the output, so one block of the kernel is read from memory once for all rows
    instead of once per row (for kernels larger than L2); the epilogue then runs as its own pass.

    ``reg_h > 1`` (rows so narrow that ``reg_n`` is the whole row): the tile is ``reg_h`` whole rows, so each weight
    vector feeds ``reg_h * reg_n`` columns (``row_tile``).

    ``rows_outer`` (with ``ic_chunks = 0``): the output rows loop outside the output-channel tiles, so the input rows
    a row of output reads stay in cache while every channel tile passes over them (and the kernel is read once per
    output row); otherwise each channel tile passes over the whole input (and keeps its block of the kernel). A tile
    chosen by tuning records (``nchwc_tiles``) keeps the default tile's ``rows_outer``: it is not a tuning knob."""

    reg_n: int
    oc_chunks: int
    unroll_kw: bool = True
    ic_chunks: int = 0
    rows_outer: bool = False
    reg_h: int = 1  # output rows in the register tile (``row_tile``: rows narrower than a tile)


def register_tile(ow: int, oc_chunks: int, vectors: int, registers: int) -> tuple[int, int]:
    """``(reg_n, chunks)``: the register tile of ``reg_n`` output columns (2 to 14, or the whole row) x ``chunks``
    output-channel blocks (a divisor of ``oc_chunks``; ``vectors`` registers each) that does the most multiply-adds
    per load over a whole output row of ``OW`` columns. A tile step loads ``reg_n`` broadcast inputs and
    ``chunks * vectors`` weight vectors for ``reg_n * chunks * vectors`` multiply-adds; the last tile of a row whose
    width ``reg_n`` does not divide has fewer columns (its guards are split off by ``partition_tails``). The
    accumulators, the weight vectors and the broadcast input must fit in ``registers`` (the register file less
    ``TILE_FREE_REGISTERS``: on znver1, 16 registers, tiles of 12 accumulators with 2-4 weight vectors, 3x4 and
    6x2, ran 10-35% slower than 4x2 and 2x4). A tile that divides the row counts ``EXACT_TILE_PREFERENCE`` times
    its score (the tail is a second copy of the loop nest, and a narrower one); ties go to more columns."""
    best: tuple[float, bool, int, int] = (0.0, False, 1, 1)
    for columns in range(min(ow, 2), min(ow, 14) + 1):
        full, tail = divmod(ow, columns)
        for chunks in divisors(oc_chunks):
            weights = chunks * vectors
            if columns * weights + weights + 1 > registers:
                continue
            loads = full * (columns + weights) + (tail + weights if tail else 0)
            score = round(ow * weights / loads * (1.0 if tail else EXACT_TILE_PREFERENCE), 3)
            best = max(best, (score, tail == 0, columns, chunks))
    return best[2], best[3]


def grouped_register_tile(ow: int, group_blocks: int, vectors: int, cpu: CpuTarget) -> tuple[int, int]:
    """``register_tile`` of a grouped convolution with ``group_blocks`` output-channel blocks per group: the tile's
    blocks must lie in one group (``chunks`` divides ``group_blocks``), or its blocks read different input blocks
    and share no broadcast. With one block per tile the whole row is taken when its accumulators leave two
    registers for the weight vector and the broadcast (at most 14 columns): on znver1, one thread, ShuffleNet's
    272 -> 272 channels in 4 groups (17 blocks of 4 per group) at 14x14, 14 columns 291 us, 7 columns 416 us, 2
    columns x 4 blocks straddling groups 497 us; 224 -> 224 in 4 groups (7 blocks of 8) at 28x28, 14 columns 724
    us, 4 columns x 2 blocks 776 us; 544 -> 544 in 4 groups (17 blocks of 8) at 7x7, 7 columns 239 us, 7 x 2 blocks
    282 us."""
    reg_n, chunks = register_tile(ow, group_blocks, vectors, cpu.vector_registers - TILE_FREE_REGISTERS)
    if chunks == 1:
        whole = largest_divisor(ow, 14)
        if whole > reg_n and whole * vectors <= cpu.vector_registers - 2:
            reg_n = whole
    return reg_n, chunks


def row_tile(oh: int, ow: int, oc_chunks: int, vectors: int, registers: int, chunks: int) -> tuple[int, int]:
    """``(reg_h, chunks)``: output rows of ``ow`` columns (a divisor of ``OH``) x channel blocks for a register tile
    of whole rows, when it does more multiply-adds per load than ``chunks`` blocks of one row (``register_tile``'s
    score; a tile step loads ``reg_h * ow`` broadcasts and ``chunks * vectors`` weight vectors), else ``(1,
    chunks)``. Only rows narrower than a register tile gain: a 3x3 256 -> 256 convolution over 2x2 (a ResNet's
    last stage at 64x64), 2 rows x 2 columns x 4 blocks against 2 columns x 8 blocks, each weight vector feeds 4
    columns instead of 2."""
    def score(rows: int, blocks: int) -> float:
        weights = blocks * vectors
        return rows * ow * weights / (rows * ow + weights)

    best = (score(1, chunks), 1, chunks)
    for rows in divisors(oh):
        for blocks in divisors(oc_chunks):
            weights = blocks * vectors
            if rows > 1 and rows * ow * weights + weights + 1 <= registers:
                best = max(best, (score(rows, blocks), rows, blocks))
    return best[1], best[2]


def conv2d_nchwc_tile(sizes: list[int], reduce_sizes: list[int], cpu: CpuTarget, lanes: int,
                      stride: int = 1, groups: int = 1) -> NCHWcTile:
    """The tiling of an output ``[N, O/oc, OH, OW, oc]`` reduced over ``[C/ic, KH, KW, ic]`` (with ``stride``):

    - the register tile (``register_tile``): columns x channel blocks, so each broadcast input feeds several
      channel blocks and each weight vector several columns (on znver1, one thread, 2-4 blocks ran ResNet-50's and
      VGG-19's layers 1.1-2.5x faster than 7-8 columns of one block; with the tail of a row split off, 4 columns x 2
      blocks ran 7- and 109-wide rows 12-16% faster than 7 and 12 columns of one block; a grouped convolution's
      tile stays in one group, ``grouped_register_tile``); where the tile takes a whole row, several rows when that
      feeds more multiply-adds per load (``row_tile``: 2x2 planes; 3x3 256 -> 256 over 2x2 ran 1.26x faster, 512
      -> 512 1.7x);
    - larger kernels unroll the kernel-width loop so LLVM reuses each broadcast across it;
    - the reduction is blocked (``ic_chunks``) when the kernel is larger than L2 per core, by as many input-channel
      blocks as keep a block of the kernel in L1 (not when that is every block: accumulating the whole reduction in
      the output instead of registers ran 1.6-2x slower);
    - otherwise the loop order (``rows_outer``) is the one that moves fewer bytes from beyond L2: channel tiles
      outside rows read the whole input once per channel tile, rows outside channel tiles read the whole kernel
      once per output row (an operand that fits L2 is read from memory once either way)."""
    _, oc_chunks, oh, ow, oc_block = sizes
    ic_total, kh, kw, ic_block = reduce_sizes
    vectors = max(1, -(-oc_block // lanes))
    if groups > 1 and oc_chunks % groups == 0:
        reg_n, chunks = grouped_register_tile(ow, oc_chunks // groups, vectors, cpu)
    else:
        reg_n, chunks = register_tile(ow, oc_chunks, vectors, cpu.vector_registers - TILE_FREE_REGISTERS)
    reg_h = 1
    if groups == 1 and reg_n == ow:
        reg_h, chunks = row_tile(oh, ow, oc_chunks, vectors, cpu.vector_registers - TILE_FREE_REGISTERS, chunks)
    element = 4
    kernel_bytes = oc_chunks * oc_block * ic_total * ic_block * kh * kw * element
    ic_chunks = 0
    if kernel_bytes > cpu.l2_bytes * cpu.cores:
        per_chunk = ic_block * kh * kw * oc_block * chunks * element
        ic_chunks = largest_divisor(ic_total, max(1, cpu.l1_bytes // per_chunk))
        if ic_chunks == ic_total:
            ic_chunks = 0
    input_bytes = ic_total * ic_block * element * ((oh - 1) * stride + kh) * ((ow - 1) * stride + kw)
    channel_tiles = oc_chunks // chunks
    input_traffic = input_bytes * (channel_tiles if input_bytes > cpu.l2_bytes else 1)
    kernel_traffic = kernel_bytes * (oh // reg_h if kernel_bytes > cpu.l2_bytes else 1)
    return NCHWcTile(reg_n, chunks, kw > 1, ic_chunks, kernel_traffic < input_traffic, reg_h)
