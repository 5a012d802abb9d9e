"""``integer_products``: a float product of dequantized 8-bit operands becomes an integer product, scaled (CPU).

A QDQ model (onnxruntime's static quantization, its default format) computes each product in float between a
``DequantizeLinear`` of 8-bit activations and one of constant 8-bit weights. Rewrite, for ``matmul(A, B)`` with

- ``A = (float(a) - za) * sa``: ``a`` uint8, ``za`` and ``sa`` one value each (per tensor);
- ``B = (float(W) - zb) * sb``: ``W`` a constant ``[K, N]`` of 8 bits, ``zb`` and ``sb`` per tensor or per column,
  ``W - zb`` within int8 (int8 weights with zero point 0, uint8 ones with 128: what the integer GEMM takes),

into ``float((int32(a) - za) @ (int32(W) - zb)) * (sa * sb)``: the int32 product of the offset integers, exact,
times the scales once (as onnxruntime runs such a model), which ``quantized_weights`` then runs on the integer GEMM.
Likewise a ``conv2d`` (one group, no bias input: ONNX's bias is an ``add`` after it) of such data
``[N, C, H, W]`` and a weight ``[O, C, KH, KW]`` whose zero point and scale are per tensor or per output channel
(``[O, 1, 1, 1]`` or ``[O]``) becomes the int32 convolution times the scales (``[O, 1, 1]`` per channel). A
transposed weight (``Gemm`` with ``transB``) counts as the transposed constant where its zero point and scale are
per tensor.
The result differs from the float product by its roundings (the float one rounds every step of K). Products whose
sums could overflow int32 (K over 33025) stay.

Assumes a typed graph as imported, before constant folding folds the weights' ``DequantizeLinear``; the pipeline
runs it first for CPU targets, then ``quantized_weights`` (both only where ``integer_gemm_pays``). Returns the same
graph when nothing matches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from tcomp.graph.edit import Rewrite
from tcomp.graph.ir import FreshNames, Graph, Node, make_node
from tcomp.graph.passes.quantized_weights import Offset, int8_offset, offset_of
from tcomp.graph.shared_constants import SharedConstants, derive
from tcomp.ops.cpu.common import CpuTarget
from tcomp.ops.cpu.quantized_matmul import integer_gemm_pays
from tcomp.target import Target

# the deepest product whose int32 sums cannot overflow: K x 255 x 255 < 2**31
MAX_DEPTH = (2**31 - 1) // (255 * 255)


@dataclass(frozen=True)
class _Dequantized:
    """``offset * scale``: 8-bit integers offset by their zero point in float32 (``Offset``), scaled."""

    offset: Offset
    scale: str


def _dequantized(graph: Graph, value: str, producers: dict[str, Node]) -> _Dequantized | None:
    product = producers.get(value)
    if product is None or product.op != "multiply":
        return None
    inner, scale = product.inputs
    offset = offset_of(graph, inner, producers, "float32")
    if offset is None or graph.type_of(scale).dtype != "float32":
        return None
    return _Dequantized(offset, scale)


def _per_tensor(graph: Graph, name: str) -> bool:
    return not name or graph.type_of(name).numel == 1


def _per_column(graph: Graph, name: str, shapes: tuple[tuple[int, ...], ...]) -> bool:
    """One value, or one per column of the result, of one of ``shapes``."""
    return _per_tensor(graph, name) or graph.type_of(name).shape in shapes


def _integer_product(graph: Graph, node: Node, a: _Dequantized, b: _Dequantized, names: FreshNames) -> list[Node]:
    """The nodes that compute ``node``'s result as the scaled int32 product of ``a`` and ``b``'s integers."""
    nodes: list[Node] = []

    def fresh(hint: str) -> str:
        return names.fresh(f"{node.name}/{hint}")

    def offset(operand: _Dequantized, hint: str) -> str:
        wide = fresh(f"{hint}_int32")
        nodes.append(make_node("cast", fresh("cast"), (operand.offset.integers,), (wide,), dtype="int32"))
        if not operand.offset.zero:
            return wide
        zero, shifted = fresh(f"{hint}_zero_int32"), fresh(f"{hint}_offset")
        nodes.append(make_node("cast", fresh("cast"), (operand.offset.zero,), (zero,), dtype="int32"))
        nodes.append(make_node("subtract", fresh("subtract"), (wide, zero), (shifted,)))
        return shifted

    total, as_float, scale = fresh("int32_product"), fresh("product"), fresh("scale")
    nodes.append(replace(node, inputs=(offset(a, "a"), offset(b, "b")), outputs=(total,)))
    nodes.append(make_node("cast", fresh("cast"), (total,), (as_float,), dtype="float32"))
    nodes.append(make_node("multiply", fresh("scales"), (a.scale, b.scale), (scale,)))
    if node.op == "conv2d" and graph.type_of(b.scale).numel > 1:  # per output channel: [O, 1, 1] against NCHW
        channels, scale = scale, fresh("channel_scale")
        nodes.append(make_node("reshape", fresh("reshape"), (channels,), (scale,),
                               shape=(graph.type_of(b.scale).numel, 1, 1)))
    nodes.append(make_node("multiply", fresh("scaled"), (as_float, scale), node.outputs))
    return nodes


def _operands(graph: Graph, node: Node, producers: dict[str, Node],
              constants: SharedConstants | None) -> tuple[_Dequantized, _Dequantized] | None:
    """``node``'s dequantized operands when it is a product the module docstring rewrites."""
    if node.op not in ("matmul", "conv2d") or node.attr("transpose_b", False) or len(node.inputs) != 2:
        return None
    a = _dequantized(graph, node.inputs[0], producers)
    b = _dequantized(graph, node.inputs[1], producers)
    if a is None or b is None or graph.type_of(a.offset.integers).dtype != "uint8":
        return None
    weight = graph.type_of(b.offset.integers)
    if node.op == "matmul" and weight.ndim == 2:
        depth, columns = weight.shape[0], ((weight.shape[1],), (1, weight.shape[1]))
    elif weight.ndim == 4 and node.attr("groups", 1) == 1:
        depth, columns = math.prod(weight.shape[1:]), ((weight.shape[0], 1, 1, 1), (weight.shape[0],))
    else:
        return None
    if not 0 < depth <= MAX_DEPTH:
        return None
    if not (_per_tensor(graph, a.offset.zero) and _per_tensor(graph, a.scale)):
        return None
    if not (_per_column(graph, b.offset.zero, columns) and _per_column(graph, b.scale, columns)):
        return None
    return (a, b) if int8_offset(graph, b.offset, constants) is not None else None


