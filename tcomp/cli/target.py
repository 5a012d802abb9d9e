"""Show how a target string is understood on this machine.

    tcomp target "llvm -mcpu=znver3"
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", nargs="?", default="llvm", help="a target string (default: llvm, this CPU)")


def run(args: argparse.Namespace) -> int:
    from tcomp.target import Target

    target = Target.parse(args.target)
    print(target)
    print(f"cpu: {target.mcpu}, cores: {target.num_cores}")
    return 0
