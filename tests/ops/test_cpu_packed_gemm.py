"""The default CPU schedule of large float32 matrix products that the tiles do not divide (``packed_plan`` and
``_gemm_packed`` in ``tcomp/ops/cpu/dense.py``): the packed GEMM of ``packed_matmul.py`` spliced into the schedule,
its panels zero-padded to whole micro-kernel tiles, the product copied out of a padded buffer. Checked against numpy
on odd sizes, in checked mode (every access verifies its indices, so the padding reads nothing beyond an input)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tcomp
from tcomp import Target, ops, te
from tcomp.ops.cpu import dense as dense_schedule
from tcomp.ops.cpu import schedule_cpu
from tcomp.ops.cpu.common import CpuTarget
from tcomp.ops.testing import random_data

RNG = np.random.default_rng(905)
TWO_CORES = Target("llvm -num-cores=2")


def _product(m: int, n: int, k: int, transpose_a: bool = False, transpose_b: bool = False,
             epilogue: bool = False) -> tuple[list[te.Tensor], list[np.ndarray], np.ndarray]:
    """``[A, B, (bias,) C]``, the input arrays and numpy's result of ``A @ B`` (+ bias, relu)."""
    a_shape = (k, m) if transpose_a else (m, k)
    b_shape = (n, k) if transpose_b else (k, n)
    a_t, b_t = te.placeholder(a_shape, name="A"), te.placeholder(b_shape, name="B")
    a, b = random_data(RNG, a_shape), random_data(RNG, b_shape)
    out = ops.matmul(a_t, b_t, transpose_a, transpose_b)
    expected = (a.T if transpose_a else a).astype(np.float64) @ (b.T if transpose_b else b)
    if not epilogue:
        return [a_t, b_t, out], [a, b], expected.astype(np.float32)
    bias_t = te.placeholder((n,), name="bias")
    bias = random_data(RNG, (n,))
    out = ops.relu(ops.add(out, bias_t))
    return [a_t, b_t, bias_t, out], [a, b, bias], np.maximum(expected + bias, 0).astype(np.float32)


def _check(args: list[te.Tensor], inputs: list[np.ndarray], expected: np.ndarray,
           target: Target = TWO_CORES) -> str:
    s = schedule_cpu([args[-1]], target)
    source = str(tcomp.lower(s, args, simple_mode=True))
    module = tcomp.build(s, args, target=target, check_bounds=True)
    out = np.full(expected.shape, np.nan, dtype=np.float32)
    module(*inputs, out)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    return source


@pytest.mark.parametrize(("m", "n", "k", "transpose_a", "transpose_b"), [
    (257, 263, 259, False, False),  # M, N and K padded
    (250, 300, 260, False, False),  # N padded (mr divides M, kc divides K)
    (253, 250, 270, False, True),  # dense: B is the transposed weight
    (240, 263, 300, True, False),  # A transposed
])
def test_odd_large_products_run_padded_tiles_on_the_micro_kernel(m: int, n: int, k: int, transpose_a: bool,
                                                                transpose_b: bool) -> None:
    args, inputs, expected = _product(m, n, k, transpose_a, transpose_b)
    source = _check(args, inputs, expected)
    assert "tcomp_sgemm_f32" in source and "T_matmul.padded" in source and "T_matmul.packedB" in source


def test_padding_only_along_k_writes_c_directly() -> None:
    args, inputs, expected = _product(128, 160, 1021)  # K prime: 256-deep slices, the last one padded
    source = _check(args, inputs, expected)
    assert "tcomp_sgemm_f32" in source and "padded" not in source and "packedA" in source


def test_an_epilogue_reads_the_padded_product() -> None:
    args, inputs, expected = _product(257, 263, 259, epilogue=True)
    source = _check(args, inputs, expected)
    assert "tcomp_sgemm_f32" in source and "T_matmul.padded" in source
    assert "allocate T_matmul:" not in source  # the copy out of the padded product is inlined into the epilogue


def test_dense_with_bias_on_the_micro_kernel() -> None:
    x_t, w_t, b_t = te.placeholder((300, 258), name="X"), te.placeholder((250, 258), name="W"), \
        te.placeholder((250,), name="b")
    out = ops.dense(x_t, w_t, b_t)
    x, w, b = random_data(RNG, (300, 258)), random_data(RNG, (250, 258)), random_data(RNG, (250,))
    source = _check([x_t, w_t, b_t, out], [x, w, b], (x.astype(np.float64) @ w.T + b).astype(np.float32))
    assert "tcomp_sgemm_f32" in source


def test_x_times_x_packs_one_input_twice() -> None:
    a_t = te.placeholder((300, 300), name="A")
    out = ops.matmul(a_t, a_t)
    a = random_data(RNG, (300, 300))
    source = _check([a_t, out], [a], (a.astype(np.float64) @ a).astype(np.float32))
    assert "tcomp_sgemm_f32" in source


@pytest.mark.parametrize(("m", "n", "k"), [
    (1, 2048, 1000),  # a row vector: the padding to whole row tiles would be most of the work
    (1, 1000, 2048),
    (64, 64, 64),  # small: plain register tiles
    (40, 40, 20000),  # N padded to 64 columns: too much extra work
])
def test_small_or_skinny_products_keep_plain_loops(m: int, n: int, k: int) -> None:
    # 16 float32 lanes, whatever this machine has: the padding above is counted in AVX-512's tiles (with AVX2's
    # 8-lane tiles 40 columns need none, and the packed GEMM rightly takes 40 x 40 x 20000); nothing runs here
    avx512 = Target("llvm -mcpu=skylake-avx512 -num-cores=2")
    for transpose_b in (False, True):
        args, _, _ = _product(m, n, k, transpose_b=transpose_b)
        source = str(tcomp.lower(schedule_cpu([args[-1]], avx512), args, simple_mode=True))
        assert "tcomp_sgemm_f32" not in source and "padded" not in source


