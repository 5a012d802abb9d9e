"""AffineGrid, Col2Im, MaxUnpool, MaxRoiPool, DeformConv and Det (``frontend/onnx_spatial.py``) on random inputs
of odd shapes against onnx's reference evaluator (onnxruntime for MaxRoiPool, which the reference lacks), and the
clear errors for inputs the converters refuse."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest
from onnx.reference import ReferenceEvaluator

import tcomp.graph as tg
from tcomp.graph.frontend import from_onnx
from tests.graph.ort_reference import check_node, single_node_model

RNG = np.random.default_rng(71)


def _check(op_type: str, inputs: Mapping[str, np.ndarray], attrs: Mapping[str, Any], opset: int,
           constants: Sequence[str] = (), rtol: float = 1e-5, atol: float = 1e-5) -> None:
    """Compile and run one node with tcomp; compare with onnx's reference evaluator."""
    model = single_node_model(op_type, inputs, 1, attrs, opset, constants)
    feeds = {n: a for n, a in inputs.items() if n and n not in constants}
    want = ReferenceEvaluator(model).run(None, feeds)[0]
    got = tg.compile(model).run(feeds)[0]
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def _import(op_type: str, inputs: Mapping[str, np.ndarray], attrs: Mapping[str, Any], opset: int,
            constants: Sequence[str] = ()) -> None:
    from_onnx(single_node_model(op_type, inputs, 1, attrs, opset, constants))


# -- AffineGrid -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(1, 3, 4, 5), (2, 1, 3, 4, 5), (3, 2, 6, 1), (1, 1, 2, 3, 1)])
@pytest.mark.parametrize("align_corners", [0, 1])
def test_affine_grid_against_reference(size: tuple[int, ...], align_corners: int) -> None:
    dims = len(size) - 2
    theta = RNG.normal(0, 1, (size[0], dims, dims + 1)).astype(np.float32)
    inputs = {"theta": theta, "size": np.array(size, np.int64)}
    if align_corners and 1 in size[2:]:  # the reference divides by zero; a single point sits at 0, as in PyTorch
        got = tg.compile(single_node_model("AffineGrid", inputs, 1, {"align_corners": 1}, 20, ["size"])).run(
            {"theta": theta})[0]
        assert np.isfinite(got).all() and got.shape == (size[0], *size[2:], dims)
        return
    _check("AffineGrid", inputs, {"align_corners": align_corners}, 20, constants=["size"])


def test_affine_grid_refuses_mismatched_theta() -> None:
    inputs = {"theta": np.zeros((2, 2, 3), np.float32), "size": np.array([1, 1, 4, 4], np.int64)}
    with pytest.raises(tg.GraphError, match=r"theta .* must be floats of shape \[1, 2, 3\]"):
        _import("AffineGrid", inputs, {}, 20, constants=["size"])


# -- Col2Im -----------------------------------------------------------------------------------------------------------
def _col2im_inputs(channels: int, image: tuple[int, ...], block: tuple[int, ...],
                   attrs: Mapping[str, list[int]]) -> dict[str, np.ndarray]:
    rank = len(image)
    pads = attrs.get("pads", [0] * 2 * rank)
    strides, dilations = attrs.get("strides", [1] * rank), attrs.get("dilations", [1] * rank)
    blocks = [(size + pads[i] + pads[rank + i] - dilations[i] * (k - 1) - 1) // strides[i] + 1
              for i, (size, k) in enumerate(zip(image, block))]
    data = RNG.normal(0, 1, (2, channels * math.prod(block), math.prod(blocks))).astype(np.float32)
    return {"input": data, "image_shape": np.array(image, np.int64), "block_shape": np.array(block, np.int64)}


@pytest.mark.parametrize(("image", "block", "attrs"), [
    ((5, 7), (2, 3), {}),
    ((9, 8), (3, 2), {"strides": [2, 3], "pads": [1, 0, 2, 1], "dilations": [2, 1]}),
    ((4, 5, 6), (2, 1, 3), {"strides": [1, 2, 2], "pads": [0, 1, 1, 1, 0, 2]}),
])
def test_col2im_against_reference(image: tuple[int, ...], block: tuple[int, ...],
                                  attrs: Mapping[str, list[int]]) -> None:
    inputs = _col2im_inputs(3, image, block, attrs)
    _check("Col2Im", inputs, attrs, 18, constants=["image_shape", "block_shape"])


