"""Tutorial 9: trade a little precision for speed: bfloat16 matrix products on the CPU.

1. ``tcomp.graph.compile(model, "llvm", precision="bf16")`` (or the target string ``llvm -precision=bf16``, or
   ``--precision bf16`` on the command line) stores every constant weight of a matrix product rounded to bfloat16
   (8 bits of mantissa) and rounds the rows it multiplies the same way; the products are summed in float32.
2. On a CPU with AVX512-BF16 the products run on ``vdpbf16ps``, two multiply-adds per float32 lane and
   instruction: about twice as fast as float32, from half the bytes of weight. Other CPUs compute the same sums with
   float32 multiply-adds (the same results, subnormals aside, at about float32's speed).
3. The outputs move by about bfloat16's rounding: checked here against onnxruntime's float32 within
   ``Precision.BF16.relative_tolerance``.

The model is a BERT-like encoder built with ``tcomp.graph.testing`` (4 layers of 256, 128 tokens, random weights);
any transformer export works the same way, and so do CNNs (their convolutions of one group become products of
channels-last windows: see the guide, "bfloat16 products").
"""

import time

import numpy as np
import onnxruntime as ort

import tcomp.graph as tg
from tcomp.graph import testing
from tcomp.target import Precision, Target

model = testing.bert(layers=4, hidden=256, heads=4, ffn=1024, seq=128, vocab=1000)
rng = np.random.default_rng(0)
inputs = {"input_ids": rng.integers(0, 1000, (1, 128)).astype(np.int64),
          "attention_mask": np.ones((1, 128), np.int64)}
[want] = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, inputs)

# 1. Compile twice: float32 products, and bfloat16 ones. The graph after gemm_panels shows the weights' types.
graphs = {}
fp32 = tg.compile(model, "llvm")
bf16 = tg.compile(model, "llvm", precision="bf16", dump=lambda stage, graph: graphs.setdefault(stage, graph))
panels = graphs["gemm_panels"]
weights = [panels.type_of(node.inputs[1]) for node in panels.nodes if node.op == "panel_matmul"]
print(f"{len(weights)} products read their weight from panels, e.g. {weights[0]}")

# 2. Time both, in turns (a busy machine slows both alike).
target = Target("llvm")
print(f"this CPU ({target.mcpu}) {'has' if target.bf16_dots else 'lacks'} AVX512-BF16's vdpbf16ps")
times = {"fp32": [], "bf16": []}
for _ in range(10):
    for name, executor in (("fp32", fp32), ("bf16", bf16)):
        start = time.perf_counter()
        executor.run(inputs)
        times[name].append(time.perf_counter() - start)
for name, values in times.items():
    print(f"{name}: {np.median(values) * 1e3:.2f} ms (median of 10)")
print(f"bf16 / fp32: {np.median(times['bf16']) / np.median(times['fp32']):.2f}")

# 3. What the rounding costs, against onnxruntime's float32.
for name, executor in (("fp32", fp32), ("bf16", bf16)):
    [got] = executor.run(inputs)
    error = float(np.abs(got - want).max() / np.abs(want).max())
    print(f"{name}: relative error {error:.1e}")
    assert error <= max(Precision.parse(name).relative_tolerance, 1e-5)
