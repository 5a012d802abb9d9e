"""``fuse_attention``: which chains become one ``attention`` node and which stay, and that results do not change
(against numpy on the graph IR, and against onnxruntime on a self-attention block in ONNX as transformers export
it: projections, heads split by Reshape and Transpose, a padding mask, the heads merged back)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import tcomp.graph as tg
from tcomp.graph.infer import infer_types
from tcomp.graph.ir import Graph, TensorType, make_node, verify_graph
from tcomp.graph.passes.fuse_attention import fuse_attention

RNG = np.random.default_rng(44)
F32 = "float32"


def graph(nodes: list[tg.Node], inputs: dict[str, tuple[int, ...]], outputs: list[str],
          params: dict[str, np.ndarray] | None = None) -> Graph:
    types = {k: TensorType(v, F32) for k, v in inputs.items()}
    g = infer_types(Graph("g", tuple(inputs), tuple(outputs), tuple(nodes), params or {}, types))
    verify_graph(g)
    return g


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def attention_graph(scale_node: str = "multiply", mask: bool = True, transpose_out: bool = True,
                    probabilities_out: bool = False, scale_after_mask: bool = False) -> Graph:
    """``softmax(q @ k_t * c + mask) @ v`` (b=2, heads=3, S=11, D=8), its result transposed to [b, S, heads, D]."""
    nodes = [make_node("matmul", "qk", ["q", "k_t"], ["s"])]
    scores = "s"
    c = np.array(0.125 if scale_node == "multiply" else 8.0, np.float32)
    if not scale_after_mask:
        nodes.append(make_node(scale_node, "scale", [scores, "c"], ["s2"]))
        scores = "s2"
    if mask:
        nodes.append(make_node("add", "mask", ["mask", scores], ["s3"]))
        scores = "s3"
    if scale_after_mask:
        nodes.append(make_node(scale_node, "scale", [scores, "c"], ["s4"]))
        scores = "s4"
    nodes.append(make_node("softmax", "softmax", [scores], ["p"], axis=-1))
    nodes.append(make_node("matmul", "pv", ["p", "v"], ["o"]))
    outputs = ["o"]
    if transpose_out:
        nodes.append(make_node("transpose", "heads", ["o"], ["y"], perm=(0, 2, 1, 3)))
        outputs = ["y"]
    if probabilities_out:
        outputs.append("p")
    inputs = {"q": (2, 3, 11, 8), "k_t": (2, 3, 8, 11), "v": (2, 3, 11, 8), "mask": (2, 1, 1, 11)}
    return graph(nodes, inputs, outputs, {"c": c})


def reference(q: np.ndarray, k_t: np.ndarray, v: np.ndarray, mask: np.ndarray, scale: float) -> np.ndarray:
    logits = (q.astype(np.float64) @ k_t) * scale + mask
    weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return ((weights / weights.sum(axis=-1, keepdims=True)) @ v).transpose(0, 2, 1, 3).astype(np.float32)


@pytest.mark.parametrize("scale_node", ["multiply", "divide"])
def test_attention_chain_becomes_one_node(scale_node: str) -> None:
    g = attention_graph(scale_node)
    fused = fuse_attention(g, "llvm -num-cores=2")
    verify_graph(fused)
    [node] = fused.nodes
    assert node.op == "attention" and node.inputs == ("q", "k_t", "v", "mask") and node.outputs == ("y",)
    assert node.attr("scale") == pytest.approx(0.125) and tuple(node.attr("perm")) == (0, 2, 1, 3)
    q, k_t, v, mask = rand(2, 3, 11, 8), rand(2, 3, 8, 11), rand(2, 3, 11, 8), rand(2, 1, 1, 11)
    [got] = tg.build_executor(fused).run([q, k_t, v, mask])
    np.testing.assert_allclose(got, reference(q, k_t, v, mask, 0.125), rtol=1e-4, atol=1e-5)


def test_chains_that_stay_apart() -> None:
    for g in (attention_graph(probabilities_out=True),  # the probabilities are an output
              attention_graph(scale_after_mask=True)):  # (q @ k_t + mask) * c is not matched
        assert fuse_attention(g, "llvm") is g
    broadcasting = attention_graph(mask=False, transpose_out=False)  # c of shape [1, 1, 1, 1, 1] adds a dimension
    broadcasting = graph(list(broadcasting.nodes), {"q": (2, 3, 11, 8), "k_t": (2, 3, 8, 11), "v": (2, 3, 11, 8)},
                         ["o"], {"c": np.full((1, 1, 1, 1, 1), 0.125, np.float32)})
    assert fuse_attention(broadcasting, "llvm") is broadcasting
    g = attention_graph(mask=False, transpose_out=False)
    [node] = fuse_attention(g, "llvm").nodes
    assert node.op == "attention" and node.inputs == ("q", "k_t", "v") and not node.attr("perm")


def _bloom_like(view: tuple[int, ...], mask: tuple[int, ...]) -> Graph:
    """BLOOM's scores: ``[batch * heads, S, S]`` products plus per-head position biases, reshaped to ``view`` to meet
    the ``mask``, then softmax, and the product with V after a reshape back."""
    return graph([
        make_node("matmul", "qk", ["q", "k_t"], ["s"]),
        make_node("multiply", "scale", ["s", "c"], ["s2"]),
        make_node("add", "alibi", ["s2", "position"], ["s3"]),
        make_node("reshape", "view", ["s3"], ["s4"], shape=view),
        make_node("add", "mask", ["s4", "mask"], ["s5"]),
        make_node("softmax", "softmax", ["s5"], ["p"], axis=-1),
        make_node("reshape", "view_p", ["p"], ["p2"], shape=(4, 9, 9)),
        make_node("matmul", "pv", ["p2", "v"], ["o"]),
    ], {"q": (4, 9, 8), "k_t": (4, 8, 9), "v": (4, 9, 8), "position": (4, 1, 9), "mask": mask}, ["o"],
        {"c": np.array(0.25, np.float32)})


@pytest.mark.parametrize("view, mask, batch", [
    ((1, 4, 9, 9), (1, 1, 9, 9), (4,)),  # leading 1s added (BLOOM at a batch of 1): no operand is reshaped
    ((2, 2, 9, 9), (2, 1, 9, 9), (2, 2)),  # [batch * heads] viewed as [batch, heads] (BLOOM at a batch of 2)
])
def test_scores_pass_a_reshape_that_regroups_the_batch(view: tuple[int, ...], mask: tuple[int, ...],
                                                       batch: tuple[int, ...]) -> None:
    """The kernel runs with the softmax's batch dimensions: operands read with others are reshaped to them (q, k_t,
    v and the position biases of ``[heads]``), and so is its result where the product had others."""
    g = _bloom_like(view, mask=mask)
    fused = fuse_attention(g, "llvm -num-cores=2")
    ops = [n.op for n in fused.nodes]
    assert ops.count("attention") == 1 and "matmul" not in ops and "softmax" not in ops
    [attention] = [n for n in fused.nodes if n.op == "attention"]
    assert [tuple(fused.type_of(v).shape[:-2]) for v in attention.inputs] == [batch] * 4 + [mask[:2]]
    arrays = [rand(4, 9, 8), rand(4, 8, 9), rand(4, 9, 8), rand(4, 1, 9), rand(*mask)]
    [got] = tg.build_executor(fused).run(arrays)
    [want] = tg.build_executor(g).run(arrays)
    assert got.shape == want.shape == (4, 9, 8)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_a_bias_broadcast_over_part_of_a_regrouped_batch_stays_apart() -> None:
    """Scores of ``[batch, heads]`` plus a bias per head alone (``[1, heads]``), then viewed as ``[batch * heads]``
    for the softmax: no reshape of the bias to ``[batch * heads]`` exists without copying it, so nothing fuses."""
    g = graph([
        make_node("matmul", "qk", ["q", "k_t"], ["s"]),
        make_node("add", "bias", ["s", "position"], ["s2"]),
        make_node("reshape", "view", ["s2"], ["s3"], shape=(4, 9, 9)),
        make_node("softmax", "softmax", ["s3"], ["p"], axis=-1),
        make_node("matmul", "pv", ["p", "v"], ["o"]),
    ], {"q": (2, 2, 9, 8), "k_t": (2, 2, 8, 9), "v": (4, 9, 8), "position": (1, 2, 9, 9)}, ["o"])
    assert fuse_attention(g, "llvm") is g


def _deberta_like(fill: float) -> Graph:
    """DeBERTa's scores: ``q @ (k_t / c)`` of ``[heads, S, S]``, reshaped to ``[1, heads, S, S]``, masked by
    ``where(mask, fill, scores)``, softmax, reshaped back for the product with V, reshaped again and transposed."""
    nodes = [
        make_node("divide", "scale", ["k_t", "c"], ["k2"]),
        make_node("matmul", "qk", ["q", "k2"], ["s"]),
        make_node("reshape", "view", ["s"], ["s2"], shape=(1, 4, 9, 9)),
        make_node("where", "masked_fill", ["mask", "fill", "s2"], ["s3"]),
        make_node("softmax", "softmax", ["s3"], ["p"], axis=-1),
        make_node("reshape", "view_p", ["p"], ["p2"], shape=(4, 9, 9)),
        make_node("matmul", "pv", ["p2", "v"], ["o"]),
        make_node("reshape", "view_o", ["o"], ["o2"], shape=(1, 4, 9, 8)),
        make_node("transpose", "heads", ["o2"], ["y"], perm=(0, 2, 1, 3)),
    ]
    g = Graph("g", ("q", "k_t", "v", "mask"), ("y",), tuple(nodes),
              {"c": np.array(4.0, np.float32), "fill": np.array(fill, np.float32)},
              {"q": TensorType((4, 9, 8), F32), "k_t": TensorType((4, 8, 9), F32), "v": TensorType((4, 9, 8), F32),
               "mask": TensorType((1, 1, 9, 9), "bool")})
    g = infer_types(g)
    verify_graph(g)
    return g


def test_a_where_mask_with_the_lowest_fill_becomes_a_bias() -> None:
    lowest = float(np.finfo(np.float32).min)
    g = _deberta_like(lowest)
    fused = fuse_attention(g, "llvm -num-cores=2")
    assert [n.op for n in fused.nodes] == ["where", "attention"]  # the bias where(mask, fill, 0), then the kernel
    attention = fused.nodes[1]
    assert attention.attr("scale") == pytest.approx(0.25) and tuple(attention.attr("perm")) == (0, 2, 1, 3)
    mask = RNG.random((1, 1, 9, 9)) < 0.3
    mask[..., 0] = False  # every row keeps a key
    arrays = [rand(4, 9, 8), rand(4, 8, 9), rand(4, 9, 8), mask]
    [got] = tg.build_executor(fused).run(arrays)
    [want] = tg.build_executor(g).run(arrays)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    # a fill that a score can outweigh (-1e4) is not a mask: where and add differ there, so it stays apart
    small = _deberta_like(-1e4)
    assert fuse_attention(small, "llvm") is small


def test_a_causal_where_and_a_clamp_fold_into_the_kernel() -> None:
    """GPT-Neo's ``where(causal, scores, lowest)`` then a padding bias, and XGLM's ``maximum(., lowest)`` clamp."""
    lowest = np.array(np.finfo(np.float32).min, np.float32)
    g = graph([
        make_node("matmul", "qk", ["q", "k_t"], ["s"]),
        make_node("where", "causal", ["allowed", "s", "lowest"], ["s2"]),
        make_node("add", "padding", ["s2", "mask"], ["s3"]),
        make_node("maximum", "clamp", ["s3", "lowest"], ["s4"]),
        make_node("softmax", "softmax", ["s4"], ["p"], axis=-1),
        make_node("matmul", "pv", ["p", "v"], ["o"]),
    ], {"q": (1, 3, 7, 8), "k_t": (1, 3, 8, 7), "v": (1, 3, 7, 8), "mask": (1, 1, 1, 7)}, ["o"],
        {"lowest": lowest, "allowed": np.tril(np.ones((7, 7), bool))[None, None]})
    fused = fuse_attention(g, "llvm -num-cores=2")
    assert [n.op for n in fused.nodes] == ["where", "attention"]
    padding = np.where(np.arange(7) < 5, 0.0, lowest).astype(np.float32)[None, None, None]
    arrays = [rand(1, 3, 7, 8), rand(1, 3, 8, 7), rand(1, 3, 7, 8), padding]
    [got] = tg.build_executor(fused).run(arrays)
    [want] = tg.build_executor(g).run(arrays)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_soft_capped_scores_fuse_with_their_cap() -> None:
    """Gemma 2: ``cap * tanh(q @ k_t * c / cap) + mask``, with a cap small enough that tanh bends the scores."""
    g = graph([
        make_node("matmul", "qk", ["q", "k_t"], ["s"]),
        make_node("multiply", "scale", ["s", "c"], ["s2"]),
        make_node("divide", "uncap", ["s2", "cap"], ["s3"]),
        make_node("tanh", "squash", ["s3"], ["s4"]),
        make_node("multiply", "recap", ["s4", "cap"], ["s5"]),
        make_node("add", "mask", ["s5", "mask"], ["s6"]),
        make_node("softmax", "softmax", ["s6"], ["p"], axis=-1),
        make_node("matmul", "pv", ["p", "v"], ["o"]),
    ], {"q": (2, 3, 7, 8), "k_t": (2, 3, 8, 7), "v": (2, 3, 7, 8), "mask": (2, 1, 1, 7)}, ["o"],
        {"c": np.array(0.5, np.float32), "cap": np.array(1.5, np.float32)})
    [node] = fuse_attention(g, "llvm -num-cores=2").nodes
    assert node.op == "attention" and node.attr("softcap") == 1.5 and node.attr("scale") == pytest.approx(0.5)
    arrays = [rand(2, 3, 7, 8) * 2, rand(2, 3, 8, 7) * 2, rand(2, 3, 7, 8), rand(2, 1, 1, 7)]
    [got] = tg.build_executor(fuse_attention(g, "llvm -num-cores=2")).run(arrays)
    [want] = tg.build_executor(g).run(arrays)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def _self_attention_model(batch: int, seq: int, heads: int, head_dim: int) -> onnx.ModelProto:
    """One self-attention block as transformers export BERT's: Q, K, V projections, heads split by Reshape and
    Transpose (K's to [b, h, D, S]), scores divided by sqrt(D), the padding mask added, softmax, the product with V,
    the heads merged back by Transpose and Reshape, the output projection with its bias and the residual."""
    hidden = heads * head_dim
    inits = [numpy_helper.from_array((rand(hidden, hidden) * 0.2), name) for name in ("wq", "wk", "wv", "wo")]
    inits += [numpy_helper.from_array(rand(hidden), name) for name in ("bq", "bk", "bv", "bo")]
    inits += [numpy_helper.from_array(np.array([batch, seq, heads, head_dim], np.int64), "split_shape"),
              numpy_helper.from_array(np.array([batch, seq, hidden], np.int64), "merge_shape"),
              numpy_helper.from_array(np.array(np.sqrt(head_dim), np.float32), "root")]
    nodes = []
    for name in ("q", "k", "v"):
        nodes += [helper.make_node("MatMul", ["x", f"w{name}"], [f"{name}_mm"]),
                  helper.make_node("Add", [f"{name}_mm", f"b{name}"], [f"{name}_proj"]),
                  helper.make_node("Reshape", [f"{name}_proj", "split_shape"], [f"{name}_heads"])]
    nodes += [helper.make_node("Transpose", ["q_heads"], ["q4"], perm=[0, 2, 1, 3]),
              helper.make_node("Transpose", ["k_heads"], ["k4"], perm=[0, 2, 3, 1]),
              helper.make_node("Transpose", ["v_heads"], ["v4"], perm=[0, 2, 1, 3]),
              helper.make_node("MatMul", ["q4", "k4"], ["scores"]),
              helper.make_node("Div", ["scores", "root"], ["scaled"]),
              helper.make_node("Add", ["scaled", "mask"], ["masked"]),
              helper.make_node("Softmax", ["masked"], ["probs"], axis=-1),
              helper.make_node("MatMul", ["probs", "v4"], ["context"]),
              helper.make_node("Transpose", ["context"], ["context_t"], perm=[0, 2, 1, 3]),
              helper.make_node("Reshape", ["context_t", "merge_shape"], ["merged"]),
              helper.make_node("MatMul", ["merged", "wo"], ["out_mm"]),
              helper.make_node("Add", ["out_mm", "bo"], ["out_b"]),
              helper.make_node("Add", ["out_b", "x"], ["y"])]
    graph = helper.make_graph(
        nodes, "self_attention",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, seq, hidden]),
         helper.make_tensor_value_info("mask", TensorProto.FLOAT, [batch, 1, 1, seq])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, seq, hidden])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize(("batch", "seq", "heads", "head_dim"), [(1, 23, 2, 16), (2, 9, 3, 12)])
def test_self_attention_block_matches_onnxruntime(batch: int, seq: int, heads: int, head_dim: int) -> None:
    ort = pytest.importorskip("onnxruntime")
    model = _self_attention_model(batch, seq, heads, head_dim)
    x = rand(batch, seq, heads * head_dim)
    mask = np.where(RNG.random((batch, 1, 1, seq)) < 0.2, -10000.0, 0.0).astype(np.float32)
    passes: dict[str, list[str]] = {}

    def dump(name: str, g: Graph) -> None:
        passes[name] = [n.op for n in g.nodes]

    executor = tg.compile(model.SerializeToString(), "llvm -num-cores=2", dump=dump)
    [got] = executor.run({"x": x, "mask": mask})
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    [want] = session.run(None, {"x": x, "mask": mask})
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert passes["simplify"].count("attention") == 1 and "softmax" not in passes["simplify"]
    # the head transposes and reshapes are read through by the products and the attention: no kernel of their own
    assert len(passes["fuse_ops"]) <= 5, passes["fuse_ops"]
