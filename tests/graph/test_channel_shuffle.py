"""``fold_channel_shuffle`` and the ``channel_shuffle`` operator: ShuffleNet's reshape-transpose-reshape as one
operator, moved behind channel-by-channel readers or folded into a convolution's weights; against onnxruntime on
small built graphs (NCHW and blocked producers) and on the onnx package's ShuffleNet, plus the printed pass result.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

import tcomp.graph as tg
from tcomp.graph import testing
from tcomp.graph.infer import infer_types
from tcomp.graph.ir import Graph, GraphError, TensorType, make_node
from tcomp.graph.op import get_op
from tcomp.graph.passes.channel_shuffle import fold_channel_shuffle

RNG = np.random.default_rng(11)


def _shuffle_nodes(x: str, y: str, channels: int, groups: int, size: int) -> list[onnx.NodeProto]:
    return [
        helper.make_node("Reshape", [x, f"{y}_s1"], [f"{y}_r"]),
        helper.make_node("Transpose", [f"{y}_r"], [f"{y}_t"], perm=[0, 2, 1, 3, 4]),
        helper.make_node("Reshape", [f"{y}_t", f"{y}_s2"], [y]),
    ], {f"{y}_s1": np.array([1, groups, channels // groups, size, size], np.int64),
        f"{y}_s2": np.array([1, channels, size, size], np.int64)}


def _unit(channels: int, groups: int, size: int, last_groups: int) -> onnx.ModelProto:
    """grouped 1x1 conv + relu -> shuffle -> depthwise 3x3 + bias -> relu -> 1x1 conv (``last_groups``) -> y."""
    shuffle, shapes = _shuffle_nodes("a", "s", channels, groups, size)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], group=groups),
             helper.make_node("Relu", ["c1"], ["a"]), *shuffle,
             helper.make_node("Conv", ["s", "wd", "bd"], ["d"], group=channels, pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["d"], ["e"]),
             helper.make_node("Conv", ["e", "w2"], ["y"], group=last_groups)]
    init = {"w1": RNG.standard_normal((channels, channels // groups, 1, 1)).astype(np.float32) * 0.3,
            "wd": RNG.standard_normal((channels, 1, 3, 3)).astype(np.float32) * 0.3,
            "bd": RNG.standard_normal(channels).astype(np.float32),
            "w2": RNG.standard_normal((channels, channels // last_groups, 1, 1)).astype(np.float32) * 0.3, **shapes}
    graph = helper.make_graph(nodes, "unit", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT,
                                                                            (1, channels, size, size))],
                              [onnx.ValueInfoProto(name="y")], [numpy_helper.from_array(v, k) for k, v in init.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _against_onnxruntime(model: onnx.ModelProto, x: np.ndarray) -> tg.GraphExecutor:
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    executor = tg.compile(model, "llvm")
    np.testing.assert_allclose(executor.run([x])[0], want[0], rtol=1e-4, atol=1e-4)
    return executor


@pytest.mark.parametrize(("channels", "groups", "last_groups"), [(136, 4, 4), (64, 4, 1), (48, 3, 3), (32, 4, 4)])
def test_shuffle_in_a_shufflenet_unit(channels: int, groups: int, last_groups: int) -> None:
    """NCHW producers (136 channels in 4 groups: narrow blocks; the shuffle is read by the NCHW depthwise
    convolution, in its kernel) and blocked ones (64, 32: whole vectors); a dense last convolution takes the shuffle
    into its weights."""
    model = _unit(channels, groups, 8, last_groups)
    x = RNG.standard_normal((1, channels, 8, 8)).astype(np.float32)
    executor = _against_onnxruntime(model, x)
    members = [m.op for n in executor.graph.nodes for m in n.members()]
    assert "transpose" not in members
    assert members.count("channel_shuffle") == (0 if last_groups == 1 else 1)
    if channels == 136:  # no copy kernel: read by the depthwise convolution
        assert not [n for n in executor.graph.nodes if n.op in ("channel_shuffle", "layout_transform")]


def test_pass_output_golden() -> None:
    """A shuffle followed by channel-by-channel operators and a convolution of one group: it moves behind them
    (their constants permuted) and disappears into the convolution's weights."""
    g = infer_types(Graph("g", ("x",), ("y",), (
        make_node("reshape", "r1", ["x"], ["a"], shape=(1, 2, 3, 2, 2)),
        make_node("transpose", "t", ["a"], ["b"], perm=(0, 2, 1, 3, 4)),
        make_node("reshape", "r2", ["b"], ["c"], shape=(1, 6, 2, 2)),
        make_node("add", "plus", ["c", "bias"], ["d"]),
        make_node("relu", "act", ["d"], ["e"]),
        make_node("conv2d", "conv", ["e", "w"], ["y"], strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1),
                  groups=1),
    ), params={"bias": np.arange(6, dtype=np.float32).reshape(1, 6, 1, 1),
               "w": np.arange(24, dtype=np.float32).reshape(4, 6, 1, 1)},
        types={"x": TensorType((1, 6, 2, 2), "float32")}))
    out = fold_channel_shuffle(g)
    assert "\n".join(line for line in str(out).splitlines() if "param" not in line) == """\
graph g(%x: float32[1, 6, 2, 2]) -> (%y) {
  %d/unshuffled = add(%x, %bias/shuffled) : float32[1, 6, 2, 2]
  %e/unshuffled = relu(%d/unshuffled) : float32[1, 6, 2, 2]
  %y = conv2d(%e/unshuffled, %w/shuffled, dilations=(1, 1), groups=1, pads=(0, 0, 0, 0), strides=(1, 1)) : \
float32[1, 4, 2, 2]
}"""
    # the shuffle reads input channel (c % 2) * 3 + c // 2: 0 3 1 4 2 5; the bias and weights follow its channels
    np.testing.assert_array_equal(out.params["bias/shuffled"].reshape(-1), [0, 2, 4, 1, 3, 5])
    np.testing.assert_array_equal(out.params["w/shuffled"][0].reshape(-1), [0, 2, 4, 1, 3, 5])
    assert fold_channel_shuffle(out) is out
    x = RNG.standard_normal((1, 6, 2, 2)).astype(np.float32)
    np.testing.assert_allclose(tg.compile(out, "llvm").run([x])[0], tg.compile(g, "llvm").run([x])[0], rtol=1e-5)


