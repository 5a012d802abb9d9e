"""``quantized_matvec``: a small-batch product by a weight quantized by blocks streams the weight as integers (CPU).

Weight-only quantized language models (onnxruntime's ``MatMulNBitsQuantizer`` in its QDQ format) store each weight
``W[K, N]`` as 4-bit integers ``q`` by blocks of ``B`` along K, with a scale ``s`` (and a zero point ``z``) per block
and column: ``W[k, n] = (q[k, n] - z[k // B, n]) * s[k // B, n]``, imported as ``multiply(subtract(cast(q),
cast(take(z, blocks))), take(s, blocks))`` with ``blocks = arange(K) // B``. Folded, ``W`` is float32: a generation
step, whose products have one row, streams 4 bytes per weight. So:

Rewrite: ``matmul(x, W)`` with at most ``MATVEC_ROWS`` rows in ``x`` and ``W`` that dequantization of parameters,
whose ``q - z`` fits int8 (4- and 2-bit weights, 8-bit ones without a zero point), becomes ``packed_matvec(x, P,
S, columns=N, block=B)``: ``P`` the int8 ``q - z`` and ``S`` the ``[ceil(K / B), N]`` scales, both packed in column
blocks as ``matvec_weights`` packs a float weight (``tcomp.ops.matvec``). Each weight is dequantized as it is read,
one byte and a scale shared by ``B`` of them: about a quarter of the bytes. The products equal the float ones up to
float32 rounding (the same dequantized values, multiplied in another order).

Assumes a typed graph as imported, before ``fold_constants`` (which would fold ``W``); the pipeline runs it on CPU
targets. Guarantees the same values and types; returns the same graph when nothing applies.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from tcomp.graph.edit import Rewrite
from tcomp.graph.ir import Graph, Node, make_node
from tcomp.graph.shared_constants import SharedConstants, derive
from tcomp.ir import dtype as dt
from tcomp.ops.matvec import PACKED_MAX_ROWS, column_block, pack_column_blocks


def _param(edit: Rewrite, value: str) -> np.ndarray | None:
    return edit.graph.params.get(value)


def _producer(edit: Rewrite, value: str, op: str) -> Node | None:
    node = edit.producers.get(value)
    return node if node is not None and node.op == op else None


def _blocked(edit: Rewrite, value: str) -> tuple[np.ndarray, int] | None:
    """``(t, B)`` where ``value`` is ``take(t, arange(K) // B, axis=0)`` of a parameter ``t`` of ``ceil(K / B)``
    rows, else None."""
    take = _producer(edit, value, "take")
    if take is None or take.attr("axis", 0) != 0:
        return None
    table, rows = _param(edit, take.inputs[0]), _param(edit, take.inputs[1])
    if table is None or rows is None or table.ndim != 2 or rows.ndim != 1 or rows.size < 2:
        return None
    block = int(np.count_nonzero(rows == rows[0]))
    expected = np.arange(rows.size) // block
    if rows[0] != 0 or not np.array_equal(rows, expected) or table.shape[0] != -(-rows.size // block):
        return None
    return table, block


def _integers(edit: Rewrite, value: str) -> np.ndarray | None:
    """The integer parameter that ``value`` is a float32 ``cast`` of, else None."""
    cast = _producer(edit, value, "cast")
    array = _param(edit, cast.inputs[0]) if cast is not None else None
    if array is None or not dt.is_int(dt.normalize(array.dtype)) or edit.graph.type_of(value).dtype != "float32":
        return None
    return array


def _quantized_weight(edit: Rewrite, value: str) -> tuple[list[np.ndarray], int] | None:
    """``([q, scales, zero points], B)`` (``[q, scales]`` without zero points): the parameters whose blocked
    dequantization ``value`` is (see the module docstring), else None."""
    multiply = _producer(edit, value, "multiply")
    if multiply is None:
        return None
    for levels, scaling in (multiply.inputs, multiply.inputs[::-1]):
        scales = _blocked(edit, scaling)
        if scales is None or scales[0].dtype != np.float32:
            continue
        table, block = scales
        subtract = _producer(edit, levels, "subtract")
        q = _integers(edit, levels if subtract is None else subtract.inputs[0])
        if q is None or q.ndim != 2 or q.shape[1] != table.shape[1] or -(-q.shape[0] // block) != table.shape[0]:
            continue
        if subtract is None:
            return [q, table], block
        zero_cast = _producer(edit, subtract.inputs[1], "cast")
        zeros = _blocked(edit, zero_cast.inputs[0]) if zero_cast is not None else None
        if zeros is not None and zeros[1] == block and zeros[0].shape == table.shape:
            return [q, table, zeros[0]], block
    return None


def _levels(q: np.ndarray, block: int, zeros: np.ndarray | None) -> np.ndarray | None:
    """``q`` less its blocks' zero points as int8, or None where a value does not fit."""
    levels = q.astype(np.int32)
    if zeros is not None:
        levels -= np.repeat(zeros.astype(np.int32), block, axis=0)[: q.shape[0]]
    if levels.size and (levels.min() < -128 or levels.max() > 127):
        return None
    return levels.astype(np.int8)


def quantized_matvec(graph: Graph, constants: SharedConstants | None = None) -> Graph:
    """See the module docstring; ``constants``: where the weights packed by earlier specializations are kept
    (``tcomp.graph.shared_constants``)."""
    edit = Rewrite(graph)
    for node in graph.nodes:
        if node.op != "matmul" or node.attr("transpose_b", False):
            continue
        x = graph.type_of(node.inputs[0])
        rows = math.prod(x.shape[:-1])
        if x.dtype != "float32" or x.ndim < 1 or not 1 <= rows <= PACKED_MAX_ROWS:
            continue
        found = _quantized_weight(edit, node.inputs[1])
        if found is None:
            continue
        sources, block = found
        levels = _levels(sources[0], block, sources[2] if len(sources) == 3 else None)
        if levels is None:
            continue
        width = column_block(rows)
        packed, scales = (edit.names.fresh(f"{node.inputs[1]}/{kind}") for kind in ("int8", "scales"))
        edit.params[packed] = derive(constants, ("quantized_matvec", width, block), sources,
                                     partial(pack_column_blocks, levels, width))
        edit.params[scales] = derive(constants, ("quantized_matvec_scales", width), sources[1:2],
                                     partial(pack_column_blocks, sources[1], width))
        edit.replacements[node.name] = [make_node("packed_matvec", node.name, (node.inputs[0], packed, scales),
                                                  node.outputs, columns=int(levels.shape[1]), block=block)]
    return edit.result()


__all__ = ["quantized_matvec"]
