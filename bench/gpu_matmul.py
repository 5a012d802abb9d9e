"""Matmul on the GPU at every precision (needs CuPy and a CUDA device; PyTorch for the TF32 and bfloat16 cuBLAS
references): tcomp's GEMM tile kernel, untuned, swept and tuned, against cuBLAS in the same run.

For each of ``--precisions`` (``fp32``, ``tf32``, ``fp16``, ``bf16``), ``C = A @ B`` with ``M = N = K = --size``:

- references: cuBLAS in the same precision: fp32 with TF32 off (``cupy.matmul``; PyTorch with TF32 off too), tf32
  (PyTorch, ``allow_tf32``), fp16 (``cupy.matmul`` and PyTorch on float16 arrays: float16 results), bf16 (PyTorch
  on bfloat16 arrays). The first of them is the ratios' denominator.
- ``tcomp default``: ``tcomp.ops.cuda.matmul_cuda`` with the default tile of the shape; float16 operands for fp16
  (read with ``ldmatrix``), float32 operands rounded in the kernel for tf32 and bf16; float32 results.
- ``--sweep``: a few hand-picked tiles near the default, built and timed directly (no tuner; tiles over the
  target's shared-memory limit are left out).
- ``tcomp tuned``: the ``matmul_cuda`` template tuned with ``--tuner`` for up to ``--trials`` trials or ``--budget``
  seconds per precision (candidates compiled in parallel builder processes, each run checked against numpy;
  records in ``--records-dir``).

Everything is then timed interleaved, ``--rounds`` rounds of 3 calls, with CUDA events, and every result checked
against cuBLAS fp32 (TF32 off) within the precision's tolerance. Prints one table per precision (min and median
ms, TFLOP/s, ratios to the reference of min and median, relative error), the registers and shared memory of the
default and tuned kernels (``ptxas -v`` where nvcc exists), and the tuning curve.

    python bench/gpu_matmul.py [--size 4096] [--precisions fp32,tf32,fp16,bf16] [--trials 64] [--budget 150]
                               [--tuner xgb] [--sweep] [--rounds 20] [--records-dir DIR] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import Timing, print_table  # noqa: E402

from tcomp import autotune  # noqa: E402
from tcomp.target import Precision, Target  # noqa: E402

DTYPES = {Precision.FP32: "float32", Precision.TF32: "float32", Precision.FP16: "float16", Precision.BF16: "float32"}
CHECK_TOLERANCE = {Precision.FP32: 1e-5}  # relative to max |C|; the others: Precision.relative_tolerance


@dataclass(frozen=True)
class Plan:
    size: int
    precisions: tuple[Precision, ...]
    trials: int
    budget: float
    tuner: autotune.TunerKind
    sweep: bool
    rounds: int
    records_dir: str
    seed: int


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=4096, help="M = N = K")
    parser.add_argument("--precisions", default="fp32,fp16", help="comma-separated: fp32, tf32, fp16, bf16")
    parser.add_argument("--trials", type=int, default=64, help="tuning trials per precision (0: no tuning)")
    parser.add_argument("--budget", type=float, default=150.0, help="tuning seconds per precision at most")
    parser.add_argument("--tuner", default="xgb", choices=[k.value for k in autotune.TunerKind])
    parser.add_argument("--sweep", action="store_true", help="also time hand-picked tiles near the default")
    parser.add_argument("--rounds", type=int, default=20, help="timing rounds of 3 calls")
    parser.add_argument("--records-dir", default=".", help="where the tuning records go (matmul_<precision>.jsonl)")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def parse_plan(argv: list[str] | None = None) -> Plan:
    """The benchmark's plan from the command line; ``SystemExit`` (argparse's error) for bad values."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        precisions = tuple(dict.fromkeys(Precision.parse(p) for p in args.precisions.split(",") if p.strip()))
    except ValueError as error:
        parser.error(str(error))
    if not precisions:
        parser.error("--precisions: name at least one of fp32, tf32, fp16, bf16")
    if args.size < 16:
        parser.error(f"--size must be at least 16, got {args.size}")
    if args.trials < 0 or args.budget < 0 or args.rounds < 1:
        parser.error("--trials and --budget must not be negative, --rounds at least 1")
    return Plan(args.size, precisions, args.trials, args.budget, autotune.TunerKind(args.tuner), args.sweep,
                args.rounds, args.records_dir, args.seed)


