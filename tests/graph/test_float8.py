"""The 8-bit floats (``float8_e4m3fn``, ``float8_e4m3fnuz``, ``float8_e5m2``, ``float8_e5m2fnuz``): stored as their
byte, computed on in float32 (``tcomp.transform.storage_types``); casts round to nearest even and saturate as ONNX's
``Cast`` does by default, bit for bit as ``ml_dtypes`` rounds, on ``llvm`` and in the CUDA emulation."""

from __future__ import annotations

from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

import tcomp.graph as tg
from tcomp import te
from tcomp.runtime.nvcc import kernel_resources, nvcc_available
from tcomp.transform.storage_types import saturated
from tests.graph.flat_kernels import build_flat

TYPES = {"float8_e4m3fn": TensorProto.FLOAT8E4M3FN, "float8_e4m3fnuz": TensorProto.FLOAT8E4M3FNUZ,
         "float8_e5m2": TensorProto.FLOAT8E5M2, "float8_e5m2fnuz": TensorProto.FLOAT8E5M2FNUZ}
# NaN, infinities, the largest values and past them (ties included), subnormals, signed zeros, ties to even
SPECIALS = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 448, 464, 465, -480, 240, 248, 57344, 61440, 61439,
                     1e-9, -1e-9, 2**-9, 2**-10, 3 * 2**-11, 1.0625, 1.1875, -2.5e-5], np.float32)


def _round_trip(dtype: str, n: int, target: str):
    """``x -> (x as dtype, that as float32)``."""
    x = te.placeholder((n,), "float32", name="x")
    a = te.compute((n,), lambda i: x[i].astype(dtype), name="a")
    c = te.compute((n,), lambda i: a[i].astype("float32"), name="c")
    return build_flat([a, c], [x, a, c], target)


def _check(dtype: str, values: np.ndarray, target: str) -> None:
    t = getattr(ml_dtypes, dtype)
    got, back = np.zeros(values.size, t), np.zeros(values.size, np.float32)
    kernel = _round_trip(dtype, values.size, target)
    if target == "cuda" and nvcc_available():  # the helper compiles for the GPU too, not only in the emulation
        assert kernel_resources(kernel.get_source(), "sm_90")
    kernel(values, got, back)
    with np.errstate(over="ignore", invalid="ignore"):
        want = saturated(values, dtype).astype(t)
    nan = np.isnan(want.astype(np.float32))
    assert np.array_equal(np.isnan(got.astype(np.float32)), nan)
    assert np.array_equal(got.view(np.uint8)[~nan], want.view(np.uint8)[~nan])
    np.testing.assert_array_equal(back, want.astype(np.float32))


@settings(max_examples=12, deadline=None)
@given(st.sampled_from(sorted(TYPES)), st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=60))
def test_casts_match_ml_dtypes_bit_for_bit(dtype: str, bits: list[int]) -> None:
    values = np.concatenate([np.array(bits, np.uint32).view(np.float32), SPECIALS])
    _check(dtype, values, "llvm")


@pytest.mark.parametrize("dtype", sorted(TYPES))
def test_casts_in_the_cuda_emulation(dtype: str) -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.standard_normal(200) * 100, rng.standard_normal(200) * 1e-3, SPECIALS])
    _check(dtype, values.astype(np.float32), "cuda")


def _cast_model(dtype: str, saturate: int) -> onnx.ModelProto:
    graph = helper.make_graph([helper.make_node("Cast", ["x"], ["y"], to=TYPES[dtype], saturate=saturate)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6])],
                              [helper.make_tensor_value_info("y", TYPES[dtype], None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


@pytest.mark.parametrize(("dtype", "limit", "tie_up"), [
    ("float8_e4m3fn", 464.0, False), ("float8_e4m3fnuz", 248.0, True), ("float8_e5m2", 61440.0, True),
    ("float8_e5m2fnuz", 61440.0, True)])
def test_a_cast_without_saturation_overflows_past_the_largest(dtype: str, limit: float, tie_up: bool) -> None:
    """Past the largest value plus half a step (at it when the tie rounds up, the largest's mantissa being odd) a
    non-saturating cast gives infinity (``float8_e5m2``) or NaN, as ONNX's table says; a saturating one the
    largest."""
    x = np.array([limit, -limit, np.nextafter(limit, 0, dtype=np.float32), 2 * limit, np.inf, 1.0], np.float32)
    [free] = tg.compile(_cast_model(dtype, 0), target="llvm").run([x])
    [clamped] = tg.compile(_cast_model(dtype, 1), target="llvm").run([x])
    largest = float(ml_dtypes.finfo(getattr(ml_dtypes, dtype)).max)
    overflow = float("inf") if dtype == "float8_e5m2" else float("nan")
    want = [overflow if tie_up else largest, -overflow if tie_up else -largest, largest, overflow, overflow, 1.0]
    np.testing.assert_array_equal(free.astype(np.float32), np.array(want, np.float32))
    np.testing.assert_array_equal(clamped.astype(np.float32), [largest, -largest, largest, largest, largest, 1.0])


def test_fp8_qdq_and_an_export(tmp_path: Path) -> None:
    """QuantizeLinear to float8_e4m3fn and back (as FP8-quantized exports write it), against ml_dtypes; an
    exported copy loads back with its float8 output."""
    scale = onnx.numpy_helper.from_array(np.array(0.05, np.float32), "scale")
    zero = helper.make_tensor("zero", TensorProto.FLOAT8E4M3FN, [], [0])
    nodes = [helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 9])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("q", TensorProto.FLOAT8E4M3FN, None)], [scale])
    graph.initializer.append(zero)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    x = (np.random.default_rng(5).standard_normal((4, 9)) * 10).astype(np.float32)
    x[0, :3] = [1e4, -1e4, np.nan]
    executor = tg.compile(model, target="llvm")
    y, q = executor.run([x])
    with np.errstate(over="ignore", invalid="ignore"):
        want_q = saturated(x / np.float32(0.05), "float8_e4m3fn").astype(ml_dtypes.float8_e4m3fn)
    assert q.dtype == want_q.dtype
    np.testing.assert_array_equal(q.astype(np.float32), want_q.astype(np.float32))
    np.testing.assert_array_equal(y, want_q.astype(np.float32) * np.float32(0.05))
    executor.export(str(tmp_path))
    y2, q2 = tg.load_executor(str(tmp_path)).run([x])
    np.testing.assert_array_equal(y2, y)
    assert np.array_equal(q2.view(np.uint8), q.view(np.uint8))
