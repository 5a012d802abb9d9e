"""``Attention`` and ``RotaryEmbedding`` (``frontend/onnx_attention.py``) against onnxruntime (opsets 23 and 24) and
onnx's reference evaluator (opset 25's sliding windows, which onnxruntime lacks) on random inputs of odd sizes:
3-D and 4-D inputs, grouped-query heads, causal masks with more keys than queries, boolean, float and short masks,
past keys and values, soft caps, scales, every ``qk_matmul_output_mode``, float16, ``nonpad_kv_seqlen``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator

import tcomp.graph as tg
from tests.graph.ort_reference import assert_same, check_node

RNG = np.random.default_rng(23)


def _qkv(batch: int, q_heads: int, kv_heads: int, q_len: int, kv_len: int, size: int, v_size: int | None = None,
         dtype: type = np.float32) -> dict[str, np.ndarray]:
    return {"Q": RNG.standard_normal((batch, q_heads, q_len, size)).astype(dtype),
            "K": RNG.standard_normal((batch, kv_heads, kv_len, size)).astype(dtype),
            "V": RNG.standard_normal((batch, kv_heads, kv_len, v_size or size)).astype(dtype)}


def _model(op: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str], attrs: Mapping[str, Any], opset: int,
           names: Sequence[str] | None = None) -> onnx.ModelProto:
    """One ``op`` node; ``names``: its inputs in order ("" for one left out; default: those of ``inputs``)."""
    graph_inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
                    for n, a in inputs.items()]
    node = helper.make_node(op, list(names or inputs), list(outputs), name="node", **attrs)
    graph = helper.make_graph([node], "attention", graph_inputs, [onnx.ValueInfoProto(name=n) for n in outputs if n])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _check(inputs: Mapping[str, np.ndarray], outputs: Sequence[str], attrs: Mapping[str, Any], opset: int,
           reference: str = "ort", op: str = "Attention", tolerance: float = 1e-5) -> None:
    model = _model(op, inputs, outputs, attrs, opset)
    feeds = dict(inputs)
    if reference == "ort":
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        want = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]).run(
            None, feeds)
    else:
        want = ReferenceEvaluator(model).run(None, feeds)
    got = tg.compile(model).run(feeds)
    assert got is not None and len(got) == len(want)
    for position, (g, w) in enumerate(zip(got, want)):
        assert_same(g, w, tolerance, tolerance, f"{op} {dict(attrs)}, output {position}")


@pytest.mark.parametrize("causal", [0, 1])
@pytest.mark.parametrize(("q_heads", "kv_heads", "q_len", "kv_len", "size", "v_size"),
                         [(3, 3, 5, 5, 8, 8), (6, 2, 3, 7, 12, 5), (4, 1, 1, 9, 16, 16), (2, 2, 7, 3, 4, 6)])
def test_attention_4d(causal: int, q_heads: int, kv_heads: int, q_len: int, kv_len: int, size: int,
                      v_size: int) -> None:
    inputs = _qkv(2, q_heads, kv_heads, q_len, kv_len, size, v_size)
    check_node("Attention", inputs, {"is_causal": causal}, opset=23)


@pytest.mark.parametrize(("q_heads", "kv_heads", "attrs"), [(3, 3, {}), (6, 3, {"is_causal": 1}),
                                                           (4, 2, {"scale": 0.3, "softcap": 2.5})])
def test_attention_3d(q_heads: int, kv_heads: int, attrs: dict[str, Any]) -> None:
    inputs = {"Q": RNG.standard_normal((2, 5, q_heads * 6)).astype(np.float32),
              "K": RNG.standard_normal((2, 7, kv_heads * 6)).astype(np.float32),
              "V": RNG.standard_normal((2, 7, kv_heads * 10)).astype(np.float32)}
    check_node("Attention", inputs, {"q_num_heads": q_heads, "kv_num_heads": kv_heads} | attrs, opset=23)


@pytest.mark.parametrize(("mask_shape", "dtype", "causal"), [((5, 7), np.float32, 0), ((2, 1, 5, 7), bool, 0),
                                                             ((3, 5, 7), np.float32, 1), ((5, 4), bool, 1),
                                                             ((2, 3, 5, 6), np.float32, 0), ((7,), bool, 0)])
def test_attention_masks(mask_shape: tuple[int, ...], dtype: type, causal: int) -> None:
    inputs = _qkv(2, 3, 3, 5, 7, 8)
    if dtype is bool:
        mask = RNG.random(mask_shape) < 0.7
    else:
        mask = RNG.standard_normal(mask_shape).astype(np.float32)
        mask[..., 0, :] = -np.inf  # a fully masked row gives zeros
    short = mask_shape[-1] < 7 or len(mask_shape) < 2  # padded to the keys, or 1-D: onnxruntime refuses them
    _check(inputs | {"attn_mask": mask}, ["Y"], {"is_causal": causal}, 23, reference="onnx" if short else "ort")


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_attention_past_present_and_qk_output(mode: int) -> None:
    inputs = _qkv(2, 4, 2, 3, 5, 8, 6)
    past = {"past_key": RNG.standard_normal((2, 2, 4, 8)).astype(np.float32),
            "past_value": RNG.standard_normal((2, 2, 4, 6)).astype(np.float32)}
    mask = RNG.standard_normal((3, 9)).astype(np.float32)
    attrs = {"qk_matmul_output_mode": mode, "is_causal": 1} | ({"softcap": 1.5} if mode else {})
    reference = "onnx" if mode == 2 else "ort"  # onnxruntime's biased logits have the lowest float, not -inf
    _check(inputs | {"attn_mask": mask} | past, ["Y", "present_key", "present_value", "qk"], attrs, 23, reference)
    _check(inputs, ["Y", "", "", "qk"], {"qk_matmul_output_mode": mode}, 23)


def test_attention_float16_and_softmax_precision() -> None:
    inputs = _qkv(2, 4, 2, 5, 6, 8, dtype=np.float16)
    _check(inputs, ["Y"], {"is_causal": 1}, 23, tolerance=2e-3)
    _check(inputs, ["Y", "", "", "qk"], {"softmax_precision": 1, "qk_matmul_output_mode": 3}, 24, tolerance=2e-3)


@pytest.mark.parametrize(("q_len", "lengths", "causal"), [(3, [7, 4], 1), (1, [5, 2], 1), (3, [6, 3], 0)])
def test_attention_nonpad_kv_seqlen(q_len: int, lengths: list[int], causal: int) -> None:
    feeds = _qkv(2, 4, 2, q_len, 7, 8) | {"attn_mask": RNG.random((q_len, 7)) < 0.8,
                                          "nonpad_kv_seqlen": np.array(lengths, np.int64)}
    names = ["Q", "K", "V", "attn_mask", "", "", "nonpad_kv_seqlen"]  # no past_key, past_value
    model = _model("Attention", feeds, ["Y"], {"is_causal": causal}, 24, names=names)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    [want] = ort.InferenceSession(model.SerializeToString(), options,
                                  providers=["CPUExecutionProvider"]).run(None, feeds)
    executor = tg.compile(model)
    [got] = executor.run(feeds)
    assert_same(got, want, 1e-5, 1e-5, "nonpad_kv_seqlen")
    feeds["nonpad_kv_seqlen"] = np.array(lengths[::-1], np.int64)  # read at run time: the same executor
    [got] = executor.run(feeds)
    [want] = ReferenceEvaluator(model).run(None, feeds)
    assert_same(got, want, 1e-5, 1e-5, "nonpad_kv_seqlen, reversed")


@pytest.mark.parametrize(("left", "right", "causal"), [(2, -1, 1), (1, 2, 0), (-1, 0, 0), (0, 3, 0)])
def test_attention_sliding_window(left: int, right: int, causal: int) -> None:
    inputs = _qkv(2, 2, 2, 5, 7, 8)
    attrs = {"left_window_size": left, "right_window_size": right, "is_causal": causal}
    _check(inputs, ["Y"], attrs, 25, reference="onnx")
    past = {"attn_mask": RNG.standard_normal((5, 10)).astype(np.float32),
            "past_key": RNG.standard_normal((2, 2, 3, 8)).astype(np.float32),
            "past_value": RNG.standard_normal((2, 2, 3, 8)).astype(np.float32)}
    _check(inputs | past, ["Y", "present_key", "present_value"], attrs, 25, reference="onnx")


@pytest.mark.parametrize(("attrs", "inputs", "message"), [
    ({}, _qkv(1, 3, 2, 4, 4, 8), "3 query heads cannot attend"),
    ({"q_num_heads": 4, "kv_num_heads": 2}, {"Q": np.zeros((1, 3, 10), np.float32),
                                             "K": np.zeros((1, 3, 8), np.float32),
                                             "V": np.zeros((1, 3, 8), np.float32)}, "not a multiple of its 4 heads"),
    ({"softmax_precision": 16}, _qkv(1, 2, 2, 3, 3, 4), "softmax_precision=16 is not supported"),
    ({}, _qkv(1, 2, 2, 3, 3, 4) | {"attn_mask": np.zeros((3, 5), np.float32)}, "more than the 3 keys"),
])
def test_attention_refuses_what_it_cannot_do(attrs: dict[str, Any], inputs: dict[str, np.ndarray],
                                             message: str) -> None:
    with pytest.raises(tg.GraphError, match=message):
        tg.compile(_model("Attention", inputs, ["Y"], attrs, 24)).run(inputs)


@pytest.mark.parametrize(("interleaved", "rotary_dim"), [(0, 0), (1, 0), (0, 6), (1, 4)])
def test_rotary_embedding(interleaved: int, rotary_dim: int) -> None:
    x = RNG.standard_normal((2, 3, 5, 10)).astype(np.float32)
    half = (rotary_dim or 10) // 2
    cos, sin = RNG.standard_normal((2, 11, half)).astype(np.float32)
    positions = RNG.integers(0, 11, (2, 5)).astype(np.int64)
    attrs = {"interleaved": interleaved, "rotary_embedding_dim": rotary_dim}
    check_node("RotaryEmbedding", {"x": x, "cos": cos, "sin": sin, "p": positions}, attrs, opset=23)
    cos3, sin3 = RNG.standard_normal((2, 2, 5, half)).astype(np.float32)
    three_d = x.transpose(0, 2, 1, 3).reshape(2, 5, 30)
    check_node("RotaryEmbedding", {"x": three_d, "cos": cos3, "sin": sin3}, attrs | {"num_heads": 3}, opset=23)


def test_rotary_embedding_refuses_a_cache_of_the_wrong_size() -> None:
    x = np.zeros((1, 2, 3, 8), np.float32)
    inputs = {"x": x, "cos": np.zeros((1, 3, 3), np.float32), "sin": np.zeros((1, 3, 3), np.float32)}
    with pytest.raises(tg.GraphError, match="caches give"):
        tg.compile(_model("RotaryEmbedding", inputs, ["y"], {}, 23)).run(inputs)
