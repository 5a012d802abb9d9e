"""``float16_products``: float16 products accumulate in float32 on targets without float16 arithmetic."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import tcomp.graph as tg
from tcomp.graph.frontend import from_onnx
from tcomp.graph.passes.float_widening import float16_products

HALF = TensorProto.FLOAT16


def _model(nodes: list[onnx.NodeProto], inputs: dict[str, list[int]], outputs: list[str]) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, HALF, s) for n, s in inputs.items()],
                              [helper.make_tensor_value_info(n, HALF, None) for n in outputs])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _relative_error(got: np.ndarray, exact: np.ndarray) -> float:
    return float(np.abs(got.astype(np.float64) - exact).max() / np.abs(exact).max())


@pytest.mark.parametrize("depth", [4096, 1001])
def test_deep_matmul_rounds_once(depth: int) -> None:
    rng = np.random.default_rng(depth)
    a = rng.standard_normal((8, depth)).astype(np.float16)
    b = rng.standard_normal((depth, 24)).astype(np.float16)
    ex = tg.compile(_model([helper.make_node("MatMul", ["a", "b"], ["c"])], {"a": [8, depth], "b": [depth, 24]},
                           ["c"]), target="llvm")
    [c] = ex.run([a, b])
    assert c.dtype == np.float16
    exact = a.astype(np.float64) @ b.astype(np.float64)
    once = (a.astype(np.float32) @ b.astype(np.float32)).astype(np.float16)
    # a float16 accumulation is off by ~2e-2 at K=4096; one rounding of the float32 sum by half a float16 ulp
    assert _relative_error(c, exact) <= 2 * _relative_error(once, exact) + 1e-3


def test_convolution_with_a_constant_weight() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 96, 9, 11)).astype(np.float16)
    w = (rng.standard_normal((40, 96, 3, 3)) / 10).astype(np.float16)
    model = _model([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], {"x": [1, 96, 9, 11]}, ["y"])
    model.graph.initializer.append(onnx.numpy_helper.from_array(w, "w"))
    [y] = tg.compile(model, target="llvm").run([x])
    assert y.dtype == np.float16
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    exact = np.zeros((1, 40, 9, 11))
    for dy in range(3):
        for dx in range(3):
            exact += np.einsum("nchw,oc->nohw", xp[:, :, dy:dy + 9, dx:dx + 11], w[:, :, dy, dx].astype(np.float64))
    assert _relative_error(y, exact) < 1e-3


def test_the_rewrite_casts_once_per_value() -> None:
    nodes = [helper.make_node("MatMul", ["a", "b"], ["c"]), helper.make_node("MatMul", ["a", "c"], ["d"])]
    graph = from_onnx(_model(nodes, {"a": [4, 4], "b": [4, 4]}, ["d"]))
    rewritten = float16_products(graph)
    ops = [node.op for node in rewritten.nodes]
    assert ops.count("matmul") == 2
    # a and b widened once each, a shared by both products; c narrowed (a float16 value, as ONNX rounds it) and
    # widened again; d narrowed
    assert ops.count("cast") == 5
    assert all(rewritten.type_of(node.outputs[0]).dtype == "float32" for node in rewritten.nodes
               if node.op == "matmul")
    assert rewritten.type_of("d").dtype == "float16"
    assert float16_products(rewritten) is rewritten  # nothing left to widen
    float_graph = from_onnx(helper.make_model(helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])], "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 2]) for n in "ab"],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, None)]), opset_imports=[helper.make_opsetid("", 17)]))
    assert float16_products(float_graph) is float_graph
