"""The integer quantized operators (``frontend/onnx_quant.py``) against onnxruntime: DynamicQuantizeLinear,
MatMulInteger, ConvInteger, QLinearMatMul, QLinearConv on random and extreme 8-bit values and odd sizes, and a
transformer that onnxruntime's dynamic quantization rewrote."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import tcomp.graph as tg
from tcomp.graph.ir import GraphError
from tests.graph.hf_data import DATA, stored
from tests.graph.ort_reference import check_node, run_both, single_node_model

RNG = np.random.default_rng(32)


def _bytes(dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    low, high = (0, 256) if dtype == "uint8" else (-128, 128)
    return RNG.integers(low, high, shape).astype(dtype)


@pytest.mark.parametrize("shape", [(5, 7), (2, 3, 11), (1,), ()])
def test_dynamic_quantize_random(shape: tuple[int, ...]) -> None:
    check_node("DynamicQuantizeLinear", {"x": np.asarray(RNG.standard_normal(shape) * 3, np.float32)}, opset=11,
               outputs=3)


@pytest.mark.parametrize("values", [[1.0, 2.0, 3.0, 4.0], [-1.0, -2.0, -3.0, -4.0], [0.0, 0.0, 0.0, 0.0],
                                    [-0.5, 0.5, 1e-9, 2.5], [3e38, -3e38, 1.0, 0.0]])
def test_dynamic_quantize_edges(values: list[float]) -> None:
    """Only positive or negative values (the range taken with 0), all zeros (scale 1), ties, huge values."""
    check_node("DynamicQuantizeLinear", {"x": np.array(values, np.float32)}, opset=11, outputs=3)


@pytest.mark.parametrize("types", [("uint8", "int8"), ("uint8", "uint8"), ("int8", "int8"), ("int8", "uint8")])
def test_matmul_integer_types(types: tuple[str, str]) -> None:
    a, b = _bytes(types[0], (2, 5, 7)), _bytes(types[1], (7, 3))
    inputs = {"a": a, "b": b, "za": _bytes(types[0], ()), "zb": _bytes(types[1], ())}
    if types == ("uint8", "int8"):  # the types onnxruntime's kernel takes with zero points
        check_node("MatMulInteger", inputs, opset=10)
    want = (a.astype(np.int32) - inputs["za"]) @ (b.astype(np.int32) - inputs["zb"])
    model = single_node_model("MatMulInteger", inputs, 1, {}, 10, constants=("b", "zb"))
    (got,) = tg.compile(model).run({"a": a, "za": inputs["za"]})
    np.testing.assert_array_equal(got, want)


def test_matmul_integer_per_column_zero_points_and_constant_weight() -> None:
    a, b = _bytes("uint8", (37, 65)), _bytes("int8", (65, 19))
    inputs = {"a": a, "b": b, "za": np.array(131, np.uint8), "zb": _bytes("int8", (19,))}
    check_node("MatMulInteger", inputs, opset=10, constants=("b", "zb"))
    check_node("MatMulInteger", {"a": a, "b": b}, opset=10)


def test_matmul_integer_is_exact_at_the_extremes() -> None:
    """255 x -128 over 3001 steps (about -9.8e7): beyond float32's exact integers, exact in int32."""
    a = np.full((3, 3001), 255, np.uint8)
    b = np.full((3001, 4), -128, np.int8)
    a[1, ::2] = 0
    check_node("MatMulInteger", {"a": a, "b": b, "za": np.array(0, np.uint8), "zb": np.array(0, np.int8)},
               opset=10, constants=("b", "zb"))


def test_matmul_integer_per_row_zero_point() -> None:
    a, b = _bytes("uint8", (6, 9)), _bytes("uint8", (9, 4))
    za, zb = _bytes("uint8", (6,)), _bytes("uint8", (4,))
    model = single_node_model("MatMulInteger", {"a": a, "b": b, "za": za, "zb": zb}, 1, {}, 10)
    (got,) = tg.compile(model).run({"a": a, "b": b, "za": za, "zb": zb})
    want = (a.astype(np.int32) - za[:, None]) @ (b.astype(np.int32) - zb)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("attrs", [{"pads": [1, 1, 1, 1]}, {"strides": [2, 2]}, {"group": 2, "pads": [0, 1, 2, 0]},
                                   {"dilations": [2, 1]}])
