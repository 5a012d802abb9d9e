"""Cost models: predict which configs of a task run fastest, from features of their loop IR.

``CostModel`` is a small protocol: ``fit(indices, throughputs)`` and ``predict(indices) -> scores`` (higher is
better; only the order matters). ``XGBoostCostModel`` trains gradient-boosted trees with a pairwise ranking
objective (``Objective.RANK``) or squared error on normalized throughput (``Objective.REGRESSION``).
``fit_transfer(records)`` trains a base model on records of other tasks (throughputs normalized per task, ranked
within each task); the task's own model then starts from the base model's predictions (XGBoost base margins), which
helps in the first rounds. Records of earlier runs (``tcomp tune --resume``, ``Tuner.load_history``; ``tcomp tune
--transfer``, ``Tuner.transfer``, which also takes the task's own records of another run) serve, and so can the
other tasks of the same model measured earlier in the same run (``XGBTuner.transfer_source``, which
``TaskScheduler`` and so ``tcomp tune`` set).
``RandomModel`` is the fake for tests and for comparisons.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from tcomp.autotune.feature import FeatureExtractor, FeatureKind, feature_names
from tcomp.autotune.feature_knob import knob_feature_names
from tcomp.autotune.model_quality import spearman
from tcomp.autotune.record import Record
from tcomp.autotune.task import Task


class Objective(enum.Enum):
    RANK = "rank:pairwise"
    REGRESSION = "reg:squarederror"


class CostModel(Protocol):
    def fit(self, indices: Sequence[int], throughputs: Sequence[float]) -> None: ...

    def predict(self, indices: Sequence[int]) -> np.ndarray: ...


class RandomModel:
    """Scores at random (seeded): a model that knows nothing."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.fitted = 0

    def fit(self, indices: Sequence[int], throughputs: Sequence[float]) -> None:
        self.fitted += 1

    def predict(self, indices: Sequence[int]) -> np.ndarray:
        return self.rng.random(len(indices))


def _normalized(throughputs: Sequence[float]) -> np.ndarray:
    y = np.asarray(throughputs, dtype=np.float64)
    y = np.where(np.isfinite(y) & (y > 0), y, 0.0)
    top = float(y.max()) if y.size else 0.0
    return y / top if top > 0 else y


