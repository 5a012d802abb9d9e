"""Dimensions written as expressions of others (``tcomp.graph.dim_expr``): PyTorch's exporter names a decoding
step's mask ``[batch, past + 1]``. Parsed to affine forms, never evaluated as code; bindings solved from them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcomp.graph.dim_expr import DimExpr, binding_of, dimension_symbols, parse_dim, pinned, shapes_at
from tcomp.graph.frontend.onnx_inputs import InputDecl


@pytest.mark.parametrize(("text", "terms", "constant"), [
    ("past + 1", (("past", 1),), 1),
    ("s0 + s1", (("s0", 1), ("s1", 1)), 0),
    ("2*s0", (("s0", 2),), 0),
    ("-s0 + 3", (("s0", -1),), 3),
    ("2*(s0 + 1) - s1", (("s0", 2), ("s1", -1)), 2),
    ("past_sequence_length + 1", (("past_sequence_length", 1),), 1),
])
def test_affine_expressions_parse(text: str, terms: tuple, constant: int) -> None:
    parsed = parse_dim(text)
    assert parsed == DimExpr(terms, constant)
    assert isinstance(parsed, DimExpr) and parse_dim(str(parsed)) == parsed


@pytest.mark.parametrize("text", [
    "batch", "unk__123", "seq-len", "a + b-c", "s0*s1", "s0 // 2", "1 + 2", "(past + 1", "past + 1)", "past +",
    "9" * 5000 + " + a", "(" * 150 + "a" + ")" * 150, "__import__('os') + 1", "a + 2**40", "3000000*a + 1",
])
def test_anything_else_stays_one_opaque_name(text: str) -> None:
    assert parse_dim(text) == text


@given(st.dictionaries(st.sampled_from(["a", "b", "past"]), st.integers(-9, 9), min_size=1),
       st.integers(-50, 50), st.dictionaries(st.sampled_from(["a", "b", "past"]), st.integers(0, 99)))
def test_printing_parsing_and_evaluating_agree(terms: dict[str, int], constant: int, values: dict[str, int]) -> None:
    kept = tuple(sorted((n, c) for n, c in terms.items() if c))
    if not kept:
        return
    expression = DimExpr(kept, constant)
    trivial = kept[0][1] == 1 and len(kept) == 1 and not constant
    assert parse_dim(str(expression)) == (kept[0][0] if trivial else expression)  # a lone name prints as one
    binding = {name: values.get(name, 7) for name in expression.names}
    value = expression.at(binding)
    assert value == constant + sum(c * binding[n] for n, c in kept)
    for name in expression.names:  # each name solved back from the value and the others
        others = {n: v for n, v in binding.items() if n != name}
        assert expression.solve(value, others) == (name, binding[name])
    pinned_all = expression.pinned(binding)
    assert pinned_all == value


DECODE = [InputDecl("input_ids", "int64", ("batch", 1)), InputDecl("attention_mask", "int64", ("batch", "past + 1")),
          InputDecl("past.0.key", "float32", ("batch", 2, "past", 16))]


def test_bindings_read_and_solve_expressions() -> None:
    assert dimension_symbols(DECODE, {}) == ["batch", "past"]
    shapes = {"input_ids": (3, 1), "attention_mask": (3, 12), "past.0.key": (3, 2, 11, 16)}
    assert binding_of(DECODE, {}, shapes) == {"batch": 3, "past": 11}
    assert binding_of(DECODE, {}, {**shapes, "attention_mask": (3, 13)}) is None  # not past + 1
    assert shapes_at(DECODE, {}, {"batch": 2, "past": 40})["attention_mask"] == [2, 41]
    # a name only an expression gives is solved from it
    solved = [InputDecl("mask", "int64", ("n + 1",)), InputDecl("x", "float32", ("2*n",))]
    assert binding_of(solved, {}, {"mask": (6,), "x": (10,)}) == {"n": 5}
    assert binding_of(solved, {}, {"mask": (6,), "x": (11,)}) is None
    assert binding_of([InputDecl("x", "float32", ("2*n",))], {}, {"x": (7,)}) is None  # no integer n
    assert binding_of([InputDecl("x", "float32", ("a + b",))], {}, {"x": (7,)}) is None  # two unknowns
    pins = pinned(DECODE, {"past": 4})
    assert pins[1].dims == ("batch", 5) and pins[2].dims == ("batch", 2, 4, 16)
    assert pinned([InputDecl("x", "float32", ("a + 2*b",))], {"a": 3})[0].dims == ("2*b + 3",)
