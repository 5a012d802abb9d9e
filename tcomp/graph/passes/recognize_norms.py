"""``recognize_norms``: the operator chains exporters write for layer norm and RMS norm become one operator each.

Rewrites (``mean`` over the trailing axes ``A`` with ``keepdims``, ``eps`` a one-element parameter, ``sq(v)`` either
``power(v, 2)`` or ``multiply(v, v)``, ``d / r`` either ``divide(d, r)`` or ``multiply(d, reciprocal(r))``, the
reciprocal also as ``divide(1, r)``):

- RMS norm (Llama, T5): ``x / sqrt(mean(sq(x), A) + eps)`` [``* g``] becomes ``rms_norm(x[, g], axis, epsilon)``;
- layer norm (older exports of BERT-class models): with ``d = x - mean(x, A)``, ``d / sqrt(mean(sq(d), A) + eps)``
  [``* g``] [``+ b``] becomes ``layer_norm(x[, g[, b]], axis, epsilon)``;

where ``g`` and ``b`` are parameters constant along the rows (their shape broadcasts to the normalized axes; they
are stored in that shape), and every intermediate value is read by the chain alone (``x`` may have other readers).
The graph compiles each match into one kernel computing a row at a time (``tcomp.ops.cpu.rows``) instead of a
reduction kernel and an elementwise kernel that reads the input again. Multiplications and additions commute.

Assumes a typed graph before fusion; returns the same graph when nothing matches. The pipeline runs it for CPU
targets after ``simplify``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tcomp.graph.edit import Rewrite, with_nodes
from tcomp.graph.ir import Graph, Node, make_node, remove_unused
from tcomp.ir import dtype as dt


@dataclass(frozen=True)
class _Match:
    kind: str  # "rms_norm" or "layer_norm"
    source: str
    axis: int
    epsilon: float
    params: tuple[str, ...]  # values already in the normalized shape (new parameters where reshaped)
    nodes: tuple[str, ...]  # names of the nodes replaced
    output: str


class _Matcher(Rewrite):

    def readers(self, value: str) -> list[Node]:
        return [] if value in self.graph.outputs else self.consumers.get(value, [])

    def only_reader(self, value: str) -> Node | None:
        readers = self.readers(value)
        return readers[0] if len(readers) == 1 else None

    def scalar(self, value: str) -> float | None:
        param = self.graph.params.get(value)
        return float(param.reshape(-1)[0]) if param is not None and param.size == 1 else None

    def other_operand(self, node: Node, value: str) -> str | None:
        """The operand of the binary ``node`` that is not ``value`` (``None`` if ``value`` is not one of them)."""
        if len(node.inputs) != 2 or value not in node.inputs:
            return None
        return node.inputs[1] if node.inputs[0] == value else node.inputs[0]

    def trailing_mean(self, node: Node | None) -> int | None:
        """The first reduced axis of a ``mean`` with ``keepdims`` over the trailing axes, else ``None``."""
        if node is None or node.op != "mean" or not node.attr("keepdims", True):
            return None
        ndim = self.graph.type_of(node.inputs[0]).ndim
        axes = sorted(int(a) % ndim for a in (node.attr("axes") or ()))
        if not axes or axes != list(range(axes[0], ndim)):
            return None
        return axes[0]

    def squared(self, node: Node | None) -> str | None:
        """``v`` when ``node`` is ``power(v, 2)`` or ``multiply(v, v)``."""
        if node is None:
            return None
        if node.op == "power" and self.scalar(node.inputs[1]) == 2.0:
            return node.inputs[0]
        if node.op == "multiply" and node.inputs[0] == node.inputs[1]:
            return node.inputs[0]
        return None

    def row_param(self, value: str, x: str, axis: int) -> str | None:
        """``value`` as a parameter of the normalized shape (a new one when it only broadcasts to it), or ``None``
        when it is not a parameter of ``x``'s dtype constant along the rows."""
        param = self.graph.params.get(value)
        x_type = self.graph.type_of(x)
        shape = x_type.shape[axis:]
        if param is None or dt.normalize(param.dtype) != x_type.dtype:
            return None
        lead = max(param.ndim - len(shape), 0)
        if any(d != 1 for d in param.shape[:lead]):
            return None
        trailing = param.reshape(param.shape[lead:])
        try:
            if np.broadcast_shapes(trailing.shape, shape) != shape:
                return None
        except ValueError:
            return None
        if param.shape == shape:
            return value
        name = self.names.fresh(f"{value}/rows")
        self.params[name] = np.ascontiguousarray(np.broadcast_to(trailing, shape))
        return name

    def affine(self, y: str, op: str, source: str, axis: int) -> tuple[Node, str] | None:
        """``(node, parameter)`` when the one reader of ``y`` is ``op(y, parameter)`` (either order) with a
        parameter constant along the rows."""
        reader = self.only_reader(y)
        other = None if reader is None or reader.op != op else self.other_operand(reader, y)
        param = None if other is None else self.row_param(other, source, axis)
        return None if reader is None or param is None else (reader, param)

    def match(self, sqrt: Node) -> _Match | None:
        add = self.producers.get(sqrt.inputs[0])
        if add is None or add.op != "add" or self.only_reader(add.outputs[0]) is not sqrt:
            return None
        variance = next((i for i in add.inputs if self.scalar(i) is None), None)
        eps_value = self.other_operand(add, variance) if variance is not None else None
        epsilon = None if eps_value is None else self.scalar(eps_value)
        mean = self.producers.get(variance) if variance is not None else None
        axis = self.trailing_mean(mean)
        if epsilon is None or epsilon < 0 or mean is None or axis is None:
            return None
        if self.only_reader(mean.outputs[0]) is not add:
            return None
        square = self.producers.get(mean.inputs[0])
        centered = self.squared(square)
        if square is None or centered is None or self.only_reader(square.outputs[0]) is not mean:
            return None
        divided = self.divided(sqrt, centered)
        if divided is None:
            return None
        y, division = divided
        nodes = [square.name, mean.name, add.name, sqrt.name, *division]
        source, kind = centered, "rms_norm"
        center = self.producers.get(centered)
        if center is not None and center.op == "subtract":
            first_mean = self.producers.get(center.inputs[1])
            readers = {n.name for n in self.readers(centered)}
            if self.trailing_mean(first_mean) == axis and first_mean is not None and \
                    first_mean.inputs[0] == center.inputs[0] and self.only_reader(first_mean.outputs[0]) is center \
                    and readers == {square.name, division[-1]}:
                source, kind = center.inputs[0], "layer_norm"
                nodes = [first_mean.name, center.name, *nodes]
        if not dt.is_float(self.graph.type_of(source).dtype):
            return None
        params: list[str] = []
        for op in ("multiply", "add") if kind == "layer_norm" else ("multiply",):
            found = self.affine(y, op, source, axis)
            if found is None:
                break
            params.append(found[1])
            nodes.append(found[0].name)
            y = found[0].outputs[0]
        return _Match(kind, source, axis, epsilon, tuple(params), tuple(nodes), y)

    def divided(self, sqrt: Node, numerator: str) -> tuple[str, list[str]] | None:
        """``(y, nodes)`` when ``sqrt``'s result divides ``numerator``: ``divide(numerator, r)`` or
        ``multiply(numerator, reciprocal(r))`` (or ``divide(1, r)``)."""
        reader = self.only_reader(sqrt.outputs[0])
        if reader is None:
            return None
        if reader.op == "divide" and reader.inputs == (numerator, sqrt.outputs[0]):
            return reader.outputs[0], [reader.name]
        if reader.op == "reciprocal" or (reader.op == "divide" and self.scalar(reader.inputs[0]) == 1.0
                                         and reader.inputs[1] == sqrt.outputs[0]):
            product = self.only_reader(reader.outputs[0])
            if product is not None and product.op == "multiply" and \
                    self.other_operand(product, reader.outputs[0]) == numerator:
                return product.outputs[0], [reader.name, product.name]
        return None


def recognize_norms(graph: Graph) -> Graph:
    """See the module docstring."""
    matcher = _Matcher(graph)
    matches: dict[str, _Match] = {}  # the name of the last node replaced -> the match
    replaced: set[str] = set()
    for node in graph.nodes:
        if node.op != "sqrt":
            continue
        match = matcher.match(node)
        if match is None or replaced & set(match.nodes):
            continue
        replaced.update(match.nodes)
        last = max(match.nodes, key=[n.name for n in graph.nodes].index)
        matches[last] = match
    if not matches:
        return graph
    nodes: list[Node] = []
    for node in graph.nodes:
        if node.name in matches:
            m = matches[node.name]
            name = matcher.names.fresh(f"{m.kind}_{m.output}")
            nodes.append(make_node(m.kind, name, [m.source, *m.params], [m.output], axis=m.axis, epsilon=m.epsilon))
        elif node.name not in replaced:
            nodes.append(node)
    return remove_unused(with_nodes(graph, nodes, matcher.params))
