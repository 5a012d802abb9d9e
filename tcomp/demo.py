"""The demo behind ``tcomp demo``: define a matmul, schedule it by hand, build it for this CPU, check it against
numpy and report GFLOP/s next to numpy's in the same run.

The demo grows with tcomp: autotuning and whole-model compilation join it as those parts land.
"""

from __future__ import annotations

import time

import numpy as np

import tcomp
from tcomp import te
from tcomp.ops.matmul_cpu import packed_matmul


def _gflops(seconds: float, flops: float) -> float:
    return flops / seconds / 1e9


def run_demo(size: int = 512, repeat: int = 5) -> None:
    print(f"tcomp {tcomp.__version__} on {tcomp.Target.parse('llvm')}")
    M = N = K = size
    flops = 2.0 * M * N * K
    a = np.random.default_rng(0).random((M, K), dtype=np.float32)
    b = np.random.default_rng(1).random((K, N), dtype=np.float32)
    expected = a @ b

    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, N), name="B")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    s = tcomp.create_schedule(C)
    default = tcomp.build(s, [A, B, C])

    s2, args = packed_matmul(M, N, K)
    print("\nhand-scheduled loop program:")
    print(tcomp.lower(s2, args))
    start = time.perf_counter()
    tuned = tcomp.build(s2, args)
    print(f"\nbuilt in {time.perf_counter() - start:.2f} s")

    rows = []
    for label, mod in (("tcomp default schedule", default), ("tcomp hand schedule", tuned)):
        c = np.zeros((M, N), dtype=np.float32)
        mod(a, b, c)
        np.testing.assert_allclose(c, expected, rtol=1e-3)
        timing = mod.time_evaluator(number=1 if mod is default else 5, repeat=repeat)(a, b, c)
        rows.append((label, timing.min, timing.median))
    times = []
    for _ in range(repeat * 5):
        start = time.perf_counter()
        np.matmul(a, b)
        times.append(time.perf_counter() - start)
    reference = (min(times), float(np.median(times)))
    print(f"\nmatmul {M}x{N}x{K} float32 (results checked against numpy)")
    print(f"{'':<26}{'min ms':>10}{'median ms':>11}{'GFLOP/s':>10}{'vs numpy':>10}")
    for label, best, median in rows + [("numpy (OpenBLAS)", *reference)]:
        ratio = reference[0] / best
        print(f"{label:<26}{best * 1e3:>10.3f}{median * 1e3:>11.3f}{_gflops(best, flops):>10.1f}{ratio:>9.2f}x")
