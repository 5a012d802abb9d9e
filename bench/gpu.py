"""GPU benchmarks (needs CuPy and a CUDA device): a float32 matmul, untuned and tuned, against cuBLAS; a whole model
against PyTorch (cuDNN), in the same run.

- matmul ``--size``^3 (default 4096) in float32: ``gpu_matmul.py --precisions fp32`` (cuBLAS with TF32 off, tcomp's
  default tile, the ``matmul_cuda`` template tuned for ``--trials`` trials or ``--budget`` seconds with ``--tuner``,
  records in the folder of ``--records``). ``bench/gpu_matmul.py`` itself also times tf32, fp16 and bf16.
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import Timing, print_table  # noqa: E402

from tcomp import autotune  # noqa: E402
from tcomp.target import Target  # noqa: E402


def bench_matmul(args: argparse.Namespace, target: Target) -> None:
    """matmul ``--size``^3 float32 against cuBLAS, untuned and tuned: ``gpu_matmul.py`` at precision fp32 (that
    script also times tf32, fp16 and bf16)."""
    import gpu_matmul

    gpu_matmul.main(["--size", str(args.size), "--precisions", "fp32", "--trials", str(args.trials), "--budget",
                     str(args.budget or 1e9), "--tuner", args.tuner, "--rounds", str(args.rounds), "--records-dir",
                     os.path.dirname(os.path.abspath(args.records)), "--seed", str(args.seed)])


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
    from gpu_matmul import gpu_target

    target = gpu_target()
    if not args.skip_matmul:
        bench_matmul(args, target)
    if not args.skip_model:
        bench_model(args, target)


if __name__ == "__main__":
    main()
