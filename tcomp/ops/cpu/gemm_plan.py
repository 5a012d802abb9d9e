"""The plan of a packed GEMM (``packed_matmul.py``): the register and cache blocking (``micro_blocking``), the
extents rounded up to whole tiles, and how the cores share the work (``plan_gemm``: blocks of column panels or of
rows, A packed once or per block or read in place); ``with_symbolic_rows`` makes a plan for a symbolic number of
rows. Plans are plain data: ``packed_matmul.py`` builds the computes and the schedule from them, ``dense.py`` and
the tuning templates choose them."""

from __future__ import annotations

from dataclasses import dataclass, replace

from tcomp.ir.expr import Expr
from tcomp.target import Target

# the most padding of a product's rows (a share of them) that the usual 8-row register tile may add
ROW_PADDING = 0.1
# parallel tasks per core of a product split into blocks of columns, and the fewest column panels in a block
TASKS_PER_CORE = 4
MIN_BLOCK_PANELS = 8


@dataclass(frozen=True)
class GemmBlocking:
    mr: int
    nr: int
    mc: int
    kc: int


@dataclass(frozen=True)
class GemmPlan:
    """How ``C[M, N] = A[M, K] B[K, N]`` runs on the micro-kernel: the blocking, the extents rounded up to whole
    tiles (``Mp``, ``Np``, ``Kp``), the rows of a block, whether the cores take blocks of column panels (else blocks
    of rows) and whether A is read in place (else packed)."""

    M: int
    N: int
    K: int
    blocking: GemmBlocking
    lanes: int
    cores: int
    Mp: int
    Np: int
    Kp: int
    block_rows: int
    by_columns: bool
    in_place_a: bool
    batch: int = 1
    batched: bool = False  # the product has a leading batch axis (of extent ``batch``, 1 included)
    column_blocks: int = 0  # blocks of column panels the cores claim (by columns; 0: one per core)

    @property
    def shared_a(self) -> bool:
        """Whether A is packed once, before the blocks of columns, which all read that copy: where the cores take
        several blocks of columns, A is packed (not read in place) and its rows are a single block (so the copy is at
        most ``mc x Kp``) or a symbolic number (a prompt's: mostly one block, the copy as large as A); else each
        block packs its own."""
        return self.by_columns and not self.in_place_a and self.column_blocks > 1 and (
            self.symbolic_rows is not None or self.Mp <= self.block_rows)

    @property
    def padded(self) -> bool:
        """Whether the product has more rows or columns than C (it then goes to a buffer copied into C). Symbolic
        rows do not pad it: their last tile computes and writes only the rows there are."""
        return (self.symbolic_rows is None and self.Mp != self.M) or self.Np != self.N

    @property
    def symbolic_rows(self) -> Expr | None:
        """M where it is a symbolic dimension (then ``Mp`` is it rounded up to whole ``mr``-row tiles), else None."""
        return None if isinstance(self.M, int) else self.M


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def micro_blocking(M: int, K: int, lanes: int, vector_registers: int) -> GemmBlocking:
    """Register and cache blocking for vectors of ``lanes`` floats and ``vector_registers`` registers: ``nr`` two
    vectors, ``mr`` the largest divisor of M (at least 4) whose accumulators leave registers for a panel row and a
    broadcast, else 8 (padded rows); ``kc`` cuts K into equal slices of at most 256 steps (a ``kc x nr``
    micro-panel of B fits L1)."""
    nr = 2 * lanes
    budget = vector_registers - 3  # one panel row (2 vectors) and a broadcast
    mr = tile_rows(M, max(1, budget // 2))
    # measured on 1024^3 (2 cores, AVX-512): 256-row blocks of 256-deep slices beat 128 x 512 and 64 x 256
    mc = mr * max(1, 256 // mr)
    kc = _ceil_div(K, _ceil_div(K, 256))
    return GemmBlocking(mr=mr, nr=nr, mc=mc, kc=kc)


def tile_rows(M: int, most: int) -> int:
    """The rows of a register tile: all of them below 4, else the largest divisor of ``M`` from 4 to ``most``, else
    ``min(most, 8)`` (the last tile padded) unless that pads more than ``ROW_PADDING`` of M, where the tile of 4 to
    ``most`` rows that pads least does: a short prompt's 17 rows take 9-row tiles (18 rows, not 24: 17 x 3072 x
    768 on 2 Zen 4 cores 0.53 -> 0.40 ms; 41 rows, 14-row tiles: 1.16 -> 1.01 ms)."""
    if M < 4:
        return min(M, most)
    candidates = [m for m in range(most, 3, -1) if M % m == 0]
    if candidates:
        return candidates[0]
    usual = min(most, 8)
    if -(-M // usual) * usual <= (1 + ROW_PADDING) * M:
        return usual
    return min(range(most, 3, -1), key=lambda m: -(-M // m) * m)


def choose_blocking(M: int, N: int, K: int, target: Target | None = None) -> GemmBlocking:
    """``micro_blocking`` for ``target`` (the host by default)."""
    target = target or Target.current_host()
    return micro_blocking(M, K, target.vector_bits // 32, target.vector_registers)


def split_columns_over_cores(row_blocks: int, panels: int, M: int, N: int, cores: int, b_cost: float = 1.0) -> bool:
    """Whether the cores take blocks of column panels (each packs all of A) rather than blocks of rows (each packs
    all of B): the one with enough blocks for every core, and where both have, the one that packs less twice
    (an element of B costing ``b_cost`` times one of A to pack)."""
    if panels >= cores and row_blocks >= cores:
        return M * (cores - 1) <= b_cost * N * (row_blocks - 1)
    if panels >= cores or row_blocks >= cores:
        return panels >= cores
    return panels >= row_blocks


def column_blocks(panels: int, cores: int) -> int:
    """How many blocks of column panels a product split by columns runs as parallel tasks: up to
    ``TASKS_PER_CORE`` per core, so that a core that starts late or is descheduled (a busy machine) leaves its
    blocks to the others, each block at least ``MIN_BLOCK_PANELS`` panels wide (a block that packs its own copy of
    A, ``plan_gemm``, spends about 1-2% of its work on it with 8 panels of 16 columns); a multiple of ``cores``, so
    an idle machine runs whole rounds of blocks (3 blocks on 2 cores ran 768 columns of 32-column panels at 65% of
    the peak), unless there are fewer panels (one panel of 32 columns, as 16-lane vectors give, is one block)."""
    blocks = max(cores, min(cores * TASKS_PER_CORE, panels // MIN_BLOCK_PANELS))
    return min(panels, -(-blocks // cores) * cores)


def plan_gemm(M: int, N: int, K: int, blocking: GemmBlocking, lanes: int, cores: int,
              a_readable_in_place: bool = True, b_cost: float = 1.0, batch: int = 1,
              batched: bool = False) -> GemmPlan:
    """The plan of ``C[M, N] = A[M, K] B[K, N]`` with ``blocking`` (``batch`` of them when ``batched``). A is read
    in place where a core sweeps at most 4 column panels, M and K need no padding and ``a_readable_in_place`` (A's
    rows are runs of K in memory with a row stride). ``b_cost``: what packing an element of B costs relative to one
    of A (more for a B whose copy is not vectorized). A batch runs (matrix, block of rows) pairs on the cores.
    Blocks of rows (at most ``mc``) come in whole rounds of the cores, as even as the ``mr``-row tiles allow."""
    b = blocking
    Mp, Np, Kp = _ceil_div(M, b.mr) * b.mr, _ceil_div(N, b.nr) * b.nr, _ceil_div(K, b.kc) * b.kc
    cores = max(1, cores)
    panels = Np // b.nr
    block_rows = max(1, min(b.mc, Mp) // b.mr) * b.mr
    batched = batched or batch > 1
    by_columns = batch == 1 and cores > 1 and split_columns_over_cores(
        _ceil_div(Mp, block_rows), panels, M, N, cores, b_cost)
    blocks = column_blocks(panels, cores) if by_columns else 0
    if not by_columns and not batched and cores > 1:
        # blocks of rows in whole rounds of the cores, as even as the micro-tiles allow: 784 rows in blocks of 252
        # left one core 280 of them and the other 504 (784 x 128 x 512 on 2 Zen 4 cores, blocks of 196: float32
        # 170 -> 212 GFLOP/s, bfloat16 305 -> 386)
        rounds = _ceil_div(_ceil_div(Mp, block_rows), cores)
        block_rows = _ceil_div(Mp // b.mr, rounds * cores) * b.mr
    # an A micro-panel serves the column panels of a block: for a few of them, copying A costs more than it saves
    # (measured on 4096 x 64 x 1024 and 4096 x 128 x 1024: about 15% and 8% faster read in place)
    sweep = _ceil_div(panels, blocks) if by_columns else panels
    in_place_a = a_readable_in_place and Mp == M and Kp == K and sweep <= 4
    return GemmPlan(M, N, K, b, lanes, cores, Mp, Np, Kp, block_rows, by_columns, in_place_a, batch, batched,
                    blocks)


def with_symbolic_rows(plan: GemmPlan, rows: Expr) -> GemmPlan:
    """``plan`` (made for a typical number of rows) for ``rows``, a symbolic dimension (a prompt's length): the
    rows are padded to whole ``mr`` tiles (``Mp``, an expression), A is packed once (its last row repeated below
    M); the blocks of rows keep their size, the last one runs only the tiles it needs (a guard per tile, outside
    the micro-kernel call), and its last tile only the rows there are (``gemm_intrin``'s ``rows``), written into C
    itself."""
    mr = plan.blocking.mr
    return replace(plan, M=rows, Mp=(rows + (mr - 1)) // mr * mr, in_place_a=False)
