"""ONNX ``Attention`` (opsets 23 to 25) and ``RotaryEmbedding`` (23), composed from graph operators.

``Attention`` is what the exporters write at opset 23 for scaled dot-product attention. With ``Q`` of shape
``[B, Hq, Sq, D]`` (3-D inputs ``[B, S, H * D]`` are split into ``q_num_heads`` / ``kv_num_heads`` heads first):

    K, V  = concat(past_key, K), concat(past_value, V)          (the present_key / present_value outputs)
    logits = (Q * sqrt(scale)) @ (K * sqrt(scale))^T             (scale defaults to 1 / sqrt(D))
    logits = softcap * tanh(logits / softcap)                    (when softcap > 0)
    P = softmax(logits + bias)                                   (in softmax_precision's type when given)
    Y = P @ V                                                    (a row whose bias is all -inf gives 0)

``bias`` adds the mask (boolean: true attends, false is -inf; float: added; a mask shorter than the keys is padded
with -inf), the causal rule (query ``i`` attends key ``j`` iff ``j <= i + offset``, ``offset`` the past length or,
from 24, ``nonpad_kv_seqlen - Sq`` per batch), the sliding window of 25 (``left_window_size`` /
``right_window_size``) and, from 24, the padding of keys at or beyond ``nonpad_kv_seqlen``. Grouped-query
attention (``Hq`` a multiple of the key heads) repeats each key and value head over its group of query heads.
``qk_matmul_output`` is the raw product (mode 0), after the soft cap (1), with the bias (2) or the probabilities
(3). The masks of static offsets are constants; those of ``nonpad_kv_seqlen`` are computed at run time. Float16
attention is computed in float32 and rounded once (onnx's reference rounds each step: results differ by an ulp).

``RotaryEmbedding`` rotates the first ``rotary_embedding_dim`` features of each head (halves, or even and odd
features when ``interleaved``) by the cached cosines and sines, picked by ``position_ids`` when given.
"""

from __future__ import annotations

import math

import numpy as np
import onnx

from tcomp.graph.frontend.onnx_builder import Builder
from tcomp.graph.frontend.onnx_common import Attrs, converts, optional, reshape, scalar_param
from tcomp.ir import dtype as dt

SOFTMAX_PRECISIONS = {1: "float32", 10: "float16", 11: "float64"}


