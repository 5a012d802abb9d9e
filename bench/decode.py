"""Generation steps at several cache lengths, and prompts of several lengths: tcomp against onnxruntime.

Models (``--models``): ``gpt2_decode_dynamic`` and ``llama_decode_dynamic`` (``bench/export_transformers.py``: one
step of the GPT-2-small-like and Llama-like decoders, exported with the key/value cache's length symbolic, as
serving exports leave it; the default), ``gpt2_decode_batch_dynamic`` (GPT-2's step for a batch of sequences,
the batch's size symbolic too), ``gpt2_prompt_dynamic``, ``llama_prompt_dynamic`` and
``bert_prompt_dynamic`` (the same decoders, and the BERT-base-like encoder, reading a prompt whose length is
symbolic), ``gpt2_batch_dynamic``, ``llama_batch_dynamic`` and ``bert_batch_dynamic`` (a batch of prompts whose
size and length are both symbolic, as optimum exports them), from the cache folder of ``bench/models.py``
(``--export --export-python PYTHON`` exports them). tcomp compiles each once (a ``SpecializingExecutor``);
onnxruntime opens it with ``--threads`` intra-op threads.

For each length (``--lengths``; ``BATCHxLENGTH`` for the batch models): a token id and a random cache of that
length, or prompts of random token ids; the
first tcomp run (at a new length it may compile: its seconds, and the process's memory growth, are printed), the
relative error against onnxruntime (max |difference| / max |reference| over the outputs), then both run with the same
inputs in alternating rounds (``--rounds`` of ``--number`` runs each, ``tcomp.runtime.timer.alternating``); each
call is ``run(inputs)``, the outputs returned as arrays, as a generation loop calls it. The table gives min, median
and p99 latency per library and their ratios.

``--generate N`` measures generation instead: N steps from a random cache of the first ``--lengths`` length, each
step's cache (its ``present.*`` outputs) fed to the next as ``past.*``, so every step runs at a new length. The
first tcomp generation compiles (the first length, then the model for its symbolic cache length, then an executor
per power of two of the length): its total is printed. Then ``--rounds`` generations per library, in alternating
order, give the per-token latencies of the table (min, median, p99) and the median total.

    python bench/decode.py [--models gpt2_decode_dynamic,llama_decode_dynamic,gpt2_prompt_dynamic,...]
                           [--lengths 127,511,1000]   (--models gpt2_batch_dynamic --lengths 4x32,2x128,1x128)
                           [--rounds 6] [--number 5] [--generate N] [--threads 2] [--cache DIR]
                           [--export --export-python PYTHON]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import print_table  # noqa: E402
from model_sources import DEFAULT_CACHE, ensure_exported, example_inputs  # noqa: E402
from models import Latency, interleaved, relative_error  # noqa: E402

import tcomp.graph as tg  # noqa: E402

# each model's symbolic dimensions: the cache's length, or the prompt's (and the batch's size)
MODELS = {"gpt2_decode_dynamic": ("past",), "llama_decode_dynamic": ("past",),
          "gpt2_decode_batch_dynamic": ("batch", "past"), "gpt2_prompt_dynamic": ("seq",),
          "llama_prompt_dynamic": ("seq",), "bert_prompt_dynamic": ("seq",),
          "gpt2_batch_dynamic": ("batch", "seq"), "llama_batch_dynamic": ("batch", "seq"),
          "bert_batch_dynamic": ("batch", "seq")}
DEFAULT_MODELS = ("gpt2_decode_dynamic", "llama_decode_dynamic")


def resident_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096 / 2**20


def bench(name: str, args: argparse.Namespace) -> list[list[str]]:
    import onnx
    import onnxruntime as ort

    path = ensure_exported(name, args.cache, args.export, args.export_python)
    model = onnx.load(str(path), load_external_data=False)
    executor = tg.compile(str(path), target=f"llvm -num-cores={args.threads}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    rows = []
    for sizes in args.lengths:
        # a token and a cache, or prompts
        inputs = example_inputs(model, seed=sizes[-1], dims=dict(zip(MODELS[name], sizes)))
        length = "x".join(map(str, sizes))
        before = resident_mb()
        start = time.perf_counter()
        got = executor.run(inputs)
        first = time.perf_counter() - start
        grown = resident_mb() - before
        want = session.run(None, inputs)
        error = max(relative_error(g, w) for g, w in zip(got, want))  # type: ignore[arg-type]
        timed = interleaved({"tcomp": partial(executor.run, inputs), "ort": partial(session.run, None, inputs)},
                            args.rounds, args.number)
        t, o = timed["tcomp"], timed["ort"]
        rows.append([name, str(length), f"{first:.2f}", f"{grown:.0f}", f"{t.min * 1e3:.2f}", f"{t.median * 1e3:.2f}",
                     f"{t.p99 * 1e3:.2f}", f"{o.min * 1e3:.2f}", f"{o.median * 1e3:.2f}", f"{o.p99 * 1e3:.2f}",
                     f"{t.min / o.min:.2f}", f"{t.median / o.median:.2f}", f"{t.p99 / o.p99:.2f}", f"{error:.1e}"])
        print(f"{name} length {length}: first run {first:.2f} s, tcomp median {t.median * 1e3:.2f} ms, onnxruntime "
              f"{o.median * 1e3:.2f} ms", flush=True)
    return rows


def generate(run: Callable[[dict[str, np.ndarray]], list[np.ndarray]], output_names: Sequence[str],
             start: dict[str, np.ndarray], steps: int) -> list[float]:
    """Seconds per step of a generation of ``steps`` tokens from the inputs ``start``: each step's ``present.*``
    outputs are the next step's ``past.*`` inputs."""
    feeds, times = dict(start), []
    for _ in range(steps):
        began = time.perf_counter()
        outputs = run(feeds)
        times.append(time.perf_counter() - began)
        for name, value in zip(output_names, outputs):
            if name.startswith("present."):
                feeds["past." + name[len("present."):]] = value
    return times


