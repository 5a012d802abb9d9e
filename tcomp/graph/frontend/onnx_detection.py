"""ONNX ``NonMaxSuppression``: the boxes a detection head keeps, computed while compiling.

The number of boxes kept is the output's shape, so, as for ``NonZero``, the boxes, scores and thresholds must be
known at compile time (constants, values computed from them, ``input_values=``); when graph inputs decide them the
executor specializes on their values (one compilation per distinct input: right, but slow for a model whose boxes
come from its image). The selection follows onnx's reference and onnxruntime: per batch and class, the boxes whose
score is above ``score_threshold`` (all when it is absent) in order of decreasing score (ties: the lower index
first), each kept unless its intersection over union with a box kept before is above ``iou_threshold``, at most
``max_output_boxes_per_class`` of them (none when absent); boxes are corners ``[y1, x1, y2, x2]`` in any order
(``center_point_box=0``) or ``[x_center, y_center, width, height]`` (1). The result is ``[selected, 3]`` int64 rows
``(batch, class, box)``.
"""

from __future__ import annotations

import numpy as np
import onnx

from tcomp.graph.frontend.onnx_builder import Builder
from tcomp.graph.frontend.onnx_common import Attrs, converts, optional


def _corners(boxes: np.ndarray, center_point_box: int) -> tuple[np.ndarray, ...]:
    """``x_min, x_max, y_min, y_max`` of every box, in the boxes' float type."""
    if center_point_box == 0:
        ys, xs = boxes[..., [0, 2]], boxes[..., [1, 3]]
        return xs.min(-1), xs.max(-1), ys.min(-1), ys.max(-1)
    half_w, half_h = boxes[..., 2] / 2, boxes[..., 3] / 2
    return boxes[..., 0] - half_w, boxes[..., 0] + half_w, boxes[..., 1] - half_h, boxes[..., 1] + half_h


def _overlaps(c: tuple[np.ndarray, ...], i: int, j: int, threshold: np.floating) -> bool:
    """Whether boxes ``i`` and ``j`` (rows of the corner arrays ``c``) overlap by more than ``threshold`` IoU."""
    x_min, x_max, y_min, y_max = c
    left, right = max(x_min[i], x_min[j]), min(x_max[i], x_max[j])
    bottom, top = max(y_min[i], y_min[j]), min(y_max[i], y_max[j])
    if right <= left or top <= bottom:
        return False
    intersection = (right - left) * (top - bottom)
    area_i = (x_max[i] - x_min[i]) * (y_max[i] - y_min[i])
    area_j = (x_max[j] - x_min[j]) * (y_max[j] - y_min[j])
    union = area_i + area_j - intersection
    if intersection <= 0 or area_i <= 0 or area_j <= 0 or union <= 0:
        return False
    return bool(intersection / union > threshold)


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, max_per_class: int, iou_threshold: np.floating,
                        score_threshold: np.floating | None, center_point_box: int) -> np.ndarray:
    """The ``[selected, 3]`` rows ``(batch, class, box)`` (see the module docstring)."""
    selected: list[tuple[int, int, int]] = []
    for batch in range(boxes.shape[0]):
        corners = _corners(boxes[batch], center_point_box)
        for cls in range(scores.shape[1]):
            class_scores = scores[batch, cls]
            candidates = np.arange(class_scores.size)
            if score_threshold is not None:
                candidates = candidates[class_scores > score_threshold]
            order = candidates[np.lexsort((candidates, -class_scores[candidates]))]
            kept: list[int] = []
            for index in order:
                if len(kept) >= max_per_class:
                    break
                if not any(_overlaps(corners, int(index), k, iou_threshold) for k in kept):
                    kept.append(int(index))
                    selected.append((batch, cls, int(index)))
    return np.array(selected, dtype=np.int64).reshape(-1, 3)


@converts("NonMaxSuppression", (10, 11))
def _nms(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    why = "(the number of boxes kept is the output's shape)"
    boxes = b.require_const(ins[0], f"the boxes {why}")
    scores = b.require_const(ins[1], f"the scores {why}")
    if boxes.ndim != 3 or boxes.shape[2] != 4 or scores.ndim != 3 or scores.shape[::2] != boxes.shape[:2]:
        raise b.error(f"boxes {list(boxes.shape)} must be [batches, boxes, 4] and scores {list(scores.shape)} "
                      "[batches, classes, boxes]")
    center = a.int("center_point_box", 0)
    if center not in (0, 1):
        raise b.error(f"center_point_box={center} must be 0 or 1")
    scalars = []
    for position, what in ((2, "max_output_boxes_per_class"), (3, "iou_threshold"), (4, "score_threshold")):
        name = optional(ins, position)
        value = b.require_const(name, f"{what} {why}") if name else None
        if value is not None and value.size == 0:
            value = None
        if value is not None and value.size != 1:
            raise b.error(f"{what} must hold one value, got shape {list(value.shape)}")
        scalars.append(None if value is None else value.reshape(-1)[0])
    max_per_class = max(int(scalars[0]), 0) if scalars[0] is not None else 0
    iou = scalars[1] if scalars[1] is not None else boxes.dtype.type(0)
    result = non_max_suppression(boxes, scores, max_per_class, iou, scalars[2], center)
    return [b.param(result, node.output[0])]
