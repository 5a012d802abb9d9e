"""ONNX converters that select, reorder or reinterpret elements: ``ReverseSequence Compress Unique TensorScatter
BitCast``.

``ReverseSequence`` reverses, for each batch entry ``b`` (``batch_axis``), the first ``sequence_lens[b]`` steps along
``time_axis`` and keeps the later ones: output step ``t`` reads step ``L - 1 - t`` when ``t < L``, else ``t``. It is
a ``gather_elements`` along the time axis; its indices are a constant when the lengths are known at compile time
and are computed by graph ops (``less``, ``subtract``, ``where`` over a range) otherwise, so the lengths may be a
run-time input. A run-time length above the number of steps fails the run (the gather's index check).

``Compress`` keeps the slices along ``axis`` (of the flattened input when ``axis`` is absent) whose ``condition``
entry is true, as ``numpy.compress``: the number kept is the output's shape, so the condition must be known at
compile time (the executor specializes on a graph input that decides it); the data may be a run-time value, taken
with the constant positions of the true entries.

``Unique`` returns the distinct elements (or, with ``axis``, the distinct slices along it), sorted ascending
(``sorted=1``) or in order of first occurrence, with the position of each one's first occurrence, the position in
``Y`` of each input element (or slice) and the counts. Every output's shape depends on the values, so the input
must be known at compile time; all four outputs are computed while compiling.

``TensorScatter`` (the KV-cache update) writes ``update`` into ``past_cache`` along ``axis`` (not the batch axis),
for batch entry ``b`` from position ``write_indices[b]`` on (0 when absent), modulo the cache length in
``"circular"`` mode; positions written past the cache's end in ``"linear"`` mode are dropped. Output position ``p``
takes ``update`` at ``p - write_indices[b]`` (wrapped in circular mode) when that lies in the update, else the
cache's own value: a gather and a ``where`` over a range comparison, so ``write_indices`` may be a run-time input.

``BitCast`` reinterprets each element's bytes as another type of the same size: a ``bitcast`` node (a constant input
folds), or a ``cast`` between integer and bool types (two's complement: it keeps every bit; a bool is one byte).
"""

from __future__ import annotations

import numpy as np
import onnx

from tcomp.graph.frontend.onnx_builder import Builder
from tcomp.graph.frontend.onnx_common import Attrs, axis_index, converts, optional
from tcomp.graph.frontend.onnx_data import onnx_dtype
from tcomp.ir import dtype as dt


def _along_shape(extent: int, axis: int, ndim: int) -> tuple[int, ...]:
    """The shape of ``ndim`` dimensions with ``extent`` at ``axis`` and 1 elsewhere."""
    return tuple(extent if d == axis else 1 for d in range(ndim))


