"""``ReverseSequence Compress Unique TensorScatter BitCast`` (``frontend/onnx_select.py``) against numpy on random
inputs of odd shapes: run-time sequence lengths and write indices, negative axes, circular writes that wrap, values
that decide shapes given as graph inputs (the executor specializes on them), and every error."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto

import tcomp.graph as tg
from tcomp.graph.frontend.onnx_select import unique
from tcomp.runtime.errors import KernelError
from tests.graph.ort_reference import single_node_model

RNG = np.random.default_rng(23)


def _run(op: str, inputs: dict[str, np.ndarray], attrs: dict[str, Any], opset: int, outputs: int = 1,
         constants: tuple[str, ...] = ()) -> list[np.ndarray]:
    """Compile a one-node model (``constants`` as initializers) and run it on the other inputs."""
    executor = tg.compile(single_node_model(op, inputs, outputs, attrs, opset, constants))
    result = executor.run({n: a for n, a in inputs.items() if n and n not in constants})
    assert result is not None
    return result


def _import(op: str, inputs: dict[str, np.ndarray], attrs: dict[str, Any], opset: int,
            constants: tuple[str, ...] = (), outputs: int = 1) -> None:
    tg.from_onnx(single_node_model(op, inputs, outputs, attrs, opset, constants))


def _same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype, f"{got.shape} {got.dtype} != {want.shape} {want.dtype}"
    np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------------------------------------------------------------
# ReverseSequence
def _reverse_sequence(x: np.ndarray, lens: np.ndarray, batch_axis: int, time_axis: int) -> np.ndarray:
    out = x.copy()
    for b, length in enumerate(lens):
        target = [slice(None)] * x.ndim
        source = [slice(None)] * x.ndim
        target[batch_axis] = source[batch_axis] = b
        target[time_axis] = slice(0, length)
        source[time_axis] = slice(length - 1, None, -1) if length else slice(0, 0)
        out[tuple(target)] = x[tuple(source)]
    return out


def test_reverse_sequence_run_time_lengths() -> None:
    x = RNG.standard_normal((5, 3, 2)).astype(np.float32)
    model = single_node_model("ReverseSequence", {"x": x, "lens": np.zeros(3, np.int64)}, 1,
                              {"batch_axis": 1, "time_axis": 0}, 10)
    executor = tg.compile(model)
    for lens in ([5, 0, 3], [1, 4, 2]):
        lengths = np.array(lens, np.int64)
        got = executor.run({"x": x, "lens": lengths})
        assert got is not None
        _same(got[0], _reverse_sequence(x, lengths, 1, 0))


def test_reverse_sequence_constant_lengths_time_axis_1() -> None:
    x = RNG.integers(-50, 50, (3, 7, 2)).astype(np.int32)
    lens = np.array([7, 1, 4], np.int64)
    got = _run("ReverseSequence", {"x": x, "lens": lens}, {"batch_axis": 0, "time_axis": 1}, 28, constants=("lens",))
    _same(got[0], _reverse_sequence(x, lens, 0, 1))


def test_reverse_sequence_run_time_length_beyond_the_steps_fails_the_run() -> None:
    x = np.zeros((2, 2), np.uint8)
    model = single_node_model("ReverseSequence", {"x": x, "lens": np.zeros(2, np.int64)}, 1, {}, 10)
    with pytest.raises(KernelError, match="out of range"):
        tg.compile(model).run({"x": x, "lens": np.array([2, 3], np.int64)})


@pytest.mark.parametrize(("shape", "lens", "attrs", "match"), [
    ((6,), [1], {}, "at least 2 dimensions"),
    ((4, 3), [1, 2, 3], {"batch_axis": 0, "time_axis": 0}, "must be 0 and 1"),
    ((4, 3), [1, 2], {}, "must be a vector of the batch size 3"),
    ((4, 3), [1, 5, 2], {}, r"must be in \[0, 4\]"),
])
def test_reverse_sequence_errors(shape: tuple[int, ...], lens: list[int], attrs: dict[str, int], match: str) -> None:
    x = np.zeros(shape, np.float32)
    with pytest.raises(tg.GraphError, match=match):
        _import("ReverseSequence", {"x": x, "lens": np.array(lens, np.int64)}, attrs, 10, constants=("lens",))


# ---------------------------------------------------------------------------------------------------------------------
# Compress
def test_compress_negative_axis_run_time_data() -> None:
    x = RNG.standard_normal((3, 5, 7)).astype(np.float32)
    condition = np.array([True, False, True, True, False, True], bool)  # shorter than the axis: the rest dropped
    got = _run("Compress", {"x": x, "c": condition}, {"axis": -1}, 11, constants=("c",))
    _same(got[0], np.compress(condition, x, axis=-1))


def test_compress_flattened_with_condition_as_graph_input() -> None:
    x = RNG.integers(0, 9, (3, 5)).astype(np.int64)
    condition = RNG.random(17) < 0.5  # longer than the 15 elements, false beyond them
    condition[15:] = False
    condition[0] = True
    got = _run("Compress", {"x": x, "c": condition}, {}, 9)  # the executor specializes on the condition
    _same(got[0], np.compress(condition, x))


def test_compress_nothing_selected() -> None:
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    got = _run("Compress", {"x": x, "c": np.zeros(4, bool)}, {"axis": 1}, 11, constants=("c",))
    _same(got[0], np.zeros((3, 0), np.float32))


@pytest.mark.parametrize(("condition", "attrs", "match"), [
    (np.array([1, 0, 1], np.int64), {"axis": 0}, "1-D bool tensor"),
    (np.array([False, False, False, False, True]), {"axis": 1}, "selects position 4, beyond the extent 4"),
    (np.array([True]), {"axis": -3}, "axis=-3 is out of range"),
])
def test_compress_errors(condition: np.ndarray, attrs: dict[str, int], match: str) -> None:
    with pytest.raises(tg.GraphError, match=match):
        _import("Compress", {"x": np.zeros((3, 4), np.float32), "c": condition}, attrs, 11, constants=("c",))


# ---------------------------------------------------------------------------------------------------------------------
# Unique
@pytest.mark.parametrize(("x", "attrs", "want"), [
    (np.array([2, 1, 1, 3, 4, 3], np.int64), {"sorted": 0},
     ([2, 1, 3, 4], [0, 1, 3, 4], [0, 1, 1, 2, 3, 2], [1, 2, 2, 1])),
    (np.array([[1, 3], [2, 3]], np.int32), {}, ([1, 2, 3], [0, 2, 1], [0, 2, 1, 2], [1, 1, 2])),
    (np.array([[1, 0, 0], [1, 0, 0], [2, 3, 4]], np.int64), {"axis": 0},
     ([[1, 0, 0], [2, 3, 4]], [0, 2], [0, 0, 1], [2, 1])),
    (np.array([[[1, 1], [0, 1], [2, 1], [0, 1]], [[1, 1], [0, 1], [2, 1], [0, 1]]], np.float32), {"axis": -2},
     ([[[0, 1], [1, 1], [2, 1]], [[0, 1], [1, 1], [2, 1]]], [1, 0, 2], [1, 0, 2, 0], [2, 1, 1])),
])
def test_unique_examples(x: np.ndarray, attrs: dict[str, int], want: tuple[list[Any], ...]) -> None:
    got = _run("Unique", {"x": x}, attrs, 11, outputs=4, constants=("x",))
    _same(got[0], np.array(want[0], x.dtype))
    for position in (1, 2, 3):
        _same(got[position], np.array(want[position], np.int64))


@pytest.mark.parametrize("axis", [None, 1, -1])
def test_unique_unsorted_first_occurrence_order(axis: int | None) -> None:
    x = RNG.integers(0, 3, (3, 5, 2)).astype(np.int16)
    y, first, inverse, counts = unique(x, axis, sort=False)
    along = 0 if axis is None else axis
    source = x.reshape(-1) if axis is None else x
    assert np.all(np.diff(first) > 0)  # in order of first occurrence
    _same(np.take(source, first, axis=along), y)
    _same(np.take(y, inverse, axis=along), source)
    assert counts.sum() == source.shape[along]
    for index, count in enumerate(counts):
        assert np.count_nonzero(inverse == index) == count


def test_unique_of_graph_input_and_fewer_outputs() -> None:
    x = RNG.integers(0, 4, (7,)).astype(np.uint8)
    got = _run("Unique", {"x": x}, {"sorted": 0}, 28, outputs=2)  # the executor specializes on the input
    y, first, _, _ = unique(x, None, sort=False)
    _same(got[0], y)
    _same(got[1], first)


def test_unique_of_empty_input() -> None:
    got = _run("Unique", {"x": np.zeros((0, 3), np.float32)}, {"sorted": 0}, 11, outputs=4, constants=("x",))
    _same(got[0], np.zeros(0, np.float32))
    for position in (1, 2, 3):
        _same(got[position], np.zeros(0, np.int64))


@pytest.mark.parametrize(("attrs", "match"), [({"axis": 2}, "axis=2 is out of range"), ({"sorted": 2}, "sorted=2")])
def test_unique_errors(attrs: dict[str, int], match: str) -> None:
    with pytest.raises(tg.GraphError, match=match):
        _import("Unique", {"x": np.zeros((2, 3), np.float32)}, attrs, 11, constants=("x",))


# ---------------------------------------------------------------------------------------------------------------------
# TensorScatter
def _tensor_scatter(cache: np.ndarray, update: np.ndarray, write: np.ndarray, axis: int, circular: bool) -> np.ndarray:
    out = cache.copy()
    axis = axis % cache.ndim
    capacity = cache.shape[axis]
    for prefix in np.ndindex(*cache.shape[:axis]):
        for step in range(update.shape[axis]):
            position = write[prefix[0]] + step
            position = position % capacity if circular else position
            if position < capacity:
                out[(*prefix, position)] = update[(*prefix, step)]
    return out


def test_tensor_scatter_linear_run_time_write_indices() -> None:
    cache = RNG.standard_normal((2, 3, 9, 4)).astype(np.float32)
    update = RNG.standard_normal((2, 3, 3, 4)).astype(np.float32)
    model = single_node_model("TensorScatter", {"c": cache, "u": update, "w": np.zeros(2, np.int64)}, 1, {}, 24)
    executor = tg.compile(model)
    for write in ([0, 6], [5, 2]):
        indices = np.array(write, np.int64)
        got = executor.run({"c": cache, "u": update, "w": indices})
        assert got is not None
        _same(got[0], _tensor_scatter(cache, update, indices, -2, False))


def test_tensor_scatter_circular_wraps() -> None:
    cache = RNG.integers(-9, 9, (3, 5, 2)).astype(np.int32)
    update = RNG.integers(10, 20, (3, 4, 2)).astype(np.int32)
    write = np.array([0, 3, 4], np.int64)
    got = _run("TensorScatter", {"c": cache, "u": update, "w": write}, {"axis": 1, "mode": "circular"}, 24)
    _same(got[0], _tensor_scatter(cache, update, write, 1, True))


def test_tensor_scatter_without_write_indices() -> None:
    cache = RNG.standard_normal((2, 7, 3)).astype(np.float32)
    update = RNG.standard_normal((2, 7, 2)).astype(np.float32)
    got = _run("TensorScatter", {"c": cache, "u": update}, {"axis": -1}, 24)
    _same(got[0], _tensor_scatter(cache, update, np.zeros(2, np.int64), -1, False))


@pytest.mark.parametrize(("update_shape", "write", "attrs", "match"), [
    ((2, 2, 3), None, {"axis": 0}, "must not be the batch axis"),
    ((2, 2, 3), None, {"axis": 3}, "axis=3 is out of range"),
    ((2, 2, 3), None, {"mode": "ring"}, "mode 'ring'"),
    ((2, 6, 3), None, {}, "at most as long"),
    ((2, 2, 4), None, {}, "must match past_cache"),
    ((2, 2, 3), [0, 1, 2], {}, "write_indices .* batch size 2"),
])
def test_tensor_scatter_errors(update_shape: tuple[int, ...], write: list[int] | None, attrs: dict[str, Any],
                               match: str) -> None:
    inputs = {"c": np.zeros((2, 5, 3), np.float32), "u": np.zeros(update_shape, np.float32)}
    if write is not None:
        inputs["w"] = np.array(write, np.int64)
    with pytest.raises(tg.GraphError, match=match):
        _import("TensorScatter", inputs, attrs, 24)


def test_tensor_scatter_element_types_must_agree() -> None:
    with pytest.raises(tg.GraphError, match="same type and rank"):
        _import("TensorScatter", {"c": np.zeros((2, 5, 3), np.float32), "u": np.zeros((2, 2, 3), np.float16)}, {}, 24)


# ---------------------------------------------------------------------------------------------------------------------
# BitCast
@pytest.mark.parametrize(("source", "target"), [
    (np.int32, TensorProto.UINT32), (np.int8, TensorProto.UINT8), (np.bool_, TensorProto.UINT8),
    (np.uint64, TensorProto.INT64),
])
def test_bitcast_integers_at_run_time(source: type, target: int) -> None:
    x = RNG.integers(-128, 128, (3, 5)).astype(source) if source is not np.bool_ else RNG.random((3, 5)) < 0.5
    if source is np.uint64:
        x = np.array([[2**64 - 1, 5, 2**63]], np.uint64)
    got = _run("BitCast", {"x": x}, {"to": target}, 26)
    want_type = {TensorProto.UINT32: np.uint32, TensorProto.UINT8: np.uint8, TensorProto.INT64: np.int64}[target]
    _same(got[0], x.view(want_type))


def test_bitcast_float_constants() -> None:
    x = np.array([[1.5, -0.0, np.inf], [np.nan, 3e-41, -2.0]], np.float32)
    _same(_run("BitCast", {"x": x}, {"to": TensorProto.INT32}, 26, constants=("x",))[0], x.view(np.int32))
    scalar = np.array(np.float16(0.1))
    _same(_run("BitCast", {"x": scalar}, {"to": TensorProto.INT16}, 26, constants=("x",))[0], scalar.view(np.int16))


@pytest.mark.parametrize("target", ["llvm", "cuda"])
@pytest.mark.parametrize(("source", "to", "view"), [
    (np.float32, TensorProto.INT32, np.int32), (np.int32, TensorProto.FLOAT, np.float32),
    (np.int64, TensorProto.DOUBLE, np.float64), (np.float64, TensorProto.UINT64, np.uint64),
    (ml_dtypes.bfloat16, TensorProto.UINT16, np.uint16), (np.int16, TensorProto.BFLOAT16, ml_dtypes.bfloat16),
    (np.float16, TensorProto.INT16, np.int16),
])
def test_bitcast_floats_at_run_time(target: str, source: type, to: int, view: type) -> None:
    if target == "cuda" and source is np.float16:
        pytest.skip("float16 values are not supported in CUDA expressions")
    width = np.dtype(source).itemsize
    bits = np.random.default_rng(width).integers(0, 256, (3, 7 * width), dtype=np.uint8)
    bits[0, :width] = 0xFF  # a quiet NaN of the float type, and a signaling one: their payloads must come through
    signaling = {2: 0x7F81, 4: 0x7F800001, 8: 0x7FF0000000000001}[width]
    bits[1, :width] = np.frombuffer(signaling.to_bytes(width, "little"), np.uint8)
    x = bits.view(source)
    executor = tg.compile(single_node_model("BitCast", {"x": x}, 1, {"to": to}, 26, ()), target=target)
    [got] = executor.run({"x": x})
    assert got.dtype == np.dtype(view) and got.shape == x.shape
    assert np.array_equal(got.view(np.uint8), bits)


@pytest.mark.parametrize(("x", "target", "match"), [
    (np.zeros(3, np.int32), TensorProto.INT64, r"int32 \(32 bits\) and int64 \(64 bits\) differ in size"),
    (np.zeros(3, np.float32), TensorProto.FLOAT8E8M0, "element type FLOAT8E8M0 is not supported"),
])
def test_bitcast_errors(x: np.ndarray, target: int, match: str) -> None:
    with pytest.raises(tg.GraphError, match=match):
        _import("BitCast", {"x": x}, {"to": target}, 26)
