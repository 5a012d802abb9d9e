"""The tuning loop and its bookkeeping: ``Tuner`` (subclasses propose configs), ``TuneResult``, ``TunerKind``.

``Tuner.tune(n_trial, ...)`` loops: ``next_batch`` -> ``Measurer.measure`` -> ``update`` -> callbacks (record
logging, progress); ``step`` is one batch of it (a task scheduler interleaves tasks with it). Every tuner measures
the template's fallback config (its default schedule) first, so the best config found is never slower than the
default. At the end (``confirm``), the default and the two fastest other configs are measured ``confirm`` more
times each, interleaved round by round in one batch, and each one's cost becomes the lower median of all its
measurements: the default is compared with the best on the same footing (the same number of measurements, under
the same load), a config that looked fastest after one lucky run (on a busy machine, the fastest of hundreds of
noisy single runs usually is one) falls back to its typical cost, and the default stays the best when no other
beats it. These measurements are logged like any other (they are not trials), and ``ApplyHistoryBest`` reads a
log the same way (``record.best_by_task``). No config is proposed twice,
and ``load_history(records)`` marks the task's logged configs as measured (resume re-measures none of them and
counts them against ``n_trial``) and hands other tasks' records to ``_transfer`` (for a model-based tuner's
transfer learning); ``transfer(records)`` hands records of any task to it and marks none measured (records of
other runs, which are learnt from but not trusted as this run's measurements).
"""

from __future__ import annotations

import collections
import enum
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tcomp.autotune.measure import MeasureInput, MeasureOptions, MeasureResult, MeasureStatus
from tcomp.autotune.measurer import Measurer
from tcomp.autotune.record import Record, confirmed_choice, typical_cost
from tcomp.autotune.space import ConfigEntity, ConfigSpace
from tcomp.autotune.task import Task

Callback = Callable[["Tuner", Sequence[MeasureInput], Sequence[MeasureResult]], None]


class TunerKind(enum.Enum):
    XGB = "xgb"
    XGB_KNOB = "xgb_knob"
    RANDOM = "random"
    GRID = "grid"
    GA = "ga"


@dataclass
class TuneResult:
    """The outcome of ``tune``: the best config (the fallback's measurement included), trial counts, statuses, and
    ``curve``: best GFLOP/s so far after each trial of this run (resumed trials come first)."""

    task: Task
    best_config: ConfigEntity | None
    best_cost: float
    trials: int
    prior_trials: int
    statuses: dict[MeasureStatus, int]
    wall_time: float
    curve: list[float] = field(default_factory=list)
    default_cost: float = math.inf
    quality: list[Any] = field(default_factory=list)  # ModelQuality after each refit (model-based tuners)

    @property
    def best_gflops(self) -> float:
        return _gflops(self.task, self.best_cost)

    @property
    def default_gflops(self) -> float:
        """GFLOP/s of the fallback config (the default schedule), 0 if it failed or was not measured."""
        return _gflops(self.task, self.default_cost)

    @property
    def errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status is not MeasureStatus.OK)


def _gflops(task: Task, cost: float) -> float:
    return task.flop / cost / 1e9 if math.isfinite(cost) and cost > 0 else 0.0


