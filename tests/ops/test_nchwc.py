"""Blocked layouts: layout strings, layout_transform round trips, kernel packing and conv2d_nchwc against numpy."""

from __future__ import annotations

import numpy as np
import pytest

import tcomp
from tcomp import te
from tcomp.backend.testing import build_and_check
from tcomp.ops import OpError
from tcomp.ops import testing as reference
from tcomp.ops.cpu import schedule_cpu
from tcomp.ops.nchwc import (
    Layout,
    choose_channel_block,
    conv2d_nchw_via_nchwc,
    conv2d_nchwc,
    depthwise_conv2d_nchwc,
    layout_transform,
    pack_kernel,
)
from tcomp.ops.testing import random_data
from tcomp.ops.utils import OpKind, op_kind
from tcomp.target import Target

RNG = np.random.default_rng(900)


def to_blocked(x: np.ndarray, block: int) -> np.ndarray:
    n, c, h, w = x.shape
    return np.ascontiguousarray(x.reshape(n, c // block, block, h, w).transpose(0, 1, 3, 4, 2))


def pack(w: np.ndarray, ic: int, oc: int) -> np.ndarray:
    o, i, kh, kw = w.shape
    return np.ascontiguousarray(w.reshape(o // oc, oc, i // ic, ic, kh, kw).transpose(0, 2, 4, 5, 3, 1))


def test_layout_parse() -> None:
    layout = Layout.parse("NCHW16c")
    assert layout.axes == ("N", "C", "H", "W", "c")
    assert layout.factors == (None, None, None, None, 16)
    assert layout.block("C") == 16 and layout.block("H") is None
    assert Layout.parse("OIHW8i4o").block("O") == 4


@pytest.mark.parametrize(("text", "message"), [
    ("", "expected a layout string"),
    ("NC16HW", "primal axis H cannot have a factor"),
    ("NCHWc", "needs a positive factor"),
    ("NCHW0c", "needs a positive factor"),
    ("NCHW4d", "has no primal axis D"),
    ("NCCHW", "appears twice"),
    ("NC-HW", "cannot read"),
])
def test_layout_parse_errors(text: str, message: str) -> None:
    with pytest.raises(OpError, match=message):
        Layout.parse(text)


@pytest.mark.parametrize(("shape", "blocked"), [((1, 32, 5, 7), "NCHW16c"), ((2, 12, 3, 4), "NCHW4c"),
                                                ((1, 3, 6, 5), "NCHW3c")])
def test_layout_transform_round_trip(shape: tuple[int, ...], blocked: str) -> None:
    x = te.placeholder(shape, name="x")
    there = layout_transform(x, "NCHW", blocked)
    back = layout_transform(there, blocked, "NCHW", name="back")
    assert op_kind(there.op) is OpKind.LAYOUT_TRANSFORM
    data = random_data(RNG, shape)
    block = Layout.parse(blocked).block("C")
    assert block is not None
    build_and_check(schedule_cpu([there]), [x, there], [data], to_blocked(data, block))
    build_and_check(schedule_cpu([back]), [x, back], [data], data)
    build_and_check(tcomp.create_schedule(back), [x, back], [data], data)


def test_layout_transform_between_block_sizes_and_kernel_packing() -> None:
    x = te.placeholder((1, 4, 3, 3, 8), name="x")  # NCHW8c, 32 channels
    y = layout_transform(x, "NCHW8c", "NCHW16c")
    data = random_data(RNG, (1, 4, 3, 3, 8))
    plain = data.transpose(0, 1, 4, 2, 3).reshape(1, 32, 3, 3)
    build_and_check(schedule_cpu([y]), [x, y], [data], to_blocked(plain, 16))
    w = te.placeholder((32, 48, 3, 1), name="w")
    packed = pack_kernel(w, 16, 8)
    assert tuple(int(d) for d in packed.shape) == (4, 3, 3, 1, 16, 8)
    weights = random_data(RNG, (32, 48, 3, 1))
    build_and_check(schedule_cpu([packed]), [w, packed], [weights], pack(weights, 16, 8))


def from_blocked(x: np.ndarray) -> np.ndarray:
    n, c, h, w, b = x.shape
    return np.ascontiguousarray(x.transpose(0, 1, 4, 2, 3).reshape(n, c * b, h, w))


@pytest.mark.parametrize(("shape", "src", "dst"), [
    ((1, 6, 3, 5, 8), "NCHW8c", "NCHW4c"),  # the block divides the source's
    ((2, 3, 5, 3, 4), "NCHW4c", "NCHW12c"),  # the source's block divides the block
    ((1, 7, 3, 2, 8), "NCHW8c", "NCHW7c"),  # neither: whole groups of lcm(8, 7) = 56 channels
    ((1, 9, 2, 3, 4), "NCHW4c", "NCHW6c"),  # lcm 12: three source blocks make two output blocks
    ((1, 5, 2, 3, 6), "NCHW6c", "NCHW10c"),  # 30 channels: lcm 30 would need 3 output blocks, there are 3
    ((1, 4, 3, 3, 6), "NCHW6c", "NCHW4c"),  # lcm 12 = 3 output blocks do not divide the 6 output blocks
    ((1, 12, 5, 7), "NCHW", "NCHW4c"),
    ((2, 3, 4, 5), "NCHW", "NCHW3c"),
])
def test_layout_transform_into_blocks_at_odd_sizes(shape: tuple[int, ...], src: str, dst: str) -> None:
    """Transforms into a blocked layout: loops without divisions per element, vectorized where the source is read
    in place, and unrolled where it is read through a permutation; every value against numpy."""
    x = te.placeholder(shape, name="x")
    data = random_data(RNG, shape)
    plain = data if src == "NCHW" else from_blocked(data)
    block = Layout.parse(dst).block("C")
    assert block is not None
    expected = to_blocked(plain, block)
    plain_y = layout_transform(x, src, dst)
    build_and_check(schedule_cpu([plain_y]), [x, plain_y], [data], expected)
    relu = te.compute(x.shape, lambda *i: te.max(x[i], 0.0), name="relu")  # read in place: still vectorized
    fused = layout_transform(relu, src, dst)
    build_and_check(schedule_cpu([fused]), [x, fused], [data], np.maximum(expected, 0.0))
    if src != "NCHW":
        reversed_c = te.compute(x.shape, lambda n, c, h, w, b: x[n, c, h, w, x.shape[4] - 1 - b], name="flip")
        flipped = layout_transform(reversed_c, src, dst)
        expected_flip = to_blocked(from_blocked(data[..., ::-1]), block)
        build_and_check(schedule_cpu([flipped]), [x, flipped], [data], expected_flip)


def test_layout_transform_into_blocks_loops() -> None:
    """``NCHW8c`` -> ``NCHW4c``: two output blocks per source block (an unrolled loop), the innermost four channels
    one vector read contiguously."""
    x = te.placeholder((1, 6, 3, 5, 8), name="x")
    y = layout_transform(x, "NCHW8c", "NCHW4c")
    text = str(tcomp.lower(schedule_cpu([y]), [x, y]))
    assert "ramp(" in text and "unrolled(0, 2)" in text
    read = text.split("= x[")[1]
    assert "//" not in read and "%" not in read  # the source index is affine in the loops


def test_layout_transform_errors() -> None:
    x = te.placeholder((1, 20, 4, 4), name="x")
    with pytest.raises(OpError, match="not a multiple of the block 16c"):
        layout_transform(x, "NCHW", "NCHW16c")
    with pytest.raises(OpError, match="has 5 dimensions"):
        layout_transform(x, "NCHW4c", "NCHW")
    with pytest.raises(OpError, match="different primal axes"):
        layout_transform(x, "NCHW", "NCDW")


def test_choose_channel_block() -> None:
    assert choose_channel_block(64, 16) == 16
    assert choose_channel_block(3, 16) == 3
    assert choose_channel_block(24, 16) == 12
    assert choose_channel_block(17, 16) == 1
    # where 8 of 16 lanes run at the full rate (a 512-bit instruction at half the rate of a 256-bit one), a block
    # of 8 does more useful multiply-adds per cycle than 10 or 12 in a 16-lane vector; powers of two stay
    assert choose_channel_block(1000, 16) == 10 and choose_channel_block(1000, 16, 8) == 8
    assert choose_channel_block(24, 16, 8) == 8 and choose_channel_block(40, 16, 8) == 8
    assert choose_channel_block(64, 16, 8) == 16 and choose_channel_block(3, 16, 8) == 3
    assert choose_channel_block(60, 16, 8) == 15  # 15 of 16 lanes beat 6 of 8 (12 is as useful as 6 of 8)
    assert choose_channel_block(1000, 8) == 8


def test_full_rate_vector_bits() -> None:
    assert Target("llvm -mcpu=znver4").full_rate_vector_bits == 256
    assert Target("llvm -mcpu=skylake-avx512").full_rate_vector_bits == 512
    assert Target("llvm -mcpu=znver3").full_rate_vector_bits == 256 == Target("llvm -mcpu=znver3").vector_bits


CONV_PARAMS = [
    # channels, size, out_channels, kernel, stride, padding, dilation, ic block, oc block
    (32, (7, 7), 32, 3, 1, 1, 1, 16, 16),
    (16, (9, 6), 48, 1, 1, 0, 1, 16, 16),
    (8, (11, 11), 16, 3, 2, 1, 1, 8, 16),
    (12, (8, 9), 8, 3, 1, (0, 1, 2, 1), 2, 4, 8),
    (3, (13, 13), 32, 3, 1, 1, 1, 3, 16),
    (32, (3, 3), 64, 3, 1, 1, 1, 16, 16),
]


@pytest.mark.parametrize(("channels", "size", "out_channels", "kernel", "stride", "padding", "dilation", "ic", "oc"),
                         CONV_PARAMS)
def test_conv2d_nchwc_against_numpy(channels: int, size: tuple[int, int], out_channels: int, kernel: int,
                                    stride: int, padding: object, dilation: int, ic: int, oc: int) -> None:
    x = random_data(RNG, (1, channels, *size))
    w = random_data(RNG, (out_channels, channels, kernel, kernel))
    expected = reference.conv2d_nchw_python(x, w, stride, padding, dilation)
    data = te.placeholder((1, channels // ic, *size, ic), name="data")
    weights = te.placeholder((out_channels // oc, channels // ic, kernel, kernel, ic, oc), name="kernel")
    out = conv2d_nchwc(data, weights, stride, padding, dilation)
    assert op_kind(out.op) is OpKind.CONV2D_NCHWC
    assert tuple(int(d) for d in out.shape) == (1, out_channels // oc, *expected.shape[2:], oc)
    arrays = [to_blocked(x, ic), pack(w, ic, oc)]
    build_and_check(schedule_cpu([out]), [data, weights, out], arrays, to_blocked(expected, oc), 1e-4, 1e-4)


def test_conv2d_nchwc_default_schedule_matches() -> None:
    x = random_data(RNG, (1, 8, 6, 6))
    w = random_data(RNG, (8, 8, 3, 3))
    data = te.placeholder((1, 2, 6, 6, 4), name="data")
    weights = te.placeholder((2, 2, 3, 3, 4, 4), name="kernel")
    out = conv2d_nchwc(data, weights, 1, 1)
    expected = to_blocked(reference.conv2d_nchw_python(x, w, 1, 1), 4)
    build_and_check(tcomp.create_schedule(out), [data, weights, out], [to_blocked(x, 4), pack(w, 4, 4)], expected,
                    1e-4, 1e-4)


def test_conv2d_nchw_via_nchwc() -> None:
    x_t, w_t = te.placeholder((1, 24, 10, 10), name="x"), te.placeholder((40, 24, 3, 3), name="w")
    stages = conv2d_nchw_via_nchwc(x_t, w_t, stride=2, padding=1, lanes=16)
    assert tuple(int(d) for d in stages.data_blocked.shape) == (1, 2, 10, 10, 12)
    assert tuple(int(d) for d in stages.kernel_packed.shape) == (4, 2, 3, 3, 12, 10)  # 40 = 4 blocks of 10
    x, w = random_data(RNG, (1, 24, 10, 10)), random_data(RNG, (40, 24, 3, 3))
    expected = reference.conv2d_nchw_python(x, w, 2, 1)
    build_and_check(schedule_cpu([stages.out]), [x_t, w_t, stages.out], [x, w], expected, 1e-4, 1e-4)


def test_conv2d_nchwc_errors() -> None:
    data = te.placeholder((1, 2, 6, 6, 4), name="data")
    with pytest.raises(OpError, match="blocks of 8, data has 2 blocks of 4"):
        conv2d_nchwc(data, te.placeholder((2, 1, 3, 3, 8, 4), name="k"))
    with pytest.raises(OpError, match="must have 6 dimensions"):
        conv2d_nchwc(data, te.placeholder((2, 2, 3, 3), name="k"))
    with pytest.raises(OpError, match="output height would be"):
        conv2d_nchwc(data, te.placeholder((2, 2, 9, 9, 4, 4), name="k"))


@pytest.mark.parametrize(("channels", "out_channels", "groups", "kernel", "stride", "padding", "ic", "oc"), [
    (24, 48, 3, 1, 1, 0, 8, 8),  # ShuffleNet's grouped 1x1 convolutions
    (12, 18, 3, 3, 2, 1, 4, 3),  # a 3x3 with odd blocks, strided
    (16, 8, 2, 3, 1, (0, 1, 2, 1), 4, 2),  # several blocks per group on both sides
    (6, 6, 6, 3, 1, 1, 1, 1),  # as many groups as channels
    (24, 60, 2, 1, 1, 0, 4, 2),  # 15 output blocks of 2 per group
    (40, 24, 4, 1, 1, 0, 2, 2),  # 3 output blocks per group: tiles of several blocks would straddle groups
])
def test_grouped_conv2d_nchwc_against_numpy(channels: int, out_channels: int, groups: int, kernel: int, stride: int,
                                            padding: object, ic: int, oc: int) -> None:
    size = (9, 14) if kernel == 1 else (9, 7)  # 14 columns: a whole row per register tile
    x = random_data(RNG, (1, channels, *size))
    w = random_data(RNG, (out_channels, channels // groups, kernel, kernel))
    expected = reference.conv2d_nchw_python(x, w, stride, padding, 1, groups=groups)
    data = te.placeholder((1, channels // ic, *size, ic), name="data")
    weights = te.placeholder((out_channels // oc, channels // groups // ic, kernel, kernel, ic, oc), name="kernel")
    out = conv2d_nchwc(data, weights, stride, padding, groups=groups)
    arrays = [to_blocked(x, ic), pack(w, ic, oc)]
    build_and_check(schedule_cpu([out]), [data, weights, out], arrays, to_blocked(expected, oc), 1e-4, 1e-4)


def test_grouped_conv2d_nchwc_errors() -> None:
    data = te.placeholder((1, 6, 5, 5, 4), name="data")
    with pytest.raises(OpError, match=r"2 blocks of 4 per group \(2 groups\), data has 6 blocks"):
        conv2d_nchwc(data, te.placeholder((4, 2, 1, 1, 4, 4), name="k"), groups=2)
    with pytest.raises(OpError, match="5 output channel blocks do not split into 3 groups"):
        conv2d_nchwc(data, te.placeholder((5, 2, 1, 1, 4, 4), name="k"), groups=3)
    with pytest.raises(OpError, match="groups must be a positive int"):
        conv2d_nchwc(data, te.placeholder((6, 6, 1, 1, 4, 4), name="k"), groups=0)


@pytest.mark.parametrize(("channels", "size", "kernel", "stride", "padding", "dilation", "block"), [
    (136, (28, 28), 3, 1, 1, 1, 8),  # ShuffleNet's depthwise convolutions
    (112, (56, 56), 3, 2, 1, 1, 8),
    (14, (13, 11), 3, 1, 1, 1, 7),  # a block narrower than a vector, widths without a divisor
    (32, (9, 10), 3, 2, (0, 1, 2, 1), 1, 16),  # two vectors per block on AVX2
    (8, (12, 12), 5, 1, 4, 2, 4),  # dilated 5x5
    (12, (7, 7), 3, 1, 0, 1, 4),  # no padding
    (144, (9, 11), 3, 2, 1, 1, 144),  # one block of all channels (channels-last rows): in chunks of vectors
    (96, (6, 7), 3, 1, 1, 1, 96),
    (72, (10, 9), 3, 1, 1, 1, 72),  # rows of a whole number of half vectors: in chunks of half vectors
    (120, (7, 8), 5, 2, 2, 1, 120),
])
def test_depthwise_conv2d_nchwc_against_numpy(channels: int, size: tuple[int, int], kernel: int, stride: int,
                                              padding: object, dilation: int, block: int) -> None:
    x = random_data(RNG, (1, channels, *size))
    w = random_data(RNG, (channels, 1, kernel, kernel))
    bias = random_data(RNG, (channels,))
    expected = reference.depthwise_conv2d_nchw_python(x, w, stride, padding, dilation) + bias[None, :, None, None]
    data = te.placeholder((1, channels // block, *size, block), name="data")
    weights = te.placeholder((channels // block, 1, kernel, kernel, 1, block), name="kernel")
    bias_t = te.placeholder((1, channels // block, 1, 1, block), name="bias")
    conv = depthwise_conv2d_nchwc(data, weights, stride, padding, dilation)
    assert op_kind(conv.op) is OpKind.DEPTHWISE_CONV2D_NCHWC
    out = te.compute(conv.shape, lambda n, g, y, xx, b: conv[n, g, y, xx, b] + bias_t[0, g, 0, 0, b], name="bias_add")
    arrays = [to_blocked(x, block), pack(w, 1, block), to_blocked(bias[None, :, None, None], block)]
    build_and_check(schedule_cpu([out]), [data, weights, bias_t, out], arrays, to_blocked(expected, block), 1e-4,
                    1e-4)


@pytest.mark.parametrize(("channels", "block", "stride", "pad_value"), [(96, 96, 1, 0), (40, 8, 2, 131)])
def test_depthwise_conv2d_nchwc_of_bytes(channels: int, block: int, stride: int, pad_value: int) -> None:
    """uint8 data, converted as it is read and padded with ``pad_value``: the float convolution of the padded
    bytes."""
    x = RNG.integers(0, 256, (1, channels, 11, 9)).astype(np.uint8)
    w = random_data(RNG, (channels, 1, 3, 3))
    padded = np.pad(x.astype(np.float32), ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=pad_value)
    expected = reference.depthwise_conv2d_nchw_python(padded, w, stride, 0, 1)
    data = te.placeholder((1, channels // block, 11, 9, block), name="data", dtype="uint8")
    weights = te.placeholder((channels // block, 1, 3, 3, 1, block), name="kernel")
    conv = depthwise_conv2d_nchwc(data, weights, stride, 1, 1, pad_value=pad_value)
    assert conv.dtype == "float32"
    build_and_check(schedule_cpu([conv]), [data, weights, conv], [to_blocked(x, block), pack(w, 1, block)],
                    to_blocked(expected, block), 1e-4, 1e-3)


def test_depthwise_conv2d_nchwc_errors() -> None:
    data = te.placeholder((1, 4, 6, 6, 8), name="data")
    kernel = te.placeholder((4, 1, 3, 3, 1, 8), name="k")
    with pytest.raises(OpError, match="the same float type, or uint8 data and a float kernel"):
        depthwise_conv2d_nchwc(te.placeholder((1, 4, 6, 6, 8), name="data", dtype="int8"), kernel)
    with pytest.raises(OpError, match="pad_value 3 is for uint8 data"):
        depthwise_conv2d_nchwc(data, kernel, pad_value=3)
    with pytest.raises(OpError, match=r"a kernel of 4 blocks \[C // b, 1, KH, KW, 1, b\] with b = 8 expected"):
        depthwise_conv2d_nchwc(data, te.placeholder((4, 1, 3, 3, 1, 4), name="k"))
    with pytest.raises(OpError, match="must have 6 dimensions"):
        depthwise_conv2d_nchwc(data, te.placeholder((4, 1, 3, 3), name="k"))
    with pytest.raises(OpError, match="output height would be"):
        depthwise_conv2d_nchwc(data, te.placeholder((4, 1, 9, 9, 1, 8), name="k"))
