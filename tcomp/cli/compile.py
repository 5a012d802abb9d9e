"""Compile an ONNX model to a folder: native code, the graph, the parameters (tvmc's option names).

    tcomp compile model.onnx --target llvm [--tuning-records tuning.jsonl] \\
        [--input-shapes "data:[1,3,224,224] mask:[1,128]"] [--freeze "shape=[1,-1]"] -o out/

A bad ``--target`` is reported before the model is read; after Ctrl-C the command says
whether the folder was left incomplete.
"""

from __future__ import annotations

import argparse
import sys
import time

from tcomp.cli.arguments import add_compile_options, compile_model
from tcomp.graph import GraphError
from tcomp.target import Target


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="the ONNX model file")
    parser.add_argument("-o", "--output", required=True, help="folder to write the compiled model to")
    add_compile_options(parser)


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    writing = False
    try:
        Target.parse(args.target)  # a bad target is reported before the model is read
        executor = compile_model(args, args.model)
        writing = True
        executor.export(args.output)
    except (GraphError, ValueError, OSError) as exc:
        print(f"tcomp compile: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        kept = f"{args.output} may be incomplete: compile again" if writing else f"nothing was written to {args.output}"
        print(f"\ninterrupted: {kept}", file=sys.stderr)
        return 130
    elapsed = time.perf_counter() - start
    stats = executor.program.stats
    plan = executor.graph.meta.get("memory_plan") if executor.graph is not None else None
    print(f"compiled {args.model} for {executor.program.target} in {elapsed:.1f} s: {executor.num_kernels} kernels"
          f" ({stats.get('tuned_kernels', 0)} tuned), written to {args.output}")
    if plan is not None:
        print(plan.summary())
    return 0