def gpu_target(precision: Precision = Precision.FP32) -> Target:
    """The cuda target of the current device (its compute capability) with ``precision``."""
    import cupy

    capability = cupy.cuda.Device().compute_capability
    return Target(f"cuda -arch=sm_{capability}").with_precision(precision)


def sweep_tiles(precision: Precision, target: Target, size: int) -> list[Any]:
    """Hand-picked tiles near the default for ``size``^3 that fit ``target`` (module docstring)."""
    from tcomp.ops.cuda.gemm_choice import default_tile, fits, matmul_problem
    from tcomp.ops.cuda.gemm_tile import GemmTile, SmemLayout

    problem = matmul_problem(size, size, size, DTYPES[precision], precision)
    default = default_tile(problem, size, size, target=target)
    swizzle, pad = SmemLayout.SWIZZLE, SmemLayout.PAD
    if precision is Precision.FP32:
        tiles = [replace(default, stages=3), replace(default, stages=2), replace(default, layout=swizzle),
                 replace(default, min_blocks=1), replace(default, block_k=16, stages=2),
                 GemmTile(128, 128, 8, 2, 4, stages=4, lanes_m=8, k_outer=True, min_blocks=2),
                 GemmTile(128, 64, 8, 4, 2, stages=4, lanes_m=8, k_outer=True, min_blocks=2),
                 GemmTile(256, 128, 8, 4, 4, stages=3, lanes_m=8, k_outer=True),
                 GemmTile(128, 128, 16, 4, 2, stages=3, lanes_m=4, layout=swizzle),
                 # over 48 KB of shared memory: dynamic, where the target allows it
                 replace(default, block_k=16, stages=4), GemmTile(256, 128, 8, 4, 4, stages=4, lanes_m=8,
                                                                 k_outer=True)]
    elif precision is Precision.FP16:
        tiles = [replace(default, stages=2), replace(default, stages=4), replace(default, layout=pad, stages=2),
                 GemmTile(128, 256, 32, 2, 4, stages=2, layout=swizzle),
                 GemmTile(256, 128, 32, 4, 2, stages=2, layout=swizzle),
                 GemmTile(128, 128, 64, 2, 2, stages=3, layout=swizzle),
                 GemmTile(64, 128, 32, 2, 2, stages=4, layout=swizzle, min_blocks=2),
                 GemmTile(128, 128, 32, 2, 4, stages=3, layout=swizzle),
                 # over 48 KB of shared memory: dynamic, where the target allows it
                 GemmTile(128, 256, 32, 2, 4, stages=3, layout=swizzle),
                 GemmTile(128, 256, 32, 2, 4, stages=4, layout=swizzle),
                 GemmTile(256, 128, 32, 4, 2, stages=3, layout=swizzle),
                 GemmTile(128, 128, 64, 2, 2, stages=3, layout=swizzle),
                 GemmTile(128, 128, 32, 2, 2, stages=4, layout=swizzle, min_blocks=2)]
    else:
        tiles = [replace(default, stages=3), replace(default, layout=swizzle), replace(default, k_outer=True),
                 GemmTile(128, 128, 32, 2, 2, stages=2), GemmTile(128, 64, 16, 2, 2, stages=3)]
    unique = list(dict.fromkeys(t for t in tiles if t != default and fits(t, problem, target)))
    return unique


# ---------------------------------------------------------------------------------------------------------------------
def event_timings(runners: dict[str, Any], rounds: int, number: int = 3) -> dict[str, Timing]:
    """Seconds per call of each runner, ``number`` calls per round timed with CUDA events, rounds interleaved."""
    import cupy

    from tcomp.runtime.cuda_device import event_seconds

    results: dict[str, list[float]] = {name: [] for name in runners}
    for run in runners.values():
        run()
    cupy.cuda.Device().synchronize()
    for _ in range(rounds):
        for name, run in runners.items():
            results[name].append(event_seconds(cupy, run, number) / number)
    return {name: Timing.of(values) for name, values in results.items()}


def device_runner(module: Any, arrays: list[Any], host_shapes: list[np.ndarray]) -> Any:
    from tcomp.runtime.cuda_device import run_launches

    _, sizes = module.bind_sizes(host_shapes)
    launches = module.prepare_launches(arrays, sizes)
    return lambda: run_launches(launches)


