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
