"""Skinny matrix products (a few rows times a constant weight) over a weight packed in column blocks.

A weight ``W[K, N]`` is stored as ``packed[N / NB, K, NB]`` (``pack_column_blocks``; the last block padded with
zeros): ``packed[b, k, c] = W[k, b * NB + c]``. A block is one contiguous run of memory that a core streams from
start to end, and each ``k`` of it holds ``NB`` consecutive outputs' weights, so the product of a row of ``x`` with
it is ``NB``-wide vector multiply-adds of a broadcast ``x[i, k]``: no horizontal sums, any ``K``, and every weight
read once for all the rows. ``column_block`` picks ``NB`` for the number of rows, so that the accumulators of all rows
stay in registers.

A weight quantized by blocks along K (4-bit weights of language models) stays integer: ``packed`` holds its values
less their zero points (int8), ``scales[N / NB, ceil(K / B), NB]`` each block's scale packed the same way, and each
weight is dequantized as it is read, ``packed[b, k, c] * scales[b, k // B, c]``: a quarter of float32's bytes to
stream, where a product of a few rows is bound by them.
"""

from __future__ import annotations

import numpy as np

from tcomp import te
from tcomp.ir.expr import Expr, Var, cast
from tcomp.ops.utils import OP_KIND, OpError, OpKind, Tag, as_int, check_tensor, same_dim, shape_str
from tcomp.te.tensor import Tensor

__all__ = ["column_block", "pack_column_blocks", "packed_matvec"]

# the most rows a packed product takes: beyond, the weight is read often enough for the GEMM's tiles to pay
PACKED_MAX_ROWS = 16


def column_block(rows: int) -> int:
    """The block width ``NB`` for a product of ``rows`` rows: 64 columns for one or two rows, fewer for more, so
    ``rows x NB`` accumulators fit the registers of a 16-register (AVX2) or 32-register (AVX-512) machine once the
    schedule groups the rows (``tcomp.ops.cpu.matvec``)."""
    if rows <= 2:
        return 64
    if rows <= 4:
        return 32
    return 16


def pack_column_blocks(weight: np.ndarray, block: int) -> np.ndarray:
    """``weight[K, N]`` as ``[ceil(N / block), K, block]`` (see the module docstring), zero-padded."""
    if weight.ndim != 2 or block < 1:
        raise OpError(f"pack_column_blocks: need a 2-D weight and a positive block, got {weight.shape} and {block}")
    k, n = weight.shape
    blocks = -(-n // block)
    padded = np.zeros((k, blocks * block), weight.dtype)
    padded[:, :n] = weight
    return np.ascontiguousarray(padded.reshape(k, blocks, block).transpose(1, 0, 2))


def packed_matvec(x: Tensor, packed: Tensor, columns: int, out_dtype: str | None = None,
                  name: str = "T_packed_matvec", scales: Tensor | None = None, block: int = 0) -> Tensor:
    """``out[i, j] = sum_k x[i, k] * packed[j // NB, k, j % NB]`` for ``x[M, K]``, ``packed[ceil(N / NB), K, NB]``
    and ``j < columns`` (``N``): ``x @ W`` for the weight ``W[K, N]`` that ``pack_column_blocks`` packed. The
    product is computed over whole blocks (stage ``<name>_blocks``, the padding's columns included) and, when
    ``N`` is not a multiple of ``NB``, its first ``N`` columns copied out: the schedule computes the blocks inside
    the loop that writes the output, so no loop over K tests a bound. With ``scales`` (``[ceil(N / NB), ceil(K /
    block), NB]``), ``packed`` holds integers, each dequantized as it is read: ``packed[b, k, c] * scales[b, k //
    block, c]``."""
    op = "packed_matvec"
    check_tensor(op, "x", x, 2)
    check_tensor(op, "packed", packed, 3)
    blocks, nb = as_int(packed.shape[0]), as_int(packed.shape[2])
    if nb is None or blocks is None:
        raise OpError(f"{op}: the packed weight's shape {shape_str(packed.shape)} must be constant")
    if isinstance(columns, bool) or not isinstance(columns, int) or not (blocks - 1) * nb < columns <= blocks * nb:
        raise OpError(f"{op}: {columns!r} columns do not fill {blocks} blocks of {nb}")
    if not same_dim(x.shape[1], packed.shape[1]):
        raise OpError(f"{op}: x{shape_str(x.shape)} and packed{shape_str(packed.shape)} differ in K")
    acc = out_dtype or x.dtype
    k = te.reduce_axis((0, x.shape[1]), name="k")
    if scales is not None:
        check_tensor(op, "scales", scales, 3)
        depth = as_int(packed.shape[1])
        if (isinstance(block, bool) or not isinstance(block, int) or block < 1 or depth is None
                or tuple(as_int(d) for d in scales.shape) != (blocks, -(-depth // block), nb)):
            raise OpError(f"{op}: scales{shape_str(scales.shape)} are not those of blocks of {block!r} in "
                          f"packed{shape_str(packed.shape)}")

    def weight(j: Expr) -> Expr:
        value = cast(packed[j // nb, k, j % nb], acc)
        return value if scales is None else value * cast(scales[j // nb, k // block, j % nb], acc)

    def body(i: Var, j: Var) -> Expr:
        return te.sum(cast(x[i, k], acc) * weight(j), axis=k)

    padded = blocks * nb
    attrs = {OP_KIND: OpKind.PACKED_MATVEC, "column_block": nb}
    product = te.compute((x.shape[0], padded), body, name=name if padded == columns else f"{name}_blocks",
                         tag=Tag.OUT_ELEMWISE_FUSABLE, attrs=attrs)
    if padded == columns:
        return product
    return te.compute((x.shape[0], columns), lambda i, j: product[i, j], name=name, tag=Tag.INJECTIVE)
