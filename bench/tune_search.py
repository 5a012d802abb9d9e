"""How many trials the xgb tuner needs against random search, over several seeds, on three workloads.

For each workload (a GEMM, a ResNet-50 3x3 convolution in the blocked layout models compile it in, a batch-1
dense layer) and each seed, the xgb tuner and random search each tune the task with the same trial budget and the
same measurement options; the records of all runs are kept. The reference "best known" is the best config any run
of that workload found, measured again at the end beside the default config (interleaved, best of ``--confirm``
runs each), so that curves compare with one figure measured under the same load. Printed per workload and tuner:
the median (and each seed's) number of trials to reach 95% of the best known, the median best GFLOP/s as a ratio
of the best known, and whether every run's best beat (or tied) its default measured fairly (``Tuner.confirm``).
The machine is shared and noisy: compare ratios from one run. Each workload's table is printed as soon as its
runs are done, with the load average; ``--out FILE`` also writes every run's curve as JSON.

    python bench/tune_search.py [--workloads gemm,conv3x3,dense] [--seeds 5] [--trials 64] [--out runs.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table  # noqa: E402

from tcomp import autotune  # noqa: E402
from tcomp.autotune.measure import MeasureInput  # noqa: E402

WORKLOADS = {
    "gemm": ("matmul", (256, 256, 256)),
    # ResNet-50's stage-3 3x3 convolution (256 channels, 14x14), blocked by 16 as the model compiles it
    "conv3x3": ("conv2d_nchwc_blocked", (1, 256, 14, 14, 256, 3, 3, 1, 1, 16, 16)),
    "dense": ("dense", (1, 1000, 2048)),  # ResNet-50's classifier, batch 1
}


def trials_to(curve: list[float], level: float) -> int | None:
    for trial, value in enumerate(curve, start=1):
        if value >= level:
            return trial
    return None


def reference_gflops(task: autotune.Task, configs: list[autotune.ConfigEntity], measurer: autotune.Measurer,
                     times: int) -> dict[int, float]:
    """Each config (and the default) measured ``times`` more times, interleaved: the best GFLOP/s of each."""
    unique = {c.index: c for c in [task.config_space.fallback, *configs]}
    inputs = [MeasureInput(task, c) for _ in range(times) for c in unique.values()]
    best: dict[int, float] = {}
    for inp, result in zip(inputs, measurer.measure(inputs)):
        if result.ok:
            best[inp.config.index] = max(best.get(inp.config.index, 0.0), task.flop / result.cost / 1e9)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="gemm,conv3x3,dense")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--confirm", type=int, default=3)
    parser.add_argument("--tuners", default="xgb,random")
    parser.add_argument("--out", default=None, help="write each run's curve (best GFLOP/s per trial) as JSON here")
    args = parser.parse_args()
    options = autotune.MeasureOptions(number=3, repeat=3)
    kinds = [autotune.TunerKind(k) for k in args.tuners.split(",")]
    rows = []
    saved: dict[str, object] = {}
    with autotune.Measurer(options) as measurer:
        for workload in args.workloads.split(","):
            name, shape = WORKLOADS[workload]
            task = autotune.create_task(name, shape)
            print(f"== {workload}: {task} ({len(task.config_space)} configs), {args.seeds} seeds x {args.trials} "
                  f"trials per tuner; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
            runs: dict[autotune.TunerKind, list[autotune.TuneResult]] = {k: [] for k in kinds}
            start = time.perf_counter()
            for seed in range(args.seeds):
                for kind in kinds:
                    tuner = autotune.create_tuner(kind, task, seed=seed)
                    result = tuner.tune(args.trials, measurer=measurer, batch_size=args.batch_size,
                                        confirm=args.confirm)
                    runs[kind].append(result)
                    search = getattr(tuner, "fit_time", 0.0)  # refits and annealing (model-based tuners)
                    print(f"  seed {seed} {kind.value:>6}: best {result.best_gflops:7.1f} GF/s, default "
                          f"{result.default_gflops:7.1f} GF/s, {result.wall_time:4.0f} s ({search:.0f} s of it "
                          "searching)", flush=True)
                    if args.out:  # every run as soon as it ends: an interrupted benchmark keeps its curves
                        saved[workload] = {"task": task.to_json(), "runs": runs_json(runs)}
                        Path(args.out).write_text(json.dumps(saved, indent=1))
            bests = [r.best_config for rs in runs.values() for r in rs if r.best_config is not None]
            reference = reference_gflops(task, bests, measurer, args.confirm)
            known = max(max(reference.values(), default=0.0),
                        max((r.best_gflops for rs in runs.values() for r in rs), default=0.0))
            default = reference.get(task.config_space.fallback.index, 0.0)
            print(f"  best known {known:.1f} GF/s; default {default:.1f} GF/s (measured again beside it); "
                  f"{time.perf_counter() - start:.0f} s")
            table = []
            for kind, results in runs.items():
                reached = [trials_to(r.curve, 0.95 * known) for r in results]
                counted = [t if t is not None else args.trials + 1 for t in reached]
                fair = all(r.best_cost <= r.default_cost for r in results)
                table.append([workload, kind.value, f"{statistics.median(counted):.0f}",
                              " ".join(str(t) if t is not None else "-" for t in reached),
                              f"{statistics.median(r.best_gflops for r in results) / known:.2f}",
                              f"{statistics.median(r.best_gflops / r.default_gflops for r in results):.2f}",
                              "yes" if fair else "NO", model_check(results)])
            rows += table
            print_results(table, f"{workload}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
            saved[workload] = {"task": task.to_json(), "known_gflops": known, "default_gflops": default,
                               "runs": runs_json(runs)}
            if args.out:
                Path(args.out).write_text(json.dumps(saved, indent=1))
    print_results(rows, "all workloads")


def runs_json(runs: dict[autotune.TunerKind, list[autotune.TuneResult]]) -> dict[str, object]:
    return {kind.value: [{"seed": seed, "curve": r.curve, "best_gflops": r.best_gflops,
                          "default_gflops": r.default_gflops, "wall_s": r.wall_time,
                          "quality": [q.to_json() for q in r.quality]}
                         for seed, r in enumerate(results)]
            for kind, results in runs.items()}


def model_check(results: list[autotune.TuneResult]) -> str:
    """The median over the runs of the Spearman correlation of the cost model's last check on held-out configs
    (``XGBTuner.quality``), ``-`` for tuners without a model."""
    last = [r.quality[-1].spearman for r in results if r.quality and math.isfinite(r.quality[-1].spearman)]
    return f"{statistics.median(last):.2f}" if last else "-"


def print_results(rows: list[list[str]], title: str) -> None:
    print()
    print(f"trials to 95% of the best known ({title}; - : not within the budget, counted as budget + 1 in the "
          "median)")
    print_table(["workload", "tuner", "median trials", "per seed", "best/known", "best/default", "best>=default",
                 "Spearman"], rows)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
