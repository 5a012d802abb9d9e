"""``merge_projections``: products of one input by several constant weights become one product and a split, on odd
sizes, with and without biases, against numpy and onnxruntime; what stays apart."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import tcomp.graph as tg
from tcomp.graph.infer import infer_types
from tcomp.graph.ir import Graph, TensorType, make_node, verify_graph
from tcomp.graph.passes.merge_projections import merge_projections

RNG = np.random.default_rng(41)


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def graph(nodes: list[tg.Node], inputs: dict[str, tuple[int, ...]], outputs: list[str],
          params: dict[str, np.ndarray]) -> Graph:
    types = {k: TensorType(v, "float32") for k, v in inputs.items()}
    g = infer_types(Graph("g", tuple(inputs), tuple(outputs), tuple(nodes), params, types))
    verify_graph(g)
    return g


def projections(sizes: tuple[int, ...], bias: tuple[bool, ...], depth: int = 13) -> Graph:
    """``x [1, 7, depth]`` times one weight per size (plus a bias where asked), each result scaled by 2."""
    nodes, params, outputs = [], {}, []
    for i, (n, with_bias) in enumerate(zip(sizes, bias)):
        params[f"w{i}"] = rand(depth, n)
        nodes.append(make_node("matmul", f"mm{i}", ["x", f"w{i}"], [f"p{i}"]))
        value = f"p{i}"
        if with_bias:
            params[f"b{i}"] = rand(n)
            nodes.append(make_node("add", f"add{i}", [f"b{i}", value] if i % 2 else [value, f"b{i}"], [f"a{i}"]))
            value = f"a{i}"
        params[f"two{i}"] = np.array(2.0, np.float32)
        nodes.append(make_node("multiply", f"mul{i}", [value, f"two{i}"], [f"y{i}"]))
        outputs.append(f"y{i}")
    return graph(nodes, {"x": (1, 7, depth)}, outputs, params)


def expected(g: Graph, x: np.ndarray) -> list[np.ndarray]:
    results = []
    for i in range(len(g.outputs)):
        value = x @ g.params[f"w{i}"]
        if f"b{i}" in g.params:
            value = value + g.params[f"b{i}"]
        results.append(value * 2)
    return results


def run(g: Graph, x: np.ndarray) -> list[np.ndarray]:
    return tg.compile(g, "llvm -num-cores=2").run({"x": x})


@pytest.mark.parametrize("bias", [True, False])
def test_three_projections_become_one_product_and_a_split(bias: bool) -> None:
    g = projections((5, 9, 16), (bias,) * 3)
    merged = merge_projections(g)
    ops = [n.op for n in merged.nodes]
    assert ops.count("matmul") == 1 and ops.count("split") == 1 and ops.count("add") == (1 if bias else 0)
    (split,) = [n for n in merged.nodes if n.op == "split"]
    assert split.outputs == (("a0", "a1", "a2") if bias else ("p0", "p1", "p2")) and split.attr("sizes") == (5, 9, 16)
    (product,) = [n for n in merged.nodes if n.op == "matmul"]
    assert merged.params[product.inputs[1]].shape == (13, 30)
    assert merged.outputs == g.outputs
    x = rand(1, 7, 13)
    for got, want in zip(run(merged, x), expected(g, x)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_what_stays_apart() -> None:
    # one product with a bias, one without: no group of two
    g = projections((5, 9), (True, False))
    assert merge_projections(g) is g
    # a weight computed at run time, and a single projection
    nodes = [make_node("matmul", "mm0", ["x", "w"], ["p0"]), make_node("matmul", "mm1", ["x", "x_t"], ["p1"]),
             make_node("transpose", "t", ["x"], ["x_t"], perm=(0, 2, 1))]
    g = graph([nodes[2], nodes[0], nodes[1]], {"x": (1, 7, 7)}, ["p0", "p1"], {"w": rand(7, 3)})
    assert merge_projections(g) is g


def test_a_product_that_is_a_graph_output_still_merges() -> None:
    """The split output that replaces a product keeps its name, so the graph output reads the same value."""
    g = projections((5, 9, 6), (False, False, False))
    g2 = graph(list(g.nodes), {"x": (1, 7, 13)}, [*g.outputs, "p1"], dict(g.params))
    merged = merge_projections(g2)
    assert [n.op for n in merged.nodes].count("matmul") == 1
    x = rand(1, 7, 13)
    results = run(merged, x)
    np.testing.assert_allclose(results[3], x @ g.params["w1"], rtol=1e-5, atol=1e-5)


def test_attention_projections_match_onnxruntime() -> None:
    """Q, K and V of a 3-head self-attention over 11 tokens (as exporters write it): the compiled model merges the
    projections, and matches onnxruntime."""
    seq, heads, head = 11, 3, 5
    hidden = heads * head
    inits, nodes = [], []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    def linear(name: str) -> str:
        nodes.append(helper.make_node("MatMul", ["x", const(f"{name}_w", rand(hidden, hidden))], [f"{name}_m"]))
        nodes.append(helper.make_node("Add", [f"{name}_m", const(f"{name}_b", rand(hidden))], [f"{name}_l"]))
        shape = const(f"{name}_s", np.array([1, seq, heads, head], np.int64))
        nodes.append(helper.make_node("Reshape", [f"{name}_l", shape], [f"{name}_r"]))
        perm = [0, 2, 3, 1] if name == "k" else [0, 2, 1, 3]
        nodes.append(helper.make_node("Transpose", [f"{name}_r"], [f"{name}_t"], perm=perm))
        return f"{name}_t"

    q, k, v = linear("q"), linear("k"), linear("v")
    nodes.append(helper.make_node("MatMul", [q, k], ["s"]))
    nodes.append(helper.make_node("Mul", ["s", const("scale", np.array(head ** -0.5, np.float32))], ["ss"]))
    nodes.append(helper.make_node("Softmax", ["ss"], ["p"], axis=-1))
    nodes.append(helper.make_node("MatMul", ["p", v], ["o"]))
    nodes.append(helper.make_node("Transpose", ["o"], ["ot"], perm=[0, 2, 1, 3]))
    nodes.append(helper.make_node("Reshape", ["ot", const("m", np.array([1, seq, hidden], np.int64))], ["y"]))
    value = helper.make_tensor_value_info
    model = helper.make_model(
        helper.make_graph(nodes, "attn", [value("x", TensorProto.FLOAT, [1, seq, hidden])],
                          [value("y", TensorProto.FLOAT, [1, seq, hidden])], inits),
        opset_imports=[helper.make_opsetid("", 17)])
    x = rand(1, seq, hidden)
    executor = tg.compile(model.SerializeToString(), "llvm -num-cores=2")
    assert sum(1 for n in executor.graph.nodes if "matmul" in n.op or "panel" in n.op) <= 2
    reference = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]
    np.testing.assert_allclose(executor.run({"x": x})[0], reference, rtol=1e-4, atol=1e-5)
