"""Spending a time budget over a model's tasks where the model's latency falls most (``tcomp tune --budget``).

The model's latency is estimated as ``sum(w_i * best_i)``: ``best_i`` the best time measured for task ``i`` so far,
``w_i`` how many operators of the model run it. Each round the scheduler gives one batch to the task whose score,
the fall of that sum expected per trial spent on it, is highest; this is the gradient of Ansor's task scheduler
without its similarity term:

    score_i    = w_i * (ALPHA * backward_i + (1 - ALPHA) * forward_i)
    backward_i = (best_i before its last WINDOW batches - best_i now) / trials in them   what they gained
    forward_i  = best_i / trials_i                                                       what a trial may gain

``forward_i`` keeps a heavy task that has stopped improving in play (its latency is large and few trials went to
it) while ``backward_i`` follows the tasks that are improving now. Round 0 gives every task one batch (the default
config comes first), so each has a measured latency, even where that takes longer than the budget. Then tuning
stops when the budget is spent (checked before each batch with the time the task's last batch took), every space
is exhausted, or every task reached ``max_trials``; then each task's best is confirmed against its default
(``Tuner.confirm``), which the budget keeps a tenth of itself for.

The tasks learn from each other: every measurement of the run is kept (``records``), and each task's XGBoost cost
model fits its base on the other tasks' records (``XGBTuner.transfer_source``). Replayed on the four product tasks
of a BERT-base tuning (200 measured configs each, 5 seeds), trials to 95% of the best: 12 -> 5 and 65 -> 36 on the
two tasks whose default was not already within 95%.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from tcomp.autotune.measure import MeasureInput, MeasureResult
from tcomp.autotune.measurer import Measurer
from tcomp.autotune.record import Record
from tcomp.autotune.tuner import XGBTuner
from tcomp.autotune.tuner_base import Callback, Tuner, TuneResult

ALPHA = 0.2  # the weight of the backward (recent improvement) term, as in Ansor
WINDOW = 3  # batches of the task back for the backward term
CONFIRM_SHARE = 0.1  # the part of the budget kept for confirming the best configs against the defaults


@dataclass
class TaskProgress:
    """What the scheduler knows of one task: its weight, the best cost after each of its batches and their times."""

    weight: float
    bests: list[float] = field(default_factory=list)  # best cost (s) after each batch, inf while none succeeded
    trials: list[int] = field(default_factory=list)  # the tuner's trial count after each batch
    batch_seconds: float = 0.0  # wall time of its last batch
    seconds: float = 0.0  # wall time of all its batches

    def score(self) -> float:
        """The expected fall of ``weight * best`` per trial (see the module docstring); inf before any success."""
        if not self.bests or not math.isfinite(self.bests[-1]):
            return math.inf if len(self.bests) < 2 else 0.0  # a task that failed twice is left alone
        best, spent = self.bests[-1], max(1, self.trials[-1])
        back = len(self.bests) - 1 - WINDOW
        earlier = self.bests[back] if back >= 0 else self.bests[0]
        span = self.trials[-1] - (self.trials[back] if back >= 0 else self.trials[0])
        backward = (earlier - best) / span if span > 0 and math.isfinite(earlier) else 0.0
        forward = best / spent
        return self.weight * (ALPHA * backward + (1.0 - ALPHA) * forward)


class TaskScheduler:
    """Interleaves ``tuners`` (one per task, ``weights[i]`` operators of the model run task ``i``) batch by batch
    within a time budget; see the module docstring."""

    def __init__(self, tuners: Sequence[Tuner], weights: Sequence[float] | None = None) -> None:
        if not tuners:
            raise ValueError("TaskScheduler: no tasks to tune")
        weights = list(weights) if weights is not None else [1.0] * len(tuners)
        if len(weights) != len(tuners) or any(not w > 0 for w in weights):
            raise ValueError(f"TaskScheduler: need one positive weight per task, got {weights}")
        self.tuners = list(tuners)
        self.progress = [TaskProgress(float(w)) for w in weights]
        self.order: list[int] = []  # which task each batch went to
        # every measurement of the run: each task's cost model fits its base on the other tasks' records
        self.records: list[Record] = []
        for tuner in self.tuners:
            if isinstance(tuner, XGBTuner) and tuner.transfer_source is None:
                tuner.transfer_source = self._shared_records

    def _shared_records(self) -> list[Record]:
        return self.records

    def _keep(self, tuner: Tuner, inputs: Sequence[MeasureInput], results: Sequence[MeasureResult]) -> None:
        self.records.extend(Record.of(i, r) for i, r in zip(inputs, results))

    def estimated_latency(self) -> float:
        """``sum(w_i * best_i)`` over the tasks measured so far (seconds)."""
        return sum(p.weight * t.best_cost for p, t in zip(self.progress, self.tuners) if math.isfinite(t.best_cost))

    def _open(self, k: int, max_trials: int | None) -> bool:
        tuner = self.tuners[k]
        return tuner.has_next() and (max_trials is None or tuner.trial_count < max_trials)

    def next_task(self, max_trials: int | None = None) -> int | None:
        """The task to give the next batch: any task not measured yet, else the highest score."""
        open_tasks = [k for k in range(len(self.tuners)) if self._open(k, max_trials)]
        if not open_tasks:
            return None
        fresh = [k for k in open_tasks if not self.progress[k].bests]
        if fresh:
            return fresh[0]
        return max(open_tasks, key=lambda k: (self.progress[k].score(), -k))

    def tune(self, budget_s: float, measurer: Measurer, batch_size: int = 8, max_trials: int | None = None,
             callbacks: Sequence[Callback] = (), confirm: int = 3) -> list[TuneResult]:
        """Tune until ``budget_s`` seconds are spent (see the module docstring); one ``TuneResult`` per task, in
        the tasks' order."""
        if not budget_s > 0:
            raise ValueError(f"TaskScheduler: the budget must be positive, got {budget_s} s")
        start = time.perf_counter()
        priors = [t.trial_count for t in self.tuners]
        stop_at = budget_s * (1.0 - CONFIRM_SHARE)
        while True:
            k = self.next_task(max_trials)
            if k is None:
                break
            tuner, progress = self.tuners[k], self.progress[k]
            elapsed = time.perf_counter() - start
            if progress.bests and elapsed + progress.batch_seconds > stop_at:
                break  # (round 0 runs whatever the budget: every task gets its default measured)
            count = batch_size if max_trials is None else min(batch_size, max_trials - tuner.trial_count)
            began = time.perf_counter()
            tuner.step(measurer, count, [self._keep, *callbacks])  # an exhausted space ends the task (has_next)
            progress.batch_seconds = time.perf_counter() - began
            progress.seconds += progress.batch_seconds
            self.order.append(k)
            progress.bests.append(tuner.best_cost)
            progress.trials.append(tuner.trial_count)
        results = []
        for tuner, progress, prior in zip(self.tuners, self.progress, priors):
            if tuner.trial_count > prior:
                began = time.perf_counter()
                tuner.confirm(measurer, confirm, callbacks)
                progress.seconds += time.perf_counter() - began
            results.append(tuner.result(prior, progress.seconds))
        return results
