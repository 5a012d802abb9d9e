"""The graph IR: typed operator nodes over named values, parameters (constants), a printer and a verifier.

A ``Graph`` is immutable: ``nodes`` in topological order, each a frozen ``Node`` (operator name, attributes, input
and output value names). Values are named by strings. Every value has a ``TensorType`` (static shape, dtype) in
``types``; ``params`` holds the constants (weights, folded values), bound once by the executor; ``values`` holds the
small integer values known at compile time (shape arithmetic), filled by type inference (``infer.py``).
Passes return a new graph built with ``dataclasses.replace`` (or ``edit.with_nodes``) and the very same graph when
nothing changed.

Printed form::

    graph resnet(%data: float32[1, 3, 224, 224]) -> (%prob) {
      param %w0: float32[64, 3, 7, 7]
      %c0 = conv2d(%data, %w0, strides=(2, 2), pads=(3, 3, 3, 3)) : float32[1, 64, 112, 112]
      ...
    }
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from tcomp.ir import dtype as dt

Attrs = tuple[tuple[str, Any], ...]


class GraphError(ValueError):
    """A malformed graph or model, or one tcomp cannot compile; the message names the node and the reason."""


class UnsupportedOperatorError(GraphError):
    """The model uses operators (or operator versions) tcomp has no converter for; ``nodes`` lists every one as
    ``(node name, op type, opset)``."""

    def __init__(self, message: str, nodes: list[tuple[str, str, int]]) -> None:
        super().__init__(message)
        self.nodes = nodes


class ValueNeededError(GraphError):
    """Compiling needs the value of ``value`` (a shape, slice bounds, axes ...), which is not known at compile time.
    ``sources`` names the graph inputs it is computed from (through anything but their shapes): fixing their values
    (``input_values``, or the specializing executor at run time) makes it known."""

    def __init__(self, message: str, value: str, sources: tuple[str, ...]) -> None:
        super().__init__(message)
        self.value = value
        self.sources = sources


@dataclass(frozen=True)
class TensorType:
    """A static shape (non-negative ints) and an element dtype (tcomp's dtype names)."""

    shape: tuple[int, ...]
    dtype: str

    def __post_init__(self) -> None:
        for dim in self.shape:
            if not isinstance(dim, int) or isinstance(dim, bool) or dim < 0:
                raise GraphError(f"tensor type: dimension {dim!r} of shape {self.shape} is not a non-negative int")

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * dt.storage_bytes(self.dtype)

    def __str__(self) -> str:
        return f"{self.dtype}[{', '.join(str(d) for d in self.shape)}]"


def known_dtype(value: object) -> str:
    """``value`` if it names an element type a tensor can have (``dtype.known_dtype``), else a ``GraphError``."""
    try:
        return dt.known_dtype(value)
    except ValueError as error:
        raise GraphError(str(error)) from None


def type_of_array(value: np.ndarray) -> TensorType:
    return TensorType(tuple(int(d) for d in value.shape), dt.normalize(value.dtype))


class FreshNames:
    """Names not taken yet, the one rule for new value and node names: ``fresh("x")`` gives ``x``, else ``x_1``,
    ``x_2`` ... skipping every name in ``taken`` and every name it gave before."""

    def __init__(self, taken: Iterable[str] = ()) -> None:
        self.taken = set(taken)

    @staticmethod
    def of(graph: Graph) -> FreshNames:
        """Names new to ``graph``: none of its values or nodes has them."""
        return FreshNames(set(graph.types) | {node.name for node in graph.nodes})

    def fresh(self, base: str) -> str:
        name, count = base, 0
        while name in self.taken:
            count += 1
            name = f"{base}_{count}"
        self.taken.add(name)
        return name


def make_attrs(attrs: Mapping[str, Any]) -> Attrs:
    """Attributes as a sorted tuple of pairs; lists become tuples so nodes stay immutable."""

    def freeze(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return tuple(freeze(v) for v in value)
        return value

    return tuple(sorted((k, freeze(v)) for k, v in attrs.items()))


@dataclass(frozen=True)
class Node:
    """``outputs = op(inputs, attrs)``. ``name`` is unique within a graph (used in messages and kernel names)."""

    op: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Attrs = ()

    def attr(self, key: str, default: Any = None) -> Any:
        for k, v in self.attrs:
            if k == key:
                return v
        return default

    @property
    def attr_dict(self) -> dict[str, Any]:
        return dict(self.attrs)

    def members(self) -> tuple[Node, ...]:
        """The nodes a ``fused`` node groups (its body's), else the node itself."""
        return tuple(self.attr("body").nodes) if self.op == "fused" else (self,)

    def with_attrs(self, **changes: Any) -> Node:
        merged = dict(self.attrs)
        merged.update(changes)
        return replace(self, attrs=make_attrs(merged))


def make_node(op: str, name: str, inputs: Iterable[str], outputs: Iterable[str], **attrs: Any) -> Node:
    return Node(op, name, tuple(inputs), tuple(outputs), make_attrs(attrs))


@dataclass(frozen=True, eq=False)
class Graph:
    """A dataflow graph over named values. ``inputs`` are the runtime inputs, ``outputs`` the results (any value,
    possibly an input or a parameter), ``params`` the constants."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    nodes: tuple[Node, ...]
    params: Mapping[str, np.ndarray] = field(default_factory=dict)
    types: Mapping[str, TensorType] = field(default_factory=dict)
    values: Mapping[str, np.ndarray] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)  # results of analyses (the memory plan)

    def producers(self) -> dict[str, Node]:
        """The node producing each node output."""
        return {out: node for node in self.nodes for out in node.outputs}

    def consumers(self) -> dict[str, list[Node]]:
        """The nodes reading each value (a node reading a value twice is listed once)."""
        result: dict[str, list[Node]] = {}
        for node in self.nodes:
            for name in dict.fromkeys(node.inputs):
                if name:
                    result.setdefault(name, []).append(node)
        return result

    def type_of(self, name: str) -> TensorType:
        try:
            return self.types[name]
        except KeyError:
            raise GraphError(f"graph {self.name}: value {name!r} has no type (run infer_types first)") from None

    def __str__(self) -> str:
        return graph_to_str(self)


def remove_unused(graph: Graph) -> Graph:
    """Drop nodes whose outputs nothing reads (dead code) and params no node or output reads."""
    live: set[str] = set(graph.outputs)
    kept: list[Node] = []
    for node in reversed(graph.nodes):
        if any(out in live for out in node.outputs):
            kept.append(node)
            live.update(i for i in node.inputs if i)
    kept.reverse()
    params = {k: v for k, v in graph.params.items() if k in live}
    if len(kept) == len(graph.nodes) and len(params) == len(graph.params):
        return graph
    return replace(graph, nodes=tuple(kept), params=params)


# ---------------------------------------------------------------------------------------------------------------------
# printer
def _format_attr(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(_format_attr(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def node_to_str(node: Node, types: Mapping[str, TensorType] | None = None) -> str:
    args = [f"%{i}" if i else "_" for i in node.inputs]
    args += [f"{k}={_format_attr(v)}" for k, v in node.attrs if not isinstance(v, Graph)]
    lhs = ", ".join(f"%{o}" for o in node.outputs)
    text = f"{lhs} = {node.op}({', '.join(args)})"
    if types is not None:
        out_types = [str(types[o]) if o in types else "?" for o in node.outputs]
        text += " : " + (out_types[0] if len(out_types) == 1 else "(" + ", ".join(out_types) + ")")
    return text


def graph_to_str(graph: Graph) -> str:
    def typed(name: str) -> str:
        t = graph.types.get(name)
        return f"%{name}: {t}" if t is not None else f"%{name}"

    lines = [f"graph {graph.name}({', '.join(typed(i) for i in graph.inputs)}) -> "
             f"({', '.join('%' + o for o in graph.outputs)}) {{"]
    for name, value in graph.params.items():
        t = graph.types.get(name) or type_of_array(value)
        if value.size <= 8:
            text = np.array2string(value.reshape(-1), separator=", ", max_line_width=1 << 20)
            lines.append(f"  param %{name}: {t} = {text}")
        else:
            lines.append(f"  param %{name}: {t}")
    for node in graph.nodes:
        lines.append("  " + node_to_str(node, graph.types))
        body = node.attr("body")
        if isinstance(body, Graph):
            lines[-1] += " {"
            lines.extend("    " + line for line in graph_to_str(body).splitlines()[1:-1])
            lines.append("  }")
    lines.append("}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------------
# verifier
def verify_graph(graph: Graph) -> None:
    """Check the invariants passes rely on: every value defined once (an input, a param or one node output) before
    it is read, nodes in topological order, unique node names, outputs defined, types present for every value.
    Raises ``GraphError`` naming the first violation."""
    defined: set[str] = set()
    for name in graph.inputs:
        if name in defined:
            raise GraphError(f"graph {graph.name}: input {name!r} is declared twice")
        defined.add(name)
    for name in graph.params:
        if name in defined:
            raise GraphError(f"graph {graph.name}: {name!r} is both an input and a parameter")
        defined.add(name)
    names: set[str] = set()
    for node in graph.nodes:
        if node.name in names:
            raise GraphError(f"graph {graph.name}: two nodes are named {node.name!r}")
        names.add(node.name)
        for value in node.inputs:
            if value and value not in defined:
                raise GraphError(
                    f"graph {graph.name}: node {node.name} ({node.op}) reads {value!r} before it is defined")
        for value in node.outputs:
            if value in defined:
                raise GraphError(f"graph {graph.name}: node {node.name} ({node.op}) redefines {value!r}")
            defined.add(value)
    for value in graph.outputs:
        if value not in defined:
            raise GraphError(f"graph {graph.name}: output {value!r} is never defined")
    if graph.types:
        missing = sorted(v for v in defined if v not in graph.types)
        if missing:
            raise GraphError(f"graph {graph.name}: values without a type: {', '.join(missing[:5])}")
