"""ONNX sequences and optionals, resolved while the model is imported.

tcomp's graphs hold tensors of static shapes, so a sequence is what it holds at compile time: a list of graph IR
tensors (``SequenceValue``), as TVM's Relay frontend keeps it; an optional is the value it holds, or nothing.
Positions, lengths and whether an optional holds a value must be known at compile time (a constant, computed from
shapes, or fixed with ``input_values=``), as they decide what the graph computes; the ``Loop`` and ``If`` around such
operators unroll and resolve at compile time (``onnx_control``), so a sequence built by a loop is the list of what
its iterations inserted. A sequence holds at most ``MAX_UNROLLED_ITERATIONS`` tensors, as a loop runs at most that
many iterations.

- ``SequenceEmpty``, ``SequenceConstruct``, ``SequenceInsert``, ``SequenceErase``: a new list;
- ``SequenceAt``: the tensor at a position; ``SequenceLength``: a constant;
- ``SplitToSequence``: a ``split`` node (parts of one size, the given sizes, or one slice per index without
  ``keepdims``); ``ConcatFromSequence``: a ``concat`` node (with ``new_axis``, of the tensors each given a new axis);
- ``SequenceMap``: its body converted once per position;
- ``Optional``, ``OptionalHasElement`` (a constant), ``OptionalGetElement``.

A graph input or output must be a tensor (an optional output that holds a tensor is that tensor): a sequence crosses
no executor boundary.
"""

from __future__ import annotations

import numpy as np
import onnx

from tcomp.graph.frontend.onnx_builder import Builder, SequenceValue
from tcomp.graph.frontend.onnx_common import Attrs, axis_index, converts, optional, reshape
from tcomp.graph.frontend.onnx_control import MAX_UNROLLED_ITERATIONS, inline_graph
from tcomp.graph.frontend.onnx_data import onnx_dtype

_SEQUENCES = (11,)


def sequence(b: Builder, name: str, what: str = "input 0") -> SequenceValue:
    value = b.sequences.get(name)
    if value is None:
        raise b.error(f"{what} ({name!r}) must be a sequence")
    return value


def _check_length(b: Builder, length: int) -> None:
    if length > MAX_UNROLLED_ITERATIONS:
        raise b.error(f"a sequence of {length} tensors: tcomp resolves sequences at compile time, a graph value per "
                      f"tensor, and stops at {MAX_UNROLLED_ITERATIONS} (as it unrolls loops)")


def _new(b: Builder, items: list[str], dtype: str) -> str:
    _check_length(b, len(items))
    for item in items:
        if b.type(item).dtype != dtype:
            raise b.error(f"a sequence of {dtype} cannot hold {item!r} of {b.type(item).dtype}")
    name = b.fresh(f"{b.node_name}/sequence")
    b.sequences[name] = SequenceValue(tuple(items), dtype)
    return name


def _position(b: Builder, ins: list[str], index: int, length: int, default: int, inserting: bool = False) -> int:
    """The position input ``index`` (``default`` when absent), negative counting from the end, checked against a
    sequence of ``length`` (one past the end allowed when ``inserting``)."""
    name = optional(ins, index)
    value = default if not name else b.require_const(name, "the position")
    array = np.asarray(value)
    if array.size != 1 or array.dtype.kind not in "iu":
        raise b.error(f"the position must be one integer, got {array.dtype}{list(array.shape)}")
    position = int(array.reshape(-1)[0])
    last = length if inserting else length - 1
    if not -length <= position <= last:
        raise b.error(f"position {position} is out of range for a sequence of {length}")
    return position + length if position < 0 else position


