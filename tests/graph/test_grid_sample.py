"""ONNX GridSample (``tcomp/graph/opdefs/grid_sample.py``) against onnxruntime on random inputs of odd sizes, every
mode, padding and corner alignment, grids reaching far outside the input and landing on halves; hostile grids (NaN,
infinities, huge values) never read outside the input; bad models are refused. The onnx package's own cases run in
``test_onnx_node_cases.py``."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import tcomp.graph as tg
from tcomp.graph.ir import GraphError

RNG = np.random.default_rng(11)
MODES = {16: ("bilinear", "nearest", "bicubic"), 20: ("linear", "nearest", "cubic")}


def grid_sample_model(x_shape: list[int], grid_shape: list[int], opset: int, **attrs: object) -> onnx.ModelProto:
    node = helper.make_node("GridSample", ["x", "grid"], ["y"], **attrs)
    out = [x_shape[0], x_shape[1], *grid_shape[1:-1]]
    graph = helper.make_graph([node], "grid_sample", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape),
                                                      helper.make_tensor_value_info("grid", TensorProto.FLOAT,
                                                                                    grid_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def grid_points(shape: list[int]) -> np.ndarray:
    """Points inside, near the edges and far outside (to 2.5 normalized units), some exactly on halves."""
    grid = RNG.uniform(-2.5, 2.5, shape).astype(np.float32)
    halves = np.array([-1.0, -0.5, 0.0, 0.5, 1.0, -1.5, 1.25], np.float32)
    flat = grid.reshape(-1)
    flat[: flat.size // 3] = RNG.choice(halves, flat.size // 3)
    return grid


def _compare(model: onnx.ModelProto, x: np.ndarray, grid: np.ndarray) -> None:
    want = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x, "grid": grid})[0]
    [got] = tg.compile(model).run([x, grid])  # type: ignore[misc]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("opset", [16, 20])
@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align", [0, 1])
@pytest.mark.parametrize("mode", range(3))
def test_matches_onnxruntime(opset: int, padding: str, align: int, mode: int) -> None:
    x = RNG.standard_normal((2, 3, 5, 7)).astype(np.float32)
    grid = grid_points([2, 4, 6, 2])
    model = grid_sample_model([2, 3, 5, 7], [2, 4, 6, 2], opset, mode=MODES[opset][mode], padding_mode=padding,
                   align_corners=align)
    _compare(model, x, grid)


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (1, 2, 1, 9), (3, 1, 8, 1)])
def test_axes_of_one_element(shape: tuple[int, ...]) -> None:
    x = RNG.standard_normal(shape).astype(np.float32)
    grid = grid_points([shape[0], 3, 2, 2])
    for padding in ("zeros", "border", "reflection"):
        for align in (0, 1):
            model = grid_sample_model(list(shape), [shape[0], 3, 2, 2], 20, mode="linear", padding_mode=padding,
                           align_corners=align)
            _compare(model, x, grid)


@pytest.mark.parametrize("mode", ["linear", "nearest"])
def test_volumes_match_the_reference(mode: str) -> None:
    """3 spatial axes (opset 20): against the onnx package's reference evaluator."""
    from onnx.reference import ReferenceEvaluator

    x = RNG.standard_normal((1, 2, 3, 4, 5)).astype(np.float32)
    grid = grid_points([1, 2, 3, 2, 3])
    for padding in ("zeros", "border", "reflection"):
        model = grid_sample_model([1, 2, 3, 4, 5], [1, 2, 3, 2, 3], 20, mode=mode, padding_mode=padding)
        want = ReferenceEvaluator(model).run(None, {"x": x, "grid": grid})[0]
        [got] = tg.compile(model).run([x, grid])  # type: ignore[misc]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("mode", ["linear", "nearest", "cubic"])
def test_hostile_grids_never_read_outside_the_input(padding: str, mode: str) -> None:
    x = RNG.standard_normal((1, 2, 3, 4)).astype(np.float32)
    values = np.array([np.nan, np.inf, -np.inf, 3e38, -3e38, 1e9, -1e9, 0.3], np.float32)
    grid = np.stack(np.meshgrid(values, values), axis=-1).reshape(1, 8, 8, 2).astype(np.float32)
    model = grid_sample_model([1, 2, 3, 4], [1, 8, 8, 2], 20, mode=mode, padding_mode=padding)
    [got] = tg.compile(model).run([x, grid])  # type: ignore[misc]
    assert got.shape == (1, 2, 8, 8)
    finite_rows = np.isfinite(grid).all(axis=-1) & (np.abs(grid) < 1e8).all(axis=-1)
    want = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x, "grid": grid})[0]
    np.testing.assert_allclose(got[:, :, finite_rows[0]], want[:, :, finite_rows[0]], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("change, message", [
    (dict(mode="bicubic"), "mode 'bicubic' is not one of linear, cubic, nearest"),
    (dict(padding_mode="wrap"), "padding mode 'wrap'"),
    (dict(grid=[1, 3, 3, 3]), "the grid must be"),
    (dict(x=[1, 2, 3, 4, 5], grid=[1, 2, 2, 2, 3], mode="cubic"), "cubic sampling is defined for 2 spatial axes"),
])
def test_bad_models_are_refused(change: dict, message: str) -> None:
    x_shape, grid_shape = change.pop("x", [1, 2, 3, 4]), change.pop("grid", [1, 3, 3, 2])
    with pytest.raises(GraphError, match=message):
        tg.compile(grid_sample_model(x_shape, grid_shape, 20, **change))

