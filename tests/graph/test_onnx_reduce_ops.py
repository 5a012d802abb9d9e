"""Reductions and the normalizations built on them (``frontend/onnx_reduce.py``) against onnxruntime on random inputs
of odd shapes: every ``Reduce*`` with axes as attribute (opset 13) and as input (opset 18), keepdims, empty axes;
``GroupNormalization`` (per-group and per-channel parameters), ``MeanVarianceNormalization``, ``LpNormalization``,
``RMSNormalization``."""

from __future__ import annotations

import numpy as np
import pytest

from tests.graph.ort_reference import check_node

RNG = np.random.default_rng(13)
REDUCE = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
          "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"]


def _x(op: str, shape: tuple[int, ...] = (3, 5, 7)) -> np.ndarray:
    if op in ("ReduceLogSum", "ReduceProd"):  # positive, near 1: no overflow, defined logarithms
        return RNG.uniform(0.5, 1.5, shape).astype(np.float32)
    return (RNG.standard_normal(shape) * 3).astype(np.float32)


@pytest.mark.parametrize("op", REDUCE)
def test_reduce_axes_attribute_and_input(op: str) -> None:
    x = _x(op)
    opset_attr = 13 if op != "ReduceSum" else 11
    check_node(op, {"x": x}, {"axes": [0, 2], "keepdims": 0}, opset=opset_attr, rtol=1e-5, atol=1e-5)
    check_node(op, {"x": x, "axes": np.array([-2], np.int64)}, {"keepdims": 1}, constants=["axes"], opset=18,
               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceL2", "ReduceLogSumExp"])
def test_reduce_all_axes_and_noop(op: str) -> None:
    x = _x(op, (4, 9))
    check_node(op, {"x": x}, {"keepdims": 0}, opset=18, rtol=1e-5, atol=1e-5)
    check_node(op, {"x": x, "axes": np.zeros((0,), np.int64)}, {"noop_with_empty_axes": 1}, constants=["axes"],
               opset=18)


def test_log_sum_exp_of_large_values_does_not_overflow() -> None:
    x = np.array([[1000.0, 1000.5, 999.0], [-1000.0, -999.0, -1001.0]], np.float32)
    check_node("ReduceLogSumExp", {"x": x, "axes": np.array([1], np.int64)}, constants=["axes"], opset=18)


def test_integer_reductions() -> None:
    x = RNG.integers(-5, 6, (3, 4, 5)).astype(np.int32)
    for op in ("ReduceProd", "ReduceL1", "ReduceSumSquare", "ReduceMax"):
        check_node(op, {"x": x}, {"axes": [1]}, opset=13)


@pytest.mark.parametrize("opset", [18, 21])
def test_group_normalization(opset: int) -> None:
    x = RNG.standard_normal((2, 6, 5, 3)).astype(np.float32)
    count = 3 if opset == 18 else 6
    scale = RNG.standard_normal(count).astype(np.float32)
    bias = RNG.standard_normal(count).astype(np.float32)
    check_node("GroupNormalization", {"x": x, "scale": scale, "bias": bias}, {"num_groups": 3, "epsilon": 1e-3},
               opset=opset, rtol=1e-4, atol=1e-5)
    check_node("GroupNormalization", {"x": x, "scale": scale, "bias": bias}, {"num_groups": 3},
               constants=["scale", "bias"], opset=opset, rtol=1e-4, atol=1e-5)


def test_mean_variance_normalization() -> None:
    x = RNG.standard_normal((3, 4, 5, 2)).astype(np.float32)
    check_node("MeanVarianceNormalization", {"x": x}, opset=13, rtol=1e-4, atol=1e-5)
    check_node("MeanVarianceNormalization", {"x": x}, {"axes": [1, 3]}, opset=13, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("p", "axis"), [(1, -1), (2, 1), (2, 0)])
def test_lp_normalization(p: int, axis: int) -> None:
    x = RNG.standard_normal((4, 5, 3)).astype(np.float32)
    check_node("LpNormalization", {"x": x}, {"p": p, "axis": axis}, opset=13, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("axis", "scale_shape"), [(-1, (7,)), (1, (5, 7)), (1, (1, 7)), (0, (3, 5, 7)), (-2, (5, 1))])
def test_rms_normalization(axis: int, scale_shape: tuple[int, ...]) -> None:
    x = _x("RMSNormalization")
    scale = RNG.standard_normal(scale_shape).astype(np.float32)
    check_node("RMSNormalization", {"x": x, "scale": scale}, {"axis": axis, "epsilon": 1e-3}, opset=23,
               rtol=1e-5, atol=1e-5)
    check_node("RMSNormalization", {"x": x, "scale": scale}, {"axis": axis}, constants=["scale"], opset=23,
               rtol=1e-5, atol=1e-5)


def test_rms_normalization_of_float16_is_computed_in_float32() -> None:
    x = _x("RMSNormalization", (4, 6, 9)).astype(np.float16)
    scale = RNG.standard_normal(9).astype(np.float16)
    check_node("RMSNormalization", {"x": x, "scale": scale}, {}, opset=23, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize(("attrs", "message"), [({"stash_type": 0}, "stash_type=0 is not supported"),
                                                ({"axis": 3}, "axis=3 is out of range")])
def test_rms_normalization_refuses_what_it_cannot_do(attrs: dict[str, int], message: str) -> None:
    import tcomp.graph as tg
    from tests.graph.ort_reference import single_node_model

    inputs = {"x": _x("RMSNormalization"), "scale": np.ones(7, np.float32)}
    with pytest.raises(tg.GraphError, match=message):
        tg.compile(single_node_model("RMSNormalization", inputs, 1, attrs, 23))
