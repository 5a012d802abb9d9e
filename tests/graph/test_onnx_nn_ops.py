"""Neural-network operators of ``frontend/onnx_nn.py`` beyond inference convolutions and pooling, against
onnxruntime on random inputs of odd shapes: BatchNormalization in training mode."""

from __future__ import annotations

import numpy as np
import pytest

import tcomp.graph as tg
from tests.graph.ort_reference import check_node, single_node_model

RNG = np.random.default_rng(23)


def _bn_inputs(shape: tuple[int, ...], dtype: str = "float32") -> dict[str, np.ndarray]:
    channels = shape[1]
    return {"x": RNG.normal(0.3, 2.0, shape).astype(dtype),
            "scale": RNG.uniform(0.5, 1.5, channels).astype(dtype),
            "bias": RNG.normal(0, 1, channels).astype(dtype),
            "mean": RNG.normal(0, 1, channels).astype(dtype),
            "var": RNG.uniform(0.5, 2.0, channels).astype(dtype)}


@pytest.mark.parametrize("shape", [(3, 5, 7, 9), (4, 3), (2, 7, 11), (1, 3, 2, 3, 5)])
@pytest.mark.parametrize("opset", [14, 15])
def test_batch_norm_training_mode(shape: tuple[int, ...], opset: int) -> None:
    """Y from the batch's own statistics, then the updated running mean and variance."""
    attrs = {"training_mode": 1, "momentum": 0.7, "epsilon": 1e-3}
    check_node("BatchNormalization", _bn_inputs(shape), attrs, opset=opset, outputs=3, rtol=1e-4, atol=1e-5)


def test_batch_norm_training_mode_float64_default_momentum() -> None:
    check_node("BatchNormalization", _bn_inputs((2, 3, 5, 5), "float64"), {"training_mode": 1}, opset=15,
               outputs=3, rtol=1e-12, atol=1e-12)


def test_batch_norm_training_mode_constant_statistics() -> None:
    """Scale, bias and running statistics as initializers (as exporters write them)."""
    check_node("BatchNormalization", _bn_inputs((2, 6, 3, 5)), {"training_mode": 1, "momentum": 0.5}, opset=15,
               outputs=3, constants=["scale", "bias", "mean", "var"], rtol=1e-4, atol=1e-5)


def test_batch_norm_opset_9_trains_when_asked_for_statistics() -> None:
    """Definitions 9 to 13: five outputs mean training; ``saved_var`` is the inverse standard deviation, as
    onnxruntime gives it."""
    check_node("BatchNormalization", _bn_inputs((3, 4, 5, 7)), {"momentum": 0.8}, opset=9, outputs=5,
               rtol=1e-4, atol=1e-5)
    check_node("BatchNormalization", _bn_inputs((3, 4, 5)), {"epsilon": 1e-2}, opset=12, outputs=5,
               rtol=1e-4, atol=1e-5)


def test_batch_norm_inference_keeps_the_given_statistics() -> None:
    check_node("BatchNormalization", _bn_inputs((3, 4, 5, 7)), {"training_mode": 0}, opset=15, rtol=1e-4,
               atol=1e-5)
    check_node("BatchNormalization", _bn_inputs((3, 4, 5, 7)), {"momentum": 0.8}, opset=9, rtol=1e-4, atol=1e-5)


def test_batch_norm_training_mode_refuses_an_empty_batch() -> None:
    inputs = _bn_inputs((0, 3, 4))
    model = single_node_model("BatchNormalization", inputs, 3, {"training_mode": 1}, 15)
    with pytest.raises(tg.GraphError, match="non-empty batch"):
        tg.compile(model).run(inputs)
