"""Tuning curves read from a records file: per task, the best GFLOP/s after each trial; for the whole run, the
estimated latency of the tuned operators against tuning time.

The estimate for a model is the sum, over its tasks, of the best kernel time measured so far times the number of the
model's operators that run the task (tasks without a successful measurement are left out); a task not tuned yet
counts with its default schedule's time (every task's first record measures its default schedule), so the curve
starts at the untuned model. Operators that are not tuned (elementwise, pooling, layout) are not counted: the curve
shows what tuning gained, not the model's full latency. Tuning time runs along the records' timestamps; a pause
longer than ``MAX_GAP`` seconds (a resumed run) counts as ``MAX_GAP``.

``write_csv`` writes the same data as CSV, for plotting elsewhere.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tcomp.autotune.record import Record
from tcomp.autotune.task import Task

MAX_GAP = 60.0


@dataclass
class TaskCurve:
    """One task's trials, in the order they were measured."""

    task: Task
    weight: int = 1
    positions: list[int] = field(default_factory=list)  # each trial's place among all trials of the run
    elapsed: list[float] = field(default_factory=list)  # seconds of tuning time when each trial finished
    gflops: list[float] = field(default_factory=list)  # 0 for a failed trial
    best_gflops: list[float] = field(default_factory=list)
    costs: list[float] = field(default_factory=list)  # seconds per call, inf for a failed trial

    @property
    def default_gflops(self) -> float:
        return self.gflops[0] if self.gflops else 0.0


@dataclass
class TuningCurves:
    tasks: list[TaskCurve]
    elapsed: list[float]  # tuning time after each trial of the run, all tasks together
    latency: list[float]  # estimated seconds of the tuned operators at that time (tasks with a successful time)


def _tuning_time(records: Sequence[Record]) -> list[float]:
    elapsed, total = [], 0.0
    for k, record in enumerate(records):
        if k > 0:
            total += min(MAX_GAP, max(0.0, record.result.timestamp - records[k - 1].result.timestamp))
        elapsed.append(total)
    return elapsed


def _trials(records: Sequence[Record]) -> list[Record]:
    """The first record of each config of each task: later ones measure it again (the tuner's comparison of the
    best config with the default) and are no trials."""
    seen: set[tuple[str, str]] = set()
    trials = []
    for record in records:
        key = (record.task.key, repr(record.config.to_json()["knobs"]))
        if key not in seen:
            seen.add(key)
            trials.append(record)
    return trials


def _default_costs(records: Sequence[Record]) -> dict[str, float]:
    """Each task's first successful time (its default schedule, measured first; inf when none succeeded)."""
    first: dict[str, float] = {}
    for record in records:
        if record.task.key not in first or not math.isfinite(first[record.task.key]):
            first[record.task.key] = record.result.cost
    return first


def tuning_curves(records: Sequence[Record], tasks: Sequence[Task], weights: Mapping[str, int] | None = None,
                  ) -> TuningCurves:
    """The curves of ``tasks`` (by key) from ``records``; ``weights``: operators per task key (default 1)."""
    wanted = {task.key: TaskCurve(task, (weights or {}).get(task.key, 1)) for task in tasks}
    mine = _trials(sorted((r for r in records if r.task.key in wanted), key=lambda r: r.result.timestamp))
    times = _tuning_time(mine)
    best = _default_costs(mine)
    elapsed, latency = [], []
    for position, (record, when) in enumerate(zip(mine, times)):
        curve = wanted[record.task.key]
        curve.positions.append(position)
        cost = record.result.cost
        gflops = record.task.flop / cost / 1e9 if math.isfinite(cost) and cost > 0 else 0.0
        curve.elapsed.append(when)
        curve.costs.append(cost)
        curve.gflops.append(gflops)
        curve.best_gflops.append(max(gflops, curve.best_gflops[-1] if curve.best_gflops else 0.0))
        best[record.task.key] = min(cost, best[record.task.key])
        elapsed.append(when)
        latency.append(sum(best[key] * c.weight for key, c in wanted.items() if math.isfinite(best.get(key, math.inf))))
    return TuningCurves(list(wanted.values()), elapsed, latency)


def write_csv(path: str | os.PathLike[str], curves: TuningCurves) -> None:
    """One row per trial: task, its operator count, trial number, tuning time, GFLOP/s, best so far, and the
    estimated latency of the tuned operators at that time."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["task", "operators", "trial", "tuning_seconds", "gflops", "best_gflops",
                         "estimated_latency_ms"])
        for curve in curves.tasks:
            for k, when in enumerate(curve.elapsed):
                estimate = curves.latency[curve.positions[k]]
                writer.writerow([curve.task.label, curve.weight, k + 1, f"{when:.3f}", f"{curve.gflops[k]:.4f}",
                                 f"{curve.best_gflops[k]:.4f}", f"{estimate * 1e3:.6f}"])