def _split_heads(b: Builder, x: str, heads: int, what: str) -> str:
    """``[B, S, H * D]`` as ``[B, H, S, D]``."""
    batch, length, hidden = b.type(x).shape
    if heads <= 0 or hidden % heads:
        raise b.error(f"{what} has {hidden} features, not a multiple of its {heads} heads")
    split = reshape(b, x, (batch, length, heads, hidden // heads))
    return b.add1("transpose", [split], perm=(0, 2, 1, 3))


def _additive(b: Builder, allowed: str, dtype: str) -> str:
    """0 where ``allowed``, -inf elsewhere."""
    zero = scalar_param(b, 0.0, dtype, "zero")
    return b.add1("where", [allowed, zero, scalar_param(b, -np.inf, dtype, "neg_inf")])


def _offset_rule(b: Builder, q_len: int, kv_len: int, offset: int | str, left: int, right: int, dtype: str) -> str:
    """The additive bias that lets query ``i`` see key ``j`` iff ``-right <= i + offset - j <= left`` (a bound of -1
    is none): a ``[Sq, Skv]`` constant for an int ``offset``, ``[B, 1, Sq, Skv]`` for a per-batch ``offset``."""
    if isinstance(offset, int):
        diff = np.arange(q_len).reshape(q_len, 1) + offset - np.arange(kv_len).reshape(1, kv_len)
        allowed = np.ones(diff.shape, bool)
        if left >= 0:
            allowed &= diff <= left
        if right >= 0:
            allowed &= -diff <= right
        bias = np.where(allowed, 0.0, -np.inf).astype(dt.to_numpy(dtype))
        return b.param(bias, f"{b.node_name}/mask")
    batch = b.type(offset).shape[0]
    rows = b.param(np.arange(q_len, dtype=np.int64).reshape(1, q_len, 1), "query_positions")
    columns = b.param(np.arange(kv_len, dtype=np.int64).reshape(1, 1, kv_len), "key_positions")
    position = b.add1("add", [rows, reshape(b, offset, (batch, 1, 1))])
    diff = b.add1("subtract", [position, columns])  # [B, Sq, Skv]
    allowed = ""
    for bound, side in ((left, diff), (right, b.add1("negative", [diff]))):
        if bound < 0:
            continue
        within = b.add1("less_equal", [side, b.param(np.array(bound, np.int64), "window")])
        allowed = within if not allowed else b.add1("logical_and", [allowed, within])
    if not allowed:
        return ""
    return reshape(b, _additive(b, allowed, dtype), (batch, 1, q_len, kv_len))


def _combine(b: Builder, bias: str, term: str) -> str:
    if not term:
        return bias
    return term if not bias else b.add1("add", [bias, term])


def _mask_bias(b: Builder, mask: str, kv_len: int, dtype: str, work: str) -> str:
    """The attention mask as an additive bias over all ``kv_len`` keys, in ``work`` (the computation's type)."""
    mask_type = b.type(mask)
    if mask_type.dtype == "bool":
        mask = _additive(b, mask, work)
    elif mask_type.dtype != dtype:
        raise b.error(f"attn_mask must be bool or {dtype} (the type of Q), got {mask_type.dtype}")
    elif work != dtype:
        mask = b.add1("cast", [mask], dtype=work)
    short = kv_len - mask_type.shape[-1]
    if short < 0:
        raise b.error(f"attn_mask covers {mask_type.shape[-1]} keys, more than the {kv_len} keys")
    if short > 0:
        pads = [0] * (2 * mask_type.ndim)
        pads[-1] = short
        mask = b.add1("pad", [mask], pads=tuple(pads), mode="constant", value=-np.inf)
    return mask


def _repeat_heads(b: Builder, x: str, groups: int) -> str:
    """``[B, H, S, D]`` with each head repeated ``groups`` times in a row: ``[B, H * groups, S, D]``."""
    if groups == 1:
        return x
    batch, heads, length, size = b.type(x).shape
    spread = b.add1("broadcast_to", [reshape(b, x, (batch, heads, 1, length, size))],
                    shape=(batch, heads, groups, length, size))
    return reshape(b, spread, (batch, heads * groups, length, size))


def _attributes(b: Builder, a: Attrs, v: int) -> tuple[int, int, int]:
    mode = a.int("qk_matmul_output_mode", 0)
    if mode not in (0, 1, 2, 3):
        raise b.error(f"qk_matmul_output_mode={mode} is not 0, 1, 2 or 3")
    left = a.int("left_window_size", -1) if v >= 25 else -1
    right = a.int("right_window_size", -1) if v >= 25 else -1
    if left < -1 or right < -1:
        raise b.error(f"window sizes must be -1 or nonnegative, got left {left} and right {right}")
    return mode, left, right


@converts("Attention", (23, 24, 25))
def _attention(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    q, k, val = ins[0], ins[1], ins[2]
    mask, past_key, past_value = optional(ins, 3), optional(ins, 4), optional(ins, 5)
    nonpad = optional(ins, 6) if v >= 24 else ""
    mode, left, right = _attributes(b, a, v)
    if bool(past_key) != bool(past_value):
        raise b.error("past_key and past_value must be given together")
    if nonpad and past_key:
        raise b.error("nonpad_kv_seqlen cannot be combined with past_key and past_value")
    dtype = b.type(q).dtype
    if not dt.is_float(dtype):
        raise b.error(f"Q must be a float tensor, got {dtype}")
    rank = b.type(q).ndim
    if rank != b.type(k).ndim or rank != b.type(val).ndim or rank not in (3, 4):
        raise b.error(f"Q, K and V must all be 3-D or all 4-D, got {b.type(q)}, {b.type(k)}, {b.type(val)}")
    if rank == 3:
        q_heads, kv_heads = a.int("q_num_heads", 0), a.int("kv_num_heads", 0)
        q, k, val = (_split_heads(b, q, q_heads, "Q"), _split_heads(b, k, kv_heads, "K"),
                     _split_heads(b, val, kv_heads, "V"))
    elif v >= 25 and (a.has("q_num_heads") or a.has("kv_num_heads")):
        raise b.error("q_num_heads and kv_num_heads must not be given with 4-D inputs")
    batch, q_heads, q_len, head_size = b.type(q).shape
    if past_key:
        k = b.add1("concat", [past_key, k], axis=2)
        val = b.add1("concat", [past_value, val], axis=2)
    present_key, present_value = k, val
    kv_heads, kv_len = b.type(k).shape[1], b.type(k).shape[2]
    if b.type(val).shape[1] != kv_heads or b.type(val).shape[2] != kv_len or q_heads % kv_heads:
        raise b.error(f"{q_heads} query heads cannot attend K {b.type(k)} and V {b.type(val)}")

    work = "float32" if dtype == "float16" else dtype  # float16 attention is computed in float32
    if work != dtype:
        q, k, val = (b.add1("cast", [x], dtype=work) for x in (q, k, val))
    scale = a.float("scale", 1.0 / math.sqrt(head_size))
    root = scalar_param(b, math.sqrt(scale), work, "scale_root")
    keys = b.add1("transpose", [b.add1("multiply", [_repeat_heads(b, k, q_heads // kv_heads), root])],
                  perm=(0, 1, 3, 2))
    raw = b.add1("matmul", [b.add1("multiply", [q, root]), keys])
    logits = raw
    softcap = a.float("softcap", 0.0)
    if softcap > 0:
        cap = scalar_param(b, softcap, work, "softcap")
        logits = b.add1("multiply", [b.add1("tanh", [b.add1("divide", [raw, cap])]), cap])

    bias = ""
    if mask:
        bias = _mask_bias(b, mask, kv_len, dtype, work)
    offset: int | str = b.type(past_key).shape[2] if past_key else 0
    if nonpad:
        if b.type(nonpad).shape != (batch,):
            raise b.error(f"nonpad_kv_seqlen must have shape ({batch},), got {b.type(nonpad).shape}")
        offset = b.add1("subtract", [nonpad, b.param(np.array(q_len, np.int64), "query_length")])
    if a.int("is_causal", 0):
        bias = _combine(b, bias, _offset_rule(b, q_len, kv_len, offset, -1, 0, work))
    if left >= 0 or right >= 0:
        bias = _combine(b, bias, _offset_rule(b, q_len, kv_len, offset, left, right, work))
    if nonpad:
        columns = b.param(np.arange(kv_len, dtype=np.int64).reshape(1, kv_len), "key_positions")
        kept = b.add1("less", [columns, reshape(b, nonpad, (batch, 1))])
        bias = _combine(b, bias, reshape(b, _additive(b, kept, work), (batch, 1, 1, kv_len)))
    biased = b.add1("add", [logits, bias]) if bias else logits

    precision = a.int("softmax_precision", 0)
    if precision and precision not in SOFTMAX_PRECISIONS:
        raise b.error(f"softmax_precision={precision} is not supported (1, 10 and 11 are)")
    wide = SOFTMAX_PRECISIONS.get(precision, work)
    probabilities = b.add1("softmax", [b.add1("cast", [biased], dtype=wide) if wide != work else biased], axis=-1)
    if bias:  # a row no key may be attended from gives zeros, decided on the bias
        peak = b.add1("max", [bias], axes=(b.type(bias).ndim - 1,), keepdims=True)
        closed = b.add1("equal", [peak, scalar_param(b, -np.inf, work, "neg_inf")])
        probabilities = b.add1("where", [closed, scalar_param(b, 0.0, wide, "zero"), probabilities])
    if wide != work:
        probabilities = b.add1("cast", [probabilities], dtype=work)
    product = b.add1("matmul", [probabilities, _repeat_heads(b, val, q_heads // kv_heads)])
    if rank == 3:
        product = b.add1("transpose", [product], perm=(0, 2, 1, 3))
        product = reshape(b, product, (batch, q_len, q_heads * b.type(val).shape[3]))
    y = b.add1("cast" if work != dtype else "identity", [product], output=node.output[0],
               **({"dtype": dtype} if work != dtype else {}))
    qk_output = (raw, logits, biased, probabilities)[mode]
    if work != dtype and len(node.output) > 3 and node.output[3]:
        qk_output = b.add1("cast", [qk_output], dtype=dtype)
    return [y, present_key, present_value, qk_output]


@converts("RotaryEmbedding", (23,))
def _rotary_embedding(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    x, cos, sin, positions = ins[0], ins[1], ins[2], optional(ins, 3)
    t = b.type(x)
    if t.ndim == 4:  # [B, H, S, D]
        heads = t.shape[1]
        data = b.add1("transpose", [x], perm=(0, 2, 1, 3))
    elif t.ndim == 3:  # [B, S, H * D]
        heads = a.int("num_heads", 0)
        if heads <= 0 or t.shape[2] % heads:
            raise b.error(f"num_heads={heads} must be positive and divide the {t.shape[2]} features")
        data = reshape(b, x, (t.shape[0], t.shape[1], heads, t.shape[2] // heads))
    else:
        raise b.error(f"the input must be 3-D or 4-D, got {t}")
    batch, length, _, size = b.type(data).shape
    rotated = a.int("rotary_embedding_dim", 0) or size
    if rotated % 2 or rotated > size:
        raise b.error(f"rotary_embedding_dim={rotated} must be even and at most the head size {size}")
    half = rotated // 2
    if positions:
        cos, sin = b.add1("take", [cos, positions], axis=0), b.add1("take", [sin, positions], axis=0)
    for cache in (cos, sin):
        if b.type(cache).shape != (batch, length, half):
            raise b.error(f"the cos and sin caches give {b.type(cache).shape}, not ({batch}, {length}, {half})")
    cos, sin = reshape(b, cos, (batch, length, 1, half)), reshape(b, sin, (batch, length, 1, half))
    if a.int("interleaved", 0):
        x1 = b.add1("strided_slice", [data], begin=(0,), end=(rotated,), strides=(2,), axes=(3,))
        x2 = b.add1("strided_slice", [data], begin=(1,), end=(rotated,), strides=(2,), axes=(3,))
    else:
        x1 = b.add1("strided_slice", [data], begin=(0,), end=(half,), strides=(1,), axes=(3,))
        x2 = b.add1("strided_slice", [data], begin=(half,), end=(rotated,), strides=(1,), axes=(3,))
    real = b.add1("subtract", [b.add1("multiply", [cos, x1]), b.add1("multiply", [sin, x2])])
    imag = b.add1("add", [b.add1("multiply", [sin, x1]), b.add1("multiply", [cos, x2])])
    if a.int("interleaved", 0):
        pairs = b.add1("concat", [reshape(b, real, (batch, length, heads, half, 1)),
                                  reshape(b, imag, (batch, length, heads, half, 1))], axis=4)
        turned = reshape(b, pairs, (batch, length, heads, rotated))
    else:
        turned = b.add1("concat", [real, imag], axis=3)
    if rotated < size:
        rest = b.add1("strided_slice", [data], begin=(rotated,), end=(size,), strides=(1,), axes=(3,))
        turned = b.add1("concat", [turned, rest], axis=3)
    if t.ndim == 4:
        return [b.add1("transpose", [turned], output=node.output[0], perm=(0, 2, 1, 3))]
    return [b.add1("reshape", [turned], output=node.output[0], shape=t.shape)]
