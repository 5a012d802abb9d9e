"""A compiled model's inputs and outputs keep the model's own names through every pass, export and load.

A pass that removes a node forwarding a value (an identity, a reshape to the same shape, two layout transforms
that cancel) must not hand the graph output the forwarded value's internal name: ResNet-50's ``gpu_0/softmax_1``
once came out as ``n175/softmax``. The pass runner refuses a pass that renames an input or output; the models the
tests build (``tcomp.graph.testing``) are checked where they are compiled (``test_models.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import tcomp.graph as tg
from tcomp.graph import testing

HF_MODELS = sorted((Path(__file__).parents[1] / "data" / "hf_models").glob("*.onnx"))


def _check_passes(model: onnx.ModelProto | Path, target: str) -> None:
    proto = onnx.load(str(model), load_external_data=False) if isinstance(model, Path) else model
    try:
        graph = tg.compile_graph(model, target)
    except tg.UnsupportedOperatorError as exc:
        pytest.skip(f"not importable yet: {str(exc)[:120]}")
    assert (graph.inputs, graph.outputs) == testing.interface(proto)


@pytest.mark.parametrize("target", ["llvm", "cuda"])
@pytest.mark.parametrize("path", HF_MODELS, ids=lambda p: p.stem)
def test_test_data_models_keep_their_names(path: Path, target: str) -> None:
    _check_passes(path, target)


def _forwarding_model() -> onnx.ModelProto:
    """A classifier ending as the ONNX model zoo's ResNet-50 does (an opset-11 Softmax over a flattened Gemm, output
    ``gpu_0/softmax_1``), plus outputs that are forwarded values: an input, a parameter, another output, a value
    other nodes also read, and a reshape to the same shape."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((10, 48)).astype(np.float32), "gpu_0/pred_w_0")
    bias = numpy_helper.from_array(rng.standard_normal(10).astype(np.float32), "gpu_0/pred_b_0")
    same = numpy_helper.from_array(np.array([1, 10], np.int64), "gpu_0/same_shape")
    nodes = [
        helper.make_node("Conv", ["gpu_0/data_0", "gpu_0/conv_w"], ["gpu_0/conv1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["gpu_0/conv1"], ["gpu_0/res_conv1_bn_2"]),
        helper.make_node("Flatten", ["gpu_0/res_conv1_bn_2"], ["gpu_0/flat"]),
        helper.make_node("Gemm", ["gpu_0/flat", "gpu_0/pred_w_0", "gpu_0/pred_b_0"], ["gpu_0/pred_1"], transB=1),
        helper.make_node("Softmax", ["gpu_0/pred_1"], ["gpu_0/softmax_1"], axis=1),
        helper.make_node("Identity", ["gpu_0/softmax_1"], ["gpu_0/softmax_copy"]),
        helper.make_node("Reshape", ["gpu_0/pred_1", "gpu_0/same_shape"], ["gpu_0/logits"]),
        helper.make_node("Identity", ["gpu_0/data_0"], ["gpu_0/data_echo"]),
        helper.make_node("Identity", ["gpu_0/pred_b_0"], ["gpu_0/bias_echo"]),
    ]
    conv_w = numpy_helper.from_array(rng.standard_normal((3, 3, 3, 3)).astype(np.float32), "gpu_0/conv_w")
    value = helper.make_tensor_value_info
    outputs = [value(n, TensorProto.FLOAT, None) for n in
               ("gpu_0/softmax_1", "gpu_0/softmax_copy", "gpu_0/logits", "gpu_0/res_conv1_bn_2", "gpu_0/data_echo",
                "gpu_0/bias_echo")]
    graph = helper.make_graph(nodes, "zoo_like", [value("gpu_0/data_0", TensorProto.FLOAT, [1, 3, 4, 4])], outputs,
                              initializer=[weight, bias, same, conv_w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])


def test_forwarded_outputs_keep_their_names_through_compile_export_and_load(tmp_path: Path) -> None:
    model = _forwarding_model()
    inputs, outputs = testing.interface(model)
    x = np.random.default_rng(1).standard_normal((1, 3, 4, 4)).astype(np.float32)
    expected = dict(zip(outputs, ort.InferenceSession(model.SerializeToString()).run(None, {inputs[0]: x})))
    executor = tg.compile(model, "llvm")
    assert (executor.input_names, executor.output_names) == (inputs, outputs)
    for name, got in zip(executor.output_names, executor.run([x])):
        np.testing.assert_allclose(got, expected[name], rtol=1e-4, atol=1e-5, err_msg=name)
    executor.export(str(tmp_path / "out"))
    loaded = tg.load_executor(tmp_path / "out")
    assert (loaded.input_names, loaded.output_names) == (inputs, outputs)
    for name, got in zip(loaded.output_names, loaded.run([x])):
        np.testing.assert_allclose(got, expected[name], rtol=1e-4, atol=1e-5, err_msg=name)


def test_a_pass_that_renames_an_output_is_refused() -> None:
    from tcomp.graph.pipeline import check_interface

    graph = tg.compile_graph(_forwarding_model(), "llvm")
    renamed = tg.Graph(graph.name, graph.inputs, ("n175/softmax", *graph.outputs[1:]), graph.nodes)
    with pytest.raises(tg.GraphError, match="graph pass simplify changed the graph's inputs .* or outputs"):
        check_interface("simplify", graph, renamed)
