"""Products of 8-bit quantized rows with a constant int8 weight packed for the integer GEMM micro-kernels.

``A`` (uint8, ``[M, K]``) times a weight ``W`` (int8, ``[K, N]``), minus ``A``'s zero point, in int32:

    out[i, j] = sum_k (A[i, k] - a_zero) * W[k, j] = sum_k A[i, k] W[k, j] - a_zero * sum_k W[k, j]

``pack_quantized_panels`` stores ``W`` once as ``[ceil(N / nr), depth / g, nr, g]``: ``nr``-column panels whose
rows are groups of ``g`` steps of K, the layout the micro-kernels read (``tcomp/codegen/llvm/microkernels.py``):
groups of four bytes (``BYTES``) for VNNI's ``vpdpbusd``, which adds four byte products per int32 lane, or pairs of
int16 (``PAIRS``) for ``pmaddwd``, which adds two; zeros beyond ``K`` and ``N``. The column sums of ``W`` are folded
with it, so the zero point costs one multiply-add per output. ``quantized_matmul`` is the product
(``OpKind.QUANTIZED_MATMUL``) and that correction, an elementwise stage that fuses into what follows (the
conversion to float and the scales of a dynamically quantized model).
"""

from __future__ import annotations

import numpy as np

from tcomp import te
from tcomp.ir.expr import Expr, Var
from tcomp.ops.panels import pack_panels
from tcomp.ops.utils import OP_KIND, OpError, OpKind, Tag, as_int, check_tensor, shape_str
from tcomp.te.tensor import Tensor

__all__ = ["BYTES", "PAIRS", "pack_quantized_panels", "panel_dtype", "quantized_matmul"]

BYTES = 4  # steps of K per group of int8 panels: the bytes one lane of ``vpdpbusd`` multiplies and adds
PAIRS = 2  # ... of int16 panels: the int16 one lane of ``pmaddwd`` multiplies and adds


def panel_dtype(group: int) -> str:
    """The element type of panels in groups of ``group`` steps (``BYTES`` or ``PAIRS``)."""
    if group not in (BYTES, PAIRS):
        raise OpError(f"quantized panels come in groups of {BYTES} (int8) or {PAIRS} (int16), not {group}")
    return "int8" if group == BYTES else "int16"


def pack_quantized_panels(weight: np.ndarray, nr: int, depth: int, group: int) -> np.ndarray:
    """``weight[K, N]`` (int8) as ``[ceil(N / nr), depth / group, nr, group]`` (``panel_dtype(group)``) with
    ``panels[b, g, c, s] = weight[group g + s, b * nr + c]``, zeros beyond ``K`` and ``N`` (``depth >= K``, a
    multiple of ``group``)."""
    dtype = panel_dtype(group)
    if weight.ndim != 2 or weight.dtype != np.int8 or nr < 1 or depth < weight.shape[0] or depth % group:
        raise OpError(f"pack_quantized_panels: need a 2-D int8 weight, a positive nr and depth >= K in groups of "
                      f"{group}, got {weight.dtype} {weight.shape}, {nr}, {depth}")
    panels = pack_panels(weight.astype(dtype), nr, depth)  # [blocks, depth, nr]
    grouped = panels.reshape(panels.shape[0], depth // group, group, nr)
    return np.ascontiguousarray(grouped.transpose(0, 1, 3, 2))


def quantized_matmul(x: Tensor, panels: Tensor, column_sums: Tensor, x_zero: Tensor, columns: int,
                     name: str = "T_quantized_matmul") -> Tensor:
    """``(x - x_zero) @ W`` in int32 for uint8 ``x[M, K]``, ``W`` packed by ``pack_quantized_panels`` (``panels``),
    ``column_sums[N]`` its column sums (int32) and ``x_zero`` a scalar int32 tensor; ``columns`` is ``N``."""
    op = "quantized_matmul"
    check_tensor(op, "x", x, 2)
    check_tensor(op, "panels", panels, 4)
    check_tensor(op, "column_sums", column_sums, 1)
    check_tensor(op, "x_zero", x_zero, 0)
    blocks, groups, nr, group = (as_int(d) for d in panels.shape)
    k_extent = as_int(x.shape[1])
    if None in (blocks, groups, nr, group, k_extent) or group not in (BYTES, PAIRS):
        raise OpError(f"{op}: x{shape_str(x.shape)} and panels{shape_str(panels.shape)} must have constant shapes, "
                      f"the panels groups of {BYTES} or {PAIRS}")
    if isinstance(columns, bool) or not isinstance(columns, int) or not (blocks - 1) * nr < columns <= blocks * nr:
        raise OpError(f"{op}: {columns!r} columns do not fill {blocks} panels of {nr}")
    if k_extent > groups * group:
        raise OpError(f"{op}: x{shape_str(x.shape)} has more K than panels{shape_str(panels.shape)}")
    if as_int(column_sums.shape[0]) != columns:
        raise OpError(f"{op}: column_sums{shape_str(column_sums.shape)} must have {columns} entries")
    dtypes = (x.dtype, panels.dtype, column_sums.dtype, x_zero.dtype)
    if dtypes != ("uint8", panel_dtype(group), "int32", "int32"):
        raise OpError(f"{op}: x, panels in groups of {group}, column_sums and x_zero must be uint8, "
                      f"{panel_dtype(group)}, int32, int32, got {dtypes}")
    g = te.reduce_axis((0, groups), name="kg")
    s = te.reduce_axis((0, group), name="s")

    def product_body(i: Var, j: Var) -> Expr:
        step = te.min(g * group + s, k_extent - 1)  # steps beyond K meet zeros in the panels
        wide = te.cast(x[i, step], "int32") * te.cast(panels[j // nr, g, j % nr, s], "int32")
        return te.sum(wide, axis=[g, s])

    product = te.compute((x.shape[0], columns), product_body, name=f"{name}.product",
                         attrs={OP_KIND: OpKind.QUANTIZED_MATMUL})
    return te.compute((x.shape[0], columns), lambda i, j: product[i, j] - x_zero[()] * column_sums[j], name=name,
                      tag=Tag.ELEMWISE)
