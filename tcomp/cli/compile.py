"""Compile an ONNX model to a folder: native code, the graph, the parameters (tvmc's option names).

    tcomp compile model.onnx --target llvm [--tuning-records tuning.jsonl] \\
        [--input-shapes "data:[1,3,224,224] mask:[1,128]"] -o out/
"""

from __future__ import annotations

import argparse
import sys
import time

from tcomp.cli.arguments import parse_input_shapes, progress_bar
from tcomp.target import Target


def add_arguments(parser: argparse.ArgumentParser) -> None:
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


def run(args: argparse.Namespace) -> int:
    import tcomp.graph as tg
    from tcomp.graph.pipeline import PassOptions, print_dump

    try:
        target = Target.parse(args.target)
        shapes = parse_input_shapes(args.input_shapes)
        options = PassOptions.without(args.disable_pass)
        start = time.perf_counter()
        timings: dict[str, float] = {}
        executor = tg.compile(args.model, target, input_shapes=shapes, tuning_records=args.tuning_records,
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


