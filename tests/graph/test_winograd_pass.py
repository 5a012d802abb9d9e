"""The ``winograd`` pass: which convolutions it rewrites, and models that use it against onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

import tcomp.graph as tg
from tcomp.graph.compiler import compile_graph
from tcomp.graph.passes.winograd import worth_tiling
from tcomp.graph.pipeline import PassOptions

RNG = np.random.default_rng(77)


def _model(channels: int, size: int, batch: int = 1, **conv: object) -> onnx.ModelProto:
    """A residual block: conv 3x3 + bias -> relu -> conv 3x3 (``conv``'s attributes) + bias -> + x -> relu."""
    attrs = {"pads": [1, 1, 1, 1], **conv}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["a"]),
             helper.make_node("Conv", ["a", "w2", "b2"], ["c2"], **attrs),
             helper.make_node("Add", ["c2", "x"] if not conv else ["c2", "c2"], ["s"]),
             helper.make_node("Relu", ["s"], ["y"])]
    scale = 1 / np.sqrt(9 * channels)
    init = {"w1": RNG.standard_normal((channels, channels, 3, 3)) * scale, "b1": RNG.standard_normal(channels),
            "w2": RNG.standard_normal((channels, channels, 3, 3)) * scale, "b2": RNG.standard_normal(channels)}
    graph = helper.make_graph(
        nodes, "block", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, (batch, channels, size, size))],
        [onnx.ValueInfoProto(name="y")],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in init.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _ops(executor: tg.GraphExecutor) -> list[str]:
    return [m.op for node in executor.graph.nodes for m in node.members()]


def _graph_ops(model: onnx.ModelProto, options: PassOptions | None = None) -> list[str]:
    """The operators of the model's compiled graph (the passes only, no kernels built)."""
    return [m.op for node in compile_graph(model, "llvm", options=options).nodes for m in node.members()]


def _check(model: onnx.ModelProto, executor: tg.GraphExecutor, x: np.ndarray) -> None:
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = executor.run([x])[0]
    assert got.shape == want.shape
    assert float(np.abs(got - want).max()) <= 1e-4 * float(np.abs(want).max())


@pytest.mark.parametrize(("channels", "size", "batch"), [(16, 14, 1), (8, 9, 2), (24, 6, 1)])
def test_residual_block_runs_winograd_and_matches_onnxruntime(channels: int, size: int, batch: int) -> None:
    model = _model(channels, size, batch)
    executor = tg.compile(model, "llvm")
    ops = _ops(executor)
    assert ops.count("conv2d_winograd_nchwc") == 2 and "conv2d_nchwc" not in ops
    x = RNG.standard_normal((batch, channels, size, size)).astype(np.float32)
    _check(model, executor, x)


def test_winograd_can_be_switched_off() -> None:
    ops = _graph_ops(_model(16, 8), PassOptions.without(["winograd"]))
    assert ops.count("conv2d_nchwc") == 2 and "conv2d_winograd_nchwc" not in ops


@pytest.mark.parametrize("conv", [{"strides": [2, 2]}, {"dilations": [2, 2], "pads": [2, 2, 2, 2]},
                                  {"group": 2}])
def test_other_convolutions_stay_direct(conv: dict[str, object]) -> None:
    model = _model(16, 10, **conv)
    if conv.get("group"):
        weights = {t.name: t for t in model.graph.initializer}
        w2 = numpy_helper.to_array(weights["w2"])[:, :8]
        model.graph.initializer.remove(weights["w2"])
        model.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(w2), "w2"))
    ops = _graph_ops(model)
    assert ops.count("conv2d_winograd_nchwc") == 1 and ops.count("conv2d_nchwc") == 1


def test_few_channels_and_small_planes_stay_direct() -> None:
    assert "conv2d_winograd_nchwc" not in _graph_ops(_model(4, 8))
    for size in (3, 4, 5):  # one tile; four tiles 39% used
        assert "conv2d_winograd_nchwc" not in _graph_ops(_model(16, size))


def test_planes_worth_tiling() -> None:
    assert [size for size in range(1, 10) if worth_tiling(size, size)] == [6, 7, 8, 9]
    assert worth_tiling(4, 16) and not worth_tiling(4, 8) and not worth_tiling(2, 100)


def test_pass_prints_its_graph() -> None:
    printed: dict[str, str] = {}
    compile_graph(_model(8, 6), "llvm", dump=lambda name, graph: printed.__setitem__(name, str(graph)))
    assert "winograd_kernel" in printed["winograd"] and "conv2d_winograd_nchwc" in printed["winograd"]
    assert "winograd_kernel" not in printed["fold_constants"]  # the kernel transform is a constant after folding
