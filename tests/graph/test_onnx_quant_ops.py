"""QuantizeLinear and DequantizeLinear (``frontend/onnx_quant.py``) against onnxruntime: per tensor, per axis and
blocked scales, int8 / uint8 / int16 / int32, with and without zero points, and a QDQ model running in float."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.graph.ort_reference import check_node, run_both

RNG = np.random.default_rng(14)


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_quantize_per_tensor_and_per_axis(dtype: str) -> None:
    x = (RNG.standard_normal((2, 3, 5)) * 40).astype(np.float32)
    x[0, 0, :3] = [0.5, 1.5, 2.5]  # ties round to even
    zero = np.array(3 if dtype == "int8" else 128, dtype)
    check_node("QuantizeLinear", {"x": x, "s": np.array(0.5, np.float32), "z": zero}, opset=13)
    check_node("QuantizeLinear", {"x": x, "s": np.array([0.3, 0.7, 1.1], np.float32),
                                  "z": np.array([1, 2, 3], dtype)}, {"axis": 1}, opset=13)
    check_node("QuantizeLinear", {"x": x, "s": np.array(0.25, np.float32)}, opset=10)


def test_quantize_blocked_and_int16() -> None:
    x = (RNG.standard_normal((4, 7)) * 9).astype(np.float32)
    scale = RNG.uniform(0.05, 0.2, (4, 3)).astype(np.float32)
    check_node("QuantizeLinear", {"x": x, "s": scale, "z": np.zeros((4, 3), np.int8)},
               {"axis": 1, "block_size": 3}, opset=21)
    check_node("QuantizeLinear", {"x": x * 100, "s": np.array(0.01, np.float32), "z": np.array(7, np.int16)},
               opset=21)


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int32"])
def test_dequantize(dtype: str) -> None:
    low, high = (-128, 128) if dtype != "uint8" else (0, 256)
    x = RNG.integers(low, high, (3, 4, 5)).astype(dtype)
    if dtype == "int32":
        check_node("DequantizeLinear", {"x": x, "s": np.array(0.02, np.float32)}, opset=13)
        return
    check_node("DequantizeLinear", {"x": x, "s": np.array(0.02, np.float32), "z": np.array(5, dtype)}, opset=13)
    check_node("DequantizeLinear", {"x": x, "s": RNG.uniform(0.01, 0.1, 5).astype(np.float32),
                                    "z": RNG.integers(0, 9, 5).astype(dtype)}, {"axis": -1}, opset=13)
    check_node("DequantizeLinear", {"x": x, "s": RNG.uniform(0.01, 0.1, (3, 2, 5)).astype(np.float32)},
               {"axis": 1, "block_size": 2}, opset=21)


def test_dequantize_to_float16() -> None:
    x = RNG.integers(-128, 128, (6, 5)).astype(np.int8)
    check_node("DequantizeLinear", {"x": x, "s": np.array(0.125, np.float16)}, opset=19, rtol=1e-3, atol=1e-3)


def test_a_qdq_model_runs_in_float() -> None:
    """Quantized activations and weights around a convolution, as a QDQ-quantized CNN has them."""
    w = RNG.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8)
    inits = [numpy_helper.from_array(w, "wq"), numpy_helper.from_array(np.array(0.02, np.float32), "sx"),
             numpy_helper.from_array(np.array(0, np.uint8), "zx"),
             numpy_helper.from_array(np.array([0.01, 0.02, 0.015, 0.03], np.float32), "sw"),
             numpy_helper.from_array(np.zeros(4, np.int8), "zw")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "sw", "zw"], ["wd"], axis=0),
             helper.make_node("Conv", ["xd", "wd"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"])]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 9, 7])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 9, 7])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    x = RNG.uniform(0, 4, (1, 3, 9, 7)).astype(np.float32)
    [got], [want] = run_both(model, {"x": x})
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
