"""Tuners: propose batches of configs, learn from their measurements, stop when the budget or patience ends.

The loop, the fair comparison with the default config and resuming from records are ``tuner_base.Tuner``'s. The
same seed proposes the same sequence of configs.

Kinds (``TunerKind``): ``XGB`` (XGBoost ranking model on loop-IR features + parallel simulated annealing,
epsilon-greedy), ``XGB_KNOB`` (the same on knob encodings), ``RANDOM``, ``GRID`` (index order), ``GA`` (a genetic
algorithm over knob digits).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tcomp.autotune.cost_model import CostModel, Objective, XGBoostCostModel
from tcomp.autotune.feature import FeatureExtractor, FeatureKind
from tcomp.autotune.measure import MeasureResult
from tcomp.autotune.model_quality import ModelQuality
from tcomp.autotune.model_quality import check as check_model
from tcomp.autotune.prior import prior_records
from tcomp.autotune.record import Record
from tcomp.autotune.sa import SimulatedAnnealingOptimizer
from tcomp.autotune.space import ConfigSpace
from tcomp.autotune.task import Task
from tcomp.autotune.tuner_base import Callback, Tuner, TuneResult, TunerKind

__all__ = ["Callback", "GATuner", "GridSearchTuner", "RandomTuner", "TuneResult", "Tuner", "TunerKind", "XGBTuner",
           "create_tuner"]

_LOG = logging.getLogger("tcomp.autotune")


class RandomTuner(Tuner):
    def _propose(self, count: int) -> list[int]:
        return self.space.sample(self.rng, count, exclude=self.visited)


class GridSearchTuner(Tuner):
    def __init__(self, task: Task, seed: int = 0, space: ConfigSpace | None = None) -> None:
        super().__init__(task, seed, space)
        self.counter = 0

    def _propose(self, count: int) -> list[int]:
        chosen: list[int] = []
        order = self.space.indices()
        while len(chosen) < count and self.counter < len(order):
            if order[self.counter] not in self.visited:
                chosen.append(order[self.counter])
            self.counter += 1
        return chosen


class GATuner(Tuner):
    """A genetic algorithm over knob digits: each generation keeps ``elite`` best configs, picks parents with
    probability proportional to throughput, crosses them at a random knob and mutates each knob with
    ``mutation_prob``."""

    def __init__(self, task: Task, seed: int = 0, pop_size: int = 32, elite: int = 4,
                 mutation_prob: float = 0.1, space: ConfigSpace | None = None) -> None:
        super().__init__(task, seed, space)
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
            if child not in self.visited and child not in children and self.space.contains(child):
                children.append(child)
        return children


class XGBTuner(Tuner):
    """Model-based tuning: after the first ``first_fit`` results and then every ``refit_every`` results (8 by
    default: every batch of 8), refit the cost model and let simulated annealing plan the ``2 * plan_size`` best
    unmeasured configs (a quarter of its chains restarted from the best configs measured so far). Each batch then
    takes ``local_share`` of its configs from the neighbours of the ``local_top`` fastest configs measured (one
    knob changed), best predicted first, and the rest from the plan, except that with probability ``epsilon`` a
    config is explored instead. Explored configs, and the rest of the first batch, are ``diverse``: among a few
    random ones, the one whose knob values were measured least. The first batch, before any fit, takes its
    ``local_share`` from the neighbours of the default config (the template's own choice, usually good; a knob at a
    time); replayed over 20 seeds (the median trials to 95% of the best, the mean in brackets), that took the
    3x3 conv from 29 (33.5) to 24 (21.1), matmul 256^3 from 16 (15.7) to 14.5 (15.1) and the batch-1 dense from
    10.5 (11.8) to 11 (10.8); random search: 51, 18 and 16.

    Replayed on measured tables (``bench/tune_replay.py``, 20 seeds of 64 trials in batches of 8), the median
    trials to reach 95% of the table's best went from 57.5 to 34 on the ResNet-50 3x3 conv (random search: 64.5)
    and from 32.5 to 22.5 on matmul 256^3 (random: 60.5) with these three changes together: refitting after every
    batch rather than every 32 results; a diverse first batch; half of each batch from the model's picks among
    the best configs' neighbours, where a config in the fast region was measured in one knob's reach.

    - The search walks valid configs only (``FeatureExtractor.valid``): a config the template cannot build is
      outside the space it sees, never proposed nor measured (``invalid`` counts those it met).
    - Batches are diverse: a config whose program is the same as one measured or chosen already (equal features:
      knobs the schedule ignores) is never measured (``duplicates`` counts them), and within one batch no two
      configs differ in a single knob while the plan has others (those wait for a later batch).
    - The search costs little next to measuring: each refit scores at most ``16 * plan_size`` distinct configs
      (``plan_size`` annealing chains; a space that small is scored whole), each once. On matmul 256^3 (60,480
      configs), a refit lowered and scored about 3,300 configs in 30-70 s before this cap, about 520 in 10 s with
      it, and the best config found in 64 trials of a fake measurer was as good (median over 5 seeds).
    - Before each refit, the model ranks the measurements it has not been fitted on yet; Spearman's correlation
      and top-k recall against the measured throughputs go to ``quality`` and to the log.
    - The prior (``prior=True``, ``tcomp.autotune.prior``): a tuner with no records of its own and none
      transferred learns its base model from measured tables of other tasks of its template shipped with tcomp.
      A first batch planned from a base model (the prior's or transferred records') takes the base model's picks
      first and the default's neighbours after them (``local_share`` of the batch), in case the base misleads.
      Replayed (20 seeds, median trials to 95% of the best; ``bench/tune_replay.py``): matmul 256^3 14.5 -> 4,
      dense 1x1000x2048 11 -> 2, conv 3x3 24 -> 3 (random search 18.5, 16, 51).
    - ``transfer_source`` (a callable giving records, such as those of the other tasks of a model measured so far
      in the same run: ``TaskScheduler`` sets it): before a refit, when it holds at least twice as many records of
      other tasks as at the last base fit, the model learns its base from them again (a few base fits per task,
      not one per batch; ``load_history`` does the same once with records of earlier runs).
    """

    def __init__(self, task: Task, seed: int = 0, plan_size: int = 32, first_fit: int | None = None,
                 feature_kind: FeatureKind = FeatureKind.LOOP_IR, objective: Objective = Objective.RANK,
                 epsilon: float = 0.05, model: CostModel | None = None, sa_options: dict[str, Any] | None = None,
                 num_threads: int | None = 1, space: ConfigSpace | None = None, refit_every: int | None = None,
                 diverse: bool = True, local_share: float = 0.5, local_top: int = 3, prior: bool = True) -> None:
        super().__init__(task, seed, space)
        if not 0.0 <= local_share <= 1.0 or not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"local_share and epsilon must be within [0, 1], got {local_share} and {epsilon}")
        self.plan_size = plan_size
        self.refit_every = max(1, refit_every if refit_every is not None else min(8, plan_size))
        self.diverse = diverse
        self.local_share = local_share
        self.local_top = local_top
        self.local_plan: list[int] = []
        self.epsilon = epsilon
        self.model: CostModel = model or XGBoostCostModel(task, feature_kind, objective, seed=seed,
                                                          num_threads=num_threads)
        extractor = getattr(self.model, "extractor", None)
        self.extractor = extractor if isinstance(extractor, FeatureExtractor) else FeatureExtractor(task,
                                                                                                    feature_kind)
        options = {"parallel_size": plan_size, "n_iter": 60, "early_stop": 15, "max_scored": 16 * plan_size,
                   **(sa_options or {})}
        self.optimizer = SimulatedAnnealingOptimizer(self.space, self.rng, **options)
        self.indices: list[int] = []
        self.throughputs: list[float] = []
        self.plan: list[int] = []
        self.next_fit = first_fit if first_fit is not None else min(8, plan_size)
        self.fit_time = 0.0
        self.fitted = 0  # results the model was last fitted on
        self.quality: list[ModelQuality] = []
        self.invalid: set[int] = set()
        self.duplicates = 0
        self._programs: set[bytes] = set()  # feature vectors of configs measured or chosen
        self.transfer_source: Callable[[], Sequence[Record]] | None = None
        self._transferred = 0
        self._plan_from_base = False  # the next batch is planned from a transferred base model
        self._around_default = True  # the first batch has not taken the default's neighbours yet
        self._prior = prior  # before the first batch, learn the base model from the shipped prior (``prior.py``)

    def _observe(self, index: int, result: MeasureResult) -> None:
        self.indices.append(index)
        self.throughputs.append(self.throughput(result))
        self._programs.add(self._program(index))

    def _after_batch(self) -> None:
        if len(self.indices) >= self.next_fit:
            self.refit()
            self.next_fit = len(self.indices) + self.refit_every

    def _check_model(self) -> None:
        """Rank the results the model was not fitted on (see the class docstring)."""
        if self.fitted == 0 or getattr(self.model, "booster", True) is None:
            return
        fresh = list(range(self.fitted, len(self.indices)))
        if len(fresh) < 3:
            return
        indices = [self.indices[k] for k in fresh]
        predicted = np.asarray(self.model.predict(indices), dtype=np.float64)
        measured = np.asarray([self.throughputs[k] for k in fresh])
        keep = np.isfinite(predicted)
        if keep.sum() < 3:
            return
        quality = check_model(predicted[keep], measured[keep], self.trial_count)
        self.quality.append(quality)
        _LOG.info("%s: %s after %d trials", self.task.label, quality, self.trial_count)

    def refit(self) -> None:
        start = time.perf_counter()
        self._check_model()
        if self.transfer_source is not None:
            others = [r for r in self.transfer_source() if r.task.key != self.task.key]
            if len(others) >= max(1, 2 * self._transferred):  # twice as many as at the last fit: learn again
                self._fit_base(others)
                self._transferred = len(others)
        self.model.fit(self.indices, self.throughputs)
        self.fitted = len(self.indices)
        ranked = sorted(range(len(self.indices)), key=lambda k: -self.throughputs[k])
        self.optimizer.reseed([self.indices[k] for k in ranked if self.throughputs[k] > 0])
        self.plan = self.optimizer.find_maximums(self.model.predict, 2 * self.plan_size, self.visited | self.invalid,
                                                 valid=self._valid)
        if self.local_share > 0:
            self.local_plan = self._local_plan([self.indices[k] for k in ranked[: self.local_top]
                                                if self.throughputs[k] > 0])
        self.fit_time += time.perf_counter() - start

    def _local_plan(self, best: Sequence[int], limit: int = 64) -> list[int]:
        """The neighbours of ``best`` (the fastest measured: configs one knob away), not measured yet, valid, best
        predicted first (at most ``limit`` of them scored, drawn at random)."""
        candidates = [other for index in best for other in self.space.neighbours(index)
                      if other not in self.visited and other not in self.invalid]
        candidates = list(dict.fromkeys(candidates))
        if len(candidates) > limit:
            candidates = [candidates[k] for k in self.rng.choice(len(candidates), size=limit, replace=False)]
        candidates = [i for i, ok in zip(candidates, self._valid(candidates)) if ok]
        if not candidates:
            return []
        scores = np.nan_to_num(np.asarray(self.model.predict(candidates), dtype=np.float64), nan=-np.inf)
        return [candidates[k] for k in np.argsort(-scores, kind="stable")]

    def _default_neighbours(self) -> list[int]:
        """The default config's neighbours (one knob changed) for the first batch, in rounds over the knobs (in a
        random order, a random other value of each knob per round), so the first few vary different knobs."""
        fallback = self.space.fallback.index
        by_knob: dict[int, list[int]] = {}
        digits = self.space.digits(fallback)
        for other in self.space.neighbours(fallback):
            knob = next(k for k, (a, b) in enumerate(zip(digits, self.space.digits(other))) if a != b)
            by_knob.setdefault(knob, []).append(other)
        for group in by_knob.values():
            self.rng.shuffle(group)
        knobs = list(by_knob)
        self.rng.shuffle(knobs)
        order = [group[k] for k in range(max(map(len, by_knob.values()), default=0)) for group in
                 (by_knob[knob] for knob in knobs) if k < len(group)]
        return [index for index in order if index not in self.visited and index not in self.invalid]

    def _valid(self, indices: Sequence[int]) -> np.ndarray:
        mask = self.extractor.valid(indices)
        self.invalid.update(int(i) for i, ok in zip(indices, mask) if not ok)
        return mask

    def _program(self, index: int) -> bytes:
        return self.extractor.get([index])[0].tobytes()

    def _explore(self, taken: set[int]) -> int | None:
        """A random valid config not measured yet (a few draws), or None."""
        for _ in range(16):
            sample = self.space.sample(self.rng, 1, exclude=self.visited | self.invalid | taken)
            if not sample:
                return None
            if self._valid(sample)[0]:
                return sample[0]
        return None

    def _diverse_pick(self, taken: set[int]) -> int | None:
        """Among a few random valid configs not measured yet, the one whose knob values were tried least so far
        (measured or chosen), ties broken by the larger knob distance to those: a spread over every knob."""
        seen = [self.space.digits(i) for i in [*self.indices, *taken]]
        counts = [dict[int, int]() for _ in self.space.dims]
        for digits in seen:
            for k, d in enumerate(digits):
                counts[k][d] = counts[k].get(d, 0) + 1
        pool = self.space.sample(self.rng, 32, exclude=self.visited | self.invalid | taken)
        ranked = []
        for index in pool:
            digits = self.space.digits(index)
            rarity = sum(1.0 / (1 + counts[k].get(d, 0)) for k, d in enumerate(digits) if self.space.dims[k] > 1)
            distance = min((sum(a != b for a, b in zip(digits, other)) for other in seen), default=len(digits))
            ranked.append((rarity + 0.01 * distance, index))
        ranked.sort(key=lambda item: -item[0])
        for _, index in ranked:
            if self._valid([index])[0]:
                return index
        return self._explore(taken)

    def _propose(self, count: int) -> list[int]:
        if self._prior:
            self._prior = False
            if self.fitted == 0 and not self.indices and getattr(self.model, "base_booster", True) is None:
                self._transfer(prior_records(self.task))
        aimed = self._plan_from_base and self.fitted == 0  # transferred, not fitted on own results yet
        if aimed:
            self.plan = self.optimizer.find_maximums(self.model.predict, 2 * self.plan_size,
                                                     self.visited | self.invalid, valid=self._valid)
        self._plan_from_base = False
        if self._around_default and self.fitted == 0 and not self.local_plan:
            # the default is in this batch, not yet measured: a neighbour that lowers to its program (a knob the
            # default ignores) is a duplicate
            self._programs.add(self._program(self.space.fallback.index))
            self.local_plan = self._default_neighbours()
        self._around_default = False
        chosen: list[int] = []
        local = int(round(self.local_share * count))
        if aimed:  # the base model's picks first, then the default's neighbours, in case the base misleads
            self._take_plan(chosen, count - local)
            self._take_local(chosen, count)
        else:
            self._take_local(chosen, local)
        self._take_plan(chosen, count)
        return chosen

    def _fresh(self, index: int) -> bool:
        """Whether ``index`` lowers to a program not measured or chosen yet (noting it); a duplicate is marked
        visited and never measured."""
        program = self._program(index)
        if program in self._programs:
            self.visited.add(index)
            self.duplicates += 1
            return False
        self._programs.add(program)
        return True

    def _take_local(self, chosen: list[int], limit: int) -> None:
        """Append configs of the local plan (the best configs' or the default's neighbours) up to ``limit``."""
        while self.local_plan and len(chosen) < limit:
            index = self.local_plan.pop(0)
            if index in self.visited or index in chosen or index in self.invalid or not self._valid([index])[0]:
                continue
            if self._fresh(index):
                chosen.append(index)

    def _take_plan(self, chosen: list[int], limit: int) -> None:
        """Append configs of the model's plan up to ``limit`` (a random diverse one with probability ``epsilon``,
        or when the plan is empty); a config one knob from one chosen waits for a later batch while the plan has
        others."""
        deferred: list[int] = []
        while len(chosen) < limit and len(self.visited) + len(chosen) + len(self.invalid) < len(self.space):
            if not self.plan or self.rng.random() < self.epsilon:
                index = self._diverse_pick(set(chosen)) if self.diverse else self._explore(set(chosen))
                if index is None:
                    break
            else:
                index = self.plan.pop(0)
                if index in self.visited or index in chosen or index in self.invalid:
                    continue
                if self._near(index, chosen) and self.plan:
                    deferred.append(index)
                    continue
            if self._fresh(index):
                chosen.append(index)
        self.plan = deferred + self.plan

    def _near(self, index: int, chosen: Sequence[int]) -> bool:
        """Whether ``index`` differs from a config of ``chosen`` in one knob only."""
        digits = self.space.digits(index)
        for other in chosen:
            if sum(1 for a, b in zip(digits, self.space.digits(other)) if a != b) <= 1:
                return True
        return False

    def _fit_base(self, records: Sequence[Record]) -> int:
        fit_transfer = getattr(self.model, "fit_transfer", None)
        return int(fit_transfer(records)) if callable(fit_transfer) else 0

    def _transfer(self, records: Sequence[Record]) -> int:
        """The model learns its base from ``records``; before the model's first fit on this task's own results,
        the next batch is planned from the base model's predictions (the base model is the only guide then)."""
        taken = self._fit_base(records)
        self._plan_from_base = self._plan_from_base or taken > 0
        return taken


def create_tuner(kind: TunerKind, task: Task, seed: int = 0, space: ConfigSpace | None = None,
                 **options: Any) -> Tuner:
    """A tuner of ``kind`` for ``task`` searching ``space`` (the task's whole space by default)."""
    if not isinstance(kind, TunerKind):
        raise TypeError(f"kind must be a TunerKind, got {kind!r} (TunerKind('{kind}') converts a name)")
    if kind is TunerKind.XGB:
        return XGBTuner(task, seed, space=space, **options)
    if kind is TunerKind.XGB_KNOB:
        return XGBTuner(task, seed, feature_kind=FeatureKind.KNOB, space=space, **options)
    if kind is TunerKind.RANDOM:
        return RandomTuner(task, seed, space)
    if kind is TunerKind.GRID:
        return GridSearchTuner(task, seed, space)
    return GATuner(task, seed, space=space, **options)
