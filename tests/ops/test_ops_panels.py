"""``panel_matmul``: a product reading its constant B from the packed GEMM's panels (``pack_panels``), on the
micro-kernel with no copy of B, against numpy at sizes no tile divides (padded rows, columns and K slices), with an
epilogue and every access bounds-checked; and the errors for panels that do not fit."""

from __future__ import annotations

import numpy as np
import pytest

import tcomp
from tcomp import te
from tcomp.ops.cpu.common import CpuTarget
from tcomp.ops.cpu.dense import TYPICAL_ROWS, panels_plan
from tcomp.ops.cpu.dispatch import schedule_cpu
from tcomp.ops.panels import pack_panels, panel_matmul
from tcomp.ops.utils import OpError
from tcomp.target import Target

TWO_CORES = Target("llvm -num-cores=2")
RNG = np.random.default_rng(7)


@pytest.mark.parametrize(("m", "n", "k"), [(197, 768, 768), (130, 300, 1001), (64, 1000, 700)])
def test_panel_matmul_on_the_micro_kernel(m: int, n: int, k: int) -> None:
    plan = panels_plan(m, n, k, CpuTarget.of(TWO_CORES))
    assert plan is not None
    w = RNG.standard_normal((k, n)).astype(np.float32)
    x_value = RNG.standard_normal((m, k)).astype(np.float32)
    bias_value = RNG.standard_normal(n).astype(np.float32)
    panels_value = pack_panels(w, plan.blocking.nr, plan.Kp)
    x = te.placeholder((m, k), name="x")
    panels = te.placeholder(panels_value.shape, name="panels")
    bias = te.placeholder((n,), name="bias")
    product = panel_matmul(x, panels, n)
    out = te.compute((m, n), lambda i, j: product[i, j] + bias[j], name="out")
    s = schedule_cpu([out], TWO_CORES)
    source = str(tcomp.lower(s, [x, panels, bias, out], simple_mode=True))
    assert "tcomp_sgemm_f32" in source and "packedB" not in source
    module = tcomp.build(s, [x, panels, bias, out], target=TWO_CORES, check_bounds=True)
    got = np.empty((m, n), np.float32)
    module(x_value, panels_value, bias_value, got)
    want = x_value.astype(np.float64) @ w + bias_value
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))


@pytest.mark.parametrize(("n", "k"), [(768, 768), (300, 1001)])
def test_a_symbolic_number_of_rows(n: int, k: int) -> None:
    """One kernel for every number of rows (a prompt's length): the plan of ``TYPICAL_ROWS`` rows, A packed (its
    last row repeated down to a whole tile), only the tiles a block needs, the last tile on the micro-kernel of the
    rows left; against numpy from 1 row to several blocks (every remainder of a tile), with a fused epilogue, every
    access bounds-checked."""
    cpu = CpuTarget.of(TWO_CORES)
    plan = panels_plan(TYPICAL_ROWS, n, k, cpu)
    assert plan is not None
    w = RNG.standard_normal((k, n)).astype(np.float32)
    panels_value = pack_panels(w, plan.blocking.nr, plan.Kp)
    rows = te.var("rows", "int32", max_value=1 << 20)
    x, panels = te.placeholder((rows, k), name="x"), te.placeholder(panels_value.shape, name="panels")
    bias = te.placeholder((n,), name="bias")
    product = panel_matmul(x, panels, n)
    out = te.compute((rows, n), lambda i, j: te.max(product[i, j] + bias[j], 0.0), name="out")
    s = schedule_cpu([out], TWO_CORES)
    source = str(tcomp.lower(s, [x, panels, bias, out], simple_mode=True))
    assert "tcomp_rows_sgemm_f32" in source and "packedB" not in source
    module = tcomp.build(s, [x, panels, bias, out], target=TWO_CORES, check_bounds=True)
    bias_value = RNG.standard_normal(n).astype(np.float32)
    mr = plan.blocking.mr
    for m in (1, 2, *range(mr - 1, 2 * mr + 1), plan.block_rows - 1, plan.block_rows + 3, 2 * plan.block_rows + 37):
        x_value = RNG.standard_normal((m, k)).astype(np.float32)
        got = np.full((m, n), np.nan, np.float32)
        module(x_value, panels_value, bias_value, got)
        expected = np.maximum(x_value.astype(np.float64) @ w + bias_value, 0)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)


def test_pack_panels_layout() -> None:
    w = np.arange(15, dtype=np.float32).reshape(3, 5)
    panels = pack_panels(w, 2, 4)
    assert panels.shape == (3, 4, 2)
    assert panels[1, 2, 1] == w[2, 3] and panels[2, 0, 0] == w[0, 4]
    assert not panels[2, :, 1].any() and not panels[:, 3, :].any()  # padded columns and K rows are zeros


def test_panels_that_do_not_fit() -> None:
    x = te.placeholder((8, 40), name="x")
    with pytest.raises(OpError, match=r"panel_matmul: 50 columns do not fill 2 panels of 16"):
        panel_matmul(x, te.placeholder((2, 40, 16), name="p"), 50)
    with pytest.raises(OpError, match=r"panel_matmul: x\(8, 40\) has more K than panels\(2, 32, 16\)"):
        panel_matmul(x, te.placeholder((2, 32, 16), name="p"), 20)
    with pytest.raises(OpError, match=r"panel_matmul: x is float32 and panels float16"):
        panel_matmul(x, te.placeholder((2, 40, 16), name="p", dtype="float16"), 20)
    with pytest.raises(OpError, match=r"pack_panels: need a 2-D weight"):
        pack_panels(np.zeros((4, 4), np.float32), 8, 3)
