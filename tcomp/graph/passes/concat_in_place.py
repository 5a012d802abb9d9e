"""``concat_in_place``: concatenations whose producers write their parts straight into the result.

Rewrite, for each ``concat`` whose parts each fill one byte range of the result (every dimension before ``axis``
is 1: batch-1 channel concatenation, in NCHW or in a blocked NCHW[x]c layout):

1. A unary elementwise operator of the same dtype that is the result's only reader moves in front of the parts
   (``relu(concat(a, b))`` becomes ``concat(relu(a), relu(b))``), so it fuses into each part's producer; a chain of
   them moves one by one (up to ``_MAX_PUSHES``).
2. A part that cannot lie inside the result's storage is copied first by an ``identity`` node: a graph input or
   output, a parameter, a part listed twice, or a value an earlier in-place concat already holds.
3. The concat gets ``in_place=True``.

Assumes: a typed graph before ``fuse_ops`` (which keeps in-place concats alone) and ``plan_memory`` (which places
each part at its byte offset in the result's storage; the concat then runs no kernel). A part may itself be the
result of an in-place concat: it is placed inside the outer result. Guarantees: the values are unchanged; every
part of an in-place concat is computed by a node, is no graph output, and is held by no other in-place concat.
Returns the same graph when it has no such concat.
"""

from __future__ import annotations

import math
from dataclasses import replace

from tcomp.graph.edit import Rewrite, with_nodes
from tcomp.graph.ir import FreshNames, Graph, Node, make_node
from tcomp.graph.op import OpPattern, get_op

_MAX_PUSHES = 8


def contiguous_parts(graph: Graph, node: Node) -> bool:
    """Whether every part of ``concat`` node ``node`` fills one byte range of its result (all leading
    dimensions before the axis are 1)."""
    if node.op != "concat" or len(node.outputs) != 1:
        return False
    shape = graph.type_of(node.outputs[0]).shape
    if not shape:
        return False
    axis = int(node.attr("axis", 0)) % len(shape)
    return math.prod(shape[:axis]) == 1 and graph.type_of(node.outputs[0]).numel > 0


def _unary_same_dtype(graph: Graph, node: Node) -> bool:
    if len(node.inputs) != 1 or len(node.outputs) != 1 or not node.inputs[0]:
        return False
    if get_op(node.op).pattern is not OpPattern.ELEMWISE:
        return False
    return graph.type_of(node.inputs[0]) == graph.type_of(node.outputs[0])


def _push_unary(graph: Graph) -> Graph:
    """Step 1: ``op(concat(parts))`` -> ``concat(op(part) ...)`` where ``op`` is the concat's only reader."""
    rewrite = Rewrite(graph)
    for node in graph.nodes:
        if not contiguous_parts(graph, node):
            continue
        readers = rewrite.consumers.get(node.outputs[0], [])
        if len(readers) != 1 or not rewrite.read_only_by(node.outputs[0], readers[0]) or \
                not _unary_same_dtype(graph, readers[0]):
            continue
        reader, names, replacement, parts = readers[0], rewrite.names, [], []
        for part in node.inputs:
            out = names.fresh(f"{part}/{reader.op}")
            replacement.append(replace(reader, name=names.fresh(f"{reader.name}/{part}"), inputs=(part,),
                                       outputs=(out,)))
            parts.append(out)
        replacement.append(replace(node, inputs=tuple(parts), outputs=reader.outputs))
        rewrite.removed.add(reader.name)
        rewrite.replacements[node.name] = replacement
    return rewrite.result()


def concat_in_place(graph: Graph) -> Graph:
    """See the module docstring."""
    if not any(contiguous_parts(graph, node) for node in graph.nodes):
        return graph
    changed = False
    for _ in range(_MAX_PUSHES):  # a chain of readers (relu, then sigmoid) moves one operator per round
        pushed = _push_unary(graph)
        if pushed is graph:
            break
        graph, changed = pushed, True
    names = FreshNames.of(graph)
    produced = {out for node in graph.nodes for out in node.outputs}
    fixed = set(graph.inputs) | set(graph.outputs)
    held: set[str] = set()
    result: list[Node] = []
    for node in graph.nodes:
        if not contiguous_parts(graph, node):
            result.append(node)
            continue
        parts = []
        for part in node.inputs:
            if part in produced and part not in fixed and part not in held:
                held.add(part)
                parts.append(part)
                continue
            copy = names.fresh(f"{part}/part")
            result.append(make_node("identity", names.fresh(f"{node.name}/copy"), [part], [copy]))
            held.add(copy)
            parts.append(copy)
        changed = changed or tuple(parts) != node.inputs or not node.attr("in_place")
        result.append(replace(node, inputs=tuple(parts)).with_attrs(in_place=True))
    return with_nodes(graph, result) if changed else graph
