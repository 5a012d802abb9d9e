"""Shape and type inference over the graph IR, with propagation of small integer values.

``infer_types(graph)`` walks the nodes in order and gives every value a ``TensorType``: inputs keep their declared
types, params take their arrays' types, node outputs come from each operator's ``infer``. Integer and bool values
of at most ``SMALL_VALUE_LIMIT`` elements whose inputs are all known are evaluated (``OpDef.evaluate``) and kept in
``graph.values``: that is how shapes computed inside a model (``Shape -> Gather -> Concat -> Reshape``) become the
static attributes lowering needs. Every tensor must fit in ``MAX_TENSOR_BYTES``; a larger one is a ``GraphError``
raised before anything is allocated.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from tcomp.graph.ir import Graph, GraphError, Node, TensorType, type_of_array
from tcomp.graph.op import EvalFunc, InferContext, get_op
from tcomp.ir import dtype as dt

SMALL_VALUE_LIMIT = 1024
MAX_TENSOR_BYTES = 1 << 32  # 4 GiB: no single tensor of a model compiled here may be larger


def is_small_integer(t: TensorType) -> bool:
    return (dt.is_int(t.dtype) or dt.is_bool(t.dtype)) and t.numel <= SMALL_VALUE_LIMIT


def check_size(t: TensorType, what: str) -> None:
    if t.nbytes > MAX_TENSOR_BYTES:
        raise GraphError(f"{what} would take {t.nbytes} bytes ({t}), more than the limit of {MAX_TENSOR_BYTES}")


def infer_types(graph: Graph) -> Graph:
    """``graph`` with ``types`` for every value and ``values`` for the small integer values known statically."""
    types: dict[str, TensorType] = {}
    values: dict[str, np.ndarray] = {}
    for name in graph.inputs:
        declared = graph.types.get(name)
        if declared is None:
            raise GraphError(f"graph {graph.name}: input {name!r} has no declared type")
        check_size(declared, f"input {name!r}")
        types[name] = declared
    for name, array in graph.params.items():
        t = type_of_array(array)
        types[name] = t
        if is_small_integer(t):
            values[name] = array
    for node in graph.nodes:
        infer_node(node, types, values)
    return replace(graph, types=types, values=values)


def _propagate(node: Node, evaluate: EvalFunc, known: list[np.ndarray], out_types: list[TensorType],
               values: dict[str, np.ndarray]) -> None:
    try:
        results = evaluate(node, known)
    except (ValueError, TypeError, IndexError, ZeroDivisionError, OverflowError, FloatingPointError) as exc:
        raise GraphError(f"node {node.name} ({node.op}): evaluating its value failed: {exc}") from exc
    for name, result, t in zip(node.outputs, results, out_types):
        array = np.asarray(result).astype(dt.to_numpy(t.dtype), copy=False)
        if tuple(array.shape) != t.shape:
            raise GraphError(
                f"node {node.name} ({node.op}): evaluated shape {array.shape} differs from the inferred {t.shape}")
        values[name] = np.require(array, requirements="C")


def infer_node(node: Node, types: dict[str, TensorType], values: dict[str, np.ndarray]) -> None:
    """Infer the output types (and small integer values) of one node, adding them to ``types`` / ``values``."""
    opdef = get_op(node.op)
    in_types: list[TensorType | None] = []
    for name in node.inputs:
        if not name:
            in_types.append(None)
            continue
        if name not in types:
            raise GraphError(f"node {node.name} ({node.op}): input {name!r} is not defined before the node")
        in_types.append(types[name])
    in_values = [values.get(name) if name else None for name in node.inputs]
    ctx = InferContext(node, in_types, in_values)
    try:
        out_types = opdef.infer(ctx)
    except GraphError:
        raise
    except (ValueError, TypeError, IndexError, KeyError, OverflowError) as exc:
        raise GraphError(f"node {node.name} ({node.op}): {exc}") from exc
    if len(out_types) != len(node.outputs):
        raise GraphError(
            f"node {node.name} ({node.op}): has {len(node.outputs)} outputs, the operator makes {len(out_types)}")
    for name, t in zip(node.outputs, out_types):
        check_size(t, f"node {node.name} ({node.op}): output {name!r}")
        types[name] = t
    for index, value in ctx.out_values.items():
        if is_small_integer(out_types[index]):
            values[node.outputs[index]] = np.asarray(value, dtype=dt.to_numpy(out_types[index].dtype))
    if ctx.out_values:
        return
    if opdef.evaluate is not None and all(is_small_integer(t) for t in out_types):
        known = [values.get(name) for name in node.inputs if name]
        if all(v is not None for v in known):
            _propagate(node, opdef.evaluate, [v for v in known if v is not None], out_types, values)
