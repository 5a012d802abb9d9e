"""``resize``: nearest and (multi-)linear resampling of any axes, with ONNX's coordinate transformation modes;
``resize_filtered``: cubic resampling, and linear resampling with antialiasing.

Attributes: ``sizes`` (the output shape), ``scales`` (per axis, the factor the coordinate transformation divides
by), ``mode`` (``nearest`` | ``linear`` | ``cubic``), ``coord`` (``half_pixel``, ``half_pixel_symmetric``,
``pytorch_half_pixel``, ``align_corners``, ``asymmetric``, ``tf_crop_and_resize``), ``nearest_mode``
(``round_prefer_floor``, ``round_prefer_ceil``, ``floor``, ``ceil``), ``roi`` (starts then ends, for
``tf_crop_and_resize``) and ``extrapolation_value``.

For output index ``x`` of an axis with input extent ``n``, output extent ``m`` and scale ``s`` the source
coordinate is, e.g. for ``half_pixel``, ``(x + 0.5) / s - 0.5`` (computed in float64). Nearest rounds it by
``nearest_mode``; linear blends the two neighbours ``floor(c)`` and ``floor(c) + 1`` (each clamped into
``[0, n)``) with weights ``1 - frac`` and ``frac``; with several linear axes the weights multiply. Outside
``tf_crop_and_resize`` such axes are resized one after the other: the last resized axis into a stage of its own
(``OpKind.RESIZE_ROWS``), the others from its rows, so the second pass reads half the neighbours, whole rows at a
time, instead of gathering every neighbour across the rows (21 channels of 14x14 upscaled to 224x224: 1.4 -> 0.22
ms). Under ``tf_crop_and_resize`` a coordinate outside ``[0, n - 1]`` gives ``extrapolation_value``.

``resize_filtered`` (cubic mode, and linear mode with ``antialias``) filters with a kernel ``K``: the taps
``floor(c) + i`` weigh ``K((i - frac) * s)``, where ``K`` is the triangle ``max(0, 1 - |t|)`` (linear) or Keys'
cubic with coefficient ``cubic_coeff_a`` (cubic), and ``s`` is 1, or with ``antialias`` the scale when it is below
1 (the kernel widens to cover every input pixel a downscaled output spans). Taps outside the input read its edge;
with ``exclude_outside`` they weigh 0 instead. With ``antialias`` or ``exclude_outside`` the weights of an output
are divided by their sum. Each axis's weights are a small table (output position x tap) computed once; the output
is a reduction over the taps of every resized axis.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from tcomp import te
from tcomp.graph.ir import TensorType
from tcomp.graph.op import InferContext, LowerContext, OpPattern, register_op
from tcomp.graph.opdefs.common import cubic_far, cubic_near, ints_attr
from tcomp.ir import dtype as dt
from tcomp.ir.expr import Expr, max_expr
from tcomp.ops.utils import OP_KIND, OpKind, clamp_index
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
    if ctx.attr("mode") not in ("nearest", "linear", "cubic"):
        raise ctx.error(f"mode {ctx.attr('mode')!r} is not one of nearest, linear, cubic")
    if ctx.attr("coord") not in COORD_MODES:
        raise ctx.error(f"coordinate transformation mode {ctx.attr('coord')!r} is not supported")
    if ctx.attr("nearest_mode", "round_prefer_floor") not in NEAREST_MODES:
        raise ctx.error(f"nearest mode {ctx.attr('nearest_mode')!r} is not supported")
    if ctx.attr("mode") != "nearest" and not dt.is_float(x.dtype):
        raise ctx.error(f"{ctx.attr('mode')} resize needs a float input, got {x.dtype}")
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
    if linear and not crop and len(resized) > 1:
        # separable: the last resized axis first, into a stage of its own, then the others from its rows
        last = resized[-1]
        shape = tuple(out_shape[d] if d == last else in_shape[d] for d in range(len(in_shape)))

        def along_last(*i: Any) -> Expr:
            return _linear(x, i, _coordinates(ctx, [last], i, in_shape, out_shape), in_shape)

        rows = te.compute(shape, along_last, name=f"{ctx.name}_rows", tag="injective",
                          attrs={OP_KIND: OpKind.RESIZE_ROWS})

        def along_others(*i: Any) -> Expr:
            return _linear(rows, i, _coordinates(ctx, resized[:-1], i, shape, out_shape), shape)

        return [te.compute(out_shape, along_others, name=ctx.name, tag="injective")]
    extrapolation = float(ctx.attr("extrapolation_value", 0.0))

    def body(*i: Any) -> Expr:
        coords = _coordinates(ctx, resized, i, in_shape, out_shape)
        conditions = [te.all(coords[d] >= 0.0, coords[d] <= float(in_shape[d] - 1)) for d in resized] if crop else []
        if not linear or not resized:
            index = [(clamp_index(_nearest(ctx, coords[d]), in_shape[d]) if d in coords else i[d])
                     for d in range(len(in_shape))]
            value = x[tuple(index)]
        else:
            value = _linear(x, i, coords, in_shape)
        if conditions:
            value = te.if_then_else(te.all(*conditions), value, te.const(extrapolation, x.dtype))
        return value

    return [te.compute(out_shape, body, name=ctx.name, tag="injective")]


def _coordinates(ctx: LowerContext, axes: list[int], index: Any, in_shape: Any, out_shape: Any) -> dict[int, Expr]:
    """The source coordinate of output ``index`` along each of ``axes``."""
    return {d: _source_coordinate(ctx, d, index[d], in_shape[d], out_shape[d]) for d in axes}


def _linear(x: Tensor, index: Any, coords: dict[int, Expr], in_shape: Any) -> Expr:
    """``x`` at output ``index`` resized linearly along the axes of ``coords`` (their source coordinates; the other
    axes read as they are): the ``2 ** len(coords)`` neighbours weighed by the products of their axes' weights, in
    float64."""
    lows = {d: te.floor(c) for d, c in coords.items()}
    fracs = {d: coords[d] - lows[d] for d in coords}
    total: Expr | None = None
    for corner in itertools.product((0, 1), repeat=len(coords)):
        weight: Expr | None = None
        source = list(index)
        for d, bit in zip(coords, corner):
            low = te.cast(lows[d], "int32")
            source[d] = clamp_index(low + bit if bit else low, in_shape[d])
            factor = fracs[d] if bit else 1.0 - fracs[d]
            weight = factor if weight is None else weight * factor
        term = te.cast(x[tuple(source)], "float64") * weight
        total = term if total is None else total + term
    assert total is not None
    return te.cast(total, x.dtype)


# ---------------------------------------------------------------------------------------------------------------------
# resize_filtered
def _kernel(ctx: LowerContext, t: Expr) -> Expr:
    """The filter at offset ``t`` (float64): a triangle for linear mode, Keys' cubic for cubic mode."""
    distance = te.abs(t)
    if ctx.attr("mode") == "linear":
        return max_expr(1.0 - distance, te.const(0.0, "float64"))
    a = float(ctx.attr("cubic_coeff_a", -0.75))
    zero = te.const(0.0, "float64")
    return te.if_then_else(distance <= 1.0, cubic_near(distance, a),
                           te.if_then_else(distance < 2.0, cubic_far(distance, a), zero))


