"""``panel_matmul`` of a weight in bfloat16 panels (``Precision.BF16`` on a CPU): the operands rounded to bfloat16,
products summed in float32, on the bfloat16 micro-kernels (``vdpbf16ps`` where the CPU has AVX512-BF16, float32
multiply-adds elsewhere). Checked against numpy's float64 product of the rounded operands at sizes no tile divides,
for a fixed and a symbolic number of rows, with every access bounds-checked; both kernels give the same bits on
normal values (``vdpbf16ps`` takes subnormals as zeros)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tcomp
from tcomp import te
from tcomp.ops.cpu.bf16_matmul import bf16_plan
from tcomp.ops.cpu.common import CpuTarget
from tcomp.ops.cpu.dense import TYPICAL_ROWS
from tcomp.ops.cpu.dispatch import schedule_cpu
from tcomp.ops.panels import PAIRS, pack_grouped_panels, panel_matmul
from tcomp.ops.utils import OpError
from tcomp.target import Target

NATIVE = Target("llvm -num-cores=2")
HAS_BF16 = NATIVE.bf16_dots
# float32 multiply-adds: this CPU without AVX512-BF16 (AVX2 machines have none anyway)
EMULATED = Target("llvm -num-cores=2 -mattr=-avx512bf16") if HAS_BF16 else NATIVE
TARGETS = [pytest.param(NATIVE, id="native"), pytest.param(EMULATED, id="emulated")] if HAS_BF16 else \
    [pytest.param(EMULATED, id="emulated")]
RNG = np.random.default_rng(11)


def rounded(values: np.ndarray) -> np.ndarray:
    return values.astype(ml_dtypes.bfloat16).astype(np.float64)


def bf16_product(x_value: np.ndarray, w: np.ndarray, target: Target, symbolic: bool = False,
                 bias: bool = False) -> tuple[np.ndarray, str]:
    """tcomp's bfloat16 ``x @ w`` (plus a bias of 0.5 per column and a ReLU with ``bias``) and its lowered source;
    ``symbolic``: built for a symbolic number of rows (the plan of ``TYPICAL_ROWS``)."""
    m, k = x_value.shape
    n = w.shape[1]
    plan = bf16_plan(TYPICAL_ROWS if symbolic else m, n, k, CpuTarget.of(target))
    panels_value = pack_grouped_panels(w, plan.blocking.nr, plan.Kp, PAIRS, ml_dtypes.bfloat16)
    extent = te.var("rows", "int32", max_value=1 << 20) if symbolic else m
    x = te.placeholder((extent, k), name="x")
    panels = te.placeholder(panels_value.shape, name="panels", dtype="bfloat16")
    product = panel_matmul(x, panels, n)
    out = te.compute((extent, n), lambda i, j: te.max(product[i, j] + 0.5, 0.0), name="out") if bias else product
    s = schedule_cpu([out], target)
    source = str(tcomp.lower(s, [x, panels, out], simple_mode=True))
    module = tcomp.build(s, [x, panels, out], target=target, check_bounds=True)
    got = np.full((m, n), np.nan, np.float32)
    module(x_value, panels_value, got)
    return got, source


def assert_rounded_product(got: np.ndarray, x_value: np.ndarray, w: np.ndarray, bias: bool = False) -> None:
    """``got`` is the float64 product of the rounded operands up to float32 sums: ``K 2^-23`` of ``sum |x| |w|``."""
    want = rounded(x_value) @ rounded(w)
    scale = np.abs(rounded(x_value)) @ np.abs(rounded(w))
    if bias:
        want = np.maximum(want + 0.5, 0)
    assert np.all(np.abs(got - want) <= x_value.shape[1] * 2.0 ** -23 * (scale + 1))


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(("m", "n", "k"), [(37, 300, 130), (128, 96, 1030), (5, 64, 33), (1, 16, 3)])
def test_bf16_panel_matmul(m: int, n: int, k: int, target: Target) -> None:
    w = RNG.standard_normal((k, n)).astype(np.float32)
    x_value = RNG.standard_normal((m, k)).astype(np.float32)
    got, source = bf16_product(x_value, w, target, bias=True)
    kernel = "tcomp_bgemm_dp" if target.bf16_dots else "tcomp_bgemm_fma"
    assert kernel in source and "packedB" not in source
    assert_rounded_product(got, x_value, w, bias=True)


@pytest.mark.parametrize("target", TARGETS)
def test_a_symbolic_number_of_rows(target: Target) -> None:
    """One kernel for every number of rows (a prompt's length), its last tile on the kernel of the rows left."""
    n, k = 100, 300
    w = RNG.standard_normal((k, n)).astype(np.float32)
    for m in (1, 7, 9, 40, 300):
        x_value = RNG.standard_normal((m, k)).astype(np.float32)
        got, source = bf16_product(x_value, w, target, symbolic=True)
        assert "tcomp_rows_bgemm" in source
        assert_rounded_product(got, x_value, w)


@pytest.mark.skipif(not HAS_BF16, reason="this CPU has no AVX512-BF16")
@settings(max_examples=6, deadline=None)
@given(st.integers(1, 40), st.integers(1, 70), st.integers(1, 90))
def test_vdpbf16ps_and_its_emulation_agree_bit_for_bit(m: int, n: int, k: int) -> None:
    """Both kernels add the odd step's product, then the even step's, each sum rounded once (normal values)."""
    w = RNG.standard_normal((k, n)).astype(np.float32)
    x_value = RNG.standard_normal((m, k)).astype(np.float32)
    native, _ = bf16_product(x_value, w, NATIVE)
    emulated, _ = bf16_product(x_value, w, EMULATED)
    np.testing.assert_array_equal(native, emulated)


def test_special_values_round_as_bfloat16_does() -> None:
    """Infinities and NaNs pass through; a value past bfloat16's largest rounds to infinity, as ``ml_dtypes``."""
    k, n = 4, 16
    w = np.ones((k, n), np.float32)
    x_value = np.array([[np.inf, 0, 0, 0], [np.nan, 1, 0, 0], [3.4e38, 0, 0, 0], [1 + 2 ** -8, 0, 0, 0],
                        [1 + 3 * 2 ** -8, 0, 0, 0]], np.float32)
    got, _ = bf16_product(x_value, w, NATIVE)
    assert np.all(got[0] == np.inf) and np.all(np.isnan(got[1])) and np.all(got[2] == np.inf)
    assert np.all(got[3] == 1.0) and np.all(got[4] == 1 + 2 ** -6)  # halfway: to the even mantissa


def test_pack_grouped_panels_layout() -> None:
    w = np.arange(15, dtype=np.float32).reshape(5, 3)
    panels = pack_grouped_panels(w, 2, 6, PAIRS, ml_dtypes.bfloat16)
    assert panels.shape == (2, 3, 2, 2) and panels.dtype == ml_dtypes.bfloat16
    assert panels[1, 1, 0, 1] == w[3, 2] and panels[0, 2, 1, 0] == w[4, 1] and panels[0, 2, 1, 1] == 0
    with pytest.raises(OpError, match="not a multiple of the group"):
        pack_grouped_panels(w, 2, 7, PAIRS, ml_dtypes.bfloat16)


def test_bf16_panel_errors() -> None:
    panels = te.placeholder((2, 8, 16, 2), name="panels", dtype="bfloat16")
    with pytest.raises(OpError, match="panels in pairs are bfloat16, for float32 x"):
        panel_matmul(te.placeholder((4, 16), name="x", dtype="float16"), panels, 20)
    with pytest.raises(OpError, match="more K than panels"):
        panel_matmul(te.placeholder((4, 17), name="x"), panels, 20)
    with pytest.raises(OpError, match="pairs of steps in the last axis"):
        panel_matmul(te.placeholder((4, 16), name="x"), te.placeholder((2, 8, 16, 4), name="p", dtype="bfloat16"),
                     20)


def test_a_cpu_without_avx512_runs_the_emulated_kernel() -> None:
    """AVX2 code (``-mattr=-avx512f``): the bfloat16 products on 8-lane float32 multiply-adds."""
    target = Target("llvm -num-cores=2 -mattr=-avx512f")
    w = RNG.standard_normal((130, 300)).astype(np.float32)
    x_value = RNG.standard_normal((37, 130)).astype(np.float32)
    got, source = bf16_product(x_value, w, target)
    assert "tcomp_bgemm_fma" in source and "_v8" in source
    assert_rounded_product(got, x_value, w)


def test_subnormals_count_as_zeros_only_in_vdpbf16ps() -> None:
    """``vdpbf16ps`` takes subnormal operands and sums as zeros (DAZ, FTZ); the emulation keeps them."""
    x_value = np.array([[1e-39, 0, 0, 0], [1e-20, 0, 0, 0]], np.float32)
    w = np.ones((4, 16), np.float32)
    w[0, 1] = 1e-20
    emulated, _ = bf16_product(x_value, w, EMULATED)
    assert emulated[0, 0] == rounded(x_value)[0, 0] and 0 < emulated[1, 1] < np.finfo(np.float32).tiny
    if HAS_BF16:
        native, _ = bf16_product(x_value, w, NATIVE)
        assert native[0, 0] == 0 and native[1, 1] == 0
