"""The default CPU schedules (``tcomp.ops.cpu``) against numpy, per operator, on several shapes including odd ones
that no vector width or tile divides; and the factors they choose by shape."""

from __future__ import annotations

import numpy as np
import pytest

import tcomp
from tcomp import Target, ops, te
from tcomp.arith.factors import divisors, largest_divisor
from tcomp.backend.testing import build_and_check
from tcomp.ops import testing as reference
from tcomp.ops.cpu import (
    CpuTarget,
    NCHWcTile,
    NCHWTile,
    conv2d_nchw_tile,
    conv2d_nchwc_tile,
    gemm_blocking,
    register_tile,
    schedule_batch_matmul,
    schedule_conv2d_nchw,
    schedule_cpu,
    schedule_dense,
    schedule_depthwise_conv2d_nchw,
    schedule_injective,
    schedule_layer_norm,
    schedule_matmul,
    schedule_pool,
    schedule_reduce,
    schedule_softmax,
)
from tcomp.ops.cpu.common import vector_factor
from tcomp.ops.cpu.conv2d import depthwise_vector_width
from tcomp.ops.cpu.conv_plane import pointwise_plane_tile
from tcomp.ops.cpu.conv_tiles import row_tile
from tcomp.ops.testing import random_data
from tcomp.schedule.relation import AttachType
from tests.ops.op_cases import CASES

RNG = np.random.default_rng(700)
AVX512 = CpuTarget(vector_bits=512, vector_registers=32, cores=2, l1_bytes=48 << 10, l2_bytes=2 << 20)
AVX2 = CpuTarget(vector_bits=256, vector_registers=16, cores=2)


def _ints(tensor: te.Tensor) -> tuple[int, ...]:
    return tuple(int(d) for d in tensor.shape)


# ---------------------------------------------------------------------------------------------------------------------
# every operator problem of the shared cases under schedule_cpu
@pytest.mark.parametrize("case_name", sorted(CASES))
def test_schedule_cpu_every_operator_case(case_name: str) -> None:
    problem = CASES[case_name]()
    s = schedule_cpu([problem.output])
    build_and_check(s, problem.args, problem.arrays, problem.expected, problem.rtol, problem.atol)


# ---------------------------------------------------------------------------------------------------------------------
# matrix products
@pytest.mark.parametrize(("m", "k", "n", "transpose_a", "transpose_b"), [
    (256, 256, 256, False, False),  # panels copied (cache_read), tensor-sized tiles
    (13, 7, 31, False, False),
    (1, 64, 48, False, False),  # a row vector: the column panels run in parallel
    (40, 33, 96, True, False),
    (30, 64, 20, False, True),  # dense layout: dot products over K, vectorized by rfactor
    (1, 512, 100, False, True),
    (9, 13, 5, False, True),  # K not a multiple of the vector width: plain loops
    (8, 32, 6, True, True),
])
def test_matmul(m: int, k: int, n: int, transpose_a: bool, transpose_b: bool) -> None:
    a_shape = (k, m) if transpose_a else (m, k)
    b_shape = (n, k) if transpose_b else (k, n)
    a_t, b_t = te.placeholder(a_shape, name="A"), te.placeholder(b_shape, name="B")
    out = ops.matmul(a_t, b_t, transpose_a, transpose_b)
    a, b = random_data(RNG, a_shape), random_data(RNG, b_shape)
    expected = (a.T if transpose_a else a).astype(np.float64) @ (b.T if transpose_b else b)
    build_and_check(schedule_matmul([out]), [a_t, b_t, out], [a, b], expected.astype(np.float32), 1e-4, 1e-4)


@pytest.mark.parametrize(("m", "k", "n", "parallel"), [
    (256, 256, 256, "j.outer.outer in parallel"),  # the cores take blocks of column panels
    (512, 512, 64, "i.outer.outer in parallel"),  # two column panels: the cores take blocks of rows
])
def test_large_float32_matmul_runs_on_the_gemm_micro_kernel(m: int, k: int, n: int, parallel: str) -> None:
    import tcomp

    a_t, b_t = te.placeholder((m, k), name="A"), te.placeholder((k, n), name="B")
    out = ops.matmul(a_t, b_t)
    a, b = random_data(RNG, (m, k)), random_data(RNG, (k, n))
    s = schedule_matmul([out], Target("llvm -num-cores=2"))
    source = str(tcomp.lower(s, [a_t, b_t, out]))
    assert "tcomp_sgemm_f32" in source and parallel in source and "A.local" in source
    build_and_check(s, [a_t, b_t, out], [a, b], a.astype(np.float64) @ b, 1e-4, 1e-4)


