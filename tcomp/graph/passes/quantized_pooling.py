"""``quantized_pooling``: max pooling of dequantized bytes pools the bytes (CPU).

A QDQ model (onnxruntime's static quantization) max-pools in float between the ``DequantizeLinear`` of its uint8
input and a ``QuantizeLinear`` (ResNet's stem): the producer writes four bytes per value, the dequantized floats,
and the pooling reads them. Dequantizing, ``(float(x) - z) * s`` with ``s > 0``, never reverses an order, so the
maximum of the dequantized values is the dequantized maximum of the bytes. Rewrite, for ``max_pool2d_nchwc(D)``
whose data ``D`` is, through reshapes, ``(float(x) - z) * s`` or ``float(x) * s`` with ``x`` uint8, ``z`` a
constant integer in [0, 255] and ``s`` one positive constant, into

    (float(max_pool2d_nchwc(x viewed as D)) - z) * s

The padding of a window is the smallest byte, 0, where it was -inf; every window holds a value of the image, so
neither changes a maximum. The result is the float one exactly (the same arithmetic on the same bytes), and the
producer writes one byte per value where nothing else reads the floats.

Assumes a typed graph after ``alter_layout``, before ``fuse_ops``. Returns the same graph when nothing matches; the
dequantization stays for its other readers.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from tcomp.graph.edit import with_nodes
from tcomp.graph.ir import FreshNames, Graph, Node, make_node
from tcomp.graph.passes.quantized_depthwise import dequantized_bytes


def quantized_pooling(graph: Graph) -> Graph:
    """See the module docstring."""
    producers = graph.producers()
    names = FreshNames.of(graph)
    params = dict(graph.params)
    nodes: list[Node] = []
    changed = False
    for node in graph.nodes:
        found = dequantized_bytes(graph, node.inputs[0], producers) if node.op == "max_pool2d_nchwc" else None
        if found is None or not found.scale > 0:
            nodes.append(node)
            continue
        changed = True
        shape = graph.type_of(node.inputs[0]).shape
        data = found.integers
        if graph.type_of(data).shape != shape:
            data = names.fresh(f"{node.name}/bytes")
            nodes.append(make_node("reshape", names.fresh(f"{node.name}/view"), [found.integers], [data], shape=shape))
        pooled = names.fresh(f"{node.name}/bytes_pooled")
        nodes.append(replace(node, inputs=(data,), outputs=(pooled,)))
        value = names.fresh(f"{node.name}/pooled_float")
        nodes.append(make_node("cast", names.fresh(f"{node.name}/dequantize_cast"), [pooled], [value],
                               dtype="float32"))
        if found.zero:
            zero = names.fresh(f"{node.name}/zero_point")
            params[zero] = np.array(found.zero, np.float32)
            offset = names.fresh(f"{node.name}/pooled_offset")
            nodes.append(make_node("subtract", names.fresh(f"{node.name}/dequantize_subtract"), [value, zero],
                                   [offset]))
            value = offset
        scale = names.fresh(f"{node.name}/scale")
        params[scale] = np.array(found.scale, np.float32)
        nodes.append(make_node("multiply", names.fresh(f"{node.name}/dequantize"), [value, scale], [node.outputs[0]]))
    if not changed:
        return graph
    return with_nodes(graph, nodes, params)


__all__ = ["quantized_pooling"]
