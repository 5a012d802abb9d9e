"""Run a compiled model (a folder from ``tcomp compile``, or an ONNX model compiled on the
spot), timing and profiling it.

    tcomp run out/ --inputs x.npz --repeat 20 --print-time [--profile] [-o y.npz]
    tcomp run model.onnx --input-shapes "data:[1,3,224,224]" --print-top 5

Inputs not given are filled; outputs are written and printed under the model's names.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from tcomp.cli.arguments import add_compile_options, compile_model
from tcomp.graph import GraphError, SpecializingExecutor, load_executor
from tcomp.graph.export import GRAPH
from tcomp.ir import dtype as dt


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a folder written by tcomp compile, or an ONNX model file (compiled first, "
                        "as the compile options below say)")
    parser.add_argument("--inputs", default=None, help=".npz file with the inputs by name (missing ones are filled)")
    parser.add_argument("--fill-mode", default="random", choices=["random", "zeros", "ones"],
                        help="how to fill inputs not given in --inputs")
    parser.add_argument("--repeat", type=int, default=1, help="how many times to run")
    parser.add_argument("--print-time", action="store_true", help="print mean, median and std latency")
    parser.add_argument("--profile", action="store_true", help="print the time of each kernel")
    parser.add_argument("-o", "--outputs", default=None,
                        help=".npz file to write the outputs to, by output name (bfloat16 ones as float32, 4- and "
                             "2-bit integers as 8-bit)")
    parser.add_argument("--print-top", type=int, default=0, help="print the top N values of each output")
    group = parser.add_argument_group("compile options (for an ONNX model)")
    add_compile_options(group)  # type: ignore[arg-type]


def _executor(args: argparse.Namespace) -> Any:
    path = Path(args.model)
    if path.is_dir():
        return load_executor(path)
    if path.is_file():
        if path.suffix.lower() != ".onnx" and not _looks_like_onnx(path):
            raise ValueError(f"{path} is neither a folder written by tcomp compile nor an ONNX model (.onnx)")
        return compile_model(args, str(path))
    raise ValueError(f"{path} does not exist: give a folder written by tcomp compile (holding {GRAPH}) or an "
                     f".onnx model")


def _looks_like_onnx(path: Path) -> bool:
    """A protobuf ModelProto starts with field 1 (ir_version, a varint): the byte 0x08."""
    with open(path, "rb") as handle:
        return handle.read(1) == b"\x08"


def _fill(shape: tuple[int, ...], dtype: str, mode: str, rng: np.random.Generator) -> np.ndarray:
    np_dtype = dt.to_numpy(dtype)
    if mode == "zeros":
        return np.zeros(shape, np_dtype)
    if mode == "ones":
        return np.ones(shape, np_dtype)
    if dt.is_float(dtype):
        return rng.standard_normal(shape).astype(np_dtype)
    if np.dtype(np_dtype).kind == "b":
        return rng.random(shape) < 0.5
    return rng.integers(0, 2, size=shape).astype(np_dtype)


def _feed(executor: Any, args: argparse.Namespace) -> None:
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
        if name in given:
            executor.set_input(name, given[name])
            continue
        shape, dtype = _input_type(executor, name)
        executor.set_input(name, _fill(shape, dtype, args.fill_mode, rng))


def _input_type(executor: Any, name: str) -> tuple[tuple[int, ...], str]:
    """Shape and element type of input ``name``; a model compiled as it runs says them only where they are static."""
    if isinstance(executor, SpecializingExecutor):
        decl = executor.declared_input(name)
        if not decl.static:
            raise ValueError(f"input {name!r} has symbolic dimensions {list(decl.dims or ['?'])}: give it in --inputs "
                             f"or bind its shape with --input-shapes {name}:{decl.example()}")
        return tuple(int(d) for d in decl.dims or ()), decl.dtype
    t = executor.program.types[name]
    return t.shape, t.dtype


def run(args: argparse.Namespace) -> int:
    try:
        if args.repeat < 1:
            raise ValueError(f"--repeat must be at least 1, got {args.repeat}")
        executor = _executor(args)
        _feed(executor, args)
        times = executor.benchmark(repeat=args.repeat, number=1, warmup=1)
        _report(executor, args, times)
    except (GraphError, ValueError, KeyError, TypeError, OSError) as exc:
        print(f"tcomp run: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        written = f"; {args.outputs} was not written" if args.outputs else ""
        print(f"\ninterrupted{written}", file=sys.stderr)
        return 130
    return 0


def _report(executor: Any, args: argparse.Namespace, times: list[float]) -> None:
    if args.print_time:
        ms = np.array(times) * 1e3
        print(f"Execution time summary ({args.repeat} runs):")
        print(f" {'mean (ms)':>10} {'median (ms)':>12} {'max (ms)':>10} {'min (ms)':>10} {'std (ms)':>10}")
        print(f" {ms.mean():10.3f} {np.median(ms):12.3f} {ms.max():10.3f} {ms.min():10.3f} {ms.std():10.3f}")
    if args.profile:
        rows = executor.profile(repeat=max(1, min(args.repeat, 20)))
        total = sum(r[2] for r in rows) or 1.0
        print(f"{'kernel':<40} {'node':<32} {'time (ms)':>10} {'share':>7}")
        for node, entry, seconds in sorted(rows, key=lambda r: -r[2]):
            print(f"{entry[:40]:<40} {node[:32]:<32} {seconds * 1e3:10.3f} {seconds / total:7.1%}")
        print(f"{'total':<73} {total * 1e3:10.3f}")
    outputs = dict(zip(executor.output_names, (executor.get_output(i) for i in range(len(executor.output_names)))))
    if args.outputs:
        np.savez(args.outputs, **{k: v.astype(dt.exact_numpy(dt.normalize(v.dtype))) for k, v in outputs.items()})
    for name, value in outputs.items():
        if args.print_top:
            flat = value.reshape(-1)
            top = np.argsort(flat)[::-1][: args.print_top]
            print(f"output {name}: top {args.print_top} indices {top.tolist()} values {flat[top].tolist()}")
        elif not args.outputs:
            print(f"output {name}: {value.dtype}{list(value.shape)}")
