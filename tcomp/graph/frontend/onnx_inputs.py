"""The inputs of an ONNX model: what the model declares (``InputDecl``), and binding them for an import.

``declared_inputs`` reads the run-time inputs (graph inputs no initializer gives a value) with their element types
and dimensions, ``dim_param`` names kept for the symbolic ones. ``check_model`` checks what can be checked before
shapes are known (the opset, the operators, the names and values given for inputs). ``bind_inputs`` types the
inputs of one import: shapes from the model or from ``input_shapes``; inputs given in ``input_values`` become
parameters holding those values (they are no longer inputs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from tcomp.graph.frontend.onnx_builder import Builder, infer_types_of_param
from tcomp.graph.frontend.onnx_common import check_supported, default_opset
from tcomp.graph.frontend.onnx_data import onnx_dtype
from tcomp.graph.frontend.onnx_functions import FunctionLibrary
from tcomp.graph.infer import check_size
from tcomp.graph.ir import GraphError, TensorType
from tcomp.ir import dtype as dt


@dataclass(frozen=True)
class InputDecl:
    """A graph input as the model declares it: its element type and dimensions (ints, or the ``dim_param`` names of
    dynamic ones, ``"?"`` when unnamed); ``dims`` is None for an input of unknown rank."""

    name: str
    dtype: str
    dims: tuple[int | str, ...] | None

    @property
    def static(self) -> bool:
        return self.dims is not None and all(isinstance(d, int) for d in self.dims)

    def example(self) -> str:
        return "[" + ",".join(str(d) if isinstance(d, int) else "1" for d in self.dims or ()) + "]"

    def mismatch(self, shape: tuple[int, ...]) -> str | None:
        """Why ``shape`` is not one of this input's shapes (None when it is)."""
        if self.dims is None:
            return None
        if len(self.dims) != len(shape):
            return f"{len(shape)} dimensions, the model declares {len(self.dims)}: {list(self.dims)}"
        for d, (want, got) in enumerate(zip(self.dims, shape)):
            if isinstance(want, int) and want != got:
                return f"dimension {d} = {got}, the model fixes it to {want}"
        return None


def declared_inputs(proto: onnx.ModelProto) -> list[InputDecl]:
    """The run-time inputs of the model (graph inputs that no initializer gives a value), checked."""
    g = proto.graph
    initializers = {t.name for t in g.initializer}
    result: list[InputDecl] = []
    for value_info in g.input:
        if value_info.name in initializers:
            continue
        if not value_info.name:
            raise GraphError("a graph input has no name")
        if any(d.name == value_info.name for d in result):
            raise GraphError(f"graph input {value_info.name!r} is declared twice")
        kind = value_info.type.WhichOneof("value")
        if kind != "tensor_type":
            raise GraphError(f"graph input {value_info.name!r} is not a tensor ({kind}); only tensors are supported")
        tensor_type = value_info.type.tensor_type
        dtype = onnx_dtype(tensor_type.elem_type, f"graph input {value_info.name!r}")
        dims: tuple[int | str, ...] | None = None
        if tensor_type.HasField("shape"):
            declared: list[int | str] = []
            for dim in tensor_type.shape.dim:
                if dim.HasField("dim_value"):
                    if dim.dim_value < 0:
                        raise GraphError(f"graph input {value_info.name!r} has a negative dimension {dim.dim_value}")
                    declared.append(int(dim.dim_value))
                else:
                    declared.append(dim.dim_param or "?")
            dims = tuple(declared)
        result.append(InputDecl(value_info.name, dtype, dims))
    return result


def check_input_names(decls: Sequence[InputDecl], input_shapes: Mapping[str, Any],
                      input_values: Mapping[str, Any]) -> None:
    names = [d.name for d in decls]
    for option, given in (("--input-shapes", input_shapes), ("input_values (--freeze)", input_values)):
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise GraphError(f"{option} names {unknown}, which are not inputs of the model (inputs: {names})")