def bench_generation(name: str, args: argparse.Namespace) -> list[list[str]]:
    import onnx
    import onnxruntime as ort

    path = ensure_exported(name, args.cache, args.export, args.export_python)
    model = onnx.load(str(path), load_external_data=False)
    start = example_inputs(model, seed=0, dims={"past": args.lengths[0][0]})
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in model.graph.output]  # the order both libraries return the outputs in
    began = time.perf_counter()
    executor = tg.compile(str(path), target=f"llvm -num-cores={args.threads}")
    generate(executor.run, names, start, args.generate)
    cold = time.perf_counter() - began  # compile() itself, and the first generation
    runners = {"tcomp": lambda: generate(executor.run, names, start, args.generate),
               "ort": lambda: generate(lambda feeds: session.run(None, feeds), names, start, args.generate)}
    samples: dict[str, list[float]] = {n: [] for n in runners}
    totals: dict[str, list[float]] = {n: [] for n in runners}
    runners["ort"]()  # warm-up
    for index in range(args.rounds):
        for runner in (runners if index % 2 == 0 else dict(reversed(runners.items()))):
            times = runners[runner]()
            samples[runner].extend(times)
            totals[runner].append(sum(times))
    t, o = Latency.of(samples["tcomp"]), Latency.of(samples["ort"])
    t_total, o_total = float(np.median(totals["tcomp"])), float(np.median(totals["ort"]))
    print(f"{name}: {args.generate} tokens from a cache of {args.lengths[0][0]}: the first tcomp generation took "
          f"{cold:.2f} s with compiling; then tcomp {t_total:.3f} s, onnxruntime {o_total:.3f} s per generation "
          f"({executor.compilations} compilation, {executor.assembled} executors assembled)", flush=True)
    return [[name, f"{args.lengths[0][0]}+{args.generate}", f"{cold:.2f}", f"{t.min * 1e3:.2f}",
             f"{t.median * 1e3:.2f}", f"{t.p99 * 1e3:.2f}", f"{o.min * 1e3:.2f}", f"{o.median * 1e3:.2f}",
             f"{o.p99 * 1e3:.2f}", f"{t.median / o.median:.2f}", f"{t_total:.3f}", f"{o_total:.3f}",
             f"{t_total / o_total:.2f}"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--lengths", default="127,511,1000")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--number", type=int, default=5)
    parser.add_argument("--generate", type=int, default=0, help="measure generations of this many tokens")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--export", action="store_true")
    parser.add_argument("--export-python")
    args = parser.parse_args()
    args.lengths = [tuple(int(n) for n in sizes.split("x")) for sizes in args.lengths.split(",")]
    names = args.models.split(",")
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        parser.error(f"unknown models {unknown}; models: {list(MODELS)}")
    wrong = [name for name in names if any(len(sizes) != len(MODELS[name]) for sizes in args.lengths)]
    if wrong:
        parser.error(f"--lengths gives {list(MODELS[wrong[0]])} for {wrong[0]}, one value each: "
                     f"{'x'.join(s.upper() for s in MODELS[wrong[0]])}")
    if args.generate and any(MODELS[name] != ("past",) for name in names):
        parser.error("--generate runs the decoding steps (models with a cache)")
    if args.generate:
        rows = [row for name in names for row in bench_generation(name, args)]
        print(f"\nbatch 1, float32, {args.threads} threads; per-token latencies in ms over {args.rounds} generations "
              "each; cold: compile() and the first tcomp generation (s); totals: median seconds per generation")
        print_table(["model", "tokens", "cold", "tcomp min", "median", "p99", "ort min", "median", "p99",
                     "median/ort", "tcomp total", "ort total", "total/ort"], rows)
        return
    rows = [row for name in names for row in bench(name, args)]
    print(f"\nfloat32, {args.threads} threads; latencies in ms; first: the first run at a new length, "
          "which may compile (s), and the memory it added (MB); ratio = tcomp / onnxruntime")
    print_table(["model", "length", "first", "+MB", "tcomp min", "median", "p99", "ort min", "median", "p99",
                 "min/ort", "median/ort", "p99/ort", "rel err"], rows)


if __name__ == "__main__":
    main()
