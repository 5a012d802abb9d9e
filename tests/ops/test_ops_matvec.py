"""``packed_matvec`` over a weight packed in column blocks, and its CPU schedule, against numpy: rows 1-16, any K,
column counts the blocks do not divide, with and without a fused epilogue; the packing; bad arguments."""

from __future__ import annotations

import numpy as np
import pytest

import tcomp
from tcomp import ops, te
from tcomp.backend.testing import build_and_check
from tcomp.ops.cpu import schedule_cpu
from tcomp.ops.cpu.matvec import row_group
from tcomp.ops.matvec import column_block, pack_column_blocks, packed_matvec

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
    build_and_check(schedule_cpu(out), [*args, out], arrays, expected, rtol=1e-4, atol=1e-4)


def test_the_k_loop_tests_no_bound_and_streams_with_prefetch() -> None:
    X = te.placeholder((3, 37), name="x")
    P = te.placeholder((2, 37, 32), name="packed")
    out = packed_matvec(X, P, 45)
    text = str(tcomp.lower(schedule_cpu(out), [X, P, out]))
    k_loop = text[text.index("for k in"):text.index("for i in")]
    assert "if " not in k_loop and "prefetch=" in k_loop
    assert "parallel" in text or "j.outer in range" in text


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