def test_col2im_refuses_a_block_count_that_does_not_match() -> None:
    inputs = _col2im_inputs(2, (5, 7), (2, 3), {})
    inputs["input"] = inputs["input"][:, :, :-1]
    with pytest.raises(tg.GraphError, match="does not match the input's"):
        _import("Col2Im", inputs, {}, 18, constants=["image_shape", "block_shape"])


def test_col2im_refuses_bad_operands() -> None:
    inputs = _col2im_inputs(2, (5, 7), (2, 3), {})
    with pytest.raises(tg.GraphError, match="must hold 2 positive sizes"):
        _import("Col2Im", {**inputs, "block_shape": np.array([2, 3, 1], np.int64)}, {}, 18,
                constants=["image_shape", "block_shape"])
    with pytest.raises(tg.GraphError, match="not a multiple of prod"):
        _import("Col2Im", {**inputs, "block_shape": np.array([5, 1], np.int64)}, {}, 18,
                constants=["image_shape", "block_shape"])
    with pytest.raises(tg.GraphError, match=r"must be \[N, C \* prod"):
        _import("Col2Im", {**inputs, "input": inputs["input"][0]}, {}, 18, constants=["image_shape", "block_shape"])
    with pytest.raises(tg.GraphError, match="strides .* must be 2 positive ints"):
        _import("Col2Im", inputs, {"strides": [1, 0]}, 18, constants=["image_shape", "block_shape"])


def test_col2im_needs_the_block_shape_at_compile_time() -> None:
    inputs = _col2im_inputs(2, (5, 7), (2, 3), {})
    with pytest.raises(tg.GraphError, match="block_shape .* must be known at compile time"):
        _import("Col2Im", inputs, {}, 18, constants=["image_shape"])


