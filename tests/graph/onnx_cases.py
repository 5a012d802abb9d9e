"""onnx's backend node test cases for the operators tcomp converts, ready to compile.

``node_cases()`` lists the cases whose nodes all have supported op types (the ``_expanded`` function bodies are left
out). Inputs that set shapes or indices (Reshape's shape, Slice's starts, Pad's pads ...) must be known at compile
time in tcomp, so ``freeze_shape_inputs`` turns them into initializers holding the case's values.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from tcomp.graph.frontend.onnx_common import supported_op_types

SHAPE_INPUTS = {
    "Reshape": {1}, "Slice": {1, 2, 3, 4}, "Squeeze": {1}, "Unsqueeze": {1}, "Pad": {1, 2, 3}, "Tile": {1},
    "Expand": {1}, "Resize": {1, 2, 3}, "Split": {1}, "ReduceSum": {1}, "ReduceMean": {1}, "ReduceMax": {1},
    "ReduceMin": {1}, "ConstantOfShape": {0}, "Dropout": {1, 2},
}


@functools.cache
def node_cases() -> dict[str, Any]:
    from onnx.backend.test.case.node import collect_testcases

    supported = set(supported_op_types())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = collect_testcases()
    return {c.name: c for c in cases
            if "_expanded" not in c.name and all(n.op_type in supported for n in c.model.graph.node)}


def primary_op(case: Any) -> str:
    return case.model.graph.node[-1].op_type if case.model.graph.node else ""


def sample_cases(names: list[str], per_op: int, limits: dict[str, int]) -> list[str]:
    """At most ``per_op`` cases per operator (``limits`` overrides it per op type), the first ones by name."""
    cases = node_cases()
    kept: list[str] = []
    count: dict[str, int] = {}
    for name in sorted(names):
        op = primary_op(cases[name])
        if count.get(op, 0) < limits.get(op, per_op):
            kept.append(name)
            count[op] = count.get(op, 0) + 1
    return kept


def as_array(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "HasField"):
        return numpy_helper.to_array(value)
    return np.asarray(value)


def freeze_shape_inputs(model: onnx.ModelProto, inputs: list[Any]) -> tuple[onnx.ModelProto, list[np.ndarray]]:
    """The model with its shape-setting graph inputs turned into initializers, and the remaining inputs."""
    names = [i.name for i in model.graph.input]
    frozen = set()
    for node in model.graph.node:
        for position in SHAPE_INPUTS.get(node.op_type, ()):
            if position < len(node.input) and node.input[position] in names:
                frozen.add(node.input[position])
    if not frozen:
        return model, [as_array(v) for v in inputs]
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    kept, values = [], []
    for info, value in zip(list(copy.graph.input), inputs):
        if info.name in frozen:
            copy.graph.initializer.append(numpy_helper.from_array(as_array(value), info.name))
        else:
            kept.append(info)
            values.append(as_array(value))
    del copy.graph.input[:]
    copy.graph.input.extend(kept)
    return copy, values
