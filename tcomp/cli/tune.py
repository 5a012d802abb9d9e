"""Autotune operators (templates), or the operators of a model, and log every measurement.

    tcomp tune --op matmul --shape 1024,1024,1024 --trials 200 --tuning-records mm.jsonl
    tcomp tune model.onnx --input-shapes "data:[1,3,224,224]" --trials 100 \\
        --tuning-records model.jsonl
    tcomp tune model.onnx --budget 20 --tuning-records model.jsonl

``--transfer RECORDS`` hands records of earlier runs (other models, other machines, this model's
tasks) to each task's cost model, which learns its base from them before the first batch and plans
that batch from it; none of them counts as measured in this run (``--resume`` continues a run).

Without records, an xgb task's cost model starts from the measured tables of other tasks of its
template that tcomp ships (``autotune.prior``); ``--no-prior`` starts it blind.

``--budget MINUTES`` spends a time over all the tasks instead of a number of trials on each:
batch after batch goes to the task where the model's latency should fall most (the task
scheduler, ``autotune.scheduler``, weighs tasks by how many of the model's operators run
them and by their recent gains, as Ansor does).

Option names follow TVM's ``tvmc tune`` where the meaning matches. After the run (or Ctrl-C, which
keeps every record measured so far) the command prints a summary table, writes the tuning curves as
CSV next to the records and, with matplotlib installed (``tcomp[plot]``), the plot,
and writes the summary as JSON (``RECORDS.summary.json``: GFLOP/s of the default and the
best config, each the best of its measurements, and the cost model's Spearman correlation
and top-k recall on held-out configs after each fit). ``--explain`` lists the features
each task's cost model relies on most.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from pathlib import Path

from tcomp.autotune.dask_executor import DaskExecutor, client_for
from tcomp.autotune.measure import MeasureOptions
from tcomp.autotune.measurer import Measurer
from tcomp.autotune.record import RecordWriter, read_records
from tcomp.autotune.scheduler import TaskScheduler
from tcomp.autotune.task import Task, create_task
from tcomp.autotune.template import TemplateError, get_template, list_templates
from tcomp.autotune.tuner import Tuner, TuneResult, TunerKind, create_tuner
from tcomp.cli.arguments import add_target_options, parse_input_shapes, target_of
from tcomp.cli.curves import tuning_curves, write_csv
from tcomp.cli.plot import PlotUnavailable, plot_tuning
from tcomp.cli.report import TABLE_WIDTH, BudgetProgress, ProgressPrinter, importance_lines, summary_json, summary_table
from tcomp.graph.tasks import extract_model_task_counts
from tcomp.target import Precision, Target, TargetKind


def shape_parameters(name: str) -> tuple[list[str], list[str]]:
    """The integer parameters of template ``name``: those ``--shape`` must give, and the optional ones after."""
    signature = inspect.signature(get_template(name).func)
    required, optional = [], []
    for parameter in list(signature.parameters.values())[1:]:
        if parameter.annotation not in ("int", int):
            continue
        (required if parameter.default is parameter.empty else optional).append(parameter.name)
    return required, optional


def _shape_spec(name: str) -> str:
    required, optional = shape_parameters(name)
    return ",".join(required) + "".join(f"[,{p}]" for p in optional)


def template_help() -> str:
    """The ``--help`` epilog: every template with its ``--shape`` arguments."""
    names = list_templates()
    width = max(len(n) for n in names) + 4
    lines = ["templates (--op) and their --shape arguments (integers; [optional]; the element type is --dtype):"]
    for name in names:
        required, optional = shape_parameters(name)
        pieces = [f"{r}," for r in required[:-1]] + required[-1:] + [f"[,{o}]" for o in optional]
        line = f"  {name:<{width - 2}}"
        for piece in pieces:
            if len(line) + len(piece) > TABLE_WIDTH:
                lines.append(line)
                line = " " * width
            line += piece
        lines.append(line)
    return "\n".join(lines)


def parse_shape(op: str, text: str) -> list[int]:
    """``--shape`` for template ``op``: integers separated by commas (``64,64,64``) or by ``x`` (``64x64x64``)."""
    parts = text.split(",") if "," in text else text.split("x")
    spec = _shape_spec(op)
    values = []
    for part in parts:
        try:
            values.append(int(part.strip()))
        except ValueError:
            raise ValueError(f"--shape {text!r} for {op}: {part.strip()!r} is not an integer; "
                             f"expected {spec}") from None
    required, optional = shape_parameters(op)
    if not len(required) <= len(values) <= len(required) + len(optional):
        count = f"{len(required)}" if not optional else f"{len(required)} to {len(required) + len(optional)}"
        raise ValueError(f"--shape {text!r} for {op}: expected {spec} ({count} integers), got {len(values)}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = template_help()
    parser.add_argument("model", nargs="?", help="an ONNX model: tune its convolutions and matrix products")
    parser.add_argument("--input-shapes", action="append", default=[],
                        help='shapes of the model inputs, e.g. "data:[1,3,224,224]" (as for tcomp compile)')
    add_target_options(parser, '"llvm -mcpu=znver3" or "cuda"')
    parser.add_argument("--op", action="append", default=[], help="template to tune (repeat for several tasks; "
                        "see the list below)")
    parser.add_argument("--shape", action="append", default=[],
                        help="the template's integer arguments, one --shape per --op: 1024,1024,1024 or 1024x1024x1024")
    parser.add_argument("--dtype", default=None, help="element type passed to the template (its default: float32)")
    parser.add_argument("--trials", type=int, default=200, help="trials per task, logged ones included (with "
                        "--budget: the most any task gets)")
    parser.add_argument("--budget", type=float, default=None, help="minutes to spend on all the tasks together, "
                        "batch by batch where the model's latency should fall most (instead of --trials each)")
    parser.add_argument("--tuning-records", default="tuning_records.jsonl", help="JSON-lines log to append to")
    parser.add_argument("--tuner", default=TunerKind.XGB.value, choices=[k.value for k in TunerKind],
                        help="how configs are chosen")
    parser.add_argument("--early-stopping", type=int, default=None, help="stop a task after this many trials "
                        "without a better config")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds allowed per build and per run")
    parser.add_argument("--number", type=int, default=3, help="calls per timing repeat")
    parser.add_argument("--repeat", type=int, default=3, help="timing repeats")
    parser.add_argument("--min-repeat-ms", type=float, default=0.0, help="grow --number until a repeat lasts this")
    parser.add_argument("--parallel", type=int, default=None, help="builder processes (default: all cores)")
    parser.add_argument("--resume", action="store_true", help="continue the records file: skip logged configs and "
                        "learn from all of its records")
    parser.add_argument("--transfer", action="append", default=[], metavar="RECORDS",
                        help="records of earlier runs (any tasks: other models, other machines) for the cost model "
                        "to learn from before the first batch; none counts as measured here (xgb tuners; repeat "
                        "for several files)")
    parser.add_argument("--no-prior", action="store_true", help="start each xgb cost model blind, not from the "
                        "measured tables of other tasks shipped with tcomp (used when a task has no records)")
    parser.add_argument("--seed", type=int, default=0, help="the same seed proposes the same configs")
    parser.add_argument("--plot", default=None, help="where to write the tuning plot (default: the records path "
                        "with .png); the same data goes to the records path with .csv")
    parser.add_argument("--batch-size", type=int, default=None, help="configs measured per batch")
    parser.add_argument("--executor", default="local", help="where configs are built and run: local (worker "
                        "processes here) or dask://HOST:PORT (a Dask scheduler; runs go to workers declaring the "
                        "target's resource, which tcomp target prints; needs tcomp[distributed])")
    parser.add_argument("--explain", action="store_true", help="after tuning, list the features the cost model of "
                        "each task relies on most (xgb tuners)")


def _tasks(args: argparse.Namespace, target: Target) -> list[tuple[Task, int]]:
    """The tasks to tune with how many operators run each one (1 for --op tasks)."""
    if args.model:
        counted = extract_model_task_counts(args.model, target, parse_input_shapes(args.input_shapes))
        if not counted:
            narrow = " (products with bfloat16 operands are not tuned)" if target.precision is Precision.BF16 and \
                target.kind is TargetKind.LLVM else ""
            raise ValueError(f"{args.model} has no convolution or matrix product that a template can tune{narrow}")
        return counted
    if len(args.op) != len(args.shape):
        raise ValueError(f"give one --shape per --op ({len(args.op)} --op, {len(args.shape)} --shape)")
    if not args.op:
        raise ValueError("nothing to tune: give a model, or --op NAME --shape N,N,...")
    tasks = []
    for op, shape in zip(args.op, args.shape):
        get_template(op)  # an unknown name fails here, before its shape is read
        values: list[object] = list(parse_shape(op, shape))
        if args.dtype:
            values.append(args.dtype)
        tasks.append((create_task(op, values, target), 1))
    return tasks


def _check(args: argparse.Namespace) -> None:
    for name in ("trials", "number", "repeat"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.budget is not None and not args.budget > 0:
        raise ValueError(f"--budget must be a positive number of minutes, got {args.budget}")
    if args.budget is not None and args.early_stopping is not None:
        raise ValueError("--early-stopping does not apply with --budget (the budget decides when tasks stop)")
    if args.timeout <= 0:
        raise ValueError(f"--timeout must be positive, got {args.timeout}")
    if args.executor != "local" and not args.executor.startswith(("dask://", "tcp://")):
        raise ValueError(f"--executor {args.executor!r}: expected local or dask://HOST:PORT")


def run(args: argparse.Namespace) -> int:
    try:
        _check(args)
        counted = _tasks(args, target_of(args))
        for task, _ in counted:
            task.config_space  # noqa: B018 - fails early on bad template arguments
        for path in args.transfer:
            if not Path(path).is_file():
                raise ValueError(f"--transfer {path}: no such records file")
        transfer = [record for path in args.transfer for record in read_records(path).records]
    except (ValueError, TypeError, TemplateError, OSError) as error:
        print(f"tcomp tune: {error}", file=sys.stderr)
        return 2
    records = Path(args.tuning_records)
    if records.exists() and records.stat().st_size > 0 and not args.resume:
        print(f"tcomp tune: {records} already holds records; pass --resume to continue it, or choose another file",
              file=sys.stderr)
        return 2
    tasks = [task for task, _ in counted]
    resumed = read_records(records).records if args.resume else []
    options = MeasureOptions(number=args.number, repeat=args.repeat, min_repeat_ms=args.min_repeat_ms,
                             build_timeout=args.timeout, run_timeout=args.timeout, n_parallel=args.parallel,
                             seed=args.seed)
    results: list[TuneResult] = []
    tuners: list[Tuner] = []
    trials = args.trials
    spend = f"a budget of {args.budget:g} min" if args.budget is not None else f"{trials} trials each"
    print(f"tuning {len(tasks)} task(s) on {tasks[0].target} with {args.tuner}, {spend}; records: {records}")
    status = 0
    try:
        try:
            active = _measurer(args.executor, options)
        except (OSError, TimeoutError, ImportError) as error:
            print(f"tcomp tune: --executor {args.executor}: {type(error).__name__}: {error}", file=sys.stderr)
            return 2
        with active as measurer, RecordWriter(records) as writer:
            for task in tasks:
                kind = TunerKind(args.tuner)
                blind = {"prior": False} if args.no_prior and kind in (TunerKind.XGB, TunerKind.XGB_KNOB) else {}
                tuners.append(create_tuner(kind, task, seed=args.seed, **blind))
                if transfer:
                    tuners[-1].transfer(transfer)
                if resumed:
                    tuners[-1].load_history(resumed)
            if args.budget is not None:
                scheduler = TaskScheduler(tuners, [count for _, count in counted])
                printer = BudgetProgress(args.budget * 60, tuners)
                results = scheduler.tune(args.budget * 60, measurer, batch_size=args.batch_size or 8,
                                         max_trials=args.trials, callbacks=[writer, printer])
            else:
                for k, tuner in enumerate(tuners, start=1):
                    results.append(tuner.tune(trials, measurer=measurer, early_stopping=args.early_stopping,
                                              callbacks=[writer, ProgressPrinter(trials, k, len(tasks))],
                                              batch_size=args.batch_size))
    except KeyboardInterrupt:
        print(f"\ninterrupted: the records measured so far are kept in {records}; continue with --resume",
              file=sys.stderr)
        status = 130
        if args.budget is not None:  # the tasks were interleaved: each one's best so far
            results = [tuner.result(0, 0.0) for tuner in tuners if tuner.trial_count]
    if results:
        print()
        print(summary_table(results))
        summary = records.with_suffix(".summary.json")
        summary.write_text(json.dumps(summary_json(results), indent=1) + "\n", encoding="utf-8")
        print(f"summary: {summary}")
    if args.explain:
        for tuner in tuners:
            importances = getattr(tuner.model, "importances", None) if hasattr(tuner, "model") else None
            lines = importance_lines(tuner.task.label, importances() if callable(importances) else [])
            print("\n".join(lines))
    _write_curves(args, records, counted)
    return status


def _measurer(executor: str, options: MeasureOptions) -> Measurer:
    """The ``Measurer`` for ``--executor``: worker processes here, or a Dask cluster."""
    if executor == "local":
        return Measurer(options)
    if executor.startswith(("dask://", "tcp://")):
        return DaskExecutor(client_for(executor), options, close_client=True).measurer()
    raise ValueError(f"--executor {executor!r}: expected local or dask://HOST:PORT")  # _check said so


def _write_curves(args: argparse.Namespace, records: Path, counted: list[tuple[Task, int]]) -> None:
    """The tuning curves of this run's tasks, read back from the records: CSV always, the plot with matplotlib."""
    if not records.exists():
        return
    curves = tuning_curves(read_records(records).records, [t for t, _ in counted], {t.key: n for t, n in counted})
    if not curves.elapsed:
        return
    csv_path = records.with_suffix(".csv")
    write_csv(csv_path, curves)
    plot_path = Path(args.plot) if args.plot else records.with_suffix(".png")
    title = f"tcomp tune {args.model or ', '.join(args.op)} on {counted[0][0].target}"
    try:
        plot_tuning(plot_path, curves, title)
    except PlotUnavailable as missing:
        print(f"tuning data: {csv_path} ({missing} to get the plot)")
        return
    print(f"tuning plot: {plot_path} (data: {csv_path})")
