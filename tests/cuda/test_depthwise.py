"""Depthwise convolutions (``ops/cuda/depthwise.py``) and convolution epilogues in the same kernel, on the GPU's
default schedules: results against numpy (emulated), sizes the tiles do not divide, targets with little room."""

from __future__ import annotations

import numpy as np
import pytest

from tcomp import ops, te
from tcomp.backend.cuda import CudaRuntime
from tcomp.backend.cuda.build import build_cuda
from tcomp.ops.cuda.depthwise import depthwise_knobs, depthwise_resources
from tcomp.ops.cuda.dispatch import schedule_cuda
from tcomp.target import Target


def _window_sum(x: np.ndarray, w: np.ndarray, stride: int, pad: int, groups_of: int) -> np.ndarray:
    """A grouped convolution in float64: output channel ``o`` reads input channel ``o // groups_of``."""
    x = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    k = w.shape[2]
    oh = (x.shape[2] - k) // stride + 1
    ow = (x.shape[3] - k) // stride + 1
    out = np.zeros((x.shape[0], w.shape[0], oh, ow))
    for ry in range(k):
        for rx in range(k):
            window = x[:, :, ry: ry + stride * oh: stride, rx: rx + stride * ow: stride]
            out += window[:, np.arange(w.shape[0]) // groups_of] * w[None, :, 0, ry, rx, None, None]
    return out


@pytest.mark.parametrize("shape,kernel,stride,multiplier", [
    ((1, 12, 23, 19), 7, 1, 1),   # ConvNeXt's 7x7 window, sizes the 8x32 tiles do not divide
    ((2, 8, 17, 17), 3, 2, 1),    # MobileNet's strided 3x3
    ((1, 4, 9, 10), 5, 1, 2),     # a channel multiplier
])
def test_depthwise_with_bias_and_relu_is_one_kernel(shape: tuple[int, int, int, int], kernel: int, stride: int,
                                                    multiplier: int) -> None:
    n, c, h, w = shape
    pad = kernel // 2
    data = te.placeholder(shape, name="data")
    weight = te.placeholder((c, multiplier, kernel, kernel), name="weight")
    bias = te.placeholder((c * multiplier,), name="bias")
    conv = ops.depthwise_conv2d_nchw(data, weight, stride, pad)
    out = ops.relu(ops.bias_add(conv, bias, axis=1))
    target = Target("cuda")
    module = build_cuda(schedule_cuda([out], target), [data, weight, bias, out], target,
                        name=f"depthwise_{kernel}_{stride}_{multiplier}", runtime=CudaRuntime.EMULATOR)
    (kernel_info,) = module.kernels  # the bias and the activation run on the registers
    assert kernel_info.shared_bytes > 0
    rng = np.random.default_rng(kernel)
    x = rng.standard_normal(shape).astype(np.float32)
    wv = rng.standard_normal((c, multiplier, kernel, kernel)).astype(np.float32)
    bv = rng.standard_normal(c * multiplier).astype(np.float32)
    got = np.zeros(tuple(int(d) for d in out.shape), np.float32)
    module(x, wv, bv, got)
    want = _window_sum(x, wv.reshape(c * multiplier, 1, kernel, kernel), stride, pad, multiplier)
    np.testing.assert_allclose(got, np.maximum(want + bv[None, :, None, None], 0), rtol=1e-4, atol=1e-4)


def test_depthwise_tiles_shrink_to_fit_a_small_target() -> None:
    data = te.placeholder((1, 32, 56, 56), name="data")
    weight = te.placeholder((32, 1, 7, 7), name="weight")
    conv = ops.depthwise_conv2d_nchw(data, weight, 1, 3)
    small = Target("cuda -max-shared-memory-per-block=1024 -max-threads-per-block=32")
    knobs = depthwise_knobs(conv, small)
    assert depthwise_resources(conv, knobs).fits(small) and not depthwise_resources(conv, depthwise_knobs(conv)).fits(
        small)
    module = build_cuda(schedule_cuda([conv], small), [data, weight, conv], small, name="depthwise_small_target",
                        runtime=CudaRuntime.EMULATOR)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 32, 56, 56)).astype(np.float32)
    wv = rng.standard_normal((32, 1, 7, 7)).astype(np.float32)
    got = np.zeros((1, 32, 56, 56), np.float32)
    module(x, wv, got)
    np.testing.assert_allclose(got, _window_sum(x, wv, 1, 3, 1), rtol=1e-4, atol=1e-4)


def test_conv_with_bias_and_residual_is_one_kernel() -> None:
    """ResNet's ``relu(conv(x) + b + skip)``: the epilogue reads the convolution at its own indices."""
    data = te.placeholder((1, 6, 11, 13), name="data")
    weight = te.placeholder((10, 6, 3, 3), name="weight")
    bias = te.placeholder((10,), name="bias")
    skip = te.placeholder((1, 10, 11, 13), name="skip")
    out = ops.relu(ops.add(ops.bias_add(ops.conv2d_nchw(data, weight, 1, 1), bias, axis=1), skip))
    module = build_cuda(schedule_cuda([out], Target("cuda")), [data, weight, bias, skip, out], "cuda",
                        name="conv_bias_residual", runtime=CudaRuntime.EMULATOR)
    assert len(module.kernels) == 1 and not module.artifact.temporaries
    rng = np.random.default_rng(5)
    x, wv, bv, sv = (rng.standard_normal(s).astype(np.float32) for s in ((1, 6, 11, 13), (10, 6, 3, 3), (10,),
                                                                          (1, 10, 11, 13)))
    got = np.zeros((1, 10, 11, 13), np.float32)
    module(x, wv, bv, sv, got)
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    want = np.zeros((1, 10, 11, 13))
    for ry in range(3):
        for rx in range(3):
            want += np.einsum("nchw,oc->nohw", xp[:, :, ry: ry + 11, rx: rx + 13], wv[:, :, ry, rx])
    np.testing.assert_allclose(got, np.maximum(want + bv[None, :, None, None] + sv, 0), rtol=1e-4, atol=1e-4)
