"""Parallel simulated annealing over a config space, guided by a cost model (TVM's ``SimulatedAnnealingOptimizer``).

``find_maximums(predict, num, exclusive)`` runs ``parallel_size`` Markov chains: each step proposes a neighbour of
every chain's point (one knob changed), accepts it with probability ``exp((new - old) / T)`` (scores scaled to unit
spread), and keeps the ``num`` best-scoring points seen that are not in ``exclusive`` (the configs measured or planned
already). The temperature falls linearly from ``temperature[0]`` to ``temperature[1]``; the run stops after
``n_iter`` steps or ``early_stop`` steps without a new top-``num`` point. With ``persistent`` the chains continue
from where the previous call left them, so later rounds refine earlier ones instead of starting cold; ``reseed``
restarts a quarter of them from given points (the tuner passes its best measured configs).

The chains walk valid configs only: ``valid(indices) -> mask`` (when given) tells which configs a template can
build; chains start on valid ones, and an invalid neighbour is never scored nor moved to: the chain tries another
neighbour (``NEIGHBOUR_TRIES`` in all) or stays where it is for that step. Invalid configs are thus outside the
space the search sees, not configs with a bad score.

Scoring a config is what a call costs (a loop-IR model lowers each config it has not seen, tens of milliseconds),
so one call scores each config once (predictions are kept for the call and asked for in one batch per step) and at
most ``max_scored`` distinct configs in all (validity checks included): the chains stop when that many were
scored. A space of at most ``max_scored`` configs is not walked at all: every config in it is checked and scored in
one batch, and the ``num`` best are exact.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Collection, Sequence

import numpy as np

from tcomp.autotune.space import ConfigSpace

Predict = Callable[[Sequence[int]], np.ndarray]
Valid = Callable[[Sequence[int]], np.ndarray]
NEIGHBOUR_TRIES = 4


class SimulatedAnnealingOptimizer:
    def __init__(self, space: ConfigSpace, rng: np.random.Generator, parallel_size: int = 64, n_iter: int = 60,
                 temperature: tuple[float, float] = (1.0, 0.0), early_stop: int = 15, persistent: bool = True,
                 max_scored: int | None = None) -> None:
        if max_scored is not None and max_scored < 1:
            raise ValueError(f"max_scored must be at least 1 (or None for no limit), got {max_scored}")
        self.space = space
        self.rng = rng
        self.parallel_size = max(1, min(parallel_size, len(space)))
        self.n_iter = n_iter
        self.temperature = temperature
        self.early_stop = early_stop
        self.persistent = persistent
        self.max_scored = max_scored
        self.points: list[int] | None = None
        self.seeds: list[int] = []  # reseed's points, kept until the chains start
        self.steps_run = 0
        self.scored_last = 0  # distinct configs the last call checked or scored

    def _start(self, scoring: _Scoring) -> list[int]:
        """``parallel_size`` starting points, valid ones where a validity check is given (a few rounds of
        sampling)."""
        points = self.space.sample(self.rng, self.parallel_size)
        kept = [p for p, ok in zip(points, scoring.valid(points)) if ok]
        for _ in range(NEIGHBOUR_TRIES):
            if len(kept) >= len(points):
                break
            more = self.space.sample(self.rng, self.parallel_size, exclude=kept)
            kept += [p for p, ok in zip(more, scoring.valid(more)) if ok]
        return kept[: len(points)]

    def reseed(self, indices: Sequence[int]) -> None:
        """Restart the last ``len(indices)`` chains (at most a quarter of them) from ``indices``, such as the best
        configs measured so far, so part of the search stays near what already runs fast."""
        if self.points is None:
            self.seeds = list(indices)  # the first call of find_maximums starts the chains, then takes these
            return
        count = min(len(indices), max(1, self.parallel_size // 4), len(self.points))
        if count:
            self.points[-count:] = list(indices[:count])

    def _proposals(self, points: list[int], scoring: _Scoring) -> tuple[list[int], np.ndarray]:
        """A valid neighbour of each point; ``moved[k]`` is False where chain ``k`` found none (its proposal is
        then the point itself)."""
        proposals = [self.space.neighbour(p, self.rng) for p in points]
        moved = scoring.valid(proposals) & np.asarray([q != p for q, p in zip(proposals, points)], dtype=bool)
        for _ in range(NEIGHBOUR_TRIES - 1):
            retry = [k for k in range(len(points)) if not moved[k]]
            if not retry:
                break
            again = [self.space.neighbour(points[k], self.rng) for k in retry]
            for k, index, ok in zip(retry, again, scoring.valid(again)):
                if ok and index != points[k]:
                    proposals[k], moved[k] = index, True
        for k in np.nonzero(~moved)[0]:
            proposals[k] = points[k]
        return proposals, moved

    def find_maximums(self, predict: Predict, num: int, exclusive: Collection[int],
                      valid: Valid | None = None) -> list[int]:
        """Up to ``num`` valid indices not in ``exclusive``, best predicted first."""
        scoring = _Scoring(predict, valid)
        try:
            if self.max_scored is not None and len(self.space) <= self.max_scored:
                return _exhaustive(self.space.indices(), scoring, num, exclusive)
            return self._anneal(scoring, num, exclusive)
        finally:
            self.scored_last = scoring.count

    def _anneal(self, scoring: _Scoring, num: int, exclusive: Collection[int]) -> list[int]:
        if self.points is None or not self.persistent:
            self.points = self._start(scoring)
            seeds, self.seeds = self.seeds, []
            self.reseed(seeds)
        points = list(self.points)
        if not points:
            return []
        scores = scoring.score(points)
        finite = scores[np.isfinite(scores)]
        spread = float(np.std(finite)) if finite.size else 0.0
        scale = spread if spread > 1e-12 else 1.0
        best = _Best(num, exclusive)
        for score, index in zip(scores, points):
            best.offer(float(score), index)
        t0, t1 = self.temperature
        cool = (t0 - t1) / max(1, self.n_iter)
        temperature = t0
        last_improved = 0
        step = 0
        while step < self.n_iter and step - last_improved < self.early_stop and not self._spent(scoring):
            proposals, moved = self._proposals(points, scoring)
            new_scores = scores.copy()
            if moved.any():
                new_scores[moved] = scoring.score([proposals[k] for k in np.nonzero(moved)[0]])
            for score, index, ok in zip(new_scores, proposals, moved):
                if ok and best.offer(float(score), index):
                    last_improved = step
            with np.errstate(invalid="ignore"):  # -inf - -inf: a chain stuck on unscored points stays
                delta = np.nan_to_num((new_scores - scores) / scale, nan=-np.inf)
            exponent = np.minimum(delta / max(temperature, 1e-5), 0.0)
            accept = moved & (self.rng.random(len(points)) < np.exp(exponent))
            for k in np.nonzero(accept)[0]:
                points[k] = proposals[k]
                scores[k] = new_scores[k]
            temperature = max(t1, temperature - cool)
            step += 1
        self.steps_run += step
        self.points = points
        return best.ranked()

    def _spent(self, scoring: _Scoring) -> bool:
        return self.max_scored is not None and scoring.count >= self.max_scored


class _Scoring:
    """One call's validity checks and predictions, each config's asked for once (new ones in one batch);
    ``count`` is how many distinct configs were checked or scored."""

    def __init__(self, predict: Predict, valid: Valid | None) -> None:
        self.predict = predict
        self.check = valid
        self.validity: dict[int, bool] = {}
        self.scores: dict[int, float] = {}

    @property
    def count(self) -> int:
        return len(self.validity.keys() | self.scores.keys())

    def valid(self, indices: Sequence[int]) -> np.ndarray:
        new = list(dict.fromkeys(i for i in indices if i not in self.validity))
        if new:
            mask = np.ones(len(new), dtype=bool) if self.check is None else np.asarray(self.check(new), dtype=bool)
            self.validity.update(zip(new, (bool(ok) for ok in mask)))
        return np.asarray([self.validity[i] for i in indices], dtype=bool)

    def score(self, indices: Sequence[int]) -> np.ndarray:
        new = list(dict.fromkeys(i for i in indices if i not in self.scores))
        if new:
            self.scores.update(zip(new, (float(x) for x in _finite(self.predict(new)))))
        return np.asarray([self.scores[i] for i in indices], dtype=np.float64)


class _Best:
    """The ``num`` best-scoring configs offered, none in ``exclusive`` and none without a finite score."""

    def __init__(self, num: int, exclusive: Collection[int]) -> None:
        self.num = num
        self.exclusive = exclusive
        self.heap: list[tuple[float, int]] = []
        self.members: set[int] = set()

    def offer(self, score: float, index: int) -> bool:
        """Whether ``index`` entered the best ones."""
        if index in self.exclusive or index in self.members or not math.isfinite(score) or self.num < 1:
            return False
        if len(self.heap) < self.num:
            heapq.heappush(self.heap, (score, index))
            self.members.add(index)
            return True
        if score > self.heap[0][0]:
            _, dropped = heapq.heapreplace(self.heap, (score, index))
            self.members.discard(dropped)
            self.members.add(index)
            return True
        return False

    def ranked(self) -> list[int]:
        return [index for score, index in sorted(self.heap, key=lambda item: (-item[0], item[1]))]


def _exhaustive(indices: Sequence[int], scoring: _Scoring, num: int, exclusive: Collection[int]) -> list[int]:
    """The ``num`` best of the valid configs of ``indices`` (a whole space) not in ``exclusive``."""
    candidates = [i for i in indices if i not in exclusive]
    kept = [i for i, ok in zip(candidates, scoring.valid(candidates)) if ok]
    best = _Best(num, exclusive)
    for score, index in zip(scoring.score(kept), kept):
        best.offer(float(score), index)
    return best.ranked()


def _finite(scores: np.ndarray) -> np.ndarray:
    """Scores as floats, with a model's "no score" (NaN: a config it could not read) as -inf, never chosen."""
    values = np.asarray(scores, dtype=np.float64)
    return np.where(np.isnan(values), -np.inf, values)
