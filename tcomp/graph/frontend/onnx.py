"""ONNX import: a model file to the graph IR, checked at every step.

``from_onnx(model, input_shapes=None)`` accepts a path, the file's bytes or a ``ModelProto`` and returns a typed
``Graph``. The steps, each failing with a ``GraphError`` that says what is wrong:

1. parse the protobuf (a truncated or corrupt file is "malformed");
2. read the default-domain opset (9 to 21 fully; older and newer opsets where the operator definitions in effect are
   ones a converter knows);
3. list every node tcomp cannot convert (op type, domain, opset version) in one ``UnsupportedOperatorError``,
   before anything else is done;
4. bind the inputs (``onnx_inputs``): symbolic dimensions must be given in ``input_shapes`` (the CLI's
   ``--input-shapes name:[1,3,224,224]``), and the error says so; inputs given in ``input_values`` become constants;
5. read the initializers (``onnx_data.tensor_to_array``: sizes checked against the bytes present, external data only
   from inside the model's folder);
6. order the nodes topologically, refusing values read but never defined, values defined twice and cycles;
7. convert node by node (``onnx_ops``): each converter emits graph IR nodes whose types are inferred at once, so
   later converters see the shapes and the statically known values they need.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import DecodeError

from tcomp.graph.frontend.onnx_data import onnx_dtype, tensor_to_array
from tcomp.graph.frontend.onnx_inputs import bind_inputs, declared_inputs
from tcomp.graph.infer import infer_node, infer_types
from tcomp.graph.ir import FreshNames, Graph, GraphError, TensorType, ValueNeededError, make_node, verify_graph
from tcomp.ir import dtype as dt
from tcomp.target import as_target

MAX_FULL_OPSET = 21
MAX_MODEL_BYTES = 1 << 31  # protobuf cannot hold more; bigger weights must be external data


class Builder:
    """Accumulates graph IR nodes, parameters and their inferred types while converting an ONNX graph."""

    def __init__(self, opset: int, base_dir: Path | None) -> None:
        self.opset = opset
        self.base_dir = base_dir
        self.nodes: list[Any] = []
        self.params: dict[str, np.ndarray] = {}
        self.types: dict[str, TensorType] = {}
        self.values: dict[str, np.ndarray] = {}
        self.folded: dict[str, np.ndarray] = {}  # values computed on demand from constants (``evaluate``)
        self.names = FreshNames()  # value names
        self.node_names = FreshNames()
        self.alias: dict[str, str] = {}  # ONNX value name -> graph IR value name, where they differ
        self.graph_inputs: tuple[str, ...] = ()  # the run-time inputs, in order
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
        node = make_node(op, self._node_name(), inputs, names, **attrs)
        infer_node(node, self.types, self.values)
        self.nodes.append(node)
        return names

    def add1(self, op: str, inputs: Sequence[str], output: str | None = None, **attrs: Any) -> str:
        return self.add(op, inputs, 1 if output is None else [output], **attrs)[0]

    def type(self, name: str) -> TensorType:
        return self.types[name]

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
        propagate). None when a value on the way is larger than constant folding takes."""
        from tcomp.graph.passes.fold_constants import MAX_FOLD_BYTES, evaluate_node

        producers = {out: node for node in self.nodes for out in node.outputs}
        needed: set[str] = set()
        stack = [name]
        while stack:
            value = stack.pop()
            node = producers.get(value)
            if self.const(value) is not None or node is None or node.name in needed:
                continue
            if sum(self.types[o].nbytes for o in node.outputs) > MAX_FOLD_BYTES:
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


# ---------------------------------------------------------------------------------------------------------------------
# loading
def load_model(model: str | os.PathLike[str] | bytes | onnx.ModelProto) -> tuple[onnx.ModelProto, Path | None]:
    """The parsed model and the folder its external data may live in (None when not loaded from a path)."""
    if isinstance(model, onnx.ModelProto):
        return model, None
    if isinstance(model, (bytes, bytearray, memoryview)):
        return _parse(bytes(model), "the model bytes"), None
    path = Path(model)
    if not path.is_file():
        raise GraphError(f"ONNX model {str(path)!r} does not exist or is not a file")
    size = path.stat().st_size
    if size > MAX_MODEL_BYTES:
        raise GraphError(f"ONNX model {str(path)!r} is {size} bytes, more than a protobuf can hold")
    return _parse(path.read_bytes(), repr(str(path))), path.parent


def _parse(data: bytes, what: str) -> onnx.ModelProto:
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError, RecursionError) as exc:
        raise GraphError(f"malformed ONNX file ({what}): {exc or 'the protobuf cannot be decoded'}") from None
    if not proto.HasField("graph"):
        raise GraphError(f"malformed ONNX file ({what}): no graph (is it an ONNX model?)")
    return proto


