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

A convolution (``conv2d``, one group) of such rows (uint8 ``[N, C, H, W]``) and a constant ``[O, C, KH, KW]``
weight (its zero point per tensor or per output channel) becomes ``quantized_conv2d``: the same product over the
windows of the input, the weight packed as ``conv_weight_matrix`` gives it (``tcomp.ops.quantized``); ``alter_layout``
then runs it on channels-last rows. A 1-D convolution (imported as a 2-D one over its operands viewed with a row of
one) likewise, its uint8 data viewed so.

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
from tcomp.ops.quantized import conv_weight_matrix, pack_quantized_panels
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


def _viewed(graph: Graph, value: str, producers: dict[str, Node]) -> str:
    """What ``value`` views: the input of a reshape that only inserts dimensions of 1 (the importer runs a 1-D
    convolution as a 2-D one over ``[N, C, 1, L]``), else ``value`` itself."""
    node = producers.get(value)
    if node is None or node.op != "reshape":
        return value
    source = graph.type_of(node.inputs[0]).shape
    kept = [d for d in graph.type_of(value).shape if d != 1]
    return node.inputs[0] if kept == [d for d in source if d != 1] else value


def _weight(graph: Graph, node: Node, producers: dict[str, Node], constants: SharedConstants | None,
            ) -> np.ndarray | None:
    """The int8 weight of ``node``, a product's ``[K, N]`` or a convolution's ``[O, C, KH, KW]`` (see the module
    docstring; a 1-D convolution's ``[O, C, K]`` viewed so)."""
    if node.op not in ("matmul", "conv2d") or node.attr("transpose_b", False):
        return None
    operand = node.inputs[1] if node.op == "matmul" else _viewed(graph, node.inputs[1], producers)
    offset = offset_of(graph, operand, producers, "int32")
    weight, x = int8_offset(graph, offset, constants) if offset else None, graph.type_of(node.inputs[0])
    if weight is not None and operand != node.inputs[1]:
        shape = graph.type_of(node.inputs[1]).shape
        weight = derive(constants, ("viewed", shape), (weight,), partial(weight.reshape, shape))
    if weight is None or weight.ndim != (2 if node.op == "matmul" else 4):
        return None
    if node.op == "matmul":
        return weight if x.ndim >= 2 and x.shape[-1] == weight.shape[0] else None
    return weight if x.ndim == 4 and node.attr("groups", 1) == 1 and len(node.inputs) == 2 else None


def _matrix(weight: np.ndarray) -> np.ndarray:
    """A product's ``[K, N]`` weight, or a convolution's as the matrix its windows multiply."""
    return weight if weight.ndim == 2 else conv_weight_matrix(weight)


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
        if weight is None:
            continue
        x = node.inputs[0] if node.op == "matmul" else _viewed(graph, node.inputs[0], edit.producers)
        rows = _rows(graph, x, edit.producers)
        if rows is None:
            continue
        replacement: list[Node] = []
        integers = rows.integers
        if x != node.inputs[0]:  # the uint8 data viewed as the convolution's operand is
            integers = edit.names.fresh(f"{rows.integers}/viewed")
            replacement.append(make_node("reshape", edit.names.fresh(f"{node.name}_view"), (rows.integers,),
                                         (integers,), shape=graph.type_of(node.inputs[0]).shape))
        k, n = _matrix(weight).shape
        # the product's rows: the output pixels or the leading dimensions of x
        count = graph.type_of(node.outputs[0]).numel // n if node.op == "conv2d" else \
            math.prod(graph.type_of(node.inputs[0]).shape[:-1])
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
        operands = (integers, panels, sums, zero)
        if node.op == "matmul":
            replacement.append(make_node("quantized_matmul", node.name, operands, node.outputs, columns=n))
        else:
            window = {key: tuple(node.attr(key)) for key in ("strides", "pads", "dilations")}
            replacement.append(make_node("quantized_conv2d", node.name, operands, node.outputs, columns=n,
                                         kernel=tuple(weight.shape[2:]), **window))
        edit.replacements[node.name] = replacement
    return edit.result()
