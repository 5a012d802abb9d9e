"""``packed_matvec`` over a weight packed in column blocks, and its CPU schedule, against numpy: rows 1-16, any K,
column counts the blocks do not divide, with and without a fused epilogue; the packing; bad arguments."""

from __future__ import annotations

import numpy as np
import pytest

import tcomp
from tcomp import ops, te
from tcomp.backend.testing import build_and_check
from tcomp.ops.cpu import schedule_cpu
from tcomp.ops.cpu.matvec import k_chunk, k_parts, prefetch_steps, row_group
from tcomp.ops.matvec import column_block, pack_column_blocks, packed_matvec
from tcomp.target import Target

RNG = np.random.default_rng(1207)


def test_packing_puts_each_column_block_in_one_run() -> None:
    w = RNG.standard_normal((5, 11)).astype(np.float32)
    packed = pack_column_blocks(w, 4)
    assert packed.shape == (3, 5, 4) and packed.flags.c_contiguous
    for j in range(11):
        np.testing.assert_array_equal(packed[j // 4, :, j % 4], w[:, j])
    assert not packed[2, :, 3].any()  # the padding is zeros


@pytest.mark.parametrize(("m", "k", "n"), [
    (1, 1, 2), (1, 37, 45), (1, 256, 128), (2, 100, 65), (3, 17, 96), (5, 64, 33), (8, 7, 40), (16, 129, 50),
])
@pytest.mark.parametrize("epilogue", [False, True])
def test_packed_matvec_matches_numpy(m: int, k: int, n: int, epilogue: bool) -> None:
    _check_product(m, k, n, "llvm", epilogue)


def _check_product(m: int, k: int, n: int, target: str, epilogue: bool) -> str:
    """Schedule ``x[m, k] @ W[k, n]`` (with a bias and relu when ``epilogue``) for ``target``, run it here against
    numpy, and return the lowered loops."""
    w = RNG.standard_normal((k, n)).astype(np.float32)
    x = RNG.standard_normal((m, k)).astype(np.float32)
    packed = pack_column_blocks(w, column_block(m))
    X = te.placeholder((m, k), name="x")
    P = te.placeholder(packed.shape, name="packed")
    out = packed_matvec(X, P, n)
    expected = x.astype(np.float64) @ w
    args, arrays = [X, P], [x, packed]
    if epilogue:
        B = te.placeholder((n,), name="b")
        bias = RNG.standard_normal(n).astype(np.float32)
        out = ops.relu(ops.add(out, B))
        args, arrays = [X, P, B], [x, packed, bias]
        expected = np.maximum(expected + bias, 0)
    s = schedule_cpu(out, Target(target))
    build_and_check(s, [*args, out], arrays, expected, rtol=1e-4, atol=1e-4)  # built for this CPU
    return str(tcomp.lower(schedule_cpu(out, Target(target)), [*args, out]))


# K long enough for chunks (a divisor of K or a guarded last chunk: 1031 is prime), K split across more cores than
# there are column blocks, and the schedules an AVX-512 machine gets (16-lane vectors, 32 registers) run here
@pytest.mark.parametrize(("m", "k", "n", "target"), [
    (2, 1000, 65, "llvm -mcpu=znver1 -num-cores=2"),
    (3, 1031, 40, "llvm -mcpu=znver1 -num-cores=2"),
    (16, 1031, 50, "llvm -mcpu=znver1 -num-cores=2"),
    (1, 1000, 64, "llvm -mcpu=znver1 -num-cores=4"),
    (5, 1031, 7, "llvm -mcpu=znver1 -num-cores=8"),
    (16, 777, 33, "llvm -mcpu=znver1 -num-cores=8"),
    (1, 999, 777, "llvm -mcpu=skylake-avx512 -num-cores=16"),
    (4, 777, 33, "llvm -mcpu=skylake-avx512 -num-cores=16"),
    (16, 1031, 17, "llvm -mcpu=skylake-avx512 -num-cores=2"),
])
@pytest.mark.parametrize("epilogue", [False, True])
def test_chunked_and_split_products_match_numpy(m: int, k: int, n: int, target: str, epilogue: bool) -> None:
    _check_product(m, k, n, target, epilogue)


def test_row_groups_share_each_chunk_of_k() -> None:
    # AVX2: two rows of 64 columns take 16 accumulators, more than the registers hold: one row per group, and the
    # groups take turns on each chunk of the block (from L1) instead of streaming the whole block twice
    text = _check_product(2, 1000, 65, "llvm -mcpu=znver1 -num-cores=2", False)
    chunk = k_chunk(1000, 64, 4, 32 << 10)
    assert chunk == 25 and f"for k.outer in range(0, {1000 // chunk})" in text
    assert f"prefetch={chunk}" in text  # the next chunk
    chunks = text[text.index("for k.outer"):]  # after the accumulators' reset
    assert chunks.index("for i.outer") < chunks.index("for k.inner")
    # one group holds every row: no chunks
    assert "k.outer" not in _check_product(2, 1000, 65, "llvm -mcpu=skylake-avx512 -num-cores=2", False)


def test_k_is_split_across_cores_when_blocks_are_fewer() -> None:
    assert k_parts(64, 25088, 2) == 1
    assert k_parts(1, 25088, 2) == 2
    assert k_parts(3, 25088, 16) == 5
    assert k_parts(1, 300, 16) == 1  # too short to share
    text = _check_product(1, 1000, 64, "llvm -mcpu=znver1 -num-cores=4", True)
    assert "T_packed_matvec.rf" in text and "parallel(0, 3)" in text


@pytest.mark.parametrize(("m", "epilogue"), [(16, False), (8, True), (4, False)])
def test_rows_4_kib_apart_are_copied_apart(m: int, epilogue: bool) -> None:
    """Rows of 1024 float32 share an L1 set: 8 or more of them are copied into rows padded by a cache line first
    (``storage_align``); 4 are read in place."""
    text = _check_product(m, 1024, 40, "llvm -mcpu=skylake-avx512 -num-cores=2", epilogue)
    assert ("x.global" in text) == (m >= 8)
    if m >= 8:
        assert "* 1040 + k]" in text  # the padded stride: 1024 + 16
    assert "x.global" not in _check_product(m, 1000, 40, "llvm -mcpu=skylake-avx512 -num-cores=2", epilogue)


def test_prefetch_distance_is_in_bytes() -> None:
    assert prefetch_steps(64, 4) == 8 and prefetch_steps(16, 4) == 32 and prefetch_steps(8192, 4) == 1


def test_the_k_loop_tests_no_bound_and_streams_with_prefetch() -> None:
    X = te.placeholder((3, 37), name="x")
    P = te.placeholder((2, 37, 32), name="packed")
    out = packed_matvec(X, P, 45)
    text = str(tcomp.lower(schedule_cpu(out), [X, P, out]))
    k_loop = text[text.index("for k in"):text.index("for i in")]
    assert "if " not in k_loop and "prefetch=" in k_loop
    # the blocks of the output: a loop, or (two blocks, the last one partial) the full block and its tail
    assert "parallel" in text or "j.outer in range" in text or text.count("for k in") == 2


def test_row_groups_keep_the_accumulators_in_registers() -> None:
    assert row_group(1, 64, 16, 32) == 1
    assert row_group(16, 16, 16, 32) == 16  # 16 accumulators of one AVX-512 vector
    assert row_group(12, 16, 8, 16) == 6  # AVX2: two vectors a row, 12 registers for accumulators
    assert row_group(16, 16, 8, 16) == 4  # a divisor of the rows, so no group is guarded
    assert row_group(7, 16, 8, 16) == 6  # none near: one guarded group


def test_bad_arguments_raise() -> None:
    X = te.placeholder((2, 8), name="x")
    P = te.placeholder((2, 8, 4), name="packed")
    with pytest.raises(ops.OpError, match="columns do not fill"):
        packed_matvec(X, P, 4)
    with pytest.raises(ops.OpError, match="columns do not fill"):
        packed_matvec(X, P, True)  # type: ignore[arg-type]
    with pytest.raises(ops.OpError, match="differ in K"):
        packed_matvec(te.placeholder((2, 9), name="x9"), P, 7)
    with pytest.raises(ops.OpError, match="3 dimensions"):
        packed_matvec(X, te.placeholder((8, 4), name="w"), 4)
    with pytest.raises(ops.OpError, match="2-D weight"):
        pack_column_blocks(np.zeros((2, 3, 4), np.float32), 4)
