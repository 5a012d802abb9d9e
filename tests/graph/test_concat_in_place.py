"""``concat_in_place`` and the memory plan's concat regions: producers write their parts straight into the result.

Small ONNX models built with onnx.helper run with tcomp and onnxruntime: parts that are also read elsewhere, graph
outputs, constants, graph inputs, listed twice, held by two concats, nested concats (DenseNet's pattern), an
elementwise reader pushed in front of the parts, and a concat that is not contiguous per part. Plus a real model
with concatenations (DeepLabV3's ASPP) against PyTorch's stored output, and the printed pass result.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

import tcomp.graph as tg
from tcomp.graph.infer import infer_types
from tcomp.graph.ir import Graph, TensorType, make_node
from tcomp.graph.passes.concat_in_place import concat_in_place
from tcomp.graph.passes.plan_memory import plan_memory

RNG = np.random.default_rng(7)
DATA = Path(__file__).resolve().parent.parent / "data"


def _weights(out_channels: int, in_channels: int) -> np.ndarray:
    return RNG.standard_normal((out_channels, in_channels, 1, 1)).astype(np.float32) * 0.3


def _model(nodes: list[onnx.NodeProto], outputs: Sequence[str], initializers: dict[str, np.ndarray],
           inputs: dict[str, tuple[int, ...]]) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "concat_test",
        [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, s) for n, s in inputs.items()],
        [onnx.ValueInfoProto(name=n) for n in outputs],
        [numpy_helper.from_array(v, k) for k, v in initializers.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _conv(name: str, x: str, w: str, y: str) -> onnx.NodeProto:
    return helper.make_node("Conv", [x, w], [y], name=name)


def _check(model: onnx.ModelProto, feeds: dict[str, np.ndarray], elided: int) -> tg.GraphExecutor:
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    executor = tg.compile(model, "llvm")
    got = executor.run(dict(feeds))
    assert got is not None
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    assert len(executor.graph.meta["memory_plan"].elided) == elided
    for _ in range(2):  # storage reused across runs: the same results
        again = executor.run(dict(feeds))
        for g, w in zip(again, want):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    return executor


def _x(channels: int = 8, size: int = 6) -> dict[str, np.ndarray]:
    return {"x": RNG.standard_normal((1, channels, size, size)).astype(np.float32)}


def test_producers_write_parts_and_relu_moves_in_front() -> None:
    """SqueezeNet's fire module with ShuffleNet's relu after the concat: two convolutions, concat, relu, conv."""
    model = _model([
        _conv("c1", "x", "w1", "a"), _conv("c2", "x", "w2", "b"),
        helper.make_node("Concat", ["a", "b"], ["c"], axis=1),
        helper.make_node("Relu", ["c"], ["r"]),
        _conv("c3", "r", "w3", "y"),
    ], ["y"], {"w1": _weights(16, 8), "w2": _weights(12, 8), "w3": _weights(8, 28)}, {"x": (1, 8, 6, 6)})
    executor = _check(model, _x(), elided=1)
    assert "relu" not in [n.op for n in executor.graph.nodes]  # fused into the producers


@pytest.mark.parametrize("case", ["read_elsewhere", "graph_output", "constant", "graph_input", "twice", "two_concats"])
def test_parts_that_cannot_or_can_lie_in_place(case: str) -> None:
    """Every case computes the same as onnxruntime; a part that cannot lie in the result is copied first."""
    init = {"w1": _weights(8, 8), "w2": _weights(8, 8), "k": RNG.standard_normal((1, 4, 6, 6)).astype(np.float32)}
    nodes = [_conv("c1", "x", "w1", "a"), _conv("c2", "x", "w2", "b")]
    outputs = ["y"]
    if case == "read_elsewhere":  # a is read by the concat and, later, by an add
        nodes += [helper.make_node("Concat", ["a", "b"], ["c"], axis=1),
                  helper.make_node("Exp", ["c"], ["e"]),  # in place over c? no: a is still alive in it
                  helper.make_node("ReduceSum", ["e"], ["s"], keepdims=1),
                  helper.make_node("Add", ["a", "s"], ["y"])]
    elif case == "graph_output":
        nodes.append(helper.make_node("Concat", ["a", "b"], ["y"], axis=1))
        outputs = ["y", "a"]
    elif case == "constant":
        nodes.append(helper.make_node("Concat", ["a", "k", "b"], ["y"], axis=1))
    elif case == "graph_input":
        nodes.append(helper.make_node("Concat", ["x", "a"], ["y"], axis=1))
    elif case == "twice":
        nodes.append(helper.make_node("Concat", ["a", "b", "a"], ["y"], axis=1))
    else:  # a in two concats
        nodes += [helper.make_node("Concat", ["a", "b"], ["c"], axis=1),
                  helper.make_node("Concat", ["b", "a"], ["d"], axis=1),
                  helper.make_node("Sub", ["c", "d"], ["y"])]
    model = _model(nodes, outputs, {k: v for k, v in init.items() if any(k in n.input for n in nodes)},
                   {"x": (1, 8, 6, 6)})
    _check(model, _x(), elided=2 if case == "two_concats" else 1)


def test_nested_concats_share_one_buffer() -> None:
    """DenseNet's dense block: each layer's output is appended to the concatenation of all before it."""
    nodes = []
    init = {}
    features = "x"
    channels = 8
    for k in range(3):
        init[f"w{k}"] = _weights(4, channels)
        nodes.append(helper.make_node("Relu", [features], [f"r{k}"]))
        nodes.append(_conv(f"c{k}", f"r{k}", f"w{k}", f"n{k}"))
        nodes.append(helper.make_node("Concat", [features, f"n{k}"], [f"f{k}"], axis=1))
        features, channels = f"f{k}", channels + 4
    nodes.append(helper.make_node("GlobalAveragePool", [features], ["y"]))
    executor = _check(_model(nodes, ["y"], init, {"x": (1, 8, 5, 5)}), _x(8, 5), elided=3)
    plan = executor.graph.meta["memory_plan"]
    concats = [n for n in executor.graph.nodes if n.name in plan.elided]
    values = {v for n in concats for v in (*n.inputs, *n.outputs)}
    assert len(values) == 7 and len({plan.storage_of[v] for v in values}) == 1  # all in the last one's buffer


def test_concat_not_contiguous_per_part_keeps_its_kernel() -> None:
    """Along the rows of a [1, C, H, W] tensor (40 channels: several channel blocks in NCHW[x]c on AVX2 and
    AVX-512) each part is strided: the concat stays a kernel."""
    model = _model([_conv("c1", "x", "w1", "a"), _conv("c2", "x", "w2", "b"),
                    helper.make_node("Concat", ["a", "b"], ["y"], axis=2)],
                   ["y"], {"w1": _weights(40, 8), "w2": _weights(40, 8)}, {"x": (1, 8, 6, 6)})
    executor = _check(model, _x(), elided=0)
    assert any("concat" in n.op or n.op == "fused" for n in executor.graph.nodes)


def test_export_and_load_keep_the_offsets(tmp_path: Path) -> None:
    model = _model([_conv("c1", "x", "w1", "a"), _conv("c2", "x", "w2", "b"),
                    helper.make_node("Concat", ["a", "b"], ["c"], axis=1), _conv("c3", "c", "w3", "y")],
                   ["y"], {"w1": _weights(8, 8), "w2": _weights(4, 8), "w3": _weights(8, 12)}, {"x": (1, 8, 6, 6)})
    feeds = _x()
    executor = _check(model, feeds, elided=1)
    assert executor.program.offset_of
    executor.export(tmp_path / "out")
    loaded = tg.load_executor(tmp_path / "out")
    np.testing.assert_array_equal(loaded.run(dict(feeds))[0], executor.run(dict(feeds))[0])


def test_pass_output_is_printable_and_planned() -> None:
    """The graph after the pass (golden text: a chain of readers moves in front of the parts, one by one) and the
    plan's offsets: the parts back to back in the result's storage."""
    g = infer_types(Graph("g", ("x",), ("y",), (
        make_node("exp", "e1", ["x"], ["a"]),
        make_node("exp", "e2", ["x"], ["b"]),
        make_node("concat", "cat", ["a", "x", "b"], ["c"], axis=1),
        make_node("relu", "r", ["c"], ["y2"]),
        make_node("sigmoid", "s", ["y2"], ["y"]),
    ), types={"x": TensorType((1, 2, 3), "float32")}))
    out = concat_in_place(g)
    assert str(out) == """graph g(%x: float32[1, 2, 3]) -> (%y) {
  %a = exp(%x) : float32[1, 2, 3]
  %b = exp(%x) : float32[1, 2, 3]
  %a/relu = relu(%a) : float32[1, 2, 3]
  %x/relu = relu(%x) : float32[1, 2, 3]
  %b/relu = relu(%b) : float32[1, 2, 3]
  %a/relu/sigmoid = sigmoid(%a/relu) : float32[1, 2, 3]
  %x/relu/sigmoid = sigmoid(%x/relu) : float32[1, 2, 3]
  %b/relu/sigmoid = sigmoid(%b/relu) : float32[1, 2, 3]
  %y = concat(%a/relu/sigmoid, %x/relu/sigmoid, %b/relu/sigmoid, axis=1, in_place=True) : float32[1, 6, 3]
}"""
    assert concat_in_place(out) is out  # nothing left to do
    parts = ("a/relu/sigmoid", "x/relu/sigmoid", "b/relu/sigmoid")
    plan = plan_memory(out).meta["memory_plan"]
    assert plan.elided == ("cat",)
    assert [plan.offset_of.get(v, 0) for v in parts] == [0, 24, 48]
    assert len({plan.storage_of[v] for v in (*parts, "y")}) == 1
    x = RNG.standard_normal((1, 2, 3)).astype(np.float32)
    executor = tg.compile(out, "llvm")
    want = 1 / (1 + np.exp(-np.maximum(np.concatenate([np.exp(x), x, np.exp(x)], axis=1), 0)))
    np.testing.assert_allclose(executor.run([x])[0], want, rtol=1e-5)


def test_deeplabv3_aspp_against_pytorch() -> None:
    """A real exported model with concatenations (the ASPP's five branches) against PyTorch's stored output."""
    path = DATA / "torch_models" / "deeplabv3.onnx"
    with np.load(path.with_suffix(".npz")) as data:
        inputs = {key[len("in0_"):]: data[key] for key in data.files if key.startswith("in0_")}
        want = data["out0"]
    executor = tg.compile(str(path), "llvm")
    assert executor.graph.meta["memory_plan"].elided
    got = executor.run(dict(inputs))[0]
    assert float(np.abs(got - want).max()) <= 1e-4 * float(np.abs(want).max())
