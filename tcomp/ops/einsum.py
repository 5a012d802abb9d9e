"""Einstein summation: ``parse_einsum(equation, shapes)`` and ``einsum(equation, *operands)``.

The equation has one term per operand (letters, case-sensitive, and at most one ``...``), then optionally ``->``
and the output term. Without ``->`` the output is every letter that occurs once, in ASCII order, after the
ellipsis dimensions. A letter repeated within a term takes the diagonal; letters absent from the output are
summed over. Ellipsis dimensions broadcast as numpy does (right-aligned; an extent of 1 stretches).

``einsum`` is one compute: the product of the operands' elements at the labels' positions, summed over the
reduced labels (a plain product when none is reduced).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tcomp import te
from tcomp.ir.expr import Expr
from tcomp.ops.utils import OpError, Tag, as_int
from tcomp.te.tensor import Tensor

__all__ = ["EinsumPlan", "einsum", "parse_einsum"]


@dataclass(frozen=True)
class EinsumPlan:
    """``terms[k]`` labels operand ``k``'s dimensions (ellipsis dimensions as ``"...0"``, ``"...1"`` ...),
    ``output`` the result's; ``extents`` maps every label to its extent."""

    terms: tuple[tuple[str, ...], ...]
    output: tuple[str, ...]
    extents: dict[str, int]

    @property
    def reduced(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for term in self.terms:
            for label in term:
                if label not in self.output:
                    seen[label] = None
        return tuple(seen)


def _split_term(term: str, ndim: int, ellipsis_dims: int | None, where: str) -> list[str]:
    if term.count("...") > 1:
        raise OpError(f"einsum: {where} {term!r} has more than one ellipsis")
    head, _, tail = term.partition("...")
    for char in head + tail:
        if not char.isalpha() or not char.isascii():
            raise OpError(f"einsum: {where} {term!r} has the character {char!r} (letters and '...' only)")
    if "..." not in term:
        return list(term)
    count = ndim - len(head) - len(tail) if ellipsis_dims is None else ellipsis_dims
    if count < 0:
        raise OpError(f"einsum: {where} {term!r} has more letters than the {ndim} dimensions")
    return [*head, *[f"...{d}" for d in range(count)], *tail]


def parse_einsum(equation: str, shapes: Sequence[Sequence[int]]) -> EinsumPlan:
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    inputs = lhs.split(",")
    if len(inputs) != len(shapes):
        raise OpError(f"einsum: equation {equation!r} has {len(inputs)} terms for {len(shapes)} operands")
    ellipsis = max((len(s) - len(t.replace("...", "")) for t, s in zip(inputs, shapes) if "..." in t), default=0)
    terms = []
    extents: dict[str, int] = {}
    for position, (term, shape) in enumerate(zip(inputs, shapes)):
        labels = _split_term(term, len(shape), None, f"term {position}")
        if len(labels) != len(shape):
            raise OpError(f"einsum: term {term!r} labels {len(labels)} dimensions, operand {position} has "
                          f"{len(shape)}")
        # the operand's ellipsis dimensions are the last ones of the equation's (numpy's right alignment)
        own = [label for label in labels if label.startswith("...")]
        shift = ellipsis - len(own)
        labels = [f"...{int(label[3:]) + shift}" if label.startswith("...") else label for label in labels]
        for label, extent in zip(labels, shape):
            known = extents.get(label)
            if known is None or known == 1:
                extents[label] = int(extent)
            elif extent != known and not (label.startswith("...") and extent == 1):
                raise OpError(f"einsum: label {label!r} has extents {known} and {extent}")
        terms.append(tuple(labels))
    if arrow:
        output = _split_term(rhs, 0, ellipsis, "the output")
        if len(set(output)) != len(output):
            raise OpError(f"einsum: the output {rhs!r} repeats a label")
        for label in output:
            if label not in extents:
                raise OpError(f"einsum: the output label {label!r} is in no input term")
    else:
        counts: dict[str, int] = {}
        for labels in terms:
            for label in labels:
                counts[label] = counts.get(label, 0) + 1
        letters = sorted(label for label, count in counts.items() if count == 1 and not label.startswith("..."))
        output = [f"...{d}" for d in range(ellipsis)] + letters
    return EinsumPlan(tuple(terms), tuple(output), extents)


def einsum(equation: str, *operands: Tensor, name: str = "einsum") -> Tensor:
    shapes = []
    for operand in operands:
        dims = [as_int(d) for d in operand.shape]
        if any(d is None for d in dims):
            raise OpError(f"einsum: operand {operand.name} must have a static shape, got {operand.shape}")
        shapes.append([int(d) for d in dims if d is not None])
    dtypes = {o.dtype for o in operands}
    if len(dtypes) != 1:
        raise OpError(f"einsum: operands have different dtypes {sorted(dtypes)}")
    plan = parse_einsum(equation, shapes)
    reduced = plan.reduced
    axes = {label: te.reduce_axis((0, plan.extents[label]), name=f"r{position}")
            for position, label in enumerate(reduced)}

    def body(*i: Any) -> Expr:
        var: dict[str, Any] = {label: index for label, index in zip(plan.output, i)}
        var.update({label: axis.var for label, axis in axes.items()})
        value: Expr | None = None
        for operand, labels, shape in zip(operands, plan.terms, shapes):
            index = tuple(te.const(0) if extent == 1 and plan.extents[label] != 1 else var[label]
                          for label, extent in zip(labels, shape))
            value = operand[index] if value is None else value * operand[index]
        assert value is not None
        return te.sum(value, axis=list(axes.values())) if axes else value

    out_shape = tuple(plan.extents[label] for label in plan.output)
    return te.compute(out_shape, body, name=name, tag=Tag.COMM_REDUCE if axes else Tag.BROADCAST)
