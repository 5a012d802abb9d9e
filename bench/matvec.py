"""Memory-bound kernels against the machine's copy bandwidth, onnxruntime and numpy: matrix-vector and skinny
products (batch 1-16), and row-wise operators (softmax, layer norm, RMS norm, GELU, sigmoid, SiLU).

    python bench/matvec.py [--shapes 1x25088x4096 4x4096x1000 ...] [--rows 128x768] [--rounds 20] [--threads 2]
    python bench/matvec.py --shapes        # the row operators alone
    python bench/matvec.py --rows          # the products alone

Each product ``MxKxN`` is a single-node ONNX model (``MatMul`` with a ``[K, N]`` weight, or ``Gemm`` with
``transB=1``, a ``[N, K]`` weight and a bias) compiled by tcomp for this CPU and run by onnxruntime on the same
thread count; numpy's ``x @ W`` runs beside them. A product streams its weight once: its bandwidth is the weight's
bytes over its time. Each row operator is a single-node model too (two nodes for SiLU, ``x * sigmoid(x)``) on a
``rows x cols`` float32 input: it reads the input and writes the output once, so its bandwidth counts both.

The bandwidth reference is a STREAM-style copy measured in the same rounds: a parallel vectorized copy built by
tcomp, and numpy's, counted as STREAM counts (bytes read plus bytes written, over the time), the faster of the two.
Products are compared with a copy of a buffer the size of their weight (from memory); row operators with a copy of
their input's size (from the caches, as the operator reads it: ``% copy``) and with a copy of ``--memory-mb`` MiB
(from memory: ``% mem``). The tables print tcomp's min, median and p99 times, the kernels' bandwidth as a share of
the copy's (medians: ``% copy``; minimums, the least disturbed by other processes: ``% copy min``), and the ratios
of tcomp's min, median and p99 times to onnxruntime's and numpy's.

tcomp's kernels are called directly (the executor's inputs set once), as is the copy; onnxruntime's times include
its ``run`` call. Row operators are timed over ``--number`` back-to-back calls per round (a few microseconds each).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table, wait_until_threads_idle  # noqa: E402

import tcomp  # noqa: E402
import tcomp.graph as tg  # noqa: E402
from tcomp import te  # noqa: E402
from tcomp.runtime.artifact import ENTRY_PROTOTYPE  # noqa: E402
from tcomp.schedule.schedule import create_schedule  # noqa: E402

DEFAULT_SHAPES = ("1x25088x4096", "1x4096x4096", "1x4096x1000", "1x1000x1001", "4x9216x4096", "16x4096x4096",
                  "8x768x3072", "1x999x777")
DEFAULT_ROWS = ("128x768",)
ROW_OPS = ("softmax", "layer_norm", "rms_norm", "gelu", "gelu_tanh", "sigmoid", "silu")


# ------------------------------------------------------------------------------------------------------ models
def product_model(m: int, w_kn: np.ndarray, gemm: bool) -> bytes:
    """``y = x @ W`` (MatMul, ``W [K, N]``) or ``y = x @ W.T + b`` (Gemm with ``transB=1``, ``W [N, K]``, zero
    bias)."""
    from onnx import TensorProto, helper, numpy_helper

    k, n = w_kn.shape
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])
    if gemm:
        weight = numpy_helper.from_array(np.ascontiguousarray(w_kn.T), "W")
        bias = numpy_helper.from_array(np.zeros(n, np.float32), "b")
        node = helper.make_node("Gemm", ["x", "W", "b"], ["y"], transB=1)
        inits = [weight, bias]
    else:
        weight = numpy_helper.from_array(w_kn, "W")
        node = helper.make_node("MatMul", ["x", "W"], ["y"])
        inits = [weight]
    graph = helper.make_graph([node], "skinny", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return model.SerializeToString()


def row_model(op: str, rows: int, cols: int, rng: np.random.Generator) -> bytes:
    """A ``rows x cols`` float32 operator over the last axis: ``op`` one of ``ROW_OPS``."""
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, cols])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows, cols])
    scale = numpy_helper.from_array(rng.uniform(0.5, 1.5, cols).astype(np.float32), "scale")
    bias = numpy_helper.from_array(rng.uniform(-0.5, 0.5, cols).astype(np.float32), "bias")
    inits: list[object] = []
    opset = 13
    if op == "softmax":
        nodes = [helper.make_node("Softmax", ["x"], ["y"], axis=-1)]
    elif op == "layer_norm":
        nodes = [helper.make_node("LayerNormalization", ["x", "scale", "bias"], ["y"], axis=-1, epsilon=1e-5)]
        inits, opset = [scale, bias], 17
    elif op == "rms_norm":
        nodes = [helper.make_node("RMSNormalization", ["x", "scale"], ["y"], axis=-1, epsilon=1e-5)]
        inits, opset = [scale], 23
    elif op in ("gelu", "gelu_tanh"):
        nodes = [helper.make_node("Gelu", ["x"], ["y"], approximate="tanh" if op == "gelu_tanh" else "none")]
        opset = 20
    elif op == "sigmoid":
        nodes = [helper.make_node("Sigmoid", ["x"], ["y"])]
    elif op == "silu":
        nodes = [helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node("Mul", ["x", "s"], ["y"])]
    else:
        raise ValueError(f"unknown row operator {op!r}; expected one of {', '.join(ROW_OPS)}")
    graph = helper.make_graph(nodes, op, [x], [y], inits)  # type: ignore[arg-type]
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return model.SerializeToString()


# ------------------------------------------------------------------------------------------------------ runners
def tcomp_copy(elements: int) -> Callable[[np.ndarray, np.ndarray], Callable[[], None]]:
    """A parallel, vectorized copy of ``elements`` float32 values (the STREAM copy kernel): ``copy(src, dst)`` is a
    function that copies ``src`` into ``dst`` with one direct call of the kernel."""
    a = te.placeholder((elements,), name="a")
    c = te.compute((elements,), lambda i: a[i], name="c")
    s = create_schedule(c)
    chunk = max(1 << 12, min(1 << 16, elements // 8))
    outer, inner = s[c].split(c.op.axis[0], factor=chunk)
    s[c].parallel(outer)
    _, lanes = s[c].split(inner, factor=16)
    s[c].vectorize(lanes)
    module = tcomp.build(s, [a, c])

    def bind(src: np.ndarray, dst: np.ndarray) -> Callable[[], None]:
        module(src, dst)  # checks the arguments once
        return direct_call(module.native_entry().address, [src, dst], module.error_slots)

    return bind


def direct_call(address: int, arrays: list[np.ndarray], error_slots: int) -> Callable[[], None]:
    entry = ENTRY_PROTOTYPE(address)
    pointers = (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])
    sizes = (ctypes.c_int64 * 1)()
    errors = (ctypes.c_int64 * max(1, error_slots))()

    def run() -> None:
        if entry(pointers, sizes, errors) != 0:
            raise RuntimeError("the kernel failed")

    return run


def executor_call(executor: tg.GraphExecutor, x: np.ndarray) -> Callable[[], None]:
    """Run ``executor``'s kernels on input ``x``, set once (no input copy, no output copy per run)."""
    executor.set_input(0, x)
    return executor.run


