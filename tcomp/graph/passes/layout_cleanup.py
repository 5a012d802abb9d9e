"""Layout transforms after ``alter_layout``: inverse pairs cancel, and a transform back to NCHW runs before a channel
shuffle rather than after it.

``cancel_layout_transforms``: ``layout_transform(layout_transform(x, A -> B), B -> C)`` becomes one transform
``A -> C`` of ``x`` (none when ``A == C``). ``shuffle_after_unblocking``: ``layout_transform(channel_shuffle(x), A ->
NCHW)`` becomes ``channel_shuffle(layout_transform(x, A -> NCHW))`` where nothing else reads the shuffle. Both keep
the graph's values and interface; each returns the same graph when nothing applies.
"""

from __future__ import annotations

from dataclasses import replace

from tcomp.graph.edit import Rewrite, forward_values
from tcomp.graph.ir import Graph, Node

NCHW = "NCHW"  # the layout of ONNX's 4-D data, which alter_layout leaves and returns to


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
    rewrite = Rewrite(graph)
    for node in graph.nodes:
        shuffle = rewrite.producers.get(node.inputs[0]) if node.op == "layout_transform" else None
        if shuffle is None or shuffle.op != "channel_shuffle" or node.attr("dst") != NCHW:
            continue
        if rewrite.read_only_by(shuffle.outputs[0], node):
            rewrite.removed.add(node.name)
            rewrite.replacements[shuffle.name] = [replace(node, inputs=shuffle.inputs, outputs=shuffle.outputs),
                                                  replace(shuffle, inputs=shuffle.outputs, outputs=node.outputs)]
    return rewrite.result()