@pytest.mark.parametrize("shape", [(1, 12, 3, 5), (2, 3, 2, 2, 4)])
def test_channel_shuffle_operator_matches_its_numpy_definition(shape: tuple[int, ...]) -> None:
    """NCHW and blocked NCHW4c data (12 channels in 3 groups): the compiled operator against its evaluation."""
    g = infer_types(Graph("g", ("x",), ("y",), (make_node("channel_shuffle", "s", ["x"], ["y"], groups=3),),
                          types={"x": TensorType(shape, "float32")}))
    x = RNG.standard_normal(shape).astype(np.float32)
    [want] = get_op("channel_shuffle").evaluate(g.nodes[0], [x])
    executor = tg.compile(g, "llvm", options=tg.PassOptions.without(["alter_layout"]))
    np.testing.assert_array_equal(executor.run([x])[0], want)
    plain = x if len(shape) == 4 else x.transpose(0, 1, 4, 2, 3).reshape(shape[0], 12, 2, 2)
    expected = plain.reshape(plain.shape[0], 3, 4, *plain.shape[2:]).transpose(0, 2, 1, 3, 4).reshape(plain.shape)
    if len(shape) == 5:
        expected = expected.reshape(shape[0], 3, 4, 2, 2).transpose(0, 1, 3, 4, 2)
    np.testing.assert_array_equal(want, expected)


def test_channel_shuffle_checks_its_groups() -> None:
    with pytest.raises(GraphError, match="do not split into 5 groups"):
        infer_types(Graph("g", ("x",), ("y",), (make_node("channel_shuffle", "s", ["x"], ["y"], groups=5),),
                          types={"x": TensorType((1, 12, 2, 2), "float32")}))


def test_onnx_shufflenet_matches_onnxruntime() -> None:
    """The onnx package's light ShuffleNet with random weights (as shipped, every weight is 0.02 and every input
    gives the same output), its logits compared too."""
    path = Path(onnx.__file__).resolve().parent / "backend" / "test" / "data" / "light" / "light_shufflenet.onnx"
    if not path.is_file():
        pytest.skip("the onnx package has no light ShuffleNet")
    model = testing.expose_logits(testing.random_weights(onnx.load(str(path)), seed=3)).SerializeToString()
    x = RNG.standard_normal((1, 3, 224, 224)).astype(np.float32)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    wants = session.run(None, {session.get_inputs()[0].name: x})
    executor = tg.compile(model, "llvm")
    members = [m.op for n in executor.graph.nodes for m in n.members()]
    assert "transpose" not in members and members.count("channel_shuffle") == 16
    gots = executor.run([x])
    assert len(gots) == 2 and np.ptp(wants[1]) > 0.1 * np.abs(wants[1]).max()  # the logits differ by class
    for got, want in zip(gots, wants):
        assert float(np.abs(got - want).max()) <= 1e-4 * float(np.abs(want).max())
