"""``quantized_pooling``: the max pooling of a QDQ model (ResNet's stem, quantized by onnxruntime's
``quantize_static``) pools the bytes; the outputs are those of the float pooling exactly, and within a few steps
of the output's quantization of onnxruntime's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import tcomp.graph as tg
from tcomp.graph.infer import infer_types
from tcomp.graph.ir import Graph, TensorType, make_node
from tcomp.graph.passes.quantized_pooling import quantized_pooling
from tests.graph.test_quantized_convs import (
    APPLIES,
    RNG,
    _assert_within_steps,
    _compile_with_passes,
    _onnxruntime,
    _quantize_static,
)


def _stem(x_shape: tuple, pool: dict, relu: bool) -> onnx.ModelProto:
    """ResNet's stem at a small size: conv 7x7 stride 2 (+ relu), max pool ``pool``, a 1x1 conv; random weights.
    Without ``relu`` the pooled values have a zero point above 0."""
    channels = x_shape[1]
    inits = [numpy_helper.from_array(RNG.normal(0, 0.2, (16, channels, 7, 7)).astype(np.float32), "w1"),
             numpy_helper.from_array(RNG.normal(0, 0.1, (16,)).astype(np.float32), "b1"),
             numpy_helper.from_array(RNG.normal(0, 0.3, (8, 16, 1, 1)).astype(np.float32), "w2")]
    node = helper.make_node
    nodes = [node("Conv", ["x", "w1", "b1"], ["c1"], strides=[2, 2], pads=[3, 3, 3, 3])]
    nodes += [node("Relu", ["c1"], ["r1"])] if relu else [node("Identity", ["c1"], ["r1"])]
    nodes += [node("MaxPool", ["r1"], ["pooled"], **pool), node("Conv", ["pooled", "w2"], ["y"])]
    graph = helper.make_graph(nodes, "stem", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize(("pool", "relu"), [
    ({"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, True),
    ({"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}, False),
    ({"kernel_shape": [2, 3], "strides": [1, 2], "pads": [0, 1, 1, 0]}, False),
])
def test_max_pooling_of_dequantized_bytes_pools_the_bytes(pool: dict, relu: bool, tmp_path: Path) -> None:
    x_shape = (1, 3, 29, 35)
    model = _quantize_static(_stem(x_shape, pool, relu), x_shape, tmp_path)
    executor, graphs = _compile_with_passes(model)
    if APPLIES:
        [pooling] = [n for n in graphs["quantized_pooling"].nodes if n.op == "max_pool2d_nchwc"]
        assert graphs["quantized_pooling"].type_of(pooling.inputs[0]).dtype == "uint8"
    x = RNG.normal(0, 1, x_shape).astype(np.float32)
    (got,) = executor.run({"x": x})
    (float_pooled,) = tg.compile(model, options=tg.PassOptions(quantized_pooling=False)).run({"x": x})
    np.testing.assert_array_equal(got, float_pooled)
    (want,) = _onnxruntime(model, {"x": x})
    _assert_within_steps(model, got, want)


def _dequantized_pool(scale: float, zero: float) -> Graph:
    nodes = [make_node("cast", "cast", ["q"], ["f"], dtype="float32"),
             make_node("subtract", "subtract", ["f", "zero"], ["centred"]),
             make_node("multiply", "dequantize", ["centred", "scale"], ["d"]),
             make_node("max_pool2d_nchwc", "pool", ["d"], ["y"], kernel=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1),
                       ceil_mode=False)]
    params = {"zero": np.array(zero, np.float32), "scale": np.array(scale, np.float32)}
    data = TensorType((1, 1, 9, 7, 16), "uint8")
    return infer_types(Graph("pool", ("q",), ("y",), tuple(nodes), params, {"q": data}))


@pytest.mark.parametrize(("scale", "zero", "rewritten"), [(0.02, 7.0, True), (0.5, 0.0, True), (-0.02, 7.0, False),
                                                          (0.02, 300.0, False)])
def test_only_an_order_keeping_dequantization_is_pooled_as_bytes(scale: float, zero: float, rewritten: bool) -> None:
    """A negative scale reverses the order (the maximum of the floats is the minimum of the bytes), and a zero
    point outside the bytes' range is no uint8 dequantization: both stay float, and every result is the float
    pooling's."""
    graph = _dequantized_pool(scale, zero)
    pooled = quantized_pooling(graph)
    [pool] = [n for n in pooled.nodes if n.op == "max_pool2d_nchwc"]
    assert (pooled.type_of(pool.inputs[0]).dtype == "uint8") == rewritten
    assert (pooled is graph) == (not rewritten)
    q = RNG.integers(0, 256, (1, 1, 9, 7, 16)).astype(np.uint8)
    got = tg.build_executor(pooled).run([q])[0]
    want = tg.build_executor(graph).run([q])[0]
    np.testing.assert_array_equal(got, want)