@converts("SequenceEmpty", _SEQUENCES)
def _sequence_empty(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    dtype = onnx_dtype(a.int("dtype", onnx.TensorProto.FLOAT), f"node {b.node_name}: attribute dtype")
    return [_new(b, [], dtype)]


@converts("SequenceConstruct", _SEQUENCES)
def _sequence_construct(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    if not ins or not all(ins):
        raise b.error("needs at least one tensor, and no omitted input")
    return [_new(b, list(ins), b.type(ins[0]).dtype)]


@converts("SequenceInsert", _SEQUENCES)
def _sequence_insert(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    seq = sequence(b, ins[0])
    items = list(seq.items)
    items.insert(_position(b, ins, 2, len(items), len(items), inserting=True), ins[1])
    return [_new(b, items, seq.dtype)]


@converts("SequenceErase", _SEQUENCES)
def _sequence_erase(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    seq = sequence(b, ins[0])
    items = list(seq.items)
    if not items:
        raise b.error("cannot erase from an empty sequence")
    del items[_position(b, ins, 1, len(items), -1)]
    return [_new(b, items, seq.dtype)]


@converts("SequenceAt", _SEQUENCES)
def _sequence_at(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    seq = sequence(b, ins[0])
    if not optional(ins, 1):
        raise b.error("input 1 (the position) is required")
    return [seq.items[_position(b, ins, 1, len(seq.items), 0)]]


@converts("SequenceLength", _SEQUENCES)
def _sequence_length(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    return [b.param(np.array(len(sequence(b, ins[0]).items), np.int64), f"{b.node_name}/length")]


@converts("SplitToSequence", (11, 24))
def _split_to_sequence(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    x = b.type(ins[0])
    axis = axis_index(b, a.int("axis", 0), x.ndim)
    length = x.shape[axis]
    split = optional(ins, 1)
    squeeze = False
    if not split:
        sizes = [1] * length
        squeeze = not a.flag("keepdims", 1)
    else:
        given = np.asarray(b.require_const(split, "split"))
        if given.dtype.kind not in "iu" or given.ndim > 1 or (given < 0).any():
            raise b.error(f"split must be non-negative integers, a scalar or a list, got {given.tolist()}")
        if given.ndim == 0:
            chunk = int(given)
            if chunk < 1:
                raise b.error(f"split {chunk} must be positive")
            sizes = [min(chunk, length - start) for start in range(0, length, chunk)]
        else:
            sizes = [int(s) for s in given]
            if sum(sizes) != length:
                raise b.error(f"split {sizes} does not add up to the axis' length {length}")
    _check_length(b, len(sizes))
    if not sizes:
        return [_new(b, [], x.dtype)]
    parts = b.add("split", [ins[0]], len(sizes), axis=axis, sizes=tuple(sizes)) if len(sizes) > 1 else [ins[0]]
    if squeeze:
        parts = [reshape(b, part, x.shape[:axis] + x.shape[axis + 1:]) for part in parts]
    return [_new(b, parts, x.dtype)]


@converts("ConcatFromSequence", _SEQUENCES)
def _concat_from_sequence(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    seq = sequence(b, ins[0])
    if not seq.items:
        raise b.error("cannot concatenate an empty sequence")
    first = b.type(seq.items[0])
    stacking = a.flag("new_axis", 0)
    axis = axis_index(b, a.int("axis"), first.ndim + stacking)
    parts = list(seq.items)
    if stacking:
        parts = [reshape(b, p, (*b.type(p).shape[:axis], 1, *b.type(p).shape[axis:])) for p in parts]
    if len(parts) == 1:
        return [b.add1("identity", parts, output=node.output[0])]
    return [b.add1("concat", parts, output=node.output[0], axis=axis)]


@converts("SequenceMap", (17,))
def _sequence_map(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    body = a.graph("body")
    length = len(sequence(b, ins[0]).items)
    for name in ins[1:]:
        if name in b.sequences and len(b.sequences[name].items) != length:
            raise b.error(f"the sequences have different lengths: {length} and {len(b.sequences[name].items)}")
    results: list[list[str]] = [[] for _ in body.output]
    for position in range(length):
        operands = [b.sequences[n].items[position] if n in b.sequences else n for n in ins]
        outputs = inline_graph(b, body, operands, f"{b.node_name}/position {position}")
        for k, out in enumerate(outputs):
            results[k].append(out)
    return [_new(b, parts, _element_type(b, body.output[k], parts)) for k, parts in enumerate(results)]


def _element_type(b: Builder, declared: onnx.ValueInfoProto, parts: list[str]) -> str:
    if parts:
        return b.type(parts[0]).dtype
    element = declared.type.sequence_type.elem_type if declared.type.HasField("sequence_type") else declared.type
    if not element.HasField("tensor_type"):
        raise b.error(f"the body output {declared.name!r} does not declare its element type")
    return onnx_dtype(element.tensor_type.elem_type, f"body output {declared.name!r}")


# ---------------------------------------------------------------------------------------------------------------------
# optionals
@converts("Optional", (15, 28))
def _optional(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    name = b.fresh(f"{b.node_name}/optional")
    b.optionals[name] = optional(ins, 0) or None
    return [name]


@converts("OptionalHasElement", (15, 18, 28))
def _optional_has_element(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    name = optional(ins, 0)
    if v == 15 and not name:
        raise b.error("input 0 is required")
    present = bool(name) and (b.optionals[name] is not None if name in b.optionals else True)
    return [b.param(np.array(present), f"{b.node_name}/has_element")]


@converts("OptionalGetElement", (15, 18, 28))
def _optional_get_element(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    name = ins[0]
    if name not in b.optionals:
        if v == 15:
            raise b.error(f"input 0 ({name!r}) must be an optional")
        return [name]  # from definition 18 on, a tensor or a sequence is its own element
    element = b.optionals[name]
    if element is None:
        raise b.error(f"the optional {name!r} is empty")
    return [element]


__all__ = ["sequence"]
