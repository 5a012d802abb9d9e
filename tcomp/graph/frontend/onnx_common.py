"""The converter registry of the ONNX frontend and the helpers converters share.

A converter is registered for an ONNX op type and the operator-definition versions it implements
(``since_version`` of ``onnx.defs.get_schema(op_type, opset)``): a model's opset selects the definition in effect,
and a node whose definition no converter implements is unsupported. ``converter(b, node, inputs, attrs, version)``
returns the graph IR value names of the node's outputs (``""`` for an output it does not produce). The converters
(``onnx_index``, ``onnx_nn``, ``onnx_ops`` ...) register themselves; the ``frontend`` package imports them all.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from tcomp.graph.frontend.onnx_builder import Builder
from tcomp.graph.frontend.onnx_data import tensor_to_array
from tcomp.graph.ir import GraphError, UnsupportedOperatorError
from tcomp.ir import dtype as dt

if TYPE_CHECKING:
    from tcomp.graph.frontend.onnx_functions import FunctionLibrary


class Attrs:
    """Typed access to a node's attributes; a missing required attribute or one of the wrong type is an error."""

    def __init__(self, node: onnx.NodeProto, builder: Builder) -> None:
        self.node = node
        self.builder = builder
        self.map: dict[str, onnx.AttributeProto] = {}
        for attribute in node.attribute:
            if attribute.name in self.map:
                raise builder.error(f"attribute {attribute.name!r} is given twice")
            self.map[attribute.name] = attribute

    def has(self, key: str) -> bool:
        return key in self.map

    def _get(self, key: str, kinds: tuple[int, ...], default: Any, required: bool) -> Any:
        attribute = self.map.get(key)
        if attribute is None:
            if required:
                raise self.builder.error(f"attribute {key!r} is required")
            return None
        if attribute.type not in kinds:
            expected = " or ".join(onnx.AttributeProto.AttributeType.Name(k) for k in kinds)
            got = (onnx.AttributeProto.AttributeType.Name(attribute.type)
                   if attribute.type in onnx.AttributeProto.AttributeType.values() else str(attribute.type))
            raise self.builder.error(f"attribute {key!r} must be {expected}, got {got}")
        return attribute

    def int(self, key: str, default: int | None = None) -> int:
        attribute = self._get(key, (onnx.AttributeProto.INT,), default, default is None)
        return int(default if attribute is None else attribute.i)  # type: ignore[arg-type]

    def flag(self, key: str, default: int) -> bool:
        """A 0-or-1 attribute as a bool; any other value is an error."""
        value = self.int(key, default)
        if value not in (0, 1):
            raise self.builder.error(f"{key}={value} must be 0 or 1")
        return bool(value)

    def float(self, key: str, default: float | None = None) -> float:
        attribute = self._get(key, (onnx.AttributeProto.FLOAT, onnx.AttributeProto.INT), default, default is None)
        if attribute is None:
            return float(default)  # type: ignore[arg-type]
        return float(attribute.f if attribute.type == onnx.AttributeProto.FLOAT else attribute.i)

    def ints(self, key: str, default: Sequence[int] | None = None, required: bool = False) -> list[int] | None:
        attribute = self._get(key, (onnx.AttributeProto.INTS,), default, required)
        if attribute is None:
            return None if default is None else list(default)
        return [int(v) for v in attribute.ints]

    def floats(self, key: str, default: Sequence[float] | None = None) -> list[float] | None:
        attribute = self._get(key, (onnx.AttributeProto.FLOATS,), default, False)
        if attribute is None:
            return None if default is None else list(default)
        return [float(v) for v in attribute.floats]

    def string(self, key: str, default: str | None = None) -> str:
        attribute = self._get(key, (onnx.AttributeProto.STRING,), default, default is None)
        if attribute is None:
            return str(default)
        try:
            return attribute.s.decode("utf-8")
        except UnicodeDecodeError:
            raise self.builder.error(f"attribute {key!r} is not valid UTF-8") from None

    def strings(self, key: str) -> list[str]:
        attribute = self._get(key, (onnx.AttributeProto.STRINGS,), None, True)
        try:
            return [value.decode("utf-8") for value in attribute.strings]
        except UnicodeDecodeError:
            raise self.builder.error(f"attribute {key!r} is not valid UTF-8") from None

    def graph(self, key: str) -> onnx.GraphProto:
        attribute = self._get(key, (onnx.AttributeProto.GRAPH,), None, True)
        return attribute.g

    def tensor(self, key: str) -> np.ndarray | None:
        attribute = self._get(key, (onnx.AttributeProto.TENSOR,), None, False)
        if attribute is None:
            return None
        return tensor_to_array(attribute.t, self.builder.base_dir,
                               f"node {self.builder.node_name}: attribute {key!r}")


