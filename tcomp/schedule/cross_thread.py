"""Cross-thread reduction: a reduction whose axis is bound to ``threadIdx`` (``s[B].bind(k_inner, thread_x)``).

Rewrite, for ``B[i] = reduce_k f(i, k)`` with the reduction leaf ``t`` bound to ``threadIdx.<d>`` (``T`` threads)::

    allocate B.acc: dtype[1], local           # this thread's partial result
    B.acc[0] = identity
    for ... reduction leaves (t bound, the others serial) ...:
        if guards: B.acc[0] = combine(B.acc[0], f(i, k))
    for t' in thread_binding(0, T, threadIdx.<d>):   # the tree
        ...
        if t' == 0 and guards: B[i] = total  (combined with the reduction's init value when it has one;
                                              every t' stores when B is in local memory, one copy per thread)

The tree, when the threads are along x, a power of two up to 1024, and the type one a warp shuffle moves (32- and
64-bit integers and floats): warp shuffles (``__shfl_xor_sync``), no barrier within a warp. Up to 32 threads,
``B.acc = combine(B.acc, shuffle_xor(B.acc, m, T))`` for ``m = T/2, ..., 1`` leaves the total in every thread.
More threads: each warp so reduces its 32 lanes, lane 0 of each warp writes its total into ``B.red`` (shared, one
slot per warp), and after a barrier every warp reads the slots and reduces them by shuffles of width ``T / 32``.

Otherwise, a tree in shared memory: ``B.red`` (shared, ``T`` slots) gets every thread's partial result, then
``B.red[t'] = combine(B.red[t'], B.red[t' + s])`` for ``t' < s``, ``s = T/2, T/4, ..., 1``; the total is
``B.red[0]``.

The CUDA backend inserts the barriers around shared-memory steps and gives every group of threads that differ in
other thread dimensions its own copy of ``B.red`` (the tree loop's ``thread_reduce`` annotation names the buffer).
Assumes the stage runs in a GPU kernel; its data-parallel leaves must all be outside its reduction leaves.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

from tcomp.ir.buffer import Buffer
from tcomp.ir.expr import (
    BufferLoad,
    Expr,
    IterKind,
    IterVar,
    Reduce,
    Var,
    const,
    const_int_value,
    floordiv,
    floormod,
    logical_and,
)
from tcomp.ir.functor import combine_with
from tcomp.ir.gpu import WARP_SIZE, shuffle_xor
from tcomp.ir.stmt import Allocate, BufferStore, For, ForKind, IfThenElse, Stmt, seq
from tcomp.schedule.relation import ScheduleError

if TYPE_CHECKING:
    from tcomp.schedule.bound import StageBound
    from tcomp.schedule.loop_nest import Lowerer
    from tcomp.schedule.stage import Stage

THREAD_REDUCE = "thread_reduce"  # the annotation key on the tree's thread loop; its value is the buffer's name
SHUFFLE_DTYPES = ("float32", "float64", "int32", "int64", "uint32", "uint64")  # what __shfl_xor_sync moves


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
    combine = functools.partial(combine_with, reduce.combiner)
    zero = const(0)
    acc = Buffer(f"{stage.name}.acc", (const(1),), dtype, "local")
    acc_value = BufferLoad(acc, (zero,), dtype)
    update: Stmt = BufferStore(acc, combine(acc_value, load(reduce.source)), (zero,))
    if reduce.condition is not None:
        update = IfThenElse(load(reduce.condition), update)
    update_nest = lowerer.build_nest(stage, bound, inner, update, guards)

    lane = Var(f"{leaf.var.name}.red", "int32")
    if tag == "threadIdx.x" and dtype in SHUFFLE_DTYPES and _shuffles_fit(threads):
        tree, red = _shuffle_tree(stage.name, acc, lane, threads, combine, dtype)
        total: Expr = acc_value
    else:
        red = Buffer(f"{stage.name}.red", (const(threads),), dtype, "shared")
        tree = _shared_tree(red, acc_value, lane, threads, combine, dtype)
        total = BufferLoad(red, (zero,), dtype)
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
    annotations = ((THREAD_REDUCE, red.name),) if red is not None else ()
    tree_loop = For(lane, zero, const(threads), ForKind.THREAD_BINDING, seq(*tree), tag, annotations)
    body: Stmt = Allocate(acc, seq(BufferStore(acc, reduce.combiner.identity, (zero,)), update_nest, tree_loop))
    if red is not None:
        body = Allocate(red, body)
    return lowerer.build_nest(stage, bound, common, body, [])


def _shared_tree(red: Buffer, acc_value: Expr, lane: Var, threads: int, combine: Callable[[Expr, Expr], Expr],
                 dtype: str) -> list[Stmt]:
    """Every thread's partial result into its slot of ``red``, then halving steps: ``red[t] = combine(red[t],
    red[t + s])`` for the threads below ``s``; the total ends in ``red[0]``."""

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
    return tree


def _shuffles_fit(threads: int) -> bool:
    """Warp shuffles reduce a power of two of threads up to a warp, or whole warps up to a warp of warps."""
    power_of_two = threads & (threads - 1) == 0
    return power_of_two and 1 < threads <= WARP_SIZE * WARP_SIZE


def _warp_steps(acc: Buffer, combine: Callable[[Expr, Expr], Expr], dtype: str, width: int) -> list[Stmt]:
    """``acc = combine(acc, shuffle_xor(acc, m, width))`` for ``m = width / 2, ..., 1``: afterwards every lane of
    each segment of ``width`` lanes holds the segment's total."""
    steps: list[Stmt] = []
    mask = width // 2
    while mask >= 1:
        value = BufferLoad(acc, (const(0),), dtype)
        steps.append(BufferStore(acc, combine(value, shuffle_xor(value, mask, width)), (const(0),)))
        mask //= 2
    return steps


def _shuffle_tree(name: str, acc: Buffer, lane: Var, threads: int, combine: Callable[[Expr, Expr], Expr],
                  dtype: str) -> tuple[list[Stmt], Buffer | None]:
    """The reduction with warp shuffles, the total left in every thread's ``acc``. Up to a warp: butterfly steps
    within segments of ``threads`` lanes. More threads: each warp reduces its lanes, lane 0 of each warp puts the
    warp's total in ``red`` (one slot per warp, shared), then every warp reads all slots (lane ``l`` slot
    ``l % warps``) and reduces them with shuffles of width ``warps``."""
    if threads <= WARP_SIZE:
        return _warp_steps(acc, combine, dtype, threads), None
    warps = threads // WARP_SIZE
    red = Buffer(f"{name}.red", (const(warps),), dtype, "shared")
    acc_value = BufferLoad(acc, (const(0),), dtype)
    steps = _warp_steps(acc, combine, dtype, WARP_SIZE)
    steps.append(IfThenElse(floormod(lane, WARP_SIZE) == 0, BufferStore(red, acc_value, (floordiv(lane, WARP_SIZE),))))
    steps.append(BufferStore(acc, BufferLoad(red, (floormod(lane, warps),), dtype), (const(0),)))
    steps += _warp_steps(acc, combine, dtype, warps)
    return steps, red
