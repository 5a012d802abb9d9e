"""``fuse_ops``: group operators into fused kernels by pattern kind, with post-dominator analysis (TVM's FuseOps).

Each node has a pattern (``OpPattern``: elementwise < broadcast < injective < reduction < complex-out-fusable <
opaque); an edge into a broadcast node from an input of the output's shape counts as elementwise. The immediate
post-dominator of a node (networkx ``immediate_dominators`` on the reversed graph, with a sink after the graph
outputs) is the first node every path from it reaches. Four phases visit the nodes in order; a node whose group is

- complex-out-fusable (conv, matmul, pooling) fuses into its post-dominator in phase 0 when every node on the way
  is at most broadcast and the edge pattern is elementwise (``conv -> bias add -> relu``);
- elementwise or broadcast fuses in phase 1 into a post-dominator reached through injective nodes and ending at an
  injective, reduction or complex-out-fusable node (``relu -> sum``, ``add -> conv`` producers);
- injective fuses in phase 3 when every node on the way is injective, or (``absorb_views``, CPU targets) when the
  group is a chain of views (``VIEW_OPS``: reshape, transpose, slice, split, broadcast) whose post-dominator is a
  matrix product or an attention: it reads its operand through the views (its packing copies follow them,
  ``ops/cpu/views.py``), so a transpose feeding a MatMul costs no kernel of its own; likewise a channel shuffle
  whose post-dominator is a depthwise ``conv2d`` (NCHW: it reads whole input planes). Phase 2 (``absorb_views``)
  makes only these view merges, before any other injective one: views join views and the product reading
  through them first, so that a producer in front (the concatenation of a key cache, a rotary embedding, a pad)
  writes its natural layout once rather than the product's operand transposed, element by element.

Fusing a node into its post-dominator merges every node on the paths between them, so a group's values are read
outside only at its root. Opaque nodes never fuse; a group is capped at ``MAX_GROUP_SIZE`` nodes; nodes listed in
``keep_apart`` (tuned operators compiled from a template) and concatenations marked ``in_place``
(``concat_in_place``: their parts are written in place, they run no kernel) stay alone.

Rewrite: each group of two or more nodes becomes one ``fused`` node whose ``body`` attribute is the group's
subgraph (inputs: the values it reads from outside; outputs: the values read outside or graph outputs; the
one-element parameters its kernel compiles in, ``op.compiled_in``, move into the body). Assumes a typed graph; keeps
the node order.
"""

from __future__ import annotations

from collections.abc import Callable

import networkx as nx

from tcomp.graph.edit import with_nodes
from tcomp.graph.infer import infer_types
from tcomp.graph.ir import Graph, Node, make_node
from tcomp.graph.op import OpPattern, compiled_in, get_op

MAX_GROUP_SIZE = 64
VIEW_OPS = frozenset({"reshape", "transpose", "strided_slice", "broadcast_to", "split"})
# operators whose CPU schedules read their operands through views
VIEW_READERS = frozenset({"matmul", "panel_matmul", "attention"})
# an NCHW depthwise convolution reads each input plane whole: a channel shuffle in front costs it nothing
SHUFFLE_READERS = frozenset({"conv2d"})
_SINK = "__sink__"


class _UnionFind:
    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x


def _edge_pattern(graph: Graph, reader: Node, value: str) -> OpPattern:
    pattern = get_op(reader.op).pattern
    if pattern is OpPattern.BROADCAST and graph.type_of(value).shape == graph.type_of(reader.outputs[0]).shape:
        return OpPattern.ELEMWISE
    return pattern


