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

from tcomp.graph.edit import Rewrite
from tcomp.graph.ir import Graph, Node, make_node
from tcomp.graph.passes.quantized_depthwise import DequantizedBytes, bytes_as, dequantized_bytes


def quantized_pooling(graph: Graph) -> Graph:
    """See the module docstring."""
    edit = Rewrite(graph)
    for node in graph.nodes:
        found = dequantized_bytes(graph, node.inputs[0], edit.producers) if node.op == "max_pool2d_nchwc" else None
        if found is not None and found.scale > 0:
            edit.replacements[node.name] = _pool_bytes(edit, node, found)
    return edit.result()


def _pool_bytes(edit: Rewrite, node: Node, found: DequantizedBytes) -> list[Node]:
    """The pooling of ``found``'s bytes and the dequantization of the maxima, under the name of ``node``'s output."""
    names = edit.names
    nodes: list[Node] = []
    data = bytes_as(edit.graph, found, node.inputs[0], node.name, names, nodes)
    pooled = names.fresh(f"{node.name}/bytes_pooled")
    nodes.append(replace(node, inputs=(data,), outputs=(pooled,)))
    value = names.fresh(f"{node.name}/pooled_float")
    nodes.append(make_node("cast", names.fresh(f"{node.name}/dequantize_cast"), [pooled], [value], dtype="float32"))
    if found.zero:
        zero = names.fresh(f"{node.name}/zero_point")
        edit.params[zero] = np.array(found.zero, np.float32)
        offset = names.fresh(f"{node.name}/pooled_offset")
        nodes.append(make_node("subtract", names.fresh(f"{node.name}/dequantize_subtract"), [value, zero], [offset]))
        value = offset
    scale = names.fresh(f"{node.name}/scale")
    edit.params[scale] = np.array(found.scale, np.float32)
    nodes.append(make_node("multiply", names.fresh(f"{node.name}/dequantize"), [value, scale], [node.outputs[0]]))
    return nodes


__all__ = ["quantized_pooling"]
