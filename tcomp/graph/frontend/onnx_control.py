"""ONNX control flow, ``If``, ``Loop`` and ``Scan``, resolved at compile time by inlining their subgraphs.

tcomp compiles straight-line graphs of static shapes, so control flow is decided while the model is imported:

- ``If``: the condition must be known at compile time (a constant, computed from shapes or constants, or given with
  ``input_values=``); the taken branch's nodes are converted in place of the ``If`` and the other branch is dropped.
  A condition computed from the values of graph inputs is a ``ValueNeededError``, so the executor specializes on
  those inputs, as it does for any shape-deciding input.
- ``Loop``: unrolled when its trip count and its continue condition are known at compile time (the same rules):
  each iteration converts the body once more, its iteration number and incoming condition as constants and the
  loop-carried values threaded from one iteration to the next; scan outputs are stacked along a new first axis.
  A loop whose continue condition depends on run-time values, or that would run more than
  ``MAX_UNROLLED_ITERATIONS`` times, is refused with an error that says so.
- ``Scan``: unrolled over its scan inputs' length (static), each along its axis and direction; states threaded,
  scan outputs stacked along their axes and directions. Definition 8 scans every batch entry apart;
  ``sequence_lens`` shorter than the sequence are refused.

Each inlining gives the subgraph's values fresh names (a body unrolled three times defines its values three times);
values a subgraph reads from the scopes around it resolve as any other input does (``onnx.py`` orders a node after
what its subgraphs read).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx

from tcomp.graph.frontend.onnx_builder import Builder
from tcomp.graph.frontend.onnx_common import (
    Attrs,
    convert_node,
    converts,
    optional,
    reshape,
    topological_order,
)
from tcomp.graph.frontend.onnx_data import onnx_dtype, tensor_to_array
from tcomp.ir import dtype as dt

MAX_UNROLLED_ITERATIONS = 1024
_VERSIONS = (1, 11, 13, 16, 19, 21, 23, 24, 25)


def _renamed(graph: onnx.GraphProto, names: dict[str, str]) -> onnx.GraphProto:
    """A copy of ``graph`` whose reads of the values ``names`` renames (at any depth, where no inner definition
    hides them) read the new names."""
    local = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    local |= {o for n in graph.node for o in n.output}
    visible = {k: v for k, v in names.items() if k not in local}
    copy = onnx.GraphProto()
    copy.CopyFrom(graph)
    if not visible:
        return copy
    for node in copy.node:
        _rename_reads(node, visible)
    return copy


def _rename_reads(node: onnx.NodeProto, names: dict[str, str]) -> None:
    for position, name in enumerate(node.input):
        if name in names:
            node.input[position] = names[name]
    for attribute in node.attribute:
        if attribute.type == onnx.AttributeProto.GRAPH:
            attribute.g.CopyFrom(_renamed(attribute.g, names))
        elif attribute.type == onnx.AttributeProto.GRAPHS:
            for graph in attribute.graphs:
                graph.CopyFrom(_renamed(graph, names))


def inline_graph(b: Builder, graph: onnx.GraphProto, inputs: Sequence[str], where: str) -> list[str]:
    """Convert the nodes of subgraph ``graph``, its inputs bound to the graph IR values ``inputs``; returns the IR
    values of its outputs. ``where`` prefixes the names of its nodes in messages (``Loop_3/iteration 2``)."""
    if len(graph.input) != len(inputs):
        raise b.error(f"{where}: the subgraph takes {len(graph.input)} inputs, given {len(inputs)}")
    outer_node, outer_op = b.node_name, b.op_type
    names: dict[str, str] = {}  # the subgraph's own values -> their names in the graph being built
    for declared, value in zip(graph.input, inputs):
        names[declared.name] = value
    for tensor in graph.initializer:
        array = tensor_to_array(tensor, b.base_dir, f"{where}: initializer {tensor.name!r}")
        names[tensor.name] = b.param(array, f"{outer_node}/{tensor.name}")
    nodes = list(graph.node)
    order = topological_order(nodes, set(names), outer=True)
    for node in nodes:
        for out in node.output:
            if out:
                names[out] = b.fresh(f"{outer_node}/{out}")
    for index in order:
        node = onnx.NodeProto()
        node.CopyFrom(nodes[index])
        _rename_reads(node, names)
        for position, out in enumerate(node.output):
            if out:
                node.output[position] = names[out]
        b.node_name = f"{where}/{nodes[index].name or f'{node.op_type}_{index}'}"
        b.op_type = node.op_type
        convert_node(b, node)
    b.node_name, b.op_type = outer_node, outer_op
    outputs = []
    for declared in graph.output:
        name = names.get(declared.name, declared.name)
        name = b.alias.get(name, name)
        if not b.defined(name):
            raise b.error(f"{where}: subgraph output {declared.name!r} is never defined")
        outputs.append(name)
    return outputs


def _condition(b: Builder, name: str, what: str) -> bool:
    value = b.require_const(name, what)
    if value.size != 1:
        raise b.error(f"{what} must hold one element, got shape {list(value.shape)}")
    return bool(value.reshape(-1)[0])


# ---------------------------------------------------------------------------------------------------------------------
@converts("If", _VERSIONS)
def _if(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    taken = "then_branch" if _condition(b, ins[0], "the If condition") else "else_branch"
    branch = a.graph(taken)
    if len(branch.output) != len(node.output):
        raise b.error(f"{taken} has {len(branch.output)} outputs; the node has {len(node.output)}")
    return inline_graph(b, branch, [], f"{b.node_name}/{taken}")


@converts("Loop", _VERSIONS)
def _loop(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    body = a.graph("body")
    carried = list(ins[2:])
    if any(not name for name in carried):
        raise b.error("an omitted loop-carried input is not supported")
    scans = len(body.output) - 1 - len(carried)
    if len(body.input) != 2 + len(carried) or scans < 0:
        raise b.error(f"the body takes {len(body.input)} inputs and gives {len(body.output)} outputs; with "
                      f"{len(carried)} loop-carried values it must take {2 + len(carried)} and give at least "
                      f"{1 + len(carried)}")
    trip_name, condition_name = optional(ins, 0), optional(ins, 1)
    trips = int(b.require_const(trip_name, "the trip count").reshape(-1)[0]) if trip_name else None
    running = _condition(b, condition_name, "the loop condition") if condition_name else True
    if trips is None and not condition_name:
        raise b.error("a loop with neither a trip count nor a condition never ends")
    values = carried
    stacked: list[list[str]] = [[] for _ in range(scans)]
    iteration = 0
    while running and (trips is None or iteration < trips):
        if iteration == MAX_UNROLLED_ITERATIONS:
            raise b.error(f"the loop runs more than {MAX_UNROLLED_ITERATIONS} iterations; tcomp unrolls loops at "
                          "compile time and stops there")
        where = f"{b.node_name}/iteration {iteration}"
        counter = b.param(np.array(iteration, np.int64), f"{b.node_name}/iteration")
        flag = b.param(np.array(running), f"{b.node_name}/condition")
        outputs = inline_graph(b, body, [counter, flag, *values], where)
        values = outputs[1:1 + len(carried)]
        for k in range(scans):
            stacked[k].append(outputs[1 + len(carried) + k])
        running = _condition(b, outputs[0], f"{where}: the loop's continue condition (loops unroll at compile time)")
        iteration += 1
    return [*values, *(_stack(b, body, len(carried) + 1 + k, parts) for k, parts in enumerate(stacked))]


def _stack(b: Builder, body: onnx.GraphProto, position: int, parts: list[str], axis: int = 0) -> str:
    """A scan output: the iterations' values stacked along a new axis ``axis`` (first by default)."""
    if not parts:  # no iteration ran: an empty tensor of the shape the body declares
        declared = body.output[position]
        tensor = declared.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        if not tensor.HasField("shape") or None in dims or not tensor.elem_type:
            raise b.error(f"the loop runs no iteration, and the body does not declare the static shape of scan "
                          f"output {declared.name!r}")
        dtype = dt.to_numpy(onnx_dtype(tensor.elem_type, f"scan output {declared.name!r}"))
        return b.param(np.zeros((0, *dims), dtype), f"{b.node_name}/scan")
    shape = b.type(parts[0]).shape
    if not -len(shape) - 1 <= axis <= len(shape):
        raise b.error(f"scan output axis {axis} is out of range for {len(shape) + 1} dimensions")
    axis = axis + len(shape) + 1 if axis < 0 else axis
    rows = [reshape(b, part, (*shape[:axis], 1, *shape[axis:])) for part in parts]
    return rows[0] if len(rows) == 1 else b.add1("concat", rows, axis=axis)


