"""onnx's backend node test cases for the operators tcomp converts, ready to compile.

``node_cases()`` lists the cases whose nodes all have supported op types (the ``_expanded`` function bodies are left
out); ``sample_cases`` picks the first few per operator.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from onnx import numpy_helper

from tcomp.graph.frontend.onnx_common import supported_op_types


@functools.cache
def all_cases() -> dict[str, Any]:
    """Every backend node case of the installed onnx package, by name (``_expanded`` function bodies included)."""
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {c.name: c for c in collect_testcases()}


@functools.cache
def node_cases() -> dict[str, Any]:
    supported = set(supported_op_types())
    return {name: c for name, c in all_cases().items()
            if "_expanded" not in name and all(n.op_type in supported for n in c.model.graph.node)}


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


def case_operator(name: str) -> str:
    """The operator a case tests: its last node's (an ``_expanded`` case counts for the operator it expands)."""
    cases = all_cases()
    base = name.replace("_expanded_ver18", "").replace("_expanded", "")
    case = cases.get(base, cases[name])
    return primary_op(case)


def _value_type_supported(value_type: Any) -> bool:
    from tcomp.graph.frontend.onnx_data import ONNX_DTYPES

    kind = value_type.WhichOneof("value")
    return kind == "tensor_type" and value_type.tensor_type.elem_type in ONNX_DTYPES


def element_types_supported(case: Any) -> bool:
    """Whether every graph input, output and initializer of the case is a tensor of an element type tcomp has."""
    from tcomp.graph.frontend.onnx_data import ONNX_DTYPES

    graph = case.model.graph
    if not all(_value_type_supported(v.type) for v in [*graph.input, *graph.output]):
        return False
    return all(t.data_type in ONNX_DTYPES for t in graph.initializer)


@dataclass(frozen=True)
class CaseResult:
    status: str  # "pass", "wrong" (a result differs), "error" (a tcomp GraphError), "crash" (any other exception)
    message: str = ""


def compare(got: np.ndarray, want: np.ndarray) -> str:
    """"" when ``got`` matches ``want`` (rtol 1e-3 / atol 1e-4 for floats; two units in the last place, rtol 2^-6 /
    atol 2^-8, for bfloat16, whose references round every operator of a function to 8 bits; exactly otherwise),
    else why not."""
    if got.shape != want.shape:
        return f"shape {got.shape} != {want.shape}"
    if got.dtype != want.dtype:
        return f"dtype {got.dtype} != {want.dtype}"
    try:
        if got.dtype.name == "bfloat16":
            np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), rtol=2**-6, atol=2**-8,
                                       equal_nan=True)
        elif got.dtype.kind in "fc":
            np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4, equal_nan=True)
        else:
            np.testing.assert_array_equal(got, want)
    except AssertionError as exc:
        return " ".join(str(exc).split())[:300]
    return ""


def random_case(name: str) -> bool:
    """Whether the case draws random numbers (its reference outputs come from another generator)."""
    return "bernoulli" in name or "training_dropout" in name


def check_random(name: str, inputs: list[np.ndarray], got: list[np.ndarray], want: list[np.ndarray]) -> str:
    """"" when the outputs of random case ``name`` have the reference's shapes and dtypes and values the draw
    allows (Bernoulli: 0 or 1; training Dropout: 0 or ``x / (1 - ratio)``, and a mask that says which), else why
    not."""
    for position, (g, w) in enumerate(zip(got, want)):
        if g.shape != w.shape or g.dtype != w.dtype:
            return f"output {position}: {g.dtype}{list(g.shape)} != {w.dtype}{list(w.shape)}"
    if "bernoulli" in name:
        return "" if np.isin(got[0], (0, 1)).all() else "a Bernoulli draw is neither 0 nor 1"
    x = inputs[0]
    ratio = float(inputs[1]) if len(inputs) > 1 else 0.5
    scaled = (x / (1.0 - ratio)).astype(x.dtype)
    kept = np.isclose(got[0], scaled, rtol=1e-6)
    if not (kept | (got[0] == 0)).all():
        return "a dropout output is neither 0 nor x / (1 - ratio)"
    if len(got) > 1 and not np.array_equal(got[1], kept | ((x == 0) & got[1])):
        return "the dropout mask differs from the values kept"
    return ""


def run_case(case: Any) -> CaseResult:
    """Compile and run every data set of ``case``; a ``GraphError`` is an "error", any other exception a "crash"."""
    import tcomp.graph as tg

    try:
        executor = tg.compile(case.model)
        for inputs, expected in case.data_sets:
            outputs = executor.run([as_array(v) for v in inputs])
            if outputs is None or len(outputs) != len(expected):
                return CaseResult("wrong", f"{len(outputs or [])} outputs, expected {len(expected)}")
            if random_case(case.name):
                problem = check_random(case.name, [as_array(v) for v in inputs], outputs,
                                       [as_array(w) for w in expected])
                if problem:
                    return CaseResult("wrong", problem)
                continue
            for position, (got, want) in enumerate(zip(outputs, expected)):
                problem = compare(got, as_array(want))
                if problem:
                    return CaseResult("wrong", f"output {position}: {problem}")
    except tg.GraphError as exc:
        return CaseResult("error", str(exc))
    except Exception as exc:  # noqa: BLE001 - every other exception is what the count must expose
        return CaseResult("crash", f"{type(exc).__name__}: {exc}")
    return CaseResult("pass")
