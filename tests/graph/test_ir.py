"""The graph IR: printer (golden text), verifier, type inference and its errors."""

from __future__ import annotations

import numpy as np
import pytest

from tcomp.graph.infer import infer_types
from tcomp.graph.ir import Graph, GraphError, TensorType, make_node, verify_graph
from tcomp.graph.passes import fuse_ops

GOLDEN = """\
graph g(%x: float32[1, 3, 4, 4]) -> (%y) {
  param %w: float32[8, 3, 1, 1]
  param %b: float32[1, 8, 1, 1] = [0., 1., 2., 3., 4., 5., 6., 7.]
  %c = conv2d(%x, %w, dilations=(1, 1), groups=1, pads=(0, 0, 0, 0), strides=(1, 1)) : float32[1, 8, 4, 4]
  %a = add(%c, %b) : float32[1, 8, 4, 4]
  %r = relu(%a) : float32[1, 8, 4, 4]
  %y = reshape(%r, shape=(1, 128)) : float32[1, 128]
}"""


def sample() -> Graph:
    params = {"w": np.ones((8, 3, 1, 1), np.float32), "b": np.arange(8, dtype=np.float32).reshape(1, 8, 1, 1)}
    nodes = (
        make_node("conv2d", "conv", ["x", "w"], ["c"], strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), groups=1),
        make_node("add", "bias", ["c", "b"], ["a"]),
        make_node("relu", "relu", ["a"], ["r"]),
        make_node("reshape", "flat", ["r"], ["y"], shape=(1, 128)),
    )
    return infer_types(Graph("g", ("x",), ("y",), nodes, params, {"x": TensorType((1, 3, 4, 4), "float32")}))


def test_printer_golden() -> None:
    assert str(sample()) == GOLDEN


def test_fused_graph_prints_its_groups() -> None:
    text = str(fuse_ops(sample()))
    assert "fused(%x, %w, %b, pattern=4) : float32[1, 8, 4, 4] {" in text
    assert "      %r = relu(%a) : float32[1, 8, 4, 4]" in text


def test_members_look_into_fused_groups() -> None:
    fused = fuse_ops(sample())
    groups = [node for node in fused.nodes if node.op == "fused"]
    assert groups and all(node.members() == tuple(node.attr("body").nodes) for node in groups)
    assert [m.op for node in sample().nodes for m in node.members()] == [node.op for node in sample().nodes]
    assert sorted(m.op for node in fused.nodes for m in node.members()) == sorted(n.op for n in sample().nodes)


def test_verifier_accepts_and_rejects() -> None:
    g = sample()
    verify_graph(g)
    bad = Graph("g", ("x",), ("y",), tuple(reversed(g.nodes)), g.params, g.types)
    with pytest.raises(GraphError, match="before it is defined"):
        verify_graph(bad)
    twice = Graph("g", ("x",), ("y",), (*g.nodes, make_node("relu", "relu", ["x"], ["z"])), g.params, g.types)
    with pytest.raises(GraphError, match="two nodes are named 'relu'"):
        verify_graph(twice)
    missing = Graph("g", ("x",), ("nothing",), g.nodes, g.params, g.types)
    with pytest.raises(GraphError, match="output 'nothing' is never defined"):
        verify_graph(missing)


@pytest.mark.parametrize("node, message", [
    (make_node("add", "n", ["x", "v"], ["y"]), "do not broadcast"),
    (make_node("reshape", "n", ["x"], ["y"], shape=(5, 5)), "cannot reshape"),
    (make_node("transpose", "n", ["x"], ["y"], perm=(0, 0)), "not a permutation"),
    (make_node("sum", "n", ["x"], ["y"], axes=(4,), keepdims=True), "out of range"),
    (make_node("unknown_op", "n", ["x"], ["y"]), "unknown graph operator"),
    (make_node("relu", "n", ["ghost"], ["y"]), "not defined"),
    (make_node("cast", "n", ["x"], ["y"], dtype="complex"), "attribute dtype"),
])
def test_inference_errors_name_the_node(node, message) -> None:  # type: ignore[no-untyped-def]
    types = {"x": TensorType((2, 3), "float32"), "v": TensorType((4,), "float32")}
    g = Graph("g", ("x", "v"), ("y",), (node,), {}, types)
    with pytest.raises(GraphError, match=message):
        infer_types(g)


def test_small_integer_values_propagate() -> None:
    nodes = (
        make_node("shape_of", "s", ["x"], ["shape"]),
        make_node("take", "t", ["shape", "idx"], ["dims"], axis=0),
        make_node("multiply", "m", ["dims", "two"], ["doubled"]),
        make_node("concat", "c", ["doubled", "dims"], ["out"], axis=0),
    )
    params = {"idx": np.array([1, 0], np.int64), "two": np.array([2], np.int64)}
    g = infer_types(Graph("g", ("x",), ("out",), nodes, params, {"x": TensorType((3, 5), "float32")}))
    np.testing.assert_array_equal(g.values["out"], [10, 6, 5, 3])
    assert g.types["out"] == TensorType((4,), "int64")


def test_tensor_type_checks() -> None:
    with pytest.raises(GraphError, match="not a non-negative int"):
        TensorType((2, -1), "float32")
    assert TensorType((2, 3), "float16").nbytes == 12
