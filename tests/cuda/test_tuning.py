"""Tuning a CUDA template: builds in worker processes generate CUDA C, the runner runs it on the GPU (or, without
one, in CPU emulation), checks it against numpy and times it; records name the cuda target."""

from __future__ import annotations

import json

from tcomp import autotune
from tcomp.autotune import MeasureOptions, MeasureStatus, create_task
from tcomp.ops.cuda.gemm_choice import default_tile, matmul_problem, tile_name
from tcomp.target import Precision, Target


def test_matmul_cuda_fallback_is_the_default_tile() -> None:
    task = create_task("matmul_cuda", (64, 48, 40), target="cuda")
    fallback = task.config_space.fallback
    default = default_tile(matmul_problem(64, 48, 40, "float32", Precision.FP32), 64, 48, target=Target("cuda"))
    assert fallback["tile"].val == tile_name(default)
    assert fallback["k_outer"].val == default.k_outer and fallback["min_blocks"].val == default.min_blocks


def test_tuning_a_cuda_matmul_measures_every_candidate(tmp_path) -> None:  # type: ignore[no-untyped-def]
    task = create_task("matmul_cuda", (48, 40, 24), target="cuda")
    log = tmp_path / "cuda.jsonl"
    tuner = autotune.RandomTuner(task, seed=3)
    result = tuner.tune(n_trial=4, measure_option=MeasureOptions(n_parallel=2),
                        callbacks=[autotune.log_to_file(str(log))])
    assert result.statuses == {MeasureStatus.OK: 4}
    assert result.best_cost > 0 and result.default_cost > 0
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    # the four trials, then the default and the two fastest others 3 times more each
    assert len(lines) == 4 + 3 * 3 and all("cuda" in str(line) for line in lines)
    with autotune.apply_history_best(str(log)):
        chosen = autotune.instantiate("matmul_cuda", 48, 40, 24, target="cuda")
    assert chosen.tuned and chosen.config.same_choices(result.best_config)
