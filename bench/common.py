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

from tcomp.runtime.timer import wait_until_threads_idle  # noqa: F401 - re-exported for the scripts

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


def fp32_peak_gflops(vector_bits: int = 256) -> float | None:
    """This CPU's fp32 FMA peak on all cores, measured by ``shared/tools/fma_peak.sh`` when it is present (256-bit
    FMAs). ``vector_bits=512`` measures 512-bit FMAs instead, with the same program rewritten for AVX-512."""
    override = os.environ.get("TCOMP_PEAK_GFLOPS")
    if override:
        return float(override)
    script = ROOT.parent / "shared" / "tools" / "fma_peak.sh"
    if not script.exists():
        return None
    if vector_bits == 512:
        return _fp32_peak_avx512(script.with_name("fma_peak.c"))
    try:
        out = subprocess.run(["sh", str(script)], capture_output=True, text=True, timeout=120, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return _best(out)


def _fp32_peak_avx512(source: Path) -> float | None:
    """``fma_peak.c`` with its 256-bit vectors and intrinsics turned into 512-bit ones, compiled and run on every
    core."""
    import tempfile

    text = source.read_text()
    for old, new in (("__m256", "__m512"), ("_mm256_", "_mm512_"), ('"+x"', '"+v"'), ("*12*8*2", "*12*16*2"),
                     ("o[8]", "o[16]"), ("best/nt/32", "best/nt/64"), ("2x256-bit", "2x512-bit")):
        text = text.replace(old, new)
    with tempfile.TemporaryDirectory() as tmp:
        c_file, binary = Path(tmp) / "fma_peak512.c", Path(tmp) / "fma_peak512"
        c_file.write_text(text)
        try:
            subprocess.run(["gcc", "-O2", "-mavx512f", "-mfma", "-fopenmp", str(c_file), "-o", str(binary)],
                           capture_output=True, timeout=120, check=True)
            out = subprocess.run([str(binary), str(os.cpu_count() or 1)], capture_output=True, text=True,
                                 timeout=120, check=True).stdout
        except (OSError, subprocess.SubprocessError):
            return None
    return _best(out)


def _best(out: str) -> float | None:
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
