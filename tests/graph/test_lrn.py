"""LRN against the ONNX definition (computed in float64 here: onnx's reference implementation sums the wrong axis
for batch 1) and onnxruntime: every lowering (square roots for beta 0.75, exp and log for a
positive bias, pow otherwise; windows summed term by term or, when long, as a reduction), odd shapes, and
non-finite values in the border channels (the clamped reads must not turn an infinity into a NaN)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import tcomp.graph as tg


def lrn_reference(x: np.ndarray, size: int, alpha: float, beta: float, bias: float) -> np.ndarray:
    """ONNX's LRN: the window over channels from c - floor((size - 1) / 2) to c + ceil((size - 1) / 2)."""
    wide = x.astype(np.float64)
    channels = x.shape[1]
    square_sum = np.zeros_like(wide)
    for c in range(channels):
        begin, end = max(0, c - (size - 1) // 2), min(channels, c + size // 2 + 1)
        square_sum[:, c] = np.sum(wide[:, begin:end] ** 2, axis=1)
    with np.errstate(invalid="ignore"):
        return (wide / (bias + alpha / size * square_sum) ** beta).astype(np.float32)


def lrn_model(shape: list[int], size: int, alpha: float, beta: float, bias: float) -> bytes:
    node = helper.make_node("LRN", ["x"], ["y"], size=size, alpha=alpha, beta=beta, bias=bias)
    graph = helper.make_graph([node], "lrn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


@pytest.mark.parametrize(("shape", "size", "alpha", "beta", "bias"), [
    ([1, 7, 9, 13], 5, 1e-2, 0.75, 2.0),      # square roots; 13 columns: no vector width divides the rows
    ([2, 6, 5, 16], 4, 3e-2, 0.6, 1.0),       # exp and log; an even window
    ([1, 5, 3, 11], 3, 1e-1, 0.5, -0.25),     # a negative bias: pow
    ([1, 21, 4, 7], 19, 1e-2, 0.8, 1.5),      # a long window: a reduction
    ([1, 3, 17], 7, 2e-2, 0.75, 1.0),         # 3-D input, a window wider than the channels
])
def test_lrn_matches_onnx_reference(shape: list[int], size: int, alpha: float, beta: float, bias: float) -> None:
    model = lrn_model(shape, size, alpha, beta, bias)
    x = np.random.default_rng(size).standard_normal(shape).astype(np.float32) * 3
    if bias < 0:
        x = np.abs(x) + 3.0  # a base that stays positive: pow of a negative base is NaN on both sides
    expected = lrn_reference(x, size, alpha, beta, bias)
    [got] = tg.compile(model, "llvm").run([x])
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-6)
    if len(shape) == 4 and size % 2 == 1:  # onnxruntime takes odd windows only
        import onnxruntime

        session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(got, session.run(None, {"x": x})[0], rtol=2e-5, atol=1e-6)


def test_lrn_non_finite_values_in_border_channels() -> None:
    shape = [1, 6, 2, 11]
    model = lrn_model(shape, 5, 1e-2, 0.75, 2.0)
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    x[0, 0, 0, 3] = np.inf
    x[0, 5, 1, 4] = -np.inf
    x[0, 0, 1, 7] = np.nan
    expected = lrn_reference(x, 5, 1e-2, 0.75, 2.0)
    [got] = tg.compile(model, "llvm").run([x])
    assert (expected == 0).any()  # the infinities reach their neighbours as 0, themselves as NaN
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-6)