def fuse_ops(graph: Graph, keep_apart: Callable[[Node], bool] | None = None, absorb_views: bool = False) -> Graph:
    nodes = list(graph.nodes)
    if not nodes:
        return graph
    index_of = {n.name: i for i, n in enumerate(nodes)}
    producer = {o: i for i, n in enumerate(nodes) for o in n.outputs}
    succ: dict[int, list[tuple[int, OpPattern]]] = {i: [] for i in range(len(nodes))}
    for j, node in enumerate(nodes):
        for value in dict.fromkeys(node.inputs):
            if value in producer:
                succ[producer[value]].append((j, _edge_pattern(graph, node, value)))
    apart = {i for i, n in enumerate(nodes) if (keep_apart is not None and keep_apart(n)) or n.attr("in_place")}
    patterns = [OpPattern.OPAQUE if i in apart else get_op(n.op).pattern for i, n in enumerate(nodes)]
    # post-dominators: dominators of the reversed graph, rooted at a sink after every output and unread value
    reverse = nx.DiGraph()
    reverse.add_node(_SINK)
    for i in range(len(nodes)):
        reverse.add_node(i)
        escapes = any(o in graph.outputs for o in nodes[i].outputs) or not succ[i]
        if escapes:
            reverse.add_edge(_SINK, i)
        for j, _ in succ[i]:
            reverse.add_edge(j, i)
    ipdom = nx.immediate_dominators(reverse, _SINK)
    groups = _UnionFind(len(nodes))
    group_pattern = list(patterns)
    group_size = [1] * len(nodes)
    group_views = [n.op in VIEW_OPS for n in nodes]  # at a group's root: whether the group holds views only

    def root_pattern(i: int) -> OpPattern:
        return group_pattern[groups.find(i)]

    def views_into_reader(src: int, sink: int, between: list[int]) -> bool:
        """Whether the groups of ``src`` and ``between`` are views only and ``sink`` reads through views."""
        if not absorb_views:
            return False
        roots = {groups.find(k) for k in [src, *between]}
        ops = {nodes[k].op for k in range(len(nodes)) if groups.find(k) in roots}
        if nodes[sink].op in SHUFFLE_READERS:
            return ops == {"channel_shuffle"} and depthwise(nodes[sink])
        return nodes[sink].op in VIEW_READERS and ops <= VIEW_OPS

    def depthwise(node: Node) -> bool:
        channels = graph.type_of(node.inputs[0]).shape[1]
        return int(node.attr("groups", 1)) == channels == graph.type_of(node.inputs[1]).shape[0] > 1

    def path_nodes(src: int, sink: int) -> list[int] | None:
        """Nodes strictly between ``src`` and ``sink`` on paths from ``src`` (None if a path escapes)."""
        seen: set[int] = set()
        stack = [j for j, _ in succ[src]]
        while stack:
            k = stack.pop()
            if k == sink or k in seen:
                continue
            if not succ[k] and k != sink:
                return None
            seen.add(k)
            stack.extend(j for j, _ in succ[k])
        return sorted(seen)

    def edge_pattern_to(src: int, sink: int, between: list[int]) -> OpPattern:
        result = OpPattern.ELEMWISE
        for k in [src, *between]:
            for j, pattern in succ[k]:
                if j == sink or j in between:
                    result = max(result, pattern)
        return result

    def commit(src: int, sink: int, between: list[int]) -> None:
        target = groups.find(sink)
        for k in [src, *between]:
            root = groups.find(k)
            if root != target:
                groups.parent[root] = target
                group_pattern[target] = max(group_pattern[target], group_pattern[root])
                group_size[target] += group_size[root]
                group_views[target] = group_views[target] and group_views[root]

    def views_only(roots: set[int]) -> bool:
        return all(group_views[root] for root in roots)

    for phase in range(4):
        for i in range(len(nodes)):
            dom = ipdom.get(i)
            if dom is None or dom == _SINK or i in apart or patterns[i] is OpPattern.OPAQUE:
                continue
            if groups.find(i) == groups.find(dom) or dom in apart:
                continue
            between = path_nodes(i, dom)
            if between is None or any(k in apart for k in between):
                continue
            kind = root_pattern(i)
            edge = edge_pattern_to(i, dom, between)
            merged_size = group_size[groups.find(dom)] + sum(
                group_size[r] for r in {groups.find(k) for k in [i, *between]} if r != groups.find(dom))
            if merged_size > MAX_GROUP_SIZE:
                continue
            if kind is OpPattern.OUT_ELEMWISE_FUSABLE:
                ok = phase == 0 and edge is OpPattern.ELEMWISE and all(
                    root_pattern(k) <= OpPattern.BROADCAST for k in between) and root_pattern(
                    dom) <= OpPattern.BROADCAST
            elif kind <= OpPattern.BROADCAST:
                ok = phase == 1 and edge <= OpPattern.COMM_REDUCE and all(
                    root_pattern(k) <= OpPattern.INJECTIVE for k in between) and root_pattern(
                    dom) in (OpPattern.ELEMWISE, OpPattern.BROADCAST, OpPattern.INJECTIVE, OpPattern.COMM_REDUCE,
                             OpPattern.OUT_ELEMWISE_FUSABLE)
            elif kind is OpPattern.INJECTIVE and phase == 2:
                # views first: chains of views join the product reading through them before a producer such as
                # a concatenation fuses into them (it then writes its natural layout, the views stay reads)
                ok = absorb_views and views_only({groups.find(k) for k in [i, *between]}) and (
                    nodes[dom].op in VIEW_OPS and views_only({groups.find(dom)})
                    or views_into_reader(i, dom, between))
            elif kind is OpPattern.INJECTIVE:
                ok = phase == 3 and all(root_pattern(k) <= OpPattern.INJECTIVE for k in between) and (
                    root_pattern(dom) <= OpPattern.INJECTIVE or views_into_reader(i, dom, between))
            else:
                ok = False
            if ok:
                commit(i, dom, between)
    members: dict[int, list[int]] = {}
    for i in range(len(nodes)):
        members.setdefault(groups.find(i), []).append(i)
    if all(len(m) == 1 for m in members.values()):
        return graph
    return _rewrite(graph, nodes, [members[r] for r in sorted(members, key=lambda r: max(members[r]))], index_of)


