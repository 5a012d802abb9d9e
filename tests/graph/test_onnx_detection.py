"""NonMaxSuppression (``frontend/onnx_detection.py``) against onnxruntime on random boxes: both box formats, every
optional input, several batches and classes, ties and overlapping clusters; the boxes as constants (compiled
once) and as graph inputs (specialized on their values)."""

from __future__ import annotations

import numpy as np
import pytest

import tcomp.graph as tg
from tests.graph.ort_reference import check_node

RNG = np.random.default_rng(53)


def _boxes(batches: int, count: int, center: int) -> np.ndarray:
    """Clusters of overlapping boxes, some corners given in the other order."""
    centers = RNG.uniform(0, 10, (batches, count, 2)).round(1)
    sizes = RNG.uniform(0.5, 3, (batches, count, 2)).round(1)
    if center:
        return np.concatenate([centers, sizes], -1).astype(np.float32)
    low, high = centers - sizes / 2, centers + sizes / 2
    boxes = np.concatenate([low[..., ::-1], high[..., ::-1]], -1)  # [y1, x1, y2, x2]
    flip = RNG.random((batches, count)) < 0.3
    boxes[flip] = boxes[flip][:, [2, 3, 0, 1]]
    return boxes.astype(np.float32)


def _inputs(batches: int, classes: int, count: int, center: int, max_out: int, iou: float,
            score: float | None) -> dict[str, np.ndarray]:
    scores = RNG.uniform(0, 1, (batches, classes, count)).round(2).astype(np.float32)  # rounded: ties happen
    inputs = {"boxes": _boxes(batches, count, center), "scores": scores,
              "max_output_boxes_per_class": np.array([max_out], np.int64), "iou_threshold": np.array([iou], np.float32)}
    if score is not None:
        inputs["score_threshold"] = np.array([score], np.float32)
    return inputs


@pytest.mark.parametrize("center", [0, 1])
@pytest.mark.parametrize(("max_out", "iou", "score"), [(3, 0.5, 0.3), (50, 0.2, None), (7, 0.0, 0.9), (0, 0.5, 0.1)])
def test_against_onnxruntime_with_constant_inputs(center: int, max_out: int, iou: float, score: float | None) -> None:
    inputs = _inputs(2, 3, 37, center, max_out, iou, score)
    check_node("NonMaxSuppression", inputs, {"center_point_box": center}, opset=11, constants=list(inputs))


def test_boxes_from_graph_inputs_specialize_on_their_values() -> None:
    import onnx
    from onnx import TensorProto as TP
    from onnx import helper, numpy_helper

    from tests.graph.ort_reference import run_both

    node = helper.make_node("NonMaxSuppression", ["boxes", "scores", "max", "iou"], ["selected"])
    graph = helper.make_graph(
        [node], "nms", [helper.make_tensor_value_info("boxes", TP.FLOAT, [1, 11, 4]),
                        helper.make_tensor_value_info("scores", TP.FLOAT, [1, 2, 11])],
        [onnx.ValueInfoProto(name="selected")],
        [numpy_helper.from_array(np.array([4], np.int64), "max"), numpy_helper.from_array(np.array([0.4], np.float32),
                                                                                          "iou")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    executor = tg.compile(model)
    for _ in range(2):
        feeds = {"boxes": _boxes(1, 11, 0), "scores": RNG.uniform(0, 1, (1, 2, 11)).astype(np.float32)}
        got = executor.run(feeds)
        _, want = run_both(model, feeds)
        np.testing.assert_array_equal(got[0], want[0])
    assert executor.compilations == 2


def test_bad_shapes_are_a_clear_error() -> None:
    from tests.graph.ort_reference import single_node_model

    inputs = {"boxes": np.zeros((1, 5, 3), np.float32), "scores": np.zeros((1, 1, 5), np.float32)}
    model = single_node_model("NonMaxSuppression", inputs, 1, {}, 11, constants=list(inputs))
    with pytest.raises(tg.GraphError, match=r"must be \[batches, boxes, 4\]"):
        tg.compile(model)


def _roi_inputs(regions: int) -> dict[str, np.ndarray]:
    x = RNG.normal(0, 1, (2, 3, 11, 13)).astype(np.float32)
    starts = RNG.uniform(-3, 12, (regions, 2))
    sizes = RNG.uniform(-0.5, 9, (regions, 2))  # some malformed (negative), some past the edges
    rois = np.concatenate([starts, starts + sizes], 1).astype(np.float32)
    return {"X": x, "rois": rois, "batch_indices": RNG.integers(0, 2, regions).astype(np.int64)}


@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("transform", ["half_pixel", "output_half_pixel"])
@pytest.mark.parametrize("ratio", [0, 2])
def test_roi_align_against_onnxruntime(mode: str, transform: str, ratio: int) -> None:
    attrs = {"mode": mode, "coordinate_transformation_mode": transform, "output_height": 3, "output_width": 4,
             "sampling_ratio": ratio, "spatial_scale": 0.75}
    check_node("RoiAlign", _roi_inputs(9), attrs, opset=16, constants=["rois", "batch_indices"], rtol=1e-4,
               atol=1e-5)


def test_roi_align_opset_10_and_run_time_regions() -> None:
    from tests.graph.ort_reference import run_both, single_node_model

    inputs = _roi_inputs(5)
    check_node("RoiAlign", inputs, {"output_height": 2, "output_width": 2}, opset=10,
               constants=["rois", "batch_indices"], rtol=1e-4, atol=1e-5)
    model = single_node_model("RoiAlign", inputs, 1, {"output_height": 2, "output_width": 3}, 16)
    executor = tg.compile(model)
    for _ in range(2):
        feeds = {**inputs, "rois": _roi_inputs(5)["rois"]}
        got, want = run_both(model, feeds)
        np.testing.assert_allclose(executor.run(feeds)[0], want[0], rtol=1e-4, atol=1e-5)
    assert executor.compilations == 2


def test_roi_align_refuses_bad_batch_indices() -> None:
    from tests.graph.ort_reference import single_node_model

    inputs = {**_roi_inputs(2), "batch_indices": np.array([0, 2], np.int64)}
    model = single_node_model("RoiAlign", inputs, 1, {}, 16, constants=["rois", "batch_indices"])
    with pytest.raises(tg.GraphError, match=r"must be in \[0, 2\)"):
        tg.compile(model)
