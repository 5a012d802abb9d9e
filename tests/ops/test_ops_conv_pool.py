"""Padding, convolutions and pooling in NCHW layout under the default schedule, and their argument errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import tcomp
from tcomp import ops, te
from tcomp.backend.testing import build_and_check
from tcomp.ops import OpError
from tcomp.ops import testing as reference
from tcomp.ops.testing import random_data


def _check(output: te.Tensor, inputs: list[te.Tensor], arrays: list[np.ndarray], expected: Any,
           rtol: float = 1e-4, atol: float = 1e-5) -> None:
    build_and_check(tcomp.create_schedule(output), [*inputs, output], arrays, np.asarray(expected), rtol, atol)


def test_pad_constant_per_dimension() -> None:
    x_tensor = te.placeholder((3, 7, 5), name="X")
    x = random_data(np.random.default_rng(400), (3, 7, 5))
    out = ops.pad(x_tensor, (0, 2, 1), (1, 0, 3), pad_value=-7.5)
    _check(out, [x_tensor], [x], np.pad(x, ((0, 1), (2, 0), (1, 3)), constant_values=-7.5))


def test_pad_symmetric_default_and_integer_data() -> None:
    x_tensor = te.placeholder((4, 6), dtype="int32", name="X")
    x = np.arange(24, dtype="int32").reshape(4, 6)
    _check(ops.pad(x_tensor, 2, pad_value=9), [x_tensor], [x], np.pad(x, 2, constant_values=9))


CONV_PARAMS = [
    # (batch, channels, (H, W), out_channels, (KH, KW), stride, padding, dilation, groups)
    (1, 3, (7, 7), 4, (3, 3), 1, 0, 1, 1),
    (1, 3, (7, 7), 4, (3, 3), 1, 1, 1, 1),
    (2, 2, (9, 13), 3, (3, 3), 2, 1, 1, 1),
    (1, 2, (8, 7), 5, (3, 2), (2, 3), (1, 2), 1, 1),
    (1, 3, (10, 11), 2, (3, 3), 1, (0, 1, 2, 3), 2, 1),
    (1, 4, (9, 9), 6, (3, 3), 2, 2, (2, 1), 2),
    (1, 4, (7, 6), 4, (1, 1), 1, 0, 1, 4),
    (1, 6, (5, 5), 3, (5, 5), 1, 2, 1, 3),
    (3, 1, (13, 1), 2, (3, 1), 3, (1, 0), 1, 1),
]


@pytest.mark.parametrize(("batch", "channels", "size", "out_channels", "kernel", "stride", "padding", "dilation",
                          "groups"), CONV_PARAMS)
def test_conv2d_nchw(batch: int, channels: int, size: tuple[int, int], out_channels: int,
                     kernel: tuple[int, int], stride: Any, padding: Any, dilation: Any, groups: int) -> None:
    rng = np.random.default_rng(401)
    data_shape = (batch, channels, *size)
    kernel_shape = (out_channels, channels // groups, *kernel)
    x_tensor, w_tensor = te.placeholder(data_shape, name="data"), te.placeholder(kernel_shape, name="kernel")
    x, w = random_data(rng, data_shape), random_data(rng, kernel_shape)
    out = ops.conv2d_nchw(x_tensor, w_tensor, stride, padding, dilation, groups)
    expected = reference.conv2d_nchw_python(x, w, stride, padding, dilation, groups)
    assert tuple(int(d) for d in out.shape) == expected.shape
    _check(out, [x_tensor, w_tensor], [x, w], expected)


def test_conv2d_pad_stage_only_when_padding() -> None:
    x_tensor, w_tensor = te.placeholder((1, 2, 5, 5), name="data"), te.placeholder((2, 2, 3, 3), name="kernel")
    unpadded = ops.conv2d_nchw(x_tensor, w_tensor)
    assert [t.op for t in unpadded.op.input_tensors()] == [x_tensor.op, w_tensor.op]
    padded = ops.conv2d_nchw(x_tensor, w_tensor, padding=1)
    assert padded.op.input_tensors()[0].op.name == "pad_data"


def test_conv2d_int8_accumulates_in_int32() -> None:
    rng = np.random.default_rng(402)
    x_tensor = te.placeholder((1, 3, 6, 6), dtype="int8", name="data")
    w_tensor = te.placeholder((2, 3, 3, 3), dtype="int8", name="kernel")
    x = rng.integers(-100, 100, (1, 3, 6, 6)).astype("int8")
    w = rng.integers(-100, 100, (2, 3, 3, 3)).astype("int8")
    out = ops.conv2d_nchw(x_tensor, w_tensor, padding=1, out_dtype="int32")
    assert out.dtype == "int32"
    expected = reference.conv2d_nchw_python(x.astype(np.int64), w.astype(np.int64), 1, 1).astype("int32")
    _check(out, [x_tensor, w_tensor], [x, w], expected)


@pytest.mark.parametrize(("multiplier", "stride", "padding", "dilation"),
                         [(1, 1, 1, 1), (2, 2, 0, 1), (3, (1, 2), (2, 1), 2), (1, 1, (0, 1, 2, 0), 1)])
def test_depthwise_conv2d_nchw(multiplier: int, stride: Any, padding: Any, dilation: Any) -> None:
    rng = np.random.default_rng(403)
    x_tensor = te.placeholder((2, 3, 9, 8), name="data")
    w_tensor = te.placeholder((3, multiplier, 3, 3), name="kernel")
    x, w = random_data(rng, (2, 3, 9, 8)), random_data(rng, (3, multiplier, 3, 3))
    out = ops.depthwise_conv2d_nchw(x_tensor, w_tensor, stride, padding, dilation)
    expected = reference.depthwise_conv2d_nchw_python(x, w, stride, padding, dilation)
    _check(out, [x_tensor, w_tensor], [x, w], expected)


POOL_PARAMS = [
    # (kernel, stride, padding, ceil_mode, count_include_pad)
    (2, None, 0, False, True),
    (3, 2, 1, False, True),
    (3, 2, 1, False, False),
    ((3, 2), (2, 1), (1, 0), False, True),
    (3, 2, 1, True, True),
    (3, 2, 1, True, False),
    (2, 3, 0, True, True),
    ((2, 3), 2, (0, 1, 1, 2), False, False),
    ((3, 3), (3, 2), (1, 1, 2, 0), True, False),
]


@pytest.mark.parametrize("pool_type", ["max", "avg"])
@pytest.mark.parametrize(("kernel", "stride", "padding", "ceil_mode", "count_include_pad"), POOL_PARAMS)
def test_pool2d(pool_type: str, kernel: Any, stride: Any, padding: Any, ceil_mode: bool,
                count_include_pad: bool) -> None:
    x_tensor = te.placeholder((2, 3, 9, 8), name="data")
    x = random_data(np.random.default_rng(404), (2, 3, 9, 8))
    out = ops.pool2d(x_tensor, kernel, stride, padding, pool_type, ceil_mode, count_include_pad)
    expected = reference.pool2d_python(x, kernel, stride, padding, pool_type, ceil_mode, count_include_pad)
    assert tuple(int(d) for d in out.shape) == expected.shape
    _check(out, [x_tensor], [x], expected, 1e-5, 1e-6)


def test_pool2d_output_sizes_follow_pytorch() -> None:
    # torch.nn.MaxPool2d(2, 2, padding=1, ceil_mode=True) on 5 -> 3: a 4th window would start in the padding
    assert ops.pool.pool2d_output_size(5, 2, 2, 1, 1, True) == 3
    assert ops.pool.pool2d_output_size(8, 3, 2, 1, 1, True) == 5
    assert ops.pool.pool2d_output_size(9, 3, 2, 1, 1, True) == 5
    assert ops.pool.pool2d_output_size(9, 2, 2, 0, 0, True) == 5
    assert ops.pool.pool2d_output_size(9, 2, 2, 0, 0, False) == 4


def test_max_pool_of_integers() -> None:
    x_tensor = te.placeholder((1, 2, 5, 5), dtype="int32", name="data")
    x = np.random.default_rng(405).integers(-1000, -1, (1, 2, 5, 5)).astype("int32")
    expected = reference.pool2d_python(x, 2, 2, 1, "max")
    _check(ops.pool2d(x_tensor, 2, 2, 1, "max"), [x_tensor], [x], expected)


@pytest.mark.parametrize("pool_type", [ops.PoolType.MAX, ops.PoolType.AVG])
def test_global_pool(pool_type: ops.PoolType) -> None:
    x_tensor = te.placeholder((2, 3, 7, 5), name="data")
    x = random_data(np.random.default_rng(406), (2, 3, 7, 5))
    expected = x.max(axis=(2, 3), keepdims=True) if pool_type is ops.PoolType.MAX else x.mean(axis=(2, 3),
                                                                                                keepdims=True)
    _check(ops.global_pool(x_tensor, pool_type), [x_tensor], [x], expected, 1e-5, 1e-6)


# ---------------------------------------------------------------------------------------------------------------------
# errors
def test_conv2d_channel_and_group_errors() -> None:
    x_tensor = te.placeholder((1, 4, 5, 5), name="data")
    with pytest.raises(OpError, match="conv2d_nchw: groups=3 does not divide the 4 input channels"):
        ops.conv2d_nchw(x_tensor, te.placeholder((3, 1, 3, 3), name="w"), groups=3)
    with pytest.raises(OpError, match=r"conv2d_nchw: kernel dimension 1 is 4, expected input channels // groups"):
        ops.conv2d_nchw(x_tensor, te.placeholder((2, 4, 3, 3), name="w"), groups=2)
    with pytest.raises(OpError, match="conv2d_nchw: groups=2 does not divide the 3 output channels"):
        ops.conv2d_nchw(x_tensor, te.placeholder((3, 2, 3, 3), name="w"), groups=2)


def test_conv2d_attribute_errors() -> None:
    x_tensor, w_tensor = te.placeholder((1, 2, 5, 5), name="data"), te.placeholder((2, 2, 3, 3), name="w")
    with pytest.raises(OpError, match="conv2d_nchw: stride must be positive"):
        ops.conv2d_nchw(x_tensor, w_tensor, stride=0)
    with pytest.raises(OpError, match="conv2d_nchw: padding must be an int, a 2-tuple"):
        ops.conv2d_nchw(x_tensor, w_tensor, padding=(1, 1, 1))
    with pytest.raises(OpError, match="conv2d_nchw: padding must be non-negative"):
        ops.conv2d_nchw(x_tensor, w_tensor, padding=-1)
    with pytest.raises(OpError, match="conv2d_nchw: dilation must be an int or a tuple of 2 ints"):
        ops.conv2d_nchw(x_tensor, w_tensor, dilation=1.5)
    with pytest.raises(OpError, match="conv2d_nchw: output height would be -3"):
        ops.conv2d_nchw(x_tensor, w_tensor, dilation=4)
    with pytest.raises(OpError, match=r"conv2d_nchw: argument data must have 4 dimensions, got shape \(2, 5, 5\)"):
        ops.conv2d_nchw(te.placeholder((2, 5, 5), name="x"), w_tensor)


def test_depthwise_kernel_channels() -> None:
    with pytest.raises(OpError, match="depthwise_conv2d_nchw: kernel dimension 0 is 2, expected the 3 input"):
        ops.depthwise_conv2d_nchw(te.placeholder((1, 3, 5, 5), name="x"), te.placeholder((2, 1, 3, 3), name="w"))


def test_pool_errors() -> None:
    x_tensor = te.placeholder((1, 2, 5, 5), name="data")
    with pytest.raises(OpError, match=r"pool2d: pool_type must be one of \['max', 'avg'\], got 'sum'"):
        ops.pool2d(x_tensor, 2, pool_type="sum")
    with pytest.raises(OpError, match="pool2d: padding 2 must be smaller than the kernel"):
        ops.pool2d(x_tensor, 2, padding=2)
    with pytest.raises(OpError, match="pool2d: kernel must be positive"):
        ops.pool2d(x_tensor, (0, 2))
    with pytest.raises(OpError, match="pool2d: the spatial dimensions of data must be constants"):
        ops.pool2d(te.placeholder((1, 2, te.var("h"), 5), name="x"), 2)
    with pytest.raises(OpError, match="global_pool: argument data must have 4 dimensions"):
        ops.global_pool(te.placeholder((2, 5, 5), name="x"))


def test_pad_errors() -> None:
    x_tensor = te.placeholder((3, 4), name="X")
    with pytest.raises(OpError, match=r"pad: pad_before must be an int or a sequence of 2 ints"):
        ops.pad(x_tensor, (1, 1, 1))
    with pytest.raises(OpError, match=r"pad: pad_after must hold non-negative ints"):
        ops.pad(x_tensor, (1, 1), (0, -1))


def test_symbolic_conv2d_and_global_pool() -> None:
    batch, height, width = te.var("n"), te.var("h"), te.var("w")
    x_tensor = te.placeholder((batch, 2, height, width), name="data")
    w_tensor = te.placeholder((3, 2, 3, 3), name="kernel")
    conv = ops.conv2d_nchw(x_tensor, w_tensor, stride=2, padding=1)
    pooled = ops.global_pool(x_tensor, "avg")
    conv_module = tcomp.build(tcomp.create_schedule(conv), [x_tensor, w_tensor, conv])
    pool_module = tcomp.build(tcomp.create_schedule(pooled), [x_tensor, pooled])
    rng = np.random.default_rng(407)
    w = random_data(rng, (3, 2, 3, 3))
    for shape in ((1, 2, 5, 5), (2, 2, 8, 11)):
        x = random_data(rng, shape)
        expected = reference.conv2d_nchw_python(x, w, 2, 1)
        result = np.zeros(expected.shape, dtype="float32")
        conv_module(x, w, result)
        np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-5)
        means = np.zeros((shape[0], 2, 1, 1), dtype="float32")
        pool_module(x, means)
        np.testing.assert_allclose(means, x.mean(axis=(2, 3), keepdims=True), rtol=1e-5, atol=1e-6)
