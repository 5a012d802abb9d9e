"""The ``tcomp`` command line: ``tcomp demo | target | tune | pick | compile | run``.

Each command is a module of this package with ``add_arguments(parser)`` and ``run(args) -> exit status``; the
reports (progress lines, tables) and plots that commands print or write live here too. Library packages never
import ``tcomp.cli``: it sits on top of ``tcomp.autotune`` and ``tcomp.graph`` and wires them together.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

import tcomp

# (name, module, one-line help), in the order ``tcomp --help`` lists them; the modules load when the parser is
# built, inside ``main``'s answer to Ctrl-C (they import numpy, llvmlite and the compiler)
COMMAND_MODULES: tuple[tuple[str, str, str], ...] = (
    ("demo", "demo", "tune a matmul and compile and run a model, compared with numpy/onnxruntime"),
    ("target", "target", "show how a target string is understood on this machine"),
    ("tune", "tune", "autotune operators (templates) or a model's operators and log the measurements"),
    ("pick", "pick", "keep the best tuning record of each task"),
    ("compile", "compile", "compile an ONNX model to a folder (native code, graph, params)"),
    ("run", "run", "run a compiled model folder, timing and profiling it"),
)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """``--help`` keeps the description's and epilog's line breaks and shows every option's default value (those
    that have one: not flags, not repeatable options that start empty)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or not action.option_strings:
            return text
        if action.default in (None, False, [], argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


def commands() -> list[tuple[str, ModuleType, str]]:
    """Each command's name, module and one-line help."""
    return [(name, importlib.import_module(f"tcomp.cli.{module}"), summary)
            for name, module, summary in COMMAND_MODULES]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tcomp", description="tcomp: a tensor compiler with autotuning",
                                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"tcomp {tcomp.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module, summary in commands():
        command = sub.add_parser(name, help=summary, description=module.__doc__, formatter_class=HelpFormatter)
        module.add_arguments(command)
        command.set_defaults(func=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit status (130 after Ctrl-C, which each command answers by keeping what it had
    finished and saying so; a command without its own answer just stops)."""
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
