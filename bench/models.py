"""Whole models at batch 1, float32: tcomp (untuned, and with tuning records when given) against onnxruntime, in the
same run; compile time; activation memory with and without the memory plan.

The model is built with ``tcomp.graph.testing`` (the real architecture, random weights; ResNet-50 at 224x224 by
default). onnxruntime runs with ``--threads`` intra-op threads (default 2, the machine's cores). The runs are
interleaved round after round so both libraries see the same machine load; the table gives min and median latency
per round (``--number`` runs each) and tcomp / onnxruntime ratios. Every tcomp result is checked against
onnxruntime's (relative error: max |difference| / max |reference|).

    python bench/models.py [--model resnet50] [--image-size 224] [--rounds 15] [--number 3]
                           [--tuning-records tuning.jsonl] [--threads 2] [--profile 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import Timing, print_table, wait_until_threads_idle  # noqa: E402

import tcomp.graph as tg  # noqa: E402
from tcomp.graph import testing  # noqa: E402


def build_model(name: str, image_size: int) -> Any:
    builders = {
        "resnet50": lambda: testing.resnet(50, image_size=image_size),
        "resnet18": lambda: testing.resnet(18, image_size=image_size),
        "vgg16": lambda: testing.vgg(16, image_size=image_size),
        "mobilenet_v2": lambda: testing.mobilenet_v2(image_size=image_size),
    }
    if name not in builders:
        raise SystemExit(f"unknown model {name!r}; choose from {sorted(builders)}")
    return builders[name]()


@dataclass
class Compiled:
    label: str
    executor: tg.GraphExecutor
    seconds: float
    timings: dict[str, float]


def compile_tcomp(model: Any, label: str, tuning_records: str | None = None,
                  options: tg.PassOptions | None = None) -> Compiled:
    timings: dict[str, float] = {}
    start = time.perf_counter()
    executor = tg.compile(model, "llvm", tuning_records=tuning_records, options=options, timings=timings)
    return Compiled(label, executor, time.perf_counter() - start, timings)


def interleaved(runners: dict[str, Any], rounds: int, number: int) -> dict[str, Timing]:
    results: dict[str, list[float]] = {name: [] for name in runners}
    for run in runners.values():
        run()  # warm-up
    for _ in range(rounds):
        for name, run in runners.items():
            wait_until_threads_idle()  # the other runtime's spinning threads go to sleep first
            start = time.perf_counter()
            for _ in range(number):
                run()
            results[name].append((time.perf_counter() - start) / number)
    return {name: Timing.of(values) for name, values in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--number", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tuning-records", default=None)
    parser.add_argument("--profile", type=int, default=0, help="print the N slowest kernels of the untuned model")
    args = parser.parse_args()

    import onnxruntime as ort

    model = build_model(args.model, args.image_size)
    x = np.random.default_rng(0).standard_normal((1, 3, args.image_size, args.image_size)).astype(np.float32)
    compiled = [compile_tcomp(model, "tcomp")]
    if args.tuning_records:
        compiled.append(compile_tcomp(model, "tcomp tuned", args.tuning_records))
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(model.SerializeToString(), options)
    [reference] = session.run(None, {"data": x})

    runners: dict[str, Any] = {}
    for entry in compiled:
        [got] = entry.executor.run([x])
        error = float(np.abs(got - reference).max() / np.abs(reference).max())
        stages = ", ".join(f"{k} {v:.1f}s" for k, v in entry.timings.items())
        print(f"{entry.label}: compiled in {entry.seconds:.1f} s ({stages}); {entry.executor.num_kernels} kernels, "
              f"{entry.executor.program.stats.get('tuned_kernels', 0)} tuned; "
              f"relative error {error:.1e}")
        runners[entry.label] = entry.executor.run
    runners["onnxruntime"] = lambda: session.run(None, {"data": x})
    timings = interleaved(runners, args.rounds, args.number)

    ort_time = timings["onnxruntime"]
    rows = []
    for name, timing in timings.items():
        rows.append([name, f"{timing.min * 1e3:.2f}", f"{timing.median * 1e3:.2f}",
                     f"{timing.min / ort_time.min:.2f}", f"{timing.median / ort_time.median:.2f}"])
    print(f"\n{args.model}, batch 1, float32, {args.image_size}x{args.image_size}, {args.threads} threads, "
          f"{args.rounds} rounds x {args.number} runs")
    print_table(["runtime", "min (ms)", "median (ms)", "min / ort", "median / ort"], rows)

    plan = compiled[0].executor.graph.meta["memory_plan"]
    unplanned, planned = plan.unplanned_bytes, plan.planned_bytes
    print(f"\nactivation memory: {unplanned / 2**20:.1f} MiB without planning (every value its own buffer), "
          f"{planned / 2**20:.1f} MiB planned ({planned / unplanned:.1%}; target at most 50%; lower bound "
          f"{plan.peak_live_bytes / 2**20:.1f} MiB live at once), "
          f"{len(plan.storage_bytes)} storages, {sum(len(p) for p in plan.inplace.values())} in-place")

    if args.profile:
        rows = sorted(compiled[0].executor.profile(repeat=5), key=lambda r: -r[2])[: args.profile]
        print_table(["node", "kernel", "ms"], [[n, e, f"{s * 1e3:.3f}"] for n, e, s in rows])


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()