# ---------------------------------------------------------------------------------------------------------------------
@converts("Scan", (8, 9, *_VERSIONS[1:]))
def _scan(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    """Scan unrolled over its scan inputs' (static) length; definition 8 scans each batch entry (axis 0) apart."""
    body = a.graph("body")
    count = a.int("num_scan_inputs")
    if v == 8:
        lengths, ins = optional(ins, 0), ins[1:]
        states, scanned = ins[:len(ins) - count], ins[len(ins) - count:]
        batch = b.type(ins[0]).shape[0]
        if lengths:
            given = b.require_const(lengths, "sequence_lens")
            full = b.type(scanned[0]).shape[1] if scanned else 0
            if not np.all(given == full):
                raise b.error(f"sequence_lens {given.tolist()} shorter than the sequence ({full}) are not supported")
        per_batch = []
        for entry in range(batch):
            rows = [_take(b, name, 0, entry) for name in ins]
            per_batch.append(_scan_once(b, node, body, rows[:len(states)], rows[len(states):], a, v,
                                        f"{b.node_name}/batch {entry}"))
        return [_stack(b, body, k, [outs[k] for outs in per_batch]) for k in range(len(per_batch[0]))]
    return _scan_once(b, node, body, ins[:len(ins) - count], ins[len(ins) - count:], a, v, b.node_name)


def _take(b: Builder, name: str, axis: int, index: int) -> str:
    """Entry ``index`` of ``name`` along ``axis``, that axis removed."""
    shape = b.type(name).shape
    one = b.add1("strided_slice", [name], begin=(index,), end=(index + 1,), strides=(1,), axes=(axis,))
    return reshape(b, one, shape[:axis] + shape[axis + 1:])


def _scan_once(b: Builder, node: onnx.NodeProto, body: onnx.GraphProto, states: list[str], scanned: list[str],
               a: Attrs, v: int, where: str) -> list[str]:
    count = len(scanned)
    outputs = len(body.output) - len(states)
    if len(body.input) != len(states) + count or outputs < 0:
        raise b.error(f"the body takes {len(body.input)} inputs and gives {len(body.output)} outputs, for "
                      f"{len(states)} states and {count} scan inputs")
    in_axes = a.ints("scan_input_axes", [0] * count) if v >= 9 else [0] * count
    in_reverse = a.ints("scan_input_directions" if v >= 9 else "directions", [0] * count)
    out_axes = a.ints("scan_output_axes", [0] * outputs) if v >= 9 else [0] * outputs
    out_reverse = a.ints("scan_output_directions", [0] * outputs) if v >= 9 else [0] * outputs
    if not (len(in_axes or []) == len(in_reverse or []) == count and len(out_axes or []) == len(out_reverse or [])
            == outputs):
        raise b.error("the scan axes and directions must have one entry per scan input and output")
    axes = []
    for name, axis in zip(scanned, in_axes or []):
        rank = b.type(name).ndim
        if not -rank <= axis < rank:
            raise b.error(f"scan input axis {axis} is out of range for {rank} dimensions")
        axes.append(axis + rank if axis < 0 else axis)
    lengths = {b.type(name).shape[axis] for name, axis in zip(scanned, axes)}
    if len(lengths) != 1:
        raise b.error(f"the scan inputs have different lengths {sorted(lengths)} along their scan axes")
    length = lengths.pop()
    if length > MAX_UNROLLED_ITERATIONS:
        raise b.error(f"the scan runs {length} iterations; tcomp unrolls at most {MAX_UNROLLED_ITERATIONS}")
    parts: list[list[str]] = [[] for _ in range(outputs)]
    for step in range(length):
        slices = [_take(b, name, axis, length - 1 - step if backward else step)
                  for name, axis, backward in zip(scanned, axes, in_reverse or [])]
        results = inline_graph(b, body, [*states, *slices], f"{where}/iteration {step}")
        states = results[:len(states)]
        for k in range(outputs):
            parts[k].append(results[len(states) + k])
    stacked = []
    for k in range(outputs):
        ordered = parts[k][::-1] if (out_reverse or [])[k] else parts[k]
        stacked.append(_stack(b, body, len(states) + k, ordered, (out_axes or [])[k]))
    return [*states, *stacked]


__all__ = ["MAX_UNROLLED_ITERATIONS", "inline_graph"]
