"""Tuning the packed GEMM of a transformer's products from panels (``panel_matmul``) against its default tile.

For each product (BERT-base at 128 tokens and ViT-B/16's 197 by default: the merged query/key/value projection, the
output projection and the two feed-forward products), ``tcomp tune --op panel_matmul --trials N`` runs, the best
record is picked as a compiled model picks it (``best_by_task``), and then the default and the best config are built
here, checked against numpy, and timed in alternation in this process (so both see the same load): min, median and
p99 of each, and the speedup as the ratio of medians. The machines are shared and noisy: compare within one run.

    python bench/tune_panels.py [--trials 48] [--shapes 128x768x768,197x3072x768] [--repeat 40]
                                [--records-dir DIR [--measure-only]]

``--measure-only`` times the best records already in ``--records-dir`` against the default again, without tuning.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table  # noqa: E402

import tcomp  # noqa: E402
from tcomp.autotune import ConfigEntity, Task, create_task  # noqa: E402
from tcomp.autotune.record import best_by_task, load_records  # noqa: E402
from tcomp.autotune.templates.cpu.panels import panel_tile_of  # noqa: E402
from tcomp.cli import main as cli_main  # noqa: E402
from tcomp.ops.cpu.common import CpuTarget  # noqa: E402
from tcomp.ops.cpu.dense import panels_plan  # noqa: E402
from tcomp.ops.cpu.panel_tiles import panel_workload  # noqa: E402
from tcomp.ops.panels import pack_panels  # noqa: E402

SHAPES = ["128x2304x768", "128x768x768", "128x3072x768", "128x768x3072",
          "197x2304x768", "197x768x768", "197x3072x768", "197x768x3072"]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def paired(task: Task, configs: list[ConfigEntity], repeat: int) -> list[list[float]]:
    """Seconds per call of each config, timed in alternation (the order flipped every round)."""
    rows, columns, depth, width, panel_depth = task.args[:5]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, depth)).astype(np.float32)
    weight = rng.standard_normal((depth, columns)).astype(np.float32)
    panels = pack_panels(weight, width, panel_depth)
    want = x.astype(np.float64) @ weight
    evaluators = []
    for config in configs:
        schedule, tensors = task.instantiate(config)
        module = tcomp.build(schedule, tensors, target=task.target)
        out = np.zeros((rows, columns), np.float32)
        module(x, panels, out)
        np.testing.assert_allclose(out, want, rtol=1e-3, atol=1e-3)
        evaluators.append((module.time_evaluator(number=5, repeat=1), out))
    times: list[list[float]] = [[] for _ in configs]
    for round_ in range(repeat):
        order = range(len(configs)) if round_ % 2 == 0 else reversed(range(len(configs)))
        for k in order:
            evaluator, out = evaluators[k]
            times[k].extend(evaluator(x, panels, out).results)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=48)
    parser.add_argument("--shapes", default=",".join(SHAPES), help="rows x columns x K, comma-separated")
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--records-dir", default=None)
    parser.add_argument("--measure-only", action="store_true", help="time the records of --records-dir again")
    args = parser.parse_args()
    if args.measure_only and not args.records_dir:
        parser.error("--measure-only needs --records-dir")
    target = tcomp.Target.current_host()
    cpu = CpuTarget.of(target)
    records_dir = Path(args.records_dir or tempfile.mkdtemp(prefix="tune_panels_"))
    records_dir.mkdir(parents=True, exist_ok=True)
    print(f"target {target}; load before: {os.getloadavg()}")
    table = []
    for shape in args.shapes.split(","):
        rows, columns, depth = (int(v) for v in shape.split("x"))
        plan = panels_plan(rows, columns, depth, cpu)
        if plan is None:
            print(f"{shape}: the packed GEMM does not take it")
            continue
        workload = panel_workload(rows, columns, depth, plan.blocking.nr, plan.Kp, True, "float32")
        task = create_task("panel_matmul", workload, target)
        path = records_dir / f"{shape}.jsonl"
        if not args.measure_only:
            path.unlink(missing_ok=True)
            argv = ["tune", "--op", "panel_matmul", "--shape", ",".join(str(v) for v in workload[:6]),
                    "--trials", str(args.trials), "--tuning-records", str(path)]
            print("tcomp " + " ".join(argv), flush=True)
            cli_main(argv)
        elif not path.exists():
            print(f"{shape}: no records in {path}")
            continue
        best = best_by_task(load_records(path)).get(task.key)
        fallback = task.config_space.fallback
        if best is None or best.config.same_choices(fallback):
            table.append([shape, str(panel_tile_of(fallback)), "default kept", "", "", "", "", "1.00"])
            continue
        default_times, best_times = paired(task, [fallback, best.config], args.repeat)
        flop = 2.0 * rows * columns * depth
        cells = []
        for times in (default_times, best_times):
            cells.append(f"{flop / min(times) / 1e9:.0f}/{flop / np.median(times) / 1e9:.0f}/"
                         f"{flop / percentile(times, 99) / 1e9:.0f}")
        speedup = float(np.median(default_times) / np.median(best_times))
        tile = panel_tile_of(best.config)
        table.append([shape, str(panel_tile_of(fallback)), str(tile), cells[0], cells[1],
                      f"{min(default_times) / min(best_times):.2f}", f"{np.median(default_times) * 1e6:.0f}",
                      f"{speedup:.2f}"])
        print(f"{shape}: default {panel_tile_of(fallback)}, best {tile}: x{speedup:.2f} (ratio of medians)",
              flush=True)
    print(f"\nload after: {os.getloadavg()}; GFLOP/s as min/median/p99 of {args.repeat} x 5 calls, paired")
    print_table(["shape", "default tile", "best tile", "default GF/s", "best GF/s", "x (min)", "default us (med)",
                 "x (median)"], table)


if __name__ == "__main__":
    main()
