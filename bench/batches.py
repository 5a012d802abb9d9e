"""CNNs whose batch is a symbolic dimension, at several batch sizes: tcomp against onnxruntime.

Models (``--models``): ``resnet50``, ``resnet18`` and ``mobilenet_v2`` as ``tcomp.graph.testing`` builds them (the
real architectures, random weights), their input ``data`` declared ``[batch, 3, 224, 224]``, as a server that
batches requests exports them. tcomp compiles each once (a ``SpecializingExecutor``): the first batch size for its
exact shapes, the second probes the model for the symbolic batch, and every later size runs on the kernels compiled
then (an executor resized per power of two). onnxruntime opens the same model with ``--threads`` intra-op threads.

For each batch size (``--batches``): random images; the first tcomp run (its seconds: a compilation, a probe, or a
resize), the relative error against onnxruntime (max |difference| / max |reference|), then both run with the same
inputs in alternating rounds (``--rounds`` of ``--number`` runs each). The table gives min, median and p99 latency
per library and their ratios.

    python bench/batches.py [--models resnet50,mobilenet_v2] [--batches 1,2,4,8,3] [--rounds 5] [--number 3]
                            [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import print_table  # noqa: E402
from models import interleaved, relative_error  # noqa: E402

import tcomp.graph as tg  # noqa: E402
from tcomp.graph import testing  # noqa: E402

MODELS: dict[str, Callable[[], object]] = {
    "resnet50": partial(testing.resnet, 50, batch="batch"),
    "resnet18": partial(testing.resnet, 18, batch="batch"),
    "mobilenet_v2": partial(testing.mobilenet_v2, batch="batch"),
}


def bench(name: str, args: argparse.Namespace) -> list[list[str]]:
    import onnxruntime as ort

    model = MODELS[name]().SerializeToString()  # type: ignore[attr-defined]
    executor = tg.compile(model, target=f"llvm -num-cores={args.threads}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    rows = []
    for batch in args.batches:
        inputs = {"data": rng.standard_normal((batch, 3, 224, 224)).astype(np.float32)}
        start = time.perf_counter()
        got = executor.run(inputs)
        first = time.perf_counter() - start
        error = relative_error(got[0], session.run(None, inputs)[0])
        timed = interleaved({"tcomp": partial(executor.run, inputs), "ort": partial(session.run, None, inputs)},
                            args.rounds, args.number)
        t, o = timed["tcomp"], timed["ort"]
        rows.append([name, str(batch), f"{first:.2f}", f"{t.min * 1e3:.2f}", f"{t.median * 1e3:.2f}",
                     f"{t.p99 * 1e3:.2f}", f"{o.min * 1e3:.2f}", f"{o.median * 1e3:.2f}", f"{o.p99 * 1e3:.2f}",
                     f"{t.min / o.min:.2f}", f"{t.median / o.median:.2f}", f"{t.p99 / o.p99:.2f}", f"{error:.1e}"])
        print(f"{name} batch {batch}: first run {first:.2f} s, tcomp median {t.median * 1e3:.2f} ms, onnxruntime "
              f"{o.median * 1e3:.2f} ms", flush=True)
    print(f"{name}: {executor.compilations} exact compilation(s), {executor.assembled} executor(s) assembled from "
          f"the kernels for the symbolic batch, {executor.resized} resized run(s)", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="resnet50,mobilenet_v2")
    parser.add_argument("--batches", default="1,2,4,8,3")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--number", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    args.batches = [int(b) for b in args.batches.split(",")]
    names = args.models.split(",")
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        parser.error(f"unknown models {unknown}; models: {list(MODELS)}")
    rows = [row for name in names for row in bench(name, args)]
    print(f"\nfloat32, {args.threads} threads; latencies in ms; first: the first run at a new batch size (s); "
          "ratio = tcomp / onnxruntime")
    print_table(["model", "batch", "first", "tcomp min", "median", "p99", "ort min", "median", "p99", "min/ort",
                 "median/ort", "p99/ort", "rel err"], rows)


if __name__ == "__main__":
    main()
