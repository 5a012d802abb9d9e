"""``quantized_depthwise``: depthwise convolutions of dequantized bytes read the bytes (CPU).

A QDQ model (onnxruntime's static quantization) runs a depthwise convolution in float between the
``DequantizeLinear`` of its uint8 input and a ``QuantizeLinear`` (MobileNet's and EfficientNet's blocks): the
producer writes four bytes per value, the dequantized floats, and the convolution reads them. Rewrite, for
``depthwise_conv2d_nchwc(D, W)`` whose data ``D`` is, through reshapes, ``(float(x) - z) * s`` or ``float(x) * s``
with ``x`` uint8, ``z`` a constant integer in [0, 255] and ``s`` one constant, and ``W`` constant, into

    depthwise_conv2d_nchwc(x viewed as D, W * s, pad_value=z) - z * sum_taps(W * s)

(the subtraction, per channel, only where ``z`` is not 0): the convolution converts each byte as it reads it, its
padding is the byte ``z`` (the zero a padded ``D`` holds), and the producer writes one byte per value. The result
differs from the float one by roundings only (the scale is applied to the weights once, not to every value).

Assumes a typed graph after ``alter_layout`` with constants folded (``W`` a parameter), before ``fuse_ops``.
Returns the same graph when nothing matches; the dequantization stays for its other readers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from tcomp.graph.edit import Rewrite
from tcomp.graph.ir import FreshNames, Graph, Node, make_node


@dataclass(frozen=True)
class DequantizedBytes:
    """``(float(integers) - zero) * scale``: uint8 ``integers``, ``zero`` and ``scale`` Python numbers."""

    integers: str
    zero: int
    scale: float


def _scalar(graph: Graph, name: str) -> float | None:
    value = graph.params.get(name)
    return float(value.reshape(-1)[0]) if value is not None and value.size == 1 else None


def dequantized_bytes(graph: Graph, value: str, producers: dict[str, Node]) -> DequantizedBytes | None:
    """The ``DequantizedBytes`` that ``value`` is, looking through reshapes; None where it is none."""
    node = producers.get(value)
    while node is not None and node.op == "reshape":
        node = producers.get(node.inputs[0])
    if node is None or node.op != "multiply":
        return None
    left, right = node.inputs
    left_scale, right_scale = _scalar(graph, left), _scalar(graph, right)
    if (left_scale is None) == (right_scale is None):
        return None
    offset, scale = (right, left_scale) if left_scale is not None else (left, right_scale)
    assert scale is not None
    inner = producers.get(offset)
    zero = 0.0
    if inner is not None and inner.op == "subtract":
        zero_value = _scalar(graph, inner.inputs[1])
        if zero_value is None:
            return None
        zero, inner = zero_value, producers.get(inner.inputs[0])
    if inner is None or inner.op != "cast" or graph.type_of(inner.inputs[0]).dtype != "uint8":
        return None
    if not (zero.is_integer() and 0 <= zero <= 255) or graph.type_of(inner.outputs[0]).dtype != "float32":
        return None
    return DequantizedBytes(inner.inputs[0], int(zero), scale)


def bytes_as(graph: Graph, found: DequantizedBytes, dequantized: str, reader: str, names: FreshNames,
             nodes: list[Node]) -> str:
    """The bytes ``found`` shaped as their ``dequantized`` values are: the bytes themselves, or a ``reshape`` of them
    (named after the node ``reader`` that reads them) appended to ``nodes``."""
    shape = graph.type_of(dequantized).shape
    if graph.type_of(found.integers).shape == shape:
        return found.integers
    data = names.fresh(f"{reader}/bytes")
    nodes.append(make_node("reshape", names.fresh(f"{reader}/view"), [found.integers], [data], shape=shape))
    return data


def _rewritable(graph: Graph, node: Node, producers: dict[str, Node]) -> DequantizedBytes | None:
    """The bytes ``node`` convolves, where it is a float depthwise convolution of dequantized bytes with a constant
    weight; else None."""
    if node.op != "depthwise_conv2d_nchwc" or node.attr("pad_value", 0):
        return None
    data, weight = node.inputs
    if weight not in graph.params or graph.type_of(weight).dtype != "float32":
        return None
    return dequantized_bytes(graph, data, producers)


def quantized_depthwise(graph: Graph) -> Graph:
    """See the module docstring."""
    edit = Rewrite(graph)
    for node in graph.nodes:
        found = _rewritable(graph, node, edit.producers)
        if found is not None:
            edit.replacements[node.name] = _convolve_bytes(edit, node, found)
    return edit.result()


def _convolve_bytes(edit: Rewrite, node: Node, found: DequantizedBytes) -> list[Node]:
    """The nodes that compute ``node`` from ``found``'s bytes (see the module docstring)."""
    nodes: list[Node] = []
    dequantized, weight = node.inputs
    data = bytes_as(edit.graph, found, dequantized, node.name, edit.names, nodes)
    scaled = (edit.graph.params[weight].astype(np.float64) * found.scale).astype(np.float32)
    scaled_name = edit.names.fresh(f"{weight}/scaled")
    edit.params[scaled_name] = scaled
    output = node.outputs[0]
    if found.zero:
        output = edit.names.fresh(f"{node.name}/bytes_product")
    nodes.append(replace(node, inputs=(data, scaled_name), outputs=(output,)).with_attrs(pad_value=found.zero))
    if found.zero:  # [C // b, 1, KH, KW, 1, b] -> the per-channel sum of the taps, [1, C // b, 1, 1, b]
        taps = scaled.astype(np.float64).sum(axis=(1, 2, 3, 4))
        correction = (found.zero * taps).astype(np.float32).reshape(1, taps.shape[0], 1, 1, taps.shape[1])
        correction_name = edit.names.fresh(f"{node.name}/zero_point_taps")
        edit.params[correction_name] = correction
        nodes.append(make_node("subtract", edit.names.fresh(f"{node.name}/zero_point"), [output, correction_name],
                               [node.outputs[0]]))
    return nodes


__all__ = ["DequantizedBytes", "bytes_as", "dequantized_bytes", "quantized_depthwise"]
