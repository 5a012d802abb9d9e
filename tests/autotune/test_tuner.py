"""Tuners on a deterministic fake measurer: seeds, no repeats, fallback first, early stopping, failures, resume."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from autotune_fakes import AnalyticMeasurer, analytic_cost

from tcomp.autotune import create_task
from tcomp.autotune.cost_model import RandomModel
from tcomp.autotune.dispatch import apply_history_best
from tcomp.autotune.measure import MeasureResult, MeasureStatus
from tcomp.autotune.record import Record, log_to_file, read_records
from tcomp.autotune.tuner import GATuner, GridSearchTuner, RandomTuner, TunerKind, XGBTuner, create_tuner

FAST_SA = {"parallel_size": 16, "n_iter": 8, "early_stop": 4}


def matmul_task():  # type: ignore[no-untyped-def]
    return create_task("matmul", (256, 256, 256))


def make(kind: TunerKind, seed: int):  # type: ignore[no-untyped-def]
    xgb = kind in (TunerKind.XGB, TunerKind.XGB_KNOB)
    options = {"plan_size": 8, "sa_options": FAST_SA, "num_threads": 1} if xgb else {}
    return create_tuner(kind, matmul_task(), seed=seed, **options)


@pytest.mark.parametrize("kind", list(TunerKind), ids=[k.value for k in TunerKind])
def test_same_seed_same_configs_no_repeats_fallback_first(kind: TunerKind) -> None:
    runs = []
    for _ in range(2):
        measurer = AnalyticMeasurer()
        result = make(kind, 7).tune(24, measurer=measurer, batch_size=6)
        runs.append(measurer.measured)
        assert result.trials == 24
    assert runs[0] == runs[1]
    trials, confirmations = runs[0][:24], runs[0][24:]
    assert len(set(trials)) == len(trials)
    fallback = matmul_task().config_space.fallback.index
    assert trials[0] == fallback
    # the default and the two fastest others, three rounds, interleaved round by round
    assert len(confirmations) == 9 and confirmations[::3] == [fallback] * 3
    assert confirmations[:3] * 3 == confirmations and set(confirmations[1:3]) <= set(trials[1:])


class LuckyOnce(AnalyticMeasurer):
    """Every config's first run of ``lucky`` is 5x too fast (a quiet moment on a busy machine); later runs are
    its true cost."""

    def __init__(self, lucky: set[int]) -> None:
        super().__init__()
        self.lucky = lucky

    def measure(self, inputs):  # type: ignore[no-untyped-def]
        results = super().measure(inputs)
        for i, (inp, result) in enumerate(zip(inputs, results)):
            if inp.config.index in self.lucky:
                self.lucky.discard(inp.config.index)
                results[i] = MeasureResult(MeasureStatus.OK, tuple(c / 5 for c in result.costs))
        return results


def test_a_config_fast_in_one_lucky_run_loses_to_the_default_after_confirmation(tmp_path: Path) -> None:
    task = matmul_task()
    space = task.config_space
    fallback = space.fallback
    slower = next(i for i in range(len(space)) if analytic_cost(space.get(i)) > 1.5 * analytic_cost(fallback))
    log = tmp_path / "log.jsonl"

    class Proposer(GridSearchTuner):  # measures the default and the slower config only
        def _propose(self, count: int) -> list[int]:
            return [slower] if slower not in self.visited else []

    tuner = Proposer(task)
    result = tuner.tune(2, measurer=LuckyOnce({slower}), callbacks=[log_to_file(log)], batch_size=2)
    assert result.best_config is not None and result.best_config.index == fallback.index
    assert result.best_cost == pytest.approx(analytic_cost(fallback))
    with apply_history_best(str(log)) as ctx:
        chosen = ctx.query(task)
    assert chosen is not None and chosen.index == fallback.index  # the log says what the tuner decided


def test_different_seeds_differ() -> None:
    first, second = AnalyticMeasurer(), AnalyticMeasurer()
    make(TunerKind.RANDOM, 1).tune(10, measurer=first)
    make(TunerKind.RANDOM, 2).tune(10, measurer=second)
    assert first.measured != second.measured


def test_best_is_never_worse_than_the_fallback() -> None:
    task = matmul_task()
    result = make(TunerKind.RANDOM, 0).tune(12, measurer=AnalyticMeasurer())
    assert result.best_cost <= analytic_cost(task.config_space.fallback)
    assert result.curve == sorted(result.curve)  # best so far never decreases
    assert len(result.curve) == 12


def test_failures_are_counted_and_never_win() -> None:
    task = matmul_task()
    space = task.config_space
    grid = list(range(10))
    fail = {grid[1]: MeasureStatus.RUN_CRASH, grid[2]: MeasureStatus.WRONG_ANSWER, grid[3]: MeasureStatus.RUN_TIMEOUT}
    tuner = create_tuner(TunerKind.GRID, task)
    result = tuner.tune(11, measurer=AnalyticMeasurer(fail), batch_size=4)
    assert result.statuses[MeasureStatus.RUN_CRASH] == 1 and result.errors == 3
    assert result.best_config is not None and result.best_config.index not in fail
    assert result.best_config.index in grid + [space.fallback.index]


class NoisyDefault(AnalyticMeasurer):
    """The default config's first measurement is 50x too slow (a first-run cost, a load spike); later ones are
    right, and one config is truly 10% faster than the default."""

    def __init__(self, faster: int) -> None:
        super().__init__()
        self.faster = faster

    def measure(self, inputs):  # type: ignore[no-untyped-def]
        results = super().measure(inputs)
        fallback = matmul_task().config_space.fallback
        base = analytic_cost(fallback)
        fixed = []
        for inp, result in zip(inputs, results):
            if inp.config.index == fallback.index:
                first = self.measured.count(fallback.index) == 1 and self.measured[-len(inputs):][0] == fallback.index
                cost = base * (50 if first and len(fixed) == 0 else 1)
                result = MeasureResult(MeasureStatus.OK, (cost,))
            elif inp.config.index == self.faster:
                result = MeasureResult(MeasureStatus.OK, (0.9 * base,))
            else:
                result = MeasureResult(MeasureStatus.OK, (1.5 * base,))
            fixed.append(result)
        return fixed


def test_default_is_measured_again_and_compared_fairly() -> None:
    """A default measured once, badly, made summaries claim speedups of 39x; measured again beside the best, it is
    compared on the same footing: the speedup is the true one, and a config that does not beat it never wins."""
    task = matmul_task()
    grid = create_tuner(TunerKind.GRID, task)
    result = grid.tune(6, measurer=NoisyDefault(faster=3), batch_size=6)
    assert result.best_config is not None and result.best_config.index == 3
    assert result.default_cost / result.best_cost == pytest.approx(1 / 0.9)
    slower = create_tuner(TunerKind.GRID, task).tune(6, measurer=NoisyDefault(faster=-1), batch_size=6)
    assert slower.best_config is not None and slower.best_config.index == task.config_space.fallback.index
    assert slower.best_cost == slower.default_cost == pytest.approx(analytic_cost(task.config_space.fallback))


def test_early_stopping() -> None:
    task = matmul_task()
    tuner = create_tuner(TunerKind.GRID, task)
    result = tuner.tune(200, measurer=AnalyticMeasurer(), early_stopping=10, batch_size=2)
    assert result.trials < 200
    assert tuner.trial_count - tuner.best_trial >= 10


def test_xgb_tuner_beats_random_on_the_analytic_cost() -> None:
    """With the same budget, the model-guided search finds a better config than random search (fixed seeds)."""
    best = {}
    for kind in (TunerKind.XGB, TunerKind.RANDOM):
        scores = []
        for seed in (0, 1):
            tuner = make(kind, seed)
            scores.append(tuner.tune(48, measurer=AnalyticMeasurer(), batch_size=8).best_cost)
        best[kind] = sum(scores) / len(scores)
    assert best[TunerKind.XGB] < best[TunerKind.RANDOM]


def test_xgb_tuner_with_a_fake_model_refits_every_plan() -> None:
    model = RandomModel(0)
    tuner = XGBTuner(matmul_task(), plan_size=8, model=model, sa_options=FAST_SA)
    tuner.tune(40, measurer=AnalyticMeasurer(), batch_size=8)
    assert model.fitted == 5  # after the first 8 results, then after every batch of 8


def test_ga_keeps_unique_children() -> None:
    tuner = GATuner(matmul_task(), seed=3, pop_size=8)
    measurer = AnalyticMeasurer()
    tuner.tune(40, measurer=measurer, batch_size=8, confirm=0)
    assert len(set(measurer.measured)) == 40


def test_tuner_kind_must_be_an_enum() -> None:
    with pytest.raises(TypeError, match="TunerKind"):
        create_tuner("xgb", matmul_task())  # type: ignore[arg-type]


def test_resume_from_records_measures_nothing_twice(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    first = AnalyticMeasurer()
    make(TunerKind.XGB, 0).tune(12, measurer=first, callbacks=[log_to_file(path)], batch_size=4)
    records = read_records(path).records
    assert len(records) == 12 + 3 * 3  # the trials, then the default and the two fastest others 3 more times each
    resumed = make(TunerKind.XGB, 0)
    assert resumed.load_history(records) == 12
    second = AnalyticMeasurer()
    result = resumed.tune(20, measurer=second, batch_size=4, confirm=0)
    assert result.trials == 8 and result.prior_trials == 12
    assert not set(first.measured) & set(second.measured)


def test_killed_tuner_resumes_without_remeasuring(tmp_path: Path) -> None:
    """A tuner process killed with SIGKILL mid-run leaves a readable log; a new run picks it up."""
    path = tmp_path / "log.jsonl"
    script = Path(__file__).with_name("autotune_fakes.py")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    process = subprocess.Popen([sys.executable, str(script), str(path), "1000"], env=env)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and (not path.exists() or path.read_text().count("\n") < 10):
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    log = read_records(path)
    logged = [r.config.index for r in log.records]
    assert len(logged) >= 10 and len(set(logged)) == len(logged)
    tuner = create_tuner(TunerKind.RANDOM, create_task("matmul", (256, 256, 256)), seed=1)
    tuner.load_history(log.records)
    measurer = AnalyticMeasurer()
    result = tuner.tune(len(logged) + 10, measurer=measurer, batch_size=2, confirm=0)
    assert result.trials == 10
    assert not set(logged) & set(measurer.measured)


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited (nobody may reap it here)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_killing_tune_and_its_group_leaves_no_worker(tmp_path: Path) -> None:
    """Workers led their own process groups and outlived a SIGKILL of ``tcomp tune`` (and of its group) for
    minutes, with the resource tracker; now they die with it."""
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "tcomp.cli", "tune", "--op", "matmul", "--shape", "64,64,64", "--trials", "1000",
         "--tuner", "random", "--parallel", "2", "--tuning-records", str(tmp_path / "log.jsonl"),
         "--plot", str(tmp_path / "plot.png")],
        env=env, cwd=tmp_path, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: set[int] = set()
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(workers) < 4:  # builders, the runner and the resource tracker
            workers |= _descendants(process.pid)
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert len(workers) >= 4, f"the tuner did not start its workers: {workers}"
    deadline = time.time() + 5
    while time.time() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.1)
    survivors = [pid for pid in workers if _alive(pid)]
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"{len(survivors)} worker processes outlived the killed tuner"


def _analytic_records(task, indices):  # type: ignore[no-untyped-def]
    space = task.config_space
    return [Record(task, space.get(i), MeasureResult(MeasureStatus.OK, (analytic_cost(space.get(i)),)))
            for i in indices]


def test_transfer_learns_without_measuring_and_plans_the_first_batch() -> None:
    """Records of another matmul (the analytic cost, 96 configs) train the base model; none counts as measured, and
    the first batch comes from the base model's plan: faster configs than a tuner without them starts with."""
    source = create_task("matmul", (128, 128, 128))
    records = _analytic_records(source, source.config_space.sample(np.random.default_rng(5), 96))
    task = matmul_task()
    firsts = {}
    for transferred in (False, True):
        tuner = make(TunerKind.XGB, 0)
        if transferred:
            assert tuner.transfer(records) == 96
        assert tuner.trial_count == 0 and not tuner.visited
        batch = tuner.next_batch(8)
        assert batch[0].index == task.config_space.fallback.index
        firsts[transferred] = statistics.median(1.0 / analytic_cost(config) for config in batch[1:])
    assert firsts[True] > firsts[False], firsts
    assert RandomTuner(task).transfer(records) == 0  # a tuner without a model takes nothing


class CallOrder:
    """A cost model that notes the order of its calls (and knows nothing)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.random = RandomModel(0)

    def fit(self, indices, throughputs) -> None:  # type: ignore[no-untyped-def]
        self.calls.append("fit")

    def fit_transfer(self, records) -> int:  # type: ignore[no-untyped-def]
        self.calls.append("fit_transfer")
        return len(records)

    def predict(self, indices):  # type: ignore[no-untyped-def]
        return self.random.predict(indices)


def test_load_history_learns_the_base_before_fitting_own_records(tmp_path: Path) -> None:
    """The task's own model starts from the base model's margins, so the base must be learnt first."""
    task = matmul_task()
    other = create_task("matmul", (128, 128, 128))
    own = _analytic_records(task, task.config_space.sample(np.random.default_rng(1), 8))
    model = CallOrder()
    tuner = XGBTuner(task, plan_size=8, sa_options=FAST_SA, model=model)
    assert tuner.load_history(_analytic_records(other, [0, 1, 2]) + own) == 8
    assert model.calls == ["fit_transfer", "fit"]
