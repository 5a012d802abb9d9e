"""Tutorial 7: generate tokens with a decoder whose key/value cache grows, compiled once for every length.

A generation step exported from transformers takes the token and the cache of the tokens before it, and returns
the hidden state and the cache with the token appended. Its cache length is a symbolic dimension (``past``), so
every step runs at a new length.

1. ``tcomp.graph.compile`` gives a ``SpecializingExecutor``: nothing is compiled until the first run, which
   compiles for that run's shapes.
2. When ``past`` takes a second value, tcomp probes the model (``tcomp.graph.dynamic``): it optimizes it at a few
   lengths, finds that every shape is affine in ``past``, and compiles the kernels that depend on it once, with the
   length as an argument. From then on a new length costs no compiling: one executor, planned for up to 64
   positions, is resized for each step (the next power of two gets another).
3. Each step's outputs feed the next one; the result matches a compilation for the exact shapes.

The model is a two-layer Llama (grouped-query attention, rotary positions) exported by PyTorch from transformers'
code, with random weights (``tests/data/hf_models``).
"""

import time
from pathlib import Path

import numpy as np

import tcomp.graph as tg

MODEL = Path(__file__).resolve().parent.parent / "tests" / "data" / "hf_models" / "llama_decode_dynamic_tiny.onnx"

# 1. Nothing is compiled yet: the cache length is symbolic.
executor = tg.compile(MODEL, "llvm")
print("inputs:", {name: executor.declared_input(name).dims for name in executor.input_names[:2]}, "...")

# 2.-3. Generate: a cache of 3 tokens to start, each step appends one.
rng = np.random.default_rng(0)
cache = {f"past.{layer}.{kind}": rng.standard_normal((1, 2, 3, 16)).astype(np.float32)
         for layer in range(2) for kind in ("key", "value")}
token = np.array([[7]], dtype=np.int64)
for step in range(12):
    feeds = {"input_ids": token, **cache}
    start = time.perf_counter()
    outputs = executor.run(feeds)
    seconds = time.perf_counter() - start
    named = dict(zip(executor.output_names, outputs))
    print(f"step {step:2d}, cache {feeds['past.0.key'].shape[2]:2d}: {seconds * 1e3:7.2f} ms "
          f"(compilations {executor.compilations}, executors assembled {executor.assembled})")
    cache = {name.replace("present", "past"): value for name, value in named.items() if name.startswith("present")}
    token = np.array([[int(np.abs(named["output"]).argmax()) % 512]], dtype=np.int64)

dynamic = executor.dynamic
print(f"\n{dynamic.generic_kernels} kernels take the cache length as an argument; one compilation served "
      f"{executor.compilations + executor.resized} steps")
assert executor.compilations == 1 and executor.assembled == 1

# The last step again, compiled for its exact shapes: the same outputs.
exact = tg.compile(MODEL, "llvm", input_shapes={name: value.shape for name, value in feeds.items()})
for got, want in zip(outputs, exact.run(feeds)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
print("matches the compilation for the exact shapes")
