"""Whole models at batch 1: tcomp against onnxruntime in the same run, idle and under load.

Models (``--models``, by default all but the optional ones; see ``model_sources.py``): ResNet-50, a ViT-B/16-like and
a BERT-base-like encoder (sequence 128) exported from Hugging Face transformers code, VGG-19, ZFNet-512, ShuffleNet
and SqueezeNet (the onnx package's light models) and MobileNetV2; when named, DenseNet-121 and Inception v2 (light
models too), a GPT-2-small-like and a Llama-like decoder (sequence 128), a T5-small-like encoder (sequence 128), a
Whisper-base-like encoder (30 s of audio), ConvNeXt-tiny and Swin-tiny (224x224), one generation step of those two
decoders (a token and the key/value cache of the 127 before it), a BLOOM-like decoder and a DeBERTa-v3-base-like
encoder (sequence 128), exported from transformers code, and ``<export>_int8`` / ``<export>_qdq``: exports quantized
by onnxruntime's ``quantize_dynamic`` (int8 weights, activations quantized at run time) or its ``quantize_static``
(QDQ format). The exports are hundreds of MB and live in a cache folder (``--cache``, default
``~/.cache/tcomp/bench_models``); ``--export --export-python PYTHON`` (re)generates them with an interpreter that has
torch and transformers.

For each model: tcomp compiles it (with ``--tuning-records`` when given; then also without them, and the untuned
executor runs in the same rounds: its median and its ratio to the tuned one are printed too) and onnxruntime opens it
with ``--threads`` intra-op threads (tcomp's target has as many cores). Every tcomp result is checked against
onnxruntime's (relative error: max |difference| / max |reference|, the largest over the outputs). Then both run
interleaved, round after round (``--rounds``, each round ``--number`` timed runs of each library, in an order that
turns every round), so they see the same machine load; every run takes the inputs and returns the outputs as arrays
on both sides (tcomp's ``run(inputs)``, onnxruntime's ``session.run``) and is one sample, and the table gives min,
median and p99 latency per library and the tcomp / onnxruntime ratio of each. The summary gives the ratios of every
model and their geometric mean.

``--precision bf16`` compiles tcomp's executor with bfloat16 matrix products (``tcomp.target.Precision``: the
products of rows with a constant weight on operands rounded to bfloat16, sums in float32); the float32 executor then
runs in the same rounds too, and its median and the bf16 / fp32 ratio are printed. onnxruntime stays in float32: the
relative error printed is the rounding's.

``--background-load 0,1`` runs every model twice: idle (0), then with one extra process running a 1-thread busy
loop for the whole timing (1); with several conditions the summary adds each library's slowdown under load (median
loaded / median idle). The busy processes are started before the rounds and stopped after them.

    python bench/models.py [--models resnet50,vit,bert] [--rounds 10] [--number 3] [--threads 2]
                           [--background-load 0[,1]] [--cache DIR] [--export --export-python PYTHON]
                           [--tuning-records tuning.jsonl] [--precision fp32|bf16] [--profile 10]
                           [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import print_table  # noqa: E402
from model_sources import ALL, DEFAULT_CACHE, FAMILY, OPTIONAL, MissingModel, Source, load_source  # noqa: E402

import tcomp.graph as tg  # noqa: E402
from tcomp.runtime.timer import alternating  # noqa: E402

BUSY_LOOP = "while True:\n    pass\n"


@dataclass(frozen=True)
class Latency:
    """Seconds per run over every sample: min, median and 99th percentile."""

    min: float
    median: float
    p99: float

    @staticmethod
    def of(samples: list[float]) -> Latency:
        return Latency(min(samples), float(np.median(samples)), float(np.percentile(samples, 99)))


@dataclass(frozen=True)
class Row:
    model: str
    load: int
    tcomp: Latency
    ort: Latency
    untuned: Latency | None = None  # tcomp without the tuning records, in the same rounds (with --tuning-records)
    fp32: Latency | None = None  # tcomp in float32, in the same rounds (with --precision other than fp32)

    def ratios(self) -> tuple[float, float, float]:
        return (self.tcomp.min / self.ort.min, self.tcomp.median / self.ort.median, self.tcomp.p99 / self.ort.p99)


class BackgroundLoad:
    """``count`` processes each running a 1-thread busy loop while the context is open."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> BackgroundLoad:
        for _ in range(self.count):
            self.processes.append(subprocess.Popen([sys.executable, "-c", BUSY_LOOP]))
        if self.count:
            time.sleep(0.2)  # the loops are running before the first sample
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            process.kill()
            process.wait()
        self.processes.clear()


