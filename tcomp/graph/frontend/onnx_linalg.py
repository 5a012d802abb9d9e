"""ONNX ``Einsum``: two-operand contractions that are batched matrix products become ``matmul`` (with the
transposes and reshapes that group each operand's labels into batch, rows / columns and the summed labels), so
they get the tuned matrix-product schedules; every other equation (diagonals, a label summed within one operand,
broadcast batch labels, three or more operands) is one ``einsum`` compute.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import onnx

from tcomp.graph.frontend.onnx_builder import Builder
from tcomp.graph.frontend.onnx_common import Attrs, converts, reshape
from tcomp.ops.einsum import EinsumPlan, parse_einsum
from tcomp.ops.utils import OpError


def _permuted(b: Builder, name: str, labels: Sequence[str], order: Sequence[str]) -> str:
    perm = tuple(labels.index(label) for label in order)
    if perm == tuple(range(len(perm))):
        return name
    return b.add1("transpose", [name], perm=perm)


def _as_matmul(b: Builder, plan: EinsumPlan, a: str, c: str, output: str) -> str | None:
    """``a`` and ``c`` contracted as a (batched) matrix product, or None when the equation is not one."""
    left, right = plan.terms
    if len(set(left)) != len(left) or len(set(right)) != len(right):
        return None  # a diagonal
    out = plan.output
    batch = [label for label in out if label in left and label in right]
    rows = [label for label in out if label in left and label not in right]
    cols = [label for label in out if label in right and label not in left]
    summed = [label for label in left if label in right and label not in out]
    if len(batch) + len(rows) + len(summed) != len(left) or len(batch) + len(cols) + len(summed) != len(right):
        return None  # a label summed within one operand
    for term, operand in ((left, a), (right, c)):
        shape = b.type(operand).shape
        if any(extent != plan.extents[label] for label, extent in zip(term, shape)):
            return None  # a broadcast (ellipsis) dimension
    size = [math.prod(plan.extents[label] for label in group) for group in (batch, rows, summed, cols)]
    lhs = reshape(b, _permuted(b, a, left, [*batch, *rows, *summed]), (size[0], size[1], size[2]))
    rhs = reshape(b, _permuted(b, c, right, [*batch, *summed, *cols]), (size[0], size[2], size[3]))
    product = b.add1("matmul", [lhs, rhs])
    grouped = [*batch, *rows, *cols]
    product = reshape(b, product, tuple(plan.extents[label] for label in grouped))
    perm = tuple(grouped.index(label) for label in out)
    if perm == tuple(range(len(perm))):
        return b.add1("identity", [product], output=output)
    return b.add1("transpose", [product], output=output, perm=perm)


@converts("Einsum", (12, 28))
def _einsum(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    equation = a.string("equation")
    operands = [name for name in ins if name]
    try:
        plan = parse_einsum(equation, [b.type(name).shape for name in operands])
    except OpError as exc:
        raise b.error(str(exc)) from None
    if len(operands) == 2 and b.type(operands[0]).dtype == b.type(operands[1]).dtype:
        result = _as_matmul(b, plan, operands[0], operands[1], node.output[0])
        if result is not None:
            return [result]
    return [b.add1("einsum", operands, output=node.output[0], equation=equation)]
