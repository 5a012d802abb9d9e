"""GPU benchmarks (needs CuPy and a CUDA device): a float32 matmul, untuned and tuned, against cuBLAS; whole models
against PyTorch (cuDNN, cuBLAS), in the same run.

- matmul ``--size``^3 (default 4096) in float32: ``gpu_matmul.py --precisions fp32`` (cuBLAS with TF32 off, tcomp's
  default tile, the ``matmul_cuda`` template tuned for ``--trials`` trials or ``--budget`` seconds with ``--tuner``,
  records in the folder of ``--records``). ``bench/gpu_matmul.py`` itself also times tf32, fp16 and bf16.
- ``--models`` (default: all of ``gpu_models.MODELS``: torchvision ResNet-50, MobileNetV3-small, ShuffleNetV2,
  RegNetY-400MF, EfficientNet-B0, DenseNet-121, SqueezeNet 1.1, ConvNeXt-tiny, ViT-B/16, and Hugging Face BERT-base
  and GPT-2 built from their configs; batch 1): each built by PyTorch with random weights, exported to ONNX,
  compiled with ``tcomp.graph.compile(target="cuda")``, checked against PyTorch's output and timed against
  PyTorch's own kernels captured as a CUDA graph (TF32 off, cuDNN autotuned), tcomp's kernels also replayed as a
  CUDA graph (``gpu_models.run_model``). Models run in their own processes, ``--workers`` at a time, each within
  ``--model-timeout`` seconds; their exports, logs and ``results.jsonl`` go to ``--export-dir``. Without a GPU
  (``--skip-matmul``) the models are exported and compiled, not run.

    python bench/gpu.py [--size 4096] [--trials 64] [--budget SECONDS] [--tuner xgb] [--records cuda_matmul.jsonl]
                         [--models resnet50 ...] [--workers 6] [--model-timeout 240] [--export-dir gpu_models]
                         [--skip-matmul] [--skip-model] [--rounds 20] [--number 5]

Measured on one NVIDIA H200 (CuPy 14.2, PyTorch 2.11), min of 20 interleaved rounds: matmul 4096^3 cuBLAS 50.0-51.1
TFLOP/s; tcomp's default schedule 38.7 TFLOP/s (0.77x), the best tuned config 43.0 TFLOP/s (0.86x, 128x128
blocks, 8x8 outputs per thread, 32-deep slices, after about 80 xgb trials); ResNet-50 batch 1: tcomp 3.54 ms as a
CUDA graph (3.68 ms launched from Python) against PyTorch/cuDNN 2.73 ms (1.30x).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import print_table  # noqa: E402
from gpu_models import MODELS  # noqa: E402

from tcomp import autotune  # noqa: E402
from tcomp.target import Target  # noqa: E402


def bench_matmul(args: argparse.Namespace, target: Target) -> None:
    """matmul ``--size``^3 float32 against cuBLAS, untuned and tuned: ``gpu_matmul.py`` at precision fp32 (that
    script also times tf32, fp16 and bf16)."""
    import gpu_matmul

    gpu_matmul.main(["--size", str(args.size), "--precisions", "fp32", "--trials", str(args.trials), "--budget",
                     str(args.budget or 1e9), "--tuner", args.tuner, "--rounds", str(args.rounds), "--records-dir",
                     os.path.dirname(os.path.abspath(args.records)), "--seed", str(args.seed)])


def bench_models(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run ``gpu_models.py --run`` for each model of ``--models``, ``--workers`` at a time (each in its own process
    with a ``--model-timeout``; exports and compilations overlap, kernels run one model at a time under a file
    lock), then print the table (``print_model_table``)."""
    folder = Path(args.export_dir)
    folder.mkdir(parents=True, exist_ok=True)
    results_path = folder / "results.jsonl"
    results_path.unlink(missing_ok=True)
    script = Path(__file__).resolve().with_name("gpu_models.py")
    pending = sorted(args.models, key=lambda name: not MODELS[name].dynamo)  # the slow exports start first
    running: list[tuple[str, subprocess.Popen[bytes], float, Any]] = []
    timed_out: list[str] = []
    start = time.perf_counter()

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # unwinds to the cleanup below, which still prints the table

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        while pending or running:
            while pending and len(running) < args.workers:
                name = pending.pop(0)
                log = open(folder / f"{name}.log", "wb")  # noqa: SIM115 - closed when the process ends
                command = [sys.executable, str(script), "--run", name, "--out", str(folder), "--result",
                           str(results_path), "--lock", str(folder / "gpu.lock"), "--rounds", str(args.rounds),
                           "--number", str(args.number)]
                process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
                running.append((name, process, time.perf_counter(), log))
                print(f"[{time.perf_counter() - start:5.0f} s] {name}: started", flush=True)
            time.sleep(0.5)
            for entry in list(running):
                name, process, began, log = entry
                if process.poll() is None and time.perf_counter() - began < args.model_timeout:
                    continue
                if process.poll() is None:  # its whole process group: the model's compiler workers too
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                    timed_out.append(name)
                log.close()
                running.remove(entry)
                outcome = "timed out" if name in timed_out else f"done (exit {process.returncode})"
                print(f"[{time.perf_counter() - start:5.0f} s] {name}: {outcome}", flush=True)
    except KeyboardInterrupt:
        print(f"[{time.perf_counter() - start:5.0f} s] stopped: {', '.join(n for n, *_ in running)} unfinished",
              flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        for _, process, _, log in running:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            log.close()
    results = {}
    if results_path.exists():
        for line in results_path.read_text().splitlines():
            row = json.loads(line)
            results[row["model"]] = row
    for name in args.models:
        if name not in results:
            status = (f"timed out after {args.model_timeout:.0f} s" if name in timed_out
                      else "stopped or crashed (see its log)")
            results[name] = {"model": name, "status": status}
    rows = [results[name] for name in args.models]
    print_model_table(rows)
    return rows


def print_model_table(rows: list[dict[str, Any]]) -> None:
    """tcomp and PyTorch, each replayed as a CUDA graph, min and median, their ratios, tcomp's relative error against
    PyTorch, compile time and kernels, then the geometric mean of the ratios, errors and each model's slowest
    kernels."""
    table, ratios = [], []
    for row in rows:
        if "tcomp_ms" in row and "torch_ms" in row:
            (t_min, t_med), (p_min, p_med) = row["tcomp_ms"], row["torch_ms"]
            ratios.append(t_min / p_min)
            cells = [f"{t_min:.3f}", f"{t_med:.3f}", f"{p_min:.3f}", f"{p_med:.3f}", f"{t_min / p_min:.2f}",
                     f"{t_med / p_med:.2f}"]
        else:
            cells = ["-"] * 6
        error = f"{row['rel_error']:.1e}" if "rel_error" in row else "-"
        compile_s = f"{row['compile_s']:.0f}" if "compile_s" in row else "-"
        table.append([row["model"], *cells, error, compile_s, str(row.get("kernels", "-")), row["status"]])
    print("\nbatch 1, float32 (TF32 off); tcomp and PyTorch (cuDNN, cuBLAS) each replayed as a CUDA graph; ms per run")
    print_table(["model", "tcomp min", "tcomp med", "torch min", "torch med", "x torch (min)", "x torch (med)",
                 "rel. error", "compile s", "kernels", "status"], table)
    if ratios:
        geomean = float(np.exp(np.mean(np.log(ratios))))
        print(f"geometric mean of tcomp / PyTorch (min): {geomean:.2f} over {len(ratios)} models")
    for row in rows:
        if row.get("error"):
            print(f"\n{row['model']}: {row['error']}")
        if row.get("slowest"):
            kernels = "; ".join(f"{kernel} {ms:.3f} ms" for _, kernel, ms in row["slowest"])
            print(f"{row['model']} slowest kernels: {kernels}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--tuner", default="xgb", choices=[k.value for k in autotune.TunerKind])
    parser.add_argument("--records", default="cuda_matmul.jsonl")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=0, help="stop tuning after about this many seconds")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS), metavar="MODEL",
                        help=f"models to export, compile and time (default: all of {', '.join(MODELS)})")
    parser.add_argument("--workers", type=int, default=6, help="models exported and compiled at once")
    parser.add_argument("--model-timeout", type=float, default=240, help="seconds one model may take in all")
    parser.add_argument("--number", type=int, default=5, help="runs per timed round of a model")
    parser.add_argument("--export-dir", default="gpu_models", help="ONNX exports, logs and results.jsonl")
    parser.add_argument("--skip-matmul", action="store_true")
    parser.add_argument("--skip-model", action="store_true")
    args = parser.parse_args()

    from tcomp.runtime.cuda_device import gpu_available

    if not args.skip_matmul:
        if not gpu_available():
            raise SystemExit("the matmul benchmark needs CuPy and a CUDA device (--skip-matmul to run the models)")
        from gpu_matmul import gpu_target

        bench_matmul(args, gpu_target())
    if not args.skip_model:
        bench_models(args)


if __name__ == "__main__":
    main()
