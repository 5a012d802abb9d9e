"""Autotune operators (templates), or the operators of a model, and log every measurement.

    tcomp tune --op matmul --shape 1024,1024,1024 --trials 200 --tuning-records mm.jsonl
    tcomp tune model.onnx --input-shapes "data:[1,3,224,224]" --trials 100 --tuning-records model.jsonl

Option names follow TVM's ``tvmc tune`` where the meaning matches: ``--target``, ``--trials``,
``--tuning-records``, ``--tuner``, ``--early-stopping``, ``--timeout``, ``--number``, ``--repeat``,
``--min-repeat-ms``, ``--parallel``, ``--resume``, ``--seed``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tcomp.autotune.measure import MeasureOptions, Measurer
from tcomp.autotune.record import RecordWriter, read_records
from tcomp.autotune.task import Task, create_task
from tcomp.autotune.template import TemplateError, list_templates
from tcomp.autotune.tuner import TuneResult, TunerKind, create_tuner
from tcomp.cli.arguments import parse_input_shapes
from tcomp.cli.plot import plot_curves
from tcomp.cli.report import ProgressPrinter, summary_table
from tcomp.graph.tuning import extract_model_tasks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", help="an ONNX model: tune its convolutions and matrix products")
    parser.add_argument("--input-shapes", action="append", default=[],
                        help='shapes of the model inputs, e.g. "data:[1,3,224,224]" (as for tcomp compile)')
    parser.add_argument("--target", default="llvm", help='target string, e.g. "llvm -mcpu=znver3" (default: llvm)')
    parser.add_argument("--op", action="append", default=[], help="template to tune (repeat for several tasks); "
                        "one of: " + ", ".join(list_templates()))
    parser.add_argument("--shape", action="append", default=[],
                        help="the template's integer arguments, comma-separated, one --shape per --op "
                             "(matmul/dense/matmul_cuda: M,N,K; batch_matmul: B,M,N,K; "
                             "conv2d_nchw/conv2d_nchw_cuda: N,C,H,W,O,KH,KW,stride,pad; "
                             "reduce_cuda/softmax_cuda/elemwise_cuda: M,N)")
    parser.add_argument("--dtype", default=None, help="element type passed to the template (its default: float32)")
    parser.add_argument("--trials", type=int, default=200, help="trials per task, logged ones included (200)")
    parser.add_argument("--tuning-records", default="tuning_records.jsonl", help="JSON-lines log to append to")
    parser.add_argument("--tuner", default=TunerKind.XGB.value, choices=[k.value for k in TunerKind])
    parser.add_argument("--early-stopping", type=int, default=None, help="stop a task after this many trials "
                        "without a better config")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds allowed per build and per run (10)")
    parser.add_argument("--number", type=int, default=3, help="calls per timing repeat (3)")
    parser.add_argument("--repeat", type=int, default=3, help="timing repeats (3)")
    parser.add_argument("--min-repeat-ms", type=float, default=0.0, help="grow --number until a repeat lasts this")
    parser.add_argument("--parallel", type=int, default=None, help="builder processes (default: all cores)")
    parser.add_argument("--resume", action="store_true", help="continue the records file: skip logged configs and "
                        "learn from all of its records")
    parser.add_argument("--seed", type=int, default=0, help="the same seed proposes the same configs (0)")
    parser.add_argument("--plot", default=None, help="PNG of best GFLOP/s per trial (default: records path .png)")
    parser.add_argument("--batch-size", type=int, default=None, help="configs measured per batch")


def _tasks(args: argparse.Namespace) -> list[Task]:
    if args.model:
        tasks: list[Task] = extract_model_tasks(args.model, args.target, parse_input_shapes(args.input_shapes))
        if not tasks:
            raise ValueError(f"{args.model} has no convolution or matrix product that a template can tune")
        return tasks
    if len(args.op) != len(args.shape):
        raise ValueError(f"give one --shape per --op ({len(args.op)} --op, {len(args.shape)} --shape)")
    if not args.op:
        raise ValueError("nothing to tune: give a model, or --op NAME --shape N,N,...")
    tasks = []
    for op, shape in zip(args.op, args.shape):
        try:
            values: list[object] = [int(v) for v in shape.replace("x", ",").split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"--shape {shape!r}: expected comma-separated integers") from None
        if args.dtype:
            values.append(args.dtype)
        tasks.append(create_task(op, values, args.target))
    return tasks


def run(args: argparse.Namespace) -> int:
    try:
        tasks = _tasks(args)
        for task in tasks:
            task.config_space  # noqa: B018 - fails early on bad template arguments
    except (ValueError, TypeError, TemplateError, OSError) as error:
        print(f"tcomp tune: {error}", file=sys.stderr)
        return 2
    records = Path(args.tuning_records)
    if records.exists() and records.stat().st_size > 0 and not args.resume:
        print(f"tcomp tune: {records} already holds records; pass --resume to continue it, or choose another file",
              file=sys.stderr)
        return 2
    prior = read_records(records).records if args.resume else []
    options = MeasureOptions(number=args.number, repeat=args.repeat, min_repeat_ms=args.min_repeat_ms,
                             build_timeout=args.timeout, run_timeout=args.timeout, n_parallel=args.parallel,
                             seed=args.seed)
    results: list[TuneResult] = []
    print(f"tuning {len(tasks)} task(s) on {tasks[0].target} with {args.tuner}, {args.trials} trials each; "
          f"records: {records}")
    try:
        with Measurer(options) as measurer, RecordWriter(records) as writer:
            for k, task in enumerate(tasks, start=1):
                tuner = create_tuner(TunerKind(args.tuner), task, seed=args.seed)
                if prior:
                    tuner.load_history(prior)
                results.append(tuner.tune(args.trials, measurer=measurer, early_stopping=args.early_stopping,
                                          callbacks=[writer, ProgressPrinter(args.trials, k, len(tasks))],
                                          batch_size=args.batch_size))
    except KeyboardInterrupt:
        print("interrupted: the records written so far are kept; continue with --resume", file=sys.stderr)
        return 130
    print()
    print(summary_table(results))
    plot_path = Path(args.plot) if args.plot else records.with_suffix(".png")
    plot_curves(plot_path, [(r.task.label, r.curve) for r in results])
    print(f"plot: {plot_path}")
    return 0
