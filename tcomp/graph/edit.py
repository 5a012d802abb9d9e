"""Editing a graph: new nodes with their types inferred again (``with_nodes``), values read in place of others
(``forward_values``). Passes build their results with these."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

import numpy as np

from tcomp.graph.infer import infer_types
from tcomp.graph.ir import Graph, Node, make_node, remove_unused


def with_nodes(graph: Graph, nodes: Iterable[Node], params: Mapping[str, np.ndarray] | None = None) -> Graph:
    """``graph`` with new nodes (and params); types and known values are recomputed by ``infer_types``."""
    kept_params = dict(graph.params if params is None else params)
    draft = replace(graph, nodes=tuple(nodes), params=kept_params, types={k: graph.types[k] for k in graph.inputs},
                    values={}, meta={})
    return infer_types(remove_unused(draft))


def forward_values(graph: Graph, nodes: Iterable[Node], forward: Mapping[str, str]) -> Graph:
    """``graph`` with ``nodes`` (in order), where each value ``v`` in ``forward`` (whose producing node was removed:
    a no-op, two transforms that cancel) is read as ``forward[v]`` instead; chains are followed.

    The graph's outputs keep their names: a forwarded output takes over the name of the value it now is, when that
    value is computed by a node and is not itself an input, a parameter, another output or taken by an earlier
    output; otherwise the output is an ``identity`` copy of it. Types are recomputed (``with_nodes``)."""

    def root(value: str) -> str:
        seen = 0
        while value in forward and seen <= len(forward):
            value, seen = forward[value], seen + 1
        return value

    kept = list(nodes)
    produced = {out for node in kept for out in node.outputs}
    fixed = set(graph.inputs) | set(graph.params) | set(graph.outputs)
    claimed: dict[str, str] = {}  # a computed value -> the graph output that names it
    copies: list[tuple[str, str]] = []  # (graph output, the value it copies)
    for output in graph.outputs:
        if output not in forward:
            continue
        source = root(output)
        if source in produced and source not in fixed and source not in claimed:
            claimed[source] = output
        else:
            copies.append((output, source))

    def name_of(value: str) -> str:
        source = root(value) if value else value
        return claimed.get(source, source)

    renamed = [replace(node, inputs=tuple(name_of(i) for i in node.inputs),
                       outputs=tuple(claimed.get(o, o) for o in node.outputs)) for node in kept]
    taken = {node.name for node in renamed}
    for output, source in copies:
        name = f"{output}/copy"
        while name in taken:
            name += "_"
        taken.add(name)
        renamed.append(make_node("identity", name, [name_of(source)], [output]))
    return with_nodes(graph, renamed)
