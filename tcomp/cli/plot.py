"""The tuning plot, drawn with matplotlib (the optional extra ``tcomp[plot]``).

One figure: on top, the estimated latency of the tuned operators against tuning time (``curves.py``: the model's
view of the run); below, a small-multiples grid with one panel per task: every trial's GFLOP/s as grey dots, the
best so far as a line, the default schedule as a dashed line, and the task's best and speedup in the corner. Every
panel uses the same colours, so many tasks never run out of distinct colours, and each panel is titled with its
task (the template on one line, its arguments on the next). Without matplotlib, ``plot_tuning`` raises
``PlotUnavailable`` and the command writes the CSV alone.
"""

from __future__ import annotations

import math
import os
import textwrap

from tcomp.cli.curves import TaskCurve, TuningCurves

BEST = "#1f5fa6"
TRIAL = "#9a9a9a"
DEFAULT = "#c0392b"
MAX_COLUMNS = 5


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


def _pyplot():  # noqa: ANN202 - matplotlib is optional
    try:
        import matplotlib
    except ImportError:
        raise PlotUnavailable("plots need matplotlib: pip install 'tcomp[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def panel_title(index: int, curve: TaskCurve) -> str:
    """``3. conv2d_nchwc_blocked`` over its arguments, wrapped to fit a panel."""
    task = curve.task
    args = ", ".join(str(a) for a in task.args)
    times = f", {curve.weight} operators" if curve.weight > 1 else ""
    lines = [f"{index}. {task.name}{times}", *textwrap.wrap(f"({args})", 44)[:2]]
    return "\n".join(lines)


def _time_unit(seconds: float) -> tuple[float, str]:
    if seconds >= 2 * 3600:
        return 3600.0, "hours"
    if seconds >= 120:
        return 60.0, "minutes"
    return 1.0, "seconds"


def _draw_model_curve(ax, curves: TuningCurves) -> None:  # noqa: ANN001
    points = [(t, v) for t, v in zip(curves.elapsed, curves.latency) if math.isfinite(v)]
    total = sum(c.weight for c in curves.tasks)
    ax.set_title(f"Estimated latency of the tuned operators ({len(curves.tasks)} tasks, {total} operators)",
                 fontsize=11)
    if not points:
        ax.text(0.5, 0.5, "no task has a successful measurement yet", ha="center", va="center",
                transform=ax.transAxes)
        return
    scale, unit = _time_unit(points[-1][0])
    times = [t / scale for t, _ in points]
    values = [v * 1e3 for _, v in points]
    ax.step(times, values, where="post", color=BEST, linewidth=2)
    first, last = values[0], values[-1]
    ax.axhline(first, color=DEFAULT, linestyle="--", linewidth=1)
    ax.annotate(f"default schedules: {first:.3g} ms", (times[-1], first), textcoords="offset points",
                xytext=(-4, -13), ha="right", fontsize=9, color=DEFAULT)
    ax.annotate(f"best: {last:.3g} ms ({first / last:.2f}x)", (times[-1], last), textcoords="offset points",
                xytext=(-4, -14), ha="right", fontsize=9, color=BEST)
    ax.set_xlabel(f"tuning time ({unit})")
    ax.set_ylabel("ms")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)


def _draw_task(ax, index: int, curve: TaskCurve, bottom: bool, left: bool) -> None:  # noqa: ANN001
    trials = list(range(1, len(curve.gflops) + 1))
    ax.plot(trials, curve.gflops, ".", color=TRIAL, markersize=3, label="trial")
    ax.plot(trials, curve.best_gflops, color=BEST, linewidth=1.6, label="best so far")
    if curve.default_gflops > 0:
        ax.axhline(curve.default_gflops, color=DEFAULT, linestyle="--", linewidth=0.9, label="default schedule")
    ax.set_title(panel_title(index, curve), fontsize=8, loc="left")
    best = curve.best_gflops[-1] if curve.best_gflops else 0.0
    speedup = f", {best / curve.default_gflops:.2f}x" if curve.default_gflops > 0 else ""
    ax.text(0.98, 0.04, f"{best:.1f} GFLOP/s{speedup}", transform=ax.transAxes, ha="right", va="bottom",
            fontsize=8, color=BEST)
    ax.tick_params(labelsize=7)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    if bottom:
        ax.set_xlabel("trial", fontsize=8)
    if left:
        ax.set_ylabel("GFLOP/s", fontsize=8)


def plot_tuning(path: str | os.PathLike[str], curves: TuningCurves, title: str = "") -> None:
    """Write the figure described in the module docstring to ``path`` (PNG, or any format matplotlib knows by
    the suffix)."""
    plt = _pyplot()
    n = max(1, len(curves.tasks))
    columns = min(MAX_COLUMNS, max(1, math.ceil(math.sqrt(n))), n)
    rows = math.ceil(n / columns)
    figure = plt.figure(figsize=(max(7.0, 3.3 * columns), 3.4 + 2.5 * rows), layout="constrained")
    grid = figure.add_gridspec(rows + 1, columns, height_ratios=[1.5] + [1.0] * rows)
    _draw_model_curve(figure.add_subplot(grid[0, :]), curves)
    axes = []
    for k, curve in enumerate(curves.tasks):
        row, column = divmod(k, columns)
        ax = figure.add_subplot(grid[1 + row, column])
        _draw_task(ax, k + 1, curve, bottom=row == rows - 1 or k + columns >= n, left=column == 0)
        axes.append(ax)
    if axes:
        handles, labels = axes[0].get_legend_handles_labels()
        figure.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=8, frameon=False)
    if title:
        figure.suptitle(title, fontsize=12)
    figure.savefig(path, dpi=110)
    plt.close(figure)
