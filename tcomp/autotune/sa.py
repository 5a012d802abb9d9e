"""Parallel simulated annealing over a config space, guided by a cost model (TVM's ``SimulatedAnnealingOptimizer``).

``find_maximums(predict, num, exclusive)`` runs ``parallel_size`` Markov chains: each step proposes a neighbour of
every chain's point (one knob changed), accepts it with probability ``exp((new - old) / T)`` (scores scaled to unit
spread), and keeps the ``num`` best-scoring points seen that are not in ``exclusive`` (the configs measured or planned
already). The temperature falls linearly from ``temperature[0]`` to ``temperature[1]``; the run stops after
``n_iter`` steps or ``early_stop`` steps without a new top-``num`` point. With ``persistent`` the chains continue
from where the previous call left them, so later rounds refine earlier ones instead of starting cold; ``reseed``
restarts a quarter of them from given points (the tuner passes its best measured configs).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Collection, Sequence

import numpy as np

from tcomp.autotune.space import ConfigSpace

Predict = Callable[[Sequence[int]], np.ndarray]


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
        self.steps_run = 0

    def reseed(self, indices: Sequence[int]) -> None:
        """Restart the last ``len(indices)`` chains (at most a quarter of them) from ``indices``, such as the best
        configs measured so far, so part of the search stays near what already runs fast."""
        if self.points is None:
            self.points = self.space.sample(self.rng, self.parallel_size)
        count = min(len(indices), max(1, self.parallel_size // 4))
        if count:
            self.points[-count:] = list(indices[:count])

    def find_maximums(self, predict: Predict, num: int, exclusive: Collection[int]) -> list[int]:
        """Up to ``num`` indices not in ``exclusive``, best predicted first."""
        if self.points is None or not self.persistent:
            self.points = self.space.sample(self.rng, self.parallel_size)
        points = list(self.points)
        scores = np.asarray(predict(points), dtype=np.float64)
        spread = float(np.std(scores[scores > -1e8])) if np.any(scores > -1e8) else 0.0
        scale = spread if spread > 1e-12 else 1.0

        heap: list[tuple[float, int]] = []
        in_heap: set[int] = set()

        def offer(score: float, index: int) -> bool:
            if index in exclusive or index in in_heap:
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
            proposals = [self.space.neighbour(p, self.rng) for p in points]
            new_scores = np.asarray(predict(proposals), dtype=np.float64)
            for score, index in zip(new_scores, proposals):
                if offer(float(score), index):
                    last_improved = step
            delta = (new_scores - scores) / scale
            exponent = np.minimum(delta / max(temperature, 1e-5), 0.0)
            accept = self.rng.random(len(points)) < np.exp(exponent)
            for k in np.nonzero(accept)[0]:
                points[k] = proposals[k]
                scores[k] = new_scores[k]
            temperature = max(t1, temperature - cool)
            step += 1
        self.steps_run += step
        self.points = points
        ranked = sorted(heap, key=lambda item: (-item[0], item[1]))
        return [index for score, index in ranked if math.isfinite(score)]
