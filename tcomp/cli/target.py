"""Show how a target string is understood on this machine, and where its code would run.

    tcomp target            this CPU: its LLVM name, vector width, FMA, cores
    tcomp target "llvm -mcpu=skylake-avx512"
    tcomp target cuda       the GPU architecture, its limits, and what runs its code
    tcomp target --list     every CPU and feature name LLVM knows for this machine's triple
"""

from __future__ import annotations

import argparse
import sys

from tcomp.autotune.dask_executor import target_resource
from tcomp.backend import backend_for
from tcomp.target import Target, TargetError
from tcomp.target_check import llvm_catalog


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", nargs="?", default="llvm",
                        help='a target string, e.g. "llvm -mcpu=znver3 -mattr=+avx2" or "cuda -arch=sm_90" '
                             "(default: llvm, this CPU)")
    parser.add_argument("--list", action="store_true", help="list the CPU and feature names LLVM knows")


def describe(target: Target) -> list[str]:
    """Lines telling what ``target`` means here (its backend says), and the Dask resource that runs its trials."""
    resource = target_resource(target)
    return [f"target: {target}", *backend_for(target).describe(target),
            f"tuning on Dask: runs go to workers started with --resources \"{resource}=1\""]


def _list_names() -> list[str]:
    catalog = llvm_catalog()
    return [f"LLVM CPUs for {catalog.triple} ({len(catalog.cpus)}):", *_columns(sorted(catalog.cpus)),
            f"features ({len(catalog.features)}), given as -mattr=+name or -mattr=-name:",
            *_columns(sorted(catalog.features))]


def _columns(names: list[str], width: int = 100) -> list[str]:
    cell = max(len(n) for n in names) + 2
    per_line = max(1, (width - 2) // cell)
    return ["  " + "".join(n.ljust(cell) for n in names[k:k + per_line]).rstrip()
            for k in range(0, len(names), per_line)]


def run(args: argparse.Namespace) -> int:
    try:
        lines = _list_names() if args.list else describe(Target.parse(args.target))
    except (TargetError, ValueError) as exc:
        print(f"tcomp target: error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0
