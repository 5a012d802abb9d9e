"""Progress lines while tuning and the summary table after it.

``ProgressPrinter`` is a tuner callback printing, after each batch,
``[Task 1/2] current/best: 95.3/171.2 GFLOP/s | 48/200 trials | 3 errors | ETA 1m52s``; ``summary_table`` formats
one row per task: trials, errors, the default schedule's and the best config's GFLOP/s, the speedup and the config.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import IO, Any

from tcomp.autotune.measure import MeasureInput, MeasureResult
from tcomp.autotune.tuner import TuneResult


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class ProgressPrinter:
    """Prints one progress line per measured batch of task ``index`` of ``count`` (budget ``n_trial``)."""

    def __init__(self, n_trial: int, index: int = 1, count: int = 1, stream: IO[str] | None = None) -> None:
        self.n_trial = n_trial
        self.index = index
        self.count = count
        self.stream = stream or sys.stdout
        self.start = time.perf_counter()
        self.first_trial: int | None = None

    def __call__(self, tuner: Any, inputs: Sequence[MeasureInput], results: Sequence[MeasureResult]) -> None:
        done = tuner.trial_count
        if self.first_trial is None:
            self.first_trial = done - len(results)
        elapsed = time.perf_counter() - self.start
        measured = max(1, done - self.first_trial)
        eta = elapsed / measured * max(0, self.n_trial - done)
        current = max((tuner.throughput(r) for r in results), default=0.0)
        best = tuner.task.flop / tuner.best_cost / 1e9 if tuner.best_cost < float("inf") else 0.0
        errors = sum(count for status, count in tuner.statuses.items() if status.value != "ok")
        print(f"[Task {self.index}/{self.count}] current/best: {current:.2f}/{best:.2f} GFLOP/s | "
              f"{done}/{self.n_trial} trials | {errors} errors | ETA {format_duration(eta)}",
              file=self.stream, flush=True)


def summary_table(results: Sequence[TuneResult]) -> str:
    headers = ["task", "trials", "errors", "default GFLOP/s", "best GFLOP/s", "speedup", "wall", "best config"]
    rows = []
    for result in results:
        default = result.default_gflops
        speedup = f"{result.best_gflops / default:.2f}x" if default else "n/a"
        config = "" if result.best_config is None else ", ".join(
            f"{name}={entity.to_json()}" for name, entity in result.best_config.choices.items())
        rows.append([result.task.label, str(result.trials + result.prior_trials),
                     str(result.errors), f"{default:.2f}" if default else "n/a", f"{result.best_gflops:.2f}",
                     speedup, format_duration(result.wall_time), config])
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)
