"""Editing a graph: new nodes with their types inferred again (``with_nodes``), values read in place of others
(``forward_values``), nodes replaced by others (``Rewrite``). Passes build their results with these."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

import numpy as np

from tcomp.graph.infer import infer_types
from tcomp.graph.ir import FreshNames, Graph, Node, make_node, remove_unused


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


class Rewrite:
    """What a rewrite of ``graph`` reads (producers, consumers, fresh names) and collects: new parameters, and nodes
    replacing a node (by name) or removed; ``result()`` is the rewritten graph (``graph`` itself when nothing
    changed)."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.producers = graph.producers()
        self.consumers = graph.consumers()
        self.names = FreshNames.of(graph)
        self.params = dict(graph.params)
        self.replacements: dict[str, list[Node]] = {}
        self.removed: set[str] = set()

    def read_only_by(self, value: str, reader: Node) -> bool:
        """Whether ``reader`` alone reads ``value`` (not a graph output)."""
        names = [n.name for n in self.consumers.get(value, [])]
        return value not in self.graph.outputs and names == [reader.name]

    def result(self) -> Graph:
        if not self.replacements:
            return self.graph
        nodes = [n for node in self.graph.nodes if node.name not in self.removed
                 for n in self.replacements.get(node.name, [node])]
        return with_nodes(self.graph, nodes, self.params)
