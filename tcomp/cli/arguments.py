"""Arguments shared by several commands: input shapes and frozen input values of a model, the target, how a model
is compiled, and a progress bar on stderr. The commands import it (inside ``main``); the package itself does not."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from typing import Any

import tcomp.graph as tg
from tcomp.graph.pipeline import PassOptions, print_dump
from tcomp.target import Target

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


def parse_freeze(texts: list[str]) -> dict[str, Any]:
    """``["shape=[1,-1]", "training_mode=0"]`` -> ``{name: value}``: values in JSON (numbers, nested lists)."""
    values: dict[str, Any] = {}
    for text in texts:
        name, sep, value = text.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"--freeze: cannot read {text!r}; expected name=value, e.g. shape=[1,-1]")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(f"--freeze {name}: {value!r} is not a number or a list of numbers") from None
        if not _numbers(parsed):
            raise ValueError(f"--freeze {name}: {value!r} is not a number or a list of numbers")
        values[name] = parsed
    return values


def _numbers(value: Any) -> bool:
    if isinstance(value, list):
        return all(_numbers(v) for v in value)
    return isinstance(value, (int, float))


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




def add_target_options(parser: argparse.ArgumentParser, example: str = "llvm (this CPU) or cuda") -> None:
    """``--target`` and ``--precision`` (read them with ``target_of``)."""
    parser.add_argument("--target", default="llvm", help=f"target string, e.g. {example}")
    parser.add_argument("--precision", default=None, choices=["fp32", "tf32", "fp16", "bf16"],
                        help="arithmetic of matrix products: fp32 (the default); on cuda, tensor cores on operands "
                             "rounded to tf32, fp16 or bf16 (convolutions too); on llvm, bf16: products with a "
                             "constant weight on operands rounded to bfloat16 (the target option -precision=...)")


def target_of(args: argparse.Namespace) -> Target:
    """The ``Target`` that ``--target`` and ``--precision`` name."""
    return Target.parse(args.target).with_precision(getattr(args, "precision", None))


def add_compile_options(parser: argparse.ArgumentParser) -> None:
    """The options that say how a model is compiled (``tcomp compile``, and ``tcomp run`` given a model)."""
    add_target_options(parser)
    parser.add_argument("--tuning-records", default=None, help="tuning records (JSON lines from tcomp tune)")
    parser.add_argument("--input-shapes", action="append", default=[],
                        help='shapes of the inputs, e.g. "data:[1,3,224,224] mask:[1,128]" (needed for dynamic '
                             "dimensions)")
    parser.add_argument("--freeze", action="append", default=[], metavar="NAME=VALUE",
                        help="fix an input to a value (JSON: a number or a list), making it a constant; for inputs "
                             'that decide shapes, e.g. "shape=[1,-1]" (repeatable)')
    parser.add_argument("--disable-pass", action="append", default=[], choices=PassOptions.names(),
                        help="switch a graph pass off (repeatable)")
    parser.add_argument("--dump-ir", action="store_true", help="print the graph after every pass")


def compile_model(args: argparse.Namespace, model: str) -> tg.GraphExecutor | tg.SpecializingExecutor:
    """Compile ``model`` as the options of ``add_compile_options`` say; returns the executor."""
    target = target_of(args)
    shapes = parse_input_shapes(args.input_shapes)
    values = parse_freeze(args.freeze)
    options = PassOptions.without(args.disable_pass)
    return tg.compile(model, target, input_shapes=shapes, input_values=values, tuning_records=args.tuning_records,
                      options=options, dump=print_dump if args.dump_ir else None, progress=progress_bar("compiling"))
