"""``TaskScheduler`` (``tcomp tune --budget``): batches go where the weighted latency falls most, within the time
budget; every task is measured once first; exhausted tasks drop out; bad arguments are refused."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import pytest
from autotune_fakes import analytic_cost

from tcomp.autotune import create_task
from tcomp.autotune.measure import MeasureInput, MeasureOptions, MeasureResult, MeasureStatus
from tcomp.autotune.scheduler import TaskProgress, TaskScheduler
from tcomp.autotune.tuner import RandomTuner, XGBTuner


class ScaledMeasurer:
    """The analytic matmul cost, times a factor per task (a slow operator and a cheap one), optionally slept."""

    def __init__(self, scale: dict[str, float], delay: float = 0.0) -> None:
        self.options = MeasureOptions(n_parallel=2)
        self.scale = scale
        self.delay = delay
        self.batches: list[str] = []

    def measure(self, inputs: Sequence[MeasureInput]) -> list[MeasureResult]:
        if inputs:
            self.batches.append(inputs[0].task.key)
        if self.delay:
            time.sleep(self.delay)
        return [MeasureResult(MeasureStatus.OK, (analytic_cost(inp.config) * self.scale[inp.task.key],))
                for inp in inputs]

    def close(self) -> None:
        pass


def _tuners(count: int = 2) -> list[RandomTuner]:
    shapes = [(256, 256, 256), (128, 256, 64), (64, 64, 64)][:count]
    return [RandomTuner(create_task("matmul", shape), seed=k) for k, shape in enumerate(shapes)]


def test_the_heavy_task_gets_most_batches_and_every_task_one_first() -> None:
    tuners = _tuners()
    heavy, light = (t.task.key for t in tuners)
    measurer = ScaledMeasurer({heavy: 1.0, light: 1.0})
    scheduler = TaskScheduler(tuners, weights=[20, 1])  # 20 operators run the first task, 1 the second
    results = scheduler.tune(600, measurer, batch_size=4, max_trials=40, confirm=0)
    assert scheduler.order[:2] == [0, 1]  # round 0: each task measured once, in order
    assert scheduler.order[2:11] == [0] * 9  # the heavy task gets all its trials before the light one's second
    assert [r.trials for r in results] == [40, 40]  # no budget limit: both reach max_trials
    assert math.isfinite(scheduler.estimated_latency())


def test_the_slower_task_of_equal_weight_is_preferred() -> None:
    tuners = _tuners()
    slow, fast = (t.task.key for t in tuners)
    scheduler = TaskScheduler(tuners)
    scheduler.tune(600, ScaledMeasurer({slow: 50.0, fast: 1.0}), batch_size=4, max_trials=24, confirm=0)
    assert scheduler.order[2:7] == [0] * 5


def test_the_budget_stops_the_run() -> None:
    tuners = _tuners(3)
    measurer = ScaledMeasurer({t.task.key: 1.0 for t in tuners}, delay=0.05)
    start = time.perf_counter()
    results = TaskScheduler(tuners).tune(0.5, measurer, batch_size=2, confirm=1)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.5, elapsed  # the budget minus the confirm share, one batch late at most, the confirms
    assert all(r.trials >= 2 for r in results)  # each task had its first batch
    assert all(r.best_gflops >= r.default_gflops > 0 for r in results)
    assert sum(r.trials for r in results) < 3 * 2 * 10


def test_exhausted_spaces_drop_out() -> None:
    tuners = [RandomTuner(create_task("matmul", (1, 1, 1)), seed=0), *_tuners(1)]
    small = len(tuners[0].space)
    assert small < 120
    measurer = ScaledMeasurer({t.task.key: 1.0 for t in tuners})
    results = TaskScheduler(tuners, weights=[100, 1]).tune(600, measurer, batch_size=16, max_trials=120, confirm=0)
    assert results[0].trials == small and results[1].trials == 120


def test_scores_follow_recent_improvement_and_latency() -> None:
    improving, flat = TaskProgress(1.0), TaskProgress(1.0)
    for k, best in enumerate([10.0, 8.0, 6.0, 4.0]):
        improving.bests.append(best)
        improving.trials.append(8 * (k + 1))
    for k in range(4):
        flat.bests.append(4.0)
        flat.trials.append(8 * (k + 1))
    assert improving.score() > flat.score() > 0
    assert TaskProgress(1.0).score() == math.inf  # never measured: first in line
    failed = TaskProgress(1.0, bests=[math.inf, math.inf], trials=[8, 16])
    assert failed.score() == 0.0


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="no tasks"):
        TaskScheduler([])
    with pytest.raises(ValueError, match="one positive weight per task"):
        TaskScheduler(_tuners(), weights=[1])
    with pytest.raises(ValueError, match="one positive weight per task"):
        TaskScheduler(_tuners(), weights=[1, 0])
    with pytest.raises(ValueError, match="budget must be positive"):
        TaskScheduler(_tuners()).tune(0, ScaledMeasurer({}))


def test_each_cost_model_learns_from_the_other_tasks_of_the_run() -> None:
    tasks = [create_task("matmul", shape) for shape in ((64, 64, 64), (32, 64, 32))]
    tuners = [XGBTuner(task, seed=0, plan_size=8) for task in tasks]
    measurer = ScaledMeasurer({task.key: 1.0 for task in tasks})
    scheduler = TaskScheduler(tuners)
    scheduler.tune(600, measurer, batch_size=8, max_trials=24, confirm=0)
    assert len(scheduler.records) == sum(t.trial_count for t in tuners) == 48
    for tuner, other in zip(tuners, reversed(tuners)):
        assert tuner.transfer_source is not None
        shared = [r for r in tuner.transfer_source() if r.task.key == other.task.key]
        assert len(shared) == other.trial_count
        assert tuner.model.base_booster is not None  # the base model was fitted on the other task's records
