"""Progress lines while tuning and the summary table after it.

``ProgressPrinter`` is a tuner callback printing, after each batch,
``[Task 1/2] current/best: 95.3/171.2 GFLOP/s | 48/200 trials | 3 errors | ETA 1m52s``; ``summary_table`` formats
one row per task (trials, errors, the default schedule's and the best config's GFLOP/s, the speedup), then the best
configs and how well the cost model ranked configs it had not seen, within 100 columns. ``summary_json`` gives the
same as data (written next to the records), ``importance_lines`` the cost model's feature importances
(``tcomp tune --explain``).
"""

from __future__ import annotations

import math
import sys
import textwrap
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
        self.last_done: int | None = None

    def __call__(self, tuner: Any, inputs: Sequence[MeasureInput], results: Sequence[MeasureResult]) -> None:
        done = tuner.trial_count
        if done == self.last_done:
            return  # the default and the best measured again (``Tuner.confirm``): no trial
        self.last_done = done
        if self.first_trial is None:
            self.first_trial = done - len(results)
        elapsed = time.perf_counter() - self.start
        measured = max(1, done - self.first_trial)
        eta = elapsed / measured * max(0, self.n_trial - done)
        print(f"[Task {self.index}/{self.count}] {_batch_status(tuner, results)} | {done}/{self.n_trial} trials | "
              f"{_errors(tuner)} errors | ETA {format_duration(eta)}", file=self.stream, flush=True)


class BudgetProgress:
    """Prints one progress line per measured batch when a time budget is spread over ``tuners`` (``--budget``):
    which task, its current and best GFLOP/s, its trials, and the budget left."""

    def __init__(self, budget_s: float, tuners: Sequence[Any], stream: IO[str] | None = None) -> None:
        self.budget_s = budget_s
        self.index = {id(t): k for k, t in enumerate(tuners, start=1)}
        self.count = len(tuners)
        self.stream = stream or sys.stdout
        self.start = time.perf_counter()
        self.last_done: dict[int, int] = {}

    def __call__(self, tuner: Any, inputs: Sequence[MeasureInput], results: Sequence[MeasureResult]) -> None:
        done = tuner.trial_count
        if self.last_done.get(id(tuner)) == done:
            return  # the default and the best measured again (``Tuner.confirm``): no trial
        self.last_done[id(tuner)] = done
        left = max(0.0, self.budget_s - (time.perf_counter() - self.start))
        print(f"[Task {self.index.get(id(tuner), 0)}/{self.count}] {_batch_status(tuner, results)} | {done} trials | "
              f"{_errors(tuner)} errors | {format_duration(left)} left", file=self.stream, flush=True)


def _batch_status(tuner: Any, results: Sequence[MeasureResult]) -> str:
    """``current/best: X/Y GFLOP/s``: the batch's fastest and the task's best so far."""
    current = max((tuner.throughput(r) for r in results), default=0.0)
    best = tuner.task.flop / tuner.best_cost / 1e9 if tuner.best_cost < float("inf") else 0.0
    return f"current/best: {current:.2f}/{best:.2f} GFLOP/s"


def _errors(tuner: Any) -> int:
    return sum(count for status, count in tuner.statuses.items() if status.value != "ok")


TABLE_WIDTH = 100


def _elide(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def summary_table(results: Sequence[TuneResult], width: int = TABLE_WIDTH) -> str:
    """One row per task (number, task, trials, errors, default and best GFLOP/s, speedup, wall time), then each
    task's best config on lines of its own; nothing wider than ``width`` columns."""
    headers = ["#", "task", "trials", "errors", "default GF/s", "best GF/s", "speedup", "wall"]
    rows = []
    for k, result in enumerate(results, start=1):
        default = result.default_gflops
        speedup = f"{result.best_gflops / default:.2f}x" if default else "n/a"
        rows.append([str(k), result.task.label, str(result.trials + result.prior_trials), str(result.errors),
                     f"{default:.2f}" if default else "n/a", f"{result.best_gflops:.2f}", speedup,
                     format_duration(result.wall_time)])
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    others = sum(widths) - widths[1] + 2 * (len(headers) - 1)
    widths[1] = max(len(headers[1]), min(widths[1], width - others))
    numeric = {0, 2, 3, 4, 5, 6, 7}

    def line(cells: list[str]) -> str:
        padded = [(_elide(c, w).rjust(w) if i in numeric else _elide(c, w).ljust(w))
                  for i, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(padded).rstrip()

    lines = [line(headers), *(line(row) for row in rows)]
    configs = [(k, r.best_config) for k, r in enumerate(results, start=1) if r.best_config is not None]
    if configs:
        lines.append("best configs:")
    for k, config in configs:
        text = ", ".join(f"{name}={entity.to_json()}" for name, entity in config.choices.items())
        lines += textwrap.wrap(text, width, initial_indent=f"  {k}. ", subsequent_indent=" " * (len(str(k)) + 4))
    checked = [(k, r.quality) for k, r in enumerate(results, start=1) if r.quality]
    if checked:
        lines.append("cost model on held-out configs (measured after each fit, before the next):")
    for k, quality in checked:
        lines.append(_elide(f"  {k}. {_quality_text(quality)}", width))
    return "\n".join(lines)


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _quality_text(quality: Sequence[Any]) -> str:
    last = quality[-1]
    mean_rho = _mean([q.spearman for q in quality])
    mean_recall = _mean([q.recall for q in quality])
    return (f"last: {last}; mean over {len(quality)} fits: Spearman {mean_rho:.2f}, "
            f"top-k recall {mean_recall:.2f}")


def summary_json(results: Sequence[TuneResult]) -> dict[str, Any]:
    """The summary as JSON data: per task the trials, errors, default and best GFLOP/s (each the best of all its
    measurements), the speedup, the best config and every check of the cost model."""
    tasks = []
    for result in results:
        default, best = result.default_gflops, result.best_gflops
        tasks.append({
            "task": result.task.to_json(), "label": result.task.label,
            "trials": result.trials + result.prior_trials, "errors": result.errors,
            "default_gflops": round(default, 4), "best_gflops": round(best, 4),
            "speedup": round(best / default, 4) if default else None,
            "best_config": result.best_config.to_json() if result.best_config is not None else None,
            "wall_time": round(result.wall_time, 3),
            "cost_model": [q.to_json() for q in result.quality],
        })
    return {"tasks": tasks}


def importance_lines(name: str, importances: Sequence[tuple[str, float]]) -> list[str]:
    """``tcomp tune --explain``: the features the cost model of task ``name`` split on most, with their share of
    the total gain."""
    if not importances:
        return [f"{name}: the cost model was not fitted (too few successful trials)"]
    lines = [f"{name}: feature importances (share of the model's total gain)"]
    lines += [f"  {share:6.1%}  {feature}" for feature, share in importances]
    return lines
