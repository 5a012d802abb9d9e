"""``matvec_weights``: a small-batch matrix product streams its weight packed in column blocks (CPU targets).

Rewrite: ``matmul(x, W)`` with ``W`` a ``[K, N]`` parameter and at most ``MATVEC_ROWS`` rows in ``x`` (a
classifier or a fully connected layer at a small batch, a transformer's projections at a few tokens) becomes
``packed_matvec(x, P)`` with ``P = pack_column_blocks(W, NB)``, a new ``[ceil(N / NB), K, NB]`` parameter, and the
attribute ``columns = N`` (``tcomp.ops.matvec``): each block is one contiguous run of memory a core streams once,
with ``NB``-wide vector multiply-adds for every row of ``x``, whatever ``K``. ``NB`` follows the number of rows
(``column_block``). ``matmul(x, W.T)`` with ``transpose_b`` (a ``[N, K]`` parameter) is packed the same way, and so
is ``matmul(x, transpose(W))`` (ONNX ``Gemm`` with ``transB=1`` whose weight was too large to fold the transpose
into a parameter: VGG's 25088 x 4096 classifier); the transpose is dropped when nothing else reads it.

With ``bf16`` (``Precision.BF16``, the target's ``-precision=bf16``) the packed weight is rounded to bfloat16 and
widened as it is read, with ``x`` kept in float32: the product streams half the bytes, and is bound by them.

Assumes a typed graph before fusion; the pipeline runs it after ``simplify`` for CPU targets. Guarantees the same
values and types; returns the same graph when nothing applies (a computed weight, more rows, a batched weight).
"""

from __future__ import annotations

import math
from functools import partial

import ml_dtypes
import numpy as np

from tcomp.graph.edit import with_nodes
from tcomp.graph.ir import FreshNames, Graph, Node, make_node
from tcomp.graph.shared_constants import SharedConstants, derive
from tcomp.ops.matvec import PACKED_MAX_ROWS, column_block, pack_column_blocks

MATVEC_ROWS = PACKED_MAX_ROWS


def _weight(graph: Graph, node: Node, params: dict[str, np.ndarray],
            producers: dict[str, Node]) -> tuple[np.ndarray, bool] | None:
    """The parameter holding the weight of a packable ``matmul`` and whether it is stored ``[N, K]``, or None."""
    if node.op != "matmul":
        return None
    name, transposed = node.inputs[1], bool(node.attr("transpose_b", False))
    source = producers.get(name)
    if name not in params and source is not None and source.op == "transpose" and source.inputs[0] in params \
            and tuple(source.attr("perm")) == (1, 0):
        name, transposed = source.inputs[0], not transposed
    if name not in params:
        return None
    x, w = graph.type_of(node.inputs[0]), graph.type_of(name)
    if w.ndim != 2 or x.ndim < 1 or w.dtype != x.dtype or not w.dtype.startswith("float"):
        return None
    rows = math.prod(x.shape[:-1])
    if not 1 <= rows <= MATVEC_ROWS or min(w.shape) < 2:
        return None
    return params[name], transposed


def _packed(weight: np.ndarray, block: int, narrow: bool) -> np.ndarray:
    return pack_column_blocks(weight.astype(ml_dtypes.bfloat16) if narrow else weight, block)


def matvec_weights(graph: Graph, constants: SharedConstants | None = None, bf16: bool = False) -> Graph:
    """See the module docstring; ``constants``: where the weights packed by earlier specializations are kept
    (``tcomp.graph.shared_constants``); ``bf16``: weights rounded to bfloat16 (float32 ones only)."""
    params = dict(graph.params)
    producers = graph.producers()
    names = FreshNames.of(graph)
    nodes: list[Node] = []
    changed = False
    for node in graph.nodes:
        found = _weight(graph, node, params, producers)
        if found is not None:
            weight, transposed = found
            rows = math.prod(graph.type_of(node.inputs[0]).shape[:-1])
            block = column_block(rows)
            narrow = bf16 and weight.dtype == np.float32
            stored = names.fresh(f"{node.inputs[1]}/packed{block}" + ("_bf16" if narrow else ""))
            params[stored] = derive(constants, ("packed_matvec", block, transposed, narrow), (weight,), partial(
                _packed, weight.T if transposed else weight, block, narrow))
            node = make_node("packed_matvec", node.name, (node.inputs[0], stored), node.outputs,
                             columns=int(weight.shape[0 if transposed else 1]))
            changed = True
        nodes.append(node)
    return with_nodes(graph, nodes, params) if changed else graph