# -- MaxUnpool --------------------------------------------------------------------------------------------------------
def _unpool_inputs(shape: tuple[int, ...], unpooled: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Values with distinct flat indices into the unpooled tensor, as MaxPool's indices are."""
    x = RNG.normal(0, 1, shape).astype(np.float32)
    indices = RNG.permutation(math.prod(unpooled))[:math.prod(shape)].reshape(shape).astype(np.int64)
    return {"x": x, "i": indices}


@pytest.mark.parametrize(("shape", "attrs", "unpooled", "output"), [
    ((2, 3, 3, 4), {"kernel_shape": [2, 2], "strides": [2, 2]}, (2, 3, 6, 8), None),
    ((1, 2, 3, 2, 4), {"kernel_shape": [3, 2, 2], "strides": [2, 1, 2], "pads": [1, 0, 0, 0, 1, 1]},
     (1, 2, 5, 2, 7), (1, 2, 7, 4, 7)),
    ((2, 2, 5), {"kernel_shape": [3]}, (2, 2, 7), (3, 2, 9)),
])
def test_max_unpool_against_reference(shape: tuple[int, ...], attrs: Mapping[str, list[int]],
                                      unpooled: tuple[int, ...], output: tuple[int, ...] | None) -> None:
    inputs = _unpool_inputs(shape, unpooled)
    constants = []
    if output is not None:
        inputs["output_shape"] = np.array(output, np.int64)
        constants = ["output_shape"]
    _check("MaxUnpool", inputs, attrs, 22, constants=constants)


def test_max_unpool_opset_9_and_11() -> None:
    inputs = _unpool_inputs((1, 2, 2, 3), (1, 2, 4, 6))
    for opset in (9, 11):
        _check("MaxUnpool", inputs, {"kernel_shape": [2, 2], "strides": [2, 2]}, opset)


def test_max_unpool_refuses_bad_shapes() -> None:
    inputs = _unpool_inputs((1, 2, 2, 3), (1, 2, 4, 6))
    attrs = {"kernel_shape": [2, 2], "strides": [2, 2]}
    small = {**inputs, "output_shape": np.array([1, 2, 3, 6], np.int64)}
    with pytest.raises(tg.GraphError, match="smaller than the unpooled shape"):
        _import("MaxUnpool", small, attrs, 22, constants=["output_shape"])
    with pytest.raises(tg.GraphError, match="kernel_shape .* must be 2 positive sizes"):
        _import("MaxUnpool", inputs, {"kernel_shape": [2]}, 22)
    with pytest.raises(tg.GraphError, match="'kernel_shape' is required"):
        _import("MaxUnpool", inputs, {}, 22)
    with pytest.raises(tg.GraphError, match="must be integers of X's shape"):
        _import("MaxUnpool", {**inputs, "i": inputs["i"][:, :, :1]}, attrs, 22)


# -- MaxRoiPool -------------------------------------------------------------------------------------------------------
ROIS = np.array([[0, 1.2, 0.7, 9.6, 6.3], [1, 0, 0, 12, 10], [1, 5.5, 2.5, 5.5, 2.5], [0, -3, -2, 4.4, 13],
                 [1, 20, 3, 30, 8]], np.float32)  # a whole image, a single pixel, overhanging and outside


@pytest.mark.parametrize(("pooled", "scale"), [([3, 2], 1.0), ([2, 5], 0.5)])
def test_max_roi_pool_against_onnxruntime(pooled: list[int], scale: float) -> None:
    x = RNG.normal(0, 1, (2, 3, 11, 13)).astype(np.float32)
    check_node("MaxRoiPool", {"x": x, "rois": ROIS}, {"pooled_shape": pooled, "spatial_scale": scale}, opset=21,
               constants=["rois"])


def test_max_roi_pool_empty_bins_give_zero() -> None:
    x = RNG.normal(-5, 1, (1, 2, 6, 6)).astype(np.float32)
    model = single_node_model("MaxRoiPool", {"x": x, "rois": ROIS[4:] * [0, 1, 1, 1, 1]}, 1, {"pooled_shape": [2, 2]},
                              22, constants=["rois"])
    got = tg.compile(model).run({"x": x})[0]
    np.testing.assert_array_equal(got, np.zeros((1, 2, 2, 2), np.float32))


def test_max_roi_pool_refuses_bad_regions() -> None:
    x = RNG.normal(0, 1, (2, 3, 5, 5)).astype(np.float32)
    with pytest.raises(tg.GraphError, match=r"batch indices .* must be in \[0, 2\)"):
        _import("MaxRoiPool", {"x": x, "rois": ROIS * [2, 1, 1, 1, 1]}, {"pooled_shape": [2, 2]}, 22, ["rois"])
    with pytest.raises(tg.GraphError, match=r"must be \[regions, 5\]"):
        _import("MaxRoiPool", {"x": x, "rois": ROIS[:, :4]}, {"pooled_shape": [2, 2]}, 22, ["rois"])
    with pytest.raises(tg.GraphError, match="pooled_shape .* must be two positive sizes"):
        _import("MaxRoiPool", {"x": x, "rois": ROIS}, {"pooled_shape": [2, 0]}, 22, ["rois"])
    with pytest.raises(tg.GraphError, match="regions .* must be known at compile time"):
        _import("MaxRoiPool", {"x": x, "rois": ROIS}, {"pooled_shape": [2, 2]}, 22)
    with pytest.raises(tg.GraphError, match="bins, more than the 1048576"):  # refused before any is listed
        _import("MaxRoiPool", {"x": x, "rois": ROIS}, {"pooled_shape": [1 << 16, 1 << 16]}, 22, ["rois"])


# -- DeformConv -------------------------------------------------------------------------------------------------------
def _deform_inputs(x_shape: tuple[int, ...], w_shape: tuple[int, ...], out_hw: tuple[int, int], offset_groups: int,
                   bias: bool, mask: bool) -> dict[str, np.ndarray]:
    taps = w_shape[2] * w_shape[3]
    inputs = {"x": RNG.normal(0, 1, x_shape).astype(np.float32), "w": RNG.normal(0, 1, w_shape).astype(np.float32),
              "offset": RNG.normal(0, 1.5, (x_shape[0], offset_groups * taps * 2, *out_hw)).astype(np.float32)}
    inputs["b"] = RNG.normal(0, 1, w_shape[:1]).astype(np.float32) if bias else np.zeros(0, np.float32)
    if mask:
        inputs["mask"] = RNG.uniform(0, 1, (x_shape[0], offset_groups * taps, *out_hw)).astype(np.float32)
    if not bias:
        inputs = {("" if n == "b" else n): a for n, a in inputs.items()}
        if not mask:
            del inputs[""]
    return inputs


@pytest.mark.parametrize(("x_shape", "w_shape", "out_hw", "attrs", "bias", "mask"), [
    ((1, 2, 5, 6), (3, 2, 2, 3), (4, 4), {}, False, False),
    ((2, 4, 6, 5), (4, 2, 3, 2), (3, 2), {"group": 2, "offset_group": 2, "strides": [2, 2], "pads": [1, 0, 0, 1],
                                          "dilations": [1, 2]}, True, True),
    ((1, 4, 5, 5), (2, 4, 2, 2), (5, 5), {"offset_group": 4, "pads": [1, 1, 0, 0]}, False, True),
])
def test_deform_conv_against_reference(x_shape: tuple[int, ...], w_shape: tuple[int, ...], out_hw: tuple[int, int],
                                       attrs: Mapping[str, Any], bias: bool, mask: bool) -> None:
    inputs = _deform_inputs(x_shape, w_shape, out_hw, attrs.get("offset_group", 1), bias, mask)
    _check("DeformConv", inputs, attrs, 22, constants=["w"], rtol=1e-4, atol=1e-4)


def test_deform_conv_refuses_bad_shapes() -> None:
    inputs = _deform_inputs((1, 2, 5, 6), (3, 2, 2, 3), (4, 4), 1, False, False)
    with pytest.raises(tg.GraphError, match="output size .* differs from the convolution's"):
        _import("DeformConv", inputs, {"strides": [2, 1]}, 22)
    with pytest.raises(tg.GraphError, match=r"offset .* must be \[1, 12, oH, oW\]"):
        _import("DeformConv", {**inputs, "offset": inputs["offset"][:, :6]}, {}, 22)
    with pytest.raises(tg.GraphError, match="group 2 and offset_group 1 must divide"):
        _import("DeformConv", inputs, {"group": 2}, 22)
    with pytest.raises(tg.GraphError, match="kernel_shape .* differs"):
        _import("DeformConv", inputs, {"kernel_shape": [3, 3]}, 22)
    volume = {"x": np.zeros((1, 1, 3, 3, 3), np.float32), "w": np.zeros((1, 1, 2, 2, 2), np.float32),
              "offset": np.zeros((1, 24, 2, 2, 2), np.float32)}
    with pytest.raises(tg.GraphError, match="only 2-D deformable convolutions"):
        _import("DeformConv", volume, {}, 22)


# -- Det --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (5, 5), (3, 1, 1)])
def test_det_against_numpy(shape: tuple[int, ...]) -> None:
    x = RNG.normal(0, 1, shape)
    singular = x.copy()
    singular[..., 0] = 0.0  # a zero pivot column
    model = single_node_model("Det", {"x": x}, 1, {}, 22)
    executor = tg.compile(model)
    for value in (x, singular):
        got = executor.run({"x": value})[0]
        assert got.shape == shape[:-2] and got.dtype == np.float64
        np.testing.assert_allclose(got, np.linalg.det(value), rtol=1e-10, atol=1e-12)


def test_det_float32_needs_pivoting() -> None:
    x = np.array([[[1e-8, 1, 2], [1, 2, 3], [4, 1, 0]], [[0, 2, 1], [3, 0, 1], [1, 1, 0]]], np.float32)
    _check("Det", {"x": x}, {}, 11, rtol=1e-5, atol=1e-5)


def test_det_of_a_constant_folds() -> None:
    x = RNG.normal(0, 1, (3, 9, 9)).astype(np.float32)
    model = single_node_model("Det", {"x": x}, 1, {}, 22, constants=["x"])
    graph = from_onnx(model)
    assert not any(node.op == "subtract" for node in graph.nodes)
    np.testing.assert_allclose(tg.compile(model).run({})[0], np.linalg.det(x), rtol=1e-5)


def test_det_refuses_bad_inputs() -> None:
    with pytest.raises(tg.GraphError, match="square matrices"):
        _import("Det", {"x": np.zeros((2, 3, 4), np.float32)}, {}, 22)
    with pytest.raises(tg.GraphError, match="larger than the 8 x 8"):
        _import("Det", {"x": np.zeros((9, 9), np.float32)}, {}, 22)
    with pytest.raises(tg.GraphError, match="must be a float tensor"):
        _import("Det", {"x": np.zeros((2, 2), np.int64)}, {}, 22)


def test_errors_name_the_node() -> None:
    with pytest.raises(tg.GraphError, match=r"node det_node \(Det, opset 22\)"):
        _import("Det", {"x": np.zeros((2, 3), np.float32)}, {}, 22)
