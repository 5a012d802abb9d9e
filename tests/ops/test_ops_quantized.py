"""``quantized_matmul``: uint8 rows times an int8 weight packed by ``pack_quantized_panels``, minus the rows' zero
point, on the integer micro-kernels (``vpdpbusd`` where the CPU has VNNI, ``pmaddwd`` on int16 pairs where not),
against numpy's exact int32 product at sizes no tile divides, with an epilogue and every access bounds-checked; and
the errors."""

from __future__ import annotations

import numpy as np
import pytest

import tcomp
from tcomp import te
from tcomp.ops.cpu.common import CpuTarget
from tcomp.ops.cpu.dense import TYPICAL_ROWS
from tcomp.ops.cpu.dispatch import schedule_cpu
from tcomp.ops.cpu.quantized_matmul import narrow_panels_pay, panel_group, quantized_plan
from tcomp.ops.quantized import BYTES, PAIRS, pack_quantized_panels, quantized_matmul
from tcomp.ops.utils import OpError
from tcomp.target import Target

TWO_CORES = Target("llvm -num-cores=2")
WITHOUT_VNNI = Target("llvm -num-cores=2 -mattr=-avx512vnni,-avxvnni")
AVX2 = Target("llvm -mcpu=znver3 -num-cores=2")  # 16 registers, no VNNI: int16 pairs on 8 lanes
# this CPU's AVX2 code: AVX512-VNNI goes with AVX512F (vpdpbusd on 8 lanes would stop LLVM)
NO_AVX512 = Target("llvm -num-cores=2 -mattr=-avx512f")
RNG = np.random.default_rng(9)


def _run(m: int, n: int, k: int, target: Target, x_value: np.ndarray, w: np.ndarray,
         zero: int) -> tuple[np.ndarray, str]:
    cpu = CpuTarget.of(target)
    plan = quantized_plan(m, n, k, cpu, a_in_place=True)
    panels_value = pack_quantized_panels(w, plan.blocking.nr, plan.Kp, panel_group(cpu))
    x = te.placeholder((m, k), name="x", dtype="uint8")
    panels = te.placeholder(panels_value.shape, name="panels", dtype=str(panels_value.dtype))
    sums = te.placeholder((n,), name="sums", dtype="int32")
    x_zero = te.placeholder((), name="x_zero", dtype="int32")
    scale = te.placeholder((n,), name="scale")
    product = quantized_matmul(x, panels, sums, x_zero, n)
    out = te.compute((m, n), lambda i, j: te.cast(product[i, j], "float32") * scale[j], name="out")
    s = schedule_cpu([out], target)
    source = str(tcomp.lower(s, [x, panels, sums, x_zero, scale, out], simple_mode=True))
    module = tcomp.build(s, [x, panels, sums, x_zero, scale, out], target=target, check_bounds=True)
    scale_value = RNG.uniform(0.5, 2.0, n).astype(np.float32)
    got = np.empty((m, n), np.float32)
    module(x_value, panels_value, w.astype(np.int32).sum(axis=0).astype(np.int32), np.array(zero, np.int32),
           scale_value, got)
    want = ((x_value.astype(np.int64) - zero) @ w.astype(np.int64)).astype(np.float32) * scale_value
    np.testing.assert_array_equal(got, want)
    return got, source


@pytest.mark.parametrize(("m", "n", "k"), [(128, 768, 768), (37, 65, 19), (5, 33, 1030), (1, 3, 4), (59, 48, 36)])
@pytest.mark.parametrize("target", [TWO_CORES, WITHOUT_VNNI, AVX2, NO_AVX512],
                         ids=["host", "without-vnni", "avx2", "no-avx512"])
def test_quantized_matmul_is_exact(m: int, n: int, k: int, target: Target) -> None:
    x_value = RNG.integers(0, 256, (m, k)).astype(np.uint8)
    w = RNG.integers(-128, 128, (k, n)).astype(np.int8)
    _, source = _run(m, n, k, target, x_value, w, int(RNG.integers(0, 256)))
    kernel = "tcomp_igemm_u8s8_" if CpuTarget.of(target).byte_dots else "tcomp_igemm_i16_"
    assert kernel in source


