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
