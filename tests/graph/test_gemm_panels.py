"""``gemm_panels``: products with a constant weight and enough rows read it from panels packed at compile time;
results against onnxruntime (MatMul + Add with a [K, N] weight, Gemm with transB, an odd K the GEMM pads), and
what stays a matmul (a weight given at run time, too little work)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import tcomp.graph as tg

RNG = np.random.default_rng(11)


def _model(rows: int, k: int, n: int, gemm: bool, weight_is_input: bool = False) -> onnx.ModelProto:
    w = (RNG.standard_normal((n, k) if gemm else (k, n)) / np.sqrt(k)).astype(np.float32)
    b = RNG.standard_normal(n).astype(np.float32)
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, k] if gemm else [1, rows, k])]
    initializers = [numpy_helper.from_array(b, "b")]
    if weight_is_input:
        inputs.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, list(w.shape)))
    else:
        initializers.append(numpy_helper.from_array(w, "w"))
    if gemm:
        nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)]
        shape = [rows, n]
    else:
        nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["a"]),
                 helper.make_node("Relu", ["a"], ["y"])]
        shape = [1, rows, n]
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
                              initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _compile_and_check(model: onnx.ModelProto, feeds: dict[str, np.ndarray], **options: object) -> list[str]:
    ops: dict[str, list[str]] = {}

    def dump(name: str, g: tg.Graph) -> None:
        ops[name] = [node.op for node in g.nodes]

    executor = tg.compile(model.SerializeToString(), "llvm -num-cores=2", dump=dump, **options)
    [got] = executor.run(dict(feeds))
    [want] = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))
    return ops["gemm_panels"]


def test_weights_in_panels_match_onnxruntime() -> None:
    for rows, k, n, gemm in ((197, 384, 300, False), (130, 1001, 260, True)):
        model = _model(rows, k, n, gemm)
        x = RNG.standard_normal((rows, k) if gemm else (1, rows, k)).astype(np.float32)
        assert "panel_matmul" in _compile_and_check(model, {"x": x})


def test_products_that_stay_matmuls() -> None:
    model = _model(197, 384, 300, False, weight_is_input=True)
    feeds = {"x": RNG.standard_normal((1, 197, 384)).astype(np.float32),
             "w": RNG.standard_normal((384, 300)).astype(np.float32)}
    assert "panel_matmul" not in _compile_and_check(model, feeds)  # a weight given at run time
    few = _model(40, 64, 48, False)  # too little work for the packed GEMM
    assert "panel_matmul" not in _compile_and_check(few, {"x": RNG.standard_normal((1, 40, 64)).astype(np.float32)})


def test_the_choice_does_not_depend_on_the_count_of_rows() -> None:
    """Judged at ``TYPICAL_ROWS`` rows whatever the count: a narrow weight stays a matmul at 4099 rows as at 300 (the
    probes of a symbolic ``batch*seq`` get one choice), and a wide one reads panels at 300 rows as at 4099."""
    for rows in (300, 4099):
        narrow = _model(rows, 64, 128, False)
        x = RNG.standard_normal((1, rows, 64)).astype(np.float32)
        assert "panel_matmul" not in _compile_and_check(narrow, {"x": x})
        wide = _model(rows, 256, 320, False)
        x = RNG.standard_normal((1, rows, 256)).astype(np.float32)
        assert "panel_matmul" in _compile_and_check(wide, {"x": x})
