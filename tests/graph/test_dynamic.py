"""Symbolic dimensions (``tcomp.graph.dynamic``): the probes' graphs merged into a template of multilinear integers, and
models whose dimensions vary compiled once for all their values. The decoders exported with a symbolic cache
length, and a GPT-2 reading a prompt of symbolic length, match PyTorch at every stored length from one compilation,
and an exact compilation at others."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import tcomp.graph as tg
from tcomp.graph.dynamic import (
    LARGEST,
    NoTemplate,
    Polynomial,
    bytes_polynomial,
    instantiate,
    probe_bindings,
    template,
    templated_dimensions,
)
from tcomp.graph.ir import GraphError, TensorType, make_node
from tests.graph.hf_data import DATA, assert_matches_pytorch, stored, stored_lengths

DECODERS = ["gpt2_decode_dynamic_tiny", "llama_decode_dynamic_tiny"]


def test_probes_change_one_dimension_then_two_then_all() -> None:
    probes = probe_bindings(["past", "batch"])
    assert probes[0] == {"past": 37, "batch": 41}
    assert probes[1] == {"past": 43, "batch": 41} and probes[2] == {"past": 37, "batch": 47}
    assert probes[3] == {"past": 43, "batch": 47} and probes[4] == {"past": 53, "batch": 59}
    assert len(probes) == 5 and len(probe_bindings(["n"])) == 3 and len(probe_bindings(["a", "b", "c"])) == 8
    with pytest.raises(NoTemplate, match="probing takes 1 to"):
        probe_bindings([])


def test_integers_that_differ_are_fitted() -> None:
    probes = probe_bindings(["past", "batch"])
    dims = [TensorType((p["batch"], 2 * p["past"] + 1, 16), "float32") for p in probes]
    fitted = template(dims, probes)
    assert instantiate(fitted, {"past": 10, "batch": 3}) == TensorType((3, 21, 16), "float32")
    [_, rows, _] = fitted.fields[0][1].items
    assert rows == Polynomial(1, ((("past",), 2),)) and str(rows) == "2*past + 1"
    same = [TensorType((4, 4), "float32") for _ in probes]
    assert template(same, probes) is same[0]


@pytest.mark.parametrize("symbols", [["batch", "seq"], ["batch", "seq", "past"]])
def test_products_of_two_dimensions_are_fitted(symbols: list[str]) -> None:
    """A batch of prompts flattened to rows: ``batch*seq`` (and ``3*batch*seq + 2*seq - 5``) at every binding."""
    probes = probe_bindings(symbols)
    rows = template([p["batch"] * p["seq"] for p in probes], probes)
    mixed = template([3 * p["batch"] * p["seq"] + 2 * p["seq"] - 5 for p in probes], probes)
    assert rows == Polynomial(0, ((("batch", "seq"), 1),)) and str(rows) == "batch*seq"
    assert str(mixed) == "3*batch*seq + 2*seq - 5"
    rng = np.random.default_rng(0)
    for _ in range(20):
        binding = {s: int(v) for s, v in zip(symbols, rng.integers(1, 1000, len(symbols)))}
        assert rows.at(binding) == binding["batch"] * binding["seq"]
        assert mixed.at(binding) == 3 * binding["batch"] * binding["seq"] + 2 * binding["seq"] - 5
    with pytest.raises(NoTemplate, match="not multilinear"):
        template([p["batch"] * p["seq"] * p["seq"] for p in probes], probes)


def test_byte_sizes_as_polynomials() -> None:
    probes = probe_bindings(["n", "m"])
    rows = template([TensorType((p["n"], 4), "float32") for p in probes], probes)
    assert bytes_polynomial(rows) == {("n",): 16}
    grid = template([TensorType((p["n"] + 1, p["m"]), "int8") for p in probes], probes)
    assert bytes_polynomial(grid) == {("m", "n"): 1, ("m",): 1}
    assert bytes_polynomial(TensorType((2, 3), "int4")) == {(): 6}
    flat = template([TensorType((p["n"] * p["m"], 2), "float32") for p in probes], probes)
    assert bytes_polynomial(flat) == {("m", "n"): 8}


@pytest.mark.parametrize(("objects", "reason"), [
    (lambda p: p["past"] ** 2, "not multilinear"),
    (lambda p: p["past"] // 2, "not multilinear"),
    (lambda p: "a" if p["past"] == 37 else "b", "differs between probes"),
    (lambda p: np.full(3, p["past"]), "a constant's data depends on the dimensions"),
    (lambda p: (1,) * (p["past"] % 3), "items at one probe"),
])
def test_what_no_template_expresses(objects: object, reason: str) -> None:
    probes = probe_bindings(["past"])
    with pytest.raises(NoTemplate, match=reason):
        template([objects(p) for p in probes], probes)  # type: ignore[operator]


@pytest.mark.parametrize("name", DECODERS)
def test_a_decoder_compiles_once_for_every_cache_length(name: str) -> None:
    """The first length compiles; the second probes the model, compiles the kernels that depend on the cache
    length once, with the length as an argument, and assembles an executor planned for up to 64 positions; every
    later length up to 64 only resizes it."""
    lengths = stored_lengths(name)
    executor = tg.compile(DATA / f"{name}.onnx", target="llvm -num-cores=2")
    assert isinstance(executor, tg.SpecializingExecutor)
    assert_matches_pytorch(name, executor)  # cases 5, 6 and 31
    assert (executor.compilations, executor.assembled, executor.resized) == (1, 1, len(lengths) - 1)
    dynamic = executor.dynamic
    assert dynamic is not None and dynamic.symbols == ("past",) and executor.dynamic_failure is None
    assert dynamic.generic_kernels >= 4 and dynamic.exact_kernels == 0 and dynamic.resizable
    inputs, _ = stored(name, lengths[0])
    rng = np.random.default_rng(7)
    held = []
    for length in (40, 2, 9, 62, 9):
        feeds = {k: v if v.dtype.kind == "i" else rng.standard_normal(
            (*v.shape[:2], length, v.shape[3])).astype(np.float32) for k, v in inputs.items()}
        got = executor.run(feeds)
        exact = tg.compile(DATA / f"{name}.onnx", target="llvm -num-cores=2",
                           input_shapes={k: v.shape for k, v in feeds.items()})
        want = exact.run(feeds)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        held.append((got, [w.copy() for w in want]))
    for got, want in held:  # the arrays a run returned are the caller's: later runs write elsewhere
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert (executor.compilations, executor.assembled) == (1, 1)


@pytest.mark.parametrize("name", ["gpt2_decode_batch_dynamic_tiny", "llama_decode_masked_dynamic_tiny"])
def test_a_batched_decoding_step_compiles_once_and_once_for_a_batch_of_one(name: str) -> None:
    """A step for a batch of sequences whose size and cache length are both symbolic (a server generating for
    several requests): GPT-2's, and Llama's as optimum exports it, with an ``attention_mask`` of ``[batch, past + 1]``
    (the exporter writes that dimension as an expression of the cache length, read as one: as a symbol of its own,
    the probes gave it a prime of its own and no shape agreed). The second shape probes the model for both
    dimensions; a batch of one pins ``batch`` and its second length probes the model for ``past`` alone. Two full
    compilations for the six shapes, the others on kernels compiled once; each against PyTorch."""
    executor = tg.compile(DATA / f"{name}.onnx", target="llvm -num-cores=2")
    assert stored_lengths(name) == ["2x5", "3x6", "4x31", "1x6", "1x9", "2x40"]
    assert_matches_pytorch(name, executor)
    batched, single = executor.dynamic, executor.dynamic_model({"batch": 1})
    assert batched is not None and batched.symbols == ("batch", "past") and executor.dynamic_failure is None
    assert single is not None and single.symbols == ("past",)
    for model in (batched, single):
        assert model.resizable and model.exact_kernels == 0
    assert executor.compilations == 2 and executor.assembled + executor.resized >= 4


def test_a_mask_that_is_not_past_plus_one_compiles_as_given() -> None:
    """Shapes that break the declared ``past + 1`` bind no dimensions: they compile as they are, and the model's own
    shapes refuse them."""
    name = "llama_decode_masked_dynamic_tiny"
    inputs, _ = stored(name, "2x5")
    inputs["attention_mask"] = np.ones((2, 7), np.int64)
    with pytest.raises(GraphError, match=r"cannot expand \(2, 2, 1, 6, 16\) to \[2, 2, 2, 7, 16\]"):
        tg.compile(DATA / f"{name}.onnx", target="llvm -num-cores=2").run(inputs)


def test_a_prompt_of_any_length_compiles_once() -> None:
    """A prompt whose length is symbolic: the second length probes the model; the products with weights run on the
    packed GEMM compiled for a symbolic number of rows, attention for a symbolic number of queries and keys, and
    the mask's slices, running sum and gathers for the length: every kernel compiles once, and every later length
    only resizes an executor (a new one per power of two)."""
    name = "gpt2_prompt_dynamic_tiny"
    executor = tg.compile(DATA / f"{name}.onnx", target="llvm -num-cores=2")
    assert isinstance(executor, tg.SpecializingExecutor)
    assert_matches_pytorch(name, executor)  # cases 5, 6, 31 and 100
    dynamic = executor.dynamic
    assert dynamic is not None and dynamic.symbols == ("seq",) and executor.dynamic_failure is None
    assert dynamic.resizable and dynamic.exact_kernels == 0
    assert (executor.compilations, executor.assembled, executor.resized) == (1, 2, 3)
    graph = executor._current().graph
    assert graph is not None and any(m.op == "panel_matmul" for node in graph.nodes for m in node.members())


def test_a_batch_of_prompts_compiles_once_and_once_for_a_batch_of_one() -> None:
    """A batch of prompts whose size and length are both symbolic (optimum's export), padded on the right: the rows
    of its products are ``batch*seq`` (a product of the dimensions), attention runs over a symbolic number of
    matrices, and each prompt's mask is its own. The second shape probes the model; a batch of one broadcasts, so it
    pins ``batch`` and its second length probes the model for ``seq`` alone. Two exact compilations, then every
    shape resizes an executor."""
    name = "gpt2_batch_dynamic_tiny"
    executor = tg.compile(DATA / f"{name}.onnx", target="llvm -num-cores=2")
    assert isinstance(executor, tg.SpecializingExecutor)
    assert stored_lengths(name) == ["2x5", "3x7", "4x31", "1x6", "1x9", "2x100", "1x50"]
    assert_matches_pytorch(name, executor)
    batched, single = executor.dynamic, executor.dynamic_model({"batch": 1})
    assert batched is not None and batched.symbols == ("batch", "seq") and executor.dynamic_failure is None
    assert any(m == ("batch", "seq") for d in templated_dimensions(batched.template) for m, _ in d.terms)
    assert single is not None and single.symbols == ("seq",)
    for model in (batched, single):
        assert model.resizable and model.exact_kernels == 0 and model.generic_kernels >= 5
    assert executor.compilations == 2 and executor.resized == 5
    graph = executor._current().graph
    assert graph is not None and any(m.op == "attention" for node in graph.nodes for m in node.members())


# exported as optimum exports them, width 64: their products are narrower than the packed GEMM takes at numbers
SERVING_FAMILIES = {"qwen2_batch_dynamic_tiny": ("batch", "seq"), "roberta_batch_dynamic_tiny": ("batch", "seq"),
                    "t5_batch_dynamic_tiny": ("batch", "seq", "dec"), "whisper_batch_dynamic_tiny": ("batch", "dec"),
                    "bloom_batch_dynamic_tiny": ("batch", "seq"), "deberta_v3_batch_dynamic_tiny": ("batch", "seq")}


@pytest.mark.parametrize("name", sorted(SERVING_FAMILIES))
def test_families_exported_for_serving_compile_once(name: str) -> None:
    """Qwen2 (grouped-query attention, biased projections), RoBERTa (positions counted from the mask, gathered for a
    symbolic batch), the T5 encoder-decoder (a third dimension, the decoder's length), Whisper (convolutions over a
    symbolic batch of audio features, the decoder's start tiled for the batch), BLOOM (its ``[batch * heads]``
    scores regrouped to meet the mask: one attention kernel) and DeBERTa-v3 (products of the queries with position
    keys repeated for the batch: symbolic rows and batch, numbers of columns), every input's batch and length
    symbolic. A model compiled for symbolic rows reads every product's weight from panels, whatever its width
    (plain loops would compile per shape; the probes of ``batch*seq`` rows once chose differently at 3127 rows than
    at 1517), so the batched model and the batch of one are both resizable: one exact compilation, then every shape
    runs on kernels compiled once. Against PyTorch at five shapes."""
    executor = tg.compile(DATA / f"{name}.onnx", target="llvm -num-cores=2")
    assert stored_lengths(name) == ["1x16", "2x7", "3x12", "1x5", "2x20"]
    assert_matches_pytorch(name, executor)
    batched, single = executor.dynamic, executor.dynamic_model({"batch": 1})
    assert batched is not None and batched.symbols == SERVING_FAMILIES[name] and executor.dynamic_failure is None
    assert single is not None and single.symbols == SERVING_FAMILIES[name][1:]
    for model in (batched, single):
        assert model.resizable and model.exact_kernels == 0
    assert executor.compilations == 1


def test_an_image_model_whose_biases_broadcast_for_the_batch_compiles_once() -> None:
    """BEiT exported with a symbolic batch: its relative position biases and mask, constants, are broadcast to
    ``[batch, heads, N, N]`` through a chain of expands and wheres; values whose types differ between the probes
    stay nodes from the first round (each round found one more link, and three rounds fell short). Batch 1
    compiles exactly, 2 probes, 3 and 5 resize; against PyTorch at each."""
    name = "beit_batch_dynamic_tiny"
    executor = tg.compile(DATA / f"{name}.onnx", target="llvm -num-cores=2")
    assert stored_lengths(name) == [1, 2, 3, 5]
    assert_matches_pytorch(name, executor)
    model = executor.dynamic
    assert model is not None and model.symbols == ("batch",) and executor.dynamic_failure is None
    assert model.resizable and model.exact_kernels == 0 and executor.compilations == 1


@pytest.mark.parametrize("name, held, free", [
    ("resnet_images_dynamic_tiny", {"num_channels", "height", "width"}, ("batch_size",)),
    ("segformer_images_dynamic_tiny", {"height", "width"}, ("batch",))])
def test_images_of_any_size_compile_once_per_size(name: str, held: set[str], free: tuple[str, ...]) -> None:
    """Vision models exported with every dimension of their images symbolic (ResNet with optimum's axes, channels
    named too; SegFormer by the dynamo exporter): strided convolutions divide the height and width, so no template
    follows them, and a weight fixes the channels. The second size's probe finds those dimensions and holds them
    (that size compiles, as the first shapes of any held values do); the next batch at that size probes the model
    for the batch alone, and so does the first size's. Against PyTorch at each of 1x48x48, 2x64x56, 3x64x56, 4x48x48
    and 2x48x48 (batch x height x width)."""
    executor = tg.compile(DATA / f"{name}.onnx", target="llvm -num-cores=2")
    assert_matches_pytorch(name, executor)
    assert executor.held_dimensions == held
    model = executor.dynamic
    assert model is not None and model.symbols == free and model.resizable and model.exact_kernels == 0
    assert (executor.compilations, executor.assembled, executor.resized) == (2, 2, 3)
    assert executor.dynamic_failure is None
    if "num_channels" in held:
        with pytest.raises(GraphError, match="does not match 4 input channels"):
            executor.run({"pixel_values": np.zeros((2, 4, 48, 48), np.float32)})


def test_differences_name_the_dimensions_they_come_from() -> None:
    """Where the probes' objects differ in a way no template expresses, ``NoTemplate.symbols`` names the dimensions
    whose own probe makes them differ; with ``unfitted``, every such difference is collected."""
    probes = probe_bindings(["batch", "height"])
    half = [(p["height"] - 1) // 2 + 1 for p in probes]  # a strided convolution's output
    objects = [(p["batch"] * h, h, 0.5 * p["height"], p["batch"] + 1) for p, h in zip(probes, half)]
    with pytest.raises(NoTemplate, match="not multilinear") as caught:
        template(objects, probes)
    assert caught.value.symbols == {"batch", "height"}
    unfitted: list[NoTemplate] = []
    template(objects, probes, unfitted=unfitted)
    assert [e.symbols for e in unfitted] == [{"batch", "height"}, {"height"}, {"height"}]
    assert "differs between probes" in str(unfitted[2])


def _cnn(batch: str | int) -> onnx.ModelProto:
    """3x3 convolutions of 32 channels at 28x28 (Winograd's), a strided one, max pooling, global average pooling
    and a classifier, over a batch of ``batch`` images."""
    rng = np.random.default_rng(41)

    def weight(name: str, *shape: int) -> onnx.TensorProto:
        return onnx.numpy_helper.from_array((rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))).astype(
            np.float32), name)

    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c2", "x"], ["a"]),
             helper.make_node("Conv", ["a", "w3"], ["c3"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("MaxPool", ["c3"], ["p"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("GlobalAveragePool", ["p"], ["g"]), helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "w4"], ["y"], transB=1)]
    graph = helper.make_graph(
        nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 32, 28, 28])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 10])],
        [weight("w1", 32, 32, 3, 3), weight("w2", 32, 32, 3, 3), weight("w3", 48, 32, 3, 3), weight("w4", 10, 48)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_convolutions_over_a_symbolic_batch_compile_once() -> None:
    """A CNN exported with a symbolic batch: its convolutions (Winograd's among them), pooling windows and layout
    transforms take the batch as an argument (tiled for one image, the batch's loop outside), so the second batch
    size probes the model and every later one only resizes an executor. Against onnxruntime at each size."""
    from onnxruntime import InferenceSession

    model = _cnn("batch").SerializeToString()
    ops: dict[str, list[str]] = {}
    executor = tg.compile(model, target="llvm -num-cores=2", dump=lambda name, g: ops.setdefault(name, [
        m.op for node in g.nodes for m in node.members()]))
    session = InferenceSession(model, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(42)
    for batch in (2, 3, 5, 8, 1, 7):
        x = rng.standard_normal((batch, 32, 28, 28)).astype(np.float32)
        [got], [want] = executor.run({"x": x}), session.run(None, {"x": x})
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))
    assert "conv2d_winograd_nchwc" in ops["fuse_ops"]  # the first batch's compilation
    model_ = executor.dynamic
    assert model_ is not None and model_.resizable and model_.exact_kernels == 0 and model_.generic_kernels >= 4
    assert executor.compilations == 2 and executor.dynamic_failure is None  # 2, then 1 (a batch of one is exact)


def test_a_dynamically_quantized_prompt_compiles_once(tmp_path: Path) -> None:
    """The same prompt model quantized by onnxruntime's ``quantize_dynamic``: its integer products take a symbolic
    number of rows too, so every kernel compiles once; against onnxruntime on the quantized model at every stored
    length (activations are requantized: a value an ulp apart may land one step over)."""
    from onnxruntime import InferenceSession
    from onnxruntime.quantization import QuantType, quantize_dynamic

    name = "gpt2_prompt_dynamic_tiny"
    quantized = tmp_path / f"{name}_int8.onnx"
    quantize_dynamic(DATA / f"{name}.onnx", quantized, weight_type=QuantType.QInt8)
    session = InferenceSession(str(quantized), providers=["CPUExecutionProvider"])
    executor = tg.compile(quantized, target="llvm -num-cores=2")
    for length in stored_lengths(name):
        inputs, _ = stored(name, length)
        [got], [want] = executor.run(inputs), session.run(None, inputs)
        scale = float(np.abs(want).max())
        assert np.abs(got - want).max() <= 0.02 * scale
        assert np.median(np.abs(got - want)) <= 1e-4 * scale
    assert executor.dynamic is not None and executor.dynamic.resizable and executor.dynamic.exact_kernels == 0
    assert (executor.compilations, executor.assembled) == (1, 2)
    graph = executor._current().graph
    assert graph is not None and any(m.op == "quantized_matmul" for node in graph.nodes for m in node.members())


def test_a_cache_of_one_compiles_for_its_exact_shapes() -> None:
    """A dimension of 1 broadcasts where a larger one does not: no kernel compiled for the symbolic dimensions
    serves it."""
    name = DECODERS[1]
    executor = tg.compile(DATA / f"{name}.onnx", target="llvm -num-cores=2")
    inputs, _ = stored(name, 5)
    executor.run(inputs)
    executor.run(stored(name, 6)[0])
    assert executor.dynamic is not None and executor.resized == 1
    one = {k: v if v.dtype.kind == "i" else np.ascontiguousarray(v[:, :, :1]) for k, v in inputs.items()}
    assert not executor.dynamic.covers({"past": 1})
    got = executor.run(one)
    assert executor.compilations == 2
    exact = tg.compile(DATA / f"{name}.onnx", input_shapes={k: v.shape for k, v in one.items()}).run(one)
    for a, b in zip(got, exact):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _flatten_square_model() -> onnx.ModelProto:
    """``y = reshape(broadcast(x, [n, n]), [-1])``: its output has n * n elements, a square of a dimension."""
    shape = helper.make_node("Shape", ["x"], ["s"])
    square = helper.make_node("Concat", ["s", "s"], ["ss"], axis=0)
    expand = helper.make_node("Expand", ["x", "ss"], ["e"])
    flat = helper.make_node("Reshape", ["e", "minus_one"], ["y"])
    graph = helper.make_graph(
        [shape, square, expand, flat], "square",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [helper.make_tensor("minus_one", TensorProto.INT64, [1], [-1])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_model_that_probes_not_multilinear_compiles_per_shape() -> None:
    executor = tg.compile(_flatten_square_model())
    for n in (3, 4, 5):
        x = np.arange(n, dtype=np.float32)
        [y] = executor.run([x])
        np.testing.assert_array_equal(y, np.broadcast_to(x, (n, n)).reshape(-1))
    assert executor.dynamic is None and "not multilinear" in str(executor.dynamic_failure)
    assert executor.compilations == 3 and executor.assembled == 0


def _range_model() -> onnx.ModelProto:
    """``y = x + range(0, len(x))``: Range's bounds come from a shape, so its values vary with it."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Squeeze", ["s"], ["n"]),
        helper.make_node("Range", ["zero", "n", "one"], ["r"]),
        helper.make_node("Add", ["x", "r"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "ranged", [helper.make_tensor_value_info("x", TensorProto.INT64, ["n"])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, ["n"])],
        [helper.make_tensor("zero", TensorProto.INT64, [], [0]), helper.make_tensor("one", TensorProto.INT64, [], [1])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_values_computed_from_a_dimension_stay_run_time_values() -> None:
    """At each probe Range's values are known, but they change with the dimension: the template keeps the node
    (a kernel computing them), not the probe's constant."""
    executor = tg.compile(_range_model())
    for n in (3, 5, 9, 2, 100, 7, 129):
        x = np.full(n, 10, dtype=np.int64)
        [y] = executor.run([x])
        np.testing.assert_array_equal(y, 10 + np.arange(n))
    assert executor.compilations == 1 and executor.assembled == 3  # planned for 64, 128 and 256 elements
    assert executor.resized == 6
    static = tg.compile(_range_model(), input_shapes={"x": [4]})
    assert isinstance(static, tg.GraphExecutor) and not static.graph.nodes[0].op == "range"
    np.testing.assert_array_equal(static.run([np.zeros(4, np.int64)])[0], np.arange(4))


def test_symbolic_dimensions_can_be_turned_off() -> None:
    executor = tg.compile(_range_model(), symbolic_dimensions=False)
    for n in (3, 5):
        executor.run([np.zeros(n, np.int64)])
    assert executor.compilations == 2 and executor.dynamic is None


def test_an_executor_for_symbolic_dimensions_is_not_exported(tmp_path: Path) -> None:
    executor = tg.compile(_range_model())
    for n in (3, 5):
        executor.run([np.zeros(n, np.int64)])
    with pytest.raises(GraphError, match="compiled for symbolic dimensions cannot be exported"):
        executor._current().export(str(tmp_path / "out"))


def test_a_concat_written_in_place_keeps_an_executor_per_shape() -> None:
    """Parts written in place at offsets that move with the dimension: a plan made for a capacity would put the
    second part in the wrong place at a smaller size, so each size gets its own executor (and exact kernels)."""
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Sigmoid", ["x"], ["b"]),
             helper.make_node("Concat", ["a", "b"], ["c"], axis=0), helper.make_node("Tanh", ["c"], ["y"])]
    graph = helper.make_graph(nodes, "halves", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    executor = tg.compile(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    rng = np.random.default_rng(3)
    for n in (3, 5, 9, 4):
        x = rng.standard_normal((n, 4)).astype(np.float32)
        [y] = executor.run([x])
        want = np.tanh(np.concatenate([np.maximum(x, 0), 1 / (1 + np.exp(-x))]))
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
    assert executor.dynamic is not None and not executor.dynamic.resizable
    assert (executor.compilations, executor.assembled, executor.resized) == (1, 3, 0)
    assert executor.graph is not None and executor.graph.meta["memory_plan"].elided


def test_a_concat_written_in_place_whose_last_part_varies_resizes() -> None:
    """Only the last part's size depends on the dimension: every part keeps its offset, so one plan made for a
    capacity serves every smaller size."""
    nodes = [helper.make_node("Relu", ["head"], ["a"]), helper.make_node("Sigmoid", ["x"], ["b"]),
             helper.make_node("Concat", ["a", "b"], ["c"], axis=0), helper.make_node("Tanh", ["c"], ["y"])]
    graph = helper.make_graph(nodes, "tail", [helper.make_tensor_value_info("head", TensorProto.FLOAT, [2, 4]),
                                              helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    executor = tg.compile(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    rng = np.random.default_rng(4)
    for n in (3, 5, 9, 4, 40):
        head, x = rng.standard_normal((2, 4)).astype(np.float32), rng.standard_normal((n, 4)).astype(np.float32)
        [y] = executor.run([head, x])
        want = np.tanh(np.concatenate([np.maximum(head, 0), 1 / (1 + np.exp(-x))]))
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
    assert executor.dynamic is not None and executor.dynamic.resizable
    assert (executor.compilations, executor.assembled, executor.resized) == (1, 1, 4)
    assert executor.graph is not None and executor.graph.meta["memory_plan"].elided


def test_tiles_chosen_for_the_probes_extents_do_not_stop_a_template() -> None:
    """An attribute that only chooses how a kernel runs (``OpDef.hints``: attention's tiles, chosen for the
    query's rows) takes the first probe's value; any other attribute that differs is not multilinear."""
    probes = probe_bindings(["n"])
    tiles = [make_node("attention", "a", ("q", "k", "v"), ("o",), tiles=(8, 32, rows, 16), scale=0.5)
             for rows in (40, 48, 48)]
    merged = instantiate(template(tiles, probes), {"n": 100})
    assert merged.attr("tiles") == (8, 32, 40, 16)
    scales = [make_node("attention", "a", ("q", "k", "v"), ("o",), tiles=(8, 32, 8, 16), scale=s)
              for s in (0.5, 0.25, 0.25)]
    with pytest.raises(NoTemplate, match="differs between probes"):
        template(scales, probes)


def test_a_dimension_past_the_largest_compiles_exactly() -> None:
    """The kernels for symbolic dimensions index in 32 bits for dimensions up to ``LARGEST``: a larger one is never
    given to them, it compiles for its exact shapes."""
    executor = tg.compile(_range_model())
    for n in (3, 5, LARGEST + 1):
        [y] = executor.run([np.zeros(n, np.int64)])
        np.testing.assert_array_equal(y, np.arange(n))
    assert executor.dynamic is not None and not executor.dynamic.covers({"n": LARGEST + 1})
    assert (executor.compilations, executor.assembled) == (2, 1)
