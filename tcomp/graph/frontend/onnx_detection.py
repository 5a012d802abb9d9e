"""ONNX detection-head operators: ``NonMaxSuppression`` (computed while compiling) and ``RoiAlign``.

The number of boxes kept is the output's shape, so, as for ``NonZero``, the boxes, scores and thresholds must be
known at compile time (constants, values computed from them, ``input_values=``); when graph inputs decide them the
executor specializes on their values (one compilation per distinct input: right, but slow for a model whose boxes
come from its image). The selection follows onnx's reference and onnxruntime: per batch and class, the boxes whose
score is above ``score_threshold`` (all when it is absent) in order of decreasing score (ties: the lower index
first), each kept unless its intersection over union with a box kept before is above ``iou_threshold``, at most
``max_output_boxes_per_class`` of them (none when absent); boxes are corners ``[y1, x1, y2, x2]`` in any order
(``center_point_box=0``) or ``[x_center, y_center, width, height]`` (1). The result is ``[selected, 3]`` int64 rows
``(batch, class, box)``.

``RoiAlign``'s sample positions and bilinear weights are computed while compiling from the regions (known at compile
time, or specialized on as above), as onnx's reference and onnxruntime compute them (``sampling_ratio`` 0: each
region's own grid, ``ceil(size / output size)``); the kernels gather the feature map at those positions and take
the weighted average, or for ``mode="max"`` the largest weighted corner of any sample, as both references do.
"""

from __future__ import annotations

import numpy as np
import onnx

from tcomp.graph.frontend.onnx_builder import Builder
from tcomp.graph.frontend.onnx_common import Attrs, converts, optional
from tcomp.ir import dtype as dt


def feature_map(b: Builder, x: str) -> tuple[int, int, int, int]:
    """``[N, C, H, W]`` of the feature map ``x`` that regions of interest are pooled from."""
    xt = b.type(x)
    if xt.ndim != 4:
        raise b.error(f"X must be [N, C, H, W], got {xt}")
    n, c, h, w = xt.shape
    return n, c, h, w


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
    center = int(a.flag("center_point_box", 0))
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


