"""Matrix products of a fused group on the GPU (``ops/cuda/gemm_schedule.py``): transposed operands, batches,
operands read through reshapes, elementwise epilogues computed in the same kernel; results against numpy (emulated,
sizes the tiles do not divide)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tcomp import ops, te
from tcomp.backend.cuda import CudaRuntime
from tcomp.backend.cuda.build import build_cuda
from tcomp.ir.expr import const_int_value
from tcomp.ops.cuda.dispatch import schedule_cuda
from tcomp.ops.cuda.gemm_schedule import gemm_knobs
from tcomp.target import Target

RNG = np.random.default_rng(7)


def _build(outs: list[te.Tensor], args: list[te.Tensor], name: str, target: str = "cuda") -> object:
    return build_cuda(schedule_cuda(outs, Target(target)), args, target, name=name, runtime=CudaRuntime.EMULATOR)


def _arrays(*shapes: tuple[int, ...]) -> list[np.ndarray]:
    return [RNG.standard_normal(shape).astype(np.float32) for shape in shapes]


def test_dense_of_a_reshaped_activation_with_a_gelu_epilogue_is_one_kernel() -> None:
    """A channels-last MLP layer (ConvNeXt's, ViT's): ``h = (reshape(x) @ w.T + b) / 2``, ``h * (1 + erf(h / sqrt 2))``
    back in the activation's shape; the product's tiles read ``x`` through the reshape, the epilogue runs on the
    registers: one kernel, no temporary."""
    x = te.placeholder((1, 9, 37, 40), name="x")
    w = te.placeholder((72, 40), name="w")
    b = te.placeholder((72,), name="b")
    rows = ops.reshape(x, (9 * 37, 40))
    y = ops.reshape(ops.dense(rows, w), (1, 9, 37, 72))
    out = ops.multiply(ops.add(y, b), 0.5)  # a bias and a scale, as an epilogue
    out = ops.multiply(out, ops.add(ops.erf(ops.multiply(out, 1 / math.sqrt(2))), 1.0))
    module = _build([out], [x, w, b, out], "dense_reshape_gelu")
    assert len(module.kernels) == 1 and not module.artifact.temporaries
    xv, wv, bv = _arrays((1, 9, 37, 40), (72, 40), (72,))
    got = np.zeros((1, 9, 37, 72), np.float32)
    module(xv, wv, bv, got)
    half = ((xv.reshape(-1, 40) @ wv.T).reshape(1, 9, 37, 72) + bv) * 0.5
    want = half * (np.vectorize(math.erf)(half / math.sqrt(2)) + 1.0)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_batched_attention_scores_with_transposed_keys_and_a_scale() -> None:
    """``q @ k.T * scale`` over 3 heads of 29 tokens (batch on ``blockIdx.z``), reshaped to ``[1, 3, 29, 29]``."""
    q = te.placeholder((1, 3, 29, 16), name="q")
    k = te.placeholder((1, 3, 29, 16), name="k")
    scores = ops.batch_matmul(ops.reshape(q, (3, 29, 16)), ops.reshape(k, (3, 29, 16)), transpose_b=True)
    out = ops.multiply(ops.reshape(scores, (1, 3, 29, 29)), 0.25)
    module = _build([out], [q, k, out], "attention_scores")
    (kernel,) = module.kernels
    assert const_int_value(kernel.launch.grid[2]) == 3
    qv, kv = _arrays((1, 3, 29, 16), (1, 3, 29, 16))
    got = np.zeros((1, 3, 29, 29), np.float32)
    module(qv, kv, got)
    np.testing.assert_allclose(got, qv @ kv.transpose(0, 1, 3, 2) * 0.25, rtol=1e-4, atol=1e-4)


def test_a_row_axis_after_a_unit_axis_takes_the_epilogue() -> None:
    """``[tokens, 1, features]`` (PyTorch's multi-head attention projection): the rows are the tokens."""
    x = te.placeholder((45, 1, 24), name="x")
    w = te.placeholder((24, 70), name="w")
    b = te.placeholder((70,), name="b")
    out = ops.add(ops.reshape(ops.matmul(ops.reshape(x, (45, 24)), w), (45, 1, 70)), b)
    module = _build([out], [x, w, b, out], "unit_axis_epilogue")
    assert len(module.kernels) == 1
    xv, wv, bv = _arrays((45, 1, 24), (24, 70), (70,))
    got = np.zeros((45, 1, 70), np.float32)
    module(xv, wv, bv, got)
    np.testing.assert_allclose(got, (xv.reshape(45, 24) @ wv + bv).reshape(45, 1, 70), rtol=1e-4, atol=1e-4)


def test_a_transposed_read_of_the_product_keeps_its_own_kernel() -> None:
    x = te.placeholder((40, 24), name="x")
    w = te.placeholder((24, 33), name="w")
    out = ops.transpose(ops.matmul(x, w), (1, 0))
    module = _build([out], [x, w, out], "transposed_epilogue")
    assert len(module.kernels) == 2 and len(module.artifact.temporaries) == 1
    xv, wv = _arrays((40, 24), (24, 33))
    got = np.zeros((33, 40), np.float32)
    module(xv, wv, got)
    np.testing.assert_allclose(got, (xv @ wv).T, rtol=1e-4, atol=1e-4)


def test_few_image_rows_keep_the_flattened_product() -> None:
    """A 7x7 image's pixels as rows (ConvNeXt's last stage): tiles of the 49 flattened rows, the epilogue apart."""
    x = te.placeholder((1, 7, 7, 32), name="x")
    w = te.placeholder((32, 48), name="w")
    out = ops.relu(ops.reshape(ops.matmul(ops.reshape(x, (49, 32)), w), (1, 7, 7, 48)))
    module = _build([out], [x, w, out], "small_image_rows")
    assert len(module.kernels) == 2
    xv, wv = _arrays((1, 7, 7, 32), (32, 48))
    got = np.zeros((1, 7, 7, 48), np.float32)
    module(xv, wv, got)
    np.testing.assert_allclose(got, np.maximum((xv.reshape(49, 32) @ wv).reshape(1, 7, 7, 48), 0), rtol=1e-4,
                               atol=1e-4)


@pytest.mark.parametrize("target", ["cuda", "cuda -max-shared-memory-per-block=1024",
                                    "cuda -max-threads-per-block=32"])
def test_gemm_tiles_fit_the_target(target: str) -> None:
    knobs = gemm_knobs(300, 200, 512, Target(target))
    assert knobs.resources().fits(Target(target))
    x = te.placeholder((70, 64), name="x")
    w = te.placeholder((50, 64), name="w")
    out = ops.dense(x, w)
    module = _build([out], [x, w, out], "dense_" + "".join(c for c in target if c.isalnum()), target)
    xv, wv = _arrays((70, 64), (50, 64))
    got = np.zeros((70, 50), np.float32)
    module(xv, wv, got)
    np.testing.assert_allclose(got, xv @ wv.T, rtol=1e-4, atol=1e-4)
