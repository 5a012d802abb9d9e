"""Measured tables: configs of one task and the GFLOP/s each ran at, measured once and kept as data.

A ``MeasuredTable`` is JSON, ``{"task": ..., "configs": [{"knobs": ..., "gflops": ...}, ...]}`` (``.json``, or
gzip-compressed ``.json.gz``; the writer is ``tests/data/tuning/measure_table.py``): the knob choices of each
config, checked against the task's template when read (a config the space does not have is an error saying the
template changed), and its throughput (0 for a config that failed). Replays tune against such tables
(``tcomp.autotune.replay``), and the xgb tuner's cost model starts from the tables of other tasks shipped with
tcomp (``tcomp.autotune.prior``), as records (``records()``).
"""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tcomp.autotune.measure import MeasureResult, MeasureStatus
from tcomp.autotune.record import Record
from tcomp.autotune.space import ConfigEntity, ConfigSubset, SpaceError
from tcomp.autotune.task import Task
from tcomp.json_value import as_list, as_object

MAX_CONFIGS = 10_000_000


@dataclass
class MeasuredTable:
    """Configs of ``task`` (indices of its space) and the GFLOP/s each was measured at."""

    task: Task
    gflops: dict[int, float]

    @staticmethod
    def from_json(value: Any) -> MeasuredTable:
        fields = as_object(value, "measured table")
        task = Task.from_json(fields.get("task"))
        space = task.config_space
        gflops: dict[int, float] = {}
        for entry in as_list(fields.get("configs"), "measured table configs", MAX_CONFIGS):
            item = as_object(entry, "a measured config")
            index = space.index_of(ConfigEntity.from_json({"knobs": item.get("knobs")}))
            if index is None:
                raise SpaceError(f"measured table: a config does not fit the space of {task} (the template's "
                                 "knobs changed: measure the table again)")
            value_gflops = item.get("gflops")
            if isinstance(value_gflops, bool) or not isinstance(value_gflops, (int, float)) \
                    or not math.isfinite(value_gflops) or value_gflops < 0:
                raise ValueError(f"measured table: gflops must be a finite number >= 0, got {value_gflops!r}")
            gflops[index] = float(value_gflops)
        if not gflops:
            raise ValueError("measured table: no configs")
        return MeasuredTable(task, gflops)

    @staticmethod
    def load(path: str | Path) -> MeasuredTable:
        """The table in ``path`` (gzip-compressed when the name ends in ``.gz``)."""
        path = Path(path)
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        return MeasuredTable.from_json(json.loads(data.decode("utf-8")))

    @property
    def best_gflops(self) -> float:
        return max(self.gflops.values())

    def space(self) -> ConfigSubset:
        """The table's configs as a space (the task's fallback config stays the default when the table has it)."""
        return self.task.config_space.subset(self.gflops)

    def result(self, index: int) -> MeasureResult:
        """Config ``index``'s measurement: a run taking ``task.flop / gflops`` seconds, or a run error for 0."""
        gflops = self.gflops[index]
        if gflops > 0:
            return MeasureResult(MeasureStatus.OK, (self.task.flop / (gflops * 1e9),))
        return MeasureResult(MeasureStatus.RUN_ERROR, (), "failed when the table was measured")

    def records(self) -> list[Record]:
        """The table as tuning records (``result`` of each config)."""
        space = self.task.config_space
        return [Record(self.task, space.get(index), self.result(index)) for index in self.gflops]
