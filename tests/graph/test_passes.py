"""Each graph pass on small graphs: what it rewrites, what it leaves, and that results do not change."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tcomp.graph as tg
from tcomp.graph.infer import infer_types
from tcomp.graph.ir import Graph, TensorType, make_node, verify_graph
from tcomp.graph.passes import alter_layout, fold_constants, fuse_ops, plan_memory, simplify
from tcomp.graph.passes.layout_cleanup import cancel_layout_transforms
from tcomp.graph.passes.plan_memory import inplace_pairs, no_plan
from tcomp.graph.passes.simplify import cropped_taps, live_taps, tap_bands
from tcomp.ir.dtype import to_numpy as dt_numpy
from tcomp.ops.nchwc import choose_channel_block
from tcomp.target import as_target

F32 = "float32"
fold_module = importlib.import_module("tcomp.graph.passes.fold_constants")
RNG = np.random.default_rng(0)


def graph(nodes: list[tg.Node], inputs: dict[str, tuple[int, ...]], outputs: list[str],
          params: dict[str, np.ndarray] | None = None) -> Graph:
    types = {k: TensorType(v, F32) for k, v in inputs.items()}
    g = infer_types(Graph("g", tuple(inputs), tuple(outputs), tuple(nodes), params or {}, types))
    verify_graph(g)
    return g


def run(g: Graph, **inputs: np.ndarray) -> list[np.ndarray]:
    executor = tg.build_executor(g)
    return executor.run([inputs[name] for name in g.inputs])  # type: ignore[return-value]


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def ops_of(g: Graph) -> list[str]:
    return [n.op for n in g.nodes]


# ---------------------------------------------------------------------------------------------------------------------
# fold_constants
def test_fold_shape_arithmetic_and_constant_subgraphs() -> None:
    g = graph([
        make_node("shape_of", "shape", ["x"], ["s"]),
        make_node("take", "dim", ["s", "one"], ["d"], axis=0),
        make_node("cast", "dimf", ["d"], ["df"], dtype="float32"),
        make_node("sqrt", "root", ["w"], ["w2"]),
        make_node("multiply", "scaled", ["w2", "df"], ["w3"]),
        make_node("add", "out", ["x", "w3"], ["y"]),
    ], {"x": (2, 5)}, ["y"], {"one": np.array(1, np.int64), "w": np.abs(rand(5))})
    folded = fold_constants(g)
    assert ops_of(folded) == ["add"]
    (w3,) = [n for n in folded.nodes[0].inputs if n != "x"]
    np.testing.assert_allclose(folded.params[w3], np.sqrt(g.params["w"]) * 5, rtol=1e-6)
    x = rand(2, 5)
    np.testing.assert_allclose(run(folded, x=x)[0], x + np.sqrt(g.params["w"]) * 5, rtol=1e-6)


def test_fold_weights_made_by_constant_of_shape() -> None:
    g = graph([
        make_node("constant_of_shape", "fill", [], ["ones"], shape=(3, 4), value=1.5, dtype="float32"),
        make_node("multiply", "mul", ["x", "ones"], ["y"]),
    ], {"x": (3, 4)}, ["y"])
    folded = fold_constants(g)
    assert ops_of(folded) == ["multiply"]
    assert any(np.array_equal(v, np.full((3, 4), 1.5, np.float32)) for v in folded.params.values())


def special_values(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """Random values of ``dtype`` with infinities, NaNs, signed zeros, subnormals and the extremes among them."""
    values = RNG.standard_normal(shape).astype(dtype)
    info = np.finfo(dtype)
    specials = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, info.tiny / 4, -info.tiny / 3, info.max, info.min,
                         1.0, 3.0], dtype)
    flat = values.reshape(-1)
    picks = RNG.choice(flat.size, size=min(flat.size, 3 * len(specials)), replace=False)
    flat[picks] = np.resize(specials, len(picks))
    return values


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("op", "shapes"), [
    ("add", [(3, 1, 5), (4, 5)]), ("subtract", [(6,), (2, 6)]), ("multiply", [(2, 3, 4), (2, 3, 4)]),
    ("multiply", [(1,), (7, 3)]), ("divide", [(4, 5), (5,)]), ("divide", [(5,), (5,)]), ("divide", [(), ()]),
    ("sqrt", [(3, 4)]), ("negative", [(3, 4)])])
def test_folding_in_numpy_gives_the_kernels_bits(op: str, shapes: list[tuple[int, ...]], dtype: str) -> None:
    """The float operators that ``fold_constants`` evaluates with numpy: the values of their compiled kernel, bit
    for bit, broadcasts, infinities, NaNs, signed zeros and subnormals included."""
    params = {f"p{i}": special_values(shape, dtype) for i, shape in enumerate(shapes)}
    types = {name: TensorType(value.shape, dtype) for name, value in params.items()}
    node = make_node(op, "n", list(params), ["y"])
    g = infer_types(Graph("g", (), ("y",), (node,), params, types))
    in_numpy = fold_module._numpy_values(g, node, params)
    assert in_numpy is not None
    assert same_bits(in_numpy[0], fold_module.evaluate_node(g, node, params, as_target(None))[0])


@pytest.mark.parametrize(("shape", "src", "dst", "dtype"), [
    ((2, 24, 3, 5), "NCHW", "NCHW8c", "float32"), ((1, 3, 4, 2, 8), "NCHW8c", "NCHW4c", "float32"),
    ((1, 2, 3, 3, 16), "NCHW16c", "NCHW", "int8"), ((32, 16, 3, 3), "OIHW", "OIHW4i8o", "bfloat16"),
    ((4, 4, 3, 3, 4, 8), "OIHW4i8o", "OIHW16i16o", "float32"), ((2, 3, 4, 5), "NCHW", "NHWC", "float32")])
def test_layout_transforms_fold_in_numpy_as_their_kernels_compute(shape: tuple[int, ...], src: str, dst: str,
                                                                   dtype: str) -> None:
    value = RNG.standard_normal(shape).astype(dt_numpy(dtype))
    node = make_node("layout_transform", "t", ["x"], ["y"], src=src, dst=dst)
    g = infer_types(Graph("g", (), ("y",), (node,), {"x": value}, {"x": TensorType(shape, dtype)}))
    in_numpy = fold_module._numpy_values(g, node, {"x": value})
    assert in_numpy is not None
    assert same_bits(in_numpy[0], fold_module.evaluate_node(g, node, {"x": value}, as_target(None))[0])


def test_fold_leaves_a_graph_without_constants_unchanged() -> None:
    g = graph([make_node("relu", "r", ["x"], ["y"])], {"x": (4,)}, ["y"])
    assert fold_constants(g) is g


# ---------------------------------------------------------------------------------------------------------------------
# simplify
def test_simplify_removes_identity_dropout_and_noop_reshape_and_cast() -> None:
    g = graph([
        make_node("identity", "i", ["x"], ["a"]),
        make_node("dropout", "d", ["a"], ["b"]),
        make_node("reshape", "r", ["b"], ["c0"], shape=(2, 3)),
        make_node("cast", "same", ["c0"], ["c"], dtype="float32"),
        make_node("relu", "relu", ["c"], ["y"]),
        make_node("identity", "o", ["y"], ["z"]),
    ], {"x": (2, 3)}, ["z"])
    simple = simplify(g)
    assert ops_of(simple) == ["relu"]
    assert simple.nodes[0].inputs == ("x",) and simple.nodes[0].outputs == ("z",)
    assert simple.outputs == ("z",)  # the graph output keeps its name; the relu now computes it


def test_simplify_keeps_an_output_that_forwards_an_input_or_another_output() -> None:
    g = graph([
        make_node("relu", "relu", ["x"], ["y"]),
        make_node("identity", "echo", ["x"], ["x_out"]),
        make_node("identity", "twice", ["y"], ["y_out"]),
    ], {"x": (2, 3)}, ["y", "y_out", "x_out"])
    simple = simplify(g)
    assert simple.outputs == ("y", "y_out", "x_out")
    assert sorted((n.op, n.inputs, n.outputs) for n in simple.nodes) == [
        ("identity", ("x",), ("x_out",)), ("identity", ("y",), ("y_out",)), ("relu", ("x",), ("y",))]


@pytest.mark.parametrize("x_shape", [(1, 24), (3, 24), (2, 2, 24), (24,), (16, 24)])
@pytest.mark.parametrize("transpose_b", [False, True])
def test_matvec_weights_pack_a_small_batch_weight_in_column_blocks(x_shape: tuple[int, ...],
                                                                   transpose_b: bool) -> None:
    """matmul(x, W) with few rows of x becomes packed_matvec over W packed in column blocks, with the same
    results; a weight stored [N, K] (transpose_b) too."""
    from tcomp.graph.passes.matvec_weights import matvec_weights
    from tcomp.ops.matvec import column_block

    w = rand(24, 10)
    stored = np.ascontiguousarray(w.T) if transpose_b else w
    g = graph([make_node("matmul", "fc", ["x", "w"], ["y"], transpose_b=transpose_b)], {"x": x_shape}, ["y"],
              {"w": stored})
    rewritten = matvec_weights(g)
    (node,) = rewritten.nodes
    block = column_block(int(np.prod(x_shape[:-1])))
    assert node.op == "packed_matvec" and node.attr("columns") == 10
    assert rewritten.params[node.inputs[1]].shape == (-(-10 // block), 24, block)
    assert "w" not in rewritten.params
    assert rewritten.type_of("y") == g.type_of("y")
    x = rand(*x_shape)
    [got] = run(rewritten, x=x)
    np.testing.assert_allclose(got, x @ w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("other_reader", [False, True])
def test_matvec_weights_pack_a_transposed_parameter(other_reader: bool) -> None:
    """matmul(x, transpose(W)), as Gemm with transB=1 imports when the transpose is too large to fold, is packed
    from W; the transpose goes unless something else reads it."""
    from tcomp.graph.passes.matvec_weights import matvec_weights

    w_nk = rand(10, 24)
    nodes = [make_node("transpose", "t", ["w"], ["wt"], perm=(1, 0)), make_node("matmul", "fc", ["x", "wt"], ["y"])]
    outputs = ["y", "wt_out"] if other_reader else ["y"]
    if other_reader:
        nodes.append(make_node("relu", "r", ["wt"], ["wt_out"]))
    g = graph(nodes, {"x": (2, 24)}, outputs, {"w": w_nk})
    rewritten = matvec_weights(g)
    ops = [n.op for n in rewritten.nodes]
    assert "packed_matvec" in ops and "matmul" not in ops
    assert ("transpose" in ops) is other_reader
    x = rand(2, 24)
    [got, *_] = run(rewritten, x=x)
    np.testing.assert_allclose(got, x @ w_nk.T, rtol=1e-5, atol=1e-5)


def test_gemm_trans_b_too_large_to_fold_streams_a_packed_weight(monkeypatch: pytest.MonkeyPatch) -> None:
    """An ONNX Gemm (transB=1, a bias) whose transposed weight exceeds the folding limit (here 0 bytes; VGG's
    classifier in practice) still compiles to one packed product, against numpy."""
    from onnx import TensorProto, helper, numpy_helper

    monkeypatch.setattr(importlib.import_module("tcomp.graph.passes.fold_constants"), "MAX_FOLD_BYTES", 0)
    w_nk, bias, x = rand(37, 50), rand(37), rand(3, 50)
    node = helper.make_node("Gemm", ["x", "W", "b"], ["y"], transB=1)
    model = helper.make_model(helper.make_graph(
        [node], "gemm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 50])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 37])],
        [numpy_helper.from_array(w_nk, "W"), numpy_helper.from_array(bias, "b")]),
        opset_imports=[helper.make_opsetid("", 13)])
    executor = tg.compile(model.SerializeToString(), "llvm")
    assert "= packed_matvec(" in str(executor.graph) and "= transpose(" not in str(executor.graph)
    [got] = executor.run([x])
    np.testing.assert_allclose(got, x @ w_nk.T + bias, rtol=1e-5, atol=1e-5)


def test_weights_built_by_constant_of_shape_fold_into_a_packed_product() -> None:
    """Weights an export builds at run time (``ConstantOfShape``, as in the onnx package's VGG-19 and ZFNet-512,
    whose 392 MiB and 288 MiB classifier weights are within the folding limit) are computed once at compile time:
    no ``constant_of_shape`` or ``transpose`` kernel runs per inference, and the Gemm streams a packed weight."""
    from onnx import TensorProto, helper, numpy_helper

    from tcomp.graph.passes.fold_constants import MAX_FOLD_BYTES

    assert MAX_FOLD_BYTES >= 4096 * 25088 * 4
    value = helper.make_tensor("v", TensorProto.FLOAT, [1], [0.25])
    nodes = [helper.make_node("ConstantOfShape", ["W_shape"], ["W"], value=value),
             helper.make_node("Gemm", ["x", "W", "b"], ["y"], transB=1)]
    x, bias = rand(1, 50), rand(37)
    model = helper.make_model(helper.make_graph(
        nodes, "gemm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 50])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 37])],
        [numpy_helper.from_array(np.array([37, 50], np.int64), "W_shape"), numpy_helper.from_array(bias, "b")]),
        opset_imports=[helper.make_opsetid("", 13)])
    executor = tg.compile(model.SerializeToString(), "llvm")
    printed = str(executor.graph)
    assert "constant_of_shape" not in printed and "= transpose(" not in printed
    [got] = executor.run([x])
    np.testing.assert_allclose(got, x @ np.full((37, 50), 0.25, np.float32).T + bias, rtol=1e-5, atol=1e-5)


def test_matvec_weights_leave_large_batches_and_computed_weights() -> None:
    from tcomp.graph.passes.matvec_weights import MATVEC_ROWS, matvec_weights

    big = graph([make_node("matmul", "fc", ["x", "w"], ["y"])], {"x": (MATVEC_ROWS + 1, 8)}, ["y"], {"w": rand(8, 4)})
    assert matvec_weights(big) is big
    computed = graph([make_node("matmul", "mm", ["x", "z"], ["y"])], {"x": (1, 8), "z": (8, 4)}, ["y"])
    assert matvec_weights(computed) is computed


def _conv_bn_graph(with_bias: bool) -> Graph:
    params = {"w": rand(8, 3, 3, 3), "scale": np.abs(rand(8)) + 0.5, "shift": rand(8), "mean": rand(8),
              "var": np.abs(rand(8)) + 0.5, "b": rand(1, 8, 1, 1)}
    nodes = [make_node("conv2d", "conv", ["x", "w"], ["c"], strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1),
                       groups=1)]
    source = "c"
    if with_bias:
        nodes.append(make_node("add", "bias", ["c", "b"], ["cb"]))
        source = "cb"
    else:
        params.pop("b")
    nodes.append(make_node("batch_norm", "bn", [source, "scale", "shift", "mean", "var"], ["y"], epsilon=1e-5))
    return graph(nodes, {"x": (1, 3, 8, 8)}, ["y"], params)


@pytest.mark.parametrize("with_bias", [False, True])
def test_batch_norm_folded_into_conv(with_bias: bool) -> None:
    g = _conv_bn_graph(with_bias)
    folded = fold_constants(simplify(g))
    assert ops_of(folded) == ["conv2d", "add"]
    x = rand(1, 3, 8, 8)
    np.testing.assert_allclose(run(folded, x=x)[0], run(g, x=x)[0], rtol=1e-4, atol=1e-4)


def test_batch_norm_kept_when_the_conv_output_is_used_elsewhere() -> None:
    g = _conv_bn_graph(False)
    extra = make_node("relu", "other", ["c"], ["z"])
    g = infer_types(Graph("g", g.inputs, ("y", "z"), (*g.nodes, extra), g.params, {"x": g.types["x"]}))
    assert "batch_norm" in ops_of(simplify(g))


def _conv1d(x: np.ndarray, w: np.ndarray, stride: int, dilation: int, before: int, after: int) -> np.ndarray:
    padded = np.concatenate([np.zeros(before), x, np.zeros(after)])
    span = (len(w) - 1) * dilation + 1
    return np.array([sum(w[t] * padded[y * stride + t * dilation] for t in range(len(w)))
                     for y in range((len(padded) - span) // stride + 1)])


@settings(max_examples=300, deadline=None)
@given(size=st.integers(1, 6), kernel=st.integers(1, 5), stride=st.integers(1, 3), dilation=st.integers(1, 3),
       before=st.integers(0, 4), after=st.integers(0, 4), seed=st.integers(0, 2**16))
def test_cropped_taps_give_the_same_convolution(size: int, kernel: int, stride: int, dilation: int, before: int,
                                                after: int, seed: int) -> None:
    span = (kernel - 1) * dilation + 1
    assume(size + before + after >= span)
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(size), rng.standard_normal(kernel)
    want = _conv1d(x, w, stride, dilation, before, after)
    cropped = cropped_taps(size, len(want), kernel, stride, dilation, before, after)
    taps = live_taps(size, len(want), kernel, stride, dilation, before)
    if cropped is None:  # nothing to crop, or the cropped convolution needs the input cropped too
        read = {y * stride + t * dilation - before for y in range(len(want)) for t in range(kernel)}
        assert taps in (None, (0, kernel - 1)) or 0 not in read or size - 1 not in read
        return
    first, count, new_before, new_after = cropped
    assert taps is not None and count < kernel and new_before >= 0 and new_after >= 0
    got = _conv1d(x, w[first: first + count], stride, dilation, new_before, new_after)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("size, stride, kernel, pads", [
    (1, 1, 3, (1, 1, 1, 1)),  # the centre tap alone: 1x1
    (2, 2, 3, (1, 1, 1, 1)),  # a stride-2 3x3 over 2x2: the last 2x2 taps
    (2, 1, 5, (2, 1, 2, 3)),  # uneven padding
    (1, 1, 7, (3, 3, 3, 3)),
])
def test_convolution_taps_that_read_only_padding_are_dropped(size: int, stride: int, kernel: int,
                                                             pads: tuple[int, int, int, int]) -> None:
    conv = make_node("conv2d", "conv", ["x", "w"], ["y"], strides=(stride, stride), pads=pads, dilations=(1, 1),
                     groups=1)
    g = graph([conv], {"x": (1, 8, size, size)}, ["y"], {"w": rand(6, 8, kernel, kernel)})
    cropped = fold_constants(simplify(g))
    (conv,) = [n for n in cropped.nodes if n.op == "conv2d"]
    kh, kw = cropped.type_of(conv.inputs[1]).shape[2:]
    assert kh < kernel and kw < kernel and conv.inputs[1] in cropped.params
    assert cropped.type_of("y") == g.type_of("y")
    x = rand(1, 8, size, size)
    np.testing.assert_allclose(run(cropped, x=x)[0], run(g, x=x)[0], rtol=1e-5, atol=1e-5)


def test_convolution_taps_cropped_from_computed_weights_and_kept_where_all_read() -> None:
    nodes = [make_node("conv2d", "conv", ["x", "w"], ["y"], strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1),
                       groups=1)]
    g = graph(nodes, {"x": (1, 4, 1, 1), "w": (3, 4, 3, 3)}, ["y"])
    cropped = simplify(g)
    assert ops_of(cropped) == ["strided_slice", "conv2d"]
    x, w = rand(1, 4, 1, 1), rand(3, 4, 3, 3)
    np.testing.assert_allclose(run(cropped, x=x, w=w)[0], run(g, x=x, w=w)[0], rtol=1e-5, atol=1e-5)
    every_tap = graph(nodes, {"x": (1, 4, 2, 2)}, ["y"], {"w": rand(3, 4, 3, 3)})
    assert simplify(every_tap) is every_tap


@settings(max_examples=300, deadline=None)
@given(size=st.integers(1, 20), kernel=st.integers(1, 5), stride=st.integers(1, 3), dilation=st.integers(1, 13),
       before=st.integers(0, 14), after=st.integers(0, 14), seed=st.integers(0, 2**16))
def test_tap_bands_give_the_same_convolution(size: int, kernel: int, stride: int, dilation: int, before: int,
                                             after: int, seed: int) -> None:
    """Bands of output positions, each convolving the input it reads (no padding) with its live taps, give the
    padded convolution's outputs."""
    span = (kernel - 1) * dilation + 1
    assume(size + before + after >= span)
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(size), rng.standard_normal(kernel)
    want = _conv1d(x, w, stride, dilation, before, after)
    bands = tap_bands(size, len(want), kernel, stride, dilation, before)
    if bands is None:  # some position reads only padding
        assert any(all(not 0 <= y * stride + t * dilation - before < size for t in range(kernel))
                   for y in range(len(want)))
        return
    got = []
    for first, count, tap, taps in bands:
        start = first * stride + tap * dilation - before
        end = start + (count - 1) * stride + (taps - 1) * dilation + 1
        assert 0 <= start and end <= size
        got.extend(_conv1d(x[start:end], w[tap: tap + taps], stride, dilation, 0, 0))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("size, dilation, split", [
    (14, 12, True),  # DeepLabV3's rate-12 atrous convolution at output stride 16 of a 224 image: 9 bands
    (20, 6, True),
    (14, 1, False),  # a plain 3x3: its edge rows read padding, but banding would save too little
    (6, 3, False),  # too few outputs
])
def test_convolution_splits_into_bands_of_live_taps(size: int, dilation: int, split: bool) -> None:
    conv = make_node("conv2d", "conv", ["x", "w"], ["c"], strides=(1, 1), pads=(dilation,) * 4,
                     dilations=(dilation, dilation), groups=1)
    g = graph([conv, make_node("relu", "r", ["c"], ["y"])], {"x": (1, 8, size, size)}, ["y"],
              {"w": rand(16, 8, 3, 3)})
    banded = simplify(g)
    assert sum(n.op == "conv2d" for n in banded.nodes) == (9 if split else 1)
    assert banded.type_of("c") == g.type_of("c")
    x = rand(1, 8, size, size)
    np.testing.assert_allclose(run(fold_constants(banded), x=x)[0], run(g, x=x)[0], rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------------
# fuse_ops
def _members(node: tg.Node) -> list[str]:
    body = node.attr("body")
    return [m.op for m in body.nodes] if body is not None else [node.op]


def test_fuse_conv_bias_relu_and_residual() -> None:
    params = {"w1": rand(4, 4, 3, 3), "w2": rand(4, 4, 3, 3), "b": rand(1, 4, 1, 1)}
    conv = {"strides": (1, 1), "pads": (1, 1, 1, 1), "dilations": (1, 1), "groups": 1}
    g = graph([
        make_node("conv2d", "c1", ["x", "w1"], ["a"], **conv),
        make_node("add", "bias", ["a", "b"], ["ab"]),
        make_node("relu", "r1", ["ab"], ["h"]),
        make_node("conv2d", "c2", ["h", "w2"], ["c"], **conv),
        make_node("add", "residual", ["c", "x"], ["s"]),
        make_node("relu", "r2", ["s"], ["y"]),
    ], {"x": (1, 4, 6, 6)}, ["y"], params)
    fused = fuse_ops(g)
    assert [_members(n) for n in fused.nodes] == [["conv2d", "add", "relu"], ["conv2d", "add", "relu"]]
    x = rand(1, 4, 6, 6)
    np.testing.assert_allclose(run(fused, x=x)[0], run(g, x=x)[0], rtol=1e-5, atol=1e-5)


def test_fuse_elementwise_into_reduction_and_injective_chain() -> None:
    g = graph([
        make_node("exp", "e", ["x"], ["a"]),
        make_node("sum", "s", ["a"], ["b"], axes=(1,), keepdims=False),
        make_node("transpose", "t", ["x"], ["c"], perm=(1, 0)),
        make_node("reshape", "r", ["c"], ["d"], shape=(12,)),
    ], {"x": (3, 4)}, ["b", "d"])
    fused = fuse_ops(g)
    assert sorted(_members(n) for n in fused.nodes) == [["exp", "sum"], ["transpose", "reshape"]]


def test_opaque_and_shared_values_are_not_fused() -> None:
    g = graph([
        make_node("relu", "r", ["x"], ["a"]),
        make_node("softmax", "sm", ["a"], ["b"], axis=-1),
        make_node("sigmoid", "sg", ["b"], ["c"]),
        make_node("add", "use_a", ["a", "c"], ["y"]),
    ], {"x": (2, 8)}, ["y"])
    fused = fuse_ops(g)
    assert all("softmax" not in _members(n) or _members(n) == ["softmax"] for n in fused.nodes)
    x = rand(2, 8)
    np.testing.assert_allclose(run(fused, x=x)[0], run(g, x=x)[0], rtol=1e-6)


def test_views_join_the_product_before_a_concatenation_joins_them() -> None:
    # a key cache: past keys and the new one concatenated, then read transposed by a matrix product
    g = graph([
        make_node("concat", "cat", ["past", "new"], ["keys"], axis=0),
        make_node("transpose", "t", ["keys"], ["keys_t"], perm=(1, 0)),
        make_node("matmul", "scores", ["q", "keys_t"], ["y"]),
    ], {"past": (7, 16), "new": (1, 16), "q": (3, 16)}, ["y"])
    fused = fuse_ops(g, absorb_views=True)
    # the concatenation writes the keys as they are; the product reads them through the transpose
    assert sorted(_members(n) for n in fused.nodes) == [["concat"], ["transpose", "matmul"]]
    assert sorted(_members(n) for n in fuse_ops(g).nodes) == [["concat", "transpose"], ["matmul"]]
    arrays = {"past": rand(7, 16), "new": rand(1, 16), "q": rand(3, 16)}
    np.testing.assert_allclose(run(fused, **arrays)[0], run(g, **arrays)[0], rtol=1e-5, atol=1e-5)


def test_fuse_keeps_apart_the_nodes_it_is_told_to() -> None:
    g = graph([make_node("relu", "r", ["x"], ["a"]), make_node("exp", "e", ["a"], ["y"])], {"x": (4,)}, ["y"])
    assert len(fuse_ops(g).nodes) == 1
    assert fuse_ops(g, keep_apart=lambda node: node.op == "relu") is g


# ---------------------------------------------------------------------------------------------------------------------
# alter_layout
def _conv_chain() -> Graph:
    params = {"w1": rand(16, 8, 3, 3), "w2": rand(16, 16, 1, 1), "b": rand(1, 16, 1, 1)}
    conv = {"strides": (1, 1), "pads": (1, 1, 1, 1), "dilations": (1, 1), "groups": 1}
    return graph([
        make_node("conv2d", "c1", ["x", "w1"], ["a"], **conv),
        make_node("add", "bias", ["a", "b"], ["ab"]),
        make_node("relu", "r", ["ab"], ["h"]),
        make_node("conv2d", "c2", ["h", "w2"], ["c"], **{**conv, "pads": (0, 0, 0, 0)}),
        make_node("add", "residual", ["c", "h"], ["s"]),
        make_node("mean", "pool", ["s"], ["p"], axes=(2, 3), keepdims=True),
        make_node("reshape", "flat", ["p"], ["y"], shape=(1, 16)),
    ], {"x": (1, 8, 6, 6)}, ["y"], params)


def _transforms(g: Graph) -> list[tuple[str, str]]:
    return [(n.attr("src"), n.attr("dst")) for n in g.nodes
            if n.op == "layout_transform" and n.inputs[0] not in g.params]


def test_alter_layout_inserts_transforms_only_where_layouts_disagree() -> None:
    g = _conv_chain()
    altered = alter_layout(g, "llvm")
    assert [n.op for n in altered.nodes if n.op.startswith("conv")] == ["conv2d_nchwc", "conv2d_nchwc"]
    block = choose_channel_block(8, as_target("llvm").vector_bits // 32)
    out_block = choose_channel_block(16, as_target("llvm").vector_bits // 32)
    # into the first conv, and out of the blocked world before the reshape: nothing between the convs
    assert _transforms(altered) == [("NCHW", f"NCHW{block}c"), (f"NCHW{out_block}c", "NCHW")]
    folded = fold_constants(altered)
    x = rand(1, 8, 6, 6)
    np.testing.assert_allclose(run(folded, x=x)[0], run(g, x=x)[0], rtol=1e-4, atol=1e-4)


def test_alter_layout_leaves_kept_convolutions_in_nchw() -> None:
    g = _conv_chain()
    altered = alter_layout(g, "llvm", keep=lambda node: node.name == "c2")
    assert sorted(n.op for n in altered.nodes if n.op.startswith("conv")) == ["conv2d", "conv2d_nchwc"]


def test_grouped_convolutions_stay_blocked() -> None:
    """Grouped convolutions (ShuffleNet's 1x1s, a strided 3x3) become grouped ``conv2d_nchwc``: no transform
    between them where their blocks agree, results as in NCHW."""
    conv = {"strides": (1, 1), "pads": (0, 0, 0, 0), "dilations": (1, 1)}
    g = graph([
        make_node("conv2d", "c1", ["x", "w1"], ["a"], **conv, groups=1),
        make_node("conv2d", "g1", ["a", "w2"], ["b"], **conv, groups=3),
        make_node("relu", "r", ["b"], ["h"]),
        make_node("conv2d", "g2", ["h", "w3"], ["y"], **{**conv, "pads": (1, 1, 1, 1), "strides": (2, 2)}, groups=2),
    ], {"x": (1, 8, 9, 7)}, ["y"], {"w1": rand(48, 8, 1, 1), "w2": rand(96, 16, 1, 1), "w3": rand(32, 48, 3, 3)})
    altered = alter_layout(g, "llvm")
    convs = [(n.op, n.attr("groups", 1)) for n in altered.nodes if n.op.startswith("conv")]
    assert convs == [("conv2d_nchwc", 1), ("conv2d_nchwc", 3), ("conv2d_nchwc", 2)]
    assert len(_transforms(altered)) == 2  # in and out only
    x = rand(1, 8, 9, 7)
    np.testing.assert_allclose(run(fold_constants(altered), x=x)[0], run(g, x=x)[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("channels", "out_channels", "kernel", "groups"), [
    (8, 8, 1, 4),  # two output channels per group: blocks of 2
    (58, 58, 1, 1),  # ShuffleNetV2's 58 = 2 x 29 and 116 = 4 x 29 channels
    (24, 116, 3, 1),
    (116, 232, 1, 1),  # 232 = 8 x 29: half the lanes of AVX-512, all of AVX2's
])
def test_convolution_with_narrow_blocks_stays_in_nchw(channels: int, out_channels: int, kernel: int,
                                                      groups: int) -> None:
    """A convolution whose output channels take blocks under half the vector lanes stays in NCHW (its kernel
    vectorizes over the columns instead); one with wider blocks turns blocked. Either way the result is NCHW's."""
    pad = kernel // 2
    conv = {"strides": (1, 1), "pads": (pad,) * 4, "dilations": (1, 1), "groups": groups}
    g = graph([make_node("conv2d", "g", ["x", "w"], ["a"], **conv), make_node("relu", "r", ["a"], ["y"])],
              {"x": (1, channels, 9, 7)}, ["y"], {"w": rand(out_channels, channels // groups, kernel, kernel)})
    lanes = as_target("llvm").vector_bits // 32
    narrow = choose_channel_block(out_channels // groups, lanes) < lanes // 2
    altered = alter_layout(g, "llvm")
    assert [n.op for n in altered.nodes if n.op.startswith("conv")] == ["conv2d" if narrow else "conv2d_nchwc"]
    assert not narrow or not _transforms(altered)
    x = rand(1, channels, 9, 7)
    np.testing.assert_allclose(run(fold_constants(altered), x=x)[0], run(g, x=x)[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("batch", [1, 2])
def test_squeeze_and_excitation_scales_stay_blocked(batch: int) -> None:
    """EfficientNet's and MobileNetV3's squeeze-and-excitation: the plane's mean, two 1x1 convolutions and a
    sigmoid give a scale per channel of each image, which multiplies the plane. The scale is blocked like the
    plane, so the product needs no layout transform."""
    conv = {"strides": (1, 1), "pads": (0, 0, 0, 0), "dilations": (1, 1), "groups": 1}
    g = graph([
        make_node("conv2d", "expand", ["x", "w1"], ["a"], **conv),
        make_node("mean", "squeeze", ["a"], ["m"], axes=(2, 3), keepdims=True),
        make_node("conv2d", "reduce", ["m", "w2"], ["r"], **conv),
        make_node("relu", "act", ["r"], ["ra"]),
        make_node("conv2d", "excite", ["ra", "w3"], ["e"], **conv),
        make_node("sigmoid", "gate", ["e"], ["s"]),
        make_node("multiply", "scale", ["a", "s"], ["b"]),
        make_node("conv2d", "project", ["b", "w4"], ["y"], **conv),
    ], {"x": (batch, 16, 6, 5)}, ["y"],
        {"w1": rand(32, 16, 1, 1), "w2": rand(16, 32, 1, 1), "w3": rand(32, 16, 1, 1), "w4": rand(16, 32, 1, 1)})
    altered = alter_layout(g, "llvm")
    assert len(_transforms(altered)) == 2  # in and out only
    x = rand(batch, 16, 6, 5)
    np.testing.assert_allclose(run(fold_constants(altered), x=x)[0], run(g, x=x)[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("axis", "second"), [(1, 32), (-3, 32), (2, 16), (1, 12)])
def test_concat_stays_blocked(axis: int, second: int) -> None:
    """SqueezeNet's fire module: two convolutions concatenated along the channels, then max pooling; the concat
    stays blocked when whole channel blocks concatenate (or along another axis)."""
    conv = {"strides": (1, 1), "pads": (0, 0, 0, 0), "dilations": (1, 1), "groups": 1}
    g = graph([
        make_node("conv2d", "c1", ["x", "w1"], ["a"], **conv),
        make_node("conv2d", "c2", ["x", "w2"], ["b"], **conv),
        make_node("concat", "cat", ["a", "b"], ["c"], axis=axis),
        make_node("pool2d", "p", ["c"], ["y"], kind="max", kernel=(2, 2), strides=(2, 2), pads=(0, 0, 0, 0),
                  ceil_mode=False),
    ], {"x": (1, 8, 6, 6)}, ["y"], {"w1": rand(16, 8, 1, 1), "w2": rand(second, 8, 1, 1)})
    altered = alter_layout(g, "llvm")
    block = choose_channel_block(16, as_target("llvm").vector_bits // 32)
    stays = axis % 4 != 1 or second % block == 0
    assert ("max_pool2d_nchwc" in ops_of(altered)) == stays
    if stays:
        assert len(_transforms(altered)) == 2  # in and out only
    x = rand(1, 8, 6, 6)
    np.testing.assert_allclose(run(fold_constants(altered), x=x)[0], run(g, x=x)[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("axes", "stays"), [((2, 3), True), ((-1,), True), ((0, -2), True), ((1,), False)])
def test_slices_along_the_plane_stay_blocked(axes: tuple[int, ...], stays: bool) -> None:
    """A slice of a blocked value along the batch or plane axes (a convolution's bands, a crop) reads it blocked;
    along the channels, in NCHW."""
    conv = {"strides": (1, 1), "pads": (1, 1, 1, 1), "dilations": (1, 1), "groups": 1}
    bounds = {0: (0, 1), 1: (16, 32), 2: (1, 6), 3: (2, 7)}
    g = graph([
        make_node("conv2d", "c1", ["x", "w1"], ["a"], **conv),
        make_node("strided_slice", "s", ["a"], ["b"], begin=tuple(bounds[a % 4][0] for a in axes),
                  end=tuple(bounds[a % 4][1] for a in axes), strides=(1,) * len(axes), axes=axes),
        make_node("conv2d", "c2", ["b", "w2"], ["y"], **conv),
    ], {"x": (1, 8, 9, 9)}, ["y"], {"w1": rand(32, 8, 3, 3), "w2": rand(16, 16 if 1 in axes else 32, 3, 3)})
    altered = alter_layout(g, "llvm")
    assert (len(_transforms(altered)) == 2) == stays  # in and out only
    x = rand(1, 8, 9, 9)
    np.testing.assert_allclose(run(fold_constants(altered), x=x)[0], run(g, x=x)[0], rtol=1e-4, atol=1e-4)


def test_inverse_layout_transforms_cancel() -> None:
    g = graph([
        make_node("layout_transform", "t1", ["x"], ["a"], src="NCHW", dst="NCHW4c"),
        make_node("layout_transform", "t2", ["a"], ["b"], src="NCHW4c", dst="NCHW"),
        make_node("relu", "r", ["b"], ["c"]),
        make_node("layout_transform", "t3", ["c"], ["d"], src="NCHW", dst="NCHW4c"),
        make_node("layout_transform", "t4", ["d"], ["y"], src="NCHW4c", dst="NCHW2c"),
    ], {"x": (1, 8, 2, 2)}, ["y"])
    cancelled = cancel_layout_transforms(g)
    assert ops_of(cancelled) == ["relu", "layout_transform"]
    assert cancelled.nodes[0].inputs == ("x",)
    assert (cancelled.nodes[1].attr("src"), cancelled.nodes[1].attr("dst")) == ("NCHW", "NCHW2c")
    x = rand(1, 8, 2, 2)
    np.testing.assert_allclose(run(cancelled, x=x)[0], run(g, x=x)[0])


# ---------------------------------------------------------------------------------------------------------------------
# plan_memory
def _chain() -> Graph:
    return graph([
        make_node("exp", "e", ["x"], ["a"]),
        make_node("transpose", "t", ["a"], ["b"], perm=(1, 0)),
        make_node("relu", "r", ["b"], ["c"]),
        make_node("sigmoid", "s", ["c"], ["d"]),
        make_node("transpose", "t2", ["d"], ["e"], perm=(1, 0)),
        make_node("tanh", "th", ["e"], ["y"]),
    ], {"x": (64, 32)}, ["y"])


def test_plan_memory_reuses_dead_buffers_and_works_in_place() -> None:
    g = _chain()
    planned = plan_memory(g)
    plan = planned.meta["memory_plan"]
    assert plan.unplanned_bytes == 6 * 64 * 32 * 4
    assert plan.planned_bytes <= plan.unplanned_bytes // 2
    assert plan.peak_live_bytes == 2 * 64 * 32 * 4 <= plan.planned_bytes
    assert plan.inplace  # relu/sigmoid overwrite their inputs
    assert no_plan(g).planned_bytes == plan.unplanned_bytes
    x = rand(64, 32)
    want = np.tanh(1 / (1 + np.exp(-np.maximum(np.exp(x).T, 0)))).T
    np.testing.assert_allclose(run(planned, x=x)[0], want, rtol=1e-5)


def test_plan_memory_lifetimes_never_overlap() -> None:
    g = plan_memory(fuse_ops(_conv_chain()))
    plan = g.meta["memory_plan"]
    position = {o: i for i, n in enumerate(g.nodes) for o in n.outputs}
    last = {}
    for i, n in enumerate(g.nodes):
        for value in n.inputs:
            last[value] = i
    inplace = {pair for pairs in plan.inplace.values() for pair in pairs}
    values = list(position)
    for a in values:
        for b in values:
            if a < b and plan.storage_of[a] == plan.storage_of[b] and (a, b) not in inplace and (b, a) not in inplace:
                first, second = sorted((a, b), key=position.__getitem__)
                assert last.get(first, position[first]) < position[second]


def test_inplace_only_for_flat_identity_nodes() -> None:
    g = _chain()
    by_name = {n.name: n for n in g.nodes}
    assert inplace_pairs(g, by_name["r"]) == [("b", "c")]
    assert inplace_pairs(g, by_name["t"]) == []  # a transpose reads other positions


def test_reshapes_in_place_run_no_kernel() -> None:
    g = graph([
        make_node("exp", "e", ["x"], ["a"]),
        make_node("reshape", "view", ["a"], ["b"], shape=(4, 6, 5)),
        make_node("reshape", "kept", ["b"], ["c"], shape=(24, 5)),  # b is read again: no view
        make_node("sum", "s", ["b"], ["d"], axes=(0,), keepdims=False),
        make_node("add", "add", ["c", "x"], ["y"]),
        make_node("reshape", "out", ["d"], ["z"], shape=(30,)),  # a graph output keeps its own storage
    ], {"x": (24, 5)}, ["y", "z"])
    planned = plan_memory(g)
    plan = planned.meta["memory_plan"]
    assert plan.views == ("view",)
    assert plan.storage_of["a"] == plan.storage_of["b"]
    executor = tg.build_executor(planned)
    assert len(executor.program.kernels) == len(g.nodes) - 1
    x = rand(24, 5)
    y, z = executor.run([x])
    np.testing.assert_allclose(y, np.exp(x) + x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(z, np.exp(x).reshape(4, 6, 5).sum(0).reshape(30), rtol=1e-5)


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_max_pool_stays_blocked(ceil_mode: bool) -> None:
    conv = {"strides": (1, 1), "pads": (1, 1, 1, 1), "dilations": (1, 1), "groups": 1}
    g = graph([
        make_node("conv2d", "c", ["x", "w"], ["a"], **conv),
        make_node("pool2d", "p", ["a"], ["b"], kind="max", kernel=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1),
                  ceil_mode=ceil_mode),
        make_node("conv2d", "c2", ["b", "w2"], ["y"], **conv),
    ], {"x": (1, 4, 9, 9)}, ["y"], {"w": rand(16, 4, 3, 3), "w2": rand(8, 16, 3, 3)})
    altered = alter_layout(g, "llvm")
    assert "max_pool2d_nchwc" in ops_of(altered)
    assert len(_transforms(altered)) == 2  # in and out only
    x = rand(1, 4, 9, 9)
    np.testing.assert_allclose(run(fold_constants(altered), x=x)[0], run(g, x=x)[0], rtol=1e-4, atol=1e-4)
