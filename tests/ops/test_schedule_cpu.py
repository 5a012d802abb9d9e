"""``schedule_cpu`` on small fused groups of operators: what it inlines, which stage hosts which, and results
against numpy; argument errors."""

from __future__ import annotations

import numpy as np
import pytest

import tcomp
from tcomp import Target, ops, te
from tcomp.backend.testing import build_and_check
from tcomp.ir.functor import post_order_visit
from tcomp.ir.stmt import For, ForKind
from tcomp.ops import OpError
from tcomp.ops import testing as reference
from tcomp.ops.cpu import (
    NCHWcTile,
    schedule_conv2d_nchwc,
    schedule_cpu,
    schedule_injective,
    schedule_reduce,
    schedule_softmax,
)
from tcomp.ops.cpu.conv2d import nchwc_tiles
from tcomp.ops.nchwc import conv2d_nchwc, layout_transform
from tcomp.ops.testing import random_data
from tcomp.schedule.relation import AttachType

RNG = np.random.default_rng(800)
TWO_CORES = Target("llvm -num-cores=2")


def _blocked(x: np.ndarray, block: int) -> np.ndarray:
    n, c, h, w = x.shape
    return np.ascontiguousarray(x.reshape(n, c // block, block, h, w).transpose(0, 1, 3, 4, 2))


def _packed(w: np.ndarray, ic: int, oc: int) -> np.ndarray:
    o, i, kh, kw = w.shape
    return np.ascontiguousarray(w.reshape(o // oc, oc, i // ic, ic, kh, kw).transpose(0, 2, 4, 5, 3, 1))


def test_conv_bias_relu_nchw_is_one_pass() -> None:
    x_t, w_t, b_t = (te.placeholder((1, 8, 12, 12), name="x"), te.placeholder((16, 8, 3, 3), name="w"),
                     te.placeholder((16,), name="b"))
    conv = ops.conv2d_nchw(x_t, w_t, 1, 1)
    out = ops.relu(ops.bias_add(conv, b_t))
    s = schedule_cpu([out])
    assert s[conv].attach_type is AttachType.SCOPE and s[conv].attach_stage is s[out]  # computed per output tile
    assert s[out.op.input_tensors()[0]].attach_type is AttachType.INLINE  # the bias_add
    x, w, b = random_data(RNG, (1, 8, 12, 12)), random_data(RNG, (16, 8, 3, 3)), random_data(RNG, (16,))
    expected = np.maximum(reference.conv2d_nchw_python(x, w, 1, 1) + b[None, :, None, None], 0)
    build_and_check(s, [x_t, w_t, b_t, out], [x, w, b], expected, 1e-4, 1e-4)


def test_conv_nchwc_with_blocked_bias_relu() -> None:
    x_t = te.placeholder((1, 2, 9, 9, 16), name="x")
    w_t = te.placeholder((3, 2, 3, 3, 16, 16), name="w")
    b_t = te.placeholder((1, 3, 1, 1, 16), name="b")
    conv = conv2d_nchwc(x_t, w_t, 1, 1)
    out = ops.relu(ops.add(conv, b_t))
    s = schedule_conv2d_nchwc([out])
    assert s[conv].attach_stage is s[out]
    x, w, b = random_data(RNG, (1, 32, 9, 9)), random_data(RNG, (48, 32, 3, 3)), random_data(RNG, (48,))
    expected = np.maximum(reference.conv2d_nchw_python(x, w, 1, 1) + b[None, :, None, None], 0)
    arrays = [_blocked(x, 16), _packed(w, 16, 16), np.ascontiguousarray(b.reshape(1, 3, 1, 1, 16))]
    build_and_check(s, [x_t, w_t, b_t, out], arrays, _blocked(expected, 16), 1e-4, 1e-4)


@pytest.mark.parametrize("kernel", [3, 1])
def test_conv_nchwc_over_a_symbolic_batch_hosts_its_epilogue(kernel: int) -> None:
    """A symbolic batch (a model compiled once for it): the convolution's register tiles are chosen as for one image
    and still computed per tile of the epilogue (a bias and ReLU in one pass, not a pass of their own over the
    output); each batch size against numpy."""
    batch = te.var("batch", "int32", min_value=1)
    x_t = te.placeholder((batch, 2, 9, 9, 16), name="x")
    w_t = te.placeholder((3, 2, kernel, kernel, 16, 16), name="w")
    b_t = te.placeholder((1, 3, 1, 1, 16), name="b")
    conv = conv2d_nchwc(x_t, w_t, 1, kernel // 2)
    out = ops.relu(ops.add(conv, b_t))
    s = schedule_cpu([out])
    assert s[conv].attach_stage is s[out]
    module = tcomp.build(s, [x_t, w_t, b_t, out])
    w, b = random_data(RNG, (48, 32, kernel, kernel)), random_data(RNG, (48,))
    for images in (3, 1, 2):
        x = random_data(RNG, (images, 32, 9, 9))
        expected = np.maximum(reference.conv2d_nchw_python(x, w, 1, kernel // 2) + b[None, :, None, None], 0)
        got = np.empty((images, 3, 9, 9, 16), np.float32)
        module(_blocked(x, 16), _packed(w, 16, 16), np.ascontiguousarray(b.reshape(1, 3, 1, 1, 16)), got)
        np.testing.assert_allclose(got, _blocked(expected, 16), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("channels", "size", "kernel"), [(32, 7, 3), (16, 14, 1)])
def test_nchw_in_nchw_out_through_blocked_conv(channels: int, size: int, kernel: int) -> None:
    """NCHW -> NCHW16c -> conv2d_nchwc (+ bias, relu in blocked layout) -> NCHW: the input transform is fused into
    the padding (or the convolution) and the output transform hosts the convolution's tiles."""
    x_t = te.placeholder((1, channels, size, size), name="x")
    w_t = te.placeholder((2, channels // 16, kernel, kernel, 16, 16), name="w")
    b_t = te.placeholder((1, 2, 1, 1, 16), name="b")
    conv = conv2d_nchwc(layout_transform(x_t, "NCHW", "NCHW16c"), w_t, 1, kernel // 2)
    out = layout_transform(ops.relu(ops.add(conv, b_t)), "NCHW16c", "NCHW")
    s = schedule_cpu([out])
    assert s[conv].attach_stage is s[out]
    x, w, b = random_data(RNG, (1, channels, size, size)), random_data(RNG, (32, channels, kernel, kernel)), \
        random_data(RNG, (32,))
    expected = np.maximum(reference.conv2d_nchw_python(x, w, 1, kernel // 2) + b[None, :, None, None], 0)
    arrays = [x, _packed(w, 16, 16), np.ascontiguousarray(b.reshape(1, 2, 1, 1, 16))]
    build_and_check(s, [x_t, w_t, b_t, out], arrays, expected, 1e-4, 1e-4)


@pytest.mark.parametrize("unblock", [False, True])
@pytest.mark.parametrize(("reg_n", "chunks", "rows_outer", "stride"), [
    (4, 2, True, 1), (4, 2, False, 1), (3, 3, True, 2), (5, 1, True, 1), (2, 6, False, 1),
])
def test_conv_nchwc_register_tiles_and_loop_orders(reg_n: int, chunks: int, rows_outer: bool, stride: int,
                                                   unblock: bool) -> None:
    """Tiles of several channel blocks, with the rows outside or inside the channel tiles, widths the columns do not
    divide (a guarded tail), against numpy: written blocked (bias + relu epilogue) or NCHW (the unblocking transform
    hosts the tiles)."""
    x_t = te.placeholder((1, 3, 11, 13, 4), name="x")
    w_t = te.placeholder((6, 3, 3, 3, 4, 4), name="w")
    b_t = te.placeholder((1, 6, 1, 1, 4), name="b")
    conv = conv2d_nchwc(x_t, w_t, stride, 1)
    out = ops.relu(ops.add(conv, b_t))
    if unblock:
        out = layout_transform(out, "NCHW4c", "NCHW")

    def choose(op: object, workload: object) -> NCHWcTile:
        return NCHWcTile(reg_n, chunks, True, 0, rows_outer)

    with nchwc_tiles(choose):
        s = schedule_cpu([out], Target("llvm -num-cores=2"))
    assert s[conv].attach_stage is s[out]
    x, w, b = random_data(RNG, (1, 12, 11, 13)), random_data(RNG, (24, 12, 3, 3)), random_data(RNG, (24,))
    expected = np.maximum(reference.conv2d_nchw_python(x, w, stride, 1) + b[None, :, None, None], 0)
    arrays = [_blocked(x, 4), _packed(w, 4, 4), np.ascontiguousarray(b.reshape(1, 6, 1, 1, 4))]
    build_and_check(s, [x_t, w_t, b_t, out], arrays, expected if unblock else _blocked(expected, 4), 1e-4, 1e-4)


@pytest.mark.parametrize(("size", "reg_h", "ic_chunks"), [((2, 2), 2, 0), ((2, 2), 2, 1), ((6, 1), 3, 0),
                                                       ((6, 1), 2, 2), ((5, 2), 5, 0)])
def test_conv_nchwc_register_tiles_of_whole_rows(size: tuple[int, int], reg_h: int, ic_chunks: int) -> None:
    """Tiles of several narrow rows (``reg_h``), accumulating in registers or in the output (a blocked reduction),
    against numpy."""
    h, w = size
    x_t = te.placeholder((1, 3, h, w, 4), name="x")
    w_t = te.placeholder((6, 3, 3, 3, 4, 4), name="w")
    b_t = te.placeholder((1, 6, 1, 1, 4), name="b")
    conv = conv2d_nchwc(x_t, w_t, 1, 1)
    out = ops.relu(ops.add(conv, b_t))

    def choose(op: object, workload: object) -> NCHWcTile:
        return NCHWcTile(w, 2, True, ic_chunks, False, reg_h)

    with nchwc_tiles(choose):
        s = schedule_cpu([out], Target("llvm -num-cores=2"))
    x, wt, b = random_data(RNG, (1, 12, h, w)), random_data(RNG, (24, 12, 3, 3)), random_data(RNG, (24,))
    expected = np.maximum(reference.conv2d_nchw_python(x, wt, 1, 1) + b[None, :, None, None], 0)
    arrays = [_blocked(x, 4), _packed(wt, 4, 4), np.ascontiguousarray(b.reshape(1, 6, 1, 1, 4))]
    build_and_check(s, [x_t, w_t, b_t, out], arrays, _blocked(expected, 4), 1e-4, 1e-4)


def test_elementwise_producer_of_a_conv_is_inlined_into_its_padding() -> None:
    x_t, w_t = te.placeholder((1, 4, 10, 10), name="x"), te.placeholder((8, 4, 3, 3), name="w")
    activated = ops.relu(x_t)
    conv = ops.conv2d_nchw(activated, w_t, 1, 1)
    s = schedule_cpu([conv])
    assert s[activated].attach_type is AttachType.INLINE
    pad = conv.op.input_tensors()[0]
    assert s[pad].attach_type is AttachType.ROOT  # computed once, in parallel, so the convolution reads no bounds
    x, w = random_data(RNG, (1, 4, 10, 10)), random_data(RNG, (8, 4, 3, 3))
    build_and_check(s, [x_t, w_t, conv], [x, w], reference.conv2d_nchw_python(np.maximum(x, 0), w, 1, 1), 1e-4,
                    1e-4)


def test_conv_that_is_also_an_output_is_not_fused() -> None:
    x_t, w_t = te.placeholder((1, 4, 8, 8), name="x"), te.placeholder((4, 4, 3, 3), name="w")
    conv = ops.conv2d_nchw(x_t, w_t, 1, 1)
    activated = ops.relu(conv)
    s = schedule_cpu([conv, activated])
    assert s[conv].attach_type is AttachType.ROOT
    x, w = random_data(RNG, (1, 4, 8, 8)), random_data(RNG, (4, 4, 3, 3))
    expected = reference.conv2d_nchw_python(x, w, 1, 1)
    build_and_check(s, [x_t, w_t, conv, activated], [x, w], [expected, np.maximum(expected, 0)], 1e-4, 1e-4)


def test_sum_of_two_convs_hosts_one() -> None:
    # rows of 16 fill the vectors of AVX2 and AVX-512 alike (a 1x1 convolution over rows that do not would run by
    # output planes, conv_plane.schedule_pointwise_plane, computed per tile of channels of its epilogue)
    x_t = te.placeholder((1, 4, 8, 16), name="x")
    w1, w2 = te.placeholder((8, 4, 3, 3), name="w1"), te.placeholder((8, 4, 1, 1), name="w2")
    conv1, conv2 = ops.conv2d_nchw(x_t, w1, 1, 1, name="c1"), ops.conv2d_nchw(x_t, w2, 1, 0, name="c2")
    out = ops.add(conv1, conv2)
    s = schedule_cpu([out])
    attached = [c for c in (conv1, conv2) if s[c].attach_type is AttachType.SCOPE]
    assert len(attached) == 1
    x, a, b = random_data(RNG, (1, 4, 8, 16)), random_data(RNG, (8, 4, 3, 3)), random_data(RNG, (8, 4, 1, 1))
    expected = reference.conv2d_nchw_python(x, a, 1, 1) + reference.conv2d_nchw_python(x, b, 1, 0)
    build_and_check(s, [x_t, w1, w2, out], [x, a, b], expected, 1e-4, 1e-4)


def test_dense_add_relu() -> None:
    x_t, w_t, r_t = te.placeholder((8, 64), name="x"), te.placeholder((48, 64), name="w"), \
        te.placeholder((8, 48), name="r")
    out = ops.relu(ops.add(ops.dense(x_t, w_t), r_t))
    s = schedule_cpu([out])
    x, w, r = random_data(RNG, (8, 64)), random_data(RNG, (48, 64)), random_data(RNG, (8, 48))
    build_and_check(s, [x_t, w_t, r_t, out], [x, w, r], np.maximum(x @ w.T + r, 0), 1e-4, 1e-4)


@pytest.mark.parametrize(("m", "fused"), [(8, True), (768, False)])
def test_matmul_bias_relu(m: int, fused: bool) -> None:
    """Few rows: the product's tiles are computed inside the epilogue's loop. Many rows (and a large product): the
    product accumulates in place across K slices and the epilogue is its own pass."""
    a_t, b_t, c_t = te.placeholder((m, 256), name="a"), te.placeholder((256, 96), name="b"), \
        te.placeholder((96,), name="c")
    product = ops.matmul(a_t, b_t)
    out = ops.relu(ops.add(product, c_t))
    s = schedule_cpu([out])
    assert (s[product].attach_stage is s[out]) is fused
    a, b, c = random_data(RNG, (m, 256)), random_data(RNG, (256, 96)), random_data(RNG, (96,))
    build_and_check(s, [a_t, b_t, c_t, out], [a, b, c], np.maximum(a @ b + c, 0), 1e-4, 1e-4)


def test_softmax_computes_the_exponentials_once() -> None:
    x_t = te.placeholder((16, 64), name="x")
    out = ops.softmax(ops.multiply(x_t, 0.5))
    s = schedule_softmax([out])
    exp_stage = next(st for st in s.stages if st.name.endswith("_exp"))
    assert exp_stage.attach_type is AttachType.SCOPE and exp_stage.attach_stage is s[out]  # once per row, kept
    scaled = next(st for st in s.stages if st.name.startswith("T_multiply"))
    assert scaled.attach_type is AttachType.INLINE
    x = random_data(RNG, (16, 64), low=-4, high=4)
    build_and_check(s, [x_t, out], [x], reference.softmax_python(x * 0.5), 1e-5, 1e-6)


def test_reduce_with_producer_and_consumer() -> None:
    x_t = te.placeholder((24, 64), name="x")
    out = ops.sqrt(ops.sum(ops.square(x_t), axis=1))
    s = schedule_reduce([out])
    x = random_data(RNG, (24, 64))
    build_and_check(s, [x_t, out], [x], np.sqrt((x.astype(np.float64) ** 2).sum(axis=1)), 1e-5, 1e-6)


def test_symbolic_shapes_fall_back_to_plain_loops() -> None:
    n = te.var("n")
    a_t, b_t = te.placeholder((n, 32), name="A"), te.placeholder((32, 16), name="B")
    out = ops.relu(ops.matmul(a_t, b_t))
    module = tcomp.build(schedule_cpu([out]), [a_t, b_t, out])
    for rows in (1, 5):
        a, b = random_data(RNG, (rows, 32)), random_data(RNG, (32, 16))
        result = np.zeros((rows, 16), np.float32)
        module(a, b, result)
        np.testing.assert_allclose(result, np.maximum(a @ b, 0), rtol=1e-4, atol=1e-5)


def test_a_parallel_loop_spans_one_symbolic_dimension() -> None:
    """An elementwise kernel over ``[b, 4, s, 32]`` (a batch of prompts' heads, both sizes symbolic): the parallel
    loop fuses ``b`` and the heads only (``b*4`` stays 32-bit); the rows of ``s`` are a loop of their own inside,
    whose index divides nothing."""
    b, s = te.var("b", max_value=1 << 20), te.var("s", max_value=1 << 20)
    x_t = te.placeholder((b, 4, s, 32), name="X")
    out = te.compute((b, 4, s, 32), lambda i, h, j, e: x_t[i, h, j, e] * 2.0, name="out")
    sch = schedule_cpu([out], TWO_CORES)
    source = str(tcomp.lower(sch, [x_t, out], simple_mode=True))
    assert "parallel(0, b * 4)" in source and "range(0, s)" in source and "int64(s) * int64(b" not in source
    module = tcomp.build(sch, [x_t, out], target=TWO_CORES)
    x = random_data(RNG, (3, 4, 5, 32))
    result = np.zeros_like(x)
    module(x, result)
    np.testing.assert_array_equal(result, x * 2)


def test_errors() -> None:
    x_t = te.placeholder((4, 4), name="x")
    with pytest.raises(OpError, match="at least one output"):
        schedule_cpu([])
    with pytest.raises(OpError, match="must be tensors"):
        schedule_cpu([x_t.op])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="need an llvm target"):
        schedule_cpu([ops.relu(x_t)], Target("cuda"))
    with pytest.raises(OpError, match="has no conv2d_nchwc operator"):
        schedule_conv2d_nchwc([ops.relu(x_t)])
    with pytest.raises(OpError, match="is a reduction"):
        schedule_injective([ops.sum(x_t, 0)])
    with pytest.raises(OpError, match="has no reduction"):
        schedule_reduce([ops.relu(x_t)])


def test_two_convs_in_one_group() -> None:
    x_t = te.placeholder((1, 8, 10, 10), name="x")
    w1, w2 = te.placeholder((8, 8, 3, 3), name="w1"), te.placeholder((4, 8, 3, 3), name="w2")
    out = ops.conv2d_nchw(ops.relu(ops.conv2d_nchw(x_t, w1, 1, 1, name="c1")), w2, 1, 1, name="c2")
    x, a, b = random_data(RNG, (1, 8, 10, 10)), random_data(RNG, (8, 8, 3, 3)), random_data(RNG, (4, 8, 3, 3))
    first = np.maximum(reference.conv2d_nchw_python(x, a, 1, 1), 0)
    build_and_check(schedule_cpu([out]), [x_t, w1, w2, out], [x, a, b], reference.conv2d_nchw_python(first, b, 1, 1),
                    1e-4, 1e-4)


def test_dense_then_softmax() -> None:
    x_t, w_t = te.placeholder((4, 64), name="x"), te.placeholder((32, 64), name="w")
    out = ops.softmax(ops.dense(x_t, w_t))
    x, w = random_data(RNG, (4, 64)), random_data(RNG, (32, 64))
    build_and_check(schedule_cpu([out]), [x_t, w_t, out], [x, w], reference.softmax_python(x @ w.T), 1e-4, 1e-6)


def test_other_dtypes_and_scalar_results() -> None:
    a_t, b_t = te.placeholder((9, 33), "int32", name="A"), te.placeholder((33, 40), "int32", name="B")
    product = ops.matmul(a_t, b_t)
    a = RNG.integers(-5, 5, (9, 33)).astype("int32")
    b = RNG.integers(-5, 5, (33, 40)).astype("int32")
    build_and_check(schedule_cpu([product]), [a_t, b_t, product], [a, b], a @ b)
    x_t, w_t = te.placeholder((1, 4, 9, 9), "float64", name="X"), te.placeholder((6, 4, 3, 3), "float64", name="W")
    conv = ops.conv2d_nchw(x_t, w_t, 1, 1)
    x, w = RNG.random((1, 4, 9, 9)), RNG.random((6, 4, 3, 3))
    build_and_check(schedule_cpu([conv]), [x_t, w_t, conv], [x, w], reference.conv2d_nchw_python(x, w, 1, 1), 1e-10)
    v_t = te.placeholder((64,), name="v")
    total = ops.sum(v_t)
    v = random_data(RNG, (64,))
    build_and_check(schedule_cpu([total]), [v_t, total], [v], np.asarray(v.sum(dtype=np.float64), np.float32), 1e-5)


@pytest.mark.parametrize(("shape", "row_loop"), [((1, 6, 28, 27), True), ((2, 1, 2, 2000), False)])
def test_blocked_broadcast_runs_rows_of_vectors(shape: tuple[int, ...], row_loop: bool) -> None:
    """A broadcast over a blocked layout (a per-channel scale of a squeeze-and-excitation block): each element of the
    innermost axis is one channel block, one vector. With enough rows for the cores, the parallel loop runs over
    rows and a serial loop over a row's vectors (one division of the parallel index per row, not per vector)."""
    lanes = TWO_CORES.vector_bits // 32
    n, c, h, w = shape
    x_t, s_t = te.placeholder((n, c, h, w, lanes), name="x"), te.placeholder((n, c, 1, 1, lanes), name="s")
    out = ops.multiply(x_t, s_t)
    s = schedule_cpu([out], TWO_CORES)
    func = tcomp.lower(s, [x_t, s_t, out], target=TWO_CORES)
    loops: list[For] = []
    post_order_visit(func.body, lambda node: loops.append(node) if isinstance(node, For) else None)
    parallel = [loop for loop in loops if loop.kind is ForKind.PARALLEL]
    assert len(parallel) == 1
    inner = parallel[0].body
    assert isinstance(inner, For) == row_loop
    if row_loop:
        assert inner.extent.value == w
    x, scale = random_data(RNG, (n, c, h, w, lanes)), random_data(RNG, (n, c, 1, 1, lanes))
    build_and_check(s, [x_t, s_t, out], [x, scale], x * scale, 1e-6, 1e-6)
