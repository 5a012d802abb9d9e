"""``grid_sample(x, grid)``: ONNX GridSample (PyTorch's ``grid_sample``), the input read at the points of a grid.

``x`` is ``[N, C, *S]`` with ``r = len(S)`` spatial axes (2 or 3), ``grid`` is ``[N, *O, r]``: for each output
point, its coordinates normalized to ``[-1, 1]``, the last spatial axis first (``x``, then ``y``, then ``z``). The
output is ``[N, C, *O]``. Attributes: ``mode`` (``linear`` | ``nearest`` | ``cubic``), ``padding`` (``zeros`` |
``border`` | ``reflection``) and ``align_corners``.

For an axis of extent ``d``, a normalized ``g`` maps to ``(g + 1) / 2 * (d - 1)`` with ``align_corners`` (-1 and 1
are the centres of the corner elements) and to ``((g + 1) * d - 1) / 2`` without (-1 and 1 are their outer
edges), computed in the grid's precision (float32 for float16 and float32 grids) as PyTorch and onnxruntime
compute it. ``nearest`` rounds half to even first. A coordinate outside the borders (``0`` and
``d - 1`` with ``align_corners``, ``-0.5`` and ``d - 0.5`` without) is clamped into ``[0, d - 1]`` with ``border``
padding, and reflected at the borders until inside with ``reflection``. Then ``linear`` blends the elements
``floor(c)`` and ``floor(c) + 1`` of each axis with weights ``1 - f`` and ``f`` (``f = c - floor(c)``), ``cubic``
the four from ``floor(c) - 1`` with Keys' cubic (coefficient -0.75), ``nearest`` reads the element at ``c``. An
element outside the input reads 0 with ``zeros`` padding, its clamped index with ``border``, its reflected index
with ``reflection``. This is the onnx package's reference and PyTorch's rule, but for ``cubic``: there PyTorch
and onnxruntime pad each of the 16 taps and not the coordinate, where the reference clamps or reflects the
coordinate first (the results differ with ``border`` padding); tcomp follows PyTorch and onnxruntime.

A coordinate that is NaN reads as one far outside the input; every index the kernel loads is clamped into the
input, so no grid value makes it read outside ``x``.
"""

from __future__ import annotations

import itertools
from typing import Any

from tcomp import te
from tcomp.graph.ir import TensorType
from tcomp.graph.op import InferContext, LowerContext, OpPattern, register_op
from tcomp.graph.opdefs.common import cubic_far, cubic_near
from tcomp.ir import dtype as dt
from tcomp.ir.expr import Expr, max_expr, min_expr
from tcomp.ops.utils import clamp_index
from tcomp.te.tensor import Tensor

MODES = ("linear", "nearest", "cubic")
PADDINGS = ("zeros", "border", "reflection")
CUBIC_A = -0.75
OUTSIDE = 4.0  # with zeros padding, a coordinate further than this outside an axis reads as any further one


def _infer(ctx: InferContext) -> list[TensorType]:
    x, grid = ctx.type(0), ctx.type(1)
    rank = x.ndim - 2
    if rank not in (2, 3):
        raise ctx.error(f"the input must have 2 or 3 spatial axes (4-D or 5-D), got shape {list(x.shape)}")
    if grid.ndim != x.ndim or grid.shape[0] != x.shape[0] or grid.shape[-1] != rank:
        raise ctx.error(f"the grid must be [N, *output, {rank}] with N = {x.shape[0]}, got {list(grid.shape)}")
    if not dt.is_float(x.dtype) or not dt.is_float(grid.dtype):
        raise ctx.error(f"input and grid must be floats, got {x.dtype} and {grid.dtype}")
    if ctx.attr("mode") not in MODES:
        raise ctx.error(f"mode {ctx.attr('mode')!r} is not one of {', '.join(MODES)}")
    if ctx.attr("mode") == "cubic" and rank != 2:
        raise ctx.error("cubic sampling is defined for 2 spatial axes (4-D input)")
    if ctx.attr("padding") not in PADDINGS:
        raise ctx.error(f"padding mode {ctx.attr('padding')!r} is not one of {', '.join(PADDINGS)}")
    return [TensorType((x.shape[0], x.shape[1], *grid.shape[1:-1]), x.dtype)]


def _borders(extent: int, align_corners: bool) -> tuple[float, float]:
    return (0.0, extent - 1.0) if align_corners else (-0.5, extent - 0.5)


def _compute_dtype(ctx: LowerContext) -> str:
    return "float64" if ctx.types[1].dtype == "float64" else "float32"  # type: ignore[union-attr]


def _periodic(c: Expr, low: float, period: float) -> Expr:
    """``(c - low) mod period``, with ``c - low`` first clamped to a whole number of periods near 2^20 (float32 has
    no fractions left there), which also keeps infinities out."""
    limit = period * float(max(1, int(2**20 / period)))
    u = _clamp(c - low, -limit, limit)
    return u - te.floor(u / period) * period


