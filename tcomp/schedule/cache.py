"""Schedule-level rewrites that add stages: ``cache_read``, ``cache_write`` and ``rfactor``.

Each creates new operations; a stage whose operation is replaced keeps its identity (``s[T]`` with the tensor the
user holds still finds it) and the schedule records the old output tensor as an alias of the new one, so tensor
reads elsewhere are redirected when lowering. Rewrite rules:

- ``cache_read(T, scope, readers)``: a stage ``T.scope[i...] = T[i...]`` is added after ``T``'s producer, and the
  given readers read ``T.scope`` instead of ``T``.
- ``cache_write(T, scope)``: ``T``'s computation (its reduction included) moves to a new stage ``T.scope`` with
  fresh data-parallel axes and the same reduction axes; ``T``'s stage becomes the copy ``T[i...] = T.scope[i...]``
  over the same axes as before. Only before ``T``'s stage is split or fused.
- ``rfactor(T, k)``: for a reduction over axes split so that ``k`` is a reduction leaf, a stage
  ``T.rf[k, i...] = reduce over the other reduction leaves`` holds partial results indexed by ``k`` (a data-parallel
  axis now, so it can be vectorized or run in parallel), and ``T``'s stage becomes ``T[i...] = reduce_k T.rf[k, i...]``
  with a fresh schedule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tcomp.arith import simplify
from tcomp.ir.expr import (
    Expr,
    IterKind,
    IterVar,
    ProducerLoad,
    Range,
    Reduce,
    Var,
    const,
    logical_and,
    select,
)
from tcomp.ir.functor import Mutator, substitute
from tcomp.schedule.bound import StageBound, pass_down_extents, pass_up_index
from tcomp.schedule.relation import AttachType, ScheduleError, Split
from tcomp.te.tensor import ComputeOp, PlaceholderOp, Tensor

if TYPE_CHECKING:
    from tcomp.schedule.schedule import Schedule
    from tcomp.schedule.stage import Stage

SCOPES = ("global", "local", "shared")


class _ReplaceReads(Mutator):
    def __init__(self, old: Tensor, new: Tensor, schedule: Schedule) -> None:
        self.old = old
        self.new = new
        self.schedule = schedule

    def visit_ProducerLoad(self, node: ProducerLoad) -> Expr:
        indices = tuple(self.visit(i) for i in node.indices)
        if self.schedule.resolve(node.producer) is self.old:
            return ProducerLoad(self.new, indices, node.dtype)
        if all(a is b for a, b in zip(indices, node.indices)):
            return node
        return ProducerLoad(node.producer, indices, node.dtype)


def _check_scope(stage_name: str, primitive: str, scope: str) -> None:
    if scope not in SCOPES:
        raise ScheduleError(f"stage {stage_name}: {primitive}: unknown scope {scope!r}; expected one of {SCOPES}")


def replace_op(schedule: Schedule, stage: Stage, new_op: ComputeOp) -> None:
    """Give ``stage`` a new operation; old output tensors become aliases of the new ones."""
    old_op = stage.op
    for old, new in zip(old_op.outputs, new_op.outputs):
        schedule.tensor_alias[old] = new
    stage.op = new_op
    schedule.stage_map[new_op] = stage


def restart_stage(stage: Stage, root_iter_vars: tuple[IterVar, ...]) -> None:
    """Start ``stage``'s iteration afresh over ``root_iter_vars`` (after ``replace_op`` gave it an operation with
    other axes): no splits, fusions or annotations left."""
    stage.root_iter_vars = root_iter_vars
    stage.all_iter_vars = list(root_iter_vars)
    stage.leaf_iter_vars = list(root_iter_vars)
    stage.relations = []
    stage.iter_attrs = {}


def cache_read(schedule: Schedule, tensor: Tensor, scope: str, readers: Any) -> Tensor:
    tensor = schedule.resolve(tensor)
    producer = schedule[tensor]
    _check_scope(producer.name, "cache_read", scope)
    reader_list = [readers] if isinstance(readers, (Tensor, ComputeOp)) else list(readers)
    if not reader_list:
        raise ScheduleError(f"stage {producer.name}: cache_read: give at least one reader")
    reader_stages = []
    for reader in reader_list:
        stage = schedule[reader]
        if not isinstance(stage.op, ComputeOp):
            raise ScheduleError(f"stage {producer.name}: cache_read: reader {stage.name} is not a compute stage")
        if not any(schedule.resolve(t) is tensor for t in stage.op.input_tensors()):
            raise ScheduleError(f"stage {producer.name}: cache_read: stage {stage.name} does not read {tensor.name}")
        reader_stages.append(stage)
    name = f"{tensor.name}.{scope}"
    ndim = len(tensor.shape)
    axis = tuple(
        IterVar(Var(f"ax{d}", "int32"), Range(const(0), tensor.shape[d]), IterKind.DATA_PAR) for d in range(ndim)
    )
    cache_op = ComputeOp(name, "cache_read", {}, axis, (tensor[tuple(iv.var for iv in axis)],))
    cache = cache_op.output(0)
    for stage in reader_stages:
        op = stage.op
        assert isinstance(op, ComputeOp)
        body = tuple(_ReplaceReads(tensor, cache, schedule).visit(b) for b in op.body)
        replace_op(schedule, stage, ComputeOp(op.name, op.tag, op.attrs, op.axis, body))
    position = schedule.stages.index(producer) + 1
    new_stage = schedule.insert_stage(cache_op, position)
    new_stage.scope = scope
    return cache


def cache_write(schedule: Schedule, tensor: Tensor, scope: str) -> Tensor:
    tensor = schedule.resolve(tensor)
    stage = schedule[tensor]
    _check_scope(stage.name, "cache_write", scope)
    op = stage.op
    if not isinstance(op, ComputeOp):
        raise ScheduleError(f"stage {stage.name}: cache_write: only a compute stage can be cached")
    if stage.relations:
        raise ScheduleError(
            f"stage {stage.name}: cache_write: the stage was already split or fused; call cache_write first"
        )
    if stage.attach_type is AttachType.INLINE:
        raise ScheduleError(f"stage {stage.name}: cache_write: the stage is inlined")
    if op.num_outputs != 1:
        raise ScheduleError(f"stage {stage.name}: cache_write: a stage with several outputs cannot be cached")
    new_axis = tuple(IterVar(Var(iv.var.name + ".c", "int32"), iv.dom, IterKind.DATA_PAR) for iv in op.axis)
    mapping = {old.var: new.var for old, new in zip(op.axis, new_axis)}
    cache_body = tuple(substitute(b, mapping) for b in op.body)
    cache_op = ComputeOp(f"{op.name}.{scope}", op.tag, op.attrs, new_axis, cache_body)
    cache = cache_op.output(0)
    copy_op = ComputeOp(op.name, op.tag, op.attrs, op.axis, (cache[tuple(iv.var for iv in op.axis)],))
    replace_op(schedule, stage, copy_op)
    stage.root_iter_vars = tuple(copy_op.axis)
    stage.all_iter_vars = list(stage.root_iter_vars)
    stage.leaf_iter_vars = list(stage.root_iter_vars)
    stage.iter_attrs = {iv: attr for iv, attr in stage.iter_attrs.items() if iv in stage.root_iter_vars}
    new_stage = schedule.insert_stage(cache_op, schedule.stages.index(stage))
    new_stage.scope = scope
    return cache


def rfactor(schedule: Schedule, tensor: Tensor, axis: IterVar, factor_axis: int = 0) -> Tensor:
    tensor = schedule.resolve(tensor)
    stage = schedule[tensor]
    op = stage.op
    if not isinstance(op, ComputeOp) or not op.is_reduction:
        raise ScheduleError(f"stage {stage.name}: rfactor: only a reduction can be factored")
    stage.leaf_index(axis, "rfactor")
    if axis.kind is not IterKind.REDUCE:
        raise ScheduleError(f"stage {stage.name}: rfactor: axis {axis.var.name}: is not a reduction axis")
    if not 0 <= factor_axis <= len(op.axis):
        raise ScheduleError(
            f"stage {stage.name}: rfactor: factor_axis {factor_axis} is not in [0, {len(op.axis)}]"
        )

    bound = StageBound()
    for iv in stage.root_iter_vars:
        assert iv.dom is not None
        bound.root[iv] = iv.dom
    pass_down_extents(stage, bound, {})
    extent = simplify(bound.extent[axis])
    if not hasattr(extent, "value"):
        raise ScheduleError(f"stage {stage.name}: rfactor: axis {axis.var.name}: extent {extent} is not constant")
    reduce_leaves = [lv for lv in stage.leaf_iter_vars if lv.kind is IterKind.REDUCE]
    # the factored axis becomes data-parallel; the other reduction leaves stay reductions
    k_new = IterVar(Var(axis.var.name + ".rf", "int32"), Range(const(0), extent), IterKind.DATA_PAR)
    others = {
        lv: IterVar(Var(lv.var.name, "int32"), Range(const(0), simplify(bound.extent[lv])), IterKind.REDUCE)
        for lv in reduce_leaves
        if lv is not axis
    }
    leaf_values: dict[IterVar, Expr] = {axis: k_new.var}
    leaf_values.update({lv: iv.var for lv, iv in others.items()})
    for lv in stage.leaf_iter_vars:
        if lv.kind is not IterKind.REDUCE:
            leaf_values[lv] = const(0)
    values = pass_up_index(stage, bound, leaf_values)
    reduce = op.body[0]
    assert isinstance(reduce, Reduce)
    data_axis = tuple(IterVar(Var(iv.var.name, "int32"), iv.dom, IterKind.DATA_PAR) for iv in op.axis)
    mapping: dict[Var, Expr] = {old.var: new.var for old, new in zip(op.axis, data_axis)}
    condition: Expr | None = reduce.condition
    for root in op.reduce_axis:
        mapping[root.var] = root.dom.min + values[root] if root.dom is not None else values[root]
        if any(isinstance(r, Split) and r.parent is root for r in stage.relations) and root.dom is not None:
            in_range = values[root] < root.dom.extent
            condition = in_range if condition is None else logical_and(condition, in_range)
    source = substitute(reduce.source, mapping)
    new_condition = None if condition is None else simplify(substitute(condition, mapping))
    rf_axes = data_axis[:factor_axis] + (k_new,) + data_axis[factor_axis:]
    rf_reduce_axes = tuple(others.values())
    if rf_reduce_axes:
        rf_body: Expr = Reduce(reduce.combiner, source, rf_reduce_axes, new_condition, reduce.dtype, reduce.init)
    else:
        rf_body = source if new_condition is None else _select_identity(new_condition, source, reduce)
    rf_op = ComputeOp(f"{op.name}.rf", op.tag, op.attrs, rf_axes, (rf_body,))
    rf = rf_op.output(0)
    k_final = IterVar(Var(axis.var.name + ".v", "int32"), Range(const(0), extent), IterKind.REDUCE)

    def rf_index(*spatial: Var) -> Expr:
        idx = list(spatial[:factor_axis]) + [k_final.var] + list(spatial[factor_axis:])
        return rf[tuple(idx)]

    final_body = Reduce(reduce.combiner, rf_index(*[iv.var for iv in op.axis]), (k_final,), None, reduce.dtype)
    final_op = ComputeOp(op.name, op.tag, op.attrs, op.axis, (final_body,))
    replace_op(schedule, stage, final_op)
    restart_stage(stage, tuple(final_op.axis) + (k_final,))
    schedule.insert_stage(rf_op, schedule.stages.index(stage))
    return rf


def _select_identity(condition: Expr, source: Expr, reduce: Reduce) -> Expr:
    return select(condition, source, reduce.combiner.identity)


__all__ = ["cache_read", "cache_write", "rfactor", "PlaceholderOp"]
