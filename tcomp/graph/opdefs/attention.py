"""``attention(q, k_t, v, *biases)``: ``softmax(q @ k_t * scale + sum(biases)) @ v`` as one kernel (CPU targets).

Inputs ``q[..., Sq, D]``, ``k_t[..., D, Skv]``, ``v[..., Skv, Dv]``; each bias broadcasts to ``[..., Sq, Skv]``
(masks, position biases); the batch dimensions broadcast. Attributes: ``scale`` (float), ``perm`` (the result's
axes permuted, the last one kept last; empty: none) and ``tiles`` ``(mr, nr, rows, lanes)`` (the kernel's micro
tiles and row blocks, chosen for the target by the ``fuse_attention`` pass that makes the node). The result is
``[..., Sq, Dv]`` permuted by ``perm``. See ``tcomp/ops/cpu/attention.py``.
"""

from __future__ import annotations

import numpy as np

from tcomp.graph.ir import TensorType
from tcomp.graph.op import InferContext, LowerContext, OpPattern, register_op
from tcomp.ops.cpu.attention import AttentionTiles, attention
from tcomp.te.tensor import Tensor


def _infer_attention(ctx: InferContext) -> list[TensorType]:
    if len(ctx.types) < 3:
        raise ctx.error("takes q, k_t, v and optional biases")
    q, k_t, v = ctx.type(0), ctx.type(1), ctx.type(2)
    biases = [ctx.type(i) for i in range(3, len(ctx.types))]
    for t in (q, k_t, v, *biases):
        if t.dtype != "float32":
            raise ctx.error(f"inputs must be float32, got {t}")
        if t.ndim < 2:
            raise ctx.error(f"inputs must have at least 2 dimensions, got {t}")
    sq, d = q.shape[-2:]
    if k_t.shape[-2] != d or v.shape[-2] != k_t.shape[-1]:
        raise ctx.error(f"q {q.shape}, k_t {k_t.shape} and v {v.shape} do not chain")
    try:
        batch = np.broadcast_shapes(q.shape[:-2], k_t.shape[:-2], v.shape[:-2], *[b.shape[:-2] for b in biases])
        for b in biases:
            np.broadcast_shapes(b.shape[-2:], (sq, k_t.shape[-1]))
    except ValueError:
        raise ctx.error(f"shapes q {q.shape}, k_t {k_t.shape}, v {v.shape}, biases {[b.shape for b in biases]} "
                        "do not broadcast") from None
    natural = (*(int(x) for x in batch), sq, v.shape[-1])
    perm = tuple(ctx.attr("perm", ()) or range(len(natural)))
    if sorted(perm) != list(range(len(natural))) or perm[-1] != len(natural) - 1:
        raise ctx.error(f"perm {perm} must permute {len(natural)} axes and keep the last one last")
    tiles = tuple(ctx.attr("tiles", ()))
    if len(tiles) != 4 or not all(isinstance(x, int) and x > 0 for x in tiles):
        raise ctx.error(f"tiles must be (mr, nr, rows, lanes), got {tiles}")
    softcap = ctx.attr("softcap", 0.0)
    if not isinstance(softcap, (int, float)) or not 0.0 <= softcap < float("inf"):
        raise ctx.error(f"softcap must be a finite number at least 0, got {softcap!r}")
    return [TensorType(tuple(natural[p] for p in perm), "float32")]


def _lower_attention(ctx: LowerContext) -> list[Tensor]:
    q, k_t, v = ctx.tensor(0), ctx.tensor(1), ctx.tensor(2)
    biases = [ctx.tensor(i) for i in range(3, len(ctx.tensors))]
    mr, nr, rows, lanes = (int(x) for x in ctx.attr("tiles"))
    perm = tuple(ctx.attr("perm", ())) or None
    return [attention(q, k_t, v, AttentionTiles(mr, nr, rows, lanes), biases, float(ctx.attr("scale", 1.0)), perm,
                      name=ctx.name, softcap=float(ctx.attr("softcap", 0.0)))]


register_op("attention", OpPattern.OPAQUE, _infer_attention, _lower_attention, hints=("tiles",))
