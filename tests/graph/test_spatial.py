"""Convolutions, transposed convolutions, pooling and filtered resizing in 1-D, 2-D and 3-D against onnxruntime,
on random inputs with odd sizes and every attribute: pads, auto_pad, strides, dilations, groups, output_padding,
ceil_mode, count_include_pad, storage_order (MaxPool's indices), p (LpPool), cubic_coeff_a, exclude_outside and
antialias (Resize)."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import tcomp.graph as tg
from tcomp.graph.kernels import node_tensors
from tcomp.ops.utils import OpKind, op_kind


def single_node(op: str, x_shape: tuple[int, ...], outputs: int = 1, params: dict[str, np.ndarray] | None = None,
                extra_inputs: tuple[str, ...] = (), opset: int = 19, **attrs: Any) -> onnx.ModelProto:
    params = params or {}
    names = ["x", *params, *extra_inputs]
    out_names = ["y", "indices"][:outputs]
    node = helper.make_node(op, names, out_names, **attrs)
    graph = helper.make_graph(
        [node], op.lower(), [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT if n == "y" else TensorProto.INT64, None)
         for n in out_names],
        [numpy_helper.from_array(v, k) for k, v in params.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def check(model: onnx.ModelProto, x: np.ndarray, rtol: float = 1e-4) -> list[np.ndarray]:
    [*got] = tg.compile(model).run([x]) or []
    want = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        if g.dtype.kind == "f":
            scale = float(np.abs(w).max()) or 1.0
            np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * scale)
        else:
            np.testing.assert_array_equal(g, w)
    return got


def rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


CONVS = [  # x shape, weight shape, attributes
    ((1, 4, 7, 6, 5), (6, 2, 3, 2, 3), dict(pads=[1, 0, 1, 0, 1, 2], strides=[2, 1, 1], dilations=[1, 2, 1], group=2)),
    ((2, 3, 5, 6, 7), (4, 3, 2, 3, 3), dict(auto_pad="SAME_UPPER", strides=[2, 2, 1])),
    ((1, 2, 9), (3, 2, 4), dict(pads=[2, 1], strides=[3], dilations=[2])),
    # kernel taps that read only padding (cropped by ``simplify``): 1x1 inputs, a stride-2 3x3 over 2x2, groups
    ((1, 16, 1, 1), (32, 16, 3, 3), dict(pads=[1, 1, 1, 1])),
    ((1, 32, 2, 2), (16, 32, 3, 3), dict(pads=[1, 1, 1, 1], strides=[2, 2])),
    ((1, 8, 2, 3), (8, 2, 5, 5), dict(pads=[2, 2, 2, 2], group=4)),
    ((1, 8, 1, 1), (8, 1, 3, 3), dict(pads=[1, 1, 1, 1], group=8)),
    ((1, 4, 1, 5), (6, 4, 3, 3), dict(pads=[1, 1, 1, 1], dilations=[1, 2])),
]


@pytest.mark.parametrize("x_shape,w_shape,attrs", CONVS)
def test_conv(x_shape: tuple[int, ...], w_shape: tuple[int, ...], attrs: dict[str, Any]) -> None:
    params = {"w": rand(*w_shape, seed=1), "b": rand(w_shape[0], seed=2)}
    check(single_node("Conv", x_shape, params=params, **attrs), rand(*x_shape))


TRANSPOSED = [
    ((1, 4, 3, 4, 2), (4, 3, 3, 2, 2), dict(strides=[2, 1, 2], pads=[1, 0, 0, 0, 1, 1], output_padding=[1, 0, 1],
                                            dilations=[1, 2, 1], group=2)),
    ((2, 3, 5, 4), (3, 2, 3, 3), dict(strides=[2, 3], auto_pad="SAME_LOWER")),
    ((1, 2, 7), (2, 3, 4), dict(strides=[3], output_shape=[22])),
]


@pytest.mark.parametrize("x_shape,w_shape,attrs", TRANSPOSED)
def test_conv_transpose(x_shape: tuple[int, ...], w_shape: tuple[int, ...], attrs: dict[str, Any]) -> None:
    group = attrs.get("group", 1)
    params = {"w": rand(*w_shape, seed=3), "b": rand(w_shape[1] * group, seed=4)}
    check(single_node("ConvTranspose", x_shape, params=params, **attrs), rand(*x_shape))


POOLS = [  # op, x shape, attributes, outputs
    ("MaxPool", (1, 3, 7, 8, 6), dict(kernel_shape=[3, 2, 3], strides=[2, 2, 1], pads=[1, 0, 1, 1, 1, 0],
                                      dilations=[1, 2, 1], ceil_mode=1), 2),
    ("MaxPool", (2, 2, 9, 7), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], storage_order=1), 2),
    # (SAME padding with dilations: onnxruntime sizes the pads for the undilated kernel, against the ONNX spec)
    ("MaxPool", (1, 2, 11), dict(kernel_shape=[3], strides=[2], auto_pad="SAME_UPPER"), 1),
    ("MaxPool", (1, 2, 11), dict(kernel_shape=[3], strides=[2], dilations=[3], pads=[2, 1]), 1),
    ("AveragePool", (1, 3, 6, 7, 5), dict(kernel_shape=[2, 3, 2], strides=[2, 2, 2], pads=[1, 1, 0, 1, 1, 1],
                                          ceil_mode=1, count_include_pad=1), 1),
    ("AveragePool", (2, 2, 8, 9), dict(kernel_shape=[3, 2], strides=[1, 2], dilations=[2, 3], pads=[2, 1, 2, 1]), 1),
    ("LpPool", (1, 3, 7, 6), dict(kernel_shape=[3, 2], strides=[2, 1], pads=[1, 0, 1, 1], p=3), 1),
    ("LpPool", (1, 2, 5, 4, 6), dict(kernel_shape=[2, 2, 3], strides=[1, 2, 2], auto_pad="SAME_LOWER"), 1),
    ("GlobalLpPool", (2, 3, 4, 5), dict(p=1), 1),
    ("GlobalMaxPool", (1, 3, 4, 3, 5), {}, 1),
    ("GlobalAveragePool", (1, 3, 4, 3, 5), {}, 1),
]


@pytest.mark.parametrize("op,x_shape,attrs,outputs", POOLS)
def test_pool(op: str, x_shape: tuple[int, ...], attrs: dict[str, Any], outputs: int) -> None:
    opset = 18 if op == "LpPool" else 19  # onnxruntime implements LpPool up to opset 18
    check(single_node(op, x_shape, outputs=outputs, opset=opset, **attrs), rand(*x_shape, seed=5))


def test_max_pool_indices_point_at_the_first_maximum() -> None:
    x = np.zeros((1, 1, 4, 4), np.float32)  # every window's elements are equal: the first one in window order
    [y, indices] = check(single_node("MaxPool", x.shape, outputs=2, kernel_shape=[2, 2], strides=[1, 1]), x)
    np.testing.assert_array_equal(indices[0, 0], [[0, 1, 2], [4, 5, 6], [8, 9, 10]])


RESIZES = [  # x shape, scales, attributes
    ((1, 2, 6, 7), [1.0, 1.0, 0.5, 0.6], dict(mode="cubic", antialias=1)),
    ((1, 2, 5, 6), [1.0, 1.0, 1.7, 2.5], dict(mode="cubic", cubic_coeff_a=-0.5, exclude_outside=1)),
    ((1, 1, 9, 8), [1.0, 1.0, 0.4, 0.75], dict(mode="linear", antialias=1)),
    # (scales that give whole output extents: onnxruntime aligns corners by the rounded extent, ONNX's reference by
    # the exact one)
    ((2, 3, 4, 7), [1.0, 1.0, 1.5, 2.0], dict(mode="cubic", coordinate_transformation_mode="align_corners")),
    # no axis resized: DINOv2's position embeddings interpolated to the size they have
    ((1, 2, 4, 4), [1.0, 1.0, 1.0, 1.0], dict(mode="cubic")),
    ((1, 2, 4, 4), [1.0, 1.0, 1.0, 1.0], dict(mode="cubic", antialias=1)),
]


@pytest.mark.parametrize("x_shape,scales,attrs", RESIZES)
def test_filtered_resize(x_shape: tuple[int, ...], scales: list[float], attrs: dict[str, Any]) -> None:
    params = {"roi": np.array([], np.float32), "scales": np.array(scales, np.float32)}
    check(single_node("Resize", x_shape, params=params, **attrs), rand(*x_shape, seed=6))


LINEAR_RESIZES = [  # x shape, scales, coordinate transformation mode
    ((1, 3, 5, 7), [1.0, 1.0, 16.0, 16.0], "half_pixel"),  # DeepLabV3's 16x upsampling
    ((2, 2, 9, 11), [1.0, 1.0, 0.5, 0.7], "half_pixel"),
    ((1, 2, 6, 5), [1.0, 1.0, 2.5, 1.5], "pytorch_half_pixel"),
    ((1, 2, 6, 5), [1.0, 1.0, 3.0, 2.0], "align_corners"),
    ((1, 2, 6, 5), [1.0, 1.0, 1.5, 2.5], "asymmetric"),
    ((2, 3, 4, 5, 6), [1.0, 1.0, 2.0, 1.5, 0.5], "half_pixel"),  # trilinear: the last axis, then two
]


@pytest.mark.parametrize("x_shape,scales,coord", LINEAR_RESIZES)
def test_linear_resize_one_axis_after_the_other(x_shape: tuple[int, ...], scales: list[float], coord: str) -> None:
    """(Bi/tri)linear resizing runs the last resized axis as a stage of its own, then the others from its rows: the
    same values as onnxruntime's one pass over every neighbour."""
    params = {"roi": np.array([], np.float32), "scales": np.array(scales, np.float32)}
    model = single_node("Resize", x_shape, params=params, mode="linear", coordinate_transformation_mode=coord)
    check(model, rand(*x_shape, seed=7))
    graph = tg.from_onnx(model)
    node = next(n for n in graph.nodes if n.op == "resize")
    [out] = node_tensors(graph, node).outputs
    assert [op_kind(t.op) for t in out.op.input_tensors()] == [OpKind.RESIZE_ROWS]
