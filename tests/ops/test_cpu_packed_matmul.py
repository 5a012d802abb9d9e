"""The hand GEMM schedule (``tcomp.ops.cpu.packed_matmul``) against numpy: whole tiles, shapes no tile divides (padded
packing and the copy out of the padded product), 1 to 3 cores (column blocks or row blocks in parallel), AVX2 and
the host's vectors; and the blocking it chooses."""

from __future__ import annotations

import numpy as np
import pytest

import tcomp
from tcomp.ops.cpu.gemm_plan import (
    MIN_BLOCK_PANELS,
    TASKS_PER_CORE,
    GemmBlocking,
    choose_blocking,
    column_blocks,
    plan_gemm,
    tile_rows,
)
from tcomp.ops.cpu.packed_matmul import packed_matmul

RNG = np.random.default_rng(31)
AVX2 = "llvm -mcpu=haswell"


def check(M: int, N: int, K: int, target: tcomp.Target, blocking: GemmBlocking | None = None) -> str:
    s, tensors = packed_matmul(M, N, K, blocking=blocking, target=target)
    mod = tcomp.build(s, tensors, target=target)
    a = RNG.random((M, K), dtype=np.float32)
    b = RNG.random((K, N), dtype=np.float32)
    c = np.full((M, N), np.nan, dtype=np.float32)
    mod(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-4, atol=1e-5)
    return mod.get_source("tir")


@pytest.mark.parametrize(
    "M,N,K",
    [(64, 64, 64), (1, 1, 1), (7, 5, 3), (33, 65, 17), (100, 200, 300), (257, 97, 513), (64, 32, 1000), (13, 130, 77)],
)
@pytest.mark.parametrize("cores", [1, 2, 3])
def test_packed_matmul_matches_numpy(M, N, K, cores):
    check(M, N, K, tcomp.Target(f"llvm -num-cores={cores}"))


@pytest.mark.parametrize("M,N,K", [(48, 64, 40), (50, 30, 70)])
def test_packed_matmul_avx2(M, N, K):
    check(M, N, K, tcomp.Target(f"{AVX2} -num-cores=2"))


def test_whole_tiles_need_no_padding_and_split_columns_over_cores():
    target = tcomp.Target("llvm -num-cores=2")
    nr = choose_blocking(64, 64, 512, target).nr
    source = check(64, 4 * nr, 512, target)
    assert "C.padded" not in source and "tcomp_sgemm_f32" in source
    assert "j.outer.outer in parallel(0, 2)" in source


def test_column_blocks_per_core_and_width():
    assert column_blocks(4, 2) == 2  # never fewer blocks than cores
    assert column_blocks(48, 2) == 48 // MIN_BLOCK_PANELS  # each block at least MIN_BLOCK_PANELS wide
    assert column_blocks(192, 2) == 2 * TASKS_PER_CORE
    assert column_blocks(1000, 3) == 3 * TASKS_PER_CORE
    # whole rounds of blocks: 24 panels (768 columns of 32) on 2 cores are 4 blocks, not 3
    assert column_blocks(24, 2) == 4
    assert all(column_blocks(panels, cores) % cores == 0 for cores in (2, 3, 4) for panels in range(cores, 300))
    assert column_blocks(1, 2) == 1  # one panel is one block


