"""Differential checks of single ONNX operators: tcomp against onnxruntime on the same random inputs.

``check_node(op_type, inputs, ...)`` builds a one-node model (``inputs`` maps each input name to its array; names
listed in ``constants`` become initializers, so shape-setting inputs are known at compile time), compiles it with
tcomp, runs it and onnxruntime, and compares every output: floats within ``rtol`` / ``atol``, everything else
exactly. Inputs are given in the operator's order; ``""`` skips an optional input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

import tcomp.graph as tg


def single_node_model(op_type: str, inputs: Mapping[str, np.ndarray], outputs: int, attrs: Mapping[str, Any],
                      opset: int, constants: Sequence[str] = (), domain: str = "") -> onnx.ModelProto:
    names = list(inputs)
    graph_inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
                    for n, a in inputs.items() if n and n not in constants]
    initializers = [numpy_helper.from_array(inputs[n], n) for n in constants]
    out_names = [f"out{i}" for i in range(outputs)]
    node = helper.make_node(op_type, names, out_names, name=f"{op_type.lower()}_node", domain=domain, **attrs)
    graph = helper.make_graph([node], f"{op_type}_test", graph_inputs,
                              [onnx.ValueInfoProto(name=n) for n in out_names],
                              initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def run_both(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    want = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]).run(
        None, dict(feeds))
    executor = tg.compile(model)
    got = executor.run(dict(feeds))
    assert got is not None
    return got, want


def assert_same(got: np.ndarray, want: np.ndarray, rtol: float, atol: float, what: str) -> None:
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    if got.dtype.kind in "fc":
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True, err_msg=what)
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)


def check_node(op_type: str, inputs: Mapping[str, np.ndarray], attrs: Mapping[str, Any] | None = None, *,
               opset: int = 18, outputs: int = 1, constants: Sequence[str] = (), rtol: float = 1e-5,
               atol: float = 1e-6) -> list[np.ndarray]:
    """Compile and run one ``op_type`` node with tcomp and onnxruntime; assert the outputs agree; return tcomp's."""
    model = single_node_model(op_type, inputs, outputs, attrs or {}, opset, constants)
    feeds = {n: a for n, a in inputs.items() if n and n not in constants}
    got, want = run_both(model, feeds)
    assert len(got) == len(want)
    what = f"{op_type} {dict(attrs or {})} on {[(n, a.shape, str(a.dtype)) for n, a in inputs.items()]}"
    for position, (g, w) in enumerate(zip(got, want)):
        assert_same(g, w, rtol, atol, f"{what}, output {position}")
    return got
