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

import tcomp.graph as tg
from tcomp.graph import testing
from tests.graph.hf_data import case_keys, case_lengths

DATA = Path(__file__).parents[1] / "data"
MODELS = sorted(DATA.rglob("*.onnx"))


def _input_shapes(path: Path) -> dict[str, list[int]]:
    """The shapes of the first input set stored beside the model (``input_<name>`` or ``in0_<name>`` arrays; of
    the first case, ``input_<name>@<length>``, where a model stores several)."""
    stored = path.with_suffix(".npz")
    if not stored.exists():
        return {}
    with np.load(stored) as arrays:
        shapes = {}
        for base, key in case_keys(arrays.files, case_lengths(arrays.files)[0]).items():
            for prefix in ("input_", "in0_"):
                if base.startswith(prefix):
                    shapes[base[len(prefix):]] = list(arrays[key].shape)
        return shapes


def _check_passes(model: onnx.ModelProto | Path, target: str) -> None:
    proto = onnx.load(str(model), load_external_data=False) if isinstance(model, Path) else model
    shapes = _input_shapes(model) if isinstance(model, Path) else {}
    graph = tg.compile_graph(model, target, input_shapes=shapes)
    assert (graph.inputs, graph.outputs) == testing.interface(proto)


@pytest.mark.parametrize("path", MODELS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_test_data_models_keep_their_names(path: Path) -> None:
    """Every model of ``tests/data`` through the CPU passes (the CUDA ones are a subset: no layout change)."""
    _check_passes(path, "llvm")


def test_forwarded_outputs_keep_their_names_through_compile_export_and_load(tmp_path: Path) -> None:
    model = testing.forwarding_classifier()
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

    graph = tg.compile_graph(testing.forwarding_classifier(), "llvm")
    renamed = tg.Graph(graph.name, graph.inputs, ("n175/softmax", *graph.outputs[1:]), graph.nodes)
    with pytest.raises(tg.GraphError, match="graph pass simplify changed the graph's inputs .* or outputs"):
        check_interface("simplify", graph, renamed)