ConvertFunc = Callable[["Builder", onnx.NodeProto, list[str], Attrs, int], list[str]]


@dataclass(frozen=True)
class Converter:
    op_type: str
    versions: frozenset[int]
    func: ConvertFunc


CONVERTERS: dict[str, Converter] = {}
MAX_OPSET_NUMBER = 2**31 - 1
MIN_FULL_OPSET = 9  # older opsets convert where the definitions in effect are ones a converter implements


def register(op_type: str, versions: Iterable[int], func: ConvertFunc) -> None:
    CONVERTERS[op_type] = Converter(op_type, frozenset(versions), func)


def converts(op_type: str, versions: Iterable[int]) -> Callable[[ConvertFunc], ConvertFunc]:
    def wrap(func: ConvertFunc) -> ConvertFunc:
        register(op_type, versions, func)
        return func

    return wrap


def schema_version(op_type: str, opset: int) -> int | None:
    """The ``since_version`` of the definition of ``op_type`` in effect at ``opset`` (None: no such operator); a
    ``GraphError`` for an opset no ONNX release can have (onnx's ``get_schema`` takes an int32)."""
    if isinstance(opset, bool) or not isinstance(opset, int) or not 1 <= opset <= MAX_OPSET_NUMBER:
        raise GraphError(f"opset {opset!r} is not an ONNX opset version (1 to {MAX_OPSET_NUMBER})")
    try:
        return int(onnx.defs.get_schema(op_type, opset, "").since_version)
    except onnx.defs.SchemaError:
        return None


def supported_op_types() -> list[str]:
    """The default-domain operators tcomp imports: those a converter implements, and those ONNX defines by a
    function of other operators (expanded, ``onnx_functions``; the body's operators must be supported too)."""
    defined_by_functions = {schema.name for schema in onnx.defs.get_all_schemas()
                            if schema.domain == "" and (schema.has_function or schema.has_context_dependent_function)}
    return sorted(set(CONVERTERS) | defined_by_functions)


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


def subgraphs(node: onnx.NodeProto) -> list[onnx.GraphProto]:
    """The graphs in ``node``'s attributes (an ``If``'s branches, a ``Loop``'s body ...)."""
    found = []
    for attribute in node.attribute:
        if attribute.type == onnx.AttributeProto.GRAPH:
            found.append(attribute.g)
        elif attribute.type == onnx.AttributeProto.GRAPHS:
            found.extend(attribute.graphs)
    return found


def outer_reads(node: onnx.NodeProto) -> list[str]:
    """The values ``node``'s subgraphs (at any depth) read from the scopes around ``node``, in order of use."""
    reads: dict[str, None] = {}
    for graph in subgraphs(node):
        local = {i.name for i in graph.input} | {t.name for t in graph.initializer}
        local |= {o for n in graph.node for o in n.output}
        for inner in graph.node:
            for name in [*inner.input, *outer_reads(inner)]:
                if name and name not in local:
                    reads[name] = None
    return list(reads)


