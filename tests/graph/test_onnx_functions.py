"""ONNX functions expanded at import: model-local functions and operators ONNX defines by a function body."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import tcomp.graph as tg
from tcomp.graph.frontend.onnx_functions import MAX_EXPANDED_NODES
from tcomp.graph.ir import GraphError, UnsupportedOperatorError

DOMAIN = "custom.blocks"
OPSETS = [helper.make_opsetid("", 20), helper.make_opsetid(DOMAIN, 1)]


def _scaled_gelu_block() -> onnx.FunctionProto:
    """``y = Gelu(x @ w) * alpha`` (``alpha`` an attribute, default 2.0), ``pre`` the product."""
    alpha = helper.make_node("Constant", [], ["alpha"])
    alpha.attribute.append(onnx.AttributeProto(name="value_float", type=onnx.AttributeProto.FLOAT,
                                               ref_attr_name="alpha"))
    nodes = [helper.make_node("MatMul", ["x", "w"], ["pre"]), helper.make_node("Gelu", ["pre"], ["act"]), alpha,
             helper.make_node("Mul", ["act", "alpha"], ["y"])]
    function = helper.make_function(DOMAIN, "Block", ["x", "w"], ["y", "pre"], nodes, OPSETS, attributes=[])
    function.attribute_proto.append(helper.make_attribute("alpha", 2.0))
    return function


def _model(nodes: list[onnx.NodeProto], functions: list[onnx.FunctionProto], inputs: dict[str, list[int]],
           outputs: list[str]) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
                                           for n, s in inputs.items()],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs])
    return helper.make_model(graph, opset_imports=OPSETS, functions=functions)


def _gelu(x: np.ndarray) -> np.ndarray:
    from math import erf
    return 0.5 * x * (1 + np.vectorize(erf)(x / np.sqrt(2)))


def test_local_function_attributes_and_outputs() -> None:
    nodes = [helper.make_node("Block", ["x", "w"], ["y1"], domain=DOMAIN),  # alpha: the default
             helper.make_node("Block", ["y1", "w2"], ["y2", "p2"], domain=DOMAIN, alpha=-0.5)]
    model = _model(nodes, [_scaled_gelu_block()], {"x": [3, 5], "w": [5, 7], "w2": [7, 4]}, ["y2", "p2"])
    rng = np.random.default_rng(0)
    x, w, w2 = (rng.standard_normal(s).astype(np.float32) for s in ([3, 5], [5, 7], [7, 4]))
    y1 = _gelu(x @ w) * 2.0
    p2 = y1 @ w2
    y2, got_p2 = tg.compile(model, target="llvm").run([x, w, w2])
    np.testing.assert_allclose(got_p2, p2, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y2, _gelu(p2) * -0.5, rtol=1e-5, atol=1e-5)


def test_local_functions_call_each_other() -> None:
    inner = helper.make_function(DOMAIN, "Twice", ["a"], ["b"], [helper.make_node("Add", ["a", "a"], ["b"])],
                                 OPSETS)
    outer = helper.make_function(DOMAIN, "Quad", ["a"], ["c"], [
        helper.make_node("Twice", ["a"], ["t"], domain=DOMAIN), helper.make_node("Twice", ["t"], ["c"],
                                                                                domain=DOMAIN)], OPSETS)
    model = _model([helper.make_node("Quad", ["x"], ["y"], domain=DOMAIN)], [outer, inner], {"x": [6]}, ["y"])
    x = np.arange(6, dtype=np.float32)
    [y] = tg.compile(model, target="llvm").run([x])
    np.testing.assert_array_equal(y, 4 * x)


def test_unsupported_node_inside_a_function_is_listed() -> None:
    body = [helper.make_node("Relu", ["a"], ["r"]), helper.make_node("Frobnicate", ["r"], ["b"], domain="other")]
    function = helper.make_function(DOMAIN, "Odd", ["a"], ["b"], body, OPSETS)
    model = _model([helper.make_node("Odd", ["x"], ["y"], domain=DOMAIN)], [function], {"x": [4]}, ["y"])
    with pytest.raises(UnsupportedOperatorError, match=r"other\.Frobnicate.*Odd/Frobnicate_1"):
        tg.from_onnx(model)


def test_recursive_functions_are_refused() -> None:
    ping = helper.make_function(DOMAIN, "Ping", ["a"], ["b"], [helper.make_node("Pong", ["a"], ["b"],
                                                                                 domain=DOMAIN)], OPSETS)
    pong = helper.make_function(DOMAIN, "Pong", ["a"], ["b"], [helper.make_node("Ping", ["a"], ["b"],
                                                                                 domain=DOMAIN)], OPSETS)
    model = _model([helper.make_node("Ping", ["x"], ["y"], domain=DOMAIN)], [ping, pong], {"x": [4]}, ["y"])
    with pytest.raises(GraphError, match=r"calls itself \(custom\.blocks\.Ping -> custom\.blocks\.Pong -> "):
        tg.from_onnx(model)


def test_exponential_expansion_is_refused() -> None:
    levels = [helper.make_function(DOMAIN, "L0", ["a"], ["b"], [helper.make_node("Neg", ["a"], ["b"])], OPSETS)]
    for level in range(1, 20):  # each level calls the one below twice: 2**19 nodes
        levels.append(helper.make_function(DOMAIN, f"L{level}", ["a"], ["b"], [
            helper.make_node(f"L{level - 1}", ["a"], ["t"], domain=DOMAIN),
            helper.make_node(f"L{level - 1}", ["t"], ["b"], domain=DOMAIN)], OPSETS))
    model = _model([helper.make_node("L19", ["x"], ["y"], domain=DOMAIN)], levels, {"x": [4]}, ["y"])
    with pytest.raises(GraphError, match=f"expands to more than {MAX_EXPANDED_NODES} nodes"):
        tg.from_onnx(model)


def test_function_bodies_cannot_read_the_callers_values() -> None:
    function = helper.make_function(DOMAIN, "Leaky", ["a"], ["b"], [helper.make_node("Add", ["a", "x"], ["b"])],
                                    OPSETS)
    model = _model([helper.make_node("Leaky", ["x"], ["y"], domain=DOMAIN)], [function], {"x": [4]}, ["y"])
    with pytest.raises(GraphError, match="reads 'x', which is none of the function's inputs or values"):
        tg.from_onnx(model)


def test_undeclared_attributes_and_duplicates_are_refused() -> None:
    model = _model([helper.make_node("Block", ["x", "w"], ["y"], domain=DOMAIN, beta=1.0)],
                   [_scaled_gelu_block()], {"x": [3, 5], "w": [5, 7]}, ["y"])
    with pytest.raises(GraphError, match="attribute 'beta' is not one of function custom.blocks.Block's"):
        tg.from_onnx(model)
    twice = _model([helper.make_node("Block", ["x", "w"], ["y"], domain=DOMAIN)],
                   [_scaled_gelu_block(), _scaled_gelu_block()], {"x": [3, 5], "w": [5, 7]}, ["y"])
    with pytest.raises(GraphError, match="defined twice"):
        tg.from_onnx(twice)


def _operator_model(node: onnx.NodeProto, inputs: dict[str, tuple[int, list[int]]], opset: int) -> onnx.ModelProto:
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, t, s) for n, (t, s) in inputs.items()],
                              [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in node.output])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_softmax_cross_entropy_expands_for_its_input_types(reduction: str) -> None:
    node = helper.make_node("SoftmaxCrossEntropyLoss", ["scores", "labels"], ["loss", "log_prob"],
                            reduction=reduction, ignore_index=2)
    model = _operator_model(node, {"scores": (TensorProto.FLOAT, [5, 7, 3]),
                                   "labels": (TensorProto.INT64, [5, 3])}, 21)
    rng = np.random.default_rng(1)
    scores = rng.standard_normal((5, 7, 3)).astype(np.float32)
    labels = rng.integers(0, 7, (5, 3)).astype(np.int64)
    log_prob = scores - np.log(np.exp(scores).sum(1, keepdims=True))
    picked = -np.take_along_axis(log_prob, labels[:, None], 1)[:, 0] * (labels != 2)
    expected = {"none": picked, "sum": picked.sum(), "mean": picked.sum() / (labels != 2).sum()}[reduction]
    loss, got_log_prob = tg.compile(model, target="llvm").run([scores, labels])
    np.testing.assert_allclose(got_log_prob, log_prob, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-5)


def test_schema_defaults_fill_missing_attributes() -> None:
    node = helper.make_node("HannWindow", ["size"], ["w"])  # periodic=1, output_datatype=1 by default
    model = _operator_model(node, {"size": (TensorProto.INT64, [])}, 17)
    ex = tg.compile(model, target="llvm", input_values={"size": np.array(10, np.int64)})
    [w] = ex.run([])
    np.testing.assert_allclose(w, 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(10) / 10), atol=1e-6)
    assert w.dtype == np.float32


def test_operator_attributes_are_checked_against_the_schema() -> None:
    node = helper.make_node("HannWindow", ["size"], ["w"], window="hann")
    model = _operator_model(node, {"size": (TensorProto.INT64, [])}, 17)
    with pytest.raises(GraphError, match="unknown attribute 'window'"):
        tg.from_onnx(model)


def test_deeply_nested_functions_compile() -> None:
    """300 functions each calling the next: the values' names grow with the nesting (past LLVM's 1024 characters)."""
    levels = [helper.make_function(DOMAIN, "L0", ["a"], ["b"], [helper.make_node("Neg", ["a"], ["b"])], OPSETS)]
    levels += [helper.make_function(DOMAIN, f"L{level}", ["a"], ["b"], [
        helper.make_node(f"L{level - 1}", ["a"], ["b"], domain=DOMAIN)], OPSETS) for level in range(1, 300)]
    model = _model([helper.make_node("L299", ["x"], ["y"], domain=DOMAIN)], levels, {"x": [4]}, ["y"])
    x = np.arange(4, dtype=np.float32)
    [y] = tg.compile(model, target="llvm").run([x])
    np.testing.assert_array_equal(y, -x)
