"""How well a cost model ranks configs it has not seen: Spearman's rank correlation and top-k recall.

The tuner checks its model after every refit on the measurements that arrived since the previous fit (the model
had not seen them: held out), before it learns from them. ``ModelQuality`` holds one such check; the tuner keeps
them in ``XGBTuner.quality``, logs each (logger ``tcomp.autotune``), and the tuning summary reports them.

- ``spearman(predicted, measured)``: the Pearson correlation of the two rankings (ties share their mean rank);
  1 is a perfect order, 0 none, NaN when either side is constant or there are fewer than 3 values.
- ``top_k_recall(predicted, measured, k)``: the share of the ``k`` fastest measured configs that are among the
  ``k`` the model ranks highest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks from 0, ties sharing the mean of the ranks they span."""
    array = np.asarray(values, dtype=np.float64)
    order = np.argsort(array, kind="stable")
    result = np.empty(len(array), dtype=np.float64)
    sorted_values = array[order]
    start = 0
    while start < len(array):
        end = start
        while end + 1 < len(array) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        result[order[start:end + 1]] = (start + end) / 2.0
        start = end + 1
    return result


def spearman(predicted: Sequence[float], measured: Sequence[float]) -> float:
    if len(predicted) != len(measured):
        raise ValueError(f"spearman: {len(predicted)} predictions for {len(measured)} measurements")
    if len(predicted) < 3:
        return math.nan
    a, b = ranks(predicted), ranks(measured)
    if np.all(a == a[0]) or np.all(b == b[0]):
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def top_k_recall(predicted: Sequence[float], measured: Sequence[float], k: int) -> float:
    """Share of the ``k`` best measured (highest values) among the ``k`` best predicted."""
    count = min(k, len(measured))
    if count < 1:
        return math.nan
    best_measured = set(np.argsort(-np.asarray(measured, dtype=np.float64), kind="stable")[:count].tolist())
    best_predicted = set(np.argsort(-np.asarray(predicted, dtype=np.float64), kind="stable")[:count].tolist())
    return len(best_measured & best_predicted) / count


@dataclass(frozen=True)
class ModelQuality:
    """One check of the model: after ``trials`` trials, on ``held_out`` measurements it had not been fitted on."""

    trials: int
    held_out: int
    spearman: float
    recall: float
    k: int

    def to_json(self) -> dict[str, float | int | None]:
        def number(value: float) -> float | None:
            return round(value, 4) if math.isfinite(value) else None

        return {"trials": self.trials, "held_out": self.held_out, "spearman": number(self.spearman),
                "top_k_recall": number(self.recall), "k": self.k}

    def __str__(self) -> str:
        rho = f"{self.spearman:.2f}" if math.isfinite(self.spearman) else "n/a"
        recall = f"{self.recall:.2f}" if math.isfinite(self.recall) else "n/a"
        return f"model on {self.held_out} held-out configs: Spearman {rho}, top-{self.k} recall {recall}"


def check(predicted: Sequence[float], measured: Sequence[float], trials: int, k: int | None = None) -> ModelQuality:
    """Spearman and top-``k`` recall (``k``: a quarter of the held-out configs, at least 1)."""
    chosen_k = k if k is not None else max(1, len(measured) // 4)
    return ModelQuality(trials, len(measured), spearman(predicted, measured),
                        top_k_recall(predicted, measured, chosen_k), chosen_k)