def interleaved(runners: dict[str, Callable[[], object]], rounds: int, number: int) -> dict[str, np.ndarray]:
    """Seconds per call of each runner: ``rounds`` rounds, each runner in turn, each timed over ``number`` calls
    after this process's threads went idle (numpy's and onnxruntime's spin after a call)."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    for run in runners.values():
        run()
    for _ in range(rounds):
        for name, run in runners.items():
            wait_until_threads_idle()
            run()  # wakes the thread pools: the calls timed run back to back, as inside a model
            start = time.perf_counter()
            for _ in range(number):
                run()
            times[name].append((time.perf_counter() - start) / number)
    return {name: np.array(values) for name, values in times.items()}


def stats(values: np.ndarray) -> tuple[float, float, float]:
    return float(values.min()), float(np.median(values)), float(np.percentile(values, 99))


def spread(seconds: np.ndarray, digits: int) -> str:
    """``min/median/p99`` in microseconds."""
    return "/".join(f"{v * 1e6:.{digits}f}" for v in stats(seconds))


def ratios(ours: np.ndarray, theirs: np.ndarray | None) -> str:
    if theirs is None:
        return "-"
    return "/".join(f"{a / b:.2f}" for a, b in zip(stats(ours), stats(theirs)))


def copy_runners(elements: int) -> dict[str, Callable[[], object]]:
    src = np.random.default_rng(1).standard_normal(elements).astype(np.float32)
    dst = np.empty_like(src)
    return {"copy tcomp": tcomp_copy(elements)(src, dst), "copy numpy": lambda: np.copyto(dst, src)}


def copy_seconds(times: dict[str, np.ndarray], best: bool = False) -> float:
    """The faster copy's median time (``best``: its minimum)."""
    pick = np.min if best else np.median
    return min(float(pick(times["copy tcomp"])), float(pick(times["copy numpy"])))


