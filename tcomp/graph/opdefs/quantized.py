"""``quantized_matmul(x, panels, column_sums, x_zero)``: uint8 rows times a constant int8 weight packed for the
integer GEMM micro-kernel, minus the rows' zero point, in int32 (``tcomp.ops.quantized``; the CPU graph pass
``quantized_weights`` makes these from the int32 products of ``MatMulInteger`` and ``QLinearMatMul``).

``x`` is ``[..., K]`` uint8, ``panels`` ``[ceil(N / nr), Kp / g, nr, g]`` (int8 in groups of ``g = 4``, int16 in
pairs; ``Kp >= K``), ``column_sums``
``[N]`` int32 and ``x_zero`` a scalar int32; the attribute ``columns`` is ``N``; the result is ``[..., N]`` int32.

``quantized_conv2d(x, panels, column_sums, x_zero)``: the convolution of uint8 ``[N, C, H, W]`` data with such a
weight (``conv_weight_matrix`` of ``[O, C, KH, KW]``, so ``K = KH * KW * C``), attributes ``columns`` (``O``),
``kernel``, ``strides``, ``pads`` (top, left, bottom, right) and ``dilations``; the result ``[N, O, OH, OW]`` int32.
``im2col(x, pad_value)``: the windows of ``[N, H, W, C]`` data (``[N, C, H, W]`` with ``channels_last=False``) as
rows ``[N * OH * OW, K]`` (the same window attributes; ``pad_value`` a scalar int32, needed where the window pads),
which ``alter_layout`` feeds ``quantized_matmul`` on channels-last rows (and with a 1x1 window makes NCHW data rows).
"""

from __future__ import annotations

import math

from tcomp import ops
from tcomp.graph.ir import GraphError, TensorType
from tcomp.graph.op import InferContext, LowerContext, OpPattern, register_op
from tcomp.ops.quantized import BYTES, PAIRS, Window, im2col, panel_dtype, quantized_conv2d, quantized_matmul
from tcomp.ops.utils import OpError
from tcomp.te.tensor import Tensor


def _product_operands(ctx: InferContext, depth: int) -> int:
    """Check the uint8 data, panels, column sums and zero point of a product over ``depth`` steps; its columns."""
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
    if depth > groups * group or not (blocks - 1) * nr < columns <= blocks * nr:
        raise ctx.error(f"data {x} and {columns} columns do not match the panels {panels}")
    return columns


def _window(ctx: InferContext | LowerContext) -> Window:
    node = ctx.node
    try:
        return Window.of(node.op, node.attr("kernel"), node.attr("strides"), node.attr("pads"), node.attr("dilations"))
    except OpError as error:
        raise GraphError(f"node {node.name} ({node.op}): {error}") from None


def _output_plane(ctx: InferContext, window: Window, height: int, width: int) -> tuple[int, int]:
    plane = window.output(height, width)
    if min(plane) <= 0:
        raise ctx.error(f"the window {window} does not fit a {height} x {width} input")
    return plane


def _infer_quantized_matmul(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    columns = _product_operands(ctx, x.shape[-1] if x.ndim else 0)
    return [TensorType((*x.shape[:-1], columns), "int32")]


def _infer_quantized_conv2d(ctx: InferContext) -> list[TensorType]:
    x, window = ctx.type(0), _window(ctx)
    if x.ndim != 4:
        raise ctx.error(f"expects [N, C, H, W] data, got {x}")
    n, c, h, w = x.shape
    columns = _product_operands(ctx, window.kernel[0] * window.kernel[1] * c)
    return [TensorType((n, columns, *_output_plane(ctx, window, h, w)), "int32")]


def _infer_im2col(ctx: InferContext) -> list[TensorType]:
    x, window = ctx.type(0), _window(ctx)
    pad = ctx.type(1) if ctx.has_input(1) else None
    if x.ndim != 4 or (pad is not None and (pad.dtype, pad.ndim) != ("int32", 0)):
        raise ctx.error(f"expects 4-D data and a scalar int32 pad value, got {x} and {pad}")
    if pad is None and any(window.pads):
        raise ctx.error(f"a window with pads {window.pads} needs a pad value")
    if ctx.attr("channels_last", True):
        n, h, w, c = x.shape
    else:
        n, c, h, w = x.shape
    oh, ow = _output_plane(ctx, window, h, w)
    return [TensorType((n * oh * ow, window.kernel[0] * window.kernel[1] * c), x.dtype)]


def _lower_quantized_matmul(ctx: LowerContext) -> list[Tensor]:
    x, panels, sums, zero = (ctx.tensor(i) for i in range(4))
    shape = ctx.types[0].shape  # type: ignore[union-attr]
    flat = x if len(shape) == 2 else ops.reshape(x, (math.prod(shape[:-1]), shape[-1]), name=f"{ctx.name}_rows")
    result = quantized_matmul(flat, panels, sums, zero, int(ctx.attr("columns")),
                              name=ctx.name if len(shape) == 2 else f"{ctx.name}_mm")
    if len(shape) != 2:
        result = ops.reshape(result, ctx.out_types[0].shape, name=ctx.name)
    return [result]


def _lower_quantized_conv2d(ctx: LowerContext) -> list[Tensor]:
    x, panels, sums, zero = (ctx.tensor(i) for i in range(4))
    return [quantized_conv2d(x, panels, sums, zero, _window(ctx), int(ctx.attr("columns")), name=ctx.name)]


def _lower_im2col(ctx: LowerContext) -> list[Tensor]:
    pad = ctx.tensor(1) if ctx.has_input(1) else None
    return [im2col(ctx.tensor(0), pad, _window(ctx), bool(ctx.attr("channels_last", True)), name=ctx.name)]


register_op("quantized_matmul", OpPattern.OUT_ELEMWISE_FUSABLE, _infer_quantized_matmul, _lower_quantized_matmul)
register_op("quantized_conv2d", OpPattern.OUT_ELEMWISE_FUSABLE, _infer_quantized_conv2d, _lower_quantized_conv2d)
register_op("im2col", OpPattern.INJECTIVE, _infer_im2col, _lower_im2col)
