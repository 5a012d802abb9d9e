"""``RandomUniform RandomNormal RandomUniformLike RandomNormalLike Bernoulli Multinomial`` and training-mode
``Dropout`` (``frontend/onnx_random.py``): draws compared in distribution with onnxruntime's (two-sample
Kolmogorov-Smirnov at significance 1e-6) and with the probabilities they follow; new draws at every run and in every
executor, seeded draws that repeat from one executor (and one exported copy) to the next; never folded; the random
state in an exported folder checked; the CUDA path in emulation; and every error."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import tcomp.graph as tg
from tests.graph.ort_reference import single_node_model

SAMPLES = 20000


def _generator(op: str, shape: list[int], attrs: dict[str, Any], opset: int = 17) -> onnx.ModelProto:
    node = helper.make_node(op, [], ["y"], **attrs)
    node.attribute.append(helper.make_attribute("shape", shape, attr_type=onnx.AttributeProto.INTS))
    graph = helper.make_graph([node], op, [], [onnx.ValueInfoProto(name="y")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray] | None = None) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds or {})


def _two_sample_ks(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """The KS distance of two samples and the distance exceeded with probability 1e-6 when they share a law."""
    a, b = np.sort(a.reshape(-1).astype(np.float64)), np.sort(b.reshape(-1).astype(np.float64))
    points = np.concatenate([a, b])
    distance = np.abs(np.searchsorted(a, points, "right") / a.size - np.searchsorted(b, points, "right") / b.size)
    limit = math.sqrt(-math.log(1e-6 / 2) / 2) * math.sqrt((a.size + b.size) / (a.size * b.size))
    return float(distance.max()), limit


@pytest.mark.parametrize("op, attrs", [
    ("RandomUniform", {"low": -3.0, "high": 2.0}),
    ("RandomNormal", {"mean": 1.5, "scale": 0.5}),
    ("RandomUniform", {"dtype": TensorProto.DOUBLE}),
    ("RandomNormal", {"dtype": TensorProto.FLOAT16, "scale": 2.0}),
])
def test_draws_follow_onnxruntimes_distribution(op: str, attrs: dict[str, Any]) -> None:
    model = _generator(op, [SAMPLES // 100, 100], attrs)
    [got] = tg.compile(model).run([])
    if attrs.get("dtype") == TensorProto.FLOAT16:  # onnxruntime draws no float16: its float32 draws, rounded
        [want] = _ort(_generator(op, [SAMPLES // 100, 100], {**attrs, "dtype": TensorProto.FLOAT}))
        want = want.astype(np.float16)
    else:
        [want] = _ort(model)
    assert got.shape == want.shape and got.dtype == want.dtype
    distance, limit = _two_sample_ks(got, want)
    assert distance < limit + (3e-3 if got.dtype == np.float16 else 0.0)


def test_every_run_and_every_executor_draws_anew_and_a_seed_repeats() -> None:
    model = _generator("RandomNormal", [7, 13], {})
    seeded = _generator("RandomNormal", [7, 13], {"seed": 5.0})
    first, second = tg.compile(model), tg.compile(model)
    a = first.run([])[0].copy()
    b = first.run([])[0].copy()
    c = second.run([])[0].copy()
    assert (a != b).all() and (a != c).all()
    runs = [tg.compile(seeded) for _ in range(2)]
    draws = [[executor.run([])[0].copy() for _ in range(3)] for executor in runs]
    for step in range(3):
        np.testing.assert_array_equal(draws[0][step], draws[1][step])
    assert (draws[0][0] != draws[0][1]).all()


def test_like_forms_take_the_inputs_shape_and_dtype() -> None:
    x = np.zeros((3, 1, 5), np.float64)
    uniform = single_node_model("RandomUniformLike", {"x": x}, 1, {"low": 4.0, "high": 4.5}, 17)
    [got] = tg.compile(uniform).run([x])
    assert got.shape == x.shape and got.dtype == np.float64 and (got >= 4.0).all() and (got < 4.5).all()
    normal = single_node_model("RandomNormalLike", {"x": x.astype(np.int64)}, 1, {"dtype": TensorProto.FLOAT}, 17)
    [got] = tg.compile(normal).run([x.astype(np.int64)])
    assert got.shape == x.shape and got.dtype == np.float32
    untyped = single_node_model("RandomNormalLike", {"x": x.astype(np.int64)}, 1, {}, 17)
    with pytest.raises(tg.GraphError, match="draws float16, float32, float64 tensors, not int64"):
        tg.compile(untyped)


def test_scalar_and_empty_draws() -> None:
    [scalar] = tg.compile(_generator("RandomUniform", [], {})).run([])
    assert scalar.shape == () and 0.0 <= float(scalar) < 1.0
    [empty] = tg.compile(_generator("RandomNormal", [0, 4], {})).run([])
    assert empty.shape == (0, 4)


def test_bernoulli_draws_one_with_probability_p() -> None:
    p = np.repeat(np.array([0.0, 0.1, 0.5, 0.9, 1.0], np.float32), 4000)
    model = single_node_model("Bernoulli", {"p": p}, 1, {"dtype": TensorProto.INT32}, 15)
    [got] = tg.compile(model).run([p])
    assert got.dtype == np.int32 and np.isin(got, (0, 1)).all()
    frequencies = got.reshape(5, 4000).mean(axis=1)
    assert frequencies[0] == 0 and frequencies[-1] == 1
    np.testing.assert_allclose(frequencies, [0.0, 0.1, 0.5, 0.9, 1.0], atol=5 * math.sqrt(0.25 / 4000))


def test_multinomial_follows_the_softmax_of_its_input() -> None:
    probabilities = np.array([[0.1, 0.2, 0.3, 0.4, 0.0], [0.0, 0.5, 0.0, 0.0, 0.5]])
    with np.errstate(divide="ignore"):
        logits = np.log(probabilities).astype(np.float32) + 3.0  # unnormalized
    model = single_node_model("Multinomial", {"x": logits}, 1, {"sample_size": SAMPLES, "dtype": TensorProto.INT64},
                              15)
    [got] = tg.compile(model).run([logits])
    assert got.shape == (2, SAMPLES) and got.dtype == np.int64
    for row, p in zip(got, probabilities):
        frequencies = np.bincount(row, minlength=5) / SAMPLES
        assert frequencies.size == 5
        np.testing.assert_allclose(frequencies, p, atol=5 * math.sqrt(0.25 / SAMPLES))
    [want] = _ort(model, {"x": logits})
    assert want.shape == got.shape and want.dtype == got.dtype


def _dropout(training: bool, ratio: np.ndarray | None, seed: int | None = None) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [40, 50])
    initializers = [numpy_helper.from_array(np.array(training), "t")]
    initializers += [numpy_helper.from_array(ratio, "r")] if ratio is not None else []
    inputs = ["x", "r" if ratio is not None else "", "t"]
    attrs = {} if seed is None else {"seed": seed}
    node = helper.make_node("Dropout", inputs, ["y", "mask"], **attrs)
    graph = helper.make_graph([node], "dropout", [x], [onnx.ValueInfoProto(name="y"), onnx.ValueInfoProto(name="mask")],
                              initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_training_dropout_keeps_one_minus_ratio_scaled() -> None:
    x = np.random.default_rng(1).uniform(1.0, 2.0, (40, 50)).astype(np.float32)
    y, mask = tg.compile(_dropout(True, np.array(0.3, np.float32))).run([x])
    assert mask.dtype == np.bool_ and abs(mask.mean() - 0.7) < 5 * math.sqrt(0.21 / x.size)
    np.testing.assert_allclose(y, np.where(mask, x / np.float32(0.7), 0), rtol=1e-6)
    y, mask = tg.compile(_dropout(True, None)).run([x])  # the default ratio, 0.5
    assert abs(mask.mean() - 0.5) < 5 * math.sqrt(0.25 / x.size)
    y, mask = tg.compile(_dropout(False, np.array(0.3, np.float32))).run([x])  # inference: the identity
    np.testing.assert_array_equal(y, x)
    assert mask.all()
    with pytest.raises(tg.GraphError, match=r"ratio 1.0 must be in \[0, 1\)"):
        tg.compile(_dropout(True, np.array(1.0, np.float32)))


def test_random_nodes_are_never_folded() -> None:
    """A draw whose inputs are all constants, with a constant consumer, stays a kernel that runs every time."""
    x = np.ones((4, 4), np.float32)
    node = helper.make_node("RandomUniformLike", ["c"], ["u"])
    add = helper.make_node("Add", ["u", "c"], ["y"])
    graph = helper.make_graph([node, add], "folded", [], [onnx.ValueInfoProto(name="y")],
                              [numpy_helper.from_array(x, "c")])
    executor = tg.compile(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert any(n.op == "random" for n in executor.graph.nodes)
    assert (executor.run([])[0].copy() != executor.run([])[0]).all()


def test_a_draw_cannot_decide_a_shape() -> None:
    count = helper.make_node("RandomUniform", [], ["u"], shape=[1], high=5.0, dtype=TensorProto.FLOAT)
    cast = helper.make_node("Cast", ["u"], ["n"], to=TensorProto.INT64)
    zeros = helper.make_node("ConstantOfShape", ["n"], ["y"])
    graph = helper.make_graph([count, cast, zeros], "shape", [], [onnx.ValueInfoProto(name="y")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(tg.GraphError, match="must be known at compile time"):
        tg.compile(model)


def test_exported_copies_draw_as_a_fresh_executor(tmp_path: Path) -> None:
    model = _generator("RandomNormal", [5, 3], {"seed": 1.0})
    executor = tg.compile(model)
    want = [executor.run([])[0].copy() for _ in range(2)]
    executor.export(str(tmp_path / "model"))
    loaded = tg.load_executor(str(tmp_path / "model"))
    for step in range(2):
        np.testing.assert_array_equal(loaded.run([])[0], want[step])
    document = json.loads((tmp_path / "model" / "graph.json").read_text())
    assert document["random_states"] == list(executor.program.random_states)
    document["random_states"] = [document["outputs"][0]]
    (tmp_path / "model" / "graph.json").write_text(json.dumps(document))
    with pytest.raises(tg.GraphError, match="is not a parameter of two uint64 elements"):
        tg.load_executor(str(tmp_path / "model"))


@pytest.mark.parametrize("op, attrs, message", [
    ("RandomUniform", {"dtype": TensorProto.INT32}, "draws float16, float32, float64 tensors, not int32"),
    ("RandomNormal", {}, "attribute 'shape' is required"),
])
def test_generator_errors(op: str, attrs: dict[str, Any], message: str) -> None:
    node = helper.make_node(op, [], ["y"], **attrs)
    if "dtype" in attrs:
        node.attribute.append(helper.make_attribute("shape", [2], attr_type=onnx.AttributeProto.INTS))
    graph = helper.make_graph([node], op, [], [onnx.ValueInfoProto(name="y")])
    with pytest.raises(tg.GraphError, match=message):
        tg.compile(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))


def test_generator_shape_errors() -> None:
    with pytest.raises(tg.GraphError, match="non-negative"):
        tg.compile(_generator("RandomUniform", [2, -1], {}))
    with pytest.raises(tg.GraphError, match="too large|exceeds|limit"):
        tg.compile(_generator("RandomUniform", [1 << 40, 1 << 30], {}))


def test_multinomial_errors() -> None:
    x = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(tg.GraphError, match="batch_size, class_size"):
        tg.compile(single_node_model("Multinomial", {"x": x}, 1, {}, 15))
    with pytest.raises(tg.GraphError, match="sample_size must be at least 1"):
        tg.compile(single_node_model("Multinomial", {"x": x[0]}, 1, {"sample_size": 0}, 15))
    with pytest.raises(tg.GraphError, match="dtype must be int32 or int64"):
        tg.compile(single_node_model("Multinomial", {"x": x[0]}, 1, {"dtype": TensorProto.FLOAT}, 15))


def test_cuda_emulation_draws_what_the_cpu_draws() -> None:
    """A seeded draw is the same function of its position on every target (its math functions aside)."""
    pytest.importorskip("tcomp.runtime.cuda_emu")
    model = _generator("RandomNormal", [33, 17], {"seed": 3.0})
    with pytest.warns(tg.EmulationWarning):
        gpu = tg.compile(model, target="cuda")
    np.testing.assert_allclose(gpu.run([])[0], tg.compile(model).run([])[0], rtol=1e-5, atol=1e-5)