@pytest.mark.parametrize("cores", [2, 3])
@pytest.mark.parametrize("panels,extra", [(4 * MIN_BLOCK_PANELS, 0), (5 * MIN_BLOCK_PANELS + 3, 5)])
def test_many_column_panels_run_as_more_blocks_than_cores(cores, panels, extra):
    """Wide products split their columns into several blocks per core (unevenly where the count does not divide),
    each packing its own A; the result is the same."""
    target = tcomp.Target(f"llvm -num-cores={cores}")
    nr = choose_blocking(30, 30, 70, target).nr
    n = panels * nr + extra
    blocks = column_blocks(-(-n // nr), cores)
    assert blocks > cores
    source = check(30, n, 70, target)
    assert f"in parallel(0, {blocks})" in source


@pytest.mark.parametrize("cores", [2, 3])
@pytest.mark.parametrize("M", [197, 7, 1])
def test_rows_of_one_block_pack_a_once_for_every_column_block(M, cores):
    """Where all rows are one block, A is packed once (its row panels in parallel where there are several) before
    the column blocks, which all read that copy: odd row counts (a padded last panel), K no vector divides."""
    target = tcomp.Target(f"llvm -num-cores={cores}")
    blocking = choose_blocking(M, 1, 37, target)
    n = 4 * MIN_BLOCK_PANELS * blocking.nr + 5
    plan = plan_gemm(M, n, 37, blocking, target.vector_bits // 32, cores)
    assert plan.by_columns and plan.shared_a and plan.column_blocks > cores
    source = check(M, n, 37, target)
    panels = -(-M // blocking.mr)
    assert f"allocate C.packedA: float32[{panels * blocking.mr * 37}]" in source  # all rows, all of K, once
    # the copy comes first, outside the column blocks
    assert source.index("C.packedA[") < source.index(f"in parallel(0, {plan.column_blocks})")
    assert (f"for x in parallel(0, {panels})" in source) == (panels > 1)


def test_rows_of_several_blocks_pack_a_per_column_block():
    target = tcomp.Target("llvm -num-cores=2")
    blocking = GemmBlocking(mr=8, nr=choose_blocking(1, 1, 1, target).nr, mc=16, kc=32)
    plan = plan_gemm(40, 40 * blocking.nr, 64, blocking, target.vector_bits // 32, 2)
    assert plan.by_columns and not plan.shared_a
    check(40, 40 * blocking.nr, 64, target, blocking)


def test_fewer_column_panels_than_cores_split_rows():
    target = tcomp.Target("llvm -num-cores=2")
    nr = choose_blocking(64, 64, 64, target).nr
    source = check(64, nr, 64, target, GemmBlocking(mr=8, nr=nr, mc=16, kc=32))
    assert "i.outer.outer in parallel(0, 4)" in source


@pytest.mark.parametrize(("M", "cores", "rows"), [(784, 2, 196), (3136, 2, 224), (504, 2, 252), (785, 3, 140)])
def test_blocks_of_rows_run_in_even_rounds_of_the_cores(M: int, cores: int, rows: int) -> None:
    """Split by rows, the blocks come in whole rounds of the cores, as even as the ``mr``-row tiles allow, none
    larger than ``mc``: 784 rows in blocks of at most 252 are four blocks of 196, not 252, 252, 252 and 28."""
    blocking = GemmBlocking(mr=14, nr=32, mc=252, kc=256)
    plan = plan_gemm(M, 32, 256, blocking, 16, cores)
    assert not plan.by_columns and plan.block_rows == rows and rows <= blocking.mc
    assert -(-plan.Mp // plan.block_rows) % cores == 0
    check(M, 32, 256, tcomp.Target(f"llvm -num-cores={cores}"), blocking)


def test_a_is_read_in_place_when_few_column_panels_reuse_it():
    target = tcomp.Target("llvm -num-cores=2")
    nr = choose_blocking(64, 64, 64, target).nr
    assert "packedA" not in check(256, 2 * nr, 64, target)
    assert "packedA" in check(256, 16 * nr, 64, target)
    assert "packedA" in check(250, 2 * nr, 64, target, GemmBlocking(mr=8, nr=nr, mc=64, kc=64))  # padded rows


def test_padded_shapes_copy_out_of_the_padded_product():
    nr = choose_blocking(1, 1, 1).nr
    source = check(10, 20, 30, tcomp.Target("llvm -num-cores=2"), GemmBlocking(mr=8, nr=nr, mc=16, kc=16))
    assert "C.padded" in source


def test_choose_blocking():
    target = tcomp.Target("llvm -num-cores=2")
    lanes = target.vector_bits // 32
    b = choose_blocking(1024, 1024, 1024, target)
    assert (b.nr, b.kc) == (2 * lanes, 256) and b.mc % b.mr == 0 and 1024 % b.mr == 0
    assert choose_blocking(100, 100, 1000, target).kc == 250  # equal slices, no padding
    assert choose_blocking(100, 100, 1001, target).kc == 251  # one padded step
    assert choose_blocking(100, 100, 40, target).kc == 40


def test_packed_matmul_rejects_other_dtypes():
    with pytest.raises(ValueError, match=r"float32 only, got dtype='float64'"):
        packed_matmul(8, 8, 8, dtype="float64")


def test_register_tile_rows() -> None:
    """A divisor of M where one fits, else 8 rows unless they pad more than a tenth of M: then the tile that pads
    least (a short prompt's 17 rows in tiles of 9, not 24 rows of 8)."""
    assert [tile_rows(m, 14) for m in (3, 128, 42, 17, 41, 197, 1001)] == [3, 8, 14, 9, 14, 8, 13]
    assert tile_rows(17, 6) == 6 and tile_rows(23, 6) == 6  # 18 and 24 rows: within a tenth
