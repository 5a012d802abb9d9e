"""Cross-thread reduction: a reduction whose axis is bound to ``threadIdx`` (``s[B].bind(k_inner, thread_x)``).

Rewrite, for ``B[i] = reduce_k f(i, k)`` with the reduction leaf ``t`` bound to ``threadIdx.<d>`` (``T`` threads)::

    allocate B.red: dtype[T], shared          # one slot per thread of the reduction
    allocate B.acc: dtype[1], local           # this thread's partial result
    B.acc[0] = identity
    for ... reduction leaves (t bound, the others serial) ...:
        if guards: B.acc[0] = combine(B.acc[0], f(i, k))
    for t' in thread_binding(0, T, threadIdx.<d>):   # annotated ("thread_reduce", "B.red")
        B.red[t'] = B.acc[0]
        if t' < s: B.red[t'] = combine(B.red[t'], B.red[t' + s])   for s = T/2, T/4, ..., 1 (a tree)
        if t' == 0 and guards: B[i] = B.red[0]  (combined with the reduction's init value when it has one;
                                                  every t' stores when B is in local memory, one copy per thread)

The CUDA backend inserts the barriers between the tree's steps and gives every group of threads that differ in
other thread dimensions its own copy of ``B.red`` (the annotation names the buffer). Assumes the stage runs in a GPU
kernel; its data-parallel leaves must all be outside its reduction leaves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from tcomp.ir.buffer import Buffer
from tcomp.ir.expr import BufferLoad, Expr, IterKind, IterVar, Reduce, Var, const, const_int_value, logical_and
from tcomp.ir.stmt import Allocate, BufferStore, For, ForKind, IfThenElse, Stmt, seq
from tcomp.schedule.relation import ScheduleError

if TYPE_CHECKING:
    from tcomp.schedule.bound import StageBound
    from tcomp.schedule.loop_nest import Lowerer
    from tcomp.schedule.stage import Stage

THREAD_REDUCE = "thread_reduce"  # the annotation key on the tree's thread loop; its value is the buffer's name


def cross_thread_leaf(stage: Stage) -> IterVar | None:
    """The reduction leaf of ``stage`` bound to a ``threadIdx`` axis, if any."""
    for leaf in stage.leaf_iter_vars:
        attr = stage.iter_attrs.get(leaf)
        if leaf.kind is IterKind.REDUCE and attr is not None and attr.bind_thread is not None:
            return leaf
    return None


def lower_cross_thread_reduce(
    lowerer: Lowerer,
    stage: Stage,
    bound: StageBound,
    reduce: Reduce,
    buffer: Buffer,
    indices: tuple[Expr, ...],
    guards: list[tuple[Expr, set[int]]],
    load: Callable[[Expr], Expr],
) -> Stmt:
    """The loop nest of a reduction stage with a thread-bound reduction leaf (see the module docstring)."""
    leaves = stage.leaf_iter_vars
    first_reduce = next(i for i, lv in enumerate(leaves) if lv.kind is IterKind.REDUCE)
    common, inner = leaves[:first_reduce], leaves[first_reduce:]
    leaf = cross_thread_leaf(stage)
    assert leaf is not None
    prefix = f"stage {stage.name}: cross-thread reduction over axis {leaf.var.name}"
    misplaced = [lv.var.name for lv in inner if lv.kind is not IterKind.REDUCE]
    if misplaced:
        raise ScheduleError(
            f"{prefix}: data-parallel axes {', '.join(misplaced)} are inside the reduction axes; reorder them outside"
        )
    threads = const_int_value(bound.extent[leaf])
    if threads is None:
        raise ScheduleError(f"{prefix}: the thread count {bound.extent[leaf]} is not a constant")
    tag = stage.iter_attrs[leaf].bind_thread.thread_tag  # type: ignore[union-attr]
    dtype = reduce.dtype
    combine = reduce.combiner.combine
    zero = const(0)
    acc = Buffer(f"{stage.name}.acc", (const(1),), dtype, "local")
    red = Buffer(f"{stage.name}.red", (const(threads),), dtype, "shared")
    acc_value = BufferLoad(acc, (zero,), dtype)
    update: Stmt = BufferStore(acc, combine(acc_value, load(reduce.source)), (zero,))
    if reduce.condition is not None:
        update = IfThenElse(load(reduce.condition), update)
    update_nest = lowerer.build_nest(stage, bound, inner, update, guards)

    lane = Var(f"{leaf.var.name}.red", "int32")

    def slot(offset: int) -> tuple[Expr, ...]:
        return (lane + offset,) if offset else (lane,)

    tree: list[Stmt] = [BufferStore(red, acc_value, slot(0))]
    step = 1
    while step * 2 < threads:
        step *= 2
    first = True
    while step >= 1:
        condition = lane < step
        if first and step * 2 != threads:
            condition = logical_and(condition, lane + step < threads)
        merged = combine(BufferLoad(red, slot(0), dtype), BufferLoad(red, slot(step), dtype))
        tree.append(IfThenElse(condition, BufferStore(red, merged, slot(0))))
        first = False
        step //= 2
    total: Expr = BufferLoad(red, (zero,), dtype)
    if reduce.init is not None:
        total = combine(load(reduce.init), total)
    reduce_ids = {id(lv.var) for lv in inner}
    # every thread keeps the result in its own local copy; one thread writes it to shared or global memory
    condition: Expr | None = None if buffer.scope == "local" else lane == 0
    for cond, used in guards:
        if not used & reduce_ids:
            condition = cond if condition is None else logical_and(condition, cond)
    store = BufferStore(buffer, total, indices)
    tree.append(store if condition is None else IfThenElse(condition, store))
    annotations = ((THREAD_REDUCE, red.name),)
    tree_loop = For(lane, zero, const(threads), ForKind.THREAD_BINDING, seq(*tree), tag, annotations)
    body = seq(BufferStore(acc, reduce.combiner.identity, (zero,)), update_nest, tree_loop)
    return lowerer.build_nest(stage, bound, common, Allocate(red, Allocate(acc, body)), [])
