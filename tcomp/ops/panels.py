"""Matrix products whose constant B is stored in the GEMM's column panels, packed once at compile time.

The packed GEMM (``tcomp/ops/cpu/packed_matmul.py``) copies B into ``nr``-column panels, ``packed[j // nr, k,
j % nr]``, on every call. For a weight, a constant, ``pack_panels`` does that copy once: ``W[K, N]`` becomes
``panels[ceil(N / nr), Kp, nr]``, zero-padded in both ``N`` and ``K`` (``Kp`` is ``K`` rounded up to the GEMM's
``kc``-deep slices), and ``panel_matmul(x, panels, columns)`` is ``x @ W`` reading it. The CPU schedule hands the
panels to the micro-kernel as they are; other schedules read it as any compute.

With bfloat16 products (``Precision.BF16`` on a CPU), ``pack_grouped_panels(W, nr, Kp, PAIRS, ml_dtypes.bfloat16)``
stores ``W`` rounded to bfloat16 as ``[ceil(N / nr), Kp / 2, nr, 2]``: each panel row holds two steps of K per
column, the layout ``vdpbf16ps`` reads. ``panel_matmul`` of such panels rounds ``x`` to bfloat16 too and sums the
products in float32.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tcomp import te
from tcomp.ir.expr import Expr, Var
from tcomp.ops.utils import OP_KIND, OpError, OpKind, Tag, as_int, check_tensor, shape_str
from tcomp.te.tensor import Tensor

__all__ = ["PAIRS", "PANELS", "pack_grouped_panels", "pack_panels", "panel_matmul"]

PANELS = "panels"  # the attribute that marks a product reading B from its panels
# steps of K per row of bfloat16 panels (the pair one float32 lane of ``vdpbf16ps`` multiplies and adds) and of
# int16 panels (``tcomp.ops.quantized``: ``pmaddwd``'s pair)
PAIRS = 2


def pack_panels(weight: np.ndarray, nr: int, depth: int) -> np.ndarray:
    """``weight[K, N]`` as ``[ceil(N / nr), depth, nr]`` with ``panels[b, k, c] = weight[k, b * nr + c]`` and zeros
    beyond ``K`` and ``N`` (``depth >= K``)."""
    if weight.ndim != 2 or nr < 1 or depth < weight.shape[0]:
        raise OpError(f"pack_panels: need a 2-D weight, a positive nr and depth >= K, got {weight.shape}, {nr}, "
                      f"{depth}")
    k, n = weight.shape
    blocks = -(-n // nr)
    padded = np.zeros((depth, blocks * nr), weight.dtype)
    padded[:k, :n] = weight
    return np.ascontiguousarray(padded.reshape(depth, blocks, nr).transpose(1, 0, 2))


def pack_grouped_panels(weight: np.ndarray, nr: int, depth: int, group: int, dtype: Any) -> np.ndarray:
    """``weight[K, N]`` converted to ``dtype`` as ``[ceil(N / nr), depth / group, nr, group]`` with
    ``panels[b, g, c, s] = weight[group g + s, b * nr + c]``, zeros beyond ``K`` and ``N`` (``depth >= K``, a
    multiple of ``group``)."""
    if depth % group:
        raise OpError(f"pack_grouped_panels: depth {depth} is not a multiple of the group {group}")
    panels = pack_panels(weight.astype(dtype), nr, depth)  # [blocks, depth, nr]
    grouped = panels.reshape(panels.shape[0], depth // group, group, nr)
    return np.ascontiguousarray(grouped.transpose(0, 1, 3, 2))


def panel_matmul(x: Tensor, panels: Tensor, columns: int, name: str = "T_panel_matmul") -> Tensor:
    """``out[i, j] = sum_{k < K} x[i, k] * panels[j // nr, k, j % nr]`` for ``x[M, K]``, ``panels[ceil(N / nr),
    Kp, nr]`` (``Kp >= K``) and ``j < columns`` (``N``): ``x @ W`` for the weight that ``pack_panels`` packed. With
    bfloat16 panels in pairs (``[ceil(N / nr), Kp / 2, nr, 2]``, ``pack_grouped_panels``) and float32 ``x``, the sum
    of ``float32(bfloat16(x[i, k])) * float32(panels[j // nr, k // 2, j % nr, k % 2])``. A matrix product
    (``OpKind.MATMUL``) with the attribute ``panels`` set."""
    op = "panel_matmul"
    check_tensor(op, "x", x, 2)
    pairs = len(panels.shape) == 4
    check_tensor(op, "panels", panels, 4 if pairs else 3)
    blocks, depth, nr = (as_int(d) for d in panels.shape[:3])
    if pairs:
        depth = None if depth is None or as_int(panels.shape[3]) != PAIRS else depth * PAIRS
    k_extent = as_int(x.shape[1])
    if blocks is None or depth is None or nr is None or k_extent is None:
        raise OpError(f"{op}: x{shape_str(x.shape)} and panels{shape_str(panels.shape)} must have constant shapes"
                      + (f", pairs of steps in the last axis ({PAIRS})" if pairs else ""))
    if isinstance(columns, bool) or not isinstance(columns, int) or not (blocks - 1) * nr < columns <= blocks * nr:
        raise OpError(f"{op}: {columns!r} columns do not fill {blocks} panels of {nr}")
    if k_extent > depth:
        raise OpError(f"{op}: x{shape_str(x.shape)} has more K than panels{shape_str(panels.shape)}")
    if (x.dtype, panels.dtype) != (("float32", "bfloat16") if pairs else (panels.dtype, panels.dtype)):
        raise OpError(f"{op}: x is {x.dtype} and panels {panels.dtype}"
                      + ("; panels in pairs are bfloat16, for float32 x" if pairs else ""))
    k = te.reduce_axis((0, k_extent), name="k")

    def body(i: Var, j: Var) -> Expr:
        if pairs:
            rounded = te.cast(te.cast(x[i, k], "bfloat16"), "float32")
            return te.sum(rounded * te.cast(panels[j // nr, k // PAIRS, j % nr, k % PAIRS], "float32"), axis=k)
        return te.sum(x[i, k] * panels[j // nr, k, j % nr], axis=k)

    return te.compute((x.shape[0], columns), body, name=name, tag=Tag.OUT_ELEMWISE_FUSABLE,
                      attrs={OP_KIND: OpKind.MATMUL, PANELS: True})
