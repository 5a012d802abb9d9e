"""``remove_empty``: zero-size tensors are computed by no kernel.

Rewrite, node by node in order:

- a node whose outputs all have a zero dimension is removed, its outputs become empty parameters;
- a zero-size operand of ``concat`` (it adds nothing to the result) is dropped from the node's inputs, and a
  zero-size part of ``split`` from the node's outputs (it becomes an empty parameter);
- a node with a non-empty output whose inputs are all zero-size or parameters (a sum over an empty axis, a product
  over an empty inner dimension, the padding of an empty tensor) computes a constant: it is evaluated once, with
  plain loop nests (the default schedules tile by extents, which zero breaks), and its outputs become parameters.

Assumes: a typed graph before fusion. Guarantees: no node makes a zero-size output, so the executor launches no
kernel for one, and results are those numpy gives (the identity of a reduction over an empty set). Runs first in
the pipeline, always: it is a rule of execution, not an optimization. Returns the same graph when no value is empty.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from tcomp.graph.edit import with_nodes
from tcomp.graph.ir import Graph, Node
from tcomp.graph.passes.fold_constants import evaluate_node
from tcomp.ir import dtype as dt
from tcomp.target import Target, as_target


def remove_empty(graph: Graph, target: Target | str | None = None) -> Graph:
    """See the module docstring. ``target``: where constants are evaluated (default: this CPU)."""
    empty = {name for name, t in graph.types.items() if t.numel == 0}
    if not empty:
        return graph
    host = as_target(target)
    params = dict(graph.params)
    known = dict(params)  # parameters and every zero-size value (an empty array is its only value)
    for name in empty:
        t = graph.type_of(name)
        known.setdefault(name, np.empty(t.shape, dtype=dt.to_numpy(t.dtype)))
    nodes: list[Node] = []
    changed = False
    for node in graph.nodes:
        if node.op == "concat" and any(i in empty for i in node.inputs):
            node = replace(node, inputs=tuple(i for i in node.inputs if i not in empty))
            changed = True
        if node.op == "split" and any(o in empty for o in node.outputs) and not all(o in empty for o in node.outputs):
            for name in node.outputs:
                if name in empty:
                    params[name] = known[name]
            kept = [(o, s) for o, s in zip(node.outputs, node.attr("sizes")) if o not in empty]
            node = replace(node, outputs=tuple(o for o, _ in kept)).with_attrs(sizes=tuple(s for _, s in kept))
            changed = True
        reads_empty = any(i in empty for i in node.inputs if i)
        if all(o in empty for o in node.outputs):
            results = [known[o] for o in node.outputs]
        elif reads_empty and all(i in known for i in node.inputs if i):
            results = evaluate_node(graph, node, known, host, plain=True)
        else:
            nodes.append(node)
            continue
        for name, value in zip(node.outputs, results):
            params[name] = known[name] = value
        changed = True
    return with_nodes(graph, nodes, params) if changed else graph