def default_opset(proto: onnx.ModelProto) -> int:
    versions = [int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")]
    if not versions:
        if proto.ir_version and proto.ir_version < 3:
            return 1
        raise GraphError("the model declares no opset for the default ONNX domain")
    opset = max(versions)
    if opset < 1:
        raise GraphError(f"the model declares opset {opset} for the default ONNX domain; opsets start at 1")
    if opset > onnx.defs.onnx_opset_version():
        raise GraphError(f"the model uses opset {opset}, newer than this onnx package knows "
                         f"({onnx.defs.onnx_opset_version()})")
    return opset


# ---------------------------------------------------------------------------------------------------------------------
# import
def from_onnx(model: str | os.PathLike[str] | bytes | onnx.ModelProto,
              input_shapes: Mapping[str, Sequence[int]] | None = None, name: str | None = None,
              input_values: Mapping[str, Any] | None = None) -> Graph:
    """Import an ONNX model as a typed graph. ``input_shapes`` binds input shapes (required for dynamic dims);
    ``input_values`` fixes inputs to values (they become constants, no longer inputs)."""
    proto, base_dir = load_model(model)
    return import_model(proto, base_dir, input_shapes, name, input_values)


def import_model(proto: onnx.ModelProto, base_dir: Path | None,
                 input_shapes: Mapping[str, Sequence[int]] | None = None, name: str | None = None,
                 input_values: Mapping[str, Any] | None = None) -> Graph:
    from tcomp.graph.frontend.onnx_common import check_supported, convert_node

    opset = default_opset(proto)
    g = proto.graph
    check_supported(g.node, {o.domain or "": int(o.version) for o in proto.opset_import}, opset)
    builder = Builder(opset, base_dir)
    initializer_names = [t.name for t in g.initializer]
    all_names = set(initializer_names) | {i.name for i in g.input} | {o for n in g.node for o in n.output}
    builder.names.taken.update(n for n in all_names if n)
    inputs = bind_inputs(declared_inputs(proto), input_shapes or {}, input_values or {}, builder)
    builder.graph_inputs = tuple(inputs)
    for position, tensor in enumerate(g.initializer):
        if not tensor.name:
            raise GraphError(f"initializer {position} has no name")
        if tensor.name in builder.params:
            raise GraphError(f"initializer {tensor.name!r} is defined twice")
        builder.params[tensor.name] = tensor_to_array(tensor, base_dir, f"initializer {tensor.name!r}")
        infer_types_of_param(builder, tensor.name)
    order = _topological_order(g, set(inputs) | set(input_values or {}) | set(initializer_names))
    for index in order:
        node = g.node[index]
        builder.node_name = node.name or f"{node.op_type}_{index}"
        builder.op_type = node.op_type
        convert_node(builder, node)
    outputs = []
    builder.node_name, builder.op_type = "outputs", "Identity"
    for output in g.output:
        ir_name = builder.alias.get(output.name, output.name)
        if ir_name not in builder.types:
            raise GraphError(f"graph output {output.name!r} is never defined")
        if ir_name != output.name:
            builder.names.taken.discard(output.name)
            ir_name = builder.add1("identity", [ir_name], output=builder.fresh(output.name))
        outputs.append(ir_name)
    if not outputs:
        raise GraphError("the model has no outputs")
    _check_declared_types(g, builder)
    graph = Graph(name or g.name or "main", tuple(inputs), tuple(outputs), tuple(builder.nodes),
                  dict(builder.params), {k: builder.types[k] for k in inputs})
    graph = infer_types(graph)
    verify_graph(graph)
    return graph


def _check_declared_types(g: onnx.GraphProto, builder: Builder) -> None:
    """A graph output or value whose declared element type differs from the one its node computes is an error (as
    in onnxruntime), not a value of another type handed to the caller."""
    declarations = [("graph output", v) for v in g.output] + [("value", v) for v in g.value_info]
    for kind, value_info in declarations:
        if value_info.type.WhichOneof("value") != "tensor_type" or not value_info.type.tensor_type.elem_type:
            continue
        computed = builder.types.get(builder.alias.get(value_info.name, value_info.name))
        if computed is None:
            continue
        what = f"{kind} {value_info.name!r}"
        declared = onnx_dtype(value_info.type.tensor_type.elem_type, what)
        if declared != computed.dtype:
            raise GraphError(f"{what} is declared {declared}, but its node computes {computed.dtype}")


def _topological_order(g: onnx.GraphProto, defined: set[str]) -> list[int]:
    producer: dict[str, int] = {}
    for index, node in enumerate(g.node):
        for out in node.output:
            if not out:
                continue
            if out in producer or out in defined:
                raise GraphError(f"value {out!r} is defined twice (by node {node.name or node.op_type} and before)")
            producer[out] = index
    waiting = [0] * len(g.node)
    readers: dict[int, list[int]] = {}
    for index, node in enumerate(g.node):
        for name in dict.fromkeys(node.input):
            if not name or name in defined:
                continue
            if name not in producer:
                raise GraphError(f"node {node.name or node.op_type} ({node.op_type}) reads {name!r}, which no input, "
                                 "initializer or node defines")
            waiting[index] += 1
            readers.setdefault(producer[name], []).append(index)
    ready = deque(i for i in range(len(g.node)) if waiting[i] == 0)
    order: list[int] = []
    while ready:
        index = ready.popleft()
        order.append(index)
        for reader in readers.get(index, []):
            waiting[reader] -= 1
            if waiting[reader] == 0:
                ready.append(reader)
    if len(order) != len(g.node):
        stuck = [g.node[i].name or g.node[i].op_type for i in range(len(g.node)) if waiting[i] > 0]
        raise GraphError(f"the graph has a cycle through nodes {stuck[:6]}")
    return order
