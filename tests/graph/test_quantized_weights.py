"""The CPU passes ``quantized_weights`` and ``integer_products``: integer products of uint8 rows and constant 8-bit
weights run on the integer GEMM (``quantized_matmul``), exactly as the int32 product they replace, and so do the
float products of dequantized operands in QDQ models; the products they must leave are left."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import tcomp.graph as tg
from tcomp.graph.ir import Graph
from tcomp.ops.cpu.common import CpuTarget
from tcomp.ops.cpu.quantized_matmul import integer_gemm_pays
from tcomp.target import Target
from tests.graph.ort_reference import run_both

RNG = np.random.default_rng(21)
# the pass rewrites where the CPU has vpdpbusd or pmaddwd at its register width; elsewhere the int32 product stays
APPLIES = integer_gemm_pays(CpuTarget.of(Target("llvm")))
REWRITTEN, LEFT = ("quantized_matmul", "matmul") if APPLIES else ("matmul", "quantized_matmul")


def _model(a_shape: list, a_type: int, weight: np.ndarray, weight_zero: np.ndarray | None,
           a_zero_shape: list | None) -> object:
    """``MatMulInteger(a, w, za, zw)``: ``za`` an input of ``a_zero_shape`` (none where None), ``zw`` a constant."""
    inputs = [helper.make_tensor_value_info("a", a_type, a_shape)]
    inits = [numpy_helper.from_array(weight, "w")]
    if a_zero_shape is not None:
        inputs.append(helper.make_tensor_value_info("za", a_type, a_zero_shape))
    if weight_zero is not None:
        inits.append(numpy_helper.from_array(weight_zero, "zw"))
    names = ["a", "w", "za" if a_zero_shape is not None else "", "zw" if weight_zero is not None else ""]
    node = helper.make_node("MatMulInteger", names, ["y"])
    graph = helper.make_graph([node], "mmi", inputs, [helper.make_tensor_value_info("y", TensorProto.INT32, None)],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10)])


def _compile(model: object) -> tuple[tg.GraphExecutor, list[str]]:
    ops: list[str] = []

    def dump(name: str, graph: Graph) -> None:
        if name == "gemm_panels":
            ops.extend(n.op for n in graph.nodes)

    return tg.compile(model, dump=dump), ops


@pytest.mark.parametrize("a_shape", [[37, 70], [2, 5, 64]])
def test_products_of_int8_weights_run_on_the_integer_gemm(a_shape: list) -> None:
    k = a_shape[-1]
    weight = RNG.integers(-128, 128, (k, 45)).astype(np.int8)
    executor, ops = _compile(_model(a_shape, TensorProto.UINT8, weight, np.array(0, np.int8), []))
    assert REWRITTEN in ops and LEFT not in ops
    a = RNG.integers(0, 256, a_shape).astype(np.uint8)
    zero = np.array(200, np.uint8)
    (got,) = executor.run({"a": a, "za": zero})
    np.testing.assert_array_equal(got, (a.astype(np.int32) - 200) @ weight.astype(np.int32))


def test_uint8_weights_with_the_middle_zero_point_and_no_row_offset() -> None:
    weight = RNG.integers(0, 256, (64, 40)).astype(np.uint8)
    executor, ops = _compile(_model([9, 64], TensorProto.UINT8, weight, np.array(128, np.uint8), None))
    assert REWRITTEN in ops
    a = RNG.integers(0, 256, (9, 64)).astype(np.uint8)
    (got,) = executor.run({"a": a})
    np.testing.assert_array_equal(got, a.astype(np.int32) @ (weight.astype(np.int32) - 128))


@pytest.mark.parametrize("case", ["weights beyond int8", "signed rows", "zero point per row"])
def test_products_the_pass_leaves(case: str) -> None:
    weight = RNG.integers(-128, 128, (32, 24)).astype(np.int8)
    a_type, zero_shape, weight_zero = TensorProto.UINT8, [], np.array(0, np.int8)
    if case == "weights beyond int8":
        weight, weight_zero = weight.astype(np.uint8), np.array(0, np.uint8)
    elif case == "signed rows":
        a_type = TensorProto.INT8
    else:
        zero_shape = [6]
    executor, ops = _compile(_model([6, 32], a_type, weight, weight_zero, zero_shape))
    assert "quantized_matmul" not in ops and "matmul" in ops
    dtype = np.int8 if a_type == TensorProto.INT8 else np.uint8
    a = RNG.integers(np.iinfo(dtype).min, np.iinfo(dtype).max + 1, (6, 32)).astype(dtype)
    zero = RNG.integers(0, 100, zero_shape).astype(dtype)
    (got,) = executor.run({"a": a, "za": zero})
    offset = a.astype(np.int32) - (zero.astype(np.int32)[:, None] if zero_shape else zero.astype(np.int32))
    np.testing.assert_array_equal(got, offset @ weight.astype(np.int32))


def _qdq_product(weight: np.ndarray, weight_scale: np.ndarray, rows: int = 7,
                 x_zero: np.ndarray | None = None) -> object:
    """``Q(x)`` dequantized (in ``x_zero``'s type, uint8 121 by default; one scale and zero point) times a
    dequantized constant int8 ``weight``."""
    k, n = weight.shape
    x_zero = np.array(121, np.uint8) if x_zero is None else x_zero
    inits = [numpy_helper.from_array(weight, "wq"), numpy_helper.from_array(weight_scale, "sw"),
             numpy_helper.from_array(np.zeros(weight_scale.shape, np.int8), "zw"),
             numpy_helper.from_array(np.array(0.05, np.float32), "sx"),
             numpy_helper.from_array(x_zero, "zx")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "sw", "zw"], ["wd"], axis=1),
             helper.make_node("MatMul", ["xd", "wd"], ["y"])]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows, n])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("per_column", [False, True])
def test_dequantized_products_become_integer_products(per_column: bool) -> None:
    """A QDQ product (``integer_products``): the int32 product of the offset integers times the scales, on the
    integer GEMM; against onnxruntime, which runs it so too, and within float rounding of the float product."""
    weight = RNG.integers(-127, 128, (96, 40)).astype(np.int8)
    scale = RNG.uniform(0.001, 0.01, 40 if per_column else ()).astype(np.float32)
    model = _qdq_product(weight, scale)
    executor, ops = _compile(model)
    assert REWRITTEN in ops
    x = RNG.uniform(-6, 6, (7, 96)).astype(np.float32)
    [got], [want] = run_both(model, {"x": x})
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    xq = np.clip(np.rint(x / np.float32(0.05)) + 121, 0, 255)
    exact = ((xq - 121) @ weight.astype(np.float64)) * 0.05 * scale.astype(np.float64)
    np.testing.assert_allclose(got, exact, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", ["deep", "int8 activations"])
def test_dequantized_products_that_stay_float(case: str) -> None:
    """Sums that could overflow int32 (K over 33025) and int8 activations (the integer GEMM takes uint8 rows) keep
    the float product."""
    depth = 33100 if case == "deep" else 64
    weight = RNG.integers(-127, 128, (depth, 2)).astype(np.int8)
    x_zero = np.array(3 if case == "deep" else -3, np.uint8 if case == "deep" else np.int8)
    model = _qdq_product(weight, np.array(0.001, np.float32), rows=1, x_zero=x_zero)
    executor, ops = _compile(model)
    assert "quantized_matmul" not in ops
    x = RNG.uniform(-6, 6, (1, depth)).astype(np.float32)
    [got], [want] = run_both(model, {"x": x})
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


def test_lengths_of_a_dynamic_model_share_the_packed_weight() -> None:
    """Rows of a symbolic length: the first length compiles its product, the others run the product compiled once
    for the symbolic length; all read the one packed weight."""
    weight = RNG.integers(-128, 128, (64, 48)).astype(np.int8)
    model = _model(["rows", 64], TensorProto.UINT8, weight, np.array(0, np.int8), [])
    executor = tg.compile(model)
    assert isinstance(executor, tg.SpecializingExecutor)
    for rows in (3, 17, 40):
        a = RNG.integers(0, 256, (rows, 64)).astype(np.uint8)
        (got,) = executor.run({"a": a, "za": np.array(9, np.uint8)})
        np.testing.assert_array_equal(got, (a.astype(np.int32) - 9) @ weight.astype(np.int32))
    assert executor.compilations == 1 and executor.dynamic is not None and executor.dynamic.resizable
    [specialization] = executor.specializations.values()
    first, second = specialization.program.params, executor._current().program.params
    packed = [name for name in first if "quantized_panels" in name]
    assert len(packed) == int(APPLIES) and all(first[n] is second[n] for n in packed)
    if APPLIES:  # the 8-bit weight was packed as it is: no int32 copy of it (4 bytes each) is held for the lengths
        assert executor.constants.nbytes < 4 * weight.size


@pytest.mark.parametrize(("shape", "kernel", "strides", "pads"), [((1, 3, 32, 48), (16, 16), (16, 16), (0, 0, 0, 0)),
                                                                 ((1, 5, 12, 12), (4, 3), (4, 3), (0, 0, 0, 0)),
                                                                 ((2, 3, 11, 9), (3, 3), (2, 2), (1, 0, 2, 1))])
def test_convolutions_run_on_the_integer_gemm(shape: tuple, kernel: tuple, strides: tuple, pads: tuple) -> None:
    """Every one-group ConvInteger with a constant 8-bit weight becomes ``quantized_conv2d`` (a patch embedding,
    whose kernel tiles the input, as well as padded, strided windows over a batch): exact, as onnxruntime."""
    x = RNG.integers(0, 256, shape).astype(np.uint8)
    w = RNG.integers(-128, 128, (24, shape[1], *kernel)).astype(np.int8)
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array(0, np.int8), "zw")]
    node = helper.make_node("ConvInteger", ["x", "w", "zx", "zw"], ["y"], strides=list(strides), pads=list(pads))
    graph = helper.make_graph([node], "convs", [helper.make_tensor_value_info("x", TensorProto.UINT8, shape),
                                                helper.make_tensor_value_info("zx", TensorProto.UINT8, [])],
                              [helper.make_tensor_value_info("y", TensorProto.INT32, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10)])
    executor, ops = _compile(model)
    assert ("quantized_conv2d" in ops) == APPLIES and ("conv2d" in ops) == (not APPLIES)
    assert "quantized_matmul" not in ops
    (got,) = executor.run({"x": x, "zx": np.array(77, np.uint8)})
    _, [want] = run_both(model, {"x": x, "zx": np.array(77, np.uint8)})
    np.testing.assert_array_equal(got, want)