def test_conv_integer(attrs: dict) -> None:
    x, w = _bytes("uint8", (1, 4, 9, 8)), _bytes("uint8", (6, 4 // attrs.get("group", 1), 3, 3))
    check_node("ConvInteger", {"x": x, "w": w, "zx": np.array(117, np.uint8), "zw": np.array(3, np.uint8)}, attrs,
               opset=10, constants=("w", "zw"))


def test_conv_integer_per_channel_zero_points_and_1d() -> None:
    """Per-output-channel weight zero points (against the definition: onnxruntime takes one) and a 1-D
    convolution, padded with the input's zero point."""
    x, w, zw = _bytes("int8", (2, 3, 10)), _bytes("int8", (5, 3, 4)), _bytes("int8", (5,))
    inputs = {"x": x, "w": w, "zx": np.array(-7, np.int8), "zw": zw}
    model = single_node_model("ConvInteger", inputs, 1, {"pads": [2, 1]}, 10, constants=("w", "zw"))
    (got,) = tg.compile(model).run({"x": x, "zx": inputs["zx"]})
    padded = np.pad(x.astype(np.int32) + 7, ((0, 0), (0, 0), (2, 1)))
    weights = w.astype(np.int32) - zw[:, None, None]
    want = np.stack([np.einsum("nck,ock->no", padded[:, :, t:t + 4], weights) for t in range(10)], axis=-1)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_qlinear_matmul(dtype: str) -> None:
    a, b = _bytes(dtype, (3, 17, 33)), _bytes("int8", (33, 10))
    inputs = {"a": a, "sa": np.array(0.02, np.float32), "za": _bytes(dtype, ()), "b": b,
              "sb": RNG.uniform(0.001, 0.01, 10).astype(np.float32), "zb": np.zeros(10, np.int8),
              "sy": np.array(0.05, np.float32), "zy": _bytes(dtype, ())}
    model = single_node_model("QLinearMatMul", inputs, 1, {}, 10, constants=("b", "sb", "zb"))
    feeds = {n: v for n, v in inputs.items() if n not in ("b", "sb", "zb")}
    [got], [want] = run_both(model, feeds)
    assert got.dtype == want.dtype
    # the requantization rounds a float product: a tie computed an ulp apart may round the other way
    assert np.abs(got.astype(np.int32) - want.astype(np.int32)).max() <= 1
    assert np.mean(got == want) > 0.99


@pytest.mark.parametrize("attrs", [{"pads": [1, 1, 1, 1]}, {"group": 6, "strides": [2, 2], "pads": [1, 1, 1, 1]}])
def test_qlinear_conv(attrs: dict) -> None:
    groups = attrs.get("group", 1)
    x, w = _bytes("uint8", (1, 6, 11, 9)), _bytes("int8", (6, 6 // groups, 3, 3))
    inputs = {"x": x, "sx": np.array(0.03, np.float32), "zx": np.array(120, np.uint8), "w": w,
              "sw": RNG.uniform(0.002, 0.02, 6).astype(np.float32), "zw": np.zeros(6, np.int8),
              "sy": np.array(0.2, np.float32), "zy": np.array(100, np.uint8),
              "bias": RNG.integers(-2000, 2000, 6).astype(np.int32)}
    model = single_node_model("QLinearConv", inputs, 1, attrs, 10, constants=("w", "sw", "zw", "bias"))
    [got], [want] = run_both(model, {n: inputs[n] for n in ("x", "sx", "zx", "sy", "zy")})
    assert np.abs(got.astype(np.int32) - want.astype(np.int32)).max() <= 1
    assert np.mean(got == want) > 0.99


def test_integer_operators_refuse_wrong_types() -> None:
    floats = np.ones((2, 2), np.float32)
    with pytest.raises(GraphError, match="A must be uint8 or int8, got float32"):
        tg.compile(single_node_model("MatMulInteger", {"a": floats, "b": floats}, 1, {}, 10))
    a, b = _bytes("uint8", (2, 3)), _bytes("int8", (3, 4))
    with pytest.raises(GraphError, match="zero point of B must be int8 like it, got uint8"):
        tg.compile(single_node_model("MatMulInteger", {"a": a, "b": b, "za": a[0, 0], "zb": a[0, :4]}, 1, {}, 10))
    with pytest.raises(GraphError, match=r"zero point of A must have one element, 2 \(one per row"):
        tg.compile(single_node_model("MatMulInteger", {"a": a, "b": b, "za": np.zeros(3, np.uint8)}, 1, {}, 10))
    with pytest.raises(GraphError, match="x must be float32, got float64"):
        tg.compile(single_node_model("DynamicQuantizeLinear", {"x": np.ones(3)}, 3, {}, 11))
    x = _bytes("uint8", (1, 2, 4, 4))
    with pytest.raises(GraphError, match="input's zero point must be one element"):
        tg.compile(single_node_model("ConvInteger", {"x": x, "w": x, "zx": x[0, 0, 0]}, 1, {}, 10))


def test_dynamically_quantized_transformer(tmp_path) -> None:
    """BERT exported by PyTorch, its MatMuls quantized by onnxruntime's ``quantize_dynamic`` (DynamicQuantizeLinear,
    MatMulInteger, embeddings through DequantizeLinear): tcomp against onnxruntime on the same quantized model."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantized = tmp_path / "bert_tiny_int8.onnx"
    quantize_dynamic(DATA / "bert_tiny.onnx", quantized, weight_type=QuantType.QInt8)
    model = onnx.load(quantized)
    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= {n.op_type for n in model.graph.node}
    inputs, torch_outputs = stored("bert_tiny")
    got, want = run_both(model, inputs)
    for g, w, t in zip(got, want, torch_outputs.values()):
        scale = np.abs(w).max()
        # activations are requantized after float operators computed an ulp apart: a value may land one step over
        assert np.abs(g - w).max() <= 0.02 * scale
        assert np.mean(np.abs(g - w) <= 1e-4 * scale) > 0.99
        assert np.abs(w - t).max() <= 0.1 * np.abs(t).max()  # the quantized model stays near the float one


def test_statically_quantized_transformer(tmp_path) -> None:
    """BERT exported by PyTorch and quantized by onnxruntime's ``quantize_static`` in its default QDQ format
    (calibrated on the stored inputs): its products run as integer products (``integer_products``); against
    onnxruntime on the same quantized model."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    inputs, _ = stored("bert_tiny")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([inputs])

        def get_next(self) -> dict | None:
            return next(self.batches, None)

    quantized = tmp_path / "bert_tiny_qdq.onnx"
    quantize_static(DATA / "bert_tiny.onnx", quantized, Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
    model = onnx.load(quantized)
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in model.graph.node}
    got, want = run_both(model, inputs)
    for g, w in zip(got, want):
        scale = np.abs(w).max()
        assert np.abs(g - w).max() <= 0.02 * scale  # requantized activations: a value may land one step over
        assert np.mean(np.abs(g - w) <= 1e-4 * scale) > 0.99