def _rewrite(graph: Graph, nodes: list[Node], group_list: list[list[int]], index_of: dict[str, int]) -> Graph:
    readers: dict[str, set[int]] = {}
    for i, node in enumerate(nodes):
        for value in node.inputs:
            if value:
                readers.setdefault(value, set()).add(i)
    new_nodes: list[Node] = []
    taken = {n.name for n in nodes}
    for group in group_list:
        if len(group) == 1:
            new_nodes.append(nodes[group[0]])
            continue
        inside = set(group)
        defined = {o for i in group for o in nodes[i].outputs}
        inputs: list[str] = []
        body_params = {}
        for i in group:
            for value in nodes[i].inputs:
                if not value or value in defined or value in inputs or value in body_params:
                    continue
                param = graph.params.get(value)
                if param is not None and compiled_in(param, [nodes[k] for k in group]):
                    body_params[value] = param
                else:
                    inputs.append(value)
        outputs = [o for i in group for o in nodes[i].outputs
                   if o in graph.outputs or readers.get(o, set()) - inside]
        members = tuple(nodes[i] for i in group)
        body = Graph(f"fused_{group[-1]}", tuple(inputs), tuple(outputs), members, body_params,
                     {k: graph.types[k] for k in inputs})
        body = infer_types(body)
        pattern = max(get_op(m.op).pattern for m in members)
        name = _fresh(taken, "fused_" + "_".join(dict.fromkeys(m.op for m in members)))
        new_nodes.append(make_node("fused", name, inputs, outputs, body=body, pattern=int(pattern)))
    return with_nodes(graph, new_nodes)


def _fresh(taken: set[str], base: str) -> str:
    name, count = base[:80], 0
    while name in taken:
        count += 1
        name = f"{base[:80]}_{count}"
    taken.add(name)
    return name
