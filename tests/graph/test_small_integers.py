"""The 4- and 2-bit integers (``int4``, ``uint4``, ``int2``, ``uint2``): one per byte as ``ml_dtypes`` holds them,
computed on in 8 bits (``tcomp.transform.storage_types``); weight-only quantized models (``tests/data/quantized``,
4-bit weights by blocks, quantized by onnxruntime) against onnxruntime."""

from __future__ import annotations

from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

import tcomp.graph as tg
from tcomp import te
from tcomp.graph.frontend.onnx_data import tensor_to_array
from tests.graph.flat_kernels import build_flat

DATA = Path(__file__).resolve().parent.parent / "data"
TYPES = {"int4": TensorProto.INT4, "uint4": TensorProto.UINT4, "int2": TensorProto.INT2, "uint2": TensorProto.UINT2}


def _cast_kernel(dtype: str, n: int, target: str):
    """``(floats, ints) -> (floats as dtype, ints as dtype, their sum as float32)``."""
    x = te.placeholder((n,), "float32", name="x")
    k = te.placeholder((n,), "int32", name="k")
    a = te.compute((n,), lambda i: x[i].astype(dtype), name="a")
    b = te.compute((n,), lambda i: k[i].astype(dtype), name="b")
    c = te.compute((n,), lambda i: a[i].astype("float32") + b[i].astype("float32"), name="c")
    return build_flat([a, b, c], [x, k, a, b, c], target)


def _check_casts(dtype: str, floats: np.ndarray, ints: np.ndarray, target: str) -> None:
    """Floats truncate toward zero (0 outside the range, and for NaN), integers keep their low bits: as ml_dtypes
    converts."""
    t = getattr(ml_dtypes, dtype)
    a, b, c = np.zeros(floats.size, t), np.zeros(floats.size, t), np.zeros(floats.size, np.float32)
    _cast_kernel(dtype, floats.size, target)(floats, ints, a, b, c)
    with np.errstate(invalid="ignore"):
        want_a, want_b = floats.astype(t), ints.astype(t)
    assert np.array_equal(a.view(np.uint8), want_a.view(np.uint8))
    assert np.array_equal(b.view(np.uint8), want_b.view(np.uint8))
    np.testing.assert_array_equal(c, want_a.astype(np.float32) + want_b.astype(np.float32))


@settings(max_examples=15, deadline=None)
@given(st.sampled_from(sorted(TYPES)), st.lists(st.floats(-20, 20, width=32), min_size=1, max_size=40),
       st.lists(st.integers(-300, 300), min_size=40, max_size=40))
def test_casts_match_ml_dtypes(dtype: str, floats: list[float], ints: list[int]) -> None:
    values = np.array(floats + [np.nan, np.inf, -np.inf, 7.99, -8.5, 3.5, -1.5], np.float32)
    _check_casts(dtype, values, np.resize(np.array(ints, np.int32), values.size), "llvm")


@pytest.mark.parametrize("dtype", sorted(TYPES))
def test_casts_in_the_cuda_emulation(dtype: str) -> None:
    rng = np.random.default_rng(7)
    floats = np.concatenate([rng.normal(0, 6, 60), [np.nan, np.inf, 7.99, -8.5]]).astype(np.float32)
    _check_casts(dtype, floats, rng.integers(-300, 300, floats.size).astype(np.int32), "cuda")


