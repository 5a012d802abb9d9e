"""``fold_channel_shuffle``: ShuffleNet's channel shuffles as one operator, moved to where they cost nothing.

Rewrite:

1. ``Reshape [N, g, C/g, H, W] -> Transpose (0, 2, 1, 3, 4) -> Reshape [N, C, H, W]`` becomes ``channel_shuffle(x,
   groups=g)`` (the reshapes and transpose go when nothing else reads them).
2. Where the readers after a shuffle (each the only reader of the value before it) work channel by channel and
   end at a ``conv2d`` of one group, the shuffle moves behind each of them, their constants permuted instead (a
   depthwise ``conv2d``'s weights, the per-channel or scalar constant of ``add`` / ``subtract`` / ``multiply`` /
   ``divide``; a unary elementwise operator as it is): ``op(shuffle(x))`` becomes ``shuffle(op'(x))``. With
   ``op(shuffle(x))[c] = f(x[p(c)], w[c])`` (``p`` = ``shuffle_source``), ``op'`` reads ``w'[j] = w[p^-1(j)]``.
3. Then the shuffle disappears into that convolution's weights: their input channels permuted.

Any other shuffle stays where it is, one operator: ``alter_layout`` keeps it in its producer's layout, and
``fuse_ops`` fuses it into an NCHW depthwise convolution that reads it (which reads each input plane whole: the
permutation costs it nothing) or into one copy kernel with the layout transforms beside it.

Assumes a typed graph before ``alter_layout``; constants are permuted copies (new parameters). Guarantees: the
values of the graph's outputs are unchanged. Returns the same graph when it has no channel shuffle.
"""

from __future__ import annotations

import numpy as np

from tcomp.graph.edit import with_nodes
from tcomp.graph.ir import FreshNames, Graph, Node, make_node
from tcomp.graph.op import OpPattern, get_op
from tcomp.graph.opdefs.layout import shuffle_source

_PER_CHANNEL_OPS = frozenset({"add", "subtract", "multiply", "divide"})
_MAX_ROUNDS = 64