def cublas_runners(precision: Precision, a32: Any, b32: Any, outputs: dict[str, Any]) -> dict[str, Any]:
    """cuBLAS in ``precision``, through CuPy and PyTorch where they offer it (module docstring)."""
    import cupy

    runners: dict[str, Any] = {}
    if precision is Precision.FP32:
        outputs["cuBLAS fp32 (cupy)"] = cupy.empty_like(a32)
        runners["cuBLAS fp32 (cupy)"] = lambda: cupy.matmul(a32, b32, out=outputs["cuBLAS fp32 (cupy)"])
    if precision is Precision.FP16:
        a16, b16 = a32.astype(cupy.float16), b32.astype(cupy.float16)
        outputs["cuBLAS fp16 (cupy)"] = cupy.empty_like(a16)
        runners["cuBLAS fp16 (cupy)"] = lambda: cupy.matmul(a16, b16, out=outputs["cuBLAS fp16 (cupy)"])
    try:
        import torch
    except ImportError:
        print("no PyTorch: cuBLAS through CuPy only (none for tf32 and bf16)")
        return runners
    torch_dtype = {Precision.FP16: torch.float16, Precision.BF16: torch.bfloat16}.get(precision, torch.float32)
    ta = torch.from_dlpack(a32).to(torch_dtype)
    tb = torch.from_dlpack(b32).to(torch_dtype)
    name = f"cuBLAS {precision} (torch)"
    result = torch.empty_like(ta)
    outputs[name] = result

    def run() -> None:
        torch.backends.cuda.matmul.allow_tf32 = precision is Precision.TF32
        torch.matmul(ta, tb, out=result)

    runners[name] = run
    return runners


def relative_error(got: Any, want: Any) -> float:
    """``max |got - want| / max |want|``; ``got`` a CuPy array or a PyTorch tensor on the device."""
    import cupy

    if not isinstance(got, cupy.ndarray):
        got = cupy.from_dlpack(got.float())
    return float(cupy.abs(got.astype(cupy.float32) - want).max() / cupy.abs(want).max())


def build_tile(plan: Plan, precision: Precision, target: Target, tile: Any, name: str) -> Any:
    from tcomp.backend.cuda import CudaRuntime
    from tcomp.backend.cuda.build import build_cuda
    from tcomp.ops.cuda import matmul_cuda

    n = plan.size
    schedule, tensors = matmul_cuda(n, n, n, dtype=DTYPES[precision], precision=precision, tile=tile, target=target)
    return build_cuda(schedule, tensors, target, name=name, runtime=CudaRuntime.DEVICE)


def tune(plan: Plan, precision: Precision, target: Target) -> Any:
    """Tune the ``matmul_cuda`` template; returns the best config's tile (``None`` without trials)."""
    from tcomp.ops.cuda.gemm_choice import parse_tile_name

    n = plan.size
    flop = 2.0 * n ** 3
    task = autotune.create_task("matmul_cuda", (n, n, n, DTYPES[precision]), target=target)
    records = os.path.join(plan.records_dir, f"matmul_{precision}.jsonl")
    if os.path.exists(records):
        os.remove(records)
    print(f"tuning {task} ({len(task.config_space)} configs) with {plan.tuner.value}: {plan.trials} trials or "
          f"{plan.budget:.0f} s")
    kind = plan.tuner
    if kind in (autotune.TunerKind.XGB, autotune.TunerKind.XGB_KNOB):
        try:
            import xgboost  # noqa: F401
        except ImportError:
            print("xgboost is not installed: tuning with random search instead")
            kind = autotune.TunerKind.RANDOM
    tuner = autotune.create_tuner(kind, task, seed=plan.seed)
    options = autotune.MeasureOptions(number=3, repeat=3, n_parallel=min(16, os.cpu_count() or 1),
                                      build_timeout=90, run_timeout=30)
    start = time.perf_counter()
    step = min(16, plan.trials)
    result = None
    with autotune.Measurer(options) as measurer:
        while True:  # in steps of 16 trials, so the budget can end the search between steps
            result = tuner.tune(step, measurer=measurer, callbacks=[autotune.log_to_file(records)])
            wall = time.perf_counter() - start
            print(f"  {tuner.trial_count} trials in {wall:.0f} s, best {flop / result.best_cost / 1e12:.1f} TFLOP/s")
            if step >= plan.trials or wall > plan.budget or not tuner.has_next():
                break
            step = min(step + 16, plan.trials)
    statuses = ", ".join(f"{s.value} {k}" for s, k in result.statuses.items())
    print(f"tuned in {wall:.0f} s ({statuses}); default {flop / result.default_cost / 1e12:.1f} TFLOP/s, best "
          f"{flop / result.best_cost / 1e12:.1f} TFLOP/s: {result.best_config}")
    for count in (16, 32, 64, 128, 200):
        if count <= len(result.curve):
            print(f"  best after {count} trials: {result.curve[count - 1] / 1e3:.1f} TFLOP/s")
    choices = result.best_config.choices
    return parse_tile_name(str(choices["tile"].val), k_outer=bool(choices["k_outer"].val),
                           min_blocks=int(choices["min_blocks"].val))


