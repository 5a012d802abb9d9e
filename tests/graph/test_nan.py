"""NaN propagates through max and min (IEEE 754-2019 ``maximum``/``minimum``): Relu, Max, Min, Clip, MaxPool (with
padding and ceil mode), ReduceMax, ReduceMin, and a convolution's fused Relu.

Relu, Max, Min, Clip and Conv+Relu are compared with onnxruntime. ReduceMax and ReduceMin are compared with onnx's
reference implementation and numpy, which agree: onnxruntime 1.32's CPU kernels skip NaN in these two. MaxPool is
compared with numpy (``max`` over each window, as PyTorch's ``max_pool2d`` does): onnxruntime and onnx's reference
return NaN only where a NaN happens to be the last element of its window compared (a strict subset of the windows
that hold one), which the test checks too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import tcomp.graph as tg
from tcomp.ops.testing import pool2d_python


def _model(op: str, x_shape: tuple[int, ...], constants: dict[str, np.ndarray] | None = None,
           extra_inputs: tuple[str, ...] = (), **attrs: Any) -> onnx.ModelProto:
    constants = constants or {}
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)]
    inputs += [helper.make_tensor_value_info(name, TensorProto.FLOAT, x_shape) for name in extra_inputs]
    node = helper.make_node(op, ["x", *extra_inputs, *constants], ["y"], **attrs)
    graph = helper.make_graph([node], op.lower(), inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(v, k) for k, v in constants.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _with_nans(shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = rng.uniform(-3, 3, size=shape).astype(np.float32)
    flat = data.reshape(-1)
    flat[rng.choice(flat.size, size=max(2, flat.size // 9), replace=False)] = np.nan
    flat[0] = np.nan  # the first element of a reduction, where an accumulator starts
    flat[-1] = np.nan  # and the last
    return data


def _onnxruntime(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def _tcomp(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    [out] = tg.compile(model).run([feeds[name] for name in feeds])
    return out


SHAPE = (2, 3, 7, 37)  # the last axis is no multiple of any vector width
CASES = {
    "Relu": lambda: _model("Relu", SHAPE),
    "Max": lambda: _model("Max", SHAPE, extra_inputs=("b",)),
    "Min": lambda: _model("Min", SHAPE, extra_inputs=("b",)),
    "Clip": lambda: _model("Clip", SHAPE, {"lo": np.array(-1, np.float32), "hi": np.array(1.5, np.float32)}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_nan_propagates_as_onnxruntime(name: str) -> None:
    model = CASES[name]()
    feeds = {"x": _with_nans(SHAPE, 0)}
    if len(model.graph.input) == 2:
        feeds["b"] = _with_nans(SHAPE, 1)  # NaN in either operand, and in both at some positions
    want = _onnxruntime(model, feeds)
    got = _tcomp(model, feeds)
    assert np.isnan(want).any() and not np.isnan(want).all()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True)


@pytest.mark.parametrize("op", ["ReduceMax", "ReduceMin"])
@pytest.mark.parametrize("axes", [[3], [1, 2], None])
def test_reductions_propagate_nan_as_onnx_reference(op: str, axes: list[int] | None) -> None:
    constants = {} if axes is None else {"axes": np.array(axes, np.int64)}
    model = _model(op, SHAPE, constants, keepdims=0)
    data = np.random.default_rng(2).uniform(-3, 3, size=SHAPE).astype(np.float32)
    data[0, 1, 2, 36] = np.nan  # one NaN: only the rows reduced over it are NaN
    data[1, 0, 0, 0] = np.nan
    want = ReferenceEvaluator(model).run(None, {"x": data})[0]
    numpy_reduce = np.max if op == "ReduceMax" else np.min
    np.testing.assert_array_equal(want, numpy_reduce(data, axis=None if axes is None else tuple(axes)))
    got = _tcomp(model, {"x": data})
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("ceil_mode", [0, 1])
def test_max_pool_propagates_nan_in_every_window(ceil_mode: int) -> None:
    kernel, stride, pads = (3, 2, [1, 1, 1, 1]) if ceil_mode == 0 else (2, 2, [0, 0, 0, 0])
    model = _model("MaxPool", SHAPE, kernel_shape=[kernel, kernel], strides=[stride, stride], pads=pads,
                   ceil_mode=ceil_mode)
    data = _with_nans(SHAPE, 5)
    want = pool2d_python(data, kernel, stride, pads, "max", ceil_mode=bool(ceil_mode))
    got = _tcomp(model, {"x": data})
    np.testing.assert_array_equal(got, want)
    theirs = _onnxruntime(model, {"x": data})
    assert np.isnan(got)[np.isnan(theirs)].all()  # every NaN onnxruntime gives, and more
    np.testing.assert_array_equal(got[~np.isnan(got)], theirs[~np.isnan(got)])


def test_fused_conv_relu_keeps_nan() -> None:
    weight = np.random.default_rng(3).uniform(-1, 1, size=(8, 3, 3, 3)).astype(np.float32)
    conv = helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1])
    relu = helper.make_node("Relu", ["c"], ["y"])
    graph = helper.make_graph([conv, relu], "conv_relu", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                       (1, 3, 9, 9))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(weight, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    data = np.random.default_rng(4).uniform(-1, 1, size=(1, 3, 9, 9)).astype(np.float32)
    data[0, 1, 4, 4] = np.nan  # a 3x3 patch of every output channel becomes NaN
    want = _onnxruntime(model, {"x": data})
    got = _tcomp(model, {"x": data})
    assert np.isnan(want).sum() == 8 * 9
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, equal_nan=True)
