"""How many trials the xgb tuner needs against random search, replayed on measured tables (no timing noise).

Each table under ``tests/data/tuning/`` holds configs of one task measured once (``measure_table.py``): the ResNet-50
3x3 convolution's whole space, samples of matmul 256^3 and of the batch-1 dense layer. Every tuner searches the
table's configs and "measures" by looking them up (``tcomp.autotune.replay``), so a run costs the model's fits and
nothing else, and a seed always gives the same run. Printed per workload and tuner: the trial at which each seed's
best reached ``--level`` (95%) of the table's best, and the median (a seed that never does counts as budget + 1).
Live runs on the machine are ``bench/tune_search.py``'s; replays say which search finds fast configs sooner, not
how fast a config runs.

``xgb`` starts from the prior (``tcomp.autotune.prior``: measured tables of other tasks of the same template shipped
with tcomp; none of them is a replayed task), ``xgb-no-prior`` starts blind.

    python bench/tune_replay.py [--workloads conv3x3,gemm,dense] [--seeds 5] [--trials 64]
                                [--tuners xgb,xgb-no-prior,random]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table  # noqa: E402

from tcomp.autotune import FeatureExtractor, TunerKind  # noqa: E402
from tcomp.autotune.replay import MeasuredTable, replay, trials_to_reach  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "tuning"
TABLES = {"conv3x3": "conv3x3_measured.json", "gemm": "gemm256_measured.json", "dense": "dense1000_measured.json"}


def _tuner(name: str) -> tuple[TunerKind, dict[str, bool]]:
    """A tuner kind and its options from a name: a ``TunerKind`` value, or ``xgb-no-prior``."""
    if name == "xgb-no-prior":
        return TunerKind.XGB, {"prior": False}
    return TunerKind(name), {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default=",".join(TABLES))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--level", type=float, default=0.95)
    parser.add_argument("--tuners", default="xgb,xgb-no-prior,random")
    args = parser.parse_args()
    tuners = [(name, *_tuner(name)) for name in args.tuners.split(",")]
    rows = []
    for workload in args.workloads.split(","):
        path = DATA / TABLES[workload]
        if not path.exists():
            print(f"== {workload}: no table ({path.name}); measure it with tests/data/tuning/measure_table.py")
            continue
        table = MeasuredTable.load(path)
        best = table.best_gflops
        reachable = sum(1 for g in table.gflops.values() if g >= args.level * best)
        print(f"== {workload}: {table.task}, {len(table.gflops)} configs measured of {len(table.task.config_space)}; "
              f"best {best:.1f} GF/s, {reachable} within {args.level:.0%} of it", flush=True)
        extractor = FeatureExtractor(table.task)  # each config lowered once for all seeds
        for name, kind, options in tuners:
            start = time.perf_counter()
            reached = []
            for seed in range(args.seeds):
                result = replay(kind, table, seed, args.trials, batch_size=args.batch_size, extractor=extractor,
                                **options)
                reached.append(trials_to_reach(result.curve, args.level * best))
            counted = [t if t is not None else args.trials + 1 for t in reached]
            rows.append([workload, name, f"{statistics.median(counted):g}",
                         " ".join(str(t) if t is not None else "-" for t in reached),
                         f"{time.perf_counter() - start:.0f}"])
            print(f"  {name:>12}: median {statistics.median(counted):g}  ({rows[-1][3]})", flush=True)
    print()
    print(f"trials to {args.level:.0%} of the table's best, replayed, {args.seeds} seeds x {args.trials} trials, "
          f"batches of {args.batch_size} (- : not within the budget, counted as {args.trials + 1})")
    print_table(["workload", "tuner", "median trials", "per seed", "seconds"], rows)


if __name__ == "__main__":
    main()
