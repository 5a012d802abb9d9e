"""Run a compiled model folder, timing and profiling it.

    tcomp run out/ --inputs x.npz --repeat 20 --print-time [--profile] [--outputs y.npz]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
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


def run(args: argparse.Namespace) -> int:
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