def _reflect(c: Expr, low: float, high: float) -> Expr:
    """``c`` reflected at ``low`` and ``high`` until inside: with ``s = high - low``, the triangle wave
    ``low + s - |((c - low) mod 2s) - s|`` (the reference's rule; ``c`` appears once, so nested uses do not
    multiply the expression)."""
    span = high - low
    if span <= 0:
        return te.const(low, c.dtype)
    return low + span - te.abs(_periodic(c, low, 2 * span) - span)


def _coordinate(ctx: LowerContext, g: Expr, extent: int) -> Expr:
    """The sampling coordinate of one axis for normalized ``g`` (of the compute dtype), padding applied to it."""
    align = bool(ctx.attr("align_corners", False))
    ct = g.dtype
    c = (g + 1.0) / 2.0 * float(extent - 1) if align else ((g + 1.0) * float(extent) - 1.0) / 2.0
    c = te.if_then_else(c != c, te.const(-OUTSIDE, ct), c)  # NaN: far outside
    if ctx.attr("mode") == "nearest":
        c = te.round(c)
    low, high = _borders(extent, align)
    padding = ctx.attr("padding")
    if ctx.attr("mode") == "cubic":  # padding applies to each tap, not to the coordinate
        if padding != "reflection":
            return _clamp(c, -OUTSIDE, extent - 1 + OUTSIDE)  # further out reads the same (zeros, or the edge)
        if high <= low:
            return te.const(low, ct)
        return low + _periodic(c, low, 2 * (high - low))  # whole periods leave every tap's reflection as it is
    if padding == "zeros":  # further out reads zeros all the same
        return _clamp(c, -OUTSIDE, extent - 1 + OUTSIDE)
    if padding == "border":
        return te.if_then_else(te.all(c >= low, c <= high), c, _clamp(c, 0.0, extent - 1.0))
    return _clamp(_reflect(c, low, high), low, high)  # rounding may leave it an ulp outside


def _clamp(c: Expr, low: float, high: float) -> Expr:
    return max_expr(min_expr(c, te.const(high, c.dtype)), te.const(low, c.dtype))


def _tap(ctx: LowerContext, index: Expr, extent: int) -> tuple[Expr, Expr | None]:
    """The index an element ``index`` of an axis reads (inside the input), and with ``zeros`` padding the
    condition that it is inside (else None: it always reads)."""
    padding = ctx.attr("padding")
    if padding == "zeros":
        return clamp_index(index, extent), te.all(index >= 0, index < extent)
    if padding == "reflection":
        low, high = _borders(extent, bool(ctx.attr("align_corners", False)))
        reflected = te.cast(_reflect(te.cast(index, "float32"), low, high), "int32")  # truncated, as the reference
        return clamp_index(reflected, extent), None
    return clamp_index(index, extent), None


def _cubic_weights(f: Expr) -> list[Expr]:
    """Keys' cubic weights of the taps at offsets -1, 0, 1, 2 from ``floor(c)``, ``f = c - floor(c)``."""
    return [cubic_far(f + 1.0, CUBIC_A), cubic_near(f, CUBIC_A), cubic_near(1.0 - f, CUBIC_A),
            cubic_far(2.0 - f, CUBIC_A)]


def _lower(ctx: LowerContext) -> list[Tensor]:
    x, grid = ctx.tensor(0), ctx.tensor(1)
    spatial = ctx.types[0].shape[2:]  # type: ignore[union-attr]
    rank = len(spatial)
    mode = ctx.attr("mode")
    ct = _compute_dtype(ctx)

    def body(*i: Any) -> Expr:
        n, channel, point = i[0], i[1], i[2:]
        coords = [_coordinate(ctx, te.cast(grid[(n, *point, rank - 1 - axis)], ct), spatial[axis])
                  for axis in range(rank)]
        if mode == "nearest":
            taps = [[(te.cast(c, "int32"), te.const(1.0, ct))] for c in coords]
        else:
            taps = []
            for c in coords:
                low = te.floor(c)
                f = c - low
                first = te.cast(low, "int32")
                if mode == "linear":
                    taps.append([(first, 1.0 - f), (first + 1, f)])
                else:
                    taps.append([(first + k - 1, w) for k, w in enumerate(_cubic_weights(f))])
        total: Expr | None = None
        for corner in itertools.product(*taps):
            index: list[Expr] = []
            inside: list[Expr] = []
            weight: Expr | None = None
            for axis, (position, factor) in enumerate(corner):
                read, condition = _tap(ctx, position, spatial[axis])
                index.append(read)
                if condition is not None:
                    inside.append(condition)
                weight = factor if weight is None else weight * factor
            value = te.cast(x[(n, channel, *index)], ct)
            if inside:
                value = te.if_then_else(te.all(*inside), value, te.const(0.0, ct))
            term = value if mode == "nearest" else value * weight
            total = term if total is None else total + term
        assert total is not None
        return te.cast(total, x.dtype)

    return [te.compute(ctx.out_types[0].shape, body, name=ctx.name, tag="injective")]


# every output reads a few input elements at points the grid gives (as a gather does)
register_op("grid_sample", OpPattern.INJECTIVE, _infer, _lower)
