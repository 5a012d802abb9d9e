"""Fakes for tuner tests: a deterministic measurer with an analytic cost, and a script entry that tunes forever.

``AnalyticMeasurer`` plays the builder and runner: the cost of a matmul config is a made-up but smooth function of
its register tile, panel width, cache block, loop order and unrolling (what a real CPU cares about), so a model can
learn it and tests do not depend on timing noise. It records every config it measured.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence

from tcomp.autotune import create_task
from tcomp.autotune.measure import MeasureInput, MeasureOptions, MeasureResult, MeasureStatus
from tcomp.autotune.record import log_to_file, read_records
from tcomp.autotune.space import ConfigEntity
from tcomp.autotune.tuner import RandomTuner


def analytic_cost(config: ConfigEntity) -> float:
    """Seconds for a matmul config: best at mr=4, nr=64, kc=32, mid=8, order (1, 0, 2), unrolled by 4 - away from
    the fallback config, so search has something to find."""
    _, mid, mr = config["tile_i"].size
    nr = config["tile_j"].size[1]
    kc = config["tile_k"].size[1]
    penalty = 1.0
    penalty += 0.15 * abs(math.log2(mr) - 2) ** 2
    penalty += 0.3 * abs(math.log2(nr) - 6) ** 2
    penalty += 0.05 * abs(math.log2(kc) - 5) ** 2
    penalty += 0.02 * abs(math.log2(mid) - 3)
    penalty += 0.4 * sum(1 for a, b in zip(config["order"].perm, (1, 0, 2)) if a != b)
    penalty += 0.3 if config["unroll_mr"].anns[0].value == "none" else 0.0
    penalty += 0.05 * abs(math.log2(config["unroll_k"].val) - 2)
    return 1e-3 * penalty


class AnalyticMeasurer:
    """A ``Measurer`` stand-in: no processes, no timing; ``fail`` maps config indices to statuses to report."""

    def __init__(self, fail: dict[int, MeasureStatus] | None = None, delay: float = 0.0) -> None:
        self.options = MeasureOptions(n_parallel=2)
        self.fail = fail or {}
        self.delay = delay
        self.measured: list[int] = []

    def measure(self, inputs: Sequence[MeasureInput]) -> list[MeasureResult]:
        results = []
        for inp in inputs:
            self.measured.append(inp.config.index)
            if self.delay:
                time.sleep(self.delay)
            status = self.fail.get(inp.config.index)
            if status is not None:
                results.append(MeasureResult(status, (), "injected"))
            else:
                cost = analytic_cost(inp.config)
                results.append(MeasureResult(MeasureStatus.OK, (cost, cost * 1.01)))
        return results

    def close(self) -> None:
        pass


def tune_until_killed(records_path: str, n_trial: int) -> None:
    """Resume from ``records_path`` and tune slowly, logging every trial (the test kills this process)."""
    task = create_task("matmul", (256, 256, 256))
    tuner = RandomTuner(task, seed=1)
    tuner.load_history(read_records(records_path).records)
    tuner.tune(n_trial, measurer=AnalyticMeasurer(delay=0.05), callbacks=[log_to_file(records_path)], batch_size=2)


if __name__ == "__main__":
    tune_until_killed(sys.argv[1], int(sys.argv[2]))