def resources(modules: dict[str, Any], arch: str) -> None:
    from tcomp.runtime.nvcc import kernel_resources, nvcc_available

    if not nvcc_available():
        print("(no nvcc: no ptxas resource figures)")
        return
    for name, module in modules.items():
        for item in kernel_resources(module.get_source("cuda"), arch).values():
            spills = f", spills {item.spill_stores}/{item.spill_loads} B" if item.spill_stores else ""
            print(f"  {name}: {item.registers} registers, {item.shared_bytes} B shared{spills}")


def bench_precision(plan: Plan, precision: Precision) -> None:
    import cupy

    from tcomp.ops.cuda.gemm_choice import default_tile, matmul_problem

    n, dtype = plan.size, DTYPES[precision]
    flop = 2.0 * n ** 3
    target = gpu_target(precision)
    rng = np.random.default_rng(plan.seed)
    a32 = cupy.asarray(rng.uniform(-1, 1, (n, n)).astype(np.float32))
    b32 = cupy.asarray(rng.uniform(-1, 1, (n, n)).astype(np.float32))
    a, b = (a32, b32) if dtype == "float32" else (a32.astype(cupy.float16), b32.astype(cupy.float16))
    exact = cupy.matmul(a32, b32) if dtype == "float32" else cupy.matmul(a.astype(cupy.float32),
                                                                          b.astype(cupy.float32))
    outputs: dict[str, Any] = {}
    runners = cublas_runners(precision, a32, b32, outputs)
    host = [np.empty((n, n), dtype), np.empty((n, n), dtype), np.empty((n, n), np.float32)]
    default = default_tile(matmul_problem(n, n, n, dtype, precision), n, n, target=target)
    tiles: dict[str, Any] = {"tcomp default": default}
    if plan.sweep:
        tiles.update({f"sweep {k}": t for k, t in enumerate(sweep_tiles(precision, target, n), 1)})
    if plan.trials:
        tiles["tcomp tuned"] = tune(plan, precision, target)
    modules = {}
    for name, tile in tiles.items():
        try:
            modules[name] = build_tile(plan, precision, target, tile, name.replace(" ", "_"))
        except Exception as error:  # noqa: BLE001 - a sweep tile that does not build is reported, not fatal
            print(f"{name}: {tile.describe()} does not build: {error}")
            continue
        outputs[name] = cupy.full((n, n), cupy.nan, dtype=cupy.float32)
        runners[name] = device_runner(modules[name], [a, b, outputs[name]], host)
    timings = event_timings(runners, plan.rounds)
    base_name = next(iter(timings))
    base = timings[base_name]
    limit = CHECK_TOLERANCE.get(precision, precision.relative_tolerance)
    rows = []
    for name, timing in timings.items():
        error = relative_error(outputs[name], exact)
        mark = "" if name.startswith("cuBLAS") or error <= limit else "  WRONG"
        rows.append([name, f"{timing.min * 1e3:.3f}", f"{timing.median * 1e3:.3f}", f"{flop / timing.min / 1e12:.1f}",
                     f"{base.min / timing.min:.2f}", f"{base.median / timing.median:.2f}", f"{error:.1e}{mark}"])
    device = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    print(f"\nmatmul {n}x{n}x{n} {precision} ({dtype} operands, float32 results for tcomp) on {device}, "
          f"{plan.rounds} rounds x 3 calls, reference {base_name}")
    print_table(["kernel", "min (ms)", "median (ms)", "TFLOP/s (min)", "x ref (min)", "x ref (median)",
                 "rel. error"], rows)
    for name, tile in tiles.items():
        print(f"  {name}: {tile.describe()}, k_outer={tile.k_outer}, min_blocks={tile.min_blocks}")
    resources({k: v for k, v in modules.items() if not k.startswith("sweep")}, target.arch)


def main(argv: list[str] | None = None) -> None:
    plan = parse_plan(argv)
    from tcomp.runtime.cuda_device import gpu_available

    if not gpu_available():
        raise SystemExit("bench/gpu_matmul.py needs CuPy and a CUDA device")
    for precision in plan.precisions:
        bench_precision(plan, precision)


if __name__ == "__main__":
    main()
