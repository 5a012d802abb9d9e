"""Neural-network operators of ``frontend/onnx_nn.py`` beyond inference convolutions and pooling, against
onnxruntime on random inputs of odd shapes: BatchNormalization in training mode and the deprecated Upsample."""

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


def _upsample_model(opset: int, mode: str, scales: list[float], x: np.ndarray, constant: bool = True) -> object:
    if opset < 9:
        return single_node_model("Upsample", {"x": x}, 1, {"mode": mode, "scales": scales}, opset)
    inputs = {"x": x, "scales": np.array(scales, np.float32)}
    return single_node_model("Upsample", inputs, 1, {"mode": mode}, opset,
                             constants=["scales"] if constant else [])


@pytest.mark.parametrize(("opset", "mode", "scales"), [
    (7, "nearest", [1.0, 1.0, 2.0, 3.0]), (7, "linear", [1.0, 1.0, 2.5, 1.5]), (9, "nearest", [1.0, 1.0, 1.5, 2.7]),
    (9, "linear", [1.0, 1.0, 3.0, 2.0]), (9, "nearest", [2.0, 1.0, 2.0, 1.0]), (8, "nearest", [1.0, 3.0, 1.0, 1.3]),
])
def test_upsample_against_onnxruntime(opset: int, mode: str, scales: list[float]) -> None:
    from tests.graph.ort_reference import assert_same, run_both

    x = RNG.normal(0, 1, (2, 3, 5, 7)).astype(np.float32)
    got, want = run_both(_upsample_model(opset, mode, scales, x), {"x": x})
    assert_same(got[0], want[0], 1e-5, 1e-6, f"Upsample-{opset} {mode} {scales}")


def test_upsample_integers_and_run_time_scales() -> None:
    from tests.graph.ort_reference import assert_same, run_both

    x = RNG.integers(-50, 50, (3, 4, 5)).astype(np.int32)
    got, want = run_both(_upsample_model(9, "nearest", [1.0, 2.0, 3.0], x), {"x": x})
    assert_same(got[0], want[0], 0, 0, "Upsample int32")
    model = _upsample_model(9, "nearest", [1.0, 1.0, 2.0, 2.0], np.zeros((1, 2, 3, 3), np.float32), constant=False)
    executor = tg.compile(model)  # the scales decide the shape: it specializes on their values
    y = RNG.normal(0, 1, (1, 2, 3, 3)).astype(np.float32)
    for scales in ([1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 3.0, 1.0]):
        feeds = {"x": y, "scales": np.array(scales, np.float32)}
        [out] = executor.run(feeds)
        np.testing.assert_array_equal(out, y.repeat(int(scales[2]), axis=2).repeat(int(scales[3]), axis=3))


def test_upsample_refuses_downsampling_and_opset_10() -> None:
    x = np.zeros((1, 1, 4, 4), np.float32)
    with pytest.raises(tg.GraphError, match="at least 1"):
        tg.compile(_upsample_model(9, "nearest", [1.0, 1.0, 0.5, 1.0], x))
    with pytest.raises(tg.GraphError, match="mode 'cubic'"):
        tg.compile(_upsample_model(7, "cubic", [1.0, 1.0, 2.0, 2.0], x))
    with pytest.raises(tg.UnsupportedOperatorError, match="Upsample, opset 10"):
        tg.compile(_upsample_model(10, "nearest", [1.0, 1.0, 2.0, 2.0], x))


@pytest.mark.parametrize("pads", [
    [0, 1, 0, 0, 0, -1, 0, 0],  # a time shift (RWKV): one row in front, the last one removed
    [0, -2, 1, 0, 0, 0, -1, 3],
    [0, 0, -1, -1, 0, 0, -1, -2],  # crops only
])
def test_negative_pads_remove_elements_as_onnxruntime_does(pads: list[int]) -> None:
    x = RNG.standard_normal((2, 5, 4, 6)).astype(np.float32)
    check_node("Pad", {"x": x, "pads": np.array(pads, np.int64), "value": np.array(1.5, np.float32)},
               {"mode": "constant"}, constants=["pads", "value"], opset=18)


def test_negative_pads_that_cannot_apply_are_refused() -> None:
    x = np.zeros((1, 3, 4), np.float32)
    reflect = single_node_model("Pad", {"x": x, "pads": np.array([0, -1, 1, 0, 0, 1], np.int64)}, 1,
                                {"mode": "reflect"}, 18, ["pads"])
    with pytest.raises(tg.GraphError, match="only constant pads may be negative"):
        tg.compile(reflect)
    too_much = single_node_model("Pad", {"x": x, "pads": np.array([0, -2, 0, 0, -2, 0], np.int64)}, 1, {}, 18,
                                 ["pads"])
    with pytest.raises(tg.GraphError, match="remove more than the dimensions"):
        tg.compile(too_much)
