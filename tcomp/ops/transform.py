"""Layout transforms (injective operators): transpose, reshape, flatten, concatenate, split, strided_slice,
expand_dims, squeeze.

Every output element is one input element; the index maps are stated in each docstring. Reshape maps through the
row-major flat index with ``floordiv`` / ``floormod``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tcomp import te
from tcomp.arith import declared_bounds, simplify
from tcomp.ir.expr import Expr, IterVar, Var, const, convert, floordiv, floormod
from tcomp.ops.utils import (
    OpError,
    Tag,
    as_int,
    check_tensor,
    clamp_index,
    fold,
    normalize_axes,
    normalize_axis,
    same_dim,
    shape_product,
    shape_str,
)
from tcomp.te.tensor import Tensor

__all__ = [
    "concatenate", "expand_dims", "flatten", "reshape", "split", "squeeze", "strided_slice", "transpose",
]


def transpose(x: Tensor, axes: Sequence[int] | None = None, name: str = "T_transpose") -> Tensor:
    """``out[i_0, ..., i_{n-1}] = x[j]`` with ``j[axes[d]] = i_d``; ``out.shape[d] = x.shape[axes[d]]``.
    ``axes`` defaults to the reversed dimensions."""
    op = "transpose"
    check_tensor(op, "x", x)
    if axes is None:
        perm = tuple(reversed(range(x.ndim)))
    else:
        if len(axes) != x.ndim:
            raise OpError(f"{op}: axes={tuple(axes)} must list each of the {x.ndim} dimensions of x once")
        perm = tuple(normalize_axis(op, a, x.ndim, "axes") for a in axes)
        if sorted(perm) != list(range(x.ndim)):
            raise OpError(f"{op}: axes={tuple(axes)} is not a permutation of the {x.ndim} dimensions of x")
    out_shape = tuple(x.shape[a] for a in perm)

    def body(*idx: Var) -> Expr:
        source: list[Expr] = [const(0)] * x.ndim
        for position, a in enumerate(perm):
            source[a] = idx[position]
        return x[tuple(source)]

    return te.compute(out_shape, body, name=name, tag=Tag.INJECTIVE)


def _resolve_newshape(op: str, x: Tensor, newshape: Sequence[Any]) -> tuple[Expr, ...]:
    total = shape_product(x.shape)
    dims: list[Expr | None] = []
    unknown: int | None = None
    for position, dim in enumerate(newshape):
        if isinstance(dim, IterVar):
            dim = dim.var
        if isinstance(dim, int) and not isinstance(dim, bool) and dim == -1:
            if unknown is not None:
                raise OpError(f"{op}: newshape={tuple(newshape)} has more than one -1")
            unknown = position
            dims.append(None)
            continue
        if isinstance(dim, bool) or not isinstance(dim, (int, Expr)):
            raise OpError(f"{op}: newshape entries must be ints or expressions, got {dim!r}")
        value = as_int(dim)
        if value is not None and value <= 0:
            raise OpError(f"{op}: newshape entries must be positive (or a single -1), got {dim!r}")
        dims.append(convert(dim))
    known = shape_product([d for d in dims if d is not None])
    if unknown is not None:
        t, k = as_int(total), as_int(known)
        if t is not None and k is not None and t % k:
            raise OpError(f"{op}: cannot reshape {shape_str(x.shape)} ({t} elements) into {tuple(newshape)}")
        dims[unknown] = fold(floordiv(total, known))
        known = total
    t, k = as_int(total), as_int(known)
    if (t is not None and k is not None and t != k) or ((t is None or k is None) and not same_dim(total, known)):
        raise OpError(
            f"{op}: cannot reshape {shape_str(x.shape)} ({total} elements) into {tuple(newshape)} ({known} elements)"
        )
    return tuple(d for d in dims if d is not None)


def _row_major_strides(shape: Sequence[Expr]) -> list[Expr]:
    strides: list[Expr] = []
    running: Expr = const(1)
    for dim in reversed(shape):
        strides.append(running)
        running = fold(running * dim)
    return list(reversed(strides))


def reshape(x: Tensor, newshape: Sequence[Any], name: str = "T_reshape") -> Tensor:
    """Row-major reshape (one entry of ``newshape`` may be -1). The leading and the trailing dimensions both shapes
    share map index for index; over the rest, with ``f = sum_d out_idx[d] * out_stride[d]`` the flat index of the
    middle output dimensions, ``out[out_idx] = x[j]`` with ``j[d] = (f // in_stride[d]) % x.shape[d]``. (Keeping the
    shared dimensions out of the division keeps their indices plain, which bound inference and vectorization read
    exactly, and a symbolic leading dimension out of every divisor: ``[batch, seq, 768] -> [batch, seq, 12, 64]``.)
    A reshape that only adds or drops dimensions of 1 reads each kept axis by its own index, with no flat index."""
    op = "reshape"
    check_tensor(op, "x", x)
    if isinstance(newshape, (int, Expr)):
        newshape = (newshape,)
    out_shape = _resolve_newshape(op, x, newshape)
    if len(out_shape) == x.ndim and all(same_dim(a, b) for a, b in zip(out_shape, x.shape)):
        return te.compute(out_shape, lambda *idx: x[idx], name=name, tag=Tag.INJECTIVE)
    kept_out = [d for d, extent in enumerate(out_shape) if as_int(extent) != 1]
    kept_in = [d for d, extent in enumerate(x.shape) if as_int(extent) != 1]
    if len(kept_out) == len(kept_in) and all(same_dim(out_shape[a], x.shape[b]) for a, b in zip(kept_out, kept_in)):
        # only dimensions of 1 come or go (squeeze, unsqueeze): each kept axis reads its own, no flat index
        def direct(*idx: Var) -> Expr:
            source: list[Expr] = [const(0)] * x.ndim
            for a, b in zip(kept_out, kept_in):
                source[b] = idx[a]
            return x[tuple(source)]

        return te.compute(out_shape, direct, name=name, tag=Tag.INJECTIVE)
    shared = 0
    while (shared < min(len(out_shape), x.ndim)
           and same_dim(out_shape[len(out_shape) - 1 - shared], x.shape[x.ndim - 1 - shared])):
        shared += 1
    lead = 0
    while lead < min(len(out_shape), x.ndim) - shared and same_dim(out_shape[lead], x.shape[lead]):
        lead += 1
    out_mid, in_mid = out_shape[lead: len(out_shape) - shared], tuple(x.shape[lead: x.ndim - shared])
    out_strides = _row_major_strides(out_mid)
    in_strides = _row_major_strides(in_mid)

    def body(*idx: Var) -> Expr:
        flat: Expr = const(0)
        for index, stride in zip(idx[lead:], out_strides):
            flat = flat + (index if as_int(stride) == 1 else index * stride)
        source: list[Expr] = list(idx[:lead])
        for position, (dim, stride) in enumerate(zip(in_mid, in_strides)):
            value = flat if as_int(stride) == 1 else floordiv(flat, stride)
            if position > 0 and as_int(dim) != 1:
                value = floormod(value, dim)
            elif as_int(dim) == 1:
                value = const(0)
            source.append(value)
        return x[tuple(source) + tuple(idx[lead + len(out_mid):])]

    return te.compute(out_shape, body, name=name, tag=Tag.INJECTIVE)


def flatten(x: Tensor, axis: int = 1, name: str = "T_flatten") -> Tensor:
    """``x`` as the 2-D tensor ``[prod(shape[:axis]), prod(shape[axis:])]`` (ONNX ``Flatten``), row-major."""
    check_tensor("flatten", "x", x)
    if isinstance(axis, bool) or not isinstance(axis, int) or not -x.ndim <= axis <= x.ndim:
        raise OpError(f"flatten: axis={axis!r} must be an int in [{-x.ndim}, {x.ndim}]")
    cut = axis + x.ndim if axis < 0 else axis
    return reshape(x, (shape_product(x.shape[:cut]), shape_product(x.shape[cut:])), name=name)


def concatenate(tensors: Sequence[Tensor], axis: int = 0, name: str = "T_concat") -> Tensor:
    """Join ``tensors`` along ``axis``; the other dimensions and the dtypes must agree. With ``o_t`` the offset of
    tensor ``t`` along ``axis``, ``out[..., i, ...] = tensors[t][..., i - o_t, ...]`` for ``o_t <= i < o_{t+1}``.
    Every input is read with a clamped index (the select evaluates all branches), so no read leaves its tensor."""
    op = "concatenate"
    if isinstance(tensors, Tensor) or not tensors:
        raise OpError(f"{op}: tensors must be a non-empty sequence of tensors")
    for position, t in enumerate(tensors):
        check_tensor(op, f"tensors[{position}]", t)
    first = tensors[0]
    ax = normalize_axis(op, axis, first.ndim)
    for position, t in enumerate(tensors[1:], start=1):
        if t.ndim != first.ndim:
            raise OpError(f"{op}: tensors[{position}] has {t.ndim} dimensions, tensors[0] has {first.ndim}")
        if t.dtype != first.dtype:
            raise OpError(f"{op}: tensors[{position}] has dtype {t.dtype}, tensors[0] has {first.dtype}")
        for d in range(first.ndim):
            if d != ax and not same_dim(t.shape[d], first.shape[d]):
                raise OpError(
                    f"{op}: tensors[{position}] has shape {shape_str(t.shape)}, which differs from "
                    f"{shape_str(first.shape)} outside axis {ax}"
                )
    offsets: list[Expr] = [const(0)]
    for t in tensors:
        offsets.append(fold(offsets[-1] + t.shape[ax]))
    out_shape = tuple(offsets[-1] if d == ax else first.shape[d] for d in range(first.ndim))

    def read(t: Tensor, start: Expr, idx: Sequence[Var]) -> Expr:
        local = idx[ax] - start if as_int(start) != 0 else idx[ax]
        if len(tensors) > 1:
            local = clamp_index(local, t.shape[ax])
        return t[tuple(local if d == ax else idx[d] for d in range(len(idx)))]

    def body(*idx: Var) -> Expr:
        value = read(tensors[-1], offsets[-2], idx)
        for position in range(len(tensors) - 2, -1, -1):
            value = te.if_then_else(
                idx[ax] < offsets[position + 1], read(tensors[position], offsets[position], idx), value
            )
        return value

    return te.compute(out_shape, body, name=name, tag=Tag.INJECTIVE)


def strided_slice(
    x: Tensor,
    begin: Sequence[int | None],
    end: Sequence[int | None],
    strides: Sequence[int] | None = None,
    axes: Sequence[int] | None = None,
    name: str = "T_strided_slice",
) -> Tensor:
    """``x[b0:e0:s0, b1:e1:s1, ...]`` with Python slice semantics (negative and out-of-range bounds, negative
    strides; ``None`` for an open end) on the listed ``axes`` (default the first ``len(begin)`` dimensions):
    ``out[..., i, ...] = x[..., start + i * step, ...]``. The sliced dimensions must be constants."""
    op = "strided_slice"
    check_tensor(op, "x", x)
    count = len(begin)
    if len(end) != count or (strides is not None and len(strides) != count):
        raise OpError(f"{op}: begin, end and strides must have the same length, got {begin!r}, {end!r}, {strides!r}")
    steps = [1] * count if strides is None else list(strides)
    if axes is None:
        if count > x.ndim:
            raise OpError(f"{op}: {count} slice bounds for a tensor of {x.ndim} dimensions")
        chosen = list(range(count))
    else:
        if len(axes) != count:
            raise OpError(f"{op}: axes={tuple(axes)} must have one entry per slice bound ({count})")
        chosen = [normalize_axis(op, a, x.ndim, "axes") for a in axes]
        if len(set(chosen)) != len(chosen):
            raise OpError(f"{op}: axes={tuple(axes)} repeats an axis")
    starts = [0] * x.ndim
    step_of = [1] * x.ndim
    out_shape = list(x.shape)
    for a, b, e, s in zip(chosen, begin, end, steps):
        if isinstance(s, bool) or not isinstance(s, int) or s == 0:
            raise OpError(f"{op}: strides must be non-zero ints, got {s!r}")
        extent = as_int(x.shape[a])
        if extent is None or isinstance(b, Expr) or isinstance(e, Expr):  # bounds from symbolic dimensions
            starts[a], out_shape[a] = _symbolic_slice(op, x.shape[a], b, e, s, a)
            continue
        start, stop, step = slice(b, e, s).indices(extent)
        length = len(range(start, stop, step))
        if length == 0:
            raise OpError(f"{op}: the slice {b}:{e}:{s} of dimension {a} (extent {extent}) is empty")
        starts[a], step_of[a], out_shape[a] = start, step, const(length)

    def body(*idx: Var) -> Expr:
        source: list[Expr] = []
        for d, index in enumerate(idx):
            value: Expr = index if step_of[d] == 1 else index * step_of[d]
            start = starts[d]
            source.append(value if isinstance(start, int) and start == 0 else value + start)
        return x[tuple(source)]

    return te.compute(tuple(out_shape), body, name=name, tag=Tag.INJECTIVE)


def _symbolic_slice(op: str, extent: Expr, begin: Any, end: Any, step: int, axis: int) -> tuple[Any, Expr]:
    """``(start, length)`` of ``begin:end`` along a dimension of symbolic ``extent``, or with bounds that depend on
    symbolic dimensions (a position table's first ``seq`` rows): a unit step, bounds that are
    ints or expressions of the dimensions (taken to lie in ``[0, extent]``: the graph's types say so), an open end
    (``None``, or an int at least the extent's declared maximum: ONNX writes INT64_MAX), an int at most its declared
    minimum (the first token of a batch of prompts: ``[:, 0:1]``), or a negative int counted from the end. A
    positive int end between those may stop short of the extent or not: refused."""
    if step != 1:
        raise OpError(f"{op}: dimension {axis} of extent {extent} is sliced with step {step}; a symbolic dimension "
                      "takes unit steps")
    least, largest = declared_bounds(extent)
    open_end = end is None or (isinstance(end, int) and largest is not None and end >= largest)
    inside = isinstance(end, int) and least is not None and end <= least
    if isinstance(end, int) and end > 0 and not open_end and not inside:
        raise OpError(f"{op}: the end {end} of dimension {axis} may lie past its symbolic extent {extent}")

    def position(bound: Any) -> Any:
        return extent + bound if isinstance(bound, int) and bound < 0 else bound

    start = 0 if begin is None else position(begin)
    stop = extent if open_end else position(end)
    return start, simplify(convert(stop) - convert(start))


def split(x: Tensor, indices_or_sections: int | Sequence[int], axis: int = 0, name: str = "T_split") -> list[Tensor]:
    """numpy's ``split``: ``indices_or_sections`` is a number of equal sections (it must divide the extent) or the
    sorted split points along ``axis``. Returns one ``strided_slice`` per part (``<name>_<k>``)."""
    op = "split"
    check_tensor(op, "x", x)
    ax = normalize_axis(op, axis, x.ndim)
    extent = as_int(x.shape[ax])
    if extent is None:
        raise OpError(f"{op}: dimension {ax} of x must be a constant, got {x.shape[ax]}")
    if isinstance(indices_or_sections, int) and not isinstance(indices_or_sections, bool):
        sections = indices_or_sections
        if sections <= 0 or extent % sections:
            raise OpError(f"{op}: {sections} sections do not divide dimension {ax} of extent {extent} evenly")
        points = [extent // sections * k for k in range(1, sections)]
    else:
        points = list(indices_or_sections)
        if any(not isinstance(p, int) or isinstance(p, bool) for p in points) or points != sorted(points):
            raise OpError(f"{op}: indices_or_sections must be an int or sorted ints, got {indices_or_sections!r}")
        if points and (points[0] <= 0 or points[-1] >= extent):
            raise OpError(f"{op}: split points {points} must lie strictly inside (0, {extent}) so no part is empty")
        if len(set(points)) != len(points):
            raise OpError(f"{op}: split points {points} repeat, which would make an empty part")
    bounds = [0, *points, extent]
    return [
        strided_slice(x, [lo], [hi], [1], axes=[ax], name=f"{name}_{k}")
        for k, (lo, hi) in enumerate(zip(bounds, bounds[1:]))
    ]


def expand_dims(x: Tensor, axis: int, num_newaxis: int = 1, name: str = "T_expand_dims") -> Tensor:
    """Insert ``num_newaxis`` dimensions of extent 1 at position ``axis`` (in ``[-ndim-1, ndim]``)."""
    op = "expand_dims"
    check_tensor(op, "x", x)
    if isinstance(num_newaxis, bool) or not isinstance(num_newaxis, int) or num_newaxis < 0:
        raise OpError(f"{op}: num_newaxis must be a non-negative int, got {num_newaxis!r}")
    if isinstance(axis, bool) or not isinstance(axis, int) or not -x.ndim - 1 <= axis <= x.ndim:
        raise OpError(f"{op}: axis={axis!r} must be an int in [{-x.ndim - 1}, {x.ndim}]")
    at = axis + x.ndim + 1 if axis < 0 else axis
    out_shape = (*x.shape[:at], *([const(1)] * num_newaxis), *x.shape[at:])

    def body(*idx: Var) -> Expr:
        return x[(*idx[:at], *idx[at + num_newaxis :])]

    return te.compute(out_shape, body, name=name, tag=Tag.INJECTIVE)


def squeeze(x: Tensor, axis: int | Sequence[int] | None = None, name: str = "T_squeeze") -> Tensor:
    """Remove dimensions of extent 1: those in ``axis`` (each must be 1), or every constant-1 dimension."""
    op = "squeeze"
    check_tensor(op, "x", x)
    if axis is None:
        axes = tuple(d for d in range(x.ndim) if as_int(x.shape[d]) == 1)
    else:
        axes = normalize_axes(op, axis, x.ndim)
        for a in axes:
            if as_int(x.shape[a]) != 1:
                raise OpError(f"{op}: dimension {a} of x has extent {x.shape[a]}, not 1")
    kept = [d for d in range(x.ndim) if d not in axes]
    out_shape = tuple(x.shape[d] for d in kept)

    def body(*idx: Var) -> Expr:
        source: list[Expr] = [const(0)] * x.ndim
        for position, d in enumerate(kept):
            source[d] = idx[position]
        return x[tuple(source)]

    return te.compute(out_shape, body, name=name, tag=Tag.INJECTIVE)
