"""Inlined stages substituted into their readers: ``inline_bodies(schedule)``.

Rewrite: every read ``T[i...]`` of a stage ``T`` marked ``compute_inline`` becomes ``T``'s body with its axes
replaced by ``i...``, recursively (an inlined stage may read another); a read of a tensor that a schedule rewrite
replaced (``cache_write``, ``rfactor``) reads the tensor that now holds its values. Assumes stages in
producer-before-consumer order. Guarantees no body refers to an inlined stage.
"""

from __future__ import annotations

from tcomp.ir.expr import Expr, ProducerLoad, Var
from tcomp.ir.functor import Mutator, substitute
from tcomp.schedule.relation import AttachType
from tcomp.schedule.schedule import Schedule
from tcomp.te.tensor import ComputeOp, Operation


class _Inliner(Mutator):
    """Substitutes inlined stages and redirects reads of aliased tensors to the tensors that replaced them."""

    def __init__(self, inlined: dict[Operation, tuple[tuple[Var, ...], Expr]], schedule: Schedule) -> None:
        self.inlined = inlined
        self.schedule = schedule

    def visit_ProducerLoad(self, node: ProducerLoad) -> Expr:
        indices = tuple(self.visit(i) for i in node.indices)
        producer = self.schedule.resolve(node.producer)
        entry = self.inlined.get(producer.op)
        if entry is None:
            if producer is node.producer and all(a is b for a, b in zip(indices, node.indices)):
                return node
            return ProducerLoad(producer, indices, node.dtype)
        params, body = entry
        return substitute(body, dict(zip(params, indices)))


def inline_bodies(schedule: Schedule) -> dict[Operation, tuple[Expr, ...]]:
    """The body of every compute with inlined stages substituted in."""
    inlined: dict[Operation, tuple[tuple[Var, ...], Expr]] = {}
    bodies: dict[Operation, tuple[Expr, ...]] = {}
    for stage in schedule.stages:
        op = stage.op
        if not isinstance(op, ComputeOp):
            continue
        mutator = _Inliner(inlined, schedule)
        body = tuple(mutator.visit(b) for b in op.body)
        bodies[op] = body
        if stage.attach_type is AttachType.INLINE:
            inlined[op] = (tuple(iv.var for iv in op.axis), body[0])
    return bodies
