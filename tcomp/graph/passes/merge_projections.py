"""``merge_projections``: matrix products of one input by several constant weights become one product and a split.

Rewrite: ``matmul(x, W_1) [+ b_1]``, ..., ``matmul(x, W_n) [+ b_n]`` (n >= 2), where every ``W_i`` is a float
parameter ``[K, N_i]`` and every ``b_i`` (all present or all absent) a parameter ``[N_i]`` added after the product
(its only reader), becomes

    split(matmul(x, concat(W_1 .. W_n, axis=1)) [+ concat(b_1 .. b_n)], axis=-1, sizes=(N_1 .. N_n))

whose outputs keep the names of the values they replace (so their readers and the graph's outputs are unchanged).
The query, key and value projections of an attention layer are the case in point: one product of ``3 N`` columns
packs the shared input once instead of three times and runs one parallel loop instead of three, and the split is a
view that the readers absorb (``fuse_ops``). The merged weights are new parameters computed here.

Assumes a typed graph before fusion (run before ``gemm_panels``). ``keep(node)``: products that stay as they are
(those compiled from a tuning record of their own). Returns the same graph when nothing matches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from tcomp.graph.edit import with_nodes
from tcomp.graph.ir import FreshNames, Graph, Node, make_node
from tcomp.graph.shared_constants import SharedConstants, derive


@dataclass(frozen=True)
class _Projection:
    product: Node
    weight: str
    bias_add: Node | None
    bias: str | None

    @property
    def result(self) -> str:
        return (self.bias_add or self.product).outputs[0]


def _projection(graph: Graph, node: Node, consumers: dict[str, list[Node]]) -> _Projection | None:
    """``node`` as ``matmul(x, W) [+ b]`` with constant ``W`` ``[K, N]`` and ``b`` ``[N]``, or ``None``."""
    if node.op != "matmul" or len(node.inputs) != 2:
        return None
    weight = graph.params.get(node.inputs[1])
    if weight is None or weight.ndim != 2 or weight.dtype.kind != "f":
        return None
    if len(graph.type_of(node.inputs[0]).shape) < 2:
        return None
    out = node.outputs[0]
    readers = consumers.get(out, [])
    if out not in graph.outputs and len(readers) == 1 and readers[0].op == "add":
        add = readers[0]
        other = add.inputs[1] if add.inputs[0] == out else add.inputs[0]
        bias = graph.params.get(other)
        if other != out and bias is not None and bias.shape == (weight.shape[1],) and bias.dtype == weight.dtype:
            return _Projection(node, node.inputs[1], add, other)
    return _Projection(node, node.inputs[1], None, None)


def _groups(graph: Graph, keep: Callable[[Node], bool] | None) -> list[list[_Projection]]:
    """Projections of one input with weights of one depth and dtype, all with or all without a bias."""
    consumers = graph.consumers()
    by_key: dict[tuple[str, int, str, bool], list[_Projection]] = {}
    for node in graph.nodes:
        found = _projection(graph, node, consumers)
        if found is not None and keep is not None and keep(node):
            continue
        if found is None:
            continue
        weight = graph.params[found.weight]
        key = (node.inputs[0], weight.shape[0], str(weight.dtype), found.bias is not None)
        by_key.setdefault(key, []).append(found)
    return [group for group in by_key.values() if len(group) >= 2]


def merge_projections(graph: Graph, keep: Callable[[Node], bool] | None = None,
                      constants: SharedConstants | None = None) -> Graph:
    """See the module docstring; ``constants``: where the weights merged by earlier specializations are kept
    (``tcomp.graph.shared_constants``)."""
    groups = _groups(graph, keep)
    if not groups:
        return graph
    names = FreshNames.of(graph)
    params = dict(graph.params)
    first: dict[str, list[Node]] = {}  # name of a group's first product -> the nodes replacing the group
    removed: set[str] = set()
    for group in groups:
        lead = group[0].product
        weight = names.fresh(f"{lead.name}/merged_weight")
        weights = [graph.params[p.weight] for p in group]
        params[weight] = derive(constants, ("merged", 1), weights, partial(np.concatenate, weights, axis=1))
        product = names.fresh(f"{lead.outputs[0]}/merged")
        nodes = [make_node("matmul", names.fresh(f"{lead.name}/merged"), [lead.inputs[0], weight], [product])]
        if group[0].bias is not None:
            bias = names.fresh(f"{lead.name}/merged_bias")
            biases = [graph.params[p.bias] for p in group if p.bias is not None]
            params[bias] = derive(constants, ("merged", 0), biases, partial(np.concatenate, biases))
            biased = names.fresh(f"{product}/bias")
            nodes.append(make_node("add", names.fresh(f"{lead.name}/merged_add"), [product, bias], [biased]))
            product = biased
        rank = len(graph.type_of(lead.outputs[0]).shape)
        sizes = tuple(int(graph.params[p.weight].shape[1]) for p in group)
        nodes.append(make_node("split", names.fresh(f"{lead.name}/split"), [product], [p.result for p in group],
                               axis=rank - 1, sizes=sizes))
        first[lead.name] = nodes
        for p in group:
            removed.add(p.product.name)
            if p.bias_add is not None:
                removed.add(p.bias_add.name)
    rewritten: list[Node] = []
    for node in graph.nodes:
        if node.name in first:
            rewritten.extend(first[node.name])
        elif node.name not in removed:
            rewritten.append(node)
    return with_nodes(graph, rewritten, params)
