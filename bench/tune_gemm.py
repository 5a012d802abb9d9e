"""Autotuning a float32 GEMM (1024^3 by default) on llvm: the xgb tuner against random search, same budget.

For each tuner: the best GFLOP/s found, the trials it needed to reach 90% of the best any tuner found (and 0.9x
numpy), its wall time and the wall time of its first 64 trials. numpy (OpenBLAS) is measured in the same run; at
the end each tuner's best config is rebuilt here and timed interleaved with numpy, so the final ratios compare
code under the same machine load. The machines are shared and noisy: compare ratios from one run.

    python bench/tune_gemm.py [--size 1024] [--trials 200] [--tuners xgb,random] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Timing, print_table, time_callable, wait_until_threads_idle  # noqa: E402

import tcomp  # noqa: E402
from tcomp import autotune  # noqa: E402
from tcomp.autotune.record import log_to_file  # noqa: E402
from tcomp.cli.report import ProgressPrinter  # noqa: E402


@dataclass
class Run:
    kind: autotune.TunerKind
    result: autotune.TuneResult | None = None
    wall_64: float | None = None
    batch_ends: list[tuple[int, float]] = field(default_factory=list)


def numpy_gflops(a: np.ndarray, b: np.ndarray, repeat: int = 10) -> float:
    out = np.empty((a.shape[0], b.shape[1]), dtype=np.float32)
    timing = time_callable(lambda: np.matmul(a, b, out=out), repeat=repeat, number=3)
    wait_until_threads_idle()  # let OpenBLAS's spinning threads go idle before anything else is timed
    return 2.0 * a.shape[0] * a.shape[1] * b.shape[1] / timing.min / 1e9


def trials_to_reach(curve: list[float], level: float) -> int | None:
    for trial, value in enumerate(curve, start=1):
        if value >= level:
            return trial
    return None


def verify(task: autotune.Task, config: autotune.ConfigEntity, a: np.ndarray, b: np.ndarray,
           repeat: int) -> tuple[Timing, Timing]:
    """Build the config here, check it, and time it interleaved with numpy: (tcomp timing, numpy timing)."""
    schedule, tensors = task.instantiate(config)
    module = tcomp.build(schedule, tensors, target=task.target)
    c = np.zeros((a.shape[0], b.shape[1]), dtype=np.float32)
    module(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-3, atol=1e-3)
    out = np.empty_like(c)
    evaluator = module.time_evaluator(number=3, repeat=1)
    ours, theirs = [], []
    for _ in range(repeat):
        ours.extend(evaluator(a, b, c).results)
        theirs.append(time_callable(lambda: np.matmul(a, b, out=out), repeat=1, number=3).min)
        wait_until_threads_idle()  # OpenBLAS threads spin after a call and would slow the next tcomp repeat
    return Timing.of(ours), Timing.of(theirs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--tuners", default="xgb,random", help="comma-separated tuner kinds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--records-dir", default=None, help="where to keep the records (default: a temp dir)")
    parser.add_argument("--verify-repeat", type=int, default=10)
    args = parser.parse_args()

    n = args.size
    target = tcomp.Target.current_host()
    task = autotune.create_task("matmul", (n, n, n), target)
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    numpy_before = numpy_gflops(a, b)
    print(f"GEMM {n}^3 float32 on {target}; space of {len(task.config_space)} configs; "
          f"numpy {numpy_before:.1f} GFLOP/s")
    extractor = autotune.FeatureExtractor(task)
    sample = task.config_space.sample(np.random.default_rng(1), 50)
    start = time.perf_counter()
    extractor.get(sample)
    print(f"loop-IR feature extraction: {(time.perf_counter() - start) / len(sample) * 1e3:.2f} ms per config")
    records_dir = Path(args.records_dir or tempfile.mkdtemp(prefix="tune_gemm_"))
    records_dir.mkdir(parents=True, exist_ok=True)
    options = autotune.MeasureOptions(build_timeout=args.timeout, run_timeout=args.timeout)
    runs = [Run(autotune.TunerKind(name)) for name in args.tuners.split(",")]
    with autotune.Measurer(options) as measurer:
        for run in runs:
            tuner = autotune.create_tuner(run.kind, task, seed=args.seed)
            start = time.perf_counter()

            def note(tuner: autotune.Tuner, inputs: object, results: object, run: Run = run,
                     start: float = start) -> None:
                run.batch_ends.append((tuner.trial_count, time.perf_counter() - start))
                if run.wall_64 is None and tuner.trial_count >= 64:
                    run.wall_64 = time.perf_counter() - start

            path = records_dir / f"{run.kind.value}.jsonl"
            path.unlink(missing_ok=True)
            print(f"-- {run.kind.value}: records in {path}")
            run.result = tuner.tune(args.trials, measurer=measurer, batch_size=8,
                                    callbacks=[log_to_file(path), ProgressPrinter(args.trials), note])
    numpy_after = numpy_gflops(a, b)
    numpy_ref = max(numpy_before, numpy_after)

    best_overall = max(r.result.best_gflops for r in runs if r.result)
    rows = []
    for run in runs:
        res = run.result
        assert res is not None
        to90 = trials_to_reach(res.curve, 0.9 * best_overall)
        to_numpy = trials_to_reach(res.curve, 0.9 * numpy_ref)
        best64 = res.curve[min(63, len(res.curve) - 1)] if res.curve else 0.0
        rows.append([run.kind.value, f"{res.default_gflops:.1f}", f"{res.best_gflops:.1f}", f"{best64:.1f}",
                     f"{res.best_gflops / numpy_ref:.2f}", str(to90 or "-"), str(to_numpy or "-"),
                     str(res.errors), f"{res.wall_time:.0f}", f"{run.wall_64:.0f}" if run.wall_64 else "-"])
    print()
    print(f"numpy: {numpy_before:.1f} GFLOP/s before tuning, {numpy_after:.1f} after (reference: the higher)")
    print_table(["tuner", "default GF/s", "best GF/s", "best@64", "x numpy", "trials->90% best",
                 "trials->0.9x numpy", "errors", "wall s", "wall@64 s"], rows)

    print("\nbest configs rebuilt and timed interleaved with numpy (GFLOP/s from the min / median of repeats):")
    flops = 2.0 * n ** 3
    verify_rows = []
    for run in runs:
        res = run.result
        if res is None or res.best_config is None:
            continue
        ours, theirs = verify(task, res.best_config, a, b, args.verify_repeat)
        verify_rows.append([run.kind.value, f"{flops / ours.min / 1e9:.1f}", f"{flops / ours.median / 1e9:.1f}",
                            f"{flops / theirs.min / 1e9:.1f}", f"{theirs.min / ours.min:.2f}",
                            f"{theirs.median / ours.median:.2f}"])
        print(f"  {run.kind.value}: {res.best_config}")
    print_table(["tuner", "tcomp GF/s(min)", "tcomp GF/s(med)", "numpy GF/s(min)", "x numpy(min)", "x numpy(med)"],
                verify_rows)
    if len(runs) >= 2 and all(r.result for r in runs):
        needed = {r.kind.value: trials_to_reach(r.result.curve, 0.9 * best_overall) for r in runs if r.result}
        print("\ntrials to reach 90% of the overall best: " +
              ", ".join(f"{k}: {v if v is not None else 'not reached'}" for k, v in needed.items()))
    if not math.isfinite(best_overall):
        sys.exit(1)


if __name__ == "__main__":
    main()
