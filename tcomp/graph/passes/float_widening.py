"""Narrow floats computed in float32: ``float16_products`` and ``bfloat16_arithmetic``.

``float16_products`` (targets without float16 arithmetic): a float16 matrix product or convolution that
accumulates in float16 rounds every partial sum to 11 bits: over K = 4096 terms its result is off by about 2% of its
magnitude, where one rounding of a float32 sum is off by 0.03%. onnxruntime's CPU kernels, PyTorch's and numpy's
all accumulate such products in float32, and CPUs without float16 arithmetic convert every element anyway. So each
``conv2d``, ``conv_nd``, ``conv_transpose``, ``matmul`` and ``einsum`` node with a float16 output computes in
float32.

``bfloat16_arithmetic`` (every target: no code generator computes on bfloat16, see ``tcomp.transform.storage_types``):
every node that computes on bfloat16 values computes in float32, and its bfloat16 results are rounded once, as the
operator's own result (ONNX's semantics, and PyTorch's CPU kernels'). A reduction so sums in float32, where a
bfloat16 accumulator (8 bits of mantissa) would lose everything past the 256th equal term. Nodes that only move
or select values (``MOVES``: reshapes, transposes, slices, gathers, ``where`` ...) keep bfloat16: they round nothing.

Rewrite, for each node chosen: its narrow inputs are cast to float32 (one ``cast`` per value, shared by the nodes
that read it), the node computes in float32, and a ``cast`` back to the narrow type takes each narrow output's
name. Constant weights' casts fold (``fold_constants``); the casts of activations fuse with their producers and
consumers (``fuse_ops``).

Assumes a typed graph as imported (before ``fold_constants``, so that weights fold once in float32). Guarantees
the same interface and types. Returns the same graph when no node is chosen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from tcomp.graph.edit import Rewrite
from tcomp.graph.ir import Graph, Node, make_node

PRODUCTS = frozenset({"conv2d", "conv_nd", "conv_transpose", "matmul", "einsum"})

# nodes whose outputs are elements of their inputs (or constants of the output type): exact in any type
MOVES = frozenset({"cast", "bitcast", "reshape", "transpose", "concat", "split", "strided_slice", "take", "tile", "pad",
                   "broadcast_to", "identity", "where", "gather_elements", "gather_nd", "scatter_elements",
                   "scatter_nd", "trilu", "shape_of", "constant_of_shape", "layout_transform", "channel_shuffle",
                   "dropout"})


def float16_products(graph: Graph) -> Graph:
    """Products with a float16 output compute in float32 (see the module docstring)."""
    return _widen(graph, "float16", lambda node, dtypes: node.op in PRODUCTS and "float16" in dtypes[1])


def bfloat16_arithmetic(graph: Graph) -> Graph:
    """Nodes computing on bfloat16 compute in float32 (see the module docstring)."""
    return _widen(graph, "bfloat16", lambda node, dtypes: node.op not in MOVES and "bfloat16" in dtypes[0] + dtypes[1])


def _widen(graph: Graph, narrow: str, chosen: Callable[[Node, tuple[tuple[str, ...], tuple[str, ...]]], bool]
           ) -> Graph:
    """``graph`` with every node that ``chosen(node, (input dtypes, output dtypes))`` picks computing in float32
    between casts from and to ``narrow``."""
    edit = Rewrite(graph)
    widened: dict[str, str] = {}  # a narrow value -> its float32 cast
    for node in graph.nodes:
        dtypes = (tuple(graph.type_of(v).dtype for v in node.inputs if v),
                  tuple(graph.type_of(v).dtype for v in node.outputs))
        if chosen(node, dtypes):
            edit.replacements[node.name] = _widened(edit, node, widened, narrow)
    return edit.result()


def _widened(edit: Rewrite, node: Node, widened: dict[str, str], narrow: str) -> list[Node]:
    """``node`` on float32 casts of its ``narrow`` inputs (each value cast once, by its first reader: ``widened``),
    its ``narrow`` outputs cast back."""
    names = edit.names
    nodes: list[Node] = []
    inputs = []
    for value in node.inputs:
        if value and edit.graph.type_of(value).dtype == narrow:
            if value not in widened:
                widened[value] = names.fresh(f"{value}/float32")
                nodes.append(make_node("cast", names.fresh(f"{node.name}/widen"), [value], [widened[value]],
                                       dtype="float32"))
            value = widened[value]
        inputs.append(value)
    outputs = [names.fresh(f"{out}/float32") if edit.graph.type_of(out).dtype == narrow else out
               for out in node.outputs]
    nodes.append(replace(node, inputs=tuple(inputs), outputs=tuple(outputs)))
    for out, wide in zip(node.outputs, outputs):
        if wide != out:
            nodes.append(make_node("cast", names.fresh(f"{node.name}/narrow"), [wide], [out], dtype=narrow))
    return nodes


__all__ = ["MOVES", "PRODUCTS", "bfloat16_arithmetic", "float16_products"]
