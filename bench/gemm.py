"""float32 GEMM: tcomp's default, hand and library (schedule_cpu) schedules against numpy (OpenBLAS), same run.

Prints GFLOP/s (from the min and the median of the repeats), the ratio to numpy and the share of this CPU's fp32
FMA peak. tcomp's figures come from the code tcomp generates; numpy is only the reference.

    python bench/gemm.py [--size 1024 | --shapes MxNxK ...] [--repeat 10] [--skip-default] [--panels]

``--panels`` adds the products a compiled model runs for a constant weight (``tcomp.ops.panels.panel_matmul``: B
packed once into the GEMM's panels): in float32, and with bfloat16 operands (``-precision=bf16``: ``vdpbf16ps``
where the CPU has AVX512-BF16), checked against numpy's float64 product of the rounded operands; its "% peak" is
of the float32 peak (twice that is bfloat16's).

Before each timing the bench waits until OpenBLAS's worker threads have stopped spinning (about 0.1 s after a call),
so tcomp and numpy each have the cores to themselves. Six runs on a shared 2-core AVX-512 machine
(llvm -mcpu=rocketlake), ratios to numpy in the same run, min / median of the repeats:

    tcomp hand schedule (tcomp/ops/cpu/packed_matmul.py)      0.97-1.01x / 0.97-1.01x   (about 300-320 GFLOP/s)
    tcomp ops.matmul under schedule_cpu                 0.91-0.99x / 0.90-0.96x
    tcomp default schedule (no scheduling)              0.001x
    numpy (OpenBLAS), 2 threads                         about 300-320 GFLOP/s (up to about 360 when quiet)

The hand schedule: packed A and B, the columns split over the cores (each packs its own slice of B), 256-row blocks
of 256-deep slices, every 8x32 tile a call of tcomp's GEMM micro-kernel (``tcomp/codegen/llvm/microkernels.py``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Timing, fp32_peak_gflops, print_table, time_callable, wait_until_threads_idle  # noqa: E402

import tcomp  # noqa: E402
from tcomp import ops, te  # noqa: E402
from tcomp.ops.cpu import schedule_cpu  # noqa: E402
from tcomp.ops.cpu.bf16_matmul import bf16_plan  # noqa: E402
from tcomp.ops.cpu.common import CpuTarget  # noqa: E402
from tcomp.ops.cpu.dense import panels_in_place_plan  # noqa: E402
from tcomp.ops.cpu.gemm_plan import choose_blocking  # noqa: E402
from tcomp.ops.cpu.packed_matmul import packed_matmul  # noqa: E402
from tcomp.ops.panels import PAIRS, pack_grouped_panels, pack_panels, panel_matmul  # noqa: E402


def parse_shape(text: str) -> tuple[int, int, int]:
    """``MxNxK`` (C[M, N] = A[M, K] B[K, N])."""
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"expected a shape MxNxK such as 1000x1000x1000, got {text!r}")
    M, N, K = (int(p) for p in parts)
    return M, N, K


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--shapes", type=parse_shape, nargs="+", metavar="MxNxK",
                        help="time these shapes (C[M, N] = A[M, K] B[K, N]) instead of --size cubed")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--skip-default", action="store_true", help="skip the (slow) default schedule")
    parser.add_argument("--panels", action="store_true",
                        help="also B as a weight in panels: float32 and bfloat16 products (panel_matmul)")
    args = parser.parse_args()
    shapes = args.shapes or [(args.size, args.size, args.size)]
    for M, N, K in shapes:
        bench_shape(M, N, K, args.repeat, args.skip_default, args.panels)


def panel_products(a: np.ndarray, b: np.ndarray, target: tcomp.Target) -> dict[str, Any]:
    """``a @ b`` with ``b`` a weight in panels (``panel_matmul``): float32, and bfloat16 operands; each checked and
    returned as a callable on ``(a, out)``."""
    M, K = a.shape
    N = b.shape[1]
    cpu = CpuTarget.of(target)
    plan = panels_in_place_plan(M, N, K, cpu)
    narrow_plan = bf16_plan(M, N, K, cpu)
    variants = {"tcomp panel_matmul, float32": pack_panels(b, plan.blocking.nr, plan.Kp) if plan else None,
                "tcomp panel_matmul, bfloat16 operands": pack_grouped_panels(
                    b, narrow_plan.blocking.nr, narrow_plan.Kp, PAIRS, ml_dtypes.bfloat16)}
    rounded = a.astype(ml_dtypes.bfloat16).astype(np.float64) @ b.astype(ml_dtypes.bfloat16).astype(np.float64)
    runners: dict[str, Any] = {}
    for label, panels in variants.items():
        if panels is None:
            continue
        x = te.placeholder((M, K), name="x")
        p = te.placeholder(panels.shape, name="panels", dtype=str(panels.dtype))
        y = panel_matmul(x, p, N)
        module = tcomp.build(schedule_cpu([y], target), [x, p, y], target=target)
        out = np.zeros((M, N), np.float32)
        module(a, panels, out)
        np.testing.assert_allclose(out, rounded if panels.dtype == ml_dtypes.bfloat16 else a @ b, rtol=1e-3,
                                   atol=1e-3 * float(np.abs(rounded).max()))
        runners[label] = (module, panels)
    return runners


def bench_shape(M: int, N: int, K: int, repeat: int, skip_default: bool, panels: bool = False) -> None:
    flops = 2.0 * M * N * K
    rng = np.random.default_rng(0)
    a = rng.random((M, K), dtype=np.float32)
    b = rng.random((K, N), dtype=np.float32)
    expected = a @ b
    target = tcomp.Target.current_host()
    peak = fp32_peak_gflops(target.vector_bits)  # FMAs as wide as the target's vectors
    print(f"GEMM {M}x{N}x{K} float32 on {target}")
    print(f"hand-schedule blocking: {choose_blocking(M, N, K, target)}")

    results: dict[str, Timing] = {}
    if not skip_default:
        A = te.placeholder((M, K), name="A")
        B = te.placeholder((K, N), name="B")
        k = te.reduce_axis((0, K), name="k")
        C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
        default = tcomp.build(tcomp.create_schedule(C), [A, B, C])
        c = np.zeros((M, N), dtype=np.float32)
        default(a, b, c)
        np.testing.assert_allclose(c, expected, rtol=1e-3)
        results["tcomp default schedule"] = Timing.of(default.time_evaluator(number=1, repeat=3)(a, b, c).results)

    s, tensors = packed_matmul(M, N, K, target=target)
    hand = tcomp.build(s, tensors)
    c = np.zeros((M, N), dtype=np.float32)
    hand(a, b, c)
    np.testing.assert_allclose(c, expected, rtol=1e-3)
    # the operator library's matmul under its default CPU schedule (what a graph compiler gets)
    A, B = te.placeholder((M, K), name="A"), te.placeholder((K, N), name="B")
    C = ops.matmul(A, B)
    library = tcomp.build(schedule_cpu([C], target), [A, B, C])
    library(a, b, c)
    np.testing.assert_allclose(c, expected, rtol=1e-3)
    out = np.empty((M, N), dtype=np.float32)
    panel_runners = panel_products(a, b, target) if panels else {}
    # interleave tcomp and numpy repeats so both see the same machine state
    hand_times, library_times, numpy_times = [], [], []
    panel_times: dict[str, list[float]] = {label: [] for label in panel_runners}
    evaluator = hand.time_evaluator(number=3, repeat=1)
    library_evaluator = library.time_evaluator(number=3, repeat=1)
    for _ in range(repeat):
        wait_until_threads_idle()
        hand_times.extend(evaluator(a, b, c).results)
        wait_until_threads_idle()
        library_times.extend(library_evaluator(a, b, c).results)
        for label, (module, weight) in panel_runners.items():
            wait_until_threads_idle()
            panel_times[label].extend(module.time_evaluator(number=3, repeat=1)(a, weight, c).results)
        wait_until_threads_idle()
        numpy_times.append(time_callable(lambda: np.matmul(a, b, out=out), repeat=1, number=3).min)
    results["tcomp hand schedule"] = Timing.of(hand_times)
    results["tcomp ops.matmul, schedule_cpu"] = Timing.of(library_times)
    for label, times in panel_times.items():
        results[label] = Timing.of(times)
    reference = Timing.of(numpy_times)
    results["numpy (OpenBLAS)"] = reference

    rows = []
    for label, t in results.items():
        gflops_min, gflops_med = flops / t.min / 1e9, flops / t.median / 1e9
        share = f"{100 * gflops_min / peak:.0f}%" if peak else "n/a"
        rows.append(
            [label, f"{t.min * 1e3:.2f}", f"{t.median * 1e3:.2f}", f"{gflops_min:.1f}", f"{gflops_med:.1f}",
             f"{reference.min / t.min:.2f}", f"{reference.median / t.median:.2f}", share]
        )
    print_table(
        ["", "min ms", "median ms", "GFLOP/s(min)", "GFLOP/s(med)", "x numpy(min)", "x numpy(med)", "% peak"], rows
    )
    if peak:
        print(f"fp32 FMA peak on all cores: {peak:.1f} GFLOP/s ({target.vector_bits}-bit FMAs, "
              "shared/tools/fma_peak)")


if __name__ == "__main__":
    main()
