"""``fuse_attention``: scaled dot-product attention becomes one ``attention`` node (CPU targets).

Rewrite: the chain ``matmul(q, k_t)`` -> [``multiply`` / ``divide`` by a scalar] -> [``add`` of biases,
``where(mask, fill, .)`` and ``where(mask, ., fill)`` masks, ``maximum(., fill)`` clamps, and ``reshape`` that
regroups the batch; before them Gemma 2's soft-capping ``cap * tanh(. / cap)`` of the scaled scores, the kernel's
``softcap``] -> ``softmax`` over the last axis -> [``cast`` to float32] -> [such a ``reshape``] -> ``matmul(., v)``
[-> such a ``reshape``] [-> ``transpose`` keeping the last axis last] becomes ``attention(q, k_t, v, *biases,
scale=..., perm=..., tiles=...)``. Such a ``reshape`` regroups the batch dimensions alone (the last two kept, and
the product of the others): leading 1s added or dropped, or BLOOM's and DeBERTa's ``[batch * heads, S, S]`` scores
viewed as ``[batch, heads, S, S]`` to meet their masks and back. The kernel runs with the batch dimensions the
softmax sees; an operand read with others is reshaped to them (where it holds the whole batch there, or is the same
for all of it: a regrouping cannot split a broadcast), and so is the result where the chain ends with others.

Scalar multiplications or divisions of ``q`` or ``k_t`` themselves (``q * d**-0.25`` and ``k_t * d**-0.25``, as
PyTorch's scaled-dot-product math exports them; DeBERTa's ``k_t / scale``) fold into ``scale`` (a scalar: one
element, and the scaled value keeps its shape). Biases are masks and position biases of any shape that broadcasts
to the scores (several adds give several biases, added in their order). A ``where`` mask counts when its condition
is boolean and its fill a scalar at or below ``MASK_FILL`` (``-inf``, or the lowest float as ``masked_fill`` and
causal masks export it): it becomes the bias ``where(mask, fill, 0)`` (or ``where(mask, 0, fill)``), a node of its
own (``fill + s`` is ``fill`` in float32 for every realistic score ``s``, and the exponential of either is 0). A
clamp ``maximum(scores, fill)`` by such a fill (XGLM's) is dropped: it turns only ``-inf`` into the lowest float,
which changes the weights of a row whose every score is ``-inf`` alone (NaN without it, uniform with it). Every
value inside the chain must be read by the next node alone (not an output, not read elsewhere: attention
probabilities that a model returns keep the operators), and the kernel's broadcast result must have the product's
shape. Scaling after a bias add (``(q @ k_t + mask) * c``) is not matched. The kernel's tiles are chosen here for
``target`` (``tcomp.ops.cpu.attention.choose_tiles``).

Assumes a typed graph before fusion; float32 only. Returns the same graph when nothing matches.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tcomp.graph.edit import with_nodes
from tcomp.graph.ir import FreshNames, Graph, Node, make_node
from tcomp.ops.cpu.attention import choose_tiles
from tcomp.target import Target, as_target


def _without_leading_ones(shape: tuple[int, ...]) -> tuple[int, ...]:
    return shape[next((k for k, d in enumerate(shape) if d != 1), len(shape)):]


MASK_FILL = -1e30  # where(mask, fill, scores) with fill at or below this masks as adding where(mask, fill, 0) does


@dataclass(frozen=True)
class _Mask:
    """``where(cond, fill, scores)`` (``fill_when_true``) or ``where(cond, scores, fill)``: the bias
    ``where(cond, fill, 0)`` or ``where(cond, 0, fill)`` once fused (``fill + s`` rounds to ``fill`` in float32
    for any score ``|s| < 1e31``, and ``exp`` of either is 0)."""

    cond: str
    fill: str
    fill_when_true: bool


@dataclass
class _Match:
    qk: Node
    pv: Node
    removed: list[Node]
    biases: list[str | _Mask] = field(default_factory=list)
    scale: float = 1.0
    softcap: float = 0.0
    q: str = ""
    k_t: str = ""
    output: str = ""
    perm: tuple[int, ...] = ()
    batch: dict[str, tuple[int, ...]] = field(default_factory=dict)  # operand -> the scores' batch where it is read
    regroup: dict[str, tuple[int, ...]] = field(default_factory=dict)  # operand -> its shape for the kernel
    result: tuple[int, ...] = ()  # the kernel's result shape where the chain's output has other batch dimensions


class _Matcher:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.producers = graph.producers()
        self.consumers = graph.consumers()

    def only_reader(self, value: str, reader: Node) -> bool:
        readers = self.consumers.get(value, [])
        return value not in self.graph.outputs and len(readers) == 1 and readers[0] is reader

    def scalar(self, value: str) -> float | None:
        array = self.graph.params.get(value)
        if array is None or array.size != 1 or not np.issubdtype(array.dtype, np.floating):
            return None
        return float(array.reshape(-1)[0])

    def same_shape(self, a: str, b: str) -> bool:
        """Whether values ``a`` and ``b`` have one shape (a scaling by a one-element array of more dimensions
        broadcasts its operand: it is not a plain scaling)."""
        return tuple(self.graph.type_of(a).shape) == tuple(self.graph.type_of(b).shape)

    def batch_of(self, value: str) -> tuple[int, ...]:
        return tuple(self.graph.type_of(value).shape[:-2])

    def batch_reshape(self, node: Node) -> bool:
        """Whether ``node`` is a ``reshape`` that regroups the batch dimensions only: the same two last dimensions,
        and batch dimensions of the same product (``[H, Sq, Skv]`` and ``[1, H, Sq, Skv]``; ``[B * H, Sq, Skv]`` and
        ``[B, H, Sq, Skv]``)."""
        if node.op != "reshape":
            return False
        first, second = (tuple(self.graph.type_of(v).shape) for v in (node.inputs[0], node.outputs[0]))
        return len(first) >= 2 and len(second) >= 2 and first[-2:] == second[-2:] and \
            math.prod(first[:-2]) == math.prod(second[:-2])

    def regrouped(self, match: _Match, batch: tuple[int, ...]) -> bool:
        """Record in ``match.regroup`` the operands read with batch dimensions other than ``batch`` (the kernel's),
        with their shapes for the kernel; False where one cannot be reshaped to them (it broadcasts over part of
        the batch where it is read)."""
        for value, read in match.batch.items():
            shape = tuple(self.graph.type_of(value).shape)
            own = _without_leading_ones(shape[:-2])
            if _without_leading_ones(read) == _without_leading_ones(batch) or not own:
                continue  # the same batch, or the same operand for all of it
            if own != _without_leading_ones(read):
                return False
            match.regroup[value] = (*batch, *shape[-2:])
        return True

    def through(self, value: str, removed: list[Node], passes: Callable[[Node], bool]) -> str:
        """The output of ``value``'s only reader when ``passes`` takes that reader (which joins ``removed``), else
        ``value``."""
        readers = self.consumers.get(value, [])
        if len(readers) != 1 or not passes(readers[0]) or not self.only_reader(value, readers[0]):
            return value
        removed.append(readers[0])
        return readers[0].outputs[0]

    def mask_fill(self, value: str) -> bool:
        """Whether ``value`` is a scalar at or below ``MASK_FILL`` (``-inf``, or the lowest float, as
        ``masked_fill`` and causal masks export it)."""
        fill = self.scalar(value)
        return fill is not None and fill <= MASK_FILL

    def masking(self, node: Node) -> int | None:
        """The position of the scores in ``node`` when it is ``where(cond, fill, scores)`` or
        ``where(cond, scores, fill)`` with a boolean ``cond`` and a ``mask_fill``, broadcasting to the scores."""
        if self.graph.type_of(node.inputs[0]).dtype != "bool":
            return None
        for scores, fill in ((2, 1), (1, 2)):
            if self.mask_fill(node.inputs[fill]) and self.same_shape(node.inputs[scores], node.outputs[0]):
                return scores
        return None

    def float32(self, value: str) -> bool:
        return self.graph.type_of(value).dtype == "float32"

    def scores(self, value: str, reader: Node, scaled: bool) -> _Match | None:
        """Walk back from ``value`` (read by ``reader`` alone) through bias adds, then scalings, to ``q @ k_t``."""
        if not self.only_reader(value, reader) or not self.float32(value):
            return None
        node = self.producers.get(value)
        if node is None:
            return None
        if node.op == "add" and not scaled:
            for position in (0, 1):
                found = self.scores(node.inputs[position], node, False)
                if found is not None:
                    found.biases.append(node.inputs[1 - position])
                    found.batch[node.inputs[1 - position]] = self.batch_of(value)
                    found.removed.append(node)
                    return found
            return None
        capped = self.softcap(node) if node.op == "multiply" and not scaled else None
        if capped is not None:  # cap * tanh(x / cap): the scaled scores capped (Gemma 2), no bias inside
            inner, cap, nodes = capped
            found = self.scores(inner, nodes[0], True)
            if found is not None:
                found.softcap = cap
                found.removed.extend(nodes)
            return found
        if node.op in ("multiply", "divide"):
            positions = (0, 1) if node.op == "multiply" else (0,)
            for position in positions:
                factor = self.scalar(node.inputs[1 - position])
                if factor is None or factor == 0.0 or not self.same_shape(node.inputs[position], value):
                    continue
                found = self.scores(node.inputs[position], node, True)
                if found is not None:
                    found.scale *= factor if node.op == "multiply" else 1.0 / factor
                    found.removed.append(node)
                    return found
            return None
        position = self.masking(node) if node.op == "where" and not scaled else None
        if position is not None:
            found = self.scores(node.inputs[position], node, False)
            if found is not None:
                found.biases.append(_Mask(node.inputs[0], node.inputs[3 - position], position == 2))
                found.batch[node.inputs[0]] = self.batch_of(value)
                found.removed.append(node)
            return found
        if node.op == "maximum" and not scaled:  # max(scores, lowest float): only -inf changes, to the lowest
            for position in (0, 1):
                if self.mask_fill(node.inputs[1 - position]) and self.same_shape(node.inputs[position], value):
                    found = self.scores(node.inputs[position], node, False)
                    if found is not None:
                        found.removed.append(node)
                    return found
            return None
        if self.batch_reshape(node):
            found = self.scores(node.inputs[0], node, scaled)
            if found is not None:
                found.removed.append(node)
            return found
        if node.op == "matmul" and not node.attr("transpose_b", False):
            match = _Match(qk=node, pv=node, removed=[node], q=node.inputs[0], k_t=node.inputs[1])
            match.q, q_scale = self.unscaled(match.q, node)
            match.k_t, k_scale = self.unscaled(match.k_t, node)
            match.scale = q_scale * k_scale
            match.batch = {match.q: self.batch_of(value), match.k_t: self.batch_of(value)}
            for operand in (node.inputs[0], node.inputs[1]):
                if operand != match.q and operand != match.k_t:
                    match.removed.insert(0, self.producers[operand])
            return match
        return None

    def softcap(self, node: Node) -> tuple[str, float, list[Node]] | None:
        """``(x, cap, [divide, tanh, multiply])`` when ``node`` is ``multiply(tanh(divide(x, cap)), cap)`` with one
        positive scalar ``cap`` (either operand order of the multiply), each value read by the next node alone."""
        for position in (0, 1):
            cap = self.scalar(node.inputs[1 - position])
            tanh = self.producers.get(node.inputs[position])
            if cap is None or not cap > 0.0 or tanh is None or tanh.op != "tanh" or \
                    not self.only_reader(node.inputs[position], node):
                continue
            divide = self.producers.get(tanh.inputs[0])
            if divide is None or divide.op != "divide" or self.scalar(divide.inputs[1]) != cap or \
                    not self.only_reader(tanh.inputs[0], tanh) or \
                    not self.same_shape(divide.inputs[0], node.outputs[0]):
                continue
            return divide.inputs[0], cap, [divide, tanh, node]
        return None

    def unscaled(self, value: str, reader: Node) -> tuple[str, float]:
        """``value`` without a multiplication by a scalar that only ``reader`` reads, and that scalar."""
        node = self.producers.get(value)
        if node is None or node.op not in ("multiply", "divide") or not self.only_reader(value, reader):
            return value, 1.0
        for position in (0, 1) if node.op == "multiply" else (0,):
            factor = self.scalar(node.inputs[1 - position])
            if factor is not None and factor != 0.0 and self.float32(node.inputs[position]) and \
                    self.same_shape(node.inputs[position], value):
                return node.inputs[position], factor if node.op == "multiply" else 1.0 / factor
        return value, 1.0

    def attention(self, softmax: Node) -> _Match | None:
        x = self.graph.type_of(softmax.inputs[0])
        if x.ndim < 2 or int(softmax.attr("axis", -1)) not in (-1, x.ndim - 1):
            return None
        match = self.scores(softmax.inputs[0], softmax, False)
        if match is None:
            return None
        match.removed.append(softmax)
        probabilities = self.through(softmax.outputs[0], match.removed,
                                     lambda reader: reader.op == "cast" and self.float32(reader.outputs[0]))
        probabilities = self.through(probabilities, match.removed, self.batch_reshape)
        readers = self.consumers.get(probabilities, [])
        if len(readers) != 1 or probabilities in self.graph.outputs:
            return None
        pv = readers[0]
        if pv.op != "matmul" or pv.attr("transpose_b", False) or pv.inputs[0] != probabilities or \
                pv.inputs[1] == probabilities:
            return None
        match.pv = pv
        match.removed.append(pv)
        match.batch.setdefault(pv.inputs[1], self.batch_of(pv.outputs[0]))
        match.output = self.through(pv.outputs[0], match.removed, self.batch_reshape)
        operands = [match.q, match.k_t, pv.inputs[1], *(b.cond if isinstance(b, _Mask) else b for b in match.biases)]
        tensors = [match.q, match.k_t, pv.inputs[1], *(b for b in match.biases if isinstance(b, str))]
        if not all(self.float32(v) for v in tensors) or not all(self.graph.type_of(v).ndim >= 2 for v in operands):
            return None
        batch = self.batch_of(softmax.inputs[0])
        if not self.regrouped(match, batch):
            return None
        # the kernel's result broadcasts every operand's batch: it must be the product's own shape
        shapes = [match.regroup.get(v, tuple(self.graph.type_of(v).shape)) for v in operands]
        try:
            broadcast = np.broadcast_shapes(*(shape[:-2] for shape in shapes))
        except ValueError:
            return None
        result = (*broadcast, shapes[0][-2], shapes[2][-1])
        out_type = self.graph.type_of(match.output)
        if result != tuple(out_type.shape):
            if tuple(broadcast) != batch or math.prod(result) != math.prod(out_type.shape) or \
                    result[-2:] != tuple(out_type.shape[-2:]):
                return None
            match.result = result  # a reshape to the chain's output follows the kernel
            return match
        after = self.consumers.get(match.output, [])
        if len(after) == 1 and after[0].op == "transpose" and match.output not in self.graph.outputs:
            perm = tuple(int(p) for p in after[0].attr("perm"))
            if perm and perm[-1] == out_type.ndim - 1:
                match.perm = perm
                match.removed.append(after[0])
                match.output = after[0].outputs[0]
        return match


def fuse_attention(graph: Graph, target: Target | str | None = None) -> Graph:
    """See the module docstring."""
    resolved = as_target(target)
    matcher = _Matcher(graph)
    names = FreshNames.of(graph)
    replaced: dict[str, list[Node]] = {}  # name of the last removed node -> the attention node (and a reshape)
    removed: set[str] = set()
    params = dict(graph.params)
    zero = ""
    mask_nodes: dict[_Mask, Node] = {}  # one bias per mask, however many attentions read it (every layer's)
    regroups: dict[tuple[str, tuple[int, ...]], Node] = {}  # one reshape per operand and shape (every layer's mask)

    def regrouped(value: str, match: _Match) -> str:
        shape = match.regroup.get(value)
        if shape is None:
            return value
        if (value, shape) not in regroups:
            regroups[value, shape] = make_node("reshape", names.fresh(f"{value}/regroup"), [value],
                                               [names.fresh(f"{value}/regrouped")], shape=shape)
        return regroups[value, shape].outputs[0]
    for node in graph.nodes:
        if node.op != "softmax" or node.name in removed:
            continue
        match = matcher.attention(node)
        if match is None or any(n.name in removed for n in match.removed):
            continue
        q_type = graph.type_of(match.q)
        skv = graph.type_of(match.k_t).shape[-1]
        tiles = choose_tiles(q_type.shape[-2], skv, resolved.vector_bits // 32, resolved.vector_registers)
        biases = []
        for bias in match.biases:
            if isinstance(bias, _Mask):  # where(cond, fill, scores) -> the bias where(cond, fill, 0), or swapped
                if not zero:
                    zero = names.fresh("attention/zero")
                    params[zero] = np.zeros((), np.float32)
                bias = _Mask(regrouped(bias.cond, match), bias.fill, bias.fill_when_true)
                if bias not in mask_nodes:
                    values = [bias.fill, zero] if bias.fill_when_true else [zero, bias.fill]
                    mask_nodes[bias] = make_node("where", names.fresh(f"{match.pv.name}/mask"), [bias.cond, *values],
                                                 [names.fresh(f"{match.pv.name}/mask_bias")])
                bias = mask_nodes[bias].outputs[0]
            biases.append(regrouped(bias, match))
        operands = [regrouped(v, match) for v in (match.q, match.k_t, match.pv.inputs[1])]
        output = names.fresh(f"{match.pv.name}/attention_out") if match.result else match.output
        kernel = make_node("attention", names.fresh(f"{match.pv.name}/attention"), [*operands, *biases], [output],
                           scale=float(np.float32(match.scale)), perm=match.perm,
                           tiles=(tiles.mr, tiles.nr, tiles.rows, tiles.lanes), softcap=match.softcap)
        replaced[match.removed[-1].name] = [kernel] if not match.result else [kernel, make_node(
            "reshape", names.fresh(f"{match.pv.name}/regroup"), [output], [match.output],
            shape=tuple(graph.type_of(match.output).shape))]
        removed.update(n.name for n in match.removed)
    if not replaced:
        return graph
    # a mask's bias and a regrouped operand go right before the first node (in the graph's order) that reads them
    pending = {node.outputs[0]: node for node in (*mask_nodes.values(), *regroups.values())}
    nodes: list[Node] = []

    def place(node: Node) -> None:
        for value in node.inputs:
            if value in pending:
                place(pending.pop(value))
        nodes.append(node)

    for n in graph.nodes:
        if n.name in removed and n.name not in replaced:
            continue
        for new in replaced.get(n.name, [n]):
            place(new)
    return with_nodes(graph, nodes, params)
