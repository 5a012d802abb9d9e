"""Whole models against onnxruntime: small versions of real CNN architectures (ResNet-50 with bottlenecks,
ResNet-18, VGG-11, MobileNetV2 with depthwise convolutions), a transformer encoder block and whole BERT and ViT
encoders, within 1e-3 relative error. The models are built with onnx.helper (random weights) by
``tcomp.graph.testing``."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import tcomp.graph as tg
from tcomp.graph import testing


def reference(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(model.SerializeToString(), options).run(None, feeds)


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    scale = float(np.abs(want).max()) or 1.0
    assert float(np.abs(got - want).max()) <= 1e-3 * scale
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * scale)


MODELS = {
    "resnet50": lambda: testing.resnet(50, image_size=32, width=0.25, num_classes=100, softmax=False),
    "resnet18": lambda: testing.resnet(18, image_size=48, width=0.5, num_classes=10),
    "vgg11": lambda: testing.vgg(11, image_size=32, width=0.25, hidden=128, num_classes=10, softmax=False),
    "mobilenet_v2": lambda: testing.mobilenet_v2(image_size=32, width=0.5, num_classes=10),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_cnn_matches_onnxruntime(name: str) -> None:
    model = MODELS[name]()
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    executor = tg.compile(model)
    assert (executor.input_names, executor.output_names) == testing.interface(model)
    [got] = executor.run([x])
    [want] = reference(model, {"data": x})
    assert_close(got, want)
    plan = executor.graph.meta["memory_plan"]
    assert plan.planned_bytes <= 0.5 * plan.unplanned_bytes
    ops = {n.op for n in executor.graph.nodes}
    assert "batch_norm" not in ops  # folded into the convolutions


def test_transformer_encoder_block() -> None:
    model = testing.transformer_encoder(batch=2, seq=8, hidden=32, heads=4, ffn=64, dynamic_batch=True)
    x = np.random.default_rng(2).standard_normal((2, 8, 32)).astype(np.float32)
    assert isinstance(tg.compile(model), tg.SpecializingExecutor)  # the batch is symbolic: compiled as it runs
    executor = tg.compile(model, input_shapes={"x": [2, 8, 32]})
    assert (executor.input_names, executor.output_names) == testing.interface(model)
    [got] = executor.run([x])
    [want] = reference(model, {"x": x})
    assert_close(got, want)
    graph = executor.graph
    # the shapes computed in the graph (Shape -> Gather -> Concat -> Reshape) were folded away
    assert not any(m.op in ("shape_of", "take", "concat") for n in graph.nodes for m in _members(n))


@pytest.mark.parametrize("name", ["bert", "vit"])
def test_bert_and_vit_encoders(name: str) -> None:
    """Two layers of each at odd sizes (a sequence of 21 tokens, 17 patches + the class token), a BERT mask that
    drops the last tokens; every attention block becomes one fused attention node."""
    rng = np.random.default_rng(4)
    if name == "bert":
        model = testing.bert(layers=2, hidden=48, heads=3, ffn=96, seq=21, vocab=50)
        mask = np.ones((1, 21), np.int64)
        mask[0, 17:] = 0
        feeds = {"input_ids": rng.integers(0, 50, (1, 21)).astype(np.int64), "attention_mask": mask}
    else:
        model = testing.vit(layers=2, hidden=48, heads=3, ffn=96, image_size=36, patch=9)
        feeds = {"pixel_values": rng.standard_normal((1, 3, 36, 36)).astype(np.float32)}
    executor = tg.compile(model, "llvm -num-cores=2")
    [got] = executor.run(feeds)
    [want] = reference(model, feeds)
    assert_close(got, want)
    members = [m.op for n in executor.graph.nodes for m in _members(n)]
    assert members.count("attention") == 2 and "softmax" not in members


def _members(node: tg.Node) -> tuple[tg.Node, ...]:
    body = node.attr("body")
    return body.nodes if body is not None else (node,)


def test_passes_switched_off_give_the_same_result() -> None:
    model = testing.resnet(18, image_size=32, width=0.25, num_classes=10, softmax=False)
    x = np.random.default_rng(3).standard_normal((1, 3, 32, 32)).astype(np.float32)
    [want] = reference(model, {"data": x})
    options = tg.PassOptions.without(tg.PassOptions.names())
    executor = tg.compile(model, options=options)
    assert executor.graph.meta.get("memory_plan") is None
    assert any(n.op == "batch_norm" for n in executor.graph.nodes)
    [got] = executor.run([x])
    assert_close(got, want)


def _light_like() -> onnx.ModelProto:
    """A classifier whose weights are built as the onnx package's light models build theirs: ``ConstantOfShape``
    of 0.02 from an initializer holding the shape."""
    from onnx import TensorProto, helper, numpy_helper

    shapes = {"conv_w": (16, 3, 3, 3), "conv_b": (16,), "bn_s": (16,), "bn_b": (16,), "bn_m": (16,), "bn_v": (16,),
              "fc_w": (10, 16), "fc_b": (10,)}
    fill = helper.make_tensor("fill", TensorProto.FLOAT, [1], [0.02])
    nodes = [helper.make_node("ConstantOfShape", [f"{name}__SHAPE"], [name], value=fill) for name in shapes]
    ones = helper.make_tensor("ones", TensorProto.INT64, [1], [1])  # an integer constant: not a weight
    nodes += [helper.make_node("ConstantOfShape", ["repeats__SHAPE"], ["repeats"], value=ones),
              helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["c"], pads=[1, 1, 1, 1]),
              helper.make_node("BatchNormalization", ["c", "bn_s", "bn_b", "bn_m", "bn_v"], ["n"]),
              helper.make_node("Relu", ["n"], ["r"]),
              helper.make_node("GlobalAveragePool", ["r"], ["p"]),
              helper.make_node("Flatten", ["p"], ["f"]),
              helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["g"], transB=1),
              helper.make_node("Tile", ["g", "repeats"], ["l"]),
              helper.make_node("Softmax", ["l"], ["y"], axis=1)]
    initializers = [numpy_helper.from_array(np.array(shape, np.int64), f"{name}__SHAPE")
                    for name, shape in {**shapes, "repeats": (2,)}.items()]
    graph = helper.make_graph(nodes, "light_like", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                  [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_random_weights_replace_weights_kept_as_shapes() -> None:
    """As built, every input gives the same output; with ``random_weights`` each weight is drawn for its role and
    the outputs (and the logits ``expose_logits`` adds) vary by class, tcomp's as onnxruntime's."""
    light = _light_like()
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    assert np.ptp(reference(light, {"x": x})[0]) == 0
    model = testing.expose_logits(testing.random_weights(light, seed=1))
    assert [o.name for o in model.graph.output] == ["y", "l"]
    assert [n.output[0] for n in model.graph.node if n.op_type == "ConstantOfShape"] == ["repeats"]
    assert [t.name for t in model.graph.initializer if t.name.endswith("__SHAPE")] == ["repeats__SHAPE"]
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    assert weights["conv_w"].shape == (16, 3, 3, 3) and weights["fc_w"].shape == (10, 16)
    assert 0.5 * np.sqrt(2 / 27) < weights["conv_w"].std() < 1.5 * np.sqrt(2 / 27)  # He-scaled by 3x3x3 inputs
    assert 0.5 * np.sqrt(1 / 16) < weights["fc_w"].std() < 1.5 * np.sqrt(1 / 16)  # transB: fan-in 16, not 10
    assert weights["bn_v"].min() >= 0.5 and weights["bn_s"].min() >= 0.5
    wants = reference(model, {"x": x})
    assert all(np.ptp(w) > 0 for w in wants)
    for got, want in zip(tg.compile(model.SerializeToString(), "llvm").run([x]), wants):
        assert_close(got, want)
    again = testing.random_weights(light, seed=1)
    assert onnx.numpy_helper.to_array(again.graph.initializer[-1]).tobytes() == weights[
        again.graph.initializer[-1].name].tobytes()  # a seed gives the same weights