@pytest.mark.parametrize(("m", "k", "n"), [(4, 64, 10), (17, 19, 23)])
def test_dense_with_bias(m: int, k: int, n: int) -> None:
    x_t, w_t, b_t = te.placeholder((m, k), name="X"), te.placeholder((n, k), name="W"), te.placeholder((n,), name="b")
    out = ops.dense(x_t, w_t, b_t)
    x, w, b = random_data(RNG, (m, k)), random_data(RNG, (n, k)), random_data(RNG, (n,))
    build_and_check(schedule_dense([out]), [x_t, w_t, b_t, out], [x, w, b], x @ w.T + b, 1e-4, 1e-4)


@pytest.mark.parametrize(("m", "k", "n"), [(1, 1000, 37), (8, 100, 20), (3, 1024, 9)])
def test_dense_dot_products_use_the_widest_vector_dividing_k(m: int, k: int, n: int) -> None:
    """K = 1000 is no multiple of 16 lanes: the partial sums run 8 lanes wide (4 for K = 100), not plain loops."""
    import tcomp
    from tcomp.ops.cpu.common import CpuTarget
    from tcomp.ops.cpu.dense import dot_lanes

    assert [dot_lanes(size, 16) for size in (1000, 100, 1024, 1003)] == [8, 4, 16, 1]
    target = Target.current_host()
    width = dot_lanes(k, CpuTarget.of(target).lanes("float32"))
    x_t, w_t = te.placeholder((m, k), name="X"), te.placeholder((n, k), name="W")
    out = ops.dense(x_t, w_t)
    s = schedule_dense([out], target)
    assert f"vectorized(0, {width})" in str(tcomp.lower(s, [x_t, w_t, out], simple_mode=True))
    x, w = random_data(RNG, (m, k)), random_data(RNG, (n, k))
    build_and_check(s, [x_t, w_t, out], [x, w], x.astype(np.float64) @ w.T, 1e-4, 1e-4)


@pytest.mark.parametrize(("batch_a", "batch_b", "m", "k", "n", "transpose_b"), [
    (3, 3, 24, 40, 32, False),
    (2, 2, 5, 64, 7, True),
    (1, 4, 6, 9, 11, False),
])
def test_batch_matmul(batch_a: int, batch_b: int, m: int, k: int, n: int, transpose_b: bool) -> None:
    b_shape = (batch_b, n, k) if transpose_b else (batch_b, k, n)
    a_t, b_t = te.placeholder((batch_a, m, k), name="A"), te.placeholder(b_shape, name="B")
    out = ops.batch_matmul(a_t, b_t, transpose_b=transpose_b)
    a, b = random_data(RNG, (batch_a, m, k)), random_data(RNG, b_shape)
    expected = np.matmul(a, b.transpose(0, 2, 1) if transpose_b else b)
    build_and_check(schedule_batch_matmul([out]), [a_t, b_t, out], [a, b], expected, 1e-4, 1e-4)


def test_gemm_blocking_by_shape() -> None:
    assert gemm_blocking(1024, 1024, 1024, AVX512, 16) == (8, 32, 64, 256)
    mr, nr, mc, kc = gemm_blocking(13, 31, 7, AVX512, 16)
    assert (nr, kc) == (16, 7) and mr >= 4
    assert gemm_blocking(96, 48, 64, AVX2, 8)[:2] == (6, 16)


