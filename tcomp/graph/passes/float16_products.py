"""``float16_products``: products of float16 tensors are computed in float32 (targets without float16 arithmetic).

A float16 matrix product or convolution that accumulates in float16 rounds every partial sum to 11 bits: over
K = 4096 terms its result is off by about 2% of its magnitude, where one rounding of a float32 sum is off by 0.03%.
onnxruntime's CPU kernels, PyTorch's and numpy's all accumulate such products in float32, and CPUs without
float16 arithmetic convert every element anyway.

Rewrite, for each ``conv2d``, ``conv_nd``, ``conv_transpose``, ``matmul`` and ``einsum`` node with a float16
output: its float16 inputs are cast to float32 (one ``cast`` per value, shared by the products that read it), the
node computes in float32, and a ``cast`` back to float16 takes the node's output name. Constant weights' casts fold
(``fold_constants``); the casts of activations fuse with their producers and consumers (``fuse_ops``).

Assumes a typed graph as imported (before ``fold_constants``, so that weights fold once in float32). Guarantees
the same interface and types, each product rounded to float16 once. Returns the same graph when no product is
float16.
"""

from __future__ import annotations

from dataclasses import replace

from tcomp.graph.edit import Rewrite
from tcomp.graph.ir import Graph, Node, make_node

PRODUCTS = frozenset({"conv2d", "conv_nd", "conv_transpose", "matmul", "einsum"})


def _is_half_product(graph: Graph, node: Node) -> bool:
    return node.op in PRODUCTS and any(graph.type_of(o).dtype == "float16" for o in node.outputs)


def float16_products(graph: Graph) -> Graph:
    """See the module docstring."""
    edit = Rewrite(graph)
    widened: dict[str, str] = {}  # a float16 value -> its float32 cast
    for node in graph.nodes:
        if _is_half_product(graph, node):
            edit.replacements[node.name] = _widened_product(edit, node, widened)
    return edit.result()


def _widened_product(edit: Rewrite, node: Node, widened: dict[str, str]) -> list[Node]:
    """``node`` on float32 casts of its float16 inputs (each value cast once, by its first reader: ``widened``),
    its outputs cast back to float16."""
    names = edit.names
    nodes: list[Node] = []
    inputs = []
    for value in node.inputs:
        if value and edit.graph.type_of(value).dtype == "float16":
            if value not in widened:
                widened[value] = names.fresh(f"{value}/float32")
                nodes.append(make_node("cast", names.fresh(f"{node.name}/widen"), [value], [widened[value]],
                                       dtype="float32"))
            value = widened[value]
        inputs.append(value)
    outputs = [names.fresh(f"{out}/float32") for out in node.outputs]
    nodes.append(replace(node, inputs=tuple(inputs), outputs=tuple(outputs)))
    for out, wide in zip(node.outputs, outputs):
        nodes.append(make_node("cast", names.fresh(f"{node.name}/narrow"), [wide], [out], dtype="float16"))
    return nodes


__all__ = ["PRODUCTS", "float16_products"]
