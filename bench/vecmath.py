"""Accuracy of tcomp's float32 vector math (``exp``, ``log``, ``tanh``, ``erf``, ``sigmoid``) over every float32 input,
against float64 references; ``--fit`` prints the polynomial fits the code's coefficients come from.

    python bench/vecmath.py [--ops exp erf] [--step 1] [--target "llvm -mcpu=znver3"] [--fit]

Each function runs on all 2^32 bit patterns (``--step k``: every k-th block of 2^22) through a kernel built for
this CPU (or ``--target``, one this CPU runs: AVX2 code on an AVX-512 machine) at its vector width, and prints
the largest error in ulps (``tcomp.backend.llvm.vecmath_testing.ulp_error``), where it happens, and how many
inputs are off by more than 1 and more than 2 ulps. One run over every input takes 2-10 minutes per function on 2
cores.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import numpy as np

from tcomp.backend.llvm.vecmath_testing import build_unary, reference, ulp_error
from tcomp.codegen.llvm import vecmath
from tcomp.target import Target

BLOCK = 1 << 22


def exhaustive(op: str, step: int, target: Target) -> None:
    mod = build_unary(op, BLOCK, target.vector_bits // 32, target)
    y = np.empty(BLOCK, np.float32)
    worst, at, over1, over2, count = 0.0, (0.0, 0.0, 0.0), 0, 0, 0
    start_time = time.perf_counter()
    for start in range(0, 1 << 32, BLOCK * step):
        x = np.arange(start, start + BLOCK, dtype=np.uint64).astype(np.uint32).view(np.float32)
        mod(x, y)
        ref = reference(op, x)
        error = ulp_error(y, ref)
        k = int(np.argmax(error))
        if error[k] > worst:
            worst, at = float(error[k]), (float(x[k]), float(y[k]), float(ref[k]))
        over1 += int(np.count_nonzero(error > 1))
        over2 += int(np.count_nonzero(error > 2))
        count += BLOCK
    seconds = time.perf_counter() - start_time
    print(f"{op:8s} {count:>11d} inputs  max {worst:.3f} ulp at x={at[0]!r} (got {at[1]!r}, float64 {at[2]!r})  "
          f">1 ulp: {over1}  >2 ulp: {over2}  ({seconds:.0f} s)", flush=True)


def lawson(xs: np.ndarray, target: np.ndarray, basis: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, float]:
    """Coefficients minimizing ``max |weight * (basis @ c - target)|`` (Lawson's iteratively reweighted least
    squares, which converges to the minimax fit) and that maximum."""
    a, b = basis * weight[:, None], target * weight
    w = np.full(len(xs), 1.0 / len(xs))
    best: tuple[np.ndarray, float] | None = None
    for _ in range(200):
        root = np.sqrt(w)
        c = np.linalg.lstsq(a * root[:, None], b * root, rcond=None)[0]
        error = np.abs(a @ c - b)
        if best is None or error.max() < best[1]:
            best = (c, float(error.max()))
        w = w * error / np.sum(w * error)
    assert best is not None
    return best


def chebyshev(low: float, high: float, n: int = 4000) -> np.ndarray:
    return (low + high) / 2 + (high - low) / 2 * np.cos(np.pi * (np.arange(n) + 0.5) / n)


def fit() -> None:
    from scipy.special import erf, erfcx

    def show(name: str, fitted: tuple[np.ndarray, float], unit: str) -> None:
        c, error = fitted
        print(f"{name}: max error {error:.2e} {unit}")
        print("   (" + ", ".join(repr(float(np.float32(v))) for v in c) + ")")

    def powers(v: np.ndarray, degree: int) -> np.ndarray:
        return np.vander(v, degree + 1, increasing=True)

    half = math.log(2) / 2
    r = chebyshev(-half, half)
    show("EXP_Q", lawson(r, (np.expm1(r) - r) / r**2, powers(r, 4), r**2 / np.exp(r)), "relative")
    f = chebyshev(math.sqrt(0.5) - 1, math.sqrt(2) - 1)
    target = (np.log1p(f) - f + f**2 / 2) / f**3
    show("LOG_P", lawson(f, target, powers(f, 8), np.abs(f**3 / np.log1p(f))), "relative")
    x = chebyshev(1e-4, vecmath.TANH_SMALL)
    show("TANH_P", lawson(x, (np.tanh(x) - x) / x**3, powers(x * x, 5), x**3 / np.tanh(x)), "relative")
    x = chebyshev(1e-5, vecmath.ERF_SMALL)
    c, error = lawson(x, erf(x) / x, powers(x * x, 6), x / erf(x))
    show("ERF_P (the first coefficient less 1)", (c - np.eye(len(c))[0], error), "relative")
    x = chebyshev(vecmath.ERF_SMALL, vecmath.ERF_CLAMP)
    show("ERFC_Q", lawson(x, erfcx(x), powers(x - vecmath.ERF_SMALL, 9), np.exp(-x * x) / 2.0**-24), "ulp of 1")
    for lanes, degree in ((16, 5), (8, 6)):
        rows, worst = erf_table(lanes, degree, erf, powers)
        print(f"ERF_TABLES[{lanes}]: {lanes} intervals, degree {degree}, max error {worst:.2e} relative")
        for row in rows:
            print("   (" + ", ".join(repr(v) for v in row) + "),")


def erf_table(lanes: int, degree: int, erf: Callable[[np.ndarray], np.ndarray],
              powers: Callable[[np.ndarray, int], np.ndarray]) -> tuple[list[tuple[float, ...]], float]:
    """``vecmath.ERF_TABLES[lanes]``: per interval ``k`` of ``[0, 4)`` (``lanes`` of them), ``erf(x) / x`` fitted by
    a polynomial in ``u = x lanes / 4 - (k + 1/2)``, its constant term split into the nearest float32 and the rest;
    rows of one coefficient per interval, and the largest relative error of the fits."""
    width = vecmath.ERF_CLAMP / lanes
    intervals, worst = [], 0.0
    for k in range(lanes):
        x = chebyshev(max(k * width, 1e-6), (k + 1) * width, 800)
        g = erf(x) / x
        c, error = lawson(x, g, powers(x / width - (k + 0.5), degree), 1 / g)
        high = np.float32(c[0])
        rest = [float(np.float32(c[0] - np.float64(high)))] + [float(np.float32(v)) for v in c[1:]]
        intervals.append([float(high), *rest])
        worst = max(worst, error)
    return [tuple(column) for column in zip(*intervals)], worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", nargs="+", choices=vecmath.VECTOR_MATH_OPS, default=list(vecmath.VECTOR_MATH_OPS))
    parser.add_argument("--step", type=int, default=1, help="check every STEP-th block of 2^22 inputs")
    parser.add_argument("--target", default="llvm", help="the LLVM target to build for (this CPU by default)")
    parser.add_argument("--fit", action="store_true", help="print the polynomial fits instead")
    args = parser.parse_args()
    if args.fit:
        fit()
        return
    target = Target(args.target)
    print(f"every {args.step}-th block of {BLOCK} float32 inputs, built for {target}")
    for op in args.ops:
        exhaustive(op, max(1, args.step), target)


if __name__ == "__main__":
    main()
