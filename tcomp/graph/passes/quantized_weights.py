"""``quantized_weights``: the int32 product of 8-bit rows and a constant 8-bit weight runs on the integer GEMM (CPU).

Rewrite: ``matmul(A, W)`` where ``W`` is an int32 ``[K, N]`` parameter (``[N, K]`` with ``transpose_b``) whose
values all fit int8 (an int8 weight with zero point 0, a uint8 one with 128: what ``MatMulInteger`` and
``QLinearMatMul`` leave once their weight's offset is folded) and ``A`` is uint8 rows ``x`` widened to int32 and
offset by a scalar zero point, ``cast(x)`` or ``subtract(cast(x), z)`` with ``z`` an int32 scalar (computed, as
``DynamicQuantizeLinear`` gives it, or constant), becomes ``quantized_matmul(x, P, S, z)``: ``P`` the weight packed
once by ``pack_quantized_panels`` in the plan's panels (``tcomp.ops.cpu.quantized_matmul.quantized_plan``), ``S`` its
column sums, ``z`` 0 where there is no offset. The product then reads a quarter of the bytes and multiplies four
steps per int32 lane and instruction where the CPU has VNNI (``vpdpbusd``), else half the bytes and two steps
(``pmaddwd``, weights stored as int16). Measured on 128 x 768 x 768 (2 cores, Zen 4, with a test run beside it),
against the int32 product it replaces: 5.4x with VNNI, 2.8x with AVX-512 alone, 2.0x with AVX2 code. Made where
the CPU has either instruction at its register width (``integer_gemm_pays``).

A convolution whose kernel tiles its input (``conv2d`` with strides equal to the kernel, no padding or dilation,
one group, a batch of one: a vision transformer's patch embedding), of such rows and an int32 weight ``[O, C, P, Q]``
within int8, is that product over the patches: the rows ``[H / P * W / Q, C * P * Q]`` gathered by a reshape and a
transpose of the uint8 input, the product transposed back to ``[1, O, H / P, W / Q]`` (ViT-B/16 under
``quantize_dynamic``: its int32 patch convolution took 4 ms of 66; the whole model 1.01 -> 0.96 of onnxruntime's
median).

Assumes a typed graph with constants folded, before fusion; the pipeline runs it before ``gemm_panels`` for CPU
targets. Guarantees the same values (integer arithmetic is exact); returns the same graph when nothing applies
(signed rows, zero points per row, a computed weight, values beyond int8).
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from tcomp.graph.edit import Rewrite
from tcomp.graph.ir import Graph, Node, make_node
from tcomp.graph.shared_constants import SharedConstants, derive
from tcomp.ops.cpu.common import CpuTarget
from tcomp.ops.cpu.quantized_matmul import panel_group, quantized_plan
from tcomp.ops.quantized import pack_quantized_panels
from tcomp.target import Target


def _offset_rows(graph: Graph, value: str, producers: dict[str, Node], params: dict) -> tuple[str, str | None] | None:
    """``(x, zero)`` when ``value`` is ``cast(x)`` or ``subtract(cast(x), zero)`` of uint8 ``x`` into int32 with an
    int32 scalar ``zero`` (None: no offset); else None."""
    node = producers.get(value)
    zero = None
    if node is not None and node.op == "subtract":
        zero_type = graph.type_of(node.inputs[1])
        if zero_type.dtype != "int32" or zero_type.shape != ():
            return None
        zero = node.inputs[1]
        node = producers.get(node.inputs[0])
    if node is None or node.op != "cast" or value in params:
        return None
    x = node.inputs[0]
    if graph.type_of(x).dtype != "uint8" or graph.type_of(node.outputs[0]).dtype != "int32":
        return None
    return x, zero


def _int8_weight(node: Node, params: dict) -> np.ndarray | None:
    """The ``[K, N]`` int32 weight of ``node`` when it is a parameter whose values fit int8."""
    weight = params.get(node.inputs[1])
    if weight is None or weight.ndim != 2 or weight.dtype != np.int32 or weight.size == 0:
        return None
    if weight.min() < -128 or weight.max() > 127:
        return None
    return weight.T if node.attr("transpose_b", False) else weight


def _patches(graph: Graph, node: Node, params: dict) -> np.ndarray | None:
    """The ``[C * P * Q, O]`` weight of ``node`` when it is a convolution over whole patches (see the module
    docstring) with an int32 weight within int8."""
    if node.op != "conv2d" or node.inputs[1] not in params:
        return None
    weight, x = params[node.inputs[1]], graph.type_of(node.inputs[0])
    if weight.dtype != np.int32 or weight.ndim != 4 or x.ndim != 4 or x.shape[0] != 1 or weight.size == 0:
        return None
    kernel = tuple(weight.shape[2:])
    if tuple(node.attr("strides")) != kernel or any(node.attr("pads")) or tuple(node.attr("dilations")) != (1, 1):
        return None
    if node.attr("groups", 1) != 1 or x.shape[2] % kernel[0] or x.shape[3] % kernel[1]:
        return None
    if weight.min() < -128 or weight.max() > 127:
        return None
    return weight.reshape(weight.shape[0], -1).T


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
    return pack_quantized_panels(weight.astype(np.int8), nr, depth, group)


def _column_sums(weight: np.ndarray) -> np.ndarray:
    return weight.sum(axis=0, dtype=np.int64).astype(np.int32)


def integer_gemm_pays(cpu: CpuTarget) -> bool:
    """Whether ``cpu`` runs the integer GEMM (see the module docstring): it has ``vpdpbusd`` or ``pmaddwd`` at its
    register width."""
    return cpu.byte_dots or cpu.word_dots


def quantized_weights(graph: Graph, target: Target, constants: SharedConstants | None = None) -> Graph:
    """See the module docstring; ``constants``: where the weights packed by earlier specializations are kept
    (``tcomp.graph.shared_constants``)."""
    cpu = CpuTarget.of(target)
    if not integer_gemm_pays(cpu):
        return graph
    edit = Rewrite(graph)
    for node in graph.nodes:
        patches = _patches(graph, node, edit.params)
        weight = patches if patches is not None else _int8_weight(node, edit.params) if node.op == "matmul" else None
        rows = _offset_rows(graph, node.inputs[0], edit.producers, edit.params) if weight is not None else None
        x_type = graph.type_of(node.inputs[0])
        if weight is None or rows is None or x_type.ndim < 2:
            continue
        if patches is None and x_type.shape[-1] != weight.shape[0]:
            continue
        x, zero = rows
        replacement: list[Node] = []
        if patches is not None:
            x = _patch_rows(edit, node, x, replacement)
        k, n = weight.shape
        # the product's rows: the patches (each of k steps) or the leading dimensions of x
        count = x_type.numel // k if patches is not None else math.prod(x_type.shape[:-1])
        plan = quantized_plan(count, n, k, cpu)
        nr, group = plan.blocking.nr, panel_group(cpu)
        source = edit.params[node.inputs[1]]
        layout = "patches" if patches is not None else bool(node.attr("transpose_b", False))
        panels = edit.names.fresh(f"{node.inputs[1]}/quantized_panels{nr}")
        edit.params[panels] = derive(constants, ("quantized_panels", nr, plan.Kp, group, layout), (source,),
                                     partial(_packed, weight, nr, plan.Kp, group))
        sums = edit.names.fresh(f"{node.inputs[1]}/column_sums")
        edit.params[sums] = derive(constants, ("column_sums", layout), (source,), partial(_column_sums, weight))
        if zero is None:
            zero = edit.names.fresh(f"{node.name}/zero")
            edit.params[zero] = np.zeros((), np.int32)
        if patches is None:
            replacement.append(make_node("quantized_matmul", node.name, (x, panels, sums, zero), node.outputs,
                                         columns=n))
        else:
            product, turned = (edit.names.fresh(f"{node.name}/{hint}") for hint in ("product", "channels"))
            out_shape = graph.type_of(node.outputs[0]).shape
            replacement += [
                make_node("quantized_matmul", node.name, (x, panels, sums, zero), (product,), columns=n),
                make_node("transpose", edit.names.fresh(f"{node.name}_channels"), (product,), (turned,), perm=(1, 0)),
                make_node("reshape", edit.names.fresh(f"{node.name}_image"), (turned,), node.outputs,
                          shape=out_shape),
            ]
        edit.replacements[node.name] = replacement
    return edit.result()