def _along(values: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    """The 1-D ``values`` laid along dimension ``axis`` of an ``ndim``-D array."""
    return values.reshape(_along_shape(values.size, axis, ndim))


def _int64(b: Builder, name: str, what: str) -> str:
    """Integer input ``name`` as int64 (a ``cast`` when it has another integer type)."""
    dtype = b.type(name).dtype
    if not dt.is_int(dtype):
        raise b.error(f"{what} must be integers, got {dtype}")
    return name if dtype == "int64" else b.add1("cast", [name], dtype="int64")


# ---------------------------------------------------------------------------------------------------------------------
# ReverseSequence
@converts("ReverseSequence", (10, 28))
def _reverse_sequence(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    x, lens = ins[0], ins[1]
    shape = b.type(x).shape
    ndim = len(shape)
    if ndim < 2:
        raise b.error(f"the input must have at least 2 dimensions, got {b.type(x)}")
    batch_axis, time_axis = a.int("batch_axis", 1), a.int("time_axis", 0)
    if {batch_axis, time_axis} != {0, 1}:
        raise b.error(f"batch_axis={batch_axis} and time_axis={time_axis} must be 0 and 1, one each")
    batches, steps = shape[batch_axis], shape[time_axis]
    if b.type(lens).shape != (batches,):
        raise b.error(f"sequence_lens {b.type(lens)} must be a vector of the batch size {batches}")
    lens = _int64(b, lens, "sequence_lens")
    known = b.const(lens)
    if known is not None:
        if known.size and (known.min() < 0 or known.max() > steps):
            raise b.error(f"sequence_lens {known.tolist()[:8]} must be in [0, {steps}] (the time axis' extent)")
        length = _along(known, batch_axis, ndim)
        t = _along(np.arange(steps, dtype=np.int64), time_axis, ndim)
        source = np.where(t < length, length - 1 - t, t)
        indices = b.param(source, f"{b.node_name}/indices")
    else:
        length = b.add1("reshape", [lens], shape=_along_shape(batches, batch_axis, ndim))
        t = b.param(_along(np.arange(steps, dtype=np.int64), time_axis, ndim), f"{b.node_name}/steps")
        one = b.param(np.array(1, np.int64), f"{b.node_name}/one")
        reversed_step = b.add1("subtract", [b.add1("subtract", [length, one]), t])
        indices = b.add1("where", [b.add1("less", [t, length]), reversed_step, t])
    indices = b.add1("broadcast_to", [indices], shape=tuple(shape))
    return [b.add1("gather_elements", [x, indices], output=node.output[0], axis=time_axis)]


# ---------------------------------------------------------------------------------------------------------------------
# Compress
@converts("Compress", (9, 11, 28))
def _compress(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    x, condition = ins[0], ins[1]
    if b.type(condition).dtype != "bool" or b.type(condition).ndim != 1:
        raise b.error(f"the condition must be a 1-D bool tensor, got {b.type(condition)}")
    keep = b.require_const(condition, "the condition of Compress (the number of slices kept is its output's shape)")
    if a.has("axis"):
        axis = axis_index(b, a.int("axis"), b.type(x).ndim)
        data = x
    else:
        axis = 0
        data = b.add1("reshape", [x], shape=(b.type(x).numel,))
    extent = b.type(data).shape[axis]
    positions = np.flatnonzero(keep).astype(np.int64)
    if positions.size and positions[-1] >= extent:
        raise b.error(f"the condition selects position {positions[-1]}, beyond the extent {extent} of axis {axis}")
    return [b.add1("take", [data, b.param(positions, f"{b.node_name}/kept")], output=node.output[0], axis=axis)]


# ---------------------------------------------------------------------------------------------------------------------
# Unique
def unique(x: np.ndarray, axis: int | None, sort: bool) -> tuple[np.ndarray, ...]:
    """ONNX Unique's ``(Y, indices, inverse_indices, counts)`` of ``x`` (flattened when ``axis`` is None): the
    distinct elements or slices ascending (``sort``) or in order of first occurrence; the int64 outputs are 1-D."""
    source = x.reshape(-1) if axis is None else x
    along = 0 if axis is None else axis
    y, first, inverse, counts = np.unique(source, return_index=True, return_inverse=True, return_counts=True,
                                          axis=axis)
    inverse = inverse.reshape(-1)
    if not sort:
        order = np.argsort(first, kind="stable")  # the distinct values by first occurrence
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        first, counts, inverse = first[order], counts[order], rank[inverse]
        y = np.take(source, first, axis=along)
    return y, first.astype(np.int64), inverse.astype(np.int64), counts.astype(np.int64)


@converts("Unique", (11, 28))
def _unique(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    x = b.require_const(ins[0], "the input of Unique (the number of distinct values is its outputs' shape)")
    axis = axis_index(b, a.int("axis"), x.ndim) if a.has("axis") else None
    results = unique(x, axis, a.flag("sorted", 1))
    return [b.param(value, name) if name else "" for value, name in zip(results, node.output)]


# ---------------------------------------------------------------------------------------------------------------------
# TensorScatter
@converts("TensorScatter", (24,))
def _tensor_scatter(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    cache, update, write = ins[0], ins[1], optional(ins, 2)
    ct, ut = b.type(cache), b.type(update)
    if ct.ndim < 2 or ct.dtype != ut.dtype or ct.ndim != ut.ndim:
        raise b.error(f"past_cache {ct} and update {ut} must have the same type and rank, at least 2")
    axis = axis_index(b, a.int("axis", -2), ct.ndim)
    if axis == 0:
        raise b.error("axis must not be the batch axis (0)")
    mode = a.string("mode", "linear")
    if mode not in ("linear", "circular"):
        raise b.error(f"mode {mode!r} must be 'linear' or 'circular'")
    capacity, length = ct.shape[axis], ut.shape[axis]
    same_elsewhere = all(c == u for d, (c, u) in enumerate(zip(ct.shape, ut.shape)) if d != axis)
    if not same_elsewhere or length > capacity:
        raise b.error(f"update {ut.shape} must match past_cache {ct.shape} outside axis {axis}, and be at most as "
                      "long along it")
    position = b.param(_along(np.arange(capacity, dtype=np.int64), axis, ct.ndim), f"{b.node_name}/positions")
    offset = position  # of each cache position in the update, before the check that it lies there
    if write:
        if b.type(write).shape != (ct.shape[0],):
            raise b.error(f"write_indices {b.type(write)} must be a vector of the batch size {ct.shape[0]}")
        start = b.add1("reshape", [_int64(b, write, "write_indices")], shape=(ct.shape[0],) + (1,) * (ct.ndim - 1))
        offset = b.add1("subtract", [position, start])
    if mode == "circular":
        offset = b.add1("mod", [offset, b.param(np.array(capacity, np.int64), f"{b.node_name}/capacity")], fmod=0)
    low = b.param(np.array(0, np.int64), f"{b.node_name}/zero")
    high = b.param(np.array(length - 1, np.int64), f"{b.node_name}/last")
    clamped = b.add1("minimum", [b.add1("maximum", [offset, low]), high])
    inside = b.add1("equal", [offset, clamped])
    indices = b.add1("broadcast_to", [clamped], shape=ct.shape)
    written = b.add1("gather_elements", [update, indices], axis=axis)
    return [b.add1("where", [inside, written, cache], output=node.output[0])]


# ---------------------------------------------------------------------------------------------------------------------
# BitCast
@converts("BitCast", (26,))
def _bitcast(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    x = ins[0]
    source = b.type(x).dtype
    target = onnx_dtype(a.int("to"), f"node {b.node_name} (BitCast): attribute 'to'")
    size_in, size_out = np.dtype(dt.to_numpy(source)).itemsize, np.dtype(dt.to_numpy(target)).itemsize
    if size_in != size_out:
        raise b.error(f"{source} ({8 * size_in} bits) and {target} ({8 * size_out} bits) differ in size")
    if not (dt.is_float(source) or dt.is_float(target)):
        return [b.add1("cast", [x], output=node.output[0], dtype=target)]  # two's complement: every bit kept
    return [b.add1("bitcast", [x], output=node.output[0], dtype=target)]
