"""When the default CUDA schedule of a fused group (``dispatch.schedule_cuda``) computes a matrix product or a
convolution with the GEMM tile kernel, and with which tile.

- ``matmul`` / ``batch_matmul`` reading two inputs of the group directly (float32 or float16, either operand
  transposed, float32 result, static shape): with tensor cores when the target's precision asks for them and
  the product has at least 16 rows; in float32 when it has at least 32 rows and columns and the shared-memory
  schedule of ``ops.cuda.matmul`` cannot take it (a transposed operand, a batch, or tiles that do not divide it).
  Fewer rows (matrix-vector products) stay with the other schedules, which spread them over more blocks.
- ``conv2d_nchw`` with one group reading an input (or its padding) and a weight input: with tensor cores when the
  precision asks for them and there are at least 16 output channels.

Each plan carries the default tile of ``gemm_choice`` for the shape; ``None`` leaves the operator to the other
schedules.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcomp.ir.expr import const_int_value
from tcomp.ops.cuda.gemm_choice import (
    ConvTile,
    conv_problem,
    default_conv_tile,
    default_tile,
    matmul_problem,
    precision_for,
)
from tcomp.ops.cuda.gemm_tile import ELEMENT_TYPES, GemmError, GemmTile
from tcomp.ops.utils import OpKind, op_kind
from tcomp.target import Precision, Target
from tcomp.te.tensor import ComputeOp, PlaceholderOp, Tensor

MIN_TENSOR_CORE_ROWS = 16
MIN_FLOAT32_TILE = 32


@dataclass(frozen=True)
class MatmulPlan:
    tile: GemmTile
    precision: Precision


@dataclass(frozen=True)
class ConvPlan:
    conv: ConvTile
    precision: Precision


def _static(tensor: Tensor) -> list[int] | None:
    dims = [const_int_value(d) for d in tensor.shape]
    return None if any(d is None for d in dims) else [int(d) for d in dims]  # type: ignore[arg-type]


def _placeholder(tensor: Tensor) -> bool:
    return isinstance(tensor.op, PlaceholderOp)


def matmul_plan(op: ComputeOp, target: Target | None, shared_schedule_fits: bool) -> MatmulPlan | None:
    """The tile plan of a matmul or batched matmul stage (module docstring); ``shared_schedule_fits``: whether
    the shared-memory schedule of ``ops.cuda.matmul`` could take it."""
    if op_kind(op) not in (OpKind.MATMUL, OpKind.BATCH_MATMUL) or len(op.input_tensors()) != 2:
        return None
    a, b = op.input_tensors()
    out = _static(op.output(0))
    if not (_placeholder(a) and _placeholder(b)) or out is None or op.output(0).dtype != "float32":
        return None
    if a.dtype != b.dtype or a.dtype not in ELEMENT_TYPES:
        return None
    *batch, rows, columns = out
    K = const_int_value(op.reduce_axis[0].dom.extent)
    if K is None:
        return None
    precision = precision_for(a.dtype, target)
    if precision.uses_tensor_cores:
        if rows < MIN_TENSOR_CORE_ROWS:
            return None
    elif rows < MIN_FLOAT32_TILE or columns < MIN_FLOAT32_TILE or shared_schedule_fits:
        return None
    problem = matmul_problem(rows, columns, int(K), a.dtype, precision, bool(op.attrs.get("transpose_a", False)),
                             bool(op.attrs.get("transpose_b", False)))
    count = 1
    for extent in batch:
        count *= extent
    try:
        return MatmulPlan(default_tile(problem, rows, columns, count, target), precision)
    except GemmError:
        return None


def conv_plan(op: ComputeOp, data: Tensor, kernel: Tensor, target: Target | None) -> ConvPlan | None:
    """The tile plan of a ``conv2d_nchw`` stage whose input (or its padding) is ``data`` (module docstring)."""
    if op_kind(op) is not OpKind.CONV2D_NCHW or op.attrs.get("groups", 1) != 1 or not _placeholder(kernel):
        return None
    precision = precision_for(kernel.dtype, target)
    out, padded, weights = _static(op.output(0)), _static(data), _static(kernel)
    if not precision.uses_tensor_cores or out is None or padded is None or weights is None:
        return None
    if kernel.dtype != data.dtype or kernel.dtype not in ELEMENT_TYPES or op.output(0).dtype != "float32":
        return None
    batch, channels, out_h, out_w = out
    if channels < MIN_TENSOR_CORE_ROWS:
        return None
    _, in_channels, height, width = padded  # a padding stage's shape includes the padding
    problem = conv_problem(in_channels, height, width, channels, (weights[2], weights[3]), (out_h, out_w),
                           tuple(op.attrs.get("stride", (1, 1))), tuple(op.attrs.get("dilation", (1, 1))), 8,
                           kernel.dtype, precision)
    try:
        return ConvPlan(default_conv_tile(problem, batch, target), precision)
    except GemmError:
        return None
