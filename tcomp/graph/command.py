"""``tcomp compile`` and ``tcomp run``: the graph compiler on the command line (tvmc's option names).

    tcomp compile model.onnx --target llvm [--tuning-records tuning.jsonl] \\
        [--input-shapes "data:[1,3,224,224] mask:[1,128]"] -o out/
    tcomp run out/ --inputs x.npz --repeat 20 --print-time [--profile] [--outputs y.npz]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

_SHAPE = re.compile(r"\s*([^\s\[\]]+?):\[([^\]]*)\]\s*")


def parse_input_shapes(texts: list[str]) -> dict[str, list[int]]:
    """``"data:[1,3,224,224] mask:[1,128]"`` (several per argument, or the option repeated) -> ``{name: shape}``."""
    shapes: dict[str, list[int]] = {}
    for text in texts:
        position = 0
        while position < len(text):
            match = _SHAPE.match(text, position)
            if match is None or match.end() == position:
                raise ValueError(f"--input-shapes: cannot read {text[position:]!r}; expected name:[d0,d1,...]")
            name, dims = match.group(1), match.group(2)
            try:
                shapes[name] = [int(d) for d in dims.split(",") if d.strip()]
            except ValueError:
                raise ValueError(f"--input-shapes: dimensions of {name!r} must be integers, got [{dims}]") from None
            position = match.end()
    return shapes


def progress_bar(label: str, stream: Any = None) -> Callable[[int, int, str], None]:
    """A progress callback ``(done, total, item)`` drawing a bar on ``stream`` (stderr)."""
    out = stream or sys.stderr
    interactive = hasattr(out, "isatty") and out.isatty()

    def update(done: int, total: int, item: str) -> None:
        width = 30
        filled = width * done // max(total, 1)
        line = f"{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {item[:40]}"
        if interactive:
            out.write("\r" + line.ljust(100))
            if done == total:
                out.write("\n")
        elif done == total:
            out.write(line + "\n")
        out.flush()

    return update


def add_compile_arguments(parser: argparse.ArgumentParser) -> None:
    from tcomp.graph.pipeline import PassOptions

    parser.add_argument("model", help="the ONNX model file")
    parser.add_argument("--target", default="llvm", help='target string (default: llvm, this CPU)')
    parser.add_argument("--tuning-records", default=None, help="tuning records (JSON lines from tcomp tune)")
    parser.add_argument("--input-shapes", action="append", default=[],
                        help='shapes of the inputs, e.g. "data:[1,3,224,224] mask:[1,128]" (needed for dynamic '
                             "dimensions)")
    parser.add_argument("-o", "--output", required=True, help="folder to write the compiled model to")
    parser.add_argument("--disable-pass", action="append", default=[], choices=PassOptions.names(),
                        help="switch a graph pass off (repeatable)")
    parser.add_argument("--dump-ir", action="store_true", help="print the graph after every pass")


def run_compile(args: argparse.Namespace) -> int:
    import tcomp.graph as tg
    from tcomp.graph.pipeline import PassOptions, print_dump

    try:
        shapes = parse_input_shapes(args.input_shapes)
        options = PassOptions.without(args.disable_pass)
        start = time.perf_counter()
        timings: dict[str, float] = {}
        executor = tg.compile(args.model, args.target, input_shapes=shapes, tuning_records=args.tuning_records,
                              options=options, dump=print_dump if args.dump_ir else None, timings=timings,
                              progress=progress_bar("compiling"))
        executor.export(args.output)
    except (tg.GraphError, ValueError, OSError) as exc:
        print(f"tcomp compile: error: {exc}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - start
    stats = executor.program.stats
    plan = executor.graph.meta.get("memory_plan") if executor.graph is not None else None
    print(f"compiled {args.model} for {executor.program.target} in {elapsed:.1f} s: {executor.num_kernels} kernels"
          f" ({stats.get('tuned_kernels', 0)} tuned), written to {args.output}")
    if plan is not None:
        print(plan.summary())
    return 0


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="a folder written by tcomp compile")
    parser.add_argument("--inputs", default=None, help=".npz file with the inputs by name (missing ones are filled)")
    parser.add_argument("--fill-mode", default="random", choices=["random", "zeros", "ones"],
                        help="how to fill inputs not given in --inputs (default: random)")
    parser.add_argument("--repeat", type=int, default=1, help="how many times to run (default 1)")
    parser.add_argument("--print-time", action="store_true", help="print mean, median and std latency")
    parser.add_argument("--profile", action="store_true", help="print the time of each kernel")
    parser.add_argument("-o", "--outputs", default=None, help=".npz file to write the outputs to")
    parser.add_argument("--print-top", type=int, default=0, help="print the top N values of each output")


def _fill(shape: tuple[int, ...], dtype: str, mode: str, rng: np.random.Generator) -> np.ndarray:
    from tcomp.ir import dtype as dt

    np_dtype = dt.to_numpy(dtype)
    if mode == "zeros":
        return np.zeros(shape, np_dtype)
    if mode == "ones":
        return np.ones(shape, np_dtype)
    if np.dtype(np_dtype).kind == "f":
        return rng.standard_normal(shape).astype(np_dtype)
    if np.dtype(np_dtype).kind == "b":
        return rng.random(shape) < 0.5
    return rng.integers(0, 2, size=shape).astype(np_dtype)


def run_run(args: argparse.Namespace) -> int:
    import tcomp.graph as tg

    try:
        executor = tg.load_executor(args.folder)
        given: dict[str, np.ndarray] = {}
        if args.inputs:
            with np.load(args.inputs, allow_pickle=False) as archive:
                given = {k: archive[k] for k in archive.files}
        unknown = sorted(set(given) - set(executor.input_names))
        if unknown:
            raise ValueError(f"--inputs has arrays {unknown} that are not inputs of the model "
                             f"({list(executor.input_names)})")
        rng = np.random.default_rng(0)
        for name in executor.input_names:
            t = executor.program.types[name]
            executor.set_input(name, given[name] if name in given else _fill(t.shape, t.dtype, args.fill_mode, rng))
        if args.repeat < 1:
            raise ValueError("--repeat must be at least 1")
        times = executor.benchmark(repeat=args.repeat, number=1, warmup=1)
    except (tg.GraphError, ValueError, KeyError, TypeError, OSError) as exc:
        print(f"tcomp run: error: {exc}", file=sys.stderr)
        return 1
    if args.print_time:
        ms = np.array(times) * 1e3
        print(f"Execution time summary ({args.repeat} runs):")
        print(f" {'mean (ms)':>10} {'median (ms)':>12} {'max (ms)':>10} {'min (ms)':>10} {'std (ms)':>10}")
        print(f" {ms.mean():10.3f} {np.median(ms):12.3f} {ms.max():10.3f} {ms.min():10.3f} {ms.std():10.3f}")
    if args.profile:
        rows = executor.profile(repeat=max(1, min(args.repeat, 20)))
        total = sum(r[2] for r in rows) or 1.0
        print(f"{'kernel':<48} {'node':<36} {'time (ms)':>10} {'share':>7}")
        for node, entry, seconds in sorted(rows, key=lambda r: -r[2]):
            print(f"{entry[:48]:<48} {node[:36]:<36} {seconds * 1e3:10.3f} {seconds / total:7.1%}")
        print(f"{'total':<85} {total * 1e3:10.3f}")
    outputs = {name: executor.get_output(i) for i, name in enumerate(executor.program.outputs)}
    if args.outputs:
        np.savez(args.outputs, **outputs)
    for name, value in outputs.items():
        if args.print_top:
            flat = value.reshape(-1)
            top = np.argsort(flat)[::-1][: args.print_top]
            print(f"output {name}: top {args.print_top} indices {top.tolist()} values {flat[top].tolist()}")
        elif not args.outputs:
            print(f"output {name}: {value.dtype}{list(value.shape)}")
    return 0
