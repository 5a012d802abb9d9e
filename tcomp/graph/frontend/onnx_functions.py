"""ONNX functions: operators defined by a body of other operators, expanded where they are called.

Two kinds of functions are expanded, both only where no converter implements the node itself:

- **model-local functions** (``ModelProto.functions``): a node whose domain, op type and overload name a
  ``FunctionProto`` of the model (exporters write one per module kept as a function, in a domain of their own);
- **operators ONNX defines by a function** (``onnx.defs`` schemas with a function body, such as ``HannWindow``,
  ``AffineGrid`` or ``SwiGLU``, or with a body built for the node's input types, such as
  ``SoftmaxCrossEntropyLoss``): the body of the newest function version not after the model's opset.

A call is replaced by the function's nodes: its formal inputs bound to the node's inputs (an absent optional input
stays absent), its outputs to the node's outputs, its other values renamed apart, and every attribute that refers
to one of the function's (``ref_attr_name``) given the caller's value, else the function's default (for an
operator, its schema's default), else left out. The body's nodes are converted under the opset the function
declares, as the node of any converter, functions they call included. A body reads only its inputs and its own
values. Errors, when the model is read: a model-local function that calls itself (directly or not), or one whose
expansion would make more than ``MAX_EXPANDED_NODES`` nodes (each call a copy of the body); when a call is
converted: an attribute the function does not declare, more inputs or outputs than it has.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import onnx

from tcomp.graph.frontend.onnx_builder import Builder
from tcomp.graph.frontend.onnx_common import outer_reads
from tcomp.graph.frontend.onnx_control import inline_graph
from tcomp.graph.ir import GraphError
from tcomp.ir import dtype as dt

MAX_EXPANDED_NODES = 100_000

FunctionKey = tuple[str, str, str]  # (domain, name, overload)


def _domain(domain: str) -> str:
    return "" if domain == "ai.onnx" else domain


def _key(node: onnx.NodeProto) -> FunctionKey:
    return (_domain(node.domain), node.op_type, node.overload)


def _describe(key: FunctionKey) -> str:
    domain, name, overload = key
    return f"{domain + '.' if domain else ''}{name}{':' + overload if overload else ''}"


def _default_opset(function: onnx.FunctionProto, fallback: int) -> int:
    for entry in function.opset_import:
        if _domain(entry.domain) == "":
            return int(entry.version)
    return fallback


class FunctionLibrary:
    """The functions a model's nodes may call: its own (``ModelProto.functions``) and ONNX's function-defined
    operators; ``expand`` converts a call."""

    def __init__(self, functions: Iterable[onnx.FunctionProto] = ()) -> None:
        self.local: dict[FunctionKey, onnx.FunctionProto] = {}
        for function in functions:
            key = (_domain(function.domain), function.name, function.overload)
            if not function.name:
                raise GraphError("a model-local function has no name")
            if key in self.local:
                raise GraphError(f"model-local function {_describe(key)} is defined twice")
            self.local[key] = function
        self.sizes: dict[FunctionKey, int] = {}
        for key in self.local:
            self._expanded_size(key, ())
        self.calls: list[FunctionKey] = []  # the calls being expanded, outermost first

    def _expanded_size(self, key: FunctionKey, callers: tuple[FunctionKey, ...]) -> int:
        """The number of nodes model-local function ``key`` expands to, its calls expanded."""
        if key in callers:
            cycle = " -> ".join(_describe(k) for k in (*callers[callers.index(key):], key))
            raise GraphError(f"model-local function {_describe(key)} calls itself ({cycle})")
        if key not in self.sizes:
            size = 0
            for inner in self.local[key].node:
                inner_key = _key(inner)
                size += self._expanded_size(inner_key, (*callers, key)) if inner_key in self.local else 1
                if size > MAX_EXPANDED_NODES:
                    raise GraphError(f"model-local function {_describe(key)} expands to more than "
                                     f"{MAX_EXPANDED_NODES} nodes")
            self.sizes[key] = size
        return self.sizes[key]

    # -- which nodes are calls --------------------------------------------------------------------------------
    def local_function(self, node: onnx.NodeProto) -> onnx.FunctionProto | None:
        return self.local.get(_key(node))

    @staticmethod
    def operator_schema(node: onnx.NodeProto, opset: int) -> onnx.defs.OpSchema | None:
        """The schema of a default-domain operator ONNX defines by a function at ``opset`` (None otherwise)."""
        if _domain(node.domain) != "":
            return None
        try:
            schema = onnx.defs.get_schema(node.op_type, opset, "")
        except onnx.defs.SchemaError:
            return None
        if _newest(schema.function_opset_versions, opset) or _newest(
                schema.context_dependent_function_opset_versions, opset):
            return schema
        return None

    def defines(self, node: onnx.NodeProto, opset: int) -> bool:
        return self.local_function(node) is not None or self.operator_schema(node, opset) is not None

    def local_bodies(self, node: onnx.NodeProto, opset: int) -> Iterable[tuple[int, onnx.NodeProto, str]]:
        """The nodes of the model-local functions ``node`` calls, at any depth, with the opset each is converted
        under and its path (``Block_3/Relu_0``); for ``check_supported``, which lists the unsupported ones."""
        function = self.local_function(node)
        if function is None:
            return
        inner_opset = _default_opset(function, opset)
        for index, inner in enumerate(function.node):
            path = f"{_describe(_key(node))}/{inner.name or f'{inner.op_type}_{index}'}"
            yield inner_opset, inner, path
            yield from self.local_bodies(inner, inner_opset)

    # -- expansion --------------------------------------------------------------------------------------------
    def expand(self, b: Builder, node: onnx.NodeProto, inputs: Sequence[str]) -> list[str]:
        """Convert the call ``node`` (its inputs already the graph IR values ``inputs``) by converting the
        function's body; returns the IR values of the node's outputs ("" for those it does not use)."""
        key = _key(node)
        function = self.local_function(node)
        if function is not None:
            defaults = {a.name: a for a in function.attribute_proto}
            declared = set(function.attribute) | set(defaults)
        else:
            function, defaults = self._operator_function(b, node, inputs)
            declared = set(defaults) | {a.name for a in node.attribute}
        for attribute in node.attribute:
            if attribute.name not in declared:
                raise b.error(f"attribute {attribute.name[:80]!r} is not one of function {_describe(key)}'s "
                              f"({', '.join(sorted(declared)) or 'none'})")
        if len(node.input) > len(function.input) or len(node.output) > len(function.output):
            raise b.error(f"{len(node.input)} inputs and {len(node.output)} outputs; function {_describe(key)} "
                          f"takes {len(function.input)} and has {len(function.output)}")
        if key in self.calls:  # an operator's body calling a model-local function that calls the operator
            raise b.error(f"function {_describe(key)} calls itself")
        given = {a.name: a for a in node.attribute}
        graph = _body_graph(b, function, given, defaults, [bool(name) for name in node.output])
        bound = list(inputs) + [""] * (len(function.input) - len(inputs))
        outer_opset = b.opset
        self.calls.append(key)
        b.opset = _default_opset(function, outer_opset)
        try:
            produced = inline_graph(b, graph, bound, f"{b.node_name}/{_describe(key)}")
        finally:
            b.opset = outer_opset
            self.calls.pop()
        outputs = iter(produced)
        return [next(outputs) if name else "" for name in node.output]

    @staticmethod
    def _operator_function(b: Builder, node: onnx.NodeProto, inputs: Sequence[str]
                           ) -> tuple[onnx.FunctionProto, dict[str, onnx.AttributeProto]]:
        """The body ONNX defines for operator ``node`` at the model's opset (built for the inputs' types when it
        depends on them) and the schema's attribute defaults."""
        schema = FunctionLibrary.operator_schema(node, b.opset)
        if schema is None:
            raise b.error(f"operator {node.op_type} has no function body at opset {b.opset}")
        version = _newest(schema.function_opset_versions, b.opset)
        if version:
            body = schema.get_function_with_opset_version(version)
        else:
            version = _newest(schema.context_dependent_function_opset_versions, b.opset)
            types = [_type_proto(b, name).SerializeToString() for name in inputs]
            try:
                body = schema.get_context_dependent_function_with_opset_version(
                    version, node.SerializeToString(), types)
            except Exception as exc:  # onnx reports a node its builder rejects as any exception type
                raise b.error(f"ONNX cannot build the function body of this node: {exc}") from None
        function = onnx.FunctionProto()
        function.ParseFromString(body)
        defaults = {name: attribute.default_value for name, attribute in schema.attributes.items()
                    if attribute.default_value.type != onnx.AttributeProto.UNDEFINED}
        return function, defaults