def _roi_samples(rois: np.ndarray, height: int, width: int, out_h: int, out_w: int, ratio: int, scale: float,
                 half_pixel: bool, repeat_first: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per region and output cell, the ``[samples, 4]`` positions (in ``height * width``) and weights of the
    bilinear corners of each sample, and the number of samples; regions with fewer samples than the most are
    padded with zero weights, or with ``repeat_first`` their first sample again (no effect on a maximum)."""
    offset = 0.5 if half_pixel else 0.0
    per_roi = []
    for roi in rois.astype(np.float64):
        start_w, start_h, end_w, end_h = roi * scale - offset
        roi_w, roi_h = end_w - start_w, end_h - start_h
        if not half_pixel:
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        bin_h, bin_w = roi_h / out_h, roi_w / out_w
        grid_h = ratio if ratio > 0 else int(np.ceil(roi_h / out_h))
        grid_w = ratio if ratio > 0 else int(np.ceil(roi_w / out_w))
        iy, ix = np.meshgrid(np.arange(grid_h), np.arange(grid_w), indexing="ij")
        ph, pw = np.meshgrid(np.arange(out_h), np.arange(out_w), indexing="ij")
        y = start_h + ph[..., None] * bin_h + (iy.reshape(-1) + 0.5) * bin_h / max(grid_h, 1)
        x = start_w + pw[..., None] * bin_w + (ix.reshape(-1) + 0.5) * bin_w / max(grid_w, 1)
        outside = (y < -1.0) | (y > height) | (x < -1.0) | (x > width)
        y, x = np.maximum(y, 0), np.maximum(x, 0)
        y_low, x_low = y.astype(np.int64), x.astype(np.int64)
        y_edge, x_edge = y_low >= height - 1, x_low >= width - 1
        y_low, x_low = np.where(y_edge, height - 1, y_low), np.where(x_edge, width - 1, x_low)
        y, x = np.where(y_edge, y_low, y), np.where(x_edge, x_low, x)
        y_high, x_high = np.where(y_edge, y_low, y_low + 1), np.where(x_edge, x_low, x_low + 1)
        ly, lx = y - y_low, x - x_low
        hy, hx = 1.0 - ly, 1.0 - lx
        positions = np.stack([y_low * width + x_low, y_low * width + x_high, y_high * width + x_low,
                              y_high * width + x_high], -1)
        weights = np.stack([hy * hx, hy * lx, ly * hx, ly * lx], -1)
        positions[outside], weights[outside] = 0, 0.0
        per_roi.append((positions.reshape(out_h * out_w, -1, 4), weights.reshape(out_h * out_w, -1, 4)))
    samples = max([1] + [p.shape[1] for p, _ in per_roi])
    positions = np.zeros((len(per_roi), out_h * out_w, samples, 4), np.int64)
    weights = np.zeros((len(per_roi), out_h * out_w, samples, 4))
    counts = np.ones(len(per_roi))
    for r, (p, w) in enumerate(per_roi):
        counts[r] = max(p.shape[1], 1)
        if p.shape[1] == 0:
            continue
        if repeat_first:
            positions[r], weights[r] = p[:, :1], w[:, :1]
        positions[r, :, :p.shape[1]], weights[r, :, :p.shape[1]] = p, w
    return positions, weights, counts


@converts("RoiAlign", (10, 16, 22))
def _roi_align(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    x = ins[0]
    batches, channels, height, width = feature_map(b, x)
    why = "(the sample positions are computed from them while compiling)"
    rois = b.require_const(ins[1], f"the regions {why}")
    indices = b.require_const(ins[2], f"the batch indices {why}").astype(np.int64).reshape(-1)
    if rois.ndim != 2 or rois.shape[1] != 4 or indices.shape != (rois.shape[0],):
        raise b.error(f"rois {list(rois.shape)} must be [regions, 4] with one batch index each")
    if indices.size and (indices.min() < 0 or indices.max() >= batches):
        raise b.error(f"batch indices {indices.tolist()} must be in [0, {batches})")
    mode = a.string("mode", "avg")
    if mode not in ("avg", "max"):
        raise b.error(f"mode {mode!r} is not avg or max")
    transform = a.string("coordinate_transformation_mode", "half_pixel") if v >= 16 else "output_half_pixel"
    if transform not in ("half_pixel", "output_half_pixel"):
        raise b.error(f"coordinate_transformation_mode {transform!r} is not half_pixel or output_half_pixel")
    out_h, out_w = a.int("output_height", 1), a.int("output_width", 1)
    ratio = a.int("sampling_ratio", 0)
    if out_h < 1 or out_w < 1 or ratio < 0:
        raise b.error(f"output_height {out_h} and output_width {out_w} must be positive, sampling_ratio {ratio} "
                      "not negative")
    positions, weights, counts = _roi_samples(rois, height, width, out_h, out_w, ratio,
                                              a.float("spatial_scale", 1.0), transform == "half_pixel",
                                              mode == "max")
    regions, cells, samples = positions.shape[:3]
    dtype = dt.to_numpy(b.type(x).dtype)
    rows = b.add1("reshape", [b.add1("transpose", [x], perm=(0, 2, 3, 1))], shape=(batches * height * width, channels))
    flat = (positions + indices[:, None, None, None] * height * width).reshape(-1)
    gathered = b.add1("take", [rows, b.param(flat, f"{b.node_name}/positions")], axis=0)
    gathered = b.add1("reshape", [gathered], shape=(regions * cells, samples, 4, channels))
    weight = b.param(weights.reshape(regions * cells, samples, 4, 1).astype(dtype), f"{b.node_name}/weights")
    weighted = b.add1("multiply", [gathered, weight])
    if mode == "avg":
        total = b.add1("sum", [weighted], axes=(1, 2), keepdims=False)
        divisor = np.repeat(counts, cells).reshape(-1, 1).astype(dtype)
        pooled = b.add1("divide", [total, b.param(divisor, f"{b.node_name}/counts")])
    else:
        pooled = b.add1("max", [weighted], axes=(1, 2), keepdims=False)
    pooled = b.add1("reshape", [pooled], shape=(regions, out_h, out_w, channels))
    return [b.add1("transpose", [pooled], output=node.output[0], perm=(0, 3, 1, 2))]
