"""On a GPU (CuPy and a CUDA device present; skipped elsewhere): every case's CUDA C compiled by NVRTC and run on
the device equals numpy, kernels are timed with CUDA events, and a compiled model keeps its values on the device."""

from __future__ import annotations

import numpy as np
import pytest

from tcomp import autotune
from tcomp.backend.cuda import CudaRuntime, make_module
from tcomp.runtime.cuda_device import gpu_available
from tests.cuda.cases import CASE_IDS, CASES, Case, arguments, artifact, by_name, check_case

pytestmark = pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a CUDA device")


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_gpu_result_equals_numpy(case: Case) -> None:
    check_case(make_module(artifact(case), CudaRuntime.DEVICE), case)


def test_gpu_time_evaluator_uses_events() -> None:
    case = by_name("matmul_odd")
    module = make_module(artifact(case), CudaRuntime.DEVICE)
    result = module.time_evaluator(number=3, repeat=2)(*arguments(case))
    assert len(result.results) == 2 and 0 < result.min < 1.0


def test_graph_values_stay_on_the_device() -> None:
    import tcomp.graph as tg
    from tcomp.graph.cuda_executor import DeviceGraphExecutor
    from tests.graph.test_cuda_target import reference, small_cnn

    model = small_cnn()
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    executor = tg.compile(model, target="cuda")
    assert isinstance(executor, DeviceGraphExecutor)
    [got] = executor.run([x])
    [want] = reference(model, {"x": x})
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
    executor.set_input("x", 2 * x)
    executor.run()
    [want2] = reference(model, {"x": 2 * x})
    np.testing.assert_allclose(executor.get_output(0), want2, rtol=1e-3, atol=1e-4)
    assert min(executor.benchmark(repeat=3)) > 0
    assert min(executor.benchmark(repeat=3, cuda_graph=True)) > 0
    np.testing.assert_allclose(executor.get_output(0), want2, rtol=1e-3, atol=1e-4)  # replays change nothing
    profile = executor.profile(repeat=2)
    assert len(profile) == executor.num_kernels and all(seconds > 0 for _, _, seconds in profile)


def test_tuning_runs_candidates_on_the_gpu() -> None:
    task = autotune.create_task("matmul_cuda", (256, 192, 128), target="cuda")
    result = autotune.RandomTuner(task, seed=0).tune(n_trial=4, measure_option=autotune.MeasureOptions(n_parallel=2))
    assert result.statuses == {autotune.MeasureStatus.OK: 4}
    assert 0 < result.best_cost < 0.01


def _bound_1d(stage: object, axis: object, threads: int = 256) -> None:
    from tcomp import te

    outer, inner = stage.split(axis, factor=threads)  # type: ignore[attr-defined]
    stage.bind(outer, te.thread_axis("blockIdx.x"))  # type: ignore[attr-defined]
    stage.bind(inner, te.thread_axis("threadIdx.x"))  # type: ignore[attr-defined]


def test_gpu_min_max_propagate_nan_and_zero_divisors_give_zero() -> None:
    import tcomp
    from tcomp import te

    n = 1000
    a_t, b_t = te.placeholder((n,), name="a"), te.placeholder((n,), name="b")
    i_t, j_t = te.placeholder((n,), "int32", name="i"), te.placeholder((n,), "int32", name="j")
    mm = te.compute((n,), lambda x: te.max(a_t[x], b_t[x]) - te.min(a_t[x], b_t[x]), name="mm")
    dv = te.compute((n,), lambda x: i_t[x] // j_t[x] + i_t[x] % j_t[x], name="dv")
    s = tcomp.create_schedule([mm, dv])
    _bound_1d(s[mm], mm.op.axis[0])
    _bound_1d(s[dv], dv.op.axis[0])
    module = tcomp.build(s, [a_t, b_t, i_t, j_t, mm, dv], target="cuda")
    assert "emulated" not in repr(module)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    a[::7], b[::5] = np.nan, np.nan
    i, j = rng.integers(-50, 50, n).astype(np.int32), rng.integers(-3, 3, n).astype(np.int32)
    out_mm, out_dv = np.zeros(n, np.float32), np.ones(n, np.int32)
    module(a, b, i, j, out_mm, out_dv)
    np.testing.assert_array_equal(out_mm, np.maximum(a, b) - np.minimum(a, b))
    with np.errstate(divide="ignore"):
        np.testing.assert_array_equal(out_dv, i // j + i % j)  # numpy gives 0 for a zero divisor


def test_gpu_kernel_over_more_than_2_31_elements() -> None:
    import tcomp
    from tcomp import te

    rows, cols = 53688, 40000  # 2^31 + 36,352 int8 elements: 64-bit flat indices and a 64-bit fused loop
    out_t = te.compute((rows, cols), lambda r, c: (r * 3 + c).astype("int8"), name="out")
    s = tcomp.create_schedule(out_t)
    fused = s[out_t].fuse(*out_t.op.axis)
    assert fused.var.dtype == "int64"
    _bound_1d(s[out_t], fused)
    module = tcomp.build(s, [out_t], target="cuda")
    out = np.zeros((rows, cols), np.int8)
    module(out)
    sample = np.array([0, 1, rows // 2, rows - 1])
    np.testing.assert_array_equal(out[sample], (sample[:, None] * 3 + np.arange(cols)).astype(np.int8))
    np.testing.assert_array_equal(out[:, -1], (np.arange(rows) * 3 + cols - 1).astype(np.int8))