class XGBoostCostModel:
    """XGBoost over ``FeatureExtractor`` features of ``task``. ``num_rounds`` boosting rounds of depth-``max_depth``
    trees; ``seed`` fixes them. ``num_threads`` defaults to 1: the training sets are small (hundreds of rows), and
    XGBoost's spinning OpenMP threads slowed training about eightfold on a busy two-core machine; None lets XGBoost
    use every core."""

    def __init__(self, task: Task, feature_kind: FeatureKind = FeatureKind.LOOP_IR,
                 objective: Objective = Objective.RANK, num_rounds: int = 120, max_depth: int = 4,
                 num_threads: int | None = 1, seed: int = 0) -> None:
        if not isinstance(objective, Objective):
            raise TypeError(f"objective must be an Objective, got {objective!r}")
        self.task = task
        # loop-IR features: one extractor per task, shared with the transfers of its records to other tasks' models
        loop_ir = feature_kind is FeatureKind.LOOP_IR
        self.extractor = _extractor(task) if loop_ir else FeatureExtractor(task, feature_kind)
        self.objective = objective
        self.num_rounds = num_rounds
        self.num_threads = num_threads if num_threads is not None else -1  # -1: XGBoost's DMatrix uses every core
        self.params: dict[str, Any] = {
            "objective": objective.value, "max_depth": max_depth, "eta": 0.2, "gamma": 1e-4,
            "min_child_weight": 1, "subsample": 1.0, "lambda": 1.0, "alpha": 0.0, "seed": seed,
            "verbosity": 0, "tree_method": "hist",
        }
        if num_threads is not None:
            self.params["nthread"] = num_threads
        self.booster: Any = None
        self.base_booster: Any = None
        self.fit_count = 0

    # -- training --------------------------------------------------------------------------------------------------
    def _matrix(self, features: np.ndarray, labels: np.ndarray | None = None) -> Any:
        import xgboost as xgb

        matrix = xgb.DMatrix(features, label=labels, nthread=self.num_threads)
        if self.base_booster is not None:
            base = xgb.DMatrix(features, nthread=self.num_threads)
            matrix.set_base_margin(self.base_booster.predict(base, output_margin=True))
        return matrix

    def fit(self, indices: Sequence[int], throughputs: Sequence[float]) -> None:
        import xgboost as xgb

        features = self.extractor.get(indices)
        labels = _normalized(throughputs)
        keep = ~FeatureExtractor.invalid(features)
        if keep.sum() < 2 or np.all(labels[keep] == labels[keep][0]):
            return  # nothing to learn from yet
        self.booster = xgb.train(self.params, self._matrix(features[keep], labels[keep]),
                                 num_boost_round=self.num_rounds)
        self.fit_count += 1

    def fit_transfer(self, records: Sequence[Record]) -> int:
        """Train the base model on successful and failed records (of other tasks, or of this one measured in
        another run; loop-IR features only, since knob encodings differ between tasks): throughputs normalized and
        ranked within each task. Returns how many records it used."""
        import xgboost as xgb

        if self.extractor.kind is not FeatureKind.LOOP_IR:
            return 0
        rows: list[np.ndarray] = []
        labels: list[float] = []
        groups: list[int] = []
        by_task: dict[str, list[Record]] = {}
        for record in records:
            by_task.setdefault(record.task.key, []).append(record)
        for task_key, task_records in by_task.items():
            try:
                extractor = self.extractor if task_key == self.task.key else _extractor(task_records[0].task)
            except Exception:  # noqa: BLE001 - a task whose template is not available here
                continue
            flops = task_records[0].task.flop
            throughput = [flops / r.result.cost if r.result.ok and r.result.cost > 0 else 0.0 for r in task_records]
            group_labels = _normalized(throughput)
            for record, label in zip(task_records, group_labels):
                config = record.config.with_target(record.task.target)
                rows.append(extractor.get([config.index])[0] if config.index >= 0 else extractor.of_config(config))
                labels.append(float(label))
            groups.append(len(task_records))
        if not rows:
            return 0
        features = np.stack(rows)
        keep = ~FeatureExtractor.invalid(features)
        matrix = xgb.DMatrix(features[keep], label=np.asarray(labels)[keep], nthread=self.num_threads)
        if self.objective is Objective.RANK:  # rank within each task: the rows that stay, task by task
            matrix.set_group([int(part.sum()) for part in np.split(keep, np.cumsum(groups)[:-1]) if part.any()])
        self.base_booster = xgb.train(self.params, matrix, num_boost_round=self.num_rounds)
        return int(keep.sum())

    def importances(self, top: int = 15) -> list[tuple[str, float]]:
        """The ``top`` features by the total gain of the splits that use them (names from ``feature_names`` or
        ``knob_feature_names``), largest first; empty before the first fit."""
        if self.booster is None:
            return []
        names = (feature_names() if self.extractor.kind is FeatureKind.LOOP_IR
                 else knob_feature_names(self.task.config_space.fallback))
        gains = self.booster.get_score(importance_type="total_gain")
        named = []
        for key, gain in gains.items():
            position = int(key[1:]) if key.startswith("f") and key[1:].isdigit() else -1
            label = names[position] if 0 <= position < len(names) else key
            named.append((label, float(gain)))
        total = sum(g for _, g in named) or 1.0
        return [(label, gain / total) for label, gain in sorted(named, key=lambda item: -item[1])[:top]]

    # -- prediction ------------------------------------------------------------------------------------------------
    def predict(self, indices: Sequence[int]) -> np.ndarray:
        features = self.extractor.get(indices)
        return self.predict_features(features)

    def predict_features(self, features: np.ndarray) -> np.ndarray:
        if len(features) == 0:
            return np.zeros(0)
        invalid = FeatureExtractor.invalid(features)
        if self.booster is None and self.base_booster is None:
            scores = np.zeros(len(features))
        else:
            import xgboost as xgb

            booster = self.booster if self.booster is not None else self.base_booster
            matrix = (self._matrix(features) if self.booster is not None
                      else xgb.DMatrix(features, nthread=self.num_threads))
            scores = np.asarray(booster.predict(matrix), dtype=np.float64)
        scores[invalid] = np.nan  # no score: the search excludes invalid configs (``FeatureExtractor.valid``)
        return scores


_EXTRACTORS: dict[str, FeatureExtractor] = {}
_EXTRACTORS_KEPT = 64


def _extractor(task: Task) -> FeatureExtractor:
    """The loop-IR feature extractor of ``task``, kept with the features it computed: the task's cost models use
    it, and so do transfers of its records to other tasks' models (a run's tasks share their records with each
    other's models again and again)."""
    extractor = _EXTRACTORS.pop(task.key, None) or FeatureExtractor(task, FeatureKind.LOOP_IR)
    _EXTRACTORS[task.key] = extractor
    while len(_EXTRACTORS) > _EXTRACTORS_KEPT:
        _EXTRACTORS.pop(next(iter(_EXTRACTORS)))
    return extractor


def rank_correlation(predicted: Sequence[float], actual: Sequence[float]) -> float:
    """Spearman's rank correlation (``model_quality.spearman``), for tests and reports."""
    return spearman(predicted, actual)
