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
                 temperature: tuple[float, float] = (1.0, 0.0), early_stop: int = 15, persistent: bool = True) -> None:
        self.space = space
        self.rng = rng
        self.parallel_size = max(1, min(parallel_size, len(space)))
        self.n_iter = n_iter
        self.temperature = temperature
        self.early_stop = early_stop
        self.persistent = persistent
        self.points: list[int] | None = None
        self.seeds: list[int] = []  # reseed's points, kept until the chains start
        self.steps_run = 0

    def _start(self, valid: Valid | None) -> list[int]:
        """``parallel_size`` starting points, valid ones where ``valid`` says which (a few rounds of sampling)."""
        points = self.space.sample(self.rng, self.parallel_size)
        if valid is None:
            return points
        kept = [p for p, ok in zip(points, valid(points)) if ok]
        for _ in range(NEIGHBOUR_TRIES):
            if len(kept) >= len(points):
                break
            more = self.space.sample(self.rng, self.parallel_size, exclude=kept)
            kept += [p for p, ok in zip(more, valid(more)) if ok]
        return kept[: len(points)] if kept else points[:0]

    def reseed(self, indices: Sequence[int]) -> None:
        """Restart the last ``len(indices)`` chains (at most a quarter of them) from ``indices``, such as the best
        configs measured so far, so part of the search stays near what already runs fast."""
        if self.points is None:
            self.seeds = list(indices)  # the first call of find_maximums starts the chains, then takes these
            return
        count = min(len(indices), max(1, self.parallel_size // 4), len(self.points))
        if count:
            self.points[-count:] = list(indices[:count])

    def _proposals(self, points: list[int], valid: Valid | None) -> tuple[list[int], np.ndarray]:
        """A neighbour of each point, valid where ``valid`` is given; ``moved[k]`` is False where chain ``k``
        found no valid neighbour (its proposal is then the point itself)."""
        proposals = [self.space.neighbour(p, self.rng) for p in points]
        if valid is None:
            return proposals, np.asarray([q != p for q, p in zip(proposals, points)])
        moved = np.asarray(valid(proposals), dtype=bool)
        for _ in range(NEIGHBOUR_TRIES - 1):
            retry = [k for k in range(len(points)) if not moved[k]]
            if not retry:
                break
            again = [self.space.neighbour(points[k], self.rng) for k in retry]
            for k, index, ok in zip(retry, again, valid(again)):
                if ok:
                    proposals[k], moved[k] = index, True
        for k in np.nonzero(~moved)[0]:
            proposals[k] = points[k]
        return proposals, moved

    def find_maximums(self, predict: Predict, num: int, exclusive: Collection[int],
                      valid: Valid | None = None) -> list[int]:
        """Up to ``num`` valid indices not in ``exclusive``, best predicted first."""
        if self.points is None or not self.persistent:
            self.points = self._start(valid)
            seeds, self.seeds = self.seeds, []
            self.reseed(seeds)
        points = list(self.points)
        if not points:
            return []
        scores = _finite(predict(points))
        finite = scores[np.isfinite(scores)]
        spread = float(np.std(finite)) if finite.size else 0.0
        scale = spread if spread > 1e-12 else 1.0

        heap: list[tuple[float, int]] = []
        in_heap: set[int] = set()

        def offer(score: float, index: int) -> bool:
            if index in exclusive or index in in_heap or not math.isfinite(score):
                return False
            if len(heap) < num:
                heapq.heappush(heap, (score, index))
                in_heap.add(index)
                return True
            if score > heap[0][0]:
                _, dropped = heapq.heapreplace(heap, (score, index))
                in_heap.discard(dropped)
                in_heap.add(index)
                return True
            return False

        for score, index in zip(scores, points):
            offer(float(score), index)
        t0, t1 = self.temperature
        cool = (t0 - t1) / max(1, self.n_iter)
        temperature = t0
        last_improved = 0
        step = 0
        while step < self.n_iter and step - last_improved < self.early_stop:
            proposals, moved = self._proposals(points, valid)
            new_scores = scores.copy()
            if moved.any():
                new_scores[moved] = _finite(predict([proposals[k] for k in np.nonzero(moved)[0]]))
            for score, index, ok in zip(new_scores, proposals, moved):
                if ok and offer(float(score), index):
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
        ranked = sorted(heap, key=lambda item: (-item[0], item[1]))
        return [index for score, index in ranked if math.isfinite(score)]


def _finite(scores: np.ndarray) -> np.ndarray:
    """Scores as floats, with a model's "no score" (NaN: a config it could not read) as -inf, never chosen."""
    values = np.asarray(scores, dtype=np.float64)
    return np.where(np.isnan(values), -np.inf, values)