def _nested_nodes(nodes: Iterable[onnx.NodeProto], prefix: str) -> Iterable[tuple[str, onnx.NodeProto]]:
    """Every node with its display name, those of subgraphs after their parent (``If_3/then_branch/Add_0``)."""
    for index, node in enumerate(nodes):
        name = prefix + (node.name or f"{node.op_type}_{index}")
        yield name, node
        for attribute in node.attribute:
            graphs = [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else list(attribute.graphs)
            for graph in graphs:
                yield from _nested_nodes(graph.node, f"{name}/{attribute.name}/")


def _implementation(node: onnx.NodeProto, opset: int) -> tuple[Converter, int] | None:
    """The converter implementing ``node``'s operator definition at ``opset`` and that definition's version (None:
    no converter does)."""
    if (node.domain or "") not in ("", "ai.onnx"):
        return None
    converter = CONVERTERS.get(node.op_type)
    version = schema_version(node.op_type, opset)
    if converter is None or version is None or version not in converter.versions:
        return None
    return converter, version


def _missing(name: str, node: onnx.NodeProto, opset: int, opsets: dict[str, int]) -> tuple[str, str, int]:
    """How an unsupported node is listed: its name, its operator (with its domain, if not ONNX's), the opset."""
    domain = node.domain or ""
    if domain in ("", "ai.onnx"):
        return name, node.op_type, opset
    return name, f"{domain}.{node.op_type}", opsets.get(domain, 0)


def _unsupported(missing: list[tuple[str, str, int]], opset: int) -> UnsupportedOperatorError:
    listed = "; ".join(f"{name} ({op}, opset {v})" for name, op, v in missing[:50])
    more = f"; and {len(missing) - 50} more" if len(missing) > 50 else ""
    kinds = sorted({op for _, op, _ in missing})
    hint = ""
    if opset < MIN_FULL_OPSET:
        hint = (f" (opsets {MIN_FULL_OPSET} to 21 are fully supported; convert an opset-{opset} model with "
                "onnx.version_converter)")
    return UnsupportedOperatorError(
        f"the model uses {len(missing)} node(s) of operator(s) tcomp does not support ({', '.join(kinds)}): "
        f"{listed}{more}{hint}", missing)


def check_supported(nodes: Iterable[onnx.NodeProto], opsets: dict[str, int], opset: int,
                    functions: FunctionLibrary) -> None:
    """Raise ``UnsupportedOperatorError`` listing every node no converter implements and no function defines,
    subgraphs' nodes and model-local functions' nodes included."""
    missing: list[tuple[str, str, int]] = []

    def check(name: str, node: onnx.NodeProto, node_opset: int) -> None:
        if _implementation(node, node_opset) is not None:
            return
        if not functions.defines(node, node_opset):
            missing.append(_missing(name, node, node_opset, opsets))
            return
        for inner_opset, inner, path in functions.local_bodies(node, node_opset):
            if functions.local_function(inner) is None:
                check(f"{name}/{path}", inner, inner_opset)

    for name, node in _nested_nodes(nodes, ""):
        check(name, node, opset)
    if missing:
        raise _unsupported(missing, opset)


def check_against_schema(b: Builder, node: onnx.NodeProto) -> None:
    """Refuse what the operator's ONNX schema does not allow, as onnxruntime does: more inputs or outputs than it
    takes, and attributes it does not define (tcomp would otherwise ignore them and compute something else)."""
    schema = onnx.defs.get_schema(node.op_type, b.opset, "")
    if len(node.input) > schema.max_input:
        raise b.error(f"{len(node.input)} inputs; the operator takes at most {schema.max_input}")
    if len(node.output) > schema.max_output:
        raise b.error(f"{len(node.output)} outputs; the operator has at most {schema.max_output}")
    for attribute in node.attribute:
        if attribute.name not in schema.attributes:
            known = ", ".join(sorted(schema.attributes)) or "none"
            raise b.error(f"unknown attribute {attribute.name[:80]!r} (the operator's attributes: {known})")


def convert_node(b: Builder, node: onnx.NodeProto) -> None:
    """Convert ``node`` by its converter or, where none implements it, by expanding the function defining it."""
    implementation = _implementation(node, b.opset)
    if implementation is None and not b.functions.defines(node, b.opset):  # in a body ONNX built for the node
        raise _unsupported([_missing(b.node_name, node, b.opset, {})], b.opset)
    if implementation is not None or b.functions.operator_schema(node, b.opset) is not None:
        check_against_schema(b, node)
    inputs = [b.alias.get(name, name) if name else "" for name in node.input]
    for name in inputs:
        if name and not b.defined(name):
            raise b.error(f"input {name!r} is not defined")
    attrs = Attrs(node, b)
    try:
        if implementation is None:
            produced = b.functions.expand(b, node, inputs)
        else:
            converter, version = implementation
            produced = converter.func(b, node, inputs, attrs, version)
    except GraphError:
        raise
    except (ValueError, TypeError, IndexError, KeyError, OverflowError, ZeroDivisionError) as exc:
        raise b.error(str(exc)) from exc
    for position, name in enumerate(node.output):
        if not name:
            continue
        ir_name = produced[position] if position < len(produced) else ""
        if not ir_name:
            raise b.error(f"output {position} ({name!r}) is not supported")
        if ir_name != name:
            b.alias[name] = ir_name


def topological_order(nodes: Sequence[onnx.NodeProto], defined: set[str], outer: bool = False) -> list[int]:
    """The positions of ``nodes`` in an order where each comes after the producers of what it reads (its subgraphs'
    reads from its scope included). Values defined twice, cycles and (unless ``outer``, for a subgraph, whose other
    reads come from enclosing scopes) values nothing defines are errors."""
    producer: dict[str, int] = {}
    for index, node in enumerate(nodes):
        for out in node.output:
            if not out:
                continue
            if out in producer or out in defined:
                raise GraphError(f"value {out!r} is defined twice (by node {node.name or node.op_type} and before)")
            producer[out] = index
    waiting = [0] * len(nodes)
    readers: dict[int, list[int]] = {}
    for index, node in enumerate(nodes):
        for name in dict.fromkeys([*node.input, *outer_reads(node)]):
            if not name or name in defined or (outer and name not in producer):
                continue
            if name not in producer:
                raise GraphError(f"node {node.name or node.op_type} ({node.op_type}) reads {name!r}, which no input, "
                                 "initializer or node defines")
            waiting[index] += 1
            readers.setdefault(producer[name], []).append(index)
    ready = deque(i for i in range(len(nodes)) if waiting[i] == 0)
    order: list[int] = []
    while ready:
        index = ready.popleft()
        order.append(index)
        for reader in readers.get(index, []):
            waiting[reader] -= 1
            if waiting[reader] == 0:
                ready.append(reader)
    if len(order) != len(nodes):
        stuck = [nodes[i].name or nodes[i].op_type for i in range(len(nodes)) if waiting[i] > 0]
        raise GraphError(f"the graph has a cycle through nodes {stuck[:6]}")
    return order


def optional(inputs: Sequence[str], index: int) -> str:
    """The name of optional input ``index`` ("" when absent)."""
    return inputs[index] if index < len(inputs) else ""


def check_unused_outputs(b: Builder, node: onnx.NodeProto, first: int, what: str) -> None:
    for name in node.output[first:]:
        if name:
            raise b.error(f"output {name!r} ({what}) is not supported")


def reshape(b: Builder, name: str, shape: Sequence[int]) -> str:
    """``name`` reshaped: a new parameter for a constant, else a ``reshape`` node."""
    shape = tuple(int(d) for d in shape)
    if b.type(name).shape == shape:
        return name
    if name in b.params:
        return b.param(b.params[name].reshape(shape), f"{name}/reshaped")
    return b.add1("reshape", [name], shape=shape)


def scalar_param(b: Builder, value: float | int, dtype: str, hint: str) -> str:
    return b.param(np.array(value, dtype=dt.to_numpy(dtype)), hint)


def const_ints(b: Builder, name: str, what: str) -> list[int]:
    value = b.require_const(name, what)
    if value.dtype.kind not in "iu":
        raise b.error(f"{what} must be integers, got {value.dtype}")
    return [int(v) for v in value.reshape(-1)]


def axes_operand(b: Builder, ins: Sequence[str], a: Attrs, v: int, input_since: int) -> list[int] | None:
    """The ``axes`` of a node: its optional input 1 from definition ``input_since`` on (known at compile time),
    the ``axes`` attribute before; None when absent."""
    if v >= input_since:
        name = optional(ins, 1)
        return const_ints(b, name, "the axes") if name else None
    return a.ints("axes")


def axis_index(b: Builder, axis: int, ndim: int, what: str = "axis") -> int:
    """``axis`` of an ``ndim``-D tensor in ``[0, ndim)``, negative values counting from the end; out of range, an
    error."""
    if not -ndim <= axis < ndim:
        raise b.error(f"{what}={axis} is out of range for {ndim} dimensions")
    return axis + ndim if axis < 0 else axis


def fail(b: Builder, reason: str) -> GraphError:
    return b.error(reason)


def cast_to(b: Builder, x: str, dtype: str, saturate: bool, output: str | None = None) -> str:
    """``x`` cast to ``dtype``. A cast to an 8-bit float saturates (ONNX's default); with ``saturate`` off a value
    that rounds past the largest finite one becomes infinity (``float8_e5m2``) or NaN (the others), as ONNX's
    table says."""
    if saturate or dtype not in dt.FLOAT8_FORMATS:
        return b.add1("cast", [x], output=output, dtype=dtype)
    f = dt.FLOAT8_FORMATS[dtype]
    largest = dt.float8_largest(dtype)
    half_step = 2.0 ** (math.floor(math.log2(largest)) - f.mantissa - 1)
    # past largest + half a step, or at it when the tie rounds up (the largest's mantissa is odd)
    wide = x if b.type(x).dtype == "float32" else b.add1("cast", [x], dtype="float32")
    magnitude = b.add1("abs", [wide])
    limit = b.param(np.array(largest + half_step, np.float32), f"{b.node_name}/limit")
    over = b.add1("greater_equal" if f.largest & 1 else "greater", [magnitude, limit])
    codes = {"ieee": [0x7C, 0xFC], "fnuz": [0x80, 0x80], "fn": [0x7F, 0xFF]}[f.kind]  # the overflow of x >= 0, < 0
    special = b.param(np.array(codes, np.uint8).view(dt.to_numpy(dtype)), f"{b.node_name}/overflow")
    negative = b.add1("cast", [b.add1("less", [wide, b.param(np.array(0, np.float32), f"{b.node_name}/zero")])],
                      dtype="int64")
    chosen = b.add1("take", [special, negative], axis=0)
    return b.add1("where", [over, chosen, b.add1("cast", [x], dtype=dtype)], output=output)


__all__ = ["Attrs", "CONVERTERS", "Converter", "UnsupportedOperatorError", "axis_index", "cast_to", "check_supported",
           "convert_node", "outer_reads", "subgraphs", "topological_order",
           "converts", "register", "schema_version"]