def _newest(versions: Sequence[int], opset: int) -> int:
    """The newest of ``versions`` not after ``opset`` (0: none)."""
    return max((int(v) for v in versions if int(v) <= opset), default=0)


def _type_proto(b: Builder, name: str) -> onnx.TypeProto:
    if not name:
        return onnx.TypeProto()
    t = b.type(name)
    elem_type = onnx.helper.np_dtype_to_tensor_dtype(dt.to_numpy(t.dtype))
    return onnx.helper.make_tensor_type_proto(elem_type, list(t.shape))


def _body_graph(b: Builder, function: onnx.FunctionProto, given: dict[str, onnx.AttributeProto],
                defaults: dict[str, onnx.AttributeProto], used_outputs: Sequence[bool]) -> onnx.GraphProto:
    """The function's body as a graph (the outputs the caller uses, in order), its attribute references
    resolved; a body reading a value it neither takes nor defines is an error."""
    known = {name for name in function.input if name}
    for inner in function.node:
        known.update(out for out in inner.output if out)
    graph = onnx.GraphProto(name=function.name)
    for inner in function.node:
        resolved = onnx.NodeProto()
        resolved.CopyFrom(inner)
        _resolve_references(resolved, given, defaults)
        missing = [name for name in [*resolved.input, *outer_reads(resolved)] if name and name not in known]
        if missing:
            raise b.error(f"function {function.name}'s node {inner.name or inner.op_type} reads {missing[0]!r}, "
                          "which is none of the function's inputs or values")
        graph.node.append(resolved)
    graph.input.extend(onnx.ValueInfoProto(name=name) for name in function.input)
    for name, used in zip(function.output, used_outputs):
        if used:
            graph.output.append(onnx.ValueInfoProto(name=name))
    return graph


def _resolve_references(node: onnx.NodeProto, given: dict[str, onnx.AttributeProto],
                        defaults: dict[str, onnx.AttributeProto]) -> None:
    """Replace ``node``'s attributes that refer to the function's (and those of its subgraphs' nodes) by the value
    given by the caller, else the default; drop those with neither."""
    kept = []
    for attribute in node.attribute:
        if attribute.ref_attr_name:
            value = given.get(attribute.ref_attr_name, defaults.get(attribute.ref_attr_name))
            if value is None:
                continue
            resolved = onnx.AttributeProto()
            resolved.CopyFrom(value)
            resolved.name = attribute.name
            kept.append(resolved)
            continue
        graphs = [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else list(attribute.graphs)
        for graph in graphs:
            for inner in graph.node:
                _resolve_references(inner, given, defaults)
        kept.append(attribute)
    del node.attribute[:]
    node.attribute.extend(kept)


__all__ = ["FunctionLibrary", "MAX_EXPANDED_NODES"]
