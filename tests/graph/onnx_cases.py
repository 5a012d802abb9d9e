"""onnx's backend node test cases for the operators tcomp converts, ready to compile.

``node_cases()`` lists the cases whose nodes all have supported op types (the ``_expanded`` function bodies are left
out); ``sample_cases`` picks the first few per operator.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np
from onnx import numpy_helper

from tcomp.graph.frontend.onnx_common import supported_op_types


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
