"""Trials per minute when tuning on a Dask cluster with 1 and 2 workers, against the local process pool.

One task (matmul 256^3 by default), random search with a fixed seed (the same configs for every executor), the
same measurement options. Each executor's rate is printed with its ratio to the local pool's rate measured in the
same run. A ``LocalCluster`` on this machine stands in for remote machines: its workers share this machine's cores
with each other, so 2 workers gain only where a core is idle (builds, process start-up), and the numbers say what
the Dask layer costs and how it scales, not what a cluster of separate boards gives. Needs ``tcomp[distributed]``.

    python bench/tune_dask.py [--shape 256,256,256] [--trials 32] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table  # noqa: E402

from tcomp import autotune  # noqa: E402
from tcomp.autotune.measurer import Measurer  # noqa: E402
from tcomp.autotune.tuner import RandomTuner  # noqa: E402


def tune_rate(task: autotune.Task, measurer: Measurer, trials: int, batch: int) -> tuple[float, int]:
    """(trials per minute, trials that measured OK)."""
    start = time.perf_counter()
    result = RandomTuner(task, seed=0).tune(trials, measurer=measurer, batch_size=batch, confirm=0)
    minutes = (time.perf_counter() - start) / 60
    return result.trials / minutes, result.statuses.get(autotune.MeasureStatus.OK, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="256,256,256")
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    try:
        import dask
        from dask.distributed import Client, LocalCluster
    except ImportError:
        sys.exit("bench/tune_dask.py needs dask.distributed: pip install 'tcomp[distributed]'")
    from tcomp.autotune.dask_executor import DaskExecutor, target_resource

    task = autotune.create_task("matmul", tuple(int(v) for v in args.shape.split(",")))
    options = autotune.MeasureOptions(number=2, repeat=3)
    print(f"{task}: {args.trials} random trials, batches of {args.batch_size}, {options.number}x{options.repeat} "
          f"runs per trial")
    rows = []
    with Measurer(options) as local:
        reference, ok = tune_rate(task, local, args.trials, args.batch_size)
    rows.append(["local process pool", f"{reference:.1f}", "1.00", str(ok)])
    for workers in (1, 2):
        with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                   resources={target_resource(task.target): 1})
        client = Client(cluster)
        try:
            executor = DaskExecutor(client, options)
            rate, ok = tune_rate(task, executor.measurer(), args.trials, args.batch_size)
        finally:
            client.close()
            cluster.close()
        rows.append([f"Dask, {workers} worker{'s' if workers > 1 else ''}", f"{rate:.1f}", f"{rate / reference:.2f}",
                     str(ok)])
    print_table(["executor", "trials/min", "x local", "trials OK"], rows)


if __name__ == "__main__":
    main()
