"""Where an operand's elements lie in memory once the stages between it and the kernel's inputs are inlined.

A matrix product fused with the reshapes and transposes that feed it reads its operands through them (views): the
packing copies and the micro-kernel see only the placeholders underneath. These helpers follow a read
``tensor[indices]`` through every non-reduction compute to the placeholder reads it makes, so a schedule can tell
which axis of an operand is contiguous in memory (to order its packing copy) and whether the rows of an operand
can be handed to the micro-kernel in place (a row stride, unit steps along the row).

``placeholder_reads`` gives up (``None``) on a reduction or on an index that depends on data (a gather): such
operands keep the default layout decisions.
"""

from __future__ import annotations

from collections.abc import Sequence

from tcomp.arith import simplify
from tcomp.ir.expr import Expr, ProducerLoad, Var, const, const_int_value
from tcomp.ir.functor import free_vars, post_order_visit, substitute
from tcomp.te.tensor import ComputeOp, PlaceholderOp, Tensor

Bounds = dict[Var, tuple[int, int]]
Read = tuple[Tensor, tuple[Expr, ...]]

MAX_READS = 16  # a read through more placeholder reads than this is not analysed (a long elementwise chain)


def placeholder_reads(tensor: Tensor, indices: Sequence[Expr], limit: int = MAX_READS) -> list[Read] | None:
    """The placeholder reads that ``tensor[indices]`` makes when every compute between is inlined, with their
    indices in terms of ``indices``; ``None`` where a reduction stands between, an index depends on data, or there
    are more than ``limit`` reads."""
    op = tensor.op
    if isinstance(op, PlaceholderOp):
        return [(tensor, tuple(indices))]
    if not isinstance(op, ComputeOp) or op.is_reduction or len(op.axis) != len(indices):
        return None
    mapping = {iv.var: index for iv, index in zip(op.axis, indices)}
    loads: list[ProducerLoad] = []
    post_order_visit(op.body[tensor.value_index], lambda node: loads.append(node)
                     if isinstance(node, ProducerLoad) else None)
    reads: list[Read] = []
    for load in loads:
        if any(_reads_data(index) for index in load.indices):
            return None
        inner = placeholder_reads(load.producer, [substitute(i, mapping) for i in load.indices], limit - len(reads))
        if inner is None:
            return None
        reads.extend(inner)
        if len(reads) > limit:
            return None
    return reads


def _reads_data(index: Expr) -> bool:
    found: list[bool] = []
    post_order_visit(index, lambda node: found.append(True) if isinstance(node, ProducerLoad) else None)
    return bool(found)


def flat_offset(tensor: Tensor, indices: Sequence[Expr]) -> Expr | None:
    """The row-major element offset of ``tensor[indices]`` (``None`` for a symbolic shape)."""
    offset: Expr = const(0)
    stride = 1
    for dim, index in reversed(list(zip(tensor.shape, indices))):
        extent = const_int_value(dim)
        if extent is None:
            return None
        offset = offset + index * stride
        stride *= extent
    return offset


def unit_step(tensor: Tensor, indices: Sequence[Expr], var: Var, bounds: Bounds) -> int | None:
    """How far in memory each placeholder read of ``tensor[indices]`` moves when ``var`` grows by one: the common
    constant step of the reads that depend on ``var`` (0 when none does), else ``None``."""
    reads = placeholder_reads(tensor, indices)
    if reads is None:
        return None
    step_bounds = dict(bounds)
    lo, hi = bounds[var]
    step_bounds[var] = (lo, max(lo, hi - 1))  # the step from var to var + 1 stays inside the range
    steps = set()
    for source, source_indices in reads:
        offset = flat_offset(source, source_indices)
        if offset is None:
            return None
        if not any(v is var for v in free_vars(offset)):
            continue
        moved = simplify(substitute(offset, {var: var + 1}) - offset, step_bounds)
        value = const_int_value(moved)
        if value is None:
            return None
        steps.add(value)
    if len(steps) > 1:
        return None
    return steps.pop() if steps else 0


def rows_in_place(tensor: Tensor, indices: Sequence[Expr], row: Var, column: Var, bounds: Bounds) -> bool:
    """Whether ``tensor[indices]`` is one placeholder read whose last index moves with ``column`` and the one
    before it with ``row``, one for one, and whose other indices depend on neither: a block of it is a run of
    rows a kernel can read in place with a row stride."""
    reads = placeholder_reads(tensor, indices)
    if reads is None or len(reads) != 1:
        return False
    source, source_indices = reads[0]
    if len(source_indices) < 2:
        return False
    zero = {row: const(0), column: const(0)}
    for position, index in enumerate(source_indices):
        moved = simplify(index - substitute(index, zero), bounds)
        expected: Expr | int = 0
        if position == len(source_indices) - 1:
            expected = column
        elif position == len(source_indices) - 2:
            expected = row
        if isinstance(expected, int):
            if const_int_value(moved) != 0:
                return False
        elif not (isinstance(moved, Var) and moved is expected):
            return False
    return True
