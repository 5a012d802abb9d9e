"""Tutorial 8: run prompts of any length on kernels compiled once.

A model exported with a dynamic prompt length (``input_ids`` of ``[1, seq]``) takes every length a user sends.
Compiling it anew for each length would cost seconds per request; tcomp compiles it once for all of them:

1. The first prompt compiles for its exact shapes (nothing is compiled before it).
2. The second length makes tcomp probe the model (``tcomp.graph.dynamic``): every shape is affine in ``seq``, so the
   kernels that depend on it compile once with the length as an argument: the products with the weights on the
   packed GEMM for a symbolic number of rows, the attention for symbolic numbers of queries and keys, the causal
   mask's slices and sums for the length.
3. Every later length runs at once: an executor planned for up to 64 tokens is resized (the next power of two gets
   another), and the results match a compilation for the exact shapes.

The model is a one-layer GPT-2 of width 288 exported by PyTorch from transformers' code, with random weights
(``tests/data/hf_models``).
"""

import time
from pathlib import Path

import numpy as np

import tcomp.graph as tg

MODEL = Path(__file__).resolve().parent.parent / "tests" / "data" / "hf_models" / "gpt2_prompt_dynamic_tiny.onnx"

executor = tg.compile(MODEL, "llvm")
print("input:", executor.declared_input("input_ids").dims)

rng = np.random.default_rng(0)
for length in (12, 20, 5, 33, 48, 90, 7):
    prompt = rng.integers(0, 256, (1, length)).astype(np.int64)
    start = time.perf_counter()
    [hidden] = executor.run({"input_ids": prompt})
    seconds = time.perf_counter() - start
    print(f"{length:3d} tokens: {seconds * 1e3:8.2f} ms, hidden states {hidden.shape} "
          f"(compilations {executor.compilations}, executors assembled {executor.assembled})")

dynamic = executor.dynamic
assert dynamic is not None and dynamic.resizable and executor.compilations == 1
print(f"\none compilation and {dynamic.generic_kernels} kernels taking the length served 7 prompt lengths")

# The last prompt again, compiled for its exact shape: the same hidden states.
exact = tg.compile(MODEL, "llvm", input_shapes={"input_ids": prompt.shape})
want = exact.run({"input_ids": prompt})[0]
error = float(np.abs(hidden - want).max() / np.abs(want).max())
assert error < 1e-5, error  # float32 sums in another order: a few units of rounding
print(f"matches the compilation for the exact shape (relative difference {error:.1e})")
