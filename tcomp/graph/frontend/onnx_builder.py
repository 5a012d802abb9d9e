"""``Builder``: the state of one ONNX model's conversion (graph IR nodes, parameters and their inferred types, the
values known at compile time) that every converter appends to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tcomp.graph.infer import infer_node
from tcomp.graph.ir import FreshNames, Graph, GraphError, TensorType, ValueNeededError, make_node
from tcomp.graph.op import is_stateful
from tcomp.graph.passes.fold_constants import MAX_FOLD_BYTES, evaluate_node
from tcomp.ir import dtype as dt
from tcomp.target import as_target

if TYPE_CHECKING:
    from tcomp.graph.frontend.onnx_functions import FunctionLibrary


@dataclass(frozen=True)
class SequenceValue:
    """An ONNX sequence, which tcomp resolves while importing: the graph IR tensors it holds, in order, and their
    element type (known even when the sequence is empty)."""

    items: tuple[str, ...]
    dtype: str


class Builder:
    """Accumulates graph IR nodes, parameters and their inferred types while converting an ONNX graph."""

    def __init__(self, opset: int, base_dir: Path | None, functions: FunctionLibrary) -> None:
        self.opset = opset
        self.base_dir = base_dir
        self.functions = functions  # the functions nodes may call (``onnx_functions``)
        self.nodes: list[Any] = []
        self.params: dict[str, np.ndarray] = {}
        self.types: dict[str, TensorType] = {}
        self.values: dict[str, np.ndarray] = {}
        self.folded: dict[str, np.ndarray] = {}  # values computed on demand from constants (``evaluate``)
        self.names = FreshNames()  # value names
        self.node_names = FreshNames()
        self.alias: dict[str, str] = {}  # ONNX value name -> graph IR value name, where they differ
        self.graph_inputs: tuple[str, ...] = ()  # the run-time inputs, in order
        self.sequences: dict[str, SequenceValue] = {}  # ONNX sequences: their tensors, known at compile time
        self.optionals: dict[str, str | None] = {}  # ONNX optionals: the value each holds, or None when empty
        self.random_state = ""  # the parameter random nodes read (``onnx_random.draw``), once there is one
        self.random_nodes = 0  # random nodes so far: each draws its own stream
        self.node_name = ""  # the ONNX node being converted, for names and messages
        self.op_type = ""

    # -- names ----------------------------------------------------------------------------------------------------
    def fresh(self, hint: str) -> str:
        return self.names.fresh(hint or "v")

    def _node_name(self) -> str:
        return self.node_names.fresh(self.node_name)

    def error(self, reason: str) -> GraphError:
        return GraphError(f"node {self.node_name} ({self.op_type}, opset {self.opset}): {reason}")

    # -- values ---------------------------------------------------------------------------------------------------
    def param(self, array: np.ndarray, hint: str) -> str:
        name = self.fresh(hint)
        self.params[name] = np.require(array, requirements="C")
        infer_types_of_param(self, name)
        return name

    def add(self, op: str, inputs: Sequence[str], outputs: int | Sequence[str] = 1, **attrs: Any) -> list[str]:
        """Append node ``op(inputs, attrs)``; its outputs are the given names or fresh ones. Returns the names."""
        if isinstance(outputs, int):
            names = [self.fresh(f"{self.node_name}/{op}") for _ in range(outputs)]
        else:
            names = list(outputs)
        for name in inputs:
            if name in self.sequences or name in self.optionals:
                self.type(name)  # the error that says so
        node = make_node(op, self._node_name(), inputs, names, **attrs)
        infer_node(node, self.types, self.values)
        self.nodes.append(node)
        return names

    def add1(self, op: str, inputs: Sequence[str], output: str | None = None, **attrs: Any) -> str:
        return self.add(op, inputs, 1 if output is None else [output], **attrs)[0]

    def type(self, name: str) -> TensorType:
        t = self.types.get(name)
        if t is None:
            kind = "a sequence" if name in self.sequences else "an optional" if name in self.optionals else "undefined"
            raise self.error(f"{name!r} is {kind}, where a tensor is needed")
        return t

    def defined(self, name: str) -> bool:
        """Whether ``name`` is a value: a tensor, a sequence or an optional."""
        return name in self.types or name in self.sequences or name in self.optionals

    def const(self, name: str) -> np.ndarray | None:
        """The value of ``name`` when known at compile time (a parameter, a propagated integer value, or a value
        ``evaluate`` computed)."""
        if not name:
            return None
        if name in self.params:
            return self.params[name]
        return self.values.get(name, self.folded.get(name))

    def require_const(self, name: str, what: str) -> np.ndarray:
        """The value of ``name``, computed from constants if need be (``evaluate``); ``ValueNeededError`` (naming
        the graph inputs it comes from) when it depends on the values of run-time inputs."""
        value = self.const(name)
        sources = self.input_sources(name) if value is None else ()
        if value is None and not sources:
            value = self.evaluate(name)
        if value is None:
            hint = (f"; it is computed from graph input(s) {list(sources)}: fix them with input_values= "
                    "(--freeze name=value), or run the model to specialize it" if sources else "")
            message = f"{what} ({name!r}) must be known at compile time (a constant or computed from shapes){hint}"
            raise ValueNeededError(f"node {self.node_name} ({self.op_type}, opset {self.opset}): {message}", name,
                                   sources)
        return value

    def evaluate(self, name: str) -> np.ndarray | None:
        """The value of ``name``, which no run-time input's value decides, computed by compiling and running the
        nodes it comes from (as constant folding does; float tensors included, which type inference does not
        propagate). None when a value on the way is larger than constant folding takes or changes from run to run
        (random numbers)."""
        producers = {out: node for node in self.nodes for out in node.outputs}
        needed: set[str] = set()
        stack = [name]
        while stack:
            value = stack.pop()
            node = producers.get(value)
            if self.const(value) is not None or node is None or node.name in needed:
                continue
            if sum(self.types[o].nbytes for o in node.outputs) > MAX_FOLD_BYTES or is_stateful(node):
                return None
            needed.add(node.name)
            stack.extend(i for i in node.inputs if i)
        scope = Graph("evaluate", (), (), (), dict(self.params), dict(self.types), dict(self.values))
        known = {**self.values, **self.folded, **self.params}
        for node in self.nodes:
            if node.name in needed:
                outputs = evaluate_node(scope, node, known, as_target(None))
                known.update(zip(node.outputs, outputs))
                self.folded.update(zip(node.outputs, outputs))
        return self.folded.get(name)

    def input_sources(self, name: str) -> tuple[str, ...]:
        """The graph inputs whose values (not only shapes) ``name`` is computed from, in input order."""
        producers = {out: node for node in self.nodes for out in node.outputs}
        found: set[str] = set()
        seen: set[str] = set()
        stack = [name]
        while stack:
            value = stack.pop()
            if value in seen:
                continue
            seen.add(value)
            if value in self.graph_inputs:
                found.add(value)
            node = producers.get(value)
            if node is not None and node.op != "shape_of":  # a shape depends on no input's values
                stack.extend(i for i in node.inputs if i)
        return tuple(i for i in self.graph_inputs if i in found)


def infer_types_of_param(builder: Builder, name: str) -> None:
    array = builder.params[name]
    t = TensorType(tuple(int(d) for d in array.shape), _dtype_name(array))
    builder.types[name] = t
    if t.numel <= 1024 and (array.dtype.kind in "iub"):
        builder.values[name] = array


def _dtype_name(array: np.ndarray) -> str:
    return dt.normalize(array.dtype)