def interleaved(runners: dict[str, Callable[[], Any]], rounds: int, number: int) -> dict[str, Latency]:
    """Every runner ``number`` timed runs per round, in turning orders (``tcomp.runtime.timer.alternating``)."""
    return {name: Latency.of(values) for name, values in alternating(runners, rounds, number).items()}


def relative_error(got: np.ndarray, reference: np.ndarray) -> float:
    scale = float(np.abs(reference).max()) or 1.0
    return float(np.abs(got.astype(np.float64) - reference).max() / scale)


def bench_model(source: Source, args: argparse.Namespace, loads: list[int]) -> list[Row]:
    import onnxruntime as ort

    timings: dict[str, float] = {}
    start = time.perf_counter()
    executor = tg.compile(source.model, f"llvm -num-cores={args.threads}", tuning_records=args.tuning_records,
                          timings=timings, precision=args.precision)
    seconds = time.perf_counter() - start
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(source.model, options, providers=["CPUExecutionProvider"])
    references = session.run(None, source.inputs)
    error = max(relative_error(got, want) for got, want in zip(executor.run(dict(source.inputs)), references))
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in timings.items())
    plan = executor.graph.meta["memory_plan"]
    print(f"{source.name} ({source.note}): compiled in {seconds:.1f} s ({stages}); {executor.num_kernels} kernels; "
          f"relative error {error:.1e}; activations {plan.planned_bytes / 2**20:.1f} MiB "
          f"planned, {plan.unplanned_bytes / 2**20:.1f} MiB unplanned", flush=True)
    # each side takes the inputs and returns the outputs as arrays, every run
    runners = {"tcomp": partial(executor.run, source.inputs), "onnxruntime": partial(session.run, None, source.inputs)}
    if args.tuning_records:
        untuned = tg.compile(source.model, f"llvm -num-cores={args.threads}")
        runners["untuned"] = partial(untuned.run, source.inputs)
    if args.precision != "fp32":
        fp32 = tg.compile(source.model, f"llvm -num-cores={args.threads}", tuning_records=args.tuning_records)
        runners["fp32"] = partial(fp32.run, source.inputs)
    rows = []
    for load in loads:
        with BackgroundLoad(load):
            result = interleaved(runners, args.rounds, args.number)
        rows.append(Row(source.name, load, result["tcomp"], result["onnxruntime"], result.get("untuned"),
                        result.get("fp32")))
        print_rows([rows[-1]])
    if args.profile:
        profile = sorted(executor.profile(repeat=5), key=lambda r: -r[2])
        total = sum(r[2] for r in profile)
        print_table(["node", "kernel", "ms", "share"],
                    [[n[:48], e[:48], f"{s * 1e3:.3f}", f"{s / total:.1%}"] for n, e, s in profile[: args.profile]])
    return rows


