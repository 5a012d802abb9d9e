"""GPU benchmarks (needs CuPy and a CUDA device): a float32 matmul, untuned and tuned, against cuBLAS; a whole model
against PyTorch (cuDNN), in the same run.

- matmul ``--size``^3 (default 4096): cuBLAS through ``cupy.matmul`` (TF32 off: plain float32 FMA, as tcomp's
  kernels), tcomp's default CUDA schedule, and the best config found by tuning the ``matmul_cuda`` template for
  ``--trials`` trials with ``--tuner`` (records in ``--records``; candidates are built in worker processes and
  timed on the GPU with CUDA events, every one checked against numpy). The three are then timed interleaved, round
  after round, with CUDA events; every result is checked against cuBLAS's.
- ``--model`` (default resnet50, batch 1, 224x224): compiled with ``tcomp.graph.compile(target="cuda")``, checked
  against onnxruntime on the CPU, timed with CUDA events (launched from Python, and replayed as a CUDA graph)
  against PyTorch's torchvision model of the same architecture (own random weights, cuDNN, TF32 off, eval mode).

    python bench/gpu.py [--size 4096] [--trials 64] [--budget SECONDS] [--tuner xgb] [--records cuda_matmul.jsonl]
                         [--model resnet50] [--skip-matmul] [--skip-model] [--rounds 20]

Measured on one NVIDIA H200 (CuPy 14.2, PyTorch 2.11), min of 20 interleaved rounds: matmul 4096^3 cuBLAS 50.0-51.1
TFLOP/s; tcomp's default schedule 38.7 TFLOP/s (0.77x), the best tuned config 43.0 TFLOP/s (0.86x, 128x128
blocks, 8x8 outputs per thread, 32-deep slices, after about 80 xgb trials); ResNet-50 batch 1: tcomp 3.54 ms as a
CUDA graph (3.68 ms launched from Python) against PyTorch/cuDNN 2.73 ms (1.30x).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import Timing, print_table  # noqa: E402

from tcomp import autotune  # noqa: E402
from tcomp.codegen.cuda import CudaRuntime  # noqa: E402
from tcomp.codegen.cuda.build import build_cuda  # noqa: E402
from tcomp.runtime.cuda_device import event_seconds  # noqa: E402
from tcomp.target import Target  # noqa: E402


def gpu_target() -> Target:
    import cupy

    major, minor = cupy.cuda.Device().compute_capability[:-1], cupy.cuda.Device().compute_capability[-1]
    return Target(f"cuda -arch=sm_{major}{minor}")


def event_timings(runners: dict[str, Any], rounds: int, number: int) -> dict[str, Timing]:
    """Seconds per call of each runner, ``number`` calls per round timed with CUDA events, rounds interleaved."""
    import cupy

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


def relative_error(got: Any, want: Any) -> float:
    import cupy

    return float(cupy.abs(got - want).max() / cupy.abs(want).max())


def bench_matmul(args: argparse.Namespace, target: Target) -> None:
    import cupy

    from tcomp.ops.cuda import matmul_cuda

    n = args.size
    flop = 2.0 * n * n * n
    rng = np.random.default_rng(args.seed)
    a = cupy.asarray(rng.uniform(-1, 1, (n, n)).astype(np.float32))
    b = cupy.asarray(rng.uniform(-1, 1, (n, n)).astype(np.float32))
    host = [np.empty((n, n), np.float32) for _ in range(3)]
    outputs = {name: cupy.full((n, n), cupy.nan, dtype=cupy.float32) for name in ("cuBLAS", "tcomp default",
                                                                                    "tcomp tuned")}
    runners: dict[str, Any] = {"cuBLAS": lambda: cupy.matmul(a, b, out=outputs["cuBLAS"])}

    schedule, tensors = matmul_cuda(n, n, n)
    default = build_cuda(schedule, tensors, target, name="matmul_default", runtime=CudaRuntime.DEVICE)
    runners["tcomp default"] = device_runner(default, [a, b, outputs["tcomp default"]], host)

    task = autotune.create_task("matmul_cuda", (n, n, n), target=target)
    print(f"tuning {task} ({len(task.config_space)} configs) with {args.tuner} for {args.trials} trials")
    if args.records and os.path.exists(args.records):
        os.remove(args.records)
    tuner = autotune.create_tuner(autotune.TunerKind(args.tuner), task, seed=args.seed)
    callbacks = [autotune.log_to_file(args.records)] if args.records else []
    options = autotune.MeasureOptions(number=3, repeat=3, n_parallel=min(8, os.cpu_count() or 1),
                                      build_timeout=30, run_timeout=30)
    start = time.perf_counter()
    trials = min(16, args.trials)
    with autotune.Measurer(options) as measurer:
        while True:  # in steps of 16 trials, so a time budget can end the search between steps
            result = tuner.tune(trials, measurer=measurer, callbacks=callbacks)
            wall = time.perf_counter() - start
            print(f"  {tuner.trial_count} trials in {wall:.0f} s, best {flop / result.best_cost / 1e9:.0f} GFLOP/s")
            if trials >= args.trials or (args.budget and wall > args.budget):
                break
            trials = min(trials + 16, args.trials)
    best_gflops = result.curve
    statuses = ", ".join(f"{s.value} {k}" for s, k in result.statuses.items())
    print(f"tuned in {wall:.0f} s ({statuses}); default config {flop / result.default_cost / 1e9:.0f} GFLOP/s, "
          f"best {flop / result.best_cost / 1e9:.0f} GFLOP/s: {result.best_config}")
    for count in (16, 32, 64, 128, 200):
        if count <= len(best_gflops):
            print(f"  best after {count} trials: {best_gflops[count - 1]:.0f} GFLOP/s")
    tuned_schedule, tuned_tensors = task.instantiate(result.best_config)
    tuned = build_cuda(tuned_schedule, tuned_tensors, target, name="matmul_tuned", runtime=CudaRuntime.DEVICE)
    runners["tcomp tuned"] = device_runner(tuned, [a, b, outputs["tcomp tuned"]], host)

    timings = event_timings(runners, args.rounds, number=3)
    reference = outputs["cuBLAS"]
    base = timings["cuBLAS"]
    rows = []
    for name, timing in timings.items():
        error = relative_error(outputs[name], reference)
        rows.append([name, f"{timing.min * 1e3:.3f}", f"{timing.median * 1e3:.3f}",
                     f"{flop / timing.min / 1e9:.0f}", f"{base.min / timing.min:.2f}",
                     f"{base.median / timing.median:.2f}", f"{error:.1e}"])
    print(f"\nmatmul {n}x{n}x{n} float32 on {cupy.cuda.runtime.getDeviceProperties(0)['name'].decode()}, "
          f"{args.rounds} rounds x 3 calls")
    print_table(["kernel", "min (ms)", "median (ms)", "GFLOP/s (min)", "x cuBLAS (min)", "x cuBLAS (median)",
                 "rel. error"], rows)
    print(f"tuned kernel: {tuned.kernels[0].launch}, {tuned.kernels[0].shared_bytes} bytes of shared memory")


def bench_model(args: argparse.Namespace, target: Target) -> None:
    import onnxruntime as ort

    import tcomp.graph as tg
    from tcomp.graph import testing

    size = args.image_size
    model = {"resnet50": lambda: testing.resnet(50, image_size=size),
             "resnet18": lambda: testing.resnet(18, image_size=size)}[args.model]()
    x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    executor = tg.compile(model, target, timings=timings)
    compile_seconds = time.perf_counter() - start
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in timings.items())
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    [want] = session.run(None, {"data": x})
    [got] = executor.run([x])
    error = float(np.abs(got - want).max() / np.abs(want).max())
    print(f"\n{args.model}: compiled for {target} in {compile_seconds:.1f} s ({stages}); {executor.num_kernels} "
          f"kernels; relative error against onnxruntime {error:.1e}")

    launched = Timing.of(executor.benchmark(repeat=args.rounds, number=3))
    graph = Timing.of(executor.benchmark(repeat=args.rounds, number=3, cuda_graph=True))
    rows: list[tuple[str, Timing]] = [("tcomp (launched from Python)", launched), ("tcomp (CUDA graph)", graph)]
    try:
        import torch
        import torchvision

        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.benchmark = True
        net = getattr(torchvision.models, args.model)().cuda().eval()
        tx = torch.from_numpy(x).cuda()
        with torch.no_grad():
            for _ in range(5):
                net(tx)
            torch.cuda.synchronize()
            values = []
            for _ in range(args.rounds):
                begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                begin.record()
                for _ in range(3):
                    net(tx)
                end.record()
                end.synchronize()
                values.append(begin.elapsed_time(end) / 1e3 / 3)
        rows.append((f"PyTorch {torch.__version__} (cuDNN)", Timing.of(values)))
    except ImportError as missing:
        print(f"no PyTorch reference: {missing}")
    cpu = []
    for _ in range(5):
        begin = time.perf_counter()
        session.run(None, {"data": x})
        cpu.append(time.perf_counter() - begin)
    rows.append((f"onnxruntime CPU ({os.cpu_count()} cores)", Timing.of(cpu)))
    base_name, base = rows[2] if len(rows) > 3 else rows[-1]
    print(f"{args.model}, batch 1, float32, {size}x{size}, {args.rounds} rounds x 3 runs, CUDA events")
    print_table(["runtime", "min (ms)", "median (ms)", "min / reference", "median / reference"],
                [[name, f"{t.min * 1e3:.2f}", f"{t.median * 1e3:.2f}", f"{t.min / base.min:.2f}",
                  f"{t.median / base.median:.2f}"] for name, t in rows])
    print(f"reference: {base_name}")
    slowest = sorted(executor.profile(repeat=3), key=lambda r: -r[2])[: args.profile]
    total = sum(s for _, _, s in executor.profile(repeat=1))
    print(f"\n{args.profile} slowest kernels (of {executor.num_kernels}, {total * 1e3:.2f} ms in all):")
    print_table(["node", "kernel", "ms"], [[n, e, f"{s * 1e3:.3f}"] for n, e, s in slowest])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--tuner", default="xgb", choices=[k.value for k in autotune.TunerKind])
    parser.add_argument("--records", default="cuda_matmul.jsonl")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=0, help="stop tuning after about this many seconds")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--model", default="resnet50", choices=["resnet50", "resnet18"])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--profile", type=int, default=10)
    parser.add_argument("--skip-matmul", action="store_true")
    parser.add_argument("--skip-model", action="store_true")
    args = parser.parse_args()

    from tcomp.runtime.cuda_device import gpu_available

    if not gpu_available():
        raise SystemExit("bench/gpu.py needs CuPy and a CUDA device")
    target = gpu_target()
    if not args.skip_matmul:
        bench_matmul(args, target)
    if not args.skip_model:
        bench_model(args, target)


if __name__ == "__main__":
    main()