def session(model: bytes, threads: int) -> object:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(model, options)


# ------------------------------------------------------------------------------------------------------ tables
def measure_product(x: np.ndarray, w_kn: np.ndarray, gemm: bool, threads: int, rounds: int) -> list[str]:
    """One row: tcomp, onnxruntime, numpy and the two copies of a weight-sized buffer, interleaved."""
    model = product_model(x.shape[0], w_kn, gemm)
    executor = tg.compile(model, "llvm")
    ort_session = session(model, threads)
    [reference] = ort_session.run(None, {"x": x})  # type: ignore[attr-defined]
    [got] = executor.run([x])
    error = float(np.abs(got - reference).max() / max(np.abs(reference).max(), 1e-30))
    times = interleaved({
        "tcomp": executor_call(executor, x),
        "onnxruntime": lambda: ort_session.run(None, {"x": x}),  # type: ignore[attr-defined]
        "numpy": lambda: x @ w_kn,
        **copy_runners(w_kn.size),
    }, rounds, 1)
    copy_gbs = 2 * w_kn.nbytes / copy_seconds(times) / 1e9
    ours = times["tcomp"]
    ours_gbs = w_kn.nbytes / float(np.median(ours)) / 1e9
    m, (k, n) = x.shape[0], w_kn.shape
    return [
        f"{'Gemm' if gemm else 'MatMul'} {m}x{k}x{n}", spread(ours, 0), f"{ours_gbs:.1f}",
        f"{copy_gbs:.1f}", f"{ours_gbs / copy_gbs:.0%}", f"{copy_seconds(times, best=True) / 2 / ours.min():.0%}",
        ratios(ours, times["onnxruntime"]),
        ratios(ours, times["numpy"]), f"{error:.1e}",
    ]


