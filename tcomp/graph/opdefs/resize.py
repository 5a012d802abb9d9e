"""``resize``: nearest and (multi-)linear resampling of any axes, with ONNX's coordinate transformation modes.

Attributes: ``sizes`` (the output shape), ``scales`` (per axis, the factor the coordinate transformation divides
by), ``mode`` (``nearest`` | ``linear``), ``coord`` (``half_pixel``, ``half_pixel_symmetric``,
``pytorch_half_pixel``, ``align_corners``, ``asymmetric``, ``tf_crop_and_resize``), ``nearest_mode``
(``round_prefer_floor``, ``round_prefer_ceil``, ``floor``, ``ceil``), ``roi`` (starts then ends, for
``tf_crop_and_resize``) and ``extrapolation_value``.

For output index ``x`` of an axis with input extent ``n``, output extent ``m`` and scale ``s`` the source
coordinate is, e.g. for ``half_pixel``, ``(x + 0.5) / s - 0.5`` (computed in float64). Nearest rounds it by
``nearest_mode``; linear blends the two neighbours ``floor(c)`` and ``floor(c) + 1`` (each clamped into
``[0, n)``) with weights ``1 - frac`` and ``frac``; with several linear axes the weights multiply. Under
``tf_crop_and_resize`` a coordinate outside ``[0, n - 1]`` gives ``extrapolation_value``.
"""

from __future__ import annotations

import itertools
from typing import Any

from tcomp import te
from tcomp.graph.ir import TensorType
from tcomp.graph.op import InferContext, LowerContext, OpPattern, register_op
from tcomp.graph.opdefs.common import ints_attr
from tcomp.ir import dtype as dt
from tcomp.ir.expr import Expr, max_expr, min_expr
from tcomp.te.tensor import Tensor

COORD_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
               "tf_crop_and_resize")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def _infer_resize(ctx: InferContext) -> list[TensorType]:
    x = ctx.type(0)
    sizes = ints_attr(ctx, "sizes", x.ndim)
    scales = ctx.attr("scales")
    if not isinstance(scales, tuple) or len(scales) != x.ndim or any(float(s) <= 0 for s in scales):
        raise ctx.error(f"scales {scales!r} must be {x.ndim} positive numbers")
    if min(sizes, default=1) <= 0:
        raise ctx.error(f"output sizes {sizes} must be positive")
    if ctx.attr("mode") not in ("nearest", "linear"):
        raise ctx.error(f"mode {ctx.attr('mode')!r} is not supported (nearest, linear)")
    if ctx.attr("coord") not in COORD_MODES:
        raise ctx.error(f"coordinate transformation mode {ctx.attr('coord')!r} is not supported")
    if ctx.attr("nearest_mode", "round_prefer_floor") not in NEAREST_MODES:
        raise ctx.error(f"nearest mode {ctx.attr('nearest_mode')!r} is not supported")
    if ctx.attr("mode") == "linear" and not dt.is_float(x.dtype):
        raise ctx.error(f"linear resize needs a float input, got {x.dtype}")
    return [TensorType(sizes, x.dtype)]


def _source_coordinate(ctx: LowerContext, axis: int, index: Expr, n: int, m: int) -> Expr:
    scale = float(ctx.attr("scales")[axis])
    mode = ctx.attr("coord")
    xf = te.cast(index, "float64")
    if mode == "half_pixel":
        return (xf + 0.5) / scale - 0.5
    if mode == "half_pixel_symmetric":
        adjustment = m / (n * scale)
        offset = n / 2 * (1 - adjustment)
        return (xf + 0.5) / scale - 0.5 + offset
    if mode == "pytorch_half_pixel":
        return (xf + 0.5) / scale - 0.5 if m > 1 else te.const(0.0, "float64")
    width = scale * n  # the output width before rounding, as ONNX's reference uses it
    if mode == "align_corners":
        return xf * ((n - 1) / (width - 1)) if width != 1 else te.const(0.0, "float64")
    if mode == "asymmetric":
        return xf / scale
    roi = ctx.attr("roi")
    ndim = len(ctx.attr("sizes"))
    start, end = float(roi[axis]), float(roi[axis + ndim])
    if width != 1:
        return xf * ((end - start) * (n - 1) / (width - 1)) + start * (n - 1)
    return te.const((end - start) * (n - 1) / 2 + start * (n - 1), "float64")


def _clamp(index: Expr, n: int) -> Expr:
    return max_expr(min_expr(index, n - 1), 0)


def _nearest(ctx: LowerContext, coordinate: Expr) -> Expr:
    mode = ctx.attr("nearest_mode", "round_prefer_floor")
    if mode == "round_prefer_floor":
        rounded = te.ceil(coordinate - 0.5)
    elif mode == "round_prefer_ceil":
        rounded = te.floor(coordinate + 0.5)
    elif mode == "floor":
        rounded = te.floor(coordinate)
    else:
        rounded = te.ceil(coordinate)
    return te.cast(rounded, "int32")


def _lower_resize(ctx: LowerContext) -> list[Tensor]:
    x = ctx.tensor(0)
    in_shape = ctx.types[0].shape  # type: ignore[union-attr]
    out_shape = ctx.out_types[0].shape
    scales = ctx.attr("scales")
    coord_mode = ctx.attr("coord")
    crop = coord_mode == "tf_crop_and_resize"
    resized = [d for d in range(len(in_shape))
               if crop or in_shape[d] != out_shape[d] or float(scales[d]) != 1.0]
    linear = ctx.attr("mode") == "linear"
    extrapolation = float(ctx.attr("extrapolation_value", 0.0))

    def body(*i: Any) -> Expr:
        coords = {d: _source_coordinate(ctx, d, i[d], in_shape[d], out_shape[d]) for d in resized}
        conditions = [te.all(coords[d] >= 0.0, coords[d] <= float(in_shape[d] - 1)) for d in resized] if crop else []
        if not linear or not resized:
            index = [(_clamp(_nearest(ctx, coords[d]), in_shape[d]) if d in coords else i[d])
                     for d in range(len(in_shape))]
            value = x[tuple(index)]
        else:
            lows = {d: te.floor(coords[d]) for d in resized}
            fracs = {d: coords[d] - lows[d] for d in resized}
            total: Expr | None = None
            for corner in itertools.product((0, 1), repeat=len(resized)):
                weight: Expr | None = None
                index = list(i)
                for d, bit in zip(resized, corner):
                    low = te.cast(lows[d], "int32")
                    index[d] = _clamp(low + bit if bit else low, in_shape[d])
                    factor = fracs[d] if bit else 1.0 - fracs[d]
                    weight = factor if weight is None else weight * factor
                term = te.cast(x[tuple(index)], "float64") * weight
                total = term if total is None else total + term
            assert total is not None
            value = te.cast(total, x.dtype)
        if conditions:
            value = te.if_then_else(te.all(*conditions), value, te.const(extrapolation, x.dtype))
        return value

    return [te.compute(out_shape, body, name=ctx.name, tag="injective")]


register_op("resize", OpPattern.INJECTIVE, _infer_resize, _lower_resize)