@pytest.mark.parametrize("dtype", sorted(TYPES))
@pytest.mark.parametrize("raw", [True, False])
def test_packed_tensor_data_unpacks(dtype: str, raw: bool) -> None:
    info = ml_dtypes.iinfo(getattr(ml_dtypes, dtype))
    values = np.random.default_rng(1).integers(info.min, info.max + 1, (3, 7))  # 21 values: a part-filled last byte
    proto = helper.make_tensor("w", TYPES[dtype], values.shape, values.reshape(-1).tolist(), raw=False)
    if raw:
        proto = onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(proto), "w")
        assert proto.HasField("raw_data") and len(proto.raw_data) == -(-21 * (4 if "4" in dtype else 2) // 8)
    got = tensor_to_array(proto, None)
    assert got.dtype == np.dtype(getattr(ml_dtypes, dtype)) and got.shape == (3, 7)
    np.testing.assert_array_equal(got.astype(np.int32), values)


@pytest.mark.parametrize(("name", "source"), [("llama_uint4_tiny", "llama_tiny"), ("bert_int4_tiny", "bert_tiny")])
def test_weight_only_quantized_model_matches_onnxruntime(name: str, source: str) -> None:
    """Llama (uint4 weights with zero points, blocks of 32) and BERT (symmetric int4, blocks of 16), every
    ``MatMul`` by a weight quantized by onnxruntime's ``MatMulNBitsQuantizer`` in the QDQ format, against onnxruntime
    run as the graph says (its optimizations off: optimized, it computes the products at a lower precision, 2e-4 and
    6e-3 away). The 4-bit weights are dequantized once, while compiling."""
    path = DATA / "quantized" / f"{name}.onnx"
    model = onnx.load(path)
    assert {TensorProto.INT4, TensorProto.UINT4} & {t.data_type for t in model.graph.initializer}
    with np.load(DATA / "hf_models" / f"{source}.npz") as data:
        inputs = {i.name: data[f"input_{i.name}"] for i in model.graph.input}
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    [want] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, inputs)
    executor = tg.compile(model, target="llvm")
    [got] = executor.run(inputs)
    assert float(np.abs(got - want).max() / np.abs(want).max()) < 1e-5
    types = executor.program.types.values()
    assert not any(t.dtype in TYPES for t in types)  # no 4-bit value is left to the kernels


def test_a_run_time_int4_input_and_its_export(tmp_path: Path) -> None:
    """A 4-bit input dequantized by blocks at run time, exported and loaded back; ``tcomp run -o`` writes it as
    int8."""
    scale = onnx.numpy_helper.from_array(np.array([[0.5, 0.25], [2.0, 1.0]], np.float32), "scale")
    zero = helper.make_tensor("zero", TensorProto.INT4, [2, 2], [1, -2, 0, 7])
    graph = helper.make_graph(
        [helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["y"], axis=1, block_size=3),
         helper.make_node("Identity", ["q"], ["q_out"])], "g",
        [helper.make_tensor_value_info("q", TensorProto.INT4, [2, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("q_out", TensorProto.INT4, None)], [scale, zero])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    q = np.array([[-8, 7, 3, -1, 0], [5, -6, 2, 1, -3]]).astype(ml_dtypes.int4)
    zeros = np.repeat(np.array([[1, -2], [0, 7]]), 3, axis=1)[:, :5]
    want = (q.astype(np.float32) - zeros) * np.repeat(np.array([[0.5, 0.25], [2.0, 1.0]]), 3, axis=1)[:, :5]
    executor = tg.compile(model, target="llvm")
    y, q_out = executor.run([q])
    np.testing.assert_array_equal(y, want)
    assert q_out.dtype == q.dtype and np.array_equal(q_out.view(np.uint8), q.view(np.uint8))
    executor.export(str(tmp_path / "model"))
    y2, _ = tg.load_executor(str(tmp_path / "model")).run([q])
    np.testing.assert_array_equal(y2, want)
    onnx.save(model, tmp_path / "m.onnx")
    np.savez(tmp_path / "in.npz", q=q.astype(np.int8))
    from tcomp.cli import main
    assert main(["run", str(tmp_path / "m.onnx"), "--inputs", str(tmp_path / "in.npz"),
                 "-o", str(tmp_path / "out.npz")]) == 0
    with np.load(tmp_path / "out.npz") as out:
        assert out["q_out"].dtype == np.int8 and np.array_equal(out["q_out"], q.astype(np.int8))
        np.testing.assert_array_equal(out["y"], want)
