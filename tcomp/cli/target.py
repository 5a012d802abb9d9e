"""Show how a target string is understood on this machine, and where its code would run.

    tcomp target            this CPU: its LLVM name, vector width, FMA, cores
    tcomp target "llvm -mcpu=skylake-avx512"
    tcomp target cuda       the GPU architecture, its limits, and what runs its code
    tcomp target --list     every CPU and feature name LLVM knows for this machine's triple

A CPU other than this machine's, and extra features, are checked against LLVM's lists first.
"""

from __future__ import annotations

import argparse
import shutil
import sys

from tcomp.target import Target, TargetError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", nargs="?", default="llvm",
                        help='a target string, e.g. "llvm -mcpu=znver3 -mattr=+avx2" or "cuda -arch=sm_90" '
                             "(default: llvm, this CPU)")
    parser.add_argument("--list", action="store_true", help="list the CPU and feature names LLVM knows")


def describe(target: Target) -> list[str]:
    """Lines telling what ``target`` means here."""
    lines = [f"target: {target}"]
    if target.kind == "llvm":
        where = "this machine's CPU" if target.host else "another CPU (code built for it may not run here)"
        extra = f", features {','.join(target.mattr)}" if target.mattr else ""
        lines.append(f"cpu: {target.mcpu} ({where}){extra}")
        fma = "yes" if target.has_feature("fma") else "no"
        lines.append(f"vectors: {target.vector_bits}-bit, {target.vector_registers} registers; FMA: {fma}")
        lines.append(f"parallel loops: {target.num_cores} threads")
        return lines
    from tcomp.runtime.cuda_device import gpu_available
    from tcomp.runtime.cuda_emu import EmulationError, host_compiler
    from tcomp.runtime.nvcc import nvcc_available
    from tcomp.target import CUDA_STATIC_SHARED_MEMORY

    lines.append(f"architecture: {target.arch} (compute capability {target.arch[3:-1]}.{target.arch[-1]})")
    lines.append(f"limits per block: {target.max_threads_per_block} threads, "
                 f"{target.max_shared_memory_per_block // 1024} KiB shared memory (over "
                 f"{CUDA_STATIC_SHARED_MEMORY // 1024} KiB: dynamic, with the opt-in), "
                 f"{target.max_registers_per_block} registers")
    lines.append(f"nvcc: {shutil.which('nvcc')} (PTX and ptxas's resource report available)" if nvcc_available()
                 else "nvcc: not on the PATH (no PTX, no ptxas resource report)")
    if gpu_available():
        lines.append("runs on: the GPU, through CuPy")
        return lines
    try:
        lines.append(f"runs on: a CPU emulation of the same CUDA C ({host_compiler()} with OpenMP); no GPU seen")
    except EmulationError:
        lines.append("runs on: nothing here: no GPU (CuPy) and no C++ compiler for the CPU emulation")
    return lines


def _list_names() -> list[str]:
    from tcomp.target_check import llvm_catalog

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
