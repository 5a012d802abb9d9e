"""Products of two activations whose batch and rows are symbolic but whose columns and depth are numbers (DeBERTa's
queries times its position keys, over a symbolic batch and sequence): the blocked GEMM with its tiles chosen for
``TYPICAL_BATCH_ROWS`` rows, the last row tile guarded and B's panel copied contiguous, one kernel for every size.
Against numpy at sizes no tile divides, every access checked against its buffer's bounds."""

from __future__ import annotations

import numpy as np
import pytest

import tcomp
from tcomp import Target, ops, te
from tcomp.ops.cpu import schedule_cpu
from tcomp.ops.cpu.dense import symbolic_rows_product
from tcomp.ops.testing import random_data

RNG = np.random.default_rng(1208)


@pytest.mark.parametrize("n, k", [(48, 16), (40, 24), (7, 5)])
@pytest.mark.parametrize("cores", [1, 2])
def test_symbolic_rows_and_batch_with_a_transposed_operand(n: int, k: int, cores: int) -> None:
    """``relu(a @ transpose(b) + 1)``: ``a`` of ``[batch, m, k]``, ``b`` stored ``[batch, n, k]`` (its columns
    strided until the panel copy), the epilogue hosting the register tiles."""
    target = Target(f"llvm -num-cores={cores}")
    batch = te.var("batch", "int32", max_value=1 << 10, min_value=2)
    m = te.var("m", "int32", max_value=1 << 10, min_value=2)
    a = te.placeholder((batch, m, k), name="a")
    b = te.placeholder((batch, n, k), name="b")
    b_t = te.compute((batch, k, n), lambda t, r, c: b[t, c, r], name="b_t")
    product = ops.batch_matmul(a, b_t, name="product")
    assert symbolic_rows_product(product.op) == (n, k)
    out = te.compute((batch, m, n), lambda t, i, j: te.max(product[t, i, j] + 1.0, 0.0), name="out")
    module = tcomp.build(schedule_cpu([out], target), [a, b, out], target=target, check_bounds=True)
    for rows, count in ((2, 2), (13, 3), (67, 2), (130, 4)):
        x, y = random_data(RNG, (count, rows, k)), random_data(RNG, (count, n, k))
        got = np.full((count, rows, n), np.nan, np.float32)
        module(x, y, got, sizes={"batch": count, "m": rows})
        want = np.maximum(x.astype(np.float64) @ y.transpose(0, 2, 1) + 1.0, 0.0)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_only_numbers_of_columns_and_depth_take_the_blocked_gemm() -> None:
    m, n = te.var("m", "int32", max_value=1 << 10, min_value=2), te.var("n", "int32", max_value=1 << 10, min_value=2)
    a = te.placeholder((m, 8), name="a")
    assert symbolic_rows_product(ops.matmul(a, te.placeholder((8, n), name="b")).op) is None  # symbolic columns
    assert symbolic_rows_product(ops.matmul(te.placeholder((4, m), name="a"), te.placeholder((m, 4))).op) is None
    assert symbolic_rows_product(ops.dense(a, te.placeholder((16, 8), name="w")).op) is None  # transpose_b
    assert symbolic_rows_product(ops.matmul(a, te.placeholder((8, 16), name="b")).op) == (16, 8)
