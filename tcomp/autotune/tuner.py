"""Tuners: propose batches of configs, learn from their measurements, stop when the budget or patience ends.

``Tuner.tune(n_trial, ...)`` loops: ``next_batch`` -> ``Measurer.measure`` -> ``update`` -> callbacks (record
logging, progress). Every tuner measures the template's fallback config (its default schedule) first, so the best
config found is never slower than the default. No config is proposed twice, and ``load_history(records)`` marks the
task's logged configs as measured (resume re-measures none of them and counts them against ``n_trial``) and hands
other tasks' records to the cost model for transfer learning. The same seed proposes the same sequence of configs.

Kinds (``TunerKind``): ``XGB`` (XGBoost ranking model on loop-IR features + parallel simulated annealing,
epsilon-greedy), ``XGB_KNOB`` (the same on knob encodings), ``RANDOM``, ``GRID`` (index order), ``GA`` (a genetic
algorithm over knob digits).
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

from tcomp.autotune.cost_model import CostModel, Objective, XGBoostCostModel
from tcomp.autotune.feature import FeatureKind
from tcomp.autotune.measure import MeasureInput, MeasureOptions, Measurer, MeasureResult, MeasureStatus
from tcomp.autotune.record import Record
from tcomp.autotune.sa import SimulatedAnnealingOptimizer
from tcomp.autotune.space import ConfigEntity
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
    """Base class: bookkeeping, the tuning loop; subclasses implement ``_propose`` (and may observe results)."""

    def __init__(self, task: Task, seed: int = 0) -> None:
        self.task = task
        self.space = task.config_space
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
        if index == self.space.fallback.index:
            self.default_cost = result.cost
        if index >= 0:
            self.visited.add(index)
            self._observe(index, result)

    def update(self, inputs: Sequence[MeasureInput], results: Sequence[MeasureResult]) -> None:
        for inp, result in zip(inputs, results):
            index = inp.config.index if inp.config.index >= 0 else self.space.index_of(inp.config)
            self._account(inp.config, -1 if index is None else index, result)
        self._after_batch()

    def load_history(self, records: Sequence[Record]) -> int:
        """Take in logged measurements: this task's mark their configs measured (returns how many); the rest go
        to ``_transfer`` for transfer learning."""
        own = 0
        others: list[Record] = []
        for record in records:
            if record.task.key != self.task.key:
                others.append(record)
                continue
            index = self.space.index_of(record.config)
            if index is None or index in self.visited:
                continue
            self._account(self.space.get(index), index, record.result)
            own += 1
        if own:
            self._after_batch()
        if others:
            self._transfer(others)
        return own

    def _transfer(self, records: Sequence[Record]) -> None:
        """Records of other tasks (ignored unless the tuner has a model)."""

    # -- the loop ------------------------------------------------------------------------------------------------------
    def tune(self, n_trial: int, measure_option: MeasureOptions | None = None, measurer: Measurer | None = None,
             early_stopping: int | None = None, callbacks: Sequence[Callback] = (),
             batch_size: int | None = None) -> TuneResult:
        """Measure until ``n_trial`` trials exist for the task (logged ones loaded with ``load_history`` count),
        the space is exhausted, or ``early_stopping`` trials pass without a better config."""
        start = time.perf_counter()
        prior = self.trial_count
        own_measurer = measurer is None
        active = measurer or Measurer(measure_option)
        batch = batch_size or max(8, 2 * (active.options.n_parallel or 2))
        try:
            while self.trial_count < n_trial and self.has_next():
                configs = self.next_batch(min(batch, n_trial - self.trial_count))
                if not configs:
                    break
                inputs = [MeasureInput(self.task, config) for config in configs]
                results = active.measure(inputs)
                self.update(inputs, results)
                for callback in callbacks:
                    callback(self, inputs, results)
                if early_stopping is not None and self.trial_count - self.best_trial >= early_stopping:
                    break
        finally:
            if own_measurer:
                active.close()
        return TuneResult(self.task, self.best_config, self.best_cost, self.trial_count - prior, prior,
                          dict(self.statuses), time.perf_counter() - start, list(self.curve), self.default_cost)


class RandomTuner(Tuner):
    def _propose(self, count: int) -> list[int]:
        return self.space.sample(self.rng, count, exclude=self.visited)


class GridSearchTuner(Tuner):
    def __init__(self, task: Task, seed: int = 0) -> None:
        super().__init__(task, seed)
        self.counter = 0

    def _propose(self, count: int) -> list[int]:
        chosen: list[int] = []
        while len(chosen) < count and self.counter < len(self.space):
            if self.counter not in self.visited:
                chosen.append(self.counter)
            self.counter += 1
        return chosen


class GATuner(Tuner):
    """A genetic algorithm over knob digits: each generation keeps ``elite`` best configs, picks parents with
    probability proportional to throughput, crosses them at a random knob and mutates each knob with
    ``mutation_prob``."""

    def __init__(self, task: Task, seed: int = 0, pop_size: int = 32, elite: int = 4,
                 mutation_prob: float = 0.1) -> None:
        super().__init__(task, seed)
        self.pop_size = pop_size
        self.elite = elite
        self.mutation_prob = mutation_prob
        self.scores: dict[int, float] = {}
        self.queue: list[int] = []

    def _observe(self, index: int, result: MeasureResult) -> None:
        self.scores[index] = self.throughput(result)

    def _propose(self, count: int) -> list[int]:
        chosen: list[int] = []
        attempts = 0
        while len(chosen) < count and self.has_next() and attempts < 8:
            if not self.queue:
                self.queue = self._generation()
                attempts += 1
            while self.queue and len(chosen) < count:
                index = self.queue.pop(0)
                if index not in self.visited and index not in chosen:
                    chosen.append(index)
        if len(chosen) < count:
            chosen += self.space.sample(self.rng, count - len(chosen), exclude=self.visited | set(chosen))
        return chosen

    def _generation(self) -> list[int]:
        scored = [(score, index) for index, score in self.scores.items()]
        if len(scored) < 2:
            return self.space.sample(self.rng, self.pop_size, exclude=self.visited)
        scored.sort(reverse=True)
        parents = [index for _, index in scored[: max(self.pop_size, self.elite)]]
        weights = np.asarray([max(score, 0.0) for score, _ in scored[: len(parents)]]) + 1e-9
        weights = weights / weights.sum()
        children: list[int] = []
        dims = self.space.dims
        for _ in range(self.pop_size * 4):
            if len(children) >= self.pop_size:
                break
            a, b = self.rng.choice(len(parents), size=2, p=weights)
            left, right = self.space.digits(parents[a]), self.space.digits(parents[b])
            point = int(self.rng.integers(len(dims)))
            genes = left[:point] + right[point:]
            for k, size in enumerate(dims):
                if size > 1 and self.rng.random() < self.mutation_prob:
                    genes[k] = int(self.rng.integers(size))
            child = self.space.index_from_digits(genes)
            if child not in self.visited and child not in children:
                children.append(child)
        return children


class XGBTuner(Tuner):
    """Model-based tuning: after the first ``first_fit`` results and then every ``plan_size`` results, refit the
    cost model and let simulated annealing plan the ``plan_size`` best unmeasured configs (a quarter of its chains
    restarted from the best configs measured so far); proposals come from the plan, except that with probability
    ``epsilon`` a random config is explored instead."""

    def __init__(self, task: Task, seed: int = 0, plan_size: int = 32, first_fit: int | None = None,
                 feature_kind: FeatureKind = FeatureKind.LOOP_IR, objective: Objective = Objective.RANK,
                 epsilon: float = 0.05, model: CostModel | None = None, sa_options: dict[str, Any] | None = None,
                 num_threads: int | None = 1) -> None:
        super().__init__(task, seed)
        self.plan_size = plan_size
        self.epsilon = epsilon
        self.model: CostModel = model or XGBoostCostModel(task, feature_kind, objective, seed=seed,
                                                          num_threads=num_threads)
        options = {"parallel_size": 2 * plan_size, "n_iter": 60, "early_stop": 15, **(sa_options or {})}
        self.optimizer = SimulatedAnnealingOptimizer(self.space, self.rng, **options)
        self.indices: list[int] = []
        self.throughputs: list[float] = []
        self.plan: list[int] = []
        self.next_fit = first_fit if first_fit is not None else max(4, plan_size // 2)
        self.fit_time = 0.0

    def _observe(self, index: int, result: MeasureResult) -> None:
        self.indices.append(index)
        self.throughputs.append(self.throughput(result))

    def _after_batch(self) -> None:
        if len(self.indices) >= self.next_fit:
            self.refit()
            self.next_fit = len(self.indices) + self.plan_size

    def refit(self) -> None:
        start = time.perf_counter()
        self.model.fit(self.indices, self.throughputs)
        ranked = sorted(range(len(self.indices)), key=lambda k: -self.throughputs[k])
        self.optimizer.reseed([self.indices[k] for k in ranked if self.throughputs[k] > 0])
        self.plan = self.optimizer.find_maximums(self.model.predict, self.plan_size, self.visited)
        self.fit_time += time.perf_counter() - start

    def _propose(self, count: int) -> list[int]:
        chosen: list[int] = []
        while len(chosen) < count and len(self.visited) + len(chosen) < len(self.space):
            explore = not self.plan or self.rng.random() < self.epsilon
            if explore:
                sample = self.space.sample(self.rng, 1, exclude=self.visited | set(chosen))
                if not sample:
                    break
                chosen.append(sample[0])
                continue
            index = self.plan.pop(0)
            if index not in self.visited and index not in chosen:
                chosen.append(index)
        return chosen

    def _transfer(self, records: Sequence[Record]) -> None:
        fit_transfer = getattr(self.model, "fit_transfer", None)
        if callable(fit_transfer):
            fit_transfer(records)


def create_tuner(kind: TunerKind, task: Task, seed: int = 0, **options: Any) -> Tuner:
    if not isinstance(kind, TunerKind):
        raise TypeError(f"kind must be a TunerKind, got {kind!r} (TunerKind('{kind}') converts a name)")
    if kind is TunerKind.XGB:
        return XGBTuner(task, seed, **options)
    if kind is TunerKind.XGB_KNOB:
        return XGBTuner(task, seed, feature_kind=FeatureKind.KNOB, **options)
    if kind is TunerKind.RANDOM:
        return RandomTuner(task, seed)
    if kind is TunerKind.GRID:
        return GridSearchTuner(task, seed)
    return GATuner(task, seed, **options)
