"""Einsum (``frontend/onnx_linalg.py``, ``ops/einsum.py``) against onnxruntime: matrix products (which become
``matmul``), attention-style contractions, outer products, transposes, diagonals, full sums, three operands,
implicit outputs and broadcast ellipses; and the plan's parse errors."""

from __future__ import annotations

import numpy as np
import pytest

import tcomp.graph as tg
from tcomp.ops.einsum import parse_einsum
from tcomp.ops.utils import OpError
from tests.graph.ort_reference import check_node, single_node_model

RNG = np.random.default_rng(15)

CASES = [
    ("ij,jk->ik", [(5, 7), (7, 3)]),
    ("bij,bjk->bik", [(2, 5, 7), (2, 7, 3)]),
    ("bhqd,bhkd->bhqk", [(2, 3, 5, 4), (2, 3, 6, 4)]),
    ("bqk,kd->dbq", [(2, 5, 6), (6, 3)]),
    ("i,j->ij", [(5,), (3,)]),
    ("ij->ji", [(5, 3)]),
    ("ii->i", [(4, 4)]),
    ("ii", [(5, 5)]),
    ("ij->", [(3, 7)]),
    ("ij,jk,kl->il", [(3, 4), (4, 5), (5, 2)]),
    ("ij,jk", [(3, 4), (4, 5)]),
    ("...ij,...jk->...ik", [(2, 3, 4, 5), (1, 3, 5, 2)]),
    ("bij,bjk->bik", [(1, 5, 7), (3, 7, 2)]),
    ("abc,cd->abd", [(2, 3, 4), (4, 5)]),
]


@pytest.mark.parametrize(("equation", "shapes"), CASES, ids=[c[0] for c in CASES])
def test_einsum(equation: str, shapes: list[tuple[int, ...]]) -> None:
    inputs = {f"x{k}": RNG.standard_normal(shape).astype(np.float32) for k, shape in enumerate(shapes)}
    check_node("Einsum", inputs, {"equation": equation}, opset=12, rtol=1e-4, atol=1e-5)


def test_matrix_products_become_matmul() -> None:
    inputs = {"a": RNG.standard_normal((2, 3, 5, 4)).astype(np.float32),
              "b": RNG.standard_normal((2, 3, 6, 4)).astype(np.float32)}
    graph = tg.from_onnx(single_node_model("Einsum", inputs, 1, {"equation": "bhqd,bhkd->bhqk"}, 12))
    assert "matmul" in {n.op for n in graph.nodes} and "einsum" not in {n.op for n in graph.nodes}


def test_integer_einsum() -> None:
    inputs = {"a": RNG.integers(-5, 5, (3, 4)).astype(np.int32), "b": RNG.integers(-5, 5, (4,)).astype(np.int32)}
    check_node("Einsum", inputs, {"equation": "ij,j->i"}, opset=12)


@pytest.mark.parametrize(("equation", "shapes", "match"), [
    ("ij,jk->ik", [(2, 3)], "2 terms for 1 operands"),
    ("ij->ik", [(2, 3)], "in no input term"),
    ("ij,jk->ik", [(2, 3), (4, 5)], "extents 3 and 4"),
    ("i1->i", [(2, 3)], "letters and"),
    ("ijk->i", [(2, 3)], "labels 3 dimensions"),
])
def test_parse_errors(equation: str, shapes: list[tuple[int, ...]], match: str) -> None:
    with pytest.raises(OpError, match=match):
        parse_einsum(equation, shapes)