def memory_copy_gbs(megabytes: int, rounds: int) -> float:
    """The STREAM copy bandwidth of a ``megabytes`` MiB buffer (the faster of tcomp's and numpy's medians)."""
    times = interleaved(copy_runners((megabytes << 20) // 4), rounds, 1)
    return 2 * (megabytes << 20) / copy_seconds(times) / 1e9


def measure_rows(op: str, rows: int, cols: int, threads: int, rounds: int, number: int, memory_gbs: float,
                 ) -> list[str]:
    """One row: tcomp's kernel for ``op``, onnxruntime's (when it has the operator) and the two copies of an
    input-sized buffer, interleaved."""
    rng = np.random.default_rng(2)
    model = row_model(op, rows, cols, rng)
    x = rng.uniform(-4, 4, (rows, cols)).astype(np.float32)
    executor = tg.compile(model, "llvm")
    runners: dict[str, Callable[[], object]] = {"tcomp": executor_call(executor, x)}
    try:
        ort_session = session(model, threads)
        [reference] = ort_session.run(None, {"x": x})  # type: ignore[attr-defined]
        runners["onnxruntime"] = lambda: ort_session.run(None, {"x": x})  # type: ignore[attr-defined]
        [got] = executor.run([x])
        error = f"{float(np.abs(got - reference).max() / max(np.abs(reference).max(), 1e-30)):.1e}"
    except Exception as exc:  # noqa: BLE001 - an onnxruntime without the operator: tcomp alone
        print(f"{op}: onnxruntime: {str(exc).splitlines()[0][:100]}", file=sys.stderr)
        error = "-"
    times = interleaved({**runners, **copy_runners(x.size)}, rounds, number)
    copy_gbs = 2 * x.nbytes / copy_seconds(times) / 1e9
    ours = times["tcomp"]
    ours_gbs = 2 * x.nbytes / float(np.median(ours)) / 1e9
    return [
        f"{op} {rows}x{cols}", str(executor.num_kernels), spread(ours, 1), f"{ours_gbs:.1f}",
        f"{copy_gbs:.1f}", f"{ours_gbs / copy_gbs:.0%}", f"{copy_seconds(times, best=True) / ours.min():.0%}",
        f"{ours_gbs / memory_gbs:.0%}",
        ratios(ours, times.get("onnxruntime")), error,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", nargs="*", default=list(DEFAULT_SHAPES), help="MxKxN products")
    parser.add_argument("--rows", nargs="*", default=list(DEFAULT_ROWS), help="RxC inputs of the row operators")
    parser.add_argument("--ops", nargs="+", default=list(ROW_OPS), choices=ROW_OPS, help="row operators")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--number", type=int, default=20, help="calls timed together per round (row operators)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--memory-mb", type=int, default=256, help="size of the row operators' memory copy")
    args = parser.parse_args()

    load = f"load average {os.getloadavg()[0]:.1f} at the start"
    products = []
    rng = np.random.default_rng(0)
    for text in args.shapes:
        m, k, n = (int(v) for v in text.split("x"))
        w_kn = rng.standard_normal((k, n)).astype(np.float32)
        x = rng.standard_normal((m, k)).astype(np.float32)
        for gemm in (False, True):
            products.append(measure_product(x, w_kn, gemm, args.threads, args.rounds))
        del w_kn
    row_results = []
    memory_gbs = memory_copy_gbs(args.memory_mb, args.rounds) if args.rows else 0.0
    for text in args.rows:
        rows, cols = (int(v) for v in text.split("x"))
        for op in args.ops:
            row_results.append(measure_rows(op, rows, cols, args.threads, args.rounds, args.number, memory_gbs))
    print(f"\n{load}, {os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} cores (other processes skew the "
          f"times); float32, {args.threads} threads, {args.rounds} interleaved rounds; ratios of tcomp's time "
          "min/median/p99")
    if products:
        print("\nproducts: the weight's bytes over the median time, against a STREAM copy (read + write) of a "
              "weight-sized buffer")
        print_table(["product", "tcomp us min/med/p99", "GB/s", "copy GB/s", "% copy", "% copy min", "/ ort",
                     "/ numpy", "rel err"], products)
    if row_results:
        print(f"\nrow operators: input + output bytes over the median time ({args.number} calls per round), "
              f"against a STREAM copy of an input-sized buffer (% copy) and of {args.memory_mb} MiB ({memory_gbs:.1f} "
              "GB/s, % mem)")
        print_table(["operator", "kernels", "tcomp us min/med/p99", "GB/s", "copy GB/s", "% copy", "% copy min",
                     "% mem", "/ ort", "rel err"], row_results)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    main()
