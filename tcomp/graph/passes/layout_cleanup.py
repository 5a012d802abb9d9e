"""Layout transforms after ``alter_layout``: inverse pairs cancel, and a transform back to NCHW runs before a channel
shuffle rather than after it.

``cancel_layout_transforms``: ``layout_transform(layout_transform(x, A -> B), B -> C)`` becomes one transform
``A -> C`` of ``x`` (none when ``A == C``). ``shuffle_after_unblocking``: ``layout_transform(channel_shuffle(x), A ->
NCHW)`` becomes ``channel_shuffle(layout_transform(x, A -> NCHW))`` where nothing else reads the shuffle. Both keep
the graph's values and interface; each returns the same graph when nothing applies.
"""

from __future__ import annotations

from dataclasses import replace

from tcomp.graph.edit import forward_values, with_nodes
from tcomp.graph.ir import Graph, Node

NCHW = "NCHW"


def cancel_layout_transforms(graph: Graph) -> Graph:
    """``layout_transform(layout_transform(x, A -> B), B -> C)`` reads ``x`` directly: one transform ``A -> C``, or
    none when ``A == C``. The inner transform goes away when nothing else reads it."""
    producers = graph.producers()
    rename: dict[str, str] = {}
    nodes: list[Node] = []
    changed = False
    for node in graph.nodes:
        inputs = tuple(rename.get(i, i) for i in node.inputs)
        node = node if inputs == node.inputs else replace(node, inputs=inputs)
        inner = producers.get(node.inputs[0]) if node.op == "layout_transform" else None
        if inner is not None and inner.op == "layout_transform" and inner.attr("dst") == node.attr("src"):
            changed = True
            source = inner.inputs[0]
            if inner.attr("src") == node.attr("dst"):
                rename[node.outputs[0]] = rename.get(source, source)
                continue
            node = node.with_attrs(src=inner.attr("src"))
            node = replace(node, inputs=(rename.get(source, source),))
        nodes.append(node)
    if not changed:
        return graph
    return forward_values(graph, nodes, rename)


def shuffle_after_unblocking(graph: Graph) -> Graph:
    """``layout_transform(channel_shuffle(x), A -> NCHW)`` becomes ``channel_shuffle(layout_transform(x, A ->
    NCHW))`` where nothing else reads the shuffle (a shuffle is the same permutation of channels in any layout)."""
    consumers = graph.consumers()
    producers = graph.producers()
    swapped: dict[str, Node] = {}  # shuffle node name -> the transform to run before it
    for node in graph.nodes:
        shuffle = producers.get(node.inputs[0]) if node.op == "layout_transform" else None
        if shuffle is None or shuffle.op != "channel_shuffle" or node.attr("dst") != NCHW:
            continue
        if len(consumers.get(shuffle.outputs[0], [])) == 1 and shuffle.outputs[0] not in graph.outputs:
            swapped[shuffle.name] = node
    if not swapped:
        return graph
    moved = {transform.name for transform in swapped.values()}
    nodes: list[Node] = []
    for node in graph.nodes:
        if node.name in moved:
            continue
        transform = swapped.get(node.name)
        if transform is None:
            nodes.append(node)
            continue
        nodes.append(replace(transform, inputs=node.inputs, outputs=node.outputs))
        nodes.append(replace(node, inputs=node.outputs, outputs=transform.outputs))
    return with_nodes(graph, nodes)