# ---------------------------------------------------------------------------------------------------------------------
# convolutions
@pytest.mark.parametrize(("channels", "size", "out_channels", "kernel", "stride", "padding", "dilation", "groups"), [
    (16, (14, 14), 32, 3, 1, 1, 1, 1),
    (3, (13, 11), 8, 3, 2, 1, 1, 1),
    (8, (9, 9), 12, 1, 1, 0, 1, 1),
    (4, (10, 7), 6, (3, 2), 1, (1, 0, 2, 1), (2, 1), 2),
    (5, (6, 6), 5, 5, 1, 2, 1, 5),
    # 1x1 over planes of whole vectors whose rows are not: one row per plane (two vectors of 8 or 16 lanes divide 96)
    (6, (8, 12), 10, 1, 1, 0, 1, 2),
    (24, (4, 24), 12, 1, 1, 0, 1, 4),
])
def test_conv2d_nchw(channels: int, size: tuple[int, int], out_channels: int, kernel: object, stride: int,
                     padding: object, dilation: object, groups: int) -> None:
    kh, kw = kernel if isinstance(kernel, tuple) else (kernel, kernel)
    x_t = te.placeholder((1, channels, *size), name="data")
    w_t = te.placeholder((out_channels, channels // groups, kh, kw), name="kernel")
    out = ops.conv2d_nchw(x_t, w_t, stride, padding, dilation, groups)
    x, w = random_data(RNG, _ints(x_t)), random_data(RNG, _ints(w_t))
    expected = reference.conv2d_nchw_python(x, w, stride, padding, dilation, groups)
    build_and_check(schedule_conv2d_nchw([out]), [x_t, w_t, out], [x, w], expected, 1e-4, 1e-4)


@pytest.mark.parametrize(("channels", "size"), [(136, (28, 28)), (272, (14, 14)), (24, (5, 13))])
def test_pointwise_conv2d_nchw_plane_with_epilogue(channels: int, size: tuple[int, int]) -> None:
    """ShuffleNet's grouped 1x1 convolutions with their bias and ReLU (and planes with a tail after whole vectors):
    the convolution is computed per tile of channels inside the epilogue's parallel loop."""
    x_t = te.placeholder((1, channels, *size), name="data")
    w_t = te.placeholder((channels, channels // 4, 1, 1), name="kernel")
    b_t = te.placeholder((channels,), name="bias")
    conv = ops.conv2d_nchw(x_t, w_t, 1, 0, 1, 4)
    out = te.compute(conv.shape, lambda n, c, y, x: te.max(conv[n, c, y, x] + b_t[c], 0.0), name="bias_relu")
    s = schedule_cpu([out])
    assert s[conv].attach_type is AttachType.SCOPE
    x, w, b = random_data(RNG, _ints(x_t)), random_data(RNG, _ints(w_t)), random_data(RNG, (channels,))
    expected = np.maximum(reference.conv2d_nchw_python(x, w, 1, 0, 1, 4) + b[None, :, None, None], 0.0)
    build_and_check(s, [x_t, w_t, b_t, out], [x, w, b], expected, 1e-4, 1e-4)


@pytest.mark.parametrize(("channels", "size", "groups"), [(272, (14, 14), 4), (24, (5, 13), 2)])
def test_pointwise_plane_with_tail(channels: int, size: tuple[int, int], groups: int) -> None:
    """Grouped 1x1 convolutions whose planes leave a tail after whole vectors (196 = 12 x 16 + 4; 65 = 4 x 16 + 1)."""
    x_t = te.placeholder((1, channels, *size), name="data")
    w_t = te.placeholder((channels, channels // groups, 1, 1), name="kernel")
    out = ops.conv2d_nchw(x_t, w_t, 1, 0, 1, groups)
    x, w = random_data(RNG, _ints(x_t)), random_data(RNG, _ints(w_t))
    expected = reference.conv2d_nchw_python(x, w, 1, 0, 1, groups)
    build_and_check(schedule_conv2d_nchw([out]), [x_t, w_t, out], [x, w], expected, 1e-4, 1e-4)


def test_pointwise_plane_tiles() -> None:
    # ShuffleNet's 136 -> 136 channels in 4 groups at 28x28: 2 channels x 2 vectors on AVX2, 17 channels (a group
    # has 34) x 1 vector on AVX-512, whose 784-pixel planes split into 16-lane vectors but not pairs of them
    assert pointwise_plane_tile(136, 4, 784, 8, 16) == (2, 16)
    assert pointwise_plane_tile(136, 4, 784, 16, 32) == (17, 16)
    assert pointwise_plane_tile(272, 4, 784, 8, 16) == (4, 16)
    # 14x14 planes: 12 vectors of 16 and a tail of 4 pixels; 7x7 planes: too few whole vectors before the tail
    assert pointwise_plane_tile(272, 4, 196, 16, 32) == (17, 16)
    assert pointwise_plane_tile(544, 4, 49, 16, 32) is None


@pytest.mark.parametrize(("channels", "size", "multiplier", "kernel", "stride", "padding"), [
    (8, (16, 16), 1, 3, 1, 1),
    (3, (11, 9), 2, 3, 2, 1),
    (4, (7, 7), 1, 5, 1, 2),
    (6, (28, 28), 1, 3, 1, 1),  # 4-column vectors
    (6, (28, 28), 1, 3, 2, 1),  # the padding inlined into the strided reads
    (5, (13, 12), 1, 3, (2, 3), (0, 1, 2, 1)),  # strides and paddings that differ per side
])
def test_depthwise_conv2d_nchw(channels: int, size: tuple[int, int], multiplier: int, kernel: int, stride: object,
                               padding: object) -> None:
    x_t = te.placeholder((1, channels, *size), name="data")
    w_t = te.placeholder((channels, multiplier, kernel, kernel), name="kernel")
    out = ops.depthwise_conv2d_nchw(x_t, w_t, stride, padding)
    x, w = random_data(RNG, _ints(x_t)), random_data(RNG, _ints(w_t))
    expected = reference.depthwise_conv2d_nchw_python(x, w, stride, padding)
    build_and_check(schedule_depthwise_conv2d_nchw([out]), [x_t, w_t, out], [x, w], expected, 1e-4, 1e-4)


def test_conv_tiles_by_shape() -> None:
    # several channel blocks share each broadcast input: 6 columns x 4 blocks on AVX-512, 4 x 2 on AVX2
    assert conv2d_nchwc_tile([1, 4, 56, 56, 16], [4, 3, 3, 16], AVX512, 16) == NCHWcTile(6, 4, True, 0, True)
    assert conv2d_nchwc_tile([1, 16, 56, 56, 16], [4, 1, 1, 16], AVX512, 16) == NCHWcTile(6, 4, False, 0, True)
    assert conv2d_nchwc_tile([1, 8, 56, 56, 8], [8, 3, 3, 8], AVX2, 8) == NCHWcTile(4, 2, True, 0, True)
    # a 512x512x3x3 kernel (9 MiB) is larger than L2: the reduction is blocked so a kernel block stays in L1
    assert conv2d_nchwc_tile([1, 32, 7, 7, 16], [32, 3, 3, 16], AVX512, 16) == NCHWcTile(6, 4, True, 1)
    # 17 and 7 columns: tiles and a tail (split off by partition_tails)
    assert conv2d_nchwc_tile([1, 4, 17, 17, 16], [4, 3, 3, 16], AVX512, 16).reg_n == 6
    assert conv2d_nchwc_tile([1, 64, 7, 7, 8], [64, 3, 3, 8], AVX2, 8).reg_n == 5
    # blocking the reduction by all of its blocks is no blocking: the tile accumulates in registers
    assert conv2d_nchwc_tile([1, 125, 13, 13, 8], [64, 1, 1, 8], AVX2, 8) == NCHWcTile(11, 1, False, 0)
    # a 1x1 kernel that fits L2 over an input that does not: rows outside the channel tiles read the input once
    assert conv2d_nchwc_tile([1, 8, 56, 56, 8], [32, 1, 1, 8], AVX2, 8).rows_outer
    assert not conv2d_nchwc_tile([1, 8, 7, 7, 8], [32, 1, 1, 8], AVX2, 8).rows_outer
    strided = conv2d_nchwc_tile([1, 32, 25, 25, 8], [12, 5, 5, 8], AVX2, 8, stride=2)
    assert (strided.reg_n, strided.oc_chunks) == (5, 2)
    # rows narrower than a tile: 2 rows x 2 columns x 4 blocks, each weight vector feeding 4 columns (2 x 8 blocks: 2)
    assert conv2d_nchwc_tile([1, 16, 2, 2, 16], [16, 3, 3, 16], AVX512, 16) == NCHWcTile(2, 4, True, 0, False, 2)
    assert conv2d_nchwc_tile([1, 16, 8, 1, 16], [16, 3, 1, 16], AVX512, 16).reg_h == 4
    assert conv2d_nchwc_tile([1, 32, 7, 7, 16], [32, 3, 3, 16], AVX512, 16).reg_h == 1  # 7 columns x 2 blocks
    assert row_tile(3, 3, 16, 1, 29, 4) == (1, 4)  # 3 rows x 3 x 2 blocks: 18 per 11 loads; 3 x 4: 12 per 7


def test_register_tile_most_multiply_adds_per_load() -> None:
    # AVX2: 13 registers for accumulators, weight vectors and the broadcast input
    assert register_tile(56, 8, 1, 13) == (4, 2)  # 16 multiply-adds per 12 loads; (8, 1): 8 per 9
    assert register_tile(12, 64, 1, 13) == (4, 2)  # 3 x 4 needs 12 accumulators + 4 weights + 1
    assert register_tile(14, 64, 1, 13) == (2, 4)  # divides the row; 4 x 2 leaves a tail
    assert register_tile(7, 64, 1, 13) == (5, 2)  # 5 + a tail of 2: 14 per 11 loads; (7, 1): 7 per 8
    assert register_tile(24, 3, 1, 13) == (3, 3)  # channel blocks divide the output channels
    assert register_tile(8, 1, 1, 13) == (8, 1)
    assert register_tile(1, 4, 1, 13) == (1, 4)
    assert register_tile(56, 4, 1, 29) == (6, 4)  # AVX-512
    assert conv2d_nchw_tile(64, 56, 56, AVX512, 16) == NCHWTile(4, 4, 14)
    assert conv2d_nchw_tile(5, 7, 7, AVX512, 16) == NCHWTile(5, 1, 7)
    # grouped: the tile's blocks stay in one group (17 blocks per group: one block), then the whole row
    def grouped(sizes: list[int], reduce_sizes: list[int], groups: int) -> tuple[int, int]:
        tile = conv2d_nchwc_tile(sizes, reduce_sizes, AVX2, 8, groups=groups)
        return tile.reg_n, tile.oc_chunks

    assert grouped([1, 68, 14, 14, 4], [17, 1, 1, 4], 4) == (14, 1)
    assert grouped([1, 68, 7, 7, 8], [17, 1, 1, 8], 4) == (7, 1)
    assert grouped([1, 16, 14, 14, 8], [8, 1, 1, 8], 2) == (2, 4)  # 8 blocks per group
    # depthwise columns: a power of two of at least half the lanes, else the vector factor
    assert [depthwise_vector_width(ow, 8) for ow in (28, 56, 14, 7, 12)] == [4, 8, 7, 7, 4]
    assert [depthwise_vector_width(ow, 16) for ow in (28, 112, 14)] == [14, 16, 14]


# ---------------------------------------------------------------------------------------------------------------------
# pooling, softmax, normalization, reductions, injective
@pytest.mark.parametrize(("size", "kernel", "stride", "padding", "pool_type"), [
    ((32, 32), 3, 2, 1, "max"),
    ((15, 17), 2, 2, 0, "avg"),
    ((7, 7), 3, 1, 1, "avg"),
])
def test_pool2d(size: tuple[int, int], kernel: int, stride: int, padding: int, pool_type: str) -> None:
    x_t = te.placeholder((1, 16, *size), name="data")
    out = ops.pool2d(x_t, kernel, stride, padding, pool_type)
    x = random_data(RNG, _ints(x_t))
    expected = reference.pool2d_python(x, kernel, stride, padding, pool_type)
    build_and_check(schedule_pool([out]), [x_t, out], [x], expected, 1e-5, 1e-5)


@pytest.mark.parametrize(("size", "stride", "pool_type"), [
    ((28, 28), 2, "avg"), ((13, 11), 2, "max"), ((14, 14), 1, "avg"), ((9, 12), (1, 2), "max"),
])
def test_pool2d_window_tiles_with_epilogue(size: tuple[int, int], stride: object, pool_type: str) -> None:
    """A pooling window followed by an activation: the window accumulates in a local tile computed inside the
    activation's loops (the average's division and the ReLU run on the tile)."""
    x_t = te.placeholder((1, 5, *size), name="data")
    pooled = ops.pool2d(x_t, 3, stride, 1, pool_type)
    out = te.compute(pooled.shape, lambda *i: te.max(pooled[i], 0.0), name="relu")
    x = random_data(RNG, _ints(x_t))
    expected = np.maximum(reference.pool2d_python(x, 3, stride, 1, pool_type), 0.0)
    s = schedule_pool([out])
    assert "scope=local" in str(tcomp.lower(s, [x_t, out]))
    build_and_check(s, [x_t, out], [x], expected, 1e-5, 1e-5)


@pytest.mark.parametrize("pool_type", ["avg", "max"])
def test_global_pool(pool_type: str) -> None:
    x_t = te.placeholder((2, 32, 7, 7), name="data")
    out = ops.global_pool(x_t, pool_type)
    x = random_data(RNG, (2, 32, 7, 7))
    reduce = np.mean if pool_type == "avg" else np.max
    build_and_check(schedule_pool([out]), [x_t, out], [x], reduce(x, axis=(2, 3), keepdims=True), 1e-5, 1e-5)


@pytest.mark.parametrize(("shape", "axis", "log"), [((64, 128), -1, False), ((7, 33), -1, True),
                                                    ((2, 3, 16, 16), 1, False)])
def test_softmax(shape: tuple[int, ...], axis: int, log: bool) -> None:
    x_t = te.placeholder(shape, name="X")
    out = ops.log_softmax(x_t, axis) if log else ops.softmax(x_t, axis)
    x = random_data(RNG, shape, low=-3, high=3)
    python = reference.log_softmax_python if log else reference.softmax_python
    build_and_check(schedule_softmax([out]), [x_t, out], [x], python(x, axis), 1e-5, 1e-5)


@pytest.mark.parametrize(("shape", "axis"), [((16, 256), -1), ((5, 7, 33), (1, 2))])
def test_layer_norm(shape: tuple[int, ...], axis: object) -> None:
    axes = (axis,) if isinstance(axis, int) else axis
    norm_shape = tuple(shape[a] for a in axes)
    x_t, g_t, b_t = (te.placeholder(shape, name="X"), te.placeholder(norm_shape, name="gamma"),
                     te.placeholder(norm_shape, name="beta"))
    out = ops.layer_norm(x_t, g_t, b_t, axis)
    x, g, b = random_data(RNG, shape), random_data(RNG, norm_shape), random_data(RNG, norm_shape)
    expected = reference.layer_norm_python(x, g, b, axis)
    build_and_check(schedule_layer_norm([out]), [x_t, g_t, b_t, out], [x, g, b], expected, 1e-4, 1e-4)


@pytest.mark.parametrize(("shape", "axis", "reducer"), [
    ((32, 64), 1, "sum"),  # contiguous: vectorized partial sums (rfactor)
    ((64, 48), 0, "max"),  # outer: vectorized along the kept axis
    ((3, 17, 19), (0, 2), "sum"),
    ((4, 96), None, "sum"),
    ((9, 32), 1, "mean"),
])
def test_reductions(shape: tuple[int, ...], axis: object, reducer: str) -> None:
    x_t = te.placeholder(shape, name="X")
    out = getattr(ops, reducer)(x_t, axis)
    x = random_data(RNG, shape)
    expected = np.asarray(getattr(np, reducer)(x.astype(np.float64), axis=axis), dtype=np.float32)
    build_and_check(schedule_reduce([out]), [x_t, out], [x], expected, 1e-5, 1e-5)


@pytest.mark.parametrize("shape", [(2, 64, 56, 56), (3, 5, 7), (1000,), (2, 3, 4, 5, 16)])
def test_injective_chain(shape: tuple[int, ...]) -> None:
    x_t, y_t = te.placeholder(shape, name="X"), te.placeholder(shape[-1:], name="Y")
    out = ops.sigmoid(ops.multiply(ops.add(x_t, y_t), 2.0))
    x, y = random_data(RNG, shape), random_data(RNG, shape[-1:])
    build_and_check(schedule_injective([out]), [x_t, y_t, out], [x, y], 1 / (1 + np.exp(-2 * (x + y))), 1e-5, 1e-6)


def test_transpose_and_reshape() -> None:
    x_t = te.placeholder((6, 8, 10), name="X")
    out = ops.reshape(ops.transpose(x_t, (2, 0, 1)), (10, 48))
    x = random_data(RNG, (6, 8, 10))
    build_and_check(schedule_injective([out]), [x_t, out], [x], x.transpose(2, 0, 1).reshape(10, 48))


def test_factor_helpers() -> None:
    assert divisors(56) == [1, 2, 4, 7, 8, 14, 28, 56]
    assert largest_divisor(56, 16) == 14 and largest_divisor(13, 12) == 1
    assert vector_factor(64, 16) == 16 and vector_factor(56, 16) == 14 and vector_factor(13, 16) == 13
    assert vector_factor(37, 16) is None
    host = CpuTarget.of(Target("llvm"))
    assert host.lanes("float32") == host.vector_bits // 32 and host.lanes("float64") == host.vector_bits // 64