def _shuffle_of(graph: Graph, node: Node, producers: dict[str, Node]) -> tuple[str, int] | None:
    """``(x, groups)`` when ``node`` is the last reshape of a channel shuffle of ``x``."""
    if node.op != "reshape":
        return None
    transpose = producers.get(node.inputs[0])
    if transpose is None or transpose.op != "transpose" or tuple(transpose.attr("perm")) != (0, 2, 1, 3, 4):
        return None
    first = producers.get(transpose.inputs[0])
    if first is None or first.op != "reshape":
        return None
    x = first.inputs[0]
    shape, split = graph.type_of(x).shape, graph.type_of(first.outputs[0]).shape
    if len(shape) != 4 or graph.type_of(node.outputs[0]).shape != shape or len(split) != 5:
        return None
    n, channels, h, w = shape
    groups = split[1]
    if split != (n, groups, channels // groups, h, w) or groups * (channels // groups) != channels:
        return None
    return x, groups


def _inverse(channels: int, groups: int) -> np.ndarray:
    """``inverse[j]``: the output channel of the shuffle that reads input channel ``j``."""
    order = np.array([shuffle_source(c, channels, groups) for c in range(channels)])
    return np.argsort(order)


class _Folder:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.names = FreshNames.of(graph)
        self.params = dict(graph.params)

    def permuted(self, name: str, axis: int, order: np.ndarray) -> str:
        out = self.names.fresh(f"{name}/shuffled")
        self.params[out] = np.ascontiguousarray(np.take(self.params[name], order, axis=axis))
        return out

    def per_channel_operand(self, value: str, channels: int, order: np.ndarray) -> str | None:
        """``value`` permuted along its channel axis if it is a per-channel or scalar constant, else None."""
        if value not in self.params:
            return None
        t = self.graph.type_of(value)
        if t.numel == 1:
            return value
        if t.shape in ((1, channels, 1, 1), (channels, 1, 1)):
            return self.permuted(value, len(t.shape) - 3, order)
        return None

    def moved(self, shuffle: Node, reader: Node) -> list[Node] | None:
        """``reader(shuffle(x))`` as nodes computing the same value without a shuffle in front of ``reader``."""
        x, groups = shuffle.inputs[0], int(shuffle.attr("groups"))
        channels = self.graph.type_of(x).shape[1]
        order = _inverse(channels, groups)
        out = reader.outputs[0]
        pattern = get_op(reader.op).pattern
        if reader.op == "conv2d" and reader.inputs[1] in self.params and reader.inputs[0] == shuffle.outputs[0]:
            w_shape = self.graph.type_of(reader.inputs[1]).shape
            conv_groups = int(reader.attr("groups", 1))
            if conv_groups == 1:  # the permutation folds into the weights' input channels: no shuffle left
                weights = self.permuted(reader.inputs[1], 1, order)
                return [make_node("conv2d", reader.name, [x, weights], [out], **reader.attr_dict)]
            if conv_groups == channels == w_shape[0] and w_shape[1] == 1:  # depthwise: channel by channel
                weights = self.permuted(reader.inputs[1], 0, order)
                return self._then_shuffle(reader, [x, weights], groups)
            return None
        if reader.op in _PER_CHANNEL_OPS and len(reader.inputs) == 2 and \
                self.graph.type_of(out).shape == self.graph.type_of(x).shape:
            inputs = []
            for value in reader.inputs:
                if value == shuffle.outputs[0]:
                    inputs.append(x)
                    continue
                other = self.per_channel_operand(value, channels, order)
                if other is None:
                    return None
                inputs.append(other)
            if inputs.count(x) != 1:
                return None
            return self._then_shuffle(reader, inputs, groups)
        if pattern is OpPattern.ELEMWISE and len(reader.inputs) == 1 and len(reader.outputs) == 1 and \
                self.graph.type_of(out).shape == self.graph.type_of(x).shape:
            return self._then_shuffle(reader, [x], groups)
        return None

    def _then_shuffle(self, reader: Node, inputs: list[str], groups: int) -> list[Node]:
        out = reader.outputs[0]
        unshuffled = self.names.fresh(f"{out}/unshuffled")
        return [Node(reader.op, reader.name, tuple(inputs), (unshuffled,), reader.attrs),
                make_node("channel_shuffle", self.names.fresh(f"{reader.name}/shuffle"), [unshuffled], [out],
                          groups=groups)]


def _recognize(graph: Graph) -> Graph:
    producers = graph.producers()
    nodes: list[Node] = []
    changed = False
    for node in graph.nodes:
        found = _shuffle_of(graph, node, producers)
        if found is None:
            nodes.append(node)
            continue
        x, groups = found
        nodes.append(make_node("channel_shuffle", node.name, [x], node.outputs, groups=groups))
        changed = True
    return with_nodes(graph, nodes) if changed else graph


def _folds_into_weights(graph: Graph, shuffle: Node, consumers: dict[str, list[Node]]) -> bool:
    """Whether the channel-by-channel readers after ``shuffle`` (each the only reader of the value before it) lead
    to a convolution of one group, whose weights can take the permutation."""
    value, seen = shuffle.outputs[0], 0
    outputs = set(graph.outputs)
    while seen <= len(graph.nodes):
        readers = consumers.get(value, [])
        if value in outputs or len(readers) != 1 or len(readers[0].outputs) != 1:
            return False
        reader = readers[0]
        if reader.op == "conv2d" and int(reader.attr("groups", 1)) == 1:
            return reader.inputs[0] == value and reader.inputs[1] in graph.params
        value, seen = reader.outputs[0], seen + 1
    return False


def _move_one(graph: Graph) -> Graph:
    """One shuffle moved behind (or folded into) its only reader, where that leads to a convolution of one group;
    the same graph when none can move."""
    consumers = graph.consumers()
    for shuffle in graph.nodes:
        if shuffle.op != "channel_shuffle" or graph.type_of(shuffle.inputs[0]).ndim != 4:
            continue
        if not _folds_into_weights(graph, shuffle, consumers):
            continue
        folder = _Folder(graph)
        reader = consumers[shuffle.outputs[0]][0]
        replacement = folder.moved(shuffle, reader)
        if replacement is None:
            continue
        nodes: list[Node] = []
        for node in graph.nodes:
            if node is shuffle:
                continue
            nodes.extend(replacement if node is reader else [node])
        return with_nodes(graph, nodes, folder.params)
    return graph


def fold_channel_shuffle(graph: Graph) -> Graph:
    """See the module docstring."""
    graph = _recognize(graph)
    for _ in range(_MAX_ROUNDS * max(1, len(graph.nodes))):
        moved = _move_one(graph)
        if moved is graph:
            break
        graph = moved
    return graph