def _dequantize(node: Node, weight: _Dequantized, names: FreshNames) -> list[Node]:
    """The nodes that compute ``weight`` as ``node``'s output."""

    def fresh(hint: str) -> str:
        return names.fresh(f"{node.name}/{hint}")

    value = fresh("float")
    nodes = [make_node("cast", fresh("cast"), (weight.offset.integers,), (value,), dtype="float32")]
    if weight.offset.zero:
        shifted = fresh("offset")
        nodes.append(make_node("subtract", fresh("subtract"), (value, weight.offset.wide_zero), (shifted,)))
        value = shifted
    nodes.append(make_node("multiply", fresh("scale"), (value, weight.scale), node.outputs))
    return nodes


def _transposed_weights(graph: Graph, constants: SharedConstants | None) -> Graph:
    """``transpose(B)`` of a dequantized constant ``[N, K]`` (its zero point and scale per tensor) becomes the
    dequantization of the transposed constant (a new parameter): ``Gemm`` with ``transB`` imports so."""
    edit = Rewrite(graph)
    for node in graph.nodes:
        if node.op != "transpose" or tuple(node.attr("perm", ())) != (1, 0):
            continue
        weight = _dequantized(graph, node.inputs[0], edit.producers)
        integers = graph.params.get(weight.offset.integers) if weight is not None else None
        if weight is None or integers is None or not (_per_tensor(graph, weight.offset.zero)
                                                      and _per_tensor(graph, weight.scale)):
            continue
        turned = edit.names.fresh(f"{weight.offset.integers}/transposed")
        edit.params[turned] = derive(constants, ("transposed",), (integers,),
                                     partial(np.ascontiguousarray, integers.T))
        nodes = _dequantize(node, replace(weight, offset=replace(weight.offset, integers=turned)), edit.names)
        edit.replacements[node.name] = nodes
    return edit.result()


def integer_products(graph: Graph, target: Target, constants: SharedConstants | None = None) -> Graph:
    """See the module docstring; ``constants``: as ``quantized_weights`` takes them (the weights' int8 offsets are
    derived once, here, for both passes)."""
    if not integer_gemm_pays(CpuTarget.of(target)):
        return graph
    graph = _transposed_weights(graph, constants)
    edit = Rewrite(graph)
    for node in graph.nodes:
        operands = _operands(graph, node, edit.producers, constants)
        if operands is not None:
            edit.replacements[node.name] = _integer_product(graph, node, *operands, edit.names)
    return edit.result()
