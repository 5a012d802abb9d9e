"""Helpers shared by the benchmark scripts: timing a reference, the CPU's fp32 peak, table printing."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Timing:
    min: float
    median: float

    @staticmethod
    def of(results: list[float]) -> Timing:
        return Timing(min(results), float(np.median(results)))


def time_callable(fn: Callable[[], object], repeat: int, number: int = 1) -> Timing:
    fn()  # warm-up
    results = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        results.append((time.perf_counter() - start) / number)
    return Timing.of(results)


def fp32_peak_gflops() -> float | None:
    """This CPU's fp32 FMA peak on all cores, measured by ``shared/tools/fma_peak.sh`` when it is present."""
    override = os.environ.get("TCOMP_PEAK_GFLOPS")
    if override:
        return float(override)
    script = ROOT.parent / "shared" / "tools" / "fma_peak.sh"
    if not script.exists():
        return None
    try:
        out = subprocess.run(["sh", str(script)], capture_output=True, text=True, timeout=120, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [line for line in out.splitlines() if line.startswith("threads=")]
    if not lines:
        return None
    match = re.search(r"best=([0-9.]+)", lines[-1])
    return float(match.group(1)) if match else None


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths)))
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
