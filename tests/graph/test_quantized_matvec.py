"""``quantized_matvec``: a product of a few rows by a weight quantized by blocks (as 4-bit language models store
their weights) streams the weight as int8 with a scale per block, dequantized as it is read; against the folded
float weight and numpy."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import tcomp.graph as tg

RNG = np.random.default_rng(11)


def _model(rows: int, depth: int, columns: int, block: int, kind: str) -> tuple[onnx.ModelProto, np.ndarray]:
    """``y = x @ DequantizeLinear(q, scale, zero, axis=0, block_size=block)`` and the dequantized weight.
    ``kind``: ``uint4`` with zero points, ``int4`` without, ``uint8`` with zero points (``q - z`` may not fit int8)."""
    blocks = -(-depth // block)
    dtype = {"uint4": ml_dtypes.uint4, "int4": ml_dtypes.int4, "uint8": np.uint8}[kind]
    info = ml_dtypes.iinfo(dtype)
    q = RNG.integers(info.min, info.max + 1, (depth, columns)).astype(dtype)
    scale = RNG.uniform(0.01, 0.1, (blocks, columns)).astype(np.float32)
    inits = [numpy_helper.from_array(q, "q"), numpy_helper.from_array(scale, "scale")]
    inputs = ["q", "scale"]
    zero = np.zeros((blocks, columns), np.int32)
    if kind != "int4":
        zero_values = RNG.integers(info.min, info.max + 1, (blocks, columns)).astype(dtype)
        inits.append(numpy_helper.from_array(zero_values, "zero"))
        inputs.append("zero")
        zero = zero_values.astype(np.int32)
    weight = (q.astype(np.int32) - np.repeat(zero, block, axis=0)[:depth]) * np.repeat(scale, block, axis=0)[:depth]
    nodes = [helper.make_node("DequantizeLinear", inputs, ["w"], axis=0, block_size=block),
             helper.make_node("MatMul", ["x", "w"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, depth])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]), weight.astype(np.float32)


def _packed(executor: tg.GraphExecutor) -> list:
    return [n for n in executor.graph.nodes for m in ([n] if n.op != "fused" else n.attr("body").nodes)
            if m.op == "packed_matvec" and len(m.inputs) == 3]


@pytest.mark.parametrize(("rows", "depth", "columns", "block", "kind"), [
    (1, 96, 80, 32, "uint4"),    # columns past one 64-wide block
    (1, 80, 64, 32, "int4"),     # a part-filled last block of K, no zero points
    (3, 64, 33, 16, "uint4"),    # three rows, blocks of 32 columns
    (16, 128, 40, 64, "int4"),   # the most rows a packed product takes
])
def test_blocked_weights_stream_as_int8(rows: int, depth: int, columns: int, block: int, kind: str) -> None:
    model, weight = _model(rows, depth, columns, block, kind)
    x = RNG.standard_normal((rows, depth)).astype(np.float32)
    executor = tg.compile(model, target="llvm")
    assert _packed(executor), "the product should read the int8 weight"
    [got] = executor.run([x])
    [folded] = tg.compile(model, target="llvm", options=tg.PassOptions(quantized_matvec=False)).run([x])
    want = x.astype(np.float64) @ weight.astype(np.float64)
    scale = np.abs(want).max()
    assert np.abs(got - want).max() <= 1e-5 * scale
    assert np.abs(got - folded).max() <= 1e-5 * scale


@pytest.mark.parametrize(("rows", "kind"), [(17, "uint4"), (1, "uint8")])
def test_what_stays_a_float_weight(rows: int, kind: str) -> None:
    """More rows than a packed product takes; 8-bit levels less zero points that int8 cannot hold."""
    model, weight = _model(rows, 64, 48, 32, kind)
    x = RNG.standard_normal((rows, 64)).astype(np.float32)
    executor = tg.compile(model, target="llvm")
    assert not _packed(executor)
    [got] = executor.run([x])
    np.testing.assert_allclose(got, x @ weight, rtol=1e-5, atol=1e-5)