def _taps(ctx: LowerContext, axis: int) -> tuple[int, int, float]:
    """The first tap's offset, the number of taps and the kernel's scale on ``axis``."""
    support = 1 if ctx.attr("mode") == "linear" else 2
    scale = min(float(ctx.attr("scales")[axis]), 1.0) if ctx.attr("antialias", False) else 1.0
    start = math.floor(-support / scale) + 1
    return start, 2 - 2 * start, scale


def _coordinate_of(ctx: LowerContext, axis: int, n: int, m: int) -> Any:
    def coordinate(y: Any) -> Expr:
        return _source_coordinate(ctx, axis, y, n, m)

    return coordinate


def _raw_weight(ctx: LowerContext, coordinate: Any, start: int, scale: float, n: int) -> Any:
    """``weight(y, t)``: the kernel's weight of tap ``t`` (offset ``start + t``) for output position ``y``."""
    exclude = bool(ctx.attr("exclude_outside", False))

    def weight(y: Any, t: Any) -> Expr:
        c = coordinate(y)
        low = te.floor(c)
        value = _kernel(ctx, (te.cast(t + start, "float64") - (c - low)) * scale)
        if exclude:
            source = te.cast(low, "int32") + t + start
            value = te.if_then_else(te.all(source >= 0, source < n), value, te.const(0.0, "float64"))
        return value

    return weight


