"""``matvec_weights``: a small-batch matrix product reads its weight parameter row by row (CPU targets).

``matmul(x, W)`` with ``W`` a ``[K, N]`` parameter, at most ``MATVEC_ROWS`` rows in ``x`` (a classifier at a small
batch) and 4 dividing ``K`` becomes ``matmul(x, W.T)`` with the attribute ``transpose_b``: the weight is stored
``[N, K]`` (a new parameter), so each output is a dot product over a contiguous row of it, streamed from memory at
full cache lines, with 4- to 16-lane partial sums (``tcomp.ops.cpu.dense.dot_lanes``). The pipeline runs it after
``simplify`` for CPU targets. Assumes a typed graph before fusion; returns the same graph when nothing applies.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from tcomp.graph.ir import FreshNames, Graph, Node

MATVEC_ROWS = 16


def matvec_weights(graph: Graph) -> Graph:
    """See the module docstring."""
    params = dict(graph.params)
    names = FreshNames.of(graph)
    nodes: list[Node] = []
    changed = False
    for node in graph.nodes:
        if node.op == "matmul" and not node.attr("transpose_b", False) and node.inputs[1] in params:
            x, w = graph.type_of(node.inputs[0]), graph.type_of(node.inputs[1])
            rows = int(np.prod(x.shape[:-1])) if x.ndim > 1 else 1
            if w.ndim == 2 and rows <= MATVEC_ROWS and w.shape[1] > 1 and w.shape[0] % 4 == 0 and w.shape[0] >= 8:
                stored = names.fresh(f"{node.inputs[1]}/NK")
                params[stored] = np.ascontiguousarray(params[node.inputs[1]].T)
                node = replace(node, inputs=(node.inputs[0], stored)).with_attrs(transpose_b=True)
                changed = True
        nodes.append(node)
    return graph.with_nodes(nodes, params) if changed else graph
