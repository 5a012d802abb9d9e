"""Matrix products whose constant B is stored in the GEMM's column panels, packed once at compile time.

The packed GEMM (``tcomp/ops/cpu/packed_matmul.py``) copies B into ``nr``-column panels, ``packed[j // nr, k,
j % nr]``, on every call. For a weight, a constant, ``pack_panels`` does that copy once: ``W[K, N]`` becomes
``panels[ceil(N / nr), Kp, nr]``, zero-padded in both ``N`` and ``K`` (``Kp`` is ``K`` rounded up to the GEMM's
``kc``-deep slices), and ``panel_matmul(x, panels, columns)`` is ``x @ W`` reading it. The CPU schedule hands the
panels to the micro-kernel as they are; other schedules read it as any compute.
"""

from __future__ import annotations

import numpy as np

from tcomp import te
from tcomp.ir.expr import Expr, Var
from tcomp.ops.utils import OP_KIND, OpError, OpKind, Tag, as_int, check_tensor, shape_str
from tcomp.te.tensor import Tensor

__all__ = ["PANELS", "pack_panels", "panel_matmul"]

PANELS = "panels"  # the attribute that marks a product reading B from its panels


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


def panel_matmul(x: Tensor, panels: Tensor, columns: int, name: str = "T_panel_matmul") -> Tensor:
    """``out[i, j] = sum_{k < K} x[i, k] * panels[j // nr, k, j % nr]`` for ``x[M, K]``, ``panels[ceil(N / nr),
    Kp, nr]`` (``Kp >= K``) and ``j < columns`` (``N``): ``x @ W`` for the weight that ``pack_panels`` packed. A
    matrix product (``OpKind.MATMUL``) with the attribute ``panels`` set."""
    op = "panel_matmul"
    check_tensor(op, "x", x, 2)
    check_tensor(op, "panels", panels, 3)
    blocks, depth, nr = (as_int(d) for d in panels.shape)
    k_extent = as_int(x.shape[1])
    if blocks is None or depth is None or nr is None or k_extent is None:
        raise OpError(f"{op}: x{shape_str(x.shape)} and panels{shape_str(panels.shape)} must have constant shapes")
    if isinstance(columns, bool) or not isinstance(columns, int) or not (blocks - 1) * nr < columns <= blocks * nr:
        raise OpError(f"{op}: {columns!r} columns do not fill {blocks} panels of {nr}")
    if k_extent > depth:
        raise OpError(f"{op}: x{shape_str(x.shape)} has more K than panels{shape_str(panels.shape)}")
    if x.dtype != panels.dtype:
        raise OpError(f"{op}: x is {x.dtype} and panels {panels.dtype}")
    k = te.reduce_axis((0, k_extent), name="k")

    def body(i: Var, j: Var) -> Expr:
        return te.sum(x[i, k] * panels[j // nr, k, j % nr], axis=k)

    return te.compute((x.shape[0], columns), body, name=name, tag=Tag.OUT_ELEMWISE_FUSABLE,
                      attrs={OP_KIND: OpKind.MATMUL, PANELS: True})
