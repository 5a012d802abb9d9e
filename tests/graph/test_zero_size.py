"""Zero-size tensors: empty results without kernels, and the operators that make non-empty results from empty
inputs (reductions over an empty axis, a product over an empty inner dimension, concatenation, padding), against
onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import tcomp.graph as tg
from tcomp.graph import testing

FLOAT = TensorProto.FLOAT


def model_of(nodes: list[onnx.NodeProto], inputs: dict[str, list[int | str]], outputs: list[str],
             initializers: dict[str, np.ndarray] | None = None) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "zero_size", [helper.make_tensor_value_info(n, FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, FLOAT, None) for n in outputs],
        [numpy_helper.from_array(v, k) for k, v in (initializers or {}).items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def check(model: onnx.ModelProto, feeds: dict[str, np.ndarray], kernels: int | None = None) -> list[np.ndarray]:
    executor = tg.compile(model)
    got = executor.run(feeds)
    want = ort.InferenceSession(model.SerializeToString()).run(None, feeds)
    assert got is not None
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    if kernels is not None:
        assert executor.num_kernels == kernels
    return got


def test_empty_results_launch_no_kernel() -> None:
    nodes = [helper.make_node("Add", ["x", "b"], ["s"]), helper.make_node("Relu", ["s"], ["r"]),
             helper.make_node("Transpose", ["r"], ["t"], perm=[1, 0]),
             helper.make_node("Softmax", ["t"], ["y"], axis=0)]
    model = model_of(nodes, {"x": [0, 3]}, ["y"], {"b": np.ones((1, 3), np.float32)})
    [y] = check(model, {"x": np.zeros((0, 3), np.float32)}, kernels=0)
    assert y.shape == (3, 0)


# over an empty set, as ONNX defines it: a sum is 0, a maximum -inf, a minimum +inf; a mean is undefined (nan here,
# as numpy's; onnxruntime says 0)
@pytest.mark.parametrize("op,keepdims,value", [("ReduceSum", 1, 0.0), ("ReduceMax", 1, -np.inf),
                                               ("ReduceMin", 0, np.inf), ("ReduceMean", 1, np.nan)])
def test_reductions_over_an_empty_axis(op: str, keepdims: int, value: float) -> None:
    model = model_of([helper.make_node(op, ["x", "axes"], ["y"], keepdims=keepdims)], {"x": [2, 0, 3]}, ["y"],
                     {"axes": np.array([1], np.int64)})
    model.opset_import[0].version = 18  # where every reduction takes its axes as an input
    [y] = tg.compile(model).run([np.zeros((2, 0, 3), np.float32)])
    np.testing.assert_array_equal(y, np.full((2, 1, 3) if keepdims else (2, 3), value, np.float32))


def test_products_concatenation_and_padding_of_empty_inputs() -> None:
    nodes = [helper.make_node("MatMul", ["a", "b"], ["m"]),
             helper.make_node("Concat", ["a", "c"], ["cat"], axis=1),
             helper.make_node("Pad", ["a", "pads"], ["p"], mode="constant"),
             helper.make_node("Shape", ["a"], ["shape"]),
             helper.make_node("ConstantOfShape", ["shape"], ["zeros"]),
             helper.make_node("Slice", ["c", "starts", "ends", "axes"], ["s"]),
             helper.make_node("Concat", ["s", "c"], ["cat2"], axis=1)]
    model = model_of(nodes, {"a": [2, 0], "b": [0, 3], "c": [2, 4]}, ["m", "cat", "p", "zeros", "cat2"],
                     {"pads": np.array([0, 1, 0, 2], np.int64), "starts": np.array([3], np.int64),
                      "ends": np.array([3], np.int64), "axes": np.array([1], np.int64)})
    rng = np.random.default_rng(0)
    c = rng.standard_normal((2, 4)).astype(np.float32)
    m, cat, p, zeros, cat2 = check(model, {"a": np.zeros((2, 0), np.float32), "b": np.zeros((0, 3), np.float32),
                                           "c": c})
    assert not m.any() and m.shape == (2, 3)
    np.testing.assert_array_equal(cat, c)
    assert p.shape == (2, 3) and not p.any()
    assert zeros.shape == (2, 0)
    np.testing.assert_array_equal(cat2, c)


def test_convolution_of_an_empty_batch() -> None:
    model = testing.resnet(18, image_size=32, width=0.25, num_classes=10)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    executor = tg.compile(model, input_shapes={"data": [0, 3, 32, 32]})
    [y] = executor.run([np.zeros((0, 3, 32, 32), np.float32)])
    assert y.shape == (0, 10) and executor.num_kernels == 0


def test_symbolic_batch_of_zero() -> None:
    model = testing.transformer_encoder(seq=4, hidden=16, heads=2, ffn=32, dynamic_batch=True)
    executor = tg.compile(model)
    [y] = executor.run([np.zeros((0, 4, 16), np.float32)])
    assert y.shape == (0, 4, 16)
    [y] = executor.run([np.ones((2, 4, 16), np.float32)])
    assert y.shape == (2, 4, 16) and executor.compilations + executor.assembled == 2


@pytest.mark.parametrize("sizes", [[3, 0, 4], [0, 7], [7, 0], [0, 2, 0, 5]])
def test_split_with_empty_parts(sizes: list[int]) -> None:
    outputs = [f"part{k}" for k in range(len(sizes))]
    nodes = [helper.make_node("Split", ["x", "sizes"], outputs, axis=1)]
    model = model_of(nodes, {"x": [3, 7]}, outputs, {"sizes": np.array(sizes, np.int64)})
    x = np.random.default_rng(1).standard_normal((3, 7)).astype(np.float32)
    parts = check(model, {"x": x}, kernels=1)  # one kernel for the non-empty parts
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), x)
