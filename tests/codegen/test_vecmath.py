"""tcomp's float32 vector math (``tcomp/codegen/llvm/vecmath.py``): within 4 ulp of float64 on millions of points
including every special value, vector code at the target's width, no libm call per lane.

Every float32 input is checked by ``bench/vecmath.py`` (run once per change of the polynomials, not in CI)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from llvm_testing import elementwise

import tcomp
from tcomp.backend.llvm.vecmath_testing import build_unary, reference, sample_inputs, special_inputs, ulp_error
from tcomp.codegen.llvm.vecmath import VECTOR_MATH_OPS
from tcomp.ir import expr as E
from tcomp.target import Target

MAX_ULP = 4.0
POINTS = 1 << 21
HOST = Target.current_host()


@pytest.fixture(scope="module")
def inputs() -> np.ndarray:
    x = sample_inputs(POINTS, seed=12)
    return x[: len(x) // 64 * 64]


@pytest.mark.parametrize("op", VECTOR_MATH_OPS)
def test_within_four_ulp_of_float64(op: str, inputs: np.ndarray) -> None:
    mod = build_unary(op, inputs.size, HOST.vector_bits // 32)
    y = np.empty_like(inputs)
    mod(inputs, y)
    error = ulp_error(y, reference(op, inputs))
    worst = int(np.argmax(error))
    assert error[worst] <= MAX_ULP, f"{op}({inputs[worst]!r}) = {y[worst]!r}: {error[worst]:.2f} ulp"


@pytest.mark.parametrize("op", VECTOR_MATH_OPS)
def test_special_values(op: str) -> None:
    x = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 3.4e38, -3.4e38], np.float32)
    mod = build_unary(op, x.size, 1)
    y = np.empty_like(x)
    mod(x, y)
    expected = reference(op, x).astype(np.float32)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(expected))
    finite = ~np.isnan(expected) & (np.abs(expected) > 1e-30) | np.isinf(expected)
    np.testing.assert_array_equal(y[finite], expected[finite])
    if op in ("tanh", "erf"):  # odd functions keep the sign of zero
        assert np.signbit(y[5]) and not np.signbit(y[4])


@pytest.mark.parametrize("lanes", [1, 4, 8, 16, 32])
def test_every_vector_width_gives_the_same_results(lanes: int) -> None:
    x = special_inputs()
    x = np.concatenate([x, np.linspace(-20, 20, 64 * 32 - x.size % (64 * 32), dtype=np.float32)])
    for op in ("exp", "erf"):
        mod = build_unary(op, x.size, lanes)
        y = np.empty_like(x)
        mod(x, y)
        assert ulp_error(y, reference(op, x)).max() <= MAX_ULP


@pytest.mark.parametrize("op", ["exp", "sigmoid"])
def test_the_normal_range_path_gives_the_general_paths_results(op: str) -> None:
    """Vectors whose lanes all lie in [-87, 87] take a shorter path (no clamps, one scaling step); any other lane,
    NaN included, sends its whole vector down the general path. Both give bit for bit what the scalar,
    branch-free code gives, at the edges of the range and on vectors that mix both kinds of lanes."""
    edges = np.array([87.0, np.nextafter(87.0, 100.0), -87.0, np.nextafter(-87.0, -100.0), 88.7, -88.7, -103.9,
                      -150.0, np.nan, np.inf, -np.inf, 0.0], np.float32)
    rng = np.random.default_rng(5)
    x = rng.uniform(-100, 100, 64 * 64).astype(np.float32)
    x[rng.integers(0, x.size, 200)] = rng.choice(edges, 200)
    x[: 64 * 32] = np.clip(x[: 64 * 32], -87, 87)  # whole vectors in range
    scalar, vector = np.empty_like(x), np.empty_like(x)
    build_unary(op, x.size, 1)(x, scalar)
    build_unary(op, x.size, 8)(x, vector)
    np.testing.assert_array_equal(vector.view(np.uint32), scalar.view(np.uint32))
    assert ulp_error(vector, reference(op, x)).max() <= MAX_ULP


@pytest.mark.parametrize("mattr", [("-avx512f",), ("+avx512f",)])
def test_vector_code_at_the_targets_width_without_libm_calls(mattr: tuple[str, ...]) -> None:
    target = Target(kind="llvm", mattr=mattr)
    if target.missing_here():
        pytest.skip(f"this CPU lacks {target.missing_here()}")
    register = "zmm" if target.has_feature("avx512f") else "ymm"
    x = sample_inputs(1 << 14, seed=3)
    x = x[: x.size // 64 * 64]
    for op in VECTOR_MATH_OPS:
        mod = build_unary(op, x.size, target.vector_bits // 32, target)
        asm = mod.get_source("asm")
        assert register in asm
        assert not re.search(r"call\w*\s+\w*(exp|log|tanh|erf)f?\b", asm), f"{op} calls libm"
        y = np.empty_like(x)
        mod(x, y)
        assert ulp_error(y, reference(op, x)).max() <= MAX_ULP


@pytest.mark.parametrize("mattr", [("-avx512f",), ("+avx512f",)])
@pytest.mark.parametrize("registers", [1, 2])
def test_erf_takes_its_table_at_the_targets_width(mattr: tuple[str, ...], registers: int) -> None:
    """16 lanes on AVX-512, 8 on AVX2, and vectors of two registers (a GEMM epilogue's, taken a register at a
    time): erf picks its polynomial per lane from tables (``vpermps``), without an exponential; every interval of
    [0, 4), its edges, beyond 4, and the special values."""
    target = Target(kind="llvm", mattr=mattr)
    if target.missing_here():
        pytest.skip(f"this CPU lacks {target.missing_here()}")
    lanes = target.vector_bits // 32
    edges = np.arange(0, 4.5, 4.0 / lanes, dtype=np.float32)
    around = (edges.view(np.int32)[:, None] + np.arange(-40, 41)).ravel().view(np.float32)
    x = np.concatenate([special_inputs(), around, -around, np.linspace(-5, 5, 1 << 16, dtype=np.float32)])
    x = np.concatenate([x, np.zeros(-x.size % 64, np.float32)])
    mod = build_unary("erf", x.size, lanes * registers, target)
    assert "vpermps" in mod.get_source("asm")
    y = np.empty_like(x)
    mod(x, y)
    error = ulp_error(y, reference("erf", x))
    worst = int(np.argmax(error))
    assert error[worst] <= 1.1, f"erf({x[worst]!r}) = {y[worst]!r}: {error[worst]:.2f} ulp"
    assert np.signbit(y[x == 0]).sum() == np.signbit(x[x == 0]).sum()  # -0 stays -0


@pytest.mark.parametrize("op", ["exp", "sigmoid", "tanh"])
@pytest.mark.parametrize("registers", [1, 2])
def test_exp_takes_its_table_on_avx512_registers(op: str, registers: int) -> None:
    """On AVX-512, ``exp`` of a register (and of two, a register at a time) and the ``sigmoid`` and ``tanh`` of one
    scale by ``vscalefps`` from a 16-entry table (``_exp_by_table``): the special values, a few ulps around every
    threshold, the reduction's interval edges and a dense sweep, within 1 ulp for ``exp`` and the usual bound for
    the others. AVX2 code keeps the polynomial (no ``vscalefps``)."""
    target = Target(kind="llvm", mattr=("+avx512f",))
    if target.missing_here():
        pytest.skip(f"this CPU lacks {target.missing_here()}")
    step = np.float32(np.log(2.0) / 16)
    edges = (np.arange(-1700, 1300, dtype=np.float32) * step + step / 2).view(np.int32)
    around = (edges[:, None] + np.arange(-2, 3)).ravel().view(np.float32)  # where n / 16 changes
    x = np.concatenate([special_inputs(), around, np.linspace(-110, 95, 1 << 16, dtype=np.float32)])
    x = np.concatenate([x, np.zeros(-x.size % 64, np.float32)])
    mod = build_unary(op, x.size, 16 * registers, target)
    if op == "exp" or registers == 1:
        assert "vscalefps" in mod.get_source("asm")
    y = np.empty_like(x)
    mod(x, y)
    error = ulp_error(y, reference(op, x))
    worst = int(np.argmax(error))
    bound = 1.0 if op == "exp" else MAX_ULP
    assert error[worst] <= bound, f"{op}({x[worst]!r}) = {y[worst]!r}: {error[worst]:.2f} ulp"
    avx2 = build_unary(op, 64, 8, Target(kind="llvm", mattr=("-avx512f",)))
    assert "vscalefps" not in avx2.get_source("asm")


def test_scalar_loops_are_widened_by_llvm() -> None:
    """A scalar call in a plain loop inlines to straight-line code that LLVM's loop vectorizer widens."""
    mod = tcomp.build(elementwise("scalar_tanh", "float32", 1024, lambda x: E.Call("tanh", (x,), "float32"),
                                  num_inputs=1))
    asm = mod.get_source("asm")
    assert "ymm" in asm or "zmm" in asm
    assert "tanhf" not in asm
    x = np.linspace(-10, 10, 1024, dtype=np.float32)
    y = np.empty_like(x)
    mod(x, y)
    assert ulp_error(y, reference("tanh", x)).max() <= MAX_ULP


def test_float64_keeps_libm() -> None:
    mod = tcomp.build(elementwise("tanh64", "float64", 64, lambda x: E.Call("tanh", (x,), "float64"),
                                  num_inputs=1))
    x = np.linspace(-3, 3, 64)
    y = np.empty_like(x)
    mod(x, y)
    np.testing.assert_allclose(y, np.tanh(x), rtol=1e-15)
