"""Measure random configs of the matmul 256^3 template once, for the cost-model test (``test_model_quality.py``).

Writes ``gemm256_measured.json``: the target, the date, and for each config its knob choices and GFLOP/s (the best
of ``--passes`` measurements taken in separate passes, so a load spike in one pass does not decide a config's
place). The test fits the cost model on 64 of them and ranks the rest; measuring once and committing the table
keeps that test quick and free of timing noise. Rerun after a change of the template's knobs:

    python tests/data/tuning/measure_gemm_table.py [--configs 320] [--passes 2]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from tcomp import autotune
from tcomp.autotune.measure import MeasureInput

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=320)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=str(HERE / "gemm256_measured.json"))
    args = parser.parse_args()
    task = autotune.create_task("matmul", (256, 256, 256), "llvm")
    space = task.config_space
    indices = space.sample(np.random.default_rng(args.seed), args.configs)
    best: dict[int, float] = {}
    with autotune.Measurer(autotune.MeasureOptions()) as measurer:
        for _ in range(args.passes):
            results = measurer.measure([MeasureInput(task, space.get(i)) for i in indices])
            for index, result in zip(indices, results):
                gflops = task.flop / result.cost / 1e9 if result.ok else 0.0
                best[index] = max(best.get(index, 0.0), gflops)
    table = {
        "task": task.to_json(), "measured": time.strftime("%Y-%m-%d"), "passes": args.passes,
        "load_average": os.getloadavg()[0],
        "configs": [{"knobs": space.get(i).to_json()["knobs"], "gflops": round(best[i], 3)} for i in indices],
    }
    Path(args.output).write_text(json.dumps(table, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"{len(indices)} configs -> {args.output}")


if __name__ == "__main__":
    main()