def test_packed_plan_by_shape() -> None:
    avx512 = CpuTarget(vector_bits=512, vector_registers=32, cores=2)
    a_t, b_t = te.placeholder((1000, 1000), name="A"), te.placeholder((1000, 1000), name="B")
    op = ops.matmul(a_t, b_t).op
    plan = dense_schedule.packed_plan(op, op.output(0), 1000, 1000, 1000, avx512)
    assert plan is not None and plan.padded
    assert (plan.blocking.mr, plan.blocking.nr, plan.blocking.kc) == (10, 32, 250)
    assert (plan.Mp, plan.Np, plan.Kp) == (1000, 1024, 1000)
    whole = ops.matmul(te.placeholder((1024, 1024), name="A"), te.placeholder((1024, 1024), name="B")).op
    assert dense_schedule.packed_plan(whole, whole.output(0), 1024, 1024, 1024, avx512) is None  # whole tiles
    as_float64 = ops.matmul(a_t, b_t, out_dtype="float64").op
    assert dense_schedule.packed_plan(as_float64, as_float64.output(0), 1000, 1000, 1000, avx512) is None


@settings(max_examples=12, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    m=st.integers(1, 70), n=st.integers(1, 90), k=st.integers(1, 600),
    transpose_a=st.booleans(), transpose_b=st.booleans(), epilogue=st.booleans(), cores=st.integers(1, 3),
)
def test_random_small_shapes_on_the_packed_gemm(monkeypatch: pytest.MonkeyPatch, m: int, n: int, k: int,
                                                transpose_a: bool, transpose_b: bool, epilogue: bool,
                                                cores: int) -> None:
    """Any shape once the size and padding limits are lifted: the packed path is exact at every edge."""
    monkeypatch.setattr(dense_schedule, "PANEL_MIN_WORK", 0)
    monkeypatch.setattr(dense_schedule, "PACKED_MAX_PADDING", 1e9)
    args, inputs, expected = _product(m, n, k, transpose_a, transpose_b, epilogue)
    _check(args, inputs, expected, Target(f"llvm -num-cores={cores}"))


@pytest.mark.parametrize(("seq", "heads", "head_dim", "cores"), [(197, 3, 64, 2), (37, 2, 24, 3), (64, 4, 32, 1)])
def test_batched_product_reads_head_views_in_place(monkeypatch: pytest.MonkeyPatch, seq: int, heads: int,
                                                   head_dim: int, cores: int) -> None:
    """Q K^T per head with Q and K the heads of ``[S, heads * D]`` projections (reshaped and transposed views,
    inlined into the product), then a bias and a residual as the product's epilogue (run block by block in the
    product's parallel loop). The size and padding limits of the packed GEMM are lifted."""
    monkeypatch.setattr(dense_schedule, "PANEL_MIN_WORK", 0)
    monkeypatch.setattr(dense_schedule, "PACKED_MAX_PADDING", 1e9)
    hidden = heads * head_dim
    q_t, k_t = te.placeholder((seq, hidden), name="Q"), te.placeholder((seq, hidden), name="K")
    bias_t, residual_t = te.placeholder((seq,), name="bias"), te.placeholder((heads, seq, seq), name="residual")
    q_heads = ops.transpose(ops.reshape(q_t, (seq, heads, head_dim)), (1, 0, 2))  # [heads, S, D]
    k_heads = ops.transpose(ops.reshape(k_t, (seq, heads, head_dim)), (1, 2, 0))  # [heads, D, S]
    out = ops.add(ops.add(ops.batch_matmul(q_heads, k_heads), bias_t), residual_t)
    q, k = random_data(RNG, (seq, hidden)), random_data(RNG, (seq, hidden))
    bias, residual = random_data(RNG, (seq,)), random_data(RNG, (heads, seq, seq))
    qh = q.astype(np.float64).reshape(seq, heads, head_dim).transpose(1, 0, 2)
    kh = k.astype(np.float64).reshape(seq, heads, head_dim).transpose(1, 2, 0)
    expected = (qh @ kh + bias + residual).astype(np.float32)
    source = _check([q_t, k_t, bias_t, residual_t, out], [q, k, bias, residual], expected,
                    Target(f"llvm -num-cores={cores}"))
    assert "tcomp_sgemm_f32" in source
    assert "allocate T_transpose" not in source and "allocate T_reshape" not in source  # read through, not copied


@pytest.mark.parametrize(("m", "n", "k"), [(257, 300, 256), (64, 48, 40), (7, 5, 3)])
def test_residual_epilogue_behind_an_unsqueeze(m: int, n: int, k: int) -> None:
    """``x @ w`` reshaped to ``[1, M, N]`` (as a 3-D MatMul exports) plus a residual: the add hosts the product
    (the packed GEMM's blocks run in the add's own parallel loop, so the product is never stored whole)."""
    x_t, w_t = te.placeholder((m, k), name="X"), te.placeholder((k, n), name="W")
    residual_t = te.placeholder((1, m, n), name="residual")
    out = ops.add(ops.reshape(ops.matmul(x_t, w_t), (1, m, n)), residual_t)
    x, w, residual = random_data(RNG, (m, k)), random_data(RNG, (k, n)), random_data(RNG, (1, m, n))
    expected = ((x.astype(np.float64) @ w)[None] + residual).astype(np.float32)
    source = _check([x_t, w_t, residual_t, out], [x, w, residual], expected)
    if m * n * k > dense_schedule.PANEL_MIN_WORK:
        assert "tcomp_sgemm_f32" in source and "allocate T_matmul:" not in source
