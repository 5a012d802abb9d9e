"""ResNet-50 conv2d layers at batch 1, float32: tcomp's default schedules against onnxruntime, in the same run.

For each layer tcomp runs three ways, all with ``tcomp.ops.cpu.schedule_cpu``:

- ``nchwc``: ``conv2d_nchwc`` on data already in NCHW16c and a kernel packed ahead of time (as a graph compiler
  that keeps activations blocked and packs constant weights at compile time runs it): the kernel alone;
- ``nchwc+lt``: the same plus the data layout transforms, NCHW -> NCHW16c before and back after (the kernel is
  still packed ahead of time), so input and output are NCHW like onnxruntime's;
- ``nchw``: the direct ``conv2d_nchw`` schedule;
- ``winograd`` (3x3 stride-1 layers): ``conv2d_winograd_nchwc``, F(4x4, 3x3), on blocked data with the kernel
  transformed ahead of time (as the graph compiler's ``winograd`` pass runs these layers). Its GFLOP/s and share
  of peak count the direct convolution's multiply-adds (it does a quarter of them), so they can pass 100%.

onnxruntime runs a one-node Conv model with as many intra-op threads as tcomp's target has cores (``--threads``,
default 2), with its own NCHWc kernels and layout reorders.
Every result is checked against numpy. tcomp and onnxruntime are timed interleaved, round after round, so both see
the same machine load; the table gives min and median over the rounds, the ratio tcomp / onnxruntime (min over
min, median over median), GFLOP/s from the min, and the share of this CPU's fp32 peak (measured with FMAs as wide
as the target's vectors).

Thread pools: onnxruntime's threads spin a while between parallel sections; tcomp's spin for
``Settings.thread_spin_count`` rounds (about a millisecond) and then sleep. ``--spin-count N`` sets that count
(``configure_pool(worker_spin=N)``; 0 keeps tcomp's default). Before each timing the bench waits until the threads
of both libraries have stopped spinning (the process uses no CPU time for 10 ms).

    python bench/conv2d.py [--rounds 15] [--number 5] [--layers 0,1,2] [--threads 2] [--spin-count N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import Timing, fp32_peak_gflops, print_table, wait_until_threads_idle  # noqa: E402

import tcomp  # noqa: E402
from tcomp import te  # noqa: E402
from tcomp.ops.conv import conv2d_nchw  # noqa: E402
from tcomp.ops.cpu import CpuTarget, schedule_cpu  # noqa: E402
from tcomp.ops.nchwc import choose_channel_block, conv2d_nchwc, layout_transform  # noqa: E402
from tcomp.ops.winograd import conv2d_winograd_nchwc, winograd_kernel  # noqa: E402
from tcomp.runtime.thread_pool import configure_pool, parallel_runtime  # noqa: E402


@dataclass(frozen=True)
class Layer:
    channels: int
    size: int
    out_channels: int
    kernel: int
    stride: int = 1

    @property
    def padding(self) -> int:
        return self.kernel // 2

    @property
    def out_size(self) -> int:
        return (self.size + 2 * self.padding - self.kernel) // self.stride + 1

    @property
    def flops(self) -> float:
        return 2.0 * self.channels * self.out_channels * self.kernel**2 * self.out_size**2

    def __str__(self) -> str:
        return f"{self.size}x{self.size} {self.channels}->{self.out_channels} {self.kernel}x{self.kernel}"



LAYERS = [
    Layer(64, 56, 64, 3),
    Layer(128, 28, 128, 3),
    Layer(256, 14, 256, 3),
    Layer(512, 7, 512, 3),
    Layer(64, 56, 256, 1),
    Layer(256, 56, 64, 1),
    Layer(1024, 14, 256, 1),
    Layer(512, 28, 128, 1),
]


def _layer_indices(parser: argparse.ArgumentParser, text: str) -> list[int]:
    """The indices ``--layers`` names; a usage error for anything but indices into ``LAYERS``."""
    try:
        indices = [int(part) for part in text.split(",")]
    except ValueError:
        parser.error(f"--layers: expected comma-separated integers, got {text!r}")
    bad = [i for i in indices if not 0 <= i < len(LAYERS)]
    if bad:
        parser.error(f"--layers: no layer {bad[0]}; the layers are 0-{len(LAYERS) - 1}")
    return indices


def reference(x: np.ndarray, w: np.ndarray, layer: Layer) -> np.ndarray:
    """numpy convolution: one matrix product per kernel position."""
    p, s, k, o = layer.padding, layer.stride, layer.kernel, layer.out_size
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    out = np.zeros((1, layer.out_channels, o, o), dtype=np.float64)
    for ry in range(k):
        for rx in range(k):
            window = padded[0, :, ry : ry + s * o : s, rx : rx + s * o : s].reshape(layer.channels, -1)
            out[0] += (w[:, :, ry, rx].astype(np.float64) @ window).reshape(layer.out_channels, o, o)
    return out.astype(np.float32)


def to_blocked(x: np.ndarray, block: int) -> np.ndarray:
    n, c, h, w = x.shape
    return np.ascontiguousarray(x.reshape(n, c // block, block, h, w).transpose(0, 1, 3, 4, 2))


def pack(w: np.ndarray, ic: int, oc: int) -> np.ndarray:
    o, i, kh, kw = w.shape
    return np.ascontiguousarray(w.reshape(o // oc, oc, i // ic, ic, kh, kw).transpose(0, 2, 4, 5, 3, 1))


class Runner:
    """One way to run a layer: a callable over prepared arrays and the NCHW result it leaves."""

    def __init__(self, module: tcomp.runtime.Module, arrays: list[np.ndarray], result: callable) -> None:
        self.module = module
        self.arrays = arrays
        self.result = result

    def time(self, number: int) -> float:
        return self.module.time_evaluator(number=number, repeat=1)(*self.arrays).min


def tcomp_runners(layer: Layer, x: np.ndarray, w: np.ndarray, target: tcomp.Target) -> dict[str, Runner]:
    lanes = CpuTarget.of(target).lanes("float32")
    ic, oc = choose_channel_block(layer.channels, lanes), choose_channel_block(layer.out_channels, lanes)
    shape = (1, layer.channels, layer.size, layer.size)
    out_shape = (1, layer.out_channels, layer.out_size, layer.out_size)
    blocked_out_shape = (1, layer.out_channels // oc, layer.out_size, layer.out_size, oc)
    kernel_packed = te.placeholder((layer.out_channels // oc, layer.channels // ic, layer.kernel, layer.kernel, ic, oc),
                                   name="kernel_packed")
    w_packed = pack(w, ic, oc)
    runners: dict[str, Runner] = {}

    data_blocked = te.placeholder((1, layer.channels // ic, layer.size, layer.size, ic), name="data_blocked")
    conv = conv2d_nchwc(data_blocked, kernel_packed, layer.stride, layer.padding)
    module = tcomp.build(schedule_cpu([conv], target), [data_blocked, kernel_packed, conv], target)
    y = np.zeros(blocked_out_shape, np.float32)
    runners["nchwc"] = Runner(module, [to_blocked(x, ic), w_packed, y],
                              lambda y=y: y.transpose(0, 1, 4, 2, 3).reshape(out_shape))

    data = te.placeholder(shape, name="data")
    blocked = layout_transform(data, "NCHW", f"NCHW{ic}c", name="data_blocked")
    conv = conv2d_nchwc(blocked, kernel_packed, layer.stride, layer.padding)
    out = layout_transform(conv, f"NCHW{oc}c", "NCHW", name="out")
    module = tcomp.build(schedule_cpu([out], target), [data, kernel_packed, out], target)
    y2 = np.zeros(out_shape, np.float32)
    runners["nchwc+lt"] = Runner(module, [x, w_packed, y2], lambda y=y2: y)

    kernel = te.placeholder(w.shape, name="kernel")
    conv = conv2d_nchw(data, kernel, layer.stride, layer.padding)
    module = tcomp.build(schedule_cpu([conv], target), [data, kernel, conv], target)
    y3 = np.zeros(out_shape, np.float32)
    runners["nchw"] = Runner(module, [x, w, y3], lambda y=y3: y)

    if layer.kernel == 3 and layer.stride == 1:
        tile = 4
        kernel = te.placeholder(w.shape, name="kernel")
        transformed = winograd_kernel(kernel, tile, ic, oc)
        module = tcomp.build(schedule_cpu([transformed], target), [kernel, transformed], target)
        u = np.zeros([int(d) for d in transformed.shape], np.float32)
        module(w, u)
        data_blocked = te.placeholder((1, layer.channels // ic, layer.size, layer.size, ic), name="data_blocked")
        u_t = te.placeholder(u.shape, name="u")
        conv = conv2d_winograd_nchwc(data_blocked, u_t, layer.padding, tile)
        module = tcomp.build(schedule_cpu([conv], target), [data_blocked, u_t, conv], target)
        y4 = np.zeros(blocked_out_shape, np.float32)
        runners["winograd"] = Runner(module, [to_blocked(x, ic), u, y4],
                                     lambda y=y4: y.transpose(0, 1, 4, 2, 3).reshape(out_shape))
    return runners


def onnxruntime_session(layer: Layer, w: np.ndarray, threads: int):  # noqa: ANN201
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    node = helper.make_node("Conv", ["x", "w"], ["y"], pads=[layer.padding] * 4, strides=[layer.stride] * 2,
                            kernel_shape=[layer.kernel] * 2)
    graph = helper.make_graph(
        [node], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, layer.channels, layer.size, layer.size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, layer.out_channels, layer.out_size,
                                                                 layer.out_size])],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def time_onnxruntime(session, feed: dict[str, np.ndarray], number: int) -> float:  # noqa: ANN001
    start = time.perf_counter()
    for _ in range(number):
        session.run(None, feed)
    return (time.perf_counter() - start) / number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--number", type=int, default=5, help="runs per timed round")
    parser.add_argument("--layers", default=None, help="comma-separated layer indices (default: all)")
    parser.add_argument("--threads", type=int, default=2, help="threads of both tcomp and onnxruntime")
    parser.add_argument("--spin-count", type=int, default=0,
                        help="rounds tcomp's pool threads spin before sleeping (0: tcomp's default)")
    args = parser.parse_args()
    if args.spin_count > 0:
        configure_pool(worker_spin=args.spin_count)
    layers = LAYERS if args.layers is None else [LAYERS[i] for i in _layer_indices(parser, args.layers)]
    target = tcomp.Target(f"llvm -num-cores={args.threads}")
    peak_all = fp32_peak_gflops(target.vector_bits)
    peak = None if peak_all is None else peak_all * args.threads / (os.cpu_count() or 1)
    policy = parallel_runtime().policy
    print(f"conv2d, batch 1, float32, {args.threads} threads, on {target} ({policy})")
    rng = np.random.default_rng(0)
    rows = []
    for layer in layers:
        x = rng.uniform(-1, 1, (1, layer.channels, layer.size, layer.size)).astype(np.float32)
        w = rng.uniform(-1, 1, (layer.out_channels, layer.channels, layer.kernel, layer.kernel)).astype(np.float32)
        expected = reference(x, w, layer)
        runners = tcomp_runners(layer, x, w, target)
        session = onnxruntime_session(layer, w, args.threads)
        feed = {"x": x}
        np.testing.assert_allclose(session.run(None, feed)[0], expected, rtol=1e-3, atol=1e-3)
        for name, runner in runners.items():
            runner.module(*runner.arrays)
            np.testing.assert_allclose(runner.result(), expected, rtol=1e-3, atol=1e-3, err_msg=f"{layer} {name}")
        times: dict[str, list[float]] = {name: [] for name in [*runners, "onnxruntime"]}
        time_onnxruntime(session, feed, args.number)  # warm-up
        for _ in range(args.rounds):
            times["onnxruntime"].append(time_onnxruntime(session, feed, args.number))
            for name, runner in runners.items():
                wait_until_threads_idle()  # the other library's spinning threads go to sleep first
                times[name].append(runner.time(args.number))
            wait_until_threads_idle()
        reference_time = Timing.of(times["onnxruntime"])
        for name, results in times.items():
            t = Timing.of(results)
            gflops = layer.flops / t.min / 1e9
            share = f"{100 * gflops / peak:.0f}%" if peak else "n/a"
            rows.append([str(layer), name, f"{t.min * 1e3:.3f}", f"{t.median * 1e3:.3f}",
                         f"{reference_time.min * 1e3:.3f}", f"{t.min / reference_time.min:.2f}",
                         f"{t.median / reference_time.median:.2f}", f"{gflops:.0f}", share])
        print(f"done {layer}", flush=True)
    print_table(["layer", "tcomp", "min ms", "median ms", "ort min ms", "ratio(min)", "ratio(med)", "GFLOP/s",
                 "% peak"], rows)
    if peak:
        print(f"fp32 peak of {args.threads} cores: {peak:.1f} GFLOP/s ({target.vector_bits}-bit FMAs, "
              "shared/tools/fma_peak.c)")


if __name__ == "__main__":
    main()
