"""``bench/gpu_matmul.py`` without a GPU: its command line, the hand-picked tiles of its sweep (each fits the
target and differs from the default), and its refusal to run without a device."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tcomp.autotune import TunerKind
from tcomp.ops.cuda.gemm_choice import default_tile, fits, matmul_problem
from tcomp.target import Precision, Target

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import gpu_matmul  # noqa: E402


def test_command_line() -> None:
    plan = gpu_matmul.parse_plan(["--precisions", "fp32,tf32,fp16,bf16,fp16", "--trials", "120", "--budget", "90",
                                  "--sweep", "--tuner", "random", "--size", "1024", "--records-dir", "/tmp/r"])
    assert plan.precisions == (Precision.FP32, Precision.TF32, Precision.FP16, Precision.BF16)
    assert (plan.size, plan.trials, plan.budget, plan.sweep, plan.tuner) == (1024, 120, 90.0, True, TunerKind.RANDOM)
    assert gpu_matmul.parse_plan([]).precisions == (Precision.FP32, Precision.FP16)
    for bad in (["--precisions", "fp8"], ["--precisions", ","], ["--size", "8"], ["--trials", "-1"],
                ["--rounds", "0"], ["--tuner", "best"]):
        with pytest.raises(SystemExit):
            gpu_matmul.parse_plan(bad)


@pytest.mark.parametrize("precision", list(Precision))
def test_sweep_tiles_fit_and_differ_from_the_default(precision: Precision) -> None:
    target = Target("cuda -arch=sm_90").with_precision(precision)
    problem = matmul_problem(4096, 4096, 4096, gpu_matmul.DTYPES[precision], precision)
    default = default_tile(problem, 4096, 4096, target=target)
    tiles = gpu_matmul.sweep_tiles(precision, target, 4096)
    assert tiles and default not in tiles and len(set(tiles)) == len(tiles)
    assert all(fits(t, problem, target) for t in tiles)


def test_refuses_to_run_without_a_gpu() -> None:
    from tcomp.runtime.cuda_device import gpu_available

    if gpu_available():
        pytest.skip("a GPU is present")
    with pytest.raises(SystemExit, match="needs CuPy and a CUDA device"):
        gpu_matmul.main(["--trials", "0"])
