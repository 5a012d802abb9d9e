"""Tune a matmul, then compile and run a model, each compared with numpy / onnxruntime on this machine.

tcomp's main job end to end:

1. Tune an operator: a short XGBoost-guided tuning run of a 512x512x512 float32 matmul, every
   candidate measured in worker processes and checked against numpy; the default and tuned configs
   are then timed next to numpy.
2. Compile and run a model: a small ResNet built as an ONNX model (random weights), imported,
   optimized by the graph passes, compiled to one kernel per fused group, run, and compared with
   onnxruntime when it is installed (otherwise with the onnx reference evaluator), with latencies
   measured in the same run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import tcomp
import tcomp.graph
from tcomp import autotune
from tcomp.runtime.timer import alternating, wait_until_threads_idle


def _best_time(fn, repeat: int) -> tuple[float, float]:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), float(np.median(times))


def tune_operator(size: int, trials: int) -> None:
    M = N = K = size
    print(f"== 1. tune a matmul {M}x{N}x{K} float32 ({trials} trials, xgb tuner) on {tcomp.Target.current_host()}")
    task = autotune.create_task("matmul", (M, N, K), target="llvm")
    records = Path(tempfile.mkdtemp(prefix="tcomp-demo-")) / "matmul.jsonl"
    tuner = autotune.XGBTuner(task, seed=0, plan_size=8)
    result = tuner.tune(
        n_trial=trials,
        measure_option=autotune.MeasureOptions(number=5, repeat=3, build_timeout=10, run_timeout=10),
        callbacks=[autotune.log_to_file(records)],
    )
    print(f"   {result.trials} trials measured, {result.errors} failed; records in {records}")
    with autotune.apply_history_best(records):
        tuned = autotune.instantiate("matmul", M, N, K, target="llvm")
    default = autotune.instantiate("matmul", M, N, K, target="llvm")
    rng = np.random.default_rng(0)
    a = rng.random((M, K), dtype=np.float32)
    b = rng.random((K, N), dtype=np.float32)
    c = np.zeros((M, N), dtype=np.float32)
    expected = a @ b
    flops = 2.0 * M * N * K
    rows = []
    for label, inst in (("tcomp default config", default), ("tcomp tuned config", tuned)):
        mod = tcomp.build(inst.schedule, inst.tensors)
        mod(a, b, c)
        np.testing.assert_allclose(c, expected, rtol=1e-3)
        wait_until_threads_idle()  # OpenBLAS's threads spin after a call and would share the cores
        timing = mod.time_evaluator(number=5, repeat=5)(a, b, c)
        rows.append((label, timing.min, timing.median))
    wait_until_threads_idle()
    rows.append(("numpy (OpenBLAS)", *_best_time(lambda: np.matmul(a, b), 15)))
    reference = rows[-1][1]
    print(f"   {'':<24}{'min ms':>9}{'median ms':>11}{'GFLOP/s':>9}{'x numpy':>9}")
    for label, best, median in rows:
        gflops = flops / best / 1e9
        print(f"   {label:<24}{best * 1e3:>9.3f}{median * 1e3:>11.3f}{gflops:>9.1f}{reference / best:>9.2f}")


def compile_model(image_size: int) -> None:
    from tcomp.graph.testing import resnet

    print(f"\n== 2. compile and run a model: ResNet-18 (width 0.5) at {image_size}x{image_size}, batch 1, float32")
    model = resnet(depth=18, image_size=image_size, width=0.5, num_classes=100)
    start = time.perf_counter()
    executor = tcomp.graph.compile(model, target="llvm")
    print(f"   imported, optimized and compiled in {time.perf_counter() - start:.1f} s")
    data = np.random.default_rng(1).standard_normal((1, 3, image_size, image_size)).astype(np.float32)
    (ours,) = executor.run([data])
    input_name = model.graph.input[0].name
    runs = {"tcomp": lambda: executor.run([data])}
    try:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        (reference,) = session.run(None, {input_name: data})
        runs["onnxruntime"] = lambda: session.run(None, {input_name: data})
        ref_label = "onnxruntime"
    except ImportError:
        from onnx.reference import ReferenceEvaluator

        (reference,) = ReferenceEvaluator(model).run(None, {input_name: data})
        ref_label = "onnx reference evaluator"
    error = float(np.abs(ours - reference).max() / (np.abs(reference).max() + 1e-12))
    print(f"   output {ours.shape}, max relative difference from {ref_label}: {error:.2e}")
    times = {label: (min(values), float(np.median(values))) for label, values in alternating(runs, 6, 5).items()}
    for label, (best, median) in times.items():
        print(f"   {label} latency: min {best * 1e3:.2f} ms, median {median * 1e3:.2f} ms")
    if "onnxruntime" in times:
        (ours_min, ours_median), (ref_min, ref_median) = times["tcomp"], times["onnxruntime"]
        print(f"   tcomp / onnxruntime: min {ours_min / ref_min:.2f}, median {ours_median / ref_median:.2f} "
              "(timed in alternating rounds)")


def run_demo(size: int = 512, trials: int = 24, image_size: int = 64) -> None:
    print(f"tcomp {tcomp.__version__}")
    tune_operator(size, trials)
    compile_model(image_size)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, default=512, help="matrix size of the tuned matmul (default 512)")
    parser.add_argument("--trials", type=int, default=24, help="tuning trials (default 24)")
    parser.add_argument("--image-size", type=int, default=64, help="input resolution of the demo model (default 64)")


def run(args: argparse.Namespace) -> int:
    run_demo(size=args.size, trials=args.trials, image_size=args.image_size)
    return 0
