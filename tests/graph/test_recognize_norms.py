"""``recognize_norms``: the RMS norms of exported Llama and T5 models and the operator chain exporters write for
layer norm each become one operator (one kernel), and the models still match PyTorch / onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import tcomp.graph as tg
from tcomp.graph.frontend.onnx_common import supported_op_types

DATA = Path(__file__).resolve().parent.parent / "data"
RNG = np.random.default_rng(41)


def _ops(graph: tg.Graph) -> list[str]:
    """The operators of an optimized graph, looking into fused groups."""
    return [member.op for node in graph.nodes for member in node.members()]


def _stored_inputs(path: Path) -> tuple[list[dict[str, np.ndarray]], list[np.ndarray]]:
    """Input sets and PyTorch's outputs: ``in<k>_<name>`` / ``out<k>`` (TorchScript exports) or ``input_<name>`` /
    ``output`` (dynamo exports)."""
    with np.load(path.with_suffix(".npz")) as data:
        if "output" in data.files:
            return [{k[len("input_"):]: data[k] for k in data.files if k.startswith("input_")}], [data["output"]]
        sets, outs, k = [], [], 0
        while f"out{k}" in data.files:
            sets.append({key[len(f"in{k}_"):]: data[key] for key in data.files if key.startswith(f"in{k}_")})
            outs.append(data[f"out{k}"])
            k += 1
        return sets, outs


@pytest.mark.parametrize("model", ["torch_models/llama", "torch_models/t5_encoder", "hf_models/llama_tiny",
                                   "hf_models/t5_encoder_tiny"])
def test_exported_rms_norms_become_one_operator(model: str) -> None:
    path = DATA / f"{model}.onnx"
    missing = sorted({n.op_type for n in onnx.load(path, load_external_data=False).graph.node}
                     - set(supported_op_types()))
    if missing:
        pytest.skip(f"not importable yet: tcomp does not convert {', '.join(missing)}")
    executor = tg.compile(path, "llvm")
    for inputs, want in zip(*_stored_inputs(path)):
        [got] = executor.run(inputs)
        assert float(np.abs(got - want).max()) <= 1e-4 * float(np.abs(want).max())
    ops = _ops(executor.graph)
    assert ops.count("rms_norm") == 5 and "mean" not in ops and "sqrt" not in ops


def _layer_norm_chain(gamma_shape: tuple[int, ...], extra_output: bool = False) -> onnx.ModelProto:
    """x -> ReduceMean, Sub, Pow 2, ReduceMean, Add eps, Sqrt, Div, Mul gamma, Add beta: what PyTorch's TorchScript
    exporter writes for LayerNorm below opset 17."""
    hidden = 48
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["m"], axes=[-1], keepdims=1),
        helper.make_node("Sub", ["x", "m"], ["d"]),
        helper.make_node("Pow", ["d", "two"], ["p"]),
        helper.make_node("ReduceMean", ["p"], ["v"], axes=[-1], keepdims=1),
        helper.make_node("Add", ["v", "eps"], ["a"]),
        helper.make_node("Sqrt", ["a"], ["r"]),
        helper.make_node("Div", ["d", "r"], ["n"]),
        helper.make_node("Mul", ["n", "gamma"], ["g"]),
        helper.make_node("Add", ["beta", "g"], ["y"]),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5, hidden])]
    if extra_output:  # the variance is also a model output: the chain must stay
        outputs.append(helper.make_tensor_value_info("v", TensorProto.FLOAT, [2, 5, 1]))
    params = [numpy_helper.from_array(np.array(2.0, np.float32), "two"),
              numpy_helper.from_array(np.array(1e-5, np.float32), "eps"),
              numpy_helper.from_array(RNG.standard_normal(gamma_shape).astype(np.float32), "gamma"),
              numpy_helper.from_array(RNG.standard_normal(hidden).astype(np.float32), "beta")]
    graph = helper.make_graph(nodes, "ln", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5, hidden])],
                              outputs, params)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("gamma_shape, extra_output, fused", [((48,), False, True), ((1, 1, 48), False, True),
                                                               ((5, 48), False, False), ((48,), True, False)])
def test_layer_norm_chain(gamma_shape: tuple[int, ...], extra_output: bool, fused: bool) -> None:
    """One layer_norm with its scale and bias when gamma is constant along the rows (stored as [48] when it only
    broadcasts); a gamma varying along the rows stays a multiply after it; a chain whose variance is read outside
    stays as it is. All match onnxruntime."""
    model = _layer_norm_chain(gamma_shape, extra_output)
    x = RNG.standard_normal((2, 5, 48)).astype(np.float32) * 3 + 1
    executor = tg.compile(model, "llvm")
    got = executor.run([x])
    want = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    ops = _ops(executor.graph)
    if fused:
        assert ops.count("layer_norm") == 1 and not {"mean", "multiply", "add"} & set(ops)
    elif extra_output:
        assert "layer_norm" not in ops
    else:
        assert ops.count("layer_norm") == 1 and "multiply" in ops and "add" in ops