def _normalized(weights: Tensor, count: int, name: str) -> Tensor:
    """``weights[y, t] / sum_t weights[y, t]``."""
    r = te.reduce_axis((0, count), name="rt")
    total = te.compute((weights.shape[0],), lambda y: te.sum(weights[y, r], axis=r), name=f"{name}sum",
                       tag="comm_reduce")
    return te.compute(tuple(weights.shape), lambda y, t: weights[y, t] / total[y], name=f"{name}n", tag="injective")


def _lower_filtered(ctx: LowerContext) -> list[Tensor]:
    x = ctx.tensor(0)
    in_shape = ctx.types[0].shape  # type: ignore[union-attr]
    out_shape = ctx.out_types[0].shape
    crop = ctx.attr("coord") == "tf_crop_and_resize"
    resized = [d for d in range(len(in_shape))
               if crop or in_shape[d] != out_shape[d] or float(ctx.attr("scales")[d]) != 1.0]
    if not resized:  # scales of 1 on every axis (DINOv2's position embeddings interpolated to their own size)
        return [te.compute(out_shape, lambda *i: x[i], name=ctx.name, tag="injective")]
    normalize = bool(ctx.attr("exclude_outside", False)) or bool(ctx.attr("antialias", False))
    tables, coordinates, taps, starts = {}, {}, {}, {}
    for d in resized:
        start, count, scale = _taps(ctx, d)
        starts[d] = start
        coordinates[d] = _coordinate_of(ctx, d, in_shape[d], out_shape[d])
        weights = te.compute((out_shape[d], count), _raw_weight(ctx, coordinates[d], start, scale, in_shape[d]),
                             name=f"{ctx.name}_w{d}", tag="injective")
        tables[d] = _normalized(weights, count, f"{ctx.name}_w{d}") if normalize else weights
        taps[d] = te.reduce_axis((0, count), name=f"rk{d}")

    def body(*i: Any) -> Expr:
        index = list(i)
        weight: Expr | None = None
        for d in resized:
            low = te.cast(te.floor(coordinates[d](i[d])), "int32")
            index[d] = clamp_index(low + taps[d].var + starts[d], in_shape[d])
            factor = tables[d][i[d], taps[d].var]
            weight = factor if weight is None else weight * factor
        assert weight is not None
        return te.sum(te.cast(x[tuple(index)], "float64") * weight, axis=[taps[d] for d in resized])

    total = te.compute(out_shape, body, name=f"{ctx.name}_sum", tag="comm_reduce")
    extrapolation = float(ctx.attr("extrapolation_value", 0.0))

    def finish(*i: Any) -> Expr:
        value = te.cast(total[i], x.dtype)
        if not crop:
            return value
        inside = [te.all(c >= 0.0, c <= float(in_shape[d] - 1)) for d in resized for c in [coordinates[d](i[d])]]
        return te.if_then_else(te.all(*inside), value, te.const(extrapolation, x.dtype))

    return [te.compute(out_shape, finish, name=ctx.name, tag="injective")]


def _infer_resize_direct(ctx: InferContext) -> list[TensorType]:
    if ctx.attr("mode") == "cubic" or ctx.attr("antialias", False):
        raise ctx.error("cubic and antialiased resizing is resize_filtered")
    return _infer_resize(ctx)


def _infer_resize_filtered(ctx: InferContext) -> list[TensorType]:
    if ctx.attr("mode") not in ("linear", "cubic"):
        raise ctx.error(f"resize_filtered is for the linear and cubic modes, got {ctx.attr('mode')!r}")
    return _infer_resize(ctx)


# nearest and linear read at most 2 ** axes input elements per output (injective); the filtered modes are
# reductions over their taps, whose elementwise consumers fuse into them
register_op("resize", OpPattern.INJECTIVE, _infer_resize_direct, _lower_resize)
register_op("resize_filtered", OpPattern.OUT_ELEMWISE_FUSABLE, _infer_resize_filtered, _lower_filtered)
