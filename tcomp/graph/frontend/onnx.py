"""ONNX import: a model file to the graph IR, checked at every step.

``from_onnx(model, input_shapes=None)`` accepts a path, the file's bytes or a ``ModelProto`` and returns a typed
``Graph``. The steps, each failing with a ``GraphError`` that says what is wrong:

1. parse the protobuf (a truncated or corrupt file is "malformed");
2. read the default-domain opset (9 to 21 fully; older and newer opsets where the operator definitions in effect are
   ones a converter knows);
3. list every node tcomp cannot convert (op type, domain, opset version), those inside subgraphs and model-local
   functions included, in one ``UnsupportedOperatorError``, before anything else is done (a node no converter
   implements but a function defines, the model's or ONNX's, is expanded: ``onnx_functions``);
4. bind the inputs (``onnx_inputs``): symbolic dimensions must be given in ``input_shapes`` (the CLI's
   ``--input-shapes name:[1,3,224,224]``), and the error says so; inputs given in ``input_values`` become constants;
5. read the initializers (``onnx_data.tensor_to_array``: sizes checked against the bytes present, external data only
   from inside the model's folder);
6. order the nodes topologically (a node with subgraphs after the values they read from its scope), refusing
   values read but never defined, values defined twice and cycles;
7. convert node by node (``onnx_ops``): each converter emits graph IR nodes whose types are inferred at once, so
   later converters see the shapes and the statically known values they need; ``If`` and ``Loop`` inline their
   subgraphs (``onnx_control``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import onnx
from google.protobuf.message import DecodeError

from tcomp.graph.frontend.onnx_builder import Builder, infer_types_of_param
from tcomp.graph.frontend.onnx_common import check_supported, convert_node, default_opset, topological_order
from tcomp.graph.frontend.onnx_data import onnx_dtype, tensor_to_array
from tcomp.graph.frontend.onnx_functions import FunctionLibrary
from tcomp.graph.frontend.onnx_inputs import bind_inputs, declared_inputs
from tcomp.graph.infer import infer_types
from tcomp.graph.ir import Graph, GraphError, verify_graph
from tcomp.graph.shared_constants import SharedConstants, derive

MAX_FULL_OPSET = 21
MAX_MODEL_BYTES = 1 << 31  # protobuf cannot hold more; bigger weights must be external data


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
                 input_values: Mapping[str, Any] | None = None, constants: SharedConstants | None = None) -> Graph:
    """``proto`` as a typed graph (see ``from_onnx``); ``constants``: where the initializers read by an earlier
    import of the same model are kept (``tcomp.graph.shared_constants``)."""
    opset = default_opset(proto)
    g = proto.graph
    functions = FunctionLibrary(proto.functions)
    check_supported(g.node, {o.domain or "": int(o.version) for o in proto.opset_import}, opset, functions)
    builder = Builder(opset, base_dir, functions)
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
        builder.params[tensor.name] = derive(constants, ("initializer", tensor.name), (), partial(
            tensor_to_array, tensor, base_dir, f"initializer {tensor.name!r}"))
        infer_types_of_param(builder, tensor.name)
    order = topological_order(g.node, set(inputs) | set(input_values or {}) | set(initializer_names))
    for index in order:
        node = g.node[index]
        builder.node_name = node.name or f"{node.op_type}_{index}"
        builder.op_type = node.op_type
        convert_node(builder, node)
    outputs = []
    builder.node_name, builder.op_type = "outputs", "Identity"
    for output in g.output:
        ir_name = _output_tensor(builder, output.name)
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


def _output_tensor(builder: Builder, name: str) -> str:
    """The graph IR tensor of graph output ``name``: an optional output gives the tensor it holds; a sequence, an
    empty optional or a value never defined is an error."""
    ir_name = builder.alias.get(name, name)
    while ir_name in builder.optionals:
        held = builder.optionals[ir_name]
        if held is None:
            raise GraphError(f"graph output {name!r} is an empty optional: tcomp's executors return tensors")
        ir_name = held
    if ir_name in builder.sequences:
        count = len(builder.sequences[ir_name].items)
        raise GraphError(f"graph output {name!r} is a sequence (of {count} tensors): tcomp's executors return tensors;"
                         " concatenate it in the model (ConcatFromSequence) or output its tensors (SequenceAt)")
    if ir_name not in builder.types:
        raise GraphError(f"graph output {name!r} is never defined")
    return ir_name


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
