"""``simplify``'s ``tanh(z) + 1`` -> ``sigmoid(2 z) * 2`` (the tanh GELU of GPT-2-class exports) and the tanh form of
the ``Gelu`` operator: same function, checked against a float64 reference over the whole range (the sigmoid form has
no cancellation where ``tanh(z)`` is close to -1) and on the exported GPT-2 against PyTorch."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import tcomp.graph as tg
from tcomp.graph.ir import Graph
from tests.graph.hf_data import DATA, stored

RNG = np.random.default_rng(5)


def _ops(graph: Graph) -> list[str]:
    """The operators of an optimized graph, looking into fused groups."""
    return [member.op for node in graph.nodes for member in node.members()]


def _model(shape: tuple[int, ...], one: np.ndarray, one_first: bool, extra_reader: bool) -> bytes:
    """``y = (tanh(x) + one) * 0.5`` (``one`` on the left of the add with ``one_first``); with ``extra_reader``
    ``tanh(x)`` is a second output."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    outputs = [y]
    add_inputs = ["one", "t"] if one_first else ["t", "one"]
    nodes = [helper.make_node("Tanh", ["x"], ["t"]), helper.make_node("Add", add_inputs, ["s"]),
             helper.make_node("Mul", ["s", "half"], ["y"])]
    if extra_reader:
        outputs.append(helper.make_tensor_value_info("t", TensorProto.FLOAT, None))
    inits = [numpy_helper.from_array(one, "one"), numpy_helper.from_array(np.array(0.5, np.float32), "half")]
    graph = helper.make_graph(nodes, "tanh_gate", [x], outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _inputs(shape: tuple[int, ...]) -> np.ndarray:
    x = RNG.standard_normal(shape).astype(np.float32) * 6
    flat = x.reshape(-1)
    extremes = np.array([0.0, -0.0, 1e-30, -1e-30, 9.5, -9.5, 20.0, -20.0, 44.0, -44.0, 1e30, -1e30, np.inf, -np.inf],
                        np.float32)
    flat[:min(len(extremes), flat.size)] = extremes[:flat.size]
    return x


@pytest.mark.parametrize("shape", [(3, 37), (1, 8), (2, 5, 129)])
@pytest.mark.parametrize("one_first", [False, True])
def test_tanh_plus_one_becomes_a_sigmoid(shape: tuple[int, ...], one_first: bool) -> None:
    executor = tg.compile(_model(shape, np.array([1.0], np.float32), one_first, False), "llvm")
    ops = _ops(executor.graph)
    assert "tanh" not in ops and "sigmoid" in ops
    x = _inputs(shape)
    [got] = executor.run([x])
    with np.errstate(over="ignore"):
        want = 1.0 / (1.0 + np.exp(-2.0 * x.astype(np.float64)))  # 0.5 (1 + tanh(x)) without float64's cancellation
    # within a few float32 ulps of the float64 function everywhere, small results included (no cancellation)
    np.testing.assert_allclose(got, want, rtol=4e-7, atol=1e-37)


@pytest.mark.parametrize("one, extra_reader", [(np.array(1.5, np.float32), False),
                                               (np.ones((2, 1, 1), np.float32), False),
                                               (np.array(1.0, np.float32), True)])
def test_other_adds_keep_their_tanh(one: np.ndarray, extra_reader: bool) -> None:
    """Not 1, a 1 that broadcasts the result to more dimensions, or a tanh read elsewhere too: unchanged."""
    shape = (3, 7)
    executor = tg.compile(_model(shape, one, False, extra_reader), "llvm")
    assert "tanh" in _ops(executor.graph)
    x = RNG.standard_normal(shape).astype(np.float32)
    got = executor.run([x])
    np.testing.assert_allclose(got[0], (np.tanh(x) + one) * 0.5, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("shape", [(4, 33), (1, 768)])
def test_gelu_tanh_form(shape: tuple[int, ...]) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))
    graph = helper.make_graph([helper.make_node("Gelu", ["x"], ["y"], approximate="tanh")], "gelu", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    executor = tg.compile(model.SerializeToString(), "llvm")
    v = _inputs(shape)
    [got] = executor.run([v])
    d = v.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        want = d / (1.0 + np.exp(-2.0 * math.sqrt(2.0 / math.pi) * (d + 0.044715 * d**3)))
    # the float32 argument u = sqrt(2/pi) (x + 0.044715 x^3) carries its rounding into e^-2u: relative error grows
    # with |u| in the negative tail, for any float32 evaluation; the tanh form cancels there as well
    finite = np.isfinite(v)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-5, atol=1e-37)
    f = v[finite]
    with np.errstate(over="ignore"):
        tanh_form = 0.5 * f * (1 + np.tanh(np.float32(math.sqrt(2 / math.pi)) * (f + np.float32(0.044715) * f**3)))
    ours, theirs = np.abs(got[finite] - want[finite]), np.abs(tanh_form - want[finite])
    assert (ours <= theirs + 4e-7 * np.abs(want[finite])).all()


def test_gpt2_tanh_gelu_becomes_a_sigmoid_and_matches_pytorch() -> None:
    path = DATA / "gpt2_tiny.onnx"
    tanhs = sum(n.op_type == "Tanh" for n in onnx.load(path, load_external_data=False).graph.node)
    executor = tg.compile(path, "llvm")
    ops = _ops(executor.graph)
    assert tanhs > 0 and "tanh" not in ops and ops.count("sigmoid") >= tanhs
    inputs, wanted = stored("gpt2_tiny")
    want = wanted["output"]
    [got] = executor.run(inputs)
    assert float(np.abs(got - want).max()) <= 1e-4 * float(np.abs(want).max())