def print_rows(rows: list[Row]) -> None:
    table = []
    for row in rows:
        ratios = row.ratios()
        table.append([row.model, str(row.load), *(f"{v * 1e3:.2f}" for v in (row.tcomp.min, row.tcomp.median,
                                                                            row.tcomp.p99)),
                      *(f"{v * 1e3:.2f}" for v in (row.ort.min, row.ort.median, row.ort.p99)),
                      *(f"{r:.2f}" for r in ratios)])
    print_table(["model", "load", "tcomp min", "median", "p99", "ort min", "median", "p99", "min/ort", "median/ort",
                 "p99/ort"], table)
    baselines = {"untuned": ("untuned", "tuned/untuned"), "fp32": ("tcomp fp32", "narrow/fp32")}
    for field, (label, ratio) in baselines.items():
        baseline = [(row, getattr(row, field)) for row in rows if getattr(row, field) is not None]
        if baseline:  # a second tcomp executor timed in the same rounds
            print_table(["model", "load", f"{label} median", f"{field}/ort", ratio],
                        [[row.model, str(row.load), f"{other.median * 1e3:.2f}", f"{other.median / row.ort.median:.2f}",
                          f"{row.tcomp.median / other.median:.2f}"] for row, other in baseline])


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def summary(rows: list[Row], loads: list[int], threads: int, precision: str = "fp32") -> None:
    print(f"\nsummary: batch 1, float32 (int8 products in *_int8, *_qdq; tcomp's products in {precision} where "
          f"not fp32), {threads} threads, latencies in ms; "
          "ratio = tcomp / onnxruntime "
          f"(targets on the median: transformers and resnet50 <= 1.0, every model <= 1.2, geomean <= 1.0)")
    for load in loads:
        chosen = [r for r in rows if r.load == load]
        if not chosen:
            continue
        print(f"\nbackground load: {load} busy process(es)")
        print_rows(chosen)
        medians = [r.ratios()[1] for r in chosen]
        print(f"geomean of ratios: min {geomean([r.ratios()[0] for r in chosen]):.2f}, median "
              f"{geomean(medians):.2f}, p99 {geomean([r.ratios()[2] for r in chosen]):.2f}")
    if len(loads) > 1:
        base = loads[0]
        table = []
        for load in loads[1:]:
            for row in (r for r in rows if r.load == load):
                idle = next((r for r in rows if r.load == base and r.model == row.model), None)
                if idle is None:
                    continue
                tcomp, ort = row.tcomp.median / idle.tcomp.median, row.ort.median / idle.ort.median
                table.append([row.model, f"{base} -> {load}", f"{tcomp:.2f}", f"{ort:.2f}", f"{tcomp / ort:.2f}"])
        print("\nslowdown under load (median loaded / median idle); target: tcomp's no worse than onnxruntime's")
        print_table(["model", "load", "tcomp", "onnxruntime", "tcomp / ort"], table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(ALL),
                        help=f"comma-separated, from {','.join(ALL)} (the default) and {','.join(OPTIONAL)}")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--number", type=int, default=3, help="timed runs per library per round")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--background-load", default="0", help="comma-separated busy-process counts, e.g. 0,1")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="folder of the exported transformers")
    parser.add_argument("--export", action="store_true", help="(re)export the transformers into --cache first")
    parser.add_argument("--export-python", default=None, help="interpreter with torch and transformers")
    parser.add_argument("--tuning-records", default=None)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                        help="tcomp's matrix products: float32, or bfloat16 operands (the float32 executor runs too)")
    parser.add_argument("--profile", type=int, default=0, help="print each model's N slowest kernels")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this file")
    args = parser.parse_args()
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = sorted(set(names) - set(ALL) - set(OPTIONAL))
    if unknown:
        parser.error(f"unknown models {unknown}; models: {','.join(ALL + OPTIONAL)}")
    loads = [int(v) for v in args.background_load.split(",")]
    if any(v < 0 for v in loads):
        parser.error("--background-load counts must not be negative")
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start", flush=True)
    rows: list[Row] = []
    skipped: dict[str, str] = {}
    for name in names:
        try:
            source = load_source(name, args.cache, args.export, args.export_python)
            rows.extend(bench_model(source, args, loads))
        except MissingModel as missing:
            skipped[name] = str(missing)
        except Exception as error:  # noqa: BLE001  (report every model, keep going)
            skipped[name] = f"{type(error).__name__}: {str(error)[:300]}"
        if name in skipped:
            print(f"{name}: skipped: {skipped[name]}", flush=True)
    summary(rows, loads, args.threads, args.precision)
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    if args.json:
        args.json.write_text(json.dumps({"rows": [asdict(r) | {"family": FAMILY[r.model]} for r in rows],
                                         "skipped": skipped, "threads": args.threads}, indent=1))


if __name__ == "__main__":
    main()