@pytest.mark.parametrize("target", [TWO_CORES, WITHOUT_VNNI], ids=["host", "without-vnni"])
def test_a_symbolic_number_of_rows(target: Target) -> None:
    """One kernel for every number of rows (a quantized model's prompt): the plan of ``TYPICAL_ROWS`` rows, the
    rows padded to whole tiles, the last one on the micro-kernel of the rows left; exact against numpy from 1 row to
    several blocks (every remainder of a tile), every access bounds-checked."""
    cpu = CpuTarget.of(target)
    n, k = 80, 300
    plan = quantized_plan(TYPICAL_ROWS, n, k, cpu)
    w = RNG.integers(-128, 128, (k, n)).astype(np.int8)
    panels_value = pack_quantized_panels(w, plan.blocking.nr, plan.Kp, panel_group(cpu))
    rows = te.var("rows", "int32", max_value=1 << 20)
    x = te.placeholder((rows, k), name="x", dtype="uint8")
    panels = te.placeholder(panels_value.shape, name="panels", dtype=str(panels_value.dtype))
    sums, x_zero = te.placeholder((n,), name="sums", dtype="int32"), te.placeholder((), name="x_zero", dtype="int32")
    product = quantized_matmul(x, panels, sums, x_zero, n)
    out = te.compute((rows, n), lambda i, j: te.cast(product[i, j], "float32"), name="out")
    s = schedule_cpu([out], target)
    assert "tcomp_rows_igemm_" in str(tcomp.lower(s, [x, panels, sums, x_zero, out], simple_mode=True))
    module = tcomp.build(s, [x, panels, sums, x_zero, out], target=target, check_bounds=True)
    mr = plan.blocking.mr
    for m in (1, 2, *range(mr - 1, 2 * mr + 1), plan.block_rows + 3, 2 * plan.block_rows + 37):
        x_value = RNG.integers(0, 256, (m, k)).astype(np.uint8)
        got = np.full((m, n), np.nan, np.float32)
        module(x_value, panels_value, w.astype(np.int32).sum(axis=0).astype(np.int32), np.array(7, np.int32), got)
        np.testing.assert_array_equal(got, ((x_value.astype(np.int64) - 7) @ w.astype(np.int64)).astype(np.float32))


def test_narrow_panels_where_two_vectors_would_pad_a_quarter() -> None:
    cpu = CpuTarget.of(TWO_CORES)
    lanes = cpu.lanes("int32")
    assert [narrow_panels_pay(n, 16) for n in (3, 16, 24, 32, 40, 48, 80, 144)] == [
        True, True, False, False, True, True, False, False]
    assert quantized_plan(3136, 48, 144, cpu).blocking.nr == lanes
    assert quantized_plan(3136, 144, 144, cpu).blocking.nr == 2 * lanes


def test_quantized_matmul_at_the_extremes() -> None:
    """255 x -128 over 2000 steps and a zero point of 255: sums near -6.5e7, beyond float32's exact integers."""
    x_value = np.full((9, 2000), 255, np.uint8)
    x_value[::2, 1::3] = 0
    w = np.full((2000, 40), -128, np.int8)
    w[:, ::5] = 127
    _run(9, 40, 2000, TWO_CORES, x_value, w, 255)


@pytest.mark.parametrize("group", [BYTES, PAIRS])
def test_pack_quantized_panels_layout(group: int) -> None:
    w = RNG.integers(-128, 128, (7, 5)).astype(np.int8)
    panels = pack_quantized_panels(w, 4, 8, group)
    assert panels.shape == (2, 8 // group, 4, group) and panels.dtype == ("int8" if group == BYTES else "int16")
    for k in range(8):
        for j in range(8):
            expected = w[k, j] if k < 7 and j < 5 else 0
            assert panels[j // 4, k // group, j % 4, k % group] == expected
    with pytest.raises(OpError, match="depth >= K in groups of"):
        pack_quantized_panels(w, 4, 6 if group == BYTES else 5, group)
    with pytest.raises(OpError, match="2-D int8 weight"):
        pack_quantized_panels(w.astype(np.int32), 4, 8, group)
    with pytest.raises(OpError, match="groups of 4 .int8. or 2 .int16., not 3"):
        pack_quantized_panels(w, 4, 9, 3)


def test_quantized_matmul_errors() -> None:
    x = te.placeholder((4, 10), name="x", dtype="uint8")
    panels = te.placeholder((1, 3, 8, 4), name="panels", dtype="int8")
    sums = te.placeholder((6,), name="sums", dtype="int32")
    zero = te.placeholder((), name="zero", dtype="int32")
    with pytest.raises(OpError, match="9 columns do not fill 1 panels of 8"):
        quantized_matmul(x, panels, te.placeholder((9,), name="s9", dtype="int32"), zero, 9)
    with pytest.raises(OpError, match=r"column_sums\(6\) must have 5 entries"):
        quantized_matmul(x, panels, sums, zero, 5)
    with pytest.raises(OpError, match="has more K than panels"):
        quantized_matmul(te.placeholder((4, 13), name="x13", dtype="uint8"), panels, sums, zero, 6)
    with pytest.raises(OpError, match="must be uint8, int8, int32, int32"):
        quantized_matmul(te.placeholder((4, 10), name="xs", dtype="int8"), panels, sums, zero, 6)
    with pytest.raises(OpError, match="in groups of 2, column_sums and x_zero must be uint8, int16"):
        quantized_matmul(x, te.placeholder((1, 5, 8, 2), name="p2", dtype="int8"), sums, zero, 6)
    with pytest.raises(OpError, match="groups of 4 or 2"):
        quantized_matmul(x, te.placeholder((1, 4, 8, 3), name="p3", dtype="int8"), sums, zero, 6)


def test_the_kernel_is_chosen_by_the_target() -> None:
    zen3 = Target("llvm -mcpu=znver3")  # AVX2, no VNNI
    assert not zen3.byte_dots and zen3.word_dots
    assert not WITHOUT_VNNI.byte_dots
    host = Target("llvm")
    asked = Target("llvm -mattr=+avx512vnni,+avxvnni,+avx512vl")
    if not (host.has_feature("avx512vnni") and host.has_feature("avxvnni") and host.has_feature("avx512vl")):
        assert asked.missing_here()  # code for it would stop this process with an illegal instruction