def frozen_value(decl: InputDecl, value: Any) -> np.ndarray:
    """``value`` as the array input ``decl`` holds, checked against its declared type and shape."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise GraphError(f"input_values[{decl.name!r}] is not an array: {exc}") from None
    expected = np.dtype(dt.to_numpy(decl.dtype))
    if array.dtype != expected:
        if array.dtype.kind not in "biuf" or not np.can_cast(array.dtype, expected, casting="same_kind"):
            raise GraphError(f"input_values[{decl.name!r}]: the input holds {decl.dtype}, got {array.dtype}")
        array = array.astype(expected)
    why = decl.mismatch(tuple(int(d) for d in array.shape))
    if why is not None:
        raise GraphError(f"input_values[{decl.name!r}] has shape {list(array.shape)}: {why}")
    t = TensorType(tuple(int(d) for d in array.shape), decl.dtype)
    check_size(t, f"input_values[{decl.name!r}]")
    return np.require(array, requirements="C")


def check_model(proto: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]],
                input_values: Mapping[str, Any]) -> tuple[list[InputDecl], dict[str, np.ndarray]]:
    """What can be checked before shapes are known: the opset, that every operator is supported, the inputs, and
    that ``input_shapes`` and ``input_values`` fit them. Returns the run-time inputs and the values as arrays."""
    opset = default_opset(proto)
    check_supported(proto.graph.node, {o.domain or "": int(o.version) for o in proto.opset_import}, opset,
                    FunctionLibrary(proto.functions))
    decls = declared_inputs(proto)
    check_input_names(decls, input_shapes, input_values)
    for decl in decls:
        if decl.name in input_shapes and decl.name not in input_values:
            _check_given_shape(decl, input_shapes[decl.name])
    values = {d.name: frozen_value(d, input_values[d.name]) for d in decls if d.name in input_values}
    return decls, values


def bind_inputs(decls: Sequence[InputDecl], shapes: Mapping[str, Sequence[int]], values: Mapping[str, Any],
                 builder: Builder) -> list[str]:
    """Type the run-time inputs (shapes from the model or ``shapes``); inputs in ``values`` become parameters."""
    check_input_names(decls, shapes, values)
    result = []
    for decl in decls:
        if decl.name in values:
            builder.params[decl.name] = frozen_value(decl, values[decl.name])
            infer_types_of_param(builder, decl.name)
            given = shapes.get(decl.name)
            if given is not None and tuple(given) != builder.params[decl.name].shape:
                raise GraphError(f"--input-shapes gives {decl.name!r} the shape {list(given)}, its value in "
                                 f"input_values has {list(builder.params[decl.name].shape)}")
            continue
        given = shapes.get(decl.name)
        if given is not None:
            shape = _check_given_shape(decl, given)
        elif not decl.static:
            what = "an unknown rank" if decl.dims is None else f"dynamic dimensions {list(decl.dims)}"
            raise GraphError(f"graph input {decl.name!r} has {what}; bind its shape with --input-shapes "
                             f"{decl.name}:{decl.example()} (input_shapes={{{decl.name!r}: ...}} in Python)")
        else:
            shape = tuple(int(d) for d in decl.dims or ())
        t = TensorType(shape, decl.dtype)
        check_size(t, f"graph input {decl.name!r}")
        builder.types[decl.name] = t
        result.append(decl.name)
    return result


def _check_given_shape(decl: InputDecl, given: Sequence[int]) -> tuple[int, ...]:
    name = decl.name
    if not isinstance(given, (list, tuple)) or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                                                       for d in given):
        raise GraphError(f"--input-shapes for {name!r} must be a list of ints, got {given!r}")
    shape = tuple(int(d) for d in given)
    if any(d < 0 for d in shape):
        raise GraphError(f"--input-shapes for {name!r} must have non-negative dimensions, got {list(shape)}")
    why = decl.mismatch(shape)
    if why is not None:
        raise GraphError(f"--input-shapes gives {name!r} {why}")
    return shape
