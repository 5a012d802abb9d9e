"""Measure random configs of a tuning task once, for the cost-model tests and for replays.

Workloads: ``gemm`` (matmul 256^3, ``gemm256_measured.json``), ``conv3x3`` (ResNet-50's stage-3 3x3 convolution in
the blocked layout models compile it in, ``conv3x3_measured.json``; its space is small enough to measure whole) and
``dense`` (ResNet-50's classifier at batch 1, ``dense1000_measured.json``). The default config and its neighbours
(every config one knob away from it: where the xgb tuner's first batch searches) are always among the measured ones,
besides ``--configs`` drawn at random. Writes the target, the date, and for each config its knob choices and
GFLOP/s (the best of ``--passes`` measurements taken in separate passes, so a load spike in one pass does not
decide a config's place).
The cost-model tests (``test_model_quality.py``) fit the model on 64 of them and rank the rest, and replays
(``tcomp.autotune.replay``, ``bench/tune_replay.py``) tune against them; measuring once and committing the table
keeps both quick and free of timing noise. Rerun after a change of the template's knobs:

    python tests/data/tuning/measure_table.py [--workload gemm] [--configs 320] [--passes 2]

Any other task: ``--template NAME --shape 1,2,3 [--target "llvm -mcpu=haswell"] --output PATH`` (an output ending
in ``.gz`` is gzip-compressed). The prior's tables (``tcomp/autotune/priors``) were measured so, 200 random configs
(``--configs 200 --seed 1``; every config of a smaller space) and 2 passes, e.g.::

    python tests/data/tuning/measure_table.py --template matmul --shape 384,640,512 --configs 200 --seed 1 \
        --target "llvm -mcpu=haswell" --output tcomp/autotune/priors/matmul_384x640x512_haswell.json.gz
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time
from pathlib import Path

import numpy as np

from tcomp import autotune
from tcomp.autotune.measure import MeasureInput

HERE = Path(__file__).resolve().parent
WORKLOADS = {
    "gemm": ("matmul", (256, 256, 256), "gemm256_measured.json"),
    "conv3x3": ("conv2d_nchwc_blocked", (1, 256, 14, 14, 256, 3, 3, 1, 1, 16, 16), "conv3x3_measured.json"),
    "dense": ("dense", (1, 1000, 2048), "dense1000_measured.json"),  # ResNet-50's classifier, batch 1
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="gemm")
    parser.add_argument("--configs", type=int, default=320)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None, help="default: the workload's table beside this script")
    parser.add_argument("--template", default=None, help="measure this template instead of --workload")
    parser.add_argument("--shape", default=None, help="the template's arguments, comma-separated (with --template)")
    parser.add_argument("--target", default="llvm")
    args = parser.parse_args()
    if args.template is not None:
        if args.shape is None or args.output is None:
            parser.error("--template needs --shape and --output")
        name, shape = args.template, tuple(int(v) for v in args.shape.split(","))
        output = args.output
    else:
        name, shape, table_name = WORKLOADS[args.workload]
        output = args.output or str(HERE / table_name)
    task = autotune.create_task(name, shape, args.target)
    space = task.config_space
    fallback = space.fallback.index  # the default config first: replays start from it, as tuning does
    around = [fallback, *space.neighbours(fallback)]
    count = min(args.configs, len(space) - len(around))
    indices = [*around, *space.sample(np.random.default_rng(args.seed), count, exclude=set(around))]
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
    text = (json.dumps(table, separators=(",", ":")) + "\n").encode("utf-8")
    Path(output).write_bytes(gzip.compress(text, mtime=0) if output.endswith(".gz") else text)
    print(f"{len(indices)} configs -> {output}")


if __name__ == "__main__":
    main()
