"""Replay a measured table: tune against throughputs measured once, so search strategies compare without noise.

A ``MeasuredTable`` (``tcomp.autotune.table``) is configs of one task with the GFLOP/s each reached when measured
(the best of a few passes; 0 for a config that failed). ``table.space()`` is the part of the task's space the table
covers (a ``ConfigSubset``: the whole space when the table measured every config), and ``ReplayMeasurer`` plays a
``Measurer`` that answers from the table, so any tuner runs on it unchanged and in milliseconds per trial:

    table = MeasuredTable.load("conv3x3_measured.json")
    result = replay(TunerKind.XGB, table, seed=0, trials=64)
    trials_to_reach(result.curve, 0.95 * table.best_gflops)

Replays are deterministic for a seed. What they leave out: timing noise (a table holds one figure per config) and,
for a table that samples a large space, the configs it did not measure (the search sees the sample only).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tcomp.autotune.feature import FeatureExtractor
from tcomp.autotune.measure import MeasureInput, MeasureOptions, MeasureResult
from tcomp.autotune.table import MeasuredTable
from tcomp.autotune.tuner import TuneResult, TunerKind, XGBTuner, create_tuner

__all__ = ["MeasuredTable", "ReplayMeasurer", "replay", "trials_to_reach"]


class ReplayMeasurer:
    """A ``Measurer`` stand-in that answers from a table: a config's cost is ``flop / gflops``; a config the table
    marks failed (0 GFLOP/s) is a ``RUN_ERROR``. Asking for a config outside the table is an error (a tuner given
    ``table.space()`` never does)."""

    def __init__(self, table: MeasuredTable) -> None:
        self.table = table
        self.options = MeasureOptions(n_parallel=1)
        self.measured: list[int] = []

    def measure(self, inputs: Sequence[MeasureInput]) -> list[MeasureResult]:
        results = []
        for inp in inputs:
            index = inp.config.index
            if index not in self.table.gflops:
                raise KeyError(f"config {index} of {self.table.task} is not in the measured table")
            self.measured.append(index)
            results.append(self.table.result(index))
        return results

    def close(self) -> None:
        pass


def replay(kind: TunerKind, table: MeasuredTable, seed: int, trials: int, batch_size: int = 8,
           extractor: FeatureExtractor | None = None, **options: Any) -> TuneResult:
    """Tune ``table``'s task over the table's configs with a tuner of ``kind``, measuring by replay. ``extractor``
    (loop-IR features of the task) may be shared between replays so each config is lowered once; ``options`` go
    to the tuner."""
    tuner = create_tuner(kind, table.task, seed=seed, space=table.space(), **options)
    if extractor is not None and isinstance(tuner, XGBTuner) and tuner.extractor.kind is extractor.kind:
        tuner.extractor = extractor
        if hasattr(tuner.model, "extractor"):
            tuner.model.extractor = extractor
    return tuner.tune(trials, measurer=ReplayMeasurer(table), batch_size=batch_size, confirm=0)  # type: ignore[arg-type]


def trials_to_reach(curve: Sequence[float], level: float) -> int | None:
    """The first trial (from 1) whose best-so-far reaches ``level``, None if none does."""
    for trial, value in enumerate(curve, start=1):
        if value >= level:
            return trial
    return None
