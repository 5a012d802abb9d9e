"""Finding the elementwise epilogue of an anchor (a convolution, a matrix product) in a fused group, so its
default schedule can compute the anchor in registers and write the epilogue's output in the same kernel.

``sole_output_reader(s, anchor)``: the one root stage that reads ``anchor`` (through inlined stages), when it is an
output of the group, not a reduction, static in shape. ``reads_of(s, expr, anchor)``: every index tuple at which
``expr`` reads ``anchor``, the inlined stages in between substituted. ``same_index_epilogue(s, anchor)``: the
output when it has the anchor's shape and reads it only at its own indices (bias, batch norm, activation,
residual): a thread's outputs then need exactly the thread's anchor values.
"""

from __future__ import annotations

from tcomp.arith import simplify
from tcomp.ir.expr import Expr, ProducerLoad, Var, const_int_value
from tcomp.ir.functor import post_order_visit, substitute
from tcomp.schedule.relation import AttachType
from tcomp.schedule.schedule import Schedule
from tcomp.te.tensor import ComputeOp, Tensor


def _inlined(s: Schedule, tensor: Tensor) -> bool:
    stage = next((st for st in s.stages if st.op is tensor.op), None)
    return stage is not None and stage.attach_type is AttachType.INLINE


def reads_of(s: Schedule, expr: Expr, target: Tensor) -> list[tuple[Expr, ...]]:
    """The indices at which ``expr`` reads ``target``, looking through inlined stages (substituting their axes)."""
    found: list[tuple[Expr, ...]] = []

    def visit(node: object) -> None:
        if not isinstance(node, ProducerLoad):
            return
        tensor = node.producer
        if tensor.op is target.op:
            found.append(tuple(node.indices))
            return
        op = tensor.op
        if isinstance(op, ComputeOp) and not op.is_reduction and _inlined(s, tensor):
            mapping = {axis.var: index for axis, index in zip(op.axis, node.indices)}
            found.extend(reads_of(s, substitute(op.body[tensor.value_index], mapping), target))

    post_order_visit(expr, visit)
    return found


def depends_on(expr: Expr, var: Var) -> bool:
    found = False

    def visit(node: object) -> None:
        nonlocal found
        found = found or node is var

    post_order_visit(expr, visit)
    return found


def sole_output_reader(s: Schedule, anchor: Tensor) -> Tensor | None:
    """The group output that is the only root stage reading ``anchor`` (module docstring), or ``None``."""
    if s[anchor].is_output:
        return None
    readers = s.readers(s[anchor])
    if len(readers) != 1:
        return None
    stage = readers[0]
    op = stage.op
    if not (isinstance(op, ComputeOp) and stage.is_output and not op.is_reduction and op.num_outputs == 1):
        return None
    out = op.output(0)
    if any(const_int_value(d) is None for d in out.shape):
        return None
    return out


def same_index_epilogue(s: Schedule, anchor: Tensor) -> Tensor | None:
    """The group output computed elementwise from ``anchor`` at the same indices (module docstring), or ``None``."""
    out = sole_output_reader(s, anchor)
    if out is None or len(out.shape) != len(anchor.shape):
        return None
    if any(const_int_value(a) != const_int_value(b) for a, b in zip(out.shape, anchor.shape)):
        return None
    op = out.op
    assert isinstance(op, ComputeOp)
    axes = [axis.var for axis in op.axis]
    bounds = {axis.var: (0, int(const_int_value(axis.dom.extent) or 1) - 1) for axis in op.axis}
    reads = reads_of(s, op.body[0], anchor)
    for indices in reads:
        if not all(equal_under(i, axis, bounds) for i, axis in zip(indices, axes)):
            return None
    return out if reads else None


def equal_under(a: Expr, b: Expr, bounds: dict[Var, tuple[int, int]]) -> bool:
    """Whether ``a - b`` simplifies to 0 given the variables' ``bounds`` (an axis of extent 1 is 0)."""
    return const_int_value(simplify(a - b, bounds)) == 0