class Tuner:
    """Base class: bookkeeping, the tuning loop; subclasses implement ``_propose`` (and may observe results).
    ``space``: the configs to search, the task's whole space by default, or a part of it (``ConfigSubset``)."""

    def __init__(self, task: Task, seed: int = 0, space: ConfigSpace | None = None) -> None:
        self.task = task
        self.space = space if space is not None else task.config_space
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.visited: set[int] = set()
        self.best_cost = math.inf
        self.best_config: ConfigEntity | None = None
        self.best_trial = 0
        self.trial_count = 0
        self.statuses: collections.Counter[MeasureStatus] = collections.Counter()
        self.curve: list[float] = []
        self.default_cost = math.inf
        self.costs: dict[int, list[float]] = {}  # every successful measurement of each config

    # -- proposal ------------------------------------------------------------------------------------------------------
    def _propose(self, count: int) -> list[int]:
        raise NotImplementedError

    def has_next(self) -> bool:
        return len(self.visited) < len(self.space)

    def next_batch(self, batch_size: int) -> list[ConfigEntity]:
        """Up to ``batch_size`` configs never proposed before; the fallback config comes first."""
        chosen: list[int] = []
        fallback = self.space.fallback.index
        if fallback not in self.visited:
            chosen.append(fallback)
            self.visited.add(fallback)
        if batch_size > len(chosen):
            for index in self._propose(batch_size - len(chosen)):
                if index not in self.visited and len(chosen) < batch_size:
                    chosen.append(index)
                    self.visited.add(index)
        return [self.space.get(i) for i in chosen]

    # -- learning ------------------------------------------------------------------------------------------------------
    def _observe(self, index: int, result: MeasureResult) -> None:
        """A measurement of config ``index`` arrived (subclasses learn from it)."""

    def _after_batch(self) -> None:
        """Every result of a batch was observed."""

    def throughput(self, result: MeasureResult) -> float:
        return self.task.flop / result.cost / 1e9 if result.ok and result.cost > 0 else 0.0

    def _account(self, config: ConfigEntity, index: int, result: MeasureResult) -> None:
        self.trial_count += 1
        self.statuses[result.status] += 1
        if result.ok and result.cost < self.best_cost:
            self.best_cost = result.cost
            self.best_config = config
            self.best_trial = self.trial_count
        self.curve.append(_gflops(self.task, self.best_cost))
        self._note_cost(index, result)
        if index >= 0:
            self.visited.add(index)
            self._observe(index, result)

    def _note_cost(self, index: int, result: MeasureResult) -> None:
        if result.ok and index >= 0:
            self.costs.setdefault(index, []).append(result.cost)
        if index == self.space.fallback.index and result.ok:
            self.default_cost = min(self.default_cost, result.cost)

    def update(self, inputs: Sequence[MeasureInput], results: Sequence[MeasureResult]) -> None:
        for inp, result in zip(inputs, results):
            index = inp.config.index if inp.config.index >= 0 else self.space.index_of(inp.config)
            self._account(inp.config, -1 if index is None else index, result)
        self._after_batch()

    def load_history(self, records: Sequence[Record]) -> int:
        """Take in logged measurements: this task's mark their configs measured (returns how many); the rest go
        to ``_transfer`` for transfer learning."""
        others = [record for record in records if record.task.key != self.task.key]
        if others:  # first: a model fitted on this task's records below starts from the base they give
            self._transfer(others)
        own = 0
        for record in records:
            if record.task.key != self.task.key:
                continue
            index = self.space.index_of(record.config)
            if index is not None and index in self.visited:
                self._note_cost(index, record.result)  # a config measured again (the default, the best)
                continue
            if index is None:
                continue
            self._account(self.space.get(index), index, record.result)
            own += 1
        if own:
            self._after_batch()
        self._decide()
        return own

    def transfer(self, records: Sequence[Record]) -> int:
        """Learn from ``records`` (of any task, this one's included) without counting any as measured: records of
        earlier runs, other models or other machines, which a model-based tuner's cost model starts from (its
        base model) before its first batch. Returns how many records the model took (0 for tuners without one)."""
        return self._transfer(records)

    def _transfer(self, records: Sequence[Record]) -> int:
        """Records to learn from (ignored unless the tuner has a model); returns how many were taken."""
        return 0

    def _decide(self) -> None:
        """Choose the best config as the records will (``record.best_by_task``): where some configs were measured
        more than once (confirmed), only those compete, each by the lower median of its measurements
        (``typical_cost``); the default wins ties and its cost becomes its typical cost too."""
        if all(len(costs) < 2 for costs in self.costs.values()):
            return
        fallback = self.space.fallback.index
        index = confirmed_choice(self.costs, prefer=fallback)
        assert index is not None
        self.best_cost = typical_cost(self.costs[index])
        self.best_config = self.space.get(index)
        if len(self.costs.get(fallback, ())) > 1:
            self.default_cost = typical_cost(self.costs[fallback])

    def confirm(self, measurer: Measurer, times: int, callbacks: Sequence[Callback] = (), top: int = 2) -> None:
        """Measure the default and the ``top`` fastest other configs ``times`` more times each, interleaved round
        by round (so each sees the same load), then ``_decide``: a config found fast by one lucky run does not
        survive its typical cost (see the module docstring)."""
        fallback = self.space.fallback
        if times < 1 or self.best_config is None:
            return
        ranked = sorted((min(costs), index) for index, costs in self.costs.items() if index != fallback.index)
        configs = [fallback] + [self.space.get(index) for _, index in ranked[:max(0, top)]]
        inputs = [MeasureInput(self.task, config) for _ in range(times) for config in configs]
        results = measurer.measure(inputs)
        for inp, result in zip(inputs, results):
            self._note_cost(inp.config.index, result)
        self._decide()
        for callback in callbacks:
            callback(self, inputs, results)

    # -- the loop ------------------------------------------------------------------------------------------------------
    def tune(self, n_trial: int, measure_option: MeasureOptions | None = None, measurer: Measurer | None = None,
             early_stopping: int | None = None, callbacks: Sequence[Callback] = (),
             batch_size: int | None = None, confirm: int = 3) -> TuneResult:
        """Measure until ``n_trial`` trials exist for the task (logged ones loaded with ``load_history`` count),
        the space is exhausted, or ``early_stopping`` trials pass without a better config; then ``confirm`` the
        best against the default (``confirm=0`` skips it)."""
        start = time.perf_counter()
        prior = self.trial_count
        own_measurer = measurer is None
        active = measurer or Measurer(measure_option)
        batch = batch_size or max(8, 2 * (active.options.n_parallel or 2))
        try:
            while self.trial_count < n_trial and self.has_next():
                if not self.step(active, min(batch, n_trial - self.trial_count), callbacks):
                    break
                if early_stopping is not None and self.trial_count - self.best_trial >= early_stopping:
                    break
            if self.trial_count > prior:
                self.confirm(active, confirm, callbacks)
        finally:
            if own_measurer:
                active.close()
        return self.result(prior, time.perf_counter() - start)

    def step(self, measurer: Measurer, batch_size: int, callbacks: Sequence[Callback] = ()) -> int:
        """Measure one batch of up to ``batch_size`` new configs and learn from it; returns how many (0: the space
        is exhausted). A task scheduler interleaves tasks with this."""
        configs = self.next_batch(batch_size)
        if not configs:
            return 0
        inputs = [MeasureInput(self.task, config) for config in configs]
        results = measurer.measure(inputs)
        self.update(inputs, results)
        for callback in callbacks:
            callback(self, inputs, results)
        return len(configs)

    def result(self, prior: int, wall_time: float) -> TuneResult:
        """The ``TuneResult`` so far (``prior``: trials that came from records)."""
        return TuneResult(self.task, self.best_config, self.best_cost, self.trial_count - prior, prior,
                          dict(self.statuses), wall_time, list(self.curve), self.default_cost,
                          list(getattr(self, "quality", [])))
