"""Tutorial 6: compile an ONNX model, look at it after each graph pass, run it, profile it, export it.

1. ``tcomp.graph.compile(model, target)`` imports the model, runs the graph passes (constant folding, batch norm
   folded into convolutions, the blocked NCHW[x]c layout, fusion, memory planning) and compiles one kernel per
   fused group. ``dump=`` receives the graph after every pass.
2. The executor runs on numpy arrays (``run([x])``) and can time the whole model (``benchmark``) or each kernel
   (``profile``).
3. ``export(folder)`` writes the kernels, the graph and the parameters; ``load_executor(folder)`` runs them later
   without compiling (``tcomp compile`` / ``tcomp run`` do the same from the shell).

The model is a small ResNet built with ``tcomp.graph.testing`` (real architecture, random weights); any ONNX file
works the same way. onnxruntime checks the outputs.
"""

import tempfile

import numpy as np
import onnxruntime as ort

import tcomp.graph as tg
from tcomp.graph import testing

model = testing.resnet(18, image_size=64, width=0.25, num_classes=10)
x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)

# 1. Compile, keeping the graph after each pass (a pass may run more than once).
stages = []


def keep(stage, graph):
    stages.append((stage, graph))


timings = {}
executor = tg.compile(model, "llvm", dump=keep, timings=timings)
for stage, graph in stages:
    ops = sorted({node.op for node in graph.nodes})
    print(f"after {stage:15s} {len(graph.nodes):3d} nodes: {', '.join(ops)[:90]}")
print("compile stages (s):", ", ".join(f"{k} {v:.2f}" for k, v in timings.items()))
final = str(stages[-1][1]).splitlines()
print(f"\nthe compiled graph ({executor.num_kernels} kernels), its first nodes:")
print("\n".join([line for line in final if not line.lstrip().startswith("param")][:6]))

# 2. Run and compare with onnxruntime; time the model and its slowest kernels.
[got] = executor.run([x])
[want] = ort.InferenceSession(model.SerializeToString()).run(None, {"data": x})
np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
print(f"\nmatches onnxruntime (max |difference| {np.abs(got - want).max():.1e})")
print(f"latency: {min(executor.benchmark(repeat=10)) * 1e3:.2f} ms (min of 10)")
for node, kernel, seconds in sorted(executor.profile(repeat=5), key=lambda r: -r[2])[:3]:
    print(f"  {seconds * 1e6:8.1f} us  {node} ({kernel})")

# 3. Export, load back without compiling, run again.
with tempfile.TemporaryDirectory() as folder:
    executor.export(folder)
    loaded = tg.load_executor(folder)
    [again] = loaded.run([x])
    np.testing.assert_array_equal(again, got)
    print(f"\nexported to a folder and loaded back: same outputs ({loaded.num_kernels} kernels)")
