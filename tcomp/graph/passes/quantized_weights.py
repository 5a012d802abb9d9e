"""``quantized_weights``: the int32 product of 8-bit rows and a constant 8-bit weight runs on the integer GEMM (CPU).

Rewrite: ``matmul(A, B)`` where both operands are 8-bit integers widened to int32 and offset by their zero points
(``Offset``: ``cast(q)`` or ``subtract(cast(q), cast(z))``, as ``MatMulInteger`` and ``QLinearMatMul`` import and
``integer_products`` writes) with

- ``A``'s integers uint8 rows ``x``, their zero point one value (computed, as ``DynamicQuantizeLinear`` gives it, or
  constant);
- ``B``'s integers a constant ``[K, N]`` weight ``W`` and its zero point constant, per tensor or per column, with
  ``W - zb`` within int8 (an int8 weight with zero point 0, a uint8 one with 128),

becomes ``quantized_matmul(x, P, S, z)``: ``P`` the weight's offset packed once by ``pack_quantized_panels`` in the
plan's panels (``tcomp.ops.cpu.quantized_matmul.quantized_plan``), ``S`` its column sums, ``z`` A's zero point in
int32 (0 where there is none). The product then reads a quarter of the bytes and multiplies four steps per int32
lane and instruction where the CPU has VNNI (``vpdpbusd``), else half the bytes and two steps (``pmaddwd``, weights
stored as int16). Made where the CPU has either instruction at its register width
(``tcomp.ops.cpu.quantized_matmul.integer_gemm_pays``, with the speeds measured against the int32 product).

A convolution whose kernel tiles its input (``conv2d`` with strides equal to the kernel, no padding or dilation,
one group, a batch of one: a vision transformer's patch embedding), of such rows and a constant ``[O, C, P, Q]``
weight (its zero point per tensor or per output channel), is that product over the patches: the rows
``[H / P * W / Q, C * P * Q]`` gathered by a reshape and a transpose of the uint8 input, the product transposed back
to ``[1, O, H / P, W / Q]`` (ViT-B/16 under ``quantize_dynamic``: its int32 patch convolution took 4 ms of 66; the
whole model 1.01 -> 0.96 of onnxruntime's median).

Assumes a typed graph as imported, before constant folding: the weights are read as their 8-bit integers and zero
points, never as the int32 offsets folding would make (four times the bytes of the model's weights, and kept by
``constants`` while a specialization lives). The pipeline runs it right after ``integer_products`` for CPU targets.
Guarantees the same values (integer arithmetic is exact); returns the same graph when nothing applies (signed rows,
zero points per row, a computed weight, offsets beyond int8).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import numpy as np

from tcomp.graph.edit import Rewrite
from tcomp.graph.ir import Graph, Node, make_node
from tcomp.graph.shared_constants import SharedConstants, derive
from tcomp.ops.cpu.common import CpuTarget
from tcomp.ops.cpu.quantized_matmul import integer_gemm_pays, panel_group, quantized_plan
from tcomp.ops.quantized import pack_quantized_panels
from tcomp.target import Target


@dataclass(frozen=True)
class Offset:
    """``cast(integers) - cast(zero)`` (``cast(integers)`` where ``zero`` is empty): 8-bit integers widened and
    offset by their zero point, as the graph computes them; ``wide_zero`` is the widened zero point."""

    integers: str
    zero: str = ""
    wide_zero: str = ""


def offset_of(graph: Graph, value: str, producers: dict[str, Node], dtype: str) -> Offset | None:
    """The ``Offset`` that ``value`` is, widened to ``dtype``; None where it is none."""
    node = producers.get(value)
    zero = wide_zero = ""
    if node is not None and node.op == "subtract":
        value, wide_zero = node.inputs
        source = producers.get(wide_zero)
        if source is None or source.op != "cast":
            return None
        zero = source.inputs[0]
        node = producers.get(value)
    if node is None or node.op != "cast" or graph.type_of(node.outputs[0]).dtype != dtype:
        return None
    integers = node.inputs[0]
    if graph.type_of(integers).dtype not in ("uint8", "int8"):
        return None
    if zero and graph.type_of(zero).dtype != graph.type_of(integers).dtype:
        return None
    return Offset(integers, zero, wide_zero)


def int8_offset(graph: Graph, weight: Offset, constants: SharedConstants | None) -> np.ndarray | None:
    """A constant weight's integers minus their constant zero point (broadcast against them), as int8, where every
    value fits; else None. Derived once per weight for all specializations."""
    integers = graph.params.get(weight.integers)
    zero = graph.params.get(weight.zero) if weight.zero else np.zeros((), integers.dtype if integers is not None
                                                                          else np.int8)
    if integers is None or zero is None or integers.size == 0:
        return None
    offset = derive(constants, ("int8 offset",), (integers, zero), partial(_within_int8, integers, zero))
    return offset if offset.size else None


def _within_int8(integers: np.ndarray, zero: np.ndarray) -> np.ndarray:
    """``integers - zero`` as int8, or an empty array where a value leaves int8 or the shapes do not broadcast."""
    try:
        offset = integers.astype(np.int16) - zero.astype(np.int16)
    except ValueError:
        return np.zeros(0, np.int8)
    if offset.shape != integers.shape or offset.min() < -128 or offset.max() > 127:
        return np.zeros(0, np.int8)
    return offset.astype(np.int8)


def _rows(graph: Graph, value: str, producers: dict[str, Node]) -> Offset | None:
    """The ``Offset`` ``value`` is, when its integers are uint8 rows and its zero point one int32 value."""
    rows = offset_of(graph, value, producers, "int32")
    if rows is None or graph.type_of(rows.integers).dtype != "uint8":
        return None
    if rows.wide_zero and graph.type_of(rows.wide_zero).shape != ():
        return None
    return rows


def _weight(graph: Graph, node: Node, producers: dict[str, Node], constants: SharedConstants | None,
            ) -> np.ndarray | None:
    """The int8 weight of ``node``, a product's ``[K, N]`` or a patch convolution's ``[O, C, P, Q]`` (see the module
    docstring)."""
    offset = offset_of(graph, node.inputs[1], producers, "int32")
    if offset is None or node.op not in ("matmul", "conv2d") or node.attr("transpose_b", False):
        return None
    weight, x = int8_offset(graph, offset, constants), graph.type_of(node.inputs[0])
    if weight is None or weight.ndim != (2 if node.op == "matmul" else 4):
        return None
    if node.op == "matmul":
        return weight if x.ndim >= 2 and x.shape[-1] == weight.shape[0] else None
    kernel = tuple(weight.shape[2:])
    if tuple(node.attr("strides")) != kernel or any(node.attr("pads")) or tuple(node.attr("dilations")) != (1, 1):
        return None
    if node.attr("groups", 1) != 1 or x.shape[0] != 1 or x.shape[2] % kernel[0] or x.shape[3] % kernel[1]:
        return None
    return weight


def _matrix(weight: np.ndarray) -> np.ndarray:
    """A product's ``[K, N]`` weight, or a patch convolution's ``[O, C, P, Q]`` one as ``[C * P * Q, O]``."""
    return weight if weight.ndim == 2 else weight.reshape(weight.shape[0], -1).T


def _patch_rows(edit: Rewrite, node: Node, x: str, nodes: list[Node]) -> str:
    """``x`` (``[1, C, H, W]``) as the rows of its ``P x Q`` patches, ``[H / P * W / Q, C * P * Q]``."""
    _, c, h, w = edit.graph.type_of(x).shape
    p, q = edit.graph.type_of(node.inputs[1]).shape[2:]
    split, moved, rows = (edit.names.fresh(f"{node.name}/{hint}") for hint in ("split", "moved", "patches"))
    nodes.append(make_node("reshape", edit.names.fresh(f"{node.name}_split"), (x,), (split,),
                           shape=(c, h // p, p, w // q, q)))
    nodes.append(make_node("transpose", edit.names.fresh(f"{node.name}_move"), (split,), (moved,),
                           perm=(1, 3, 0, 2, 4)))
    nodes.append(make_node("reshape", edit.names.fresh(f"{node.name}_rows"), (moved,), (rows,),
                           shape=(h // p * (w // q), c * p * q)))
    return rows


def _packed(weight: np.ndarray, nr: int, depth: int, group: int) -> np.ndarray:
    return pack_quantized_panels(_matrix(weight), nr, depth, group)


def _column_sums(weight: np.ndarray) -> np.ndarray:
    return _matrix(weight).sum(axis=0, dtype=np.int64).astype(np.int32)


def quantized_weights(graph: Graph, target: Target, constants: SharedConstants | None = None) -> Graph:
    """See the module docstring; ``constants``: where the weights packed by earlier specializations are kept
    (``tcomp.graph.shared_constants``)."""
    cpu = CpuTarget.of(target)
    if not integer_gemm_pays(cpu):
        return graph
    edit = Rewrite(graph)
    for node in graph.nodes:
        weight = _weight(graph, node, edit.producers, constants) if node.op in ("matmul", "conv2d") else None
        rows = _rows(graph, node.inputs[0], edit.producers) if weight is not None else None
        if weight is None or rows is None:
            continue
        replacement: list[Node] = []
        x = rows.integers if node.op == "matmul" else _patch_rows(edit, node, rows.integers, replacement)
        x_type = graph.type_of(node.inputs[0])
        k, n = _matrix(weight).shape
        # the product's rows: the patches (each of k steps) or the leading dimensions of x
        count = x_type.numel // k if node.op == "conv2d" else math.prod(x_type.shape[:-1])
        plan = quantized_plan(count, n, k, cpu)
        nr, group = plan.blocking.nr, panel_group(cpu)
        panels = edit.names.fresh(f"{node.inputs[1]}/quantized_panels{nr}")
        edit.params[panels] = derive(constants, ("quantized_panels", nr, plan.Kp, group), (weight,),
                                     partial(_packed, weight, nr, plan.Kp, group))
        sums = edit.names.fresh(f"{node.inputs[1]}/column_sums")
        edit.params[sums] = derive(constants, ("column_sums",), (weight,), partial(_column_sums, weight))
        zero = rows.wide_zero
        if not zero:
            zero = edit.names.fresh(f"{node.name}/zero")
            edit.params[zero] = np.zeros((), np.int32)
        if node.op == "matmul":
            replacement.append(make_node("quantized_matmul", node.name, (x, panels, sums, zero), node.outputs,
                                         columns=n))
        else:
            product, turned = (edit.names.fresh(f"{node.name}/{hint}") for hint in ("product", "channels"))
            replacement += [
                make_node("quantized_matmul", node.name, (x, panels, sums, zero), (product,), columns=n),
                make_node("transpose", edit.names.fresh(f"{node.name}_channels"), (product,), (turned,), perm=(1, 0)),
                make_node("reshape", edit.names.fresh(f"{node.name}_image"), (turned,), node.outputs,
                          shape=graph.type_of(node.outputs[0]).shape),
            ]
        edit.replacements[node.name] = replacement
    return edit.result()
