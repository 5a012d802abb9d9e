"""``quantized_matmul(x, panels, column_sums, x_zero)``: uint8 rows times a constant int8 weight packed for the
integer GEMM micro-kernel, minus the rows' zero point, in int32 (``tcomp.ops.quantized``; the CPU graph pass
``quantized_weights`` makes these from the int32 products of ``MatMulInteger`` and ``QLinearMatMul``).

``x`` is ``[..., K]`` uint8, ``panels`` ``[ceil(N / nr), Kp / g, nr, g]`` (int8 in groups of ``g = 4``, int16 in
pairs; ``Kp >= K``), ``column_sums``
``[N]`` int32 and ``x_zero`` a scalar int32; the attribute ``columns`` is ``N``; the result is ``[..., N]`` int32.
"""

from __future__ import annotations

import math

from tcomp import ops
from tcomp.graph.ir import TensorType
from tcomp.graph.op import InferContext, LowerContext, OpPattern, register_op
from tcomp.ops.quantized import BYTES, PAIRS, panel_dtype, quantized_matmul
from tcomp.te.tensor import Tensor


def _infer_quantized_matmul(ctx: InferContext) -> list[TensorType]:
    x, panels, sums, zero = (ctx.type(i) for i in range(4))
    columns = ctx.attr("columns")
    if isinstance(columns, bool) or not isinstance(columns, int):
        raise ctx.error(f"the attribute columns must be an int, got {columns!r}")
    if x.ndim == 0 or panels.ndim != 4 or panels.shape[3] not in (BYTES, PAIRS) or sums.shape != (columns,) or \
            zero.ndim:
        raise ctx.error(f"expects data with a K axis, panels in groups of {BYTES} or {PAIRS}, {columns} column sums "
                        f"and a scalar zero point, got {x}, {panels}, {sums}, {zero}")
    blocks, groups, nr, group = panels.shape
    if (x.dtype, panels.dtype, sums.dtype, zero.dtype) != ("uint8", panel_dtype(group), "int32", "int32"):
        raise ctx.error(f"expects uint8 data, {panel_dtype(group)} panels in groups of {group}, int32 column sums and "
                        f"zero point, got {x}, {panels}, {sums}, {zero}")
    if x.shape[-1] > groups * group or not (blocks - 1) * nr < columns <= blocks * nr:
        raise ctx.error(f"data {x} and {columns} columns do not match the panels {panels}")
    return [TensorType((*x.shape[:-1], columns), "int32")]


def _lower_quantized_matmul(ctx: LowerContext) -> list[Tensor]:
    x, panels, sums, zero = (ctx.tensor(i) for i in range(4))
    shape = ctx.types[0].shape  # type: ignore[union-attr]
    flat = x if len(shape) == 2 else ops.reshape(x, (math.prod(shape[:-1]), shape[-1]), name=f"{ctx.name}_rows")
    result = quantized_matmul(flat, panels, sums, zero, int(ctx.attr("columns")),
                              name=ctx.name if len(shape) == 2 else f"{ctx.name}_mm")
    if len(shape) != 2:
        result = ops.reshape(result, ctx.out_types[0].shape, name=ctx.name)
    return [result]


register_op("quantized_matmul", OpPattern.OUT_ELEMWISE_FUSABLE, _infer_quantized_matmul, _lower_quantized_matmul)
