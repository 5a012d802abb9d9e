"""Products of 8-bit quantized rows with a constant int8 weight packed for the integer GEMM micro-kernel.

``A`` (uint8, ``[M, K]``) times a weight ``W`` (int8, ``[K, N]``), minus ``A``'s zero point, in int32:

    out[i, j] = sum_k (A[i, k] - a_zero) * W[k, j] = sum_k A[i, k] W[k, j] - a_zero * sum_k W[k, j]

``pack_int8_panels`` stores ``W`` once as ``[ceil(N / nr), depth / 4, nr, 4]``: ``nr``-column panels whose rows
are groups of four steps of K, the layout the micro-kernel reads (four bytes of a row of ``A`` against four of
every column, ``tcomp/codegen/llvm/microkernels.py``); zeros beyond ``K`` and ``N``. The column sums of ``W`` are
folded with it, so the zero point costs one multiply-add per output. ``quantized_matmul`` is the product
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

__all__ = ["GROUP", "pack_int8_panels", "quantized_matmul"]

GROUP = 4  # steps of K per group: the bytes one lane of the micro-kernel multiplies and adds


def pack_int8_panels(weight: np.ndarray, nr: int, depth: int) -> np.ndarray:
    """``weight[K, N]`` (int8) as ``[ceil(N / nr), depth / 4, nr, 4]`` with ``panels[b, g, c, s] = weight[4 g + s,
    b * nr + c]``, zeros beyond ``K`` and ``N`` (``depth >= K``, a multiple of 4)."""
    if weight.ndim != 2 or weight.dtype != np.int8 or nr < 1 or depth < weight.shape[0] or depth % GROUP:
        raise OpError(f"pack_int8_panels: need a 2-D int8 weight, a positive nr and depth >= K in groups of {GROUP}, "
                      f"got {weight.dtype} {weight.shape}, {nr}, {depth}")
    panels = pack_panels(weight, nr, depth)  # [blocks, depth, nr]
    grouped = panels.reshape(panels.shape[0], depth // GROUP, GROUP, nr)
    return np.ascontiguousarray(grouped.transpose(0, 1, 3, 2))


def quantized_matmul(x: Tensor, panels: Tensor, column_sums: Tensor, x_zero: Tensor, columns: int,
                     name: str = "T_quantized_matmul") -> Tensor:
    """``(x - x_zero) @ W`` in int32 for uint8 ``x[M, K]``, ``W`` packed by ``pack_int8_panels`` (``panels``),
    ``column_sums[N]`` its column sums (int32) and ``x_zero`` a scalar int32 tensor; ``columns`` is ``N``."""
    op = "quantized_matmul"
    check_tensor(op, "x", x, 2)
    check_tensor(op, "panels", panels, 4)
    check_tensor(op, "column_sums", column_sums, 1)
    check_tensor(op, "x_zero", x_zero, 0)
    blocks, groups, nr, group = (as_int(d) for d in panels.shape)
    k_extent = as_int(x.shape[1])
    if None in (blocks, groups, nr, group, k_extent) or group != GROUP:
        raise OpError(f"{op}: x{shape_str(x.shape)} and panels{shape_str(panels.shape)} must have constant shapes, "
                      f"the panels groups of {GROUP}")
    if isinstance(columns, bool) or not isinstance(columns, int) or not (blocks - 1) * nr < columns <= blocks * nr:
        raise OpError(f"{op}: {columns!r} columns do not fill {blocks} panels of {nr}")
    if k_extent > groups * GROUP:
        raise OpError(f"{op}: x{shape_str(x.shape)} has more K than panels{shape_str(panels.shape)}")
    if as_int(column_sums.shape[0]) != columns:
        raise OpError(f"{op}: column_sums{shape_str(column_sums.shape)} must have {columns} entries")
    dtypes = (x.dtype, panels.dtype, column_sums.dtype, x_zero.dtype)
    if dtypes != ("uint8", "int8", "int32", "int32"):
        raise OpError(f"{op}: x, panels, column_sums and x_zero must be uint8, int8, int32, int32, got {dtypes}")
    g = te.reduce_axis((0, groups), name="k4")
    s = te.reduce_axis((0, GROUP), name="s")

    def product_body(i: Var, j: Var) -> Expr:
        step = te.min(g * GROUP + s, k_extent - 1)  # steps beyond K meet zeros in the panels
        wide = te.cast(x[i, step], "int32") * te.cast(panels[j // nr, g, j % nr, s], "int32")
        return te.sum(wide, axis=[g, s])

    product = te.compute((x.shape[0], columns), product_body, name=f"{name}.product",
                         attrs={OP_KIND: OpKind.QUANTIZED_MATMUL})
    return te.compute((x.shape[0], columns), lambda i, j: product[i, j] - x_zero[()] * column_sums[j], name=name,
                      tag=Tag.ELEMWISE)
