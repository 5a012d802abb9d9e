"""Bound inference: the range each stage's root axes must cover, and the extent of every axis.

Consumers are visited before producers. A stage at the root (or an output) covers its whole domain. A stage
computed at ``(host, axis)`` covers the union of the regions of its output that its readers read inside one
iteration of ``axis``; every reader must run inside that loop (the host itself, or a stage computed, directly or
through others, at ``axis`` or a loop inside it), else a ``ScheduleError`` names it. For each reader, its leaf loops
range over their extents, except the host's own loops outside and at ``axis``, which are fixed (symbols); the ranges
pass up through the reader's split and fuse relations to its root axes, the loops of the stages between reader and
host (and the host's loops inside ``axis``) are relaxed over their extents, and symbolic interval analysis of every
read's indices gives the region. Symbolic dimensions range over their declared ranges (``Var.declared_range``).
Regions are not clipped to the producer's domain; the loop nest guards the iterations that fall outside it. A
region's extent must not depend on the loops around the attach point: it is their upper bound over the loops'
ranges, or, when there is none, the dimension's whole domain.

GPU storage: a stage in ``"shared"`` scope is shared by all threads of a block, so the consumer's loops bound to
``threadIdx`` outside the attach point (the consumer's own, and those of the stages it is itself attached to) range
over their whole extent instead of being fixed: the region is the tile the whole block reads. ``blockIdx`` loops stay
fixed (one tile per block), as do all loops for ``"local"`` storage (one copy per thread).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tcomp.arith import IntervalSet, const_int_bound, eval_interval, simplify
from tcomp.ir import dtype as dt
from tcomp.ir.expr import Expr, IterVar, ProducerLoad, Range, Var, cast, const, convert, floordiv, floormod
from tcomp.ir.functor import free_vars, post_order_visit
from tcomp.schedule.relation import AttachType, Fuse, ScheduleError, Split
from tcomp.schedule.stage import Stage
from tcomp.te.tensor import ComputeOp, ScanOp, Tensor

Bounds = dict[Var, tuple[int, int]]


@dataclass
class StageBound:
    """Ranges of one stage: ``root`` for root axes (absolute), ``extent`` for every axis (loop trip counts)."""

    root: dict[IterVar, Range] = field(default_factory=dict)
    extent: dict[IterVar, Expr] = field(default_factory=dict)
    # for a stage computed at another: the region of its output it holds, per dimension (min, extent)
    region: tuple[tuple[Expr, Expr], ...] | None = None


def ceil_div(a: Expr, b: Expr, bounds: Bounds) -> Expr:
    return simplify(floordiv(a + b - 1, b), bounds)


def pass_down_extents(stage: Stage, bound: StageBound, bounds: Bounds) -> None:
    """Extents of split and fused axes from the extents of their parents."""
    for iv in stage.root_iter_vars:
        bound.extent[iv] = bound.root[iv].extent
    for rel in stage.relations:
        if isinstance(rel, Split):
            parent = bound.extent[rel.parent]
            if rel.factor is not None:
                bound.extent[rel.inner] = rel.factor
                bound.extent[rel.outer] = ceil_div(parent, rel.factor, bounds)
            else:
                assert rel.nparts is not None
                bound.extent[rel.outer] = rel.nparts
                bound.extent[rel.inner] = ceil_div(parent, rel.nparts, bounds)
        else:
            dtype = rel.fused.var.dtype  # the product of the extents fits the fused loop's type (see ``fuse``)
            product = cast(bound.extent[rel.outer], dtype) * cast(bound.extent[rel.inner], dtype)
            bound.extent[rel.fused] = simplify(product, bounds)
    for iv in stage.leaf_iter_vars:
        _record_bound(iv.var, bound.extent[iv], bounds)


def _record_bound(var: Var, extent: Expr, bounds: Bounds) -> None:
    _, hi = const_int_bound(extent, bounds)
    if hi is not None:
        bounds[var] = (0, max(hi - 1, 0))


def _record_scan_bound(axis: IterVar, bounds: Bounds) -> None:
    """The range of a scan's time variable: unlike a leaf loop's, it starts at the scan's first row, not at 0 (the
    time loop runs over absolute rows ``[min, min + extent)``)."""
    bounds.pop(axis.var, None)
    if axis.dom is None:
        return
    lo, hi_min = const_int_bound(axis.dom.min, bounds)
    _, hi_ext = const_int_bound(axis.dom.extent, bounds)
    if lo is not None and hi_min is not None and hi_ext is not None:
        bounds[axis.var] = (lo, hi_min + max(hi_ext - 1, 0))


def pass_up_index(stage: Stage, bound: StageBound, leaf_values: Mapping[IterVar, Expr]) -> dict[IterVar, Expr]:
    """Values of every axis (relative to its range's min) from the values of the leaves."""
    value: dict[IterVar, Expr] = dict(leaf_values)
    for rel in reversed(stage.relations):
        if isinstance(rel, Split):
            if rel.outer not in value or rel.inner not in value:
                continue
            inner_extent = bound.extent[rel.inner]
            value[rel.parent] = value[rel.outer] * inner_extent + value[rel.inner]
        elif isinstance(rel, Fuse):
            if rel.fused not in value:
                continue
            inner_extent = bound.extent[rel.inner]
            # a 64-bit fused loop over 32-bit axes: each part is below its own extent, so it fits the axis' type
            value[rel.outer] = cast(floordiv(value[rel.fused], inner_extent), rel.outer.var.dtype)
            value[rel.inner] = cast(floormod(value[rel.fused], inner_extent), rel.inner.var.dtype)
    return value


def pass_up_domain(
    stage: Stage, bound: StageBound, leaf_sets: Mapping[IterVar, IntervalSet], bounds: Bounds
) -> dict[IterVar, IntervalSet]:
    """Interval of every root axis (absolute) from intervals of the leaves (relative)."""
    sets: dict[IterVar, IntervalSet] = dict(leaf_sets)
    for rel in reversed(stage.relations):
        if isinstance(rel, Split):
            outer, inner = sets[rel.outer], sets[rel.inner]
            dtype = rel.parent.var.dtype
            ov, iv = Var("o", dtype), Var("i", dtype)
            expr = ov * cast(bound.extent[rel.inner], dtype) + iv
            sets[rel.parent] = eval_interval(expr, {ov: outer, iv: inner}, bounds)
        else:
            fused = sets[rel.fused]
            if fused.is_point():
                assert fused.min is not None
                inner_extent = bound.extent[rel.inner]
                outer_value = cast(floordiv(fused.min, inner_extent), rel.outer.var.dtype)
                inner_value = cast(floormod(fused.min, inner_extent), rel.inner.var.dtype)
                sets[rel.outer] = IntervalSet.point(simplify(outer_value, bounds))
                sets[rel.inner] = IntervalSet.point(simplify(inner_value, bounds))
            else:
                sets[rel.outer] = IntervalSet.from_range(const(0), bound.extent[rel.outer])
                sets[rel.inner] = IntervalSet.from_range(const(0), bound.extent[rel.inner])
    result: dict[IterVar, IntervalSet] = {}
    for root in stage.root_iter_vars:
        rel_set = sets[root]
        base = bound.root[root].min
        result[root] = IntervalSet(
            None if rel_set.min is None else simplify(base + rel_set.min, bounds),
            None if rel_set.max is None else simplify(base + rel_set.max, bounds),
        )
    return result


def full_domain(stage: Stage) -> dict[IterVar, Range]:
    result: dict[IterVar, Range] = {}
    for iv in stage.root_iter_vars:
        assert iv.dom is not None
        result[iv] = iv.dom
    return result


def reads_of(body: tuple[Expr, ...], tensor: Tensor) -> list[tuple[Expr, ...]]:
    found: list[tuple[Expr, ...]] = []

    def visit(node: object) -> None:
        if isinstance(node, ProducerLoad) and node.producer is tensor:
            found.append(node.indices)

    for expr in body:
        post_order_visit(expr, visit)
    return found


def infer_attached_region(
    stage: Stage,
    consumer_bodies: Mapping[Stage, tuple[Expr, ...]],
    stage_bounds: Mapping[Stage, StageBound],
    bounds: Bounds,
    size_vars: frozenset[Var] = frozenset(),
    loop_extents: Mapping[Var, Expr] | None = None,
) -> tuple[tuple[Expr, Expr], ...]:
    """The region (min, extent) per dimension of ``stage``'s output that its consumers read inside one iteration of
    the loop ``stage`` is attached to (for shared storage: inside one iteration of the block's loops).

    ``consumer_bodies`` holds the body (inlined stages substituted) of every stage that reads ``stage``; each must
    run inside the attach point: be the host itself, or be computed, directly or through other stages, at the
    host's attach loop or a loop inside it. ``stage_bounds`` holds the bounds of every consumer and host."""
    host, axis = stage.attach_stage, stage.attach_ivar
    assert host is not None and axis is not None
    position = host.leaf_iter_vars.index(axis)
    tensor = stage.op.output(0)
    merged: list[IntervalSet | None] = [None] * tensor.ndim
    for consumer, body in consumer_bodies.items():
        hosts = _hosts_inside(stage, consumer, host, position)
        accesses = reads_of(body, tensor)
        if not accesses:
            continue
        consumer_bound = stage_bounds[consumer]
        leaf_sets: dict[IterVar, IntervalSet] = {}
        for index, leaf in enumerate(consumer.leaf_iter_vars):
            fixed = consumer is host and index <= position and not _relaxed(stage, consumer, leaf)
            if fixed:
                leaf_sets[leaf] = IntervalSet.point(leaf.var)
            else:
                leaf_sets[leaf] = IntervalSet.from_range(const(0), consumer_bound.extent[leaf])
        root_sets = pass_up_domain(consumer, consumer_bound, leaf_sets, bounds)
        dom = {root.var: s for root, s in root_sets.items()}
        relax = _relaxed_host_loops(stage, hosts, position, stage_bounds)
        for dim in range(tensor.ndim):
            for indices in accesses:
                interval = eval_interval(indices[dim], dom, bounds)
                if relax and interval.min is not None and interval.max is not None:
                    low = eval_interval(interval.min, relax, bounds).min
                    interval = IntervalSet(low, eval_interval(interval.max, relax, bounds).max)
                current = merged[dim]
                merged[dim] = interval if current is None else current.union(interval)
    if any(m is None for m in merged) or not consumer_bodies:
        raise ScheduleError(f"stage {stage.name}: compute_at: no stage reads {stage.name} after inlining")
    region: list[tuple[Expr, Expr]] = []
    for dim, interval in enumerate(merged):
        assert interval is not None
        extent: Expr | None = None
        if interval.min is not None and interval.max is not None:
            minimum = simplify(interval.min, bounds)
            whole = simplify(interval.max - interval.min + 1, bounds)
            extent = _loop_invariant_extent(whole, bounds, size_vars, loop_extents or {})
        if extent is None:  # no bound free of loop variables: the stage holds the dimension's whole domain
            domain = stage.axis[dim].dom
            assert domain is not None
            minimum, extent = domain.min, domain.extent
        region.append((minimum, extent))
    return tuple(region)


def _hosts_inside(stage: Stage, consumer: Stage, host: Stage, position: int) -> list[Stage]:
    """The stages from ``consumer`` up to ``host`` that ``consumer`` is computed at, directly or through others
    (``[consumer, ..., host]``), or a ScheduleError when ``consumer`` runs outside ``host``'s loop at
    ``position``, the loop ``stage`` is attached to."""
    path = [consumer]
    while path[-1] is not host:
        current = path[-1]
        outer = current.attach_stage if current.attach_type is AttachType.SCOPE else None
        if outer is None:
            raise _outside_error(stage, consumer, host, position, "is computed at the root")
        if outer is host:
            attached_at = host.leaf_iter_vars.index(current.attach_ivar)  # type: ignore[arg-type]
            if attached_at < position:
                where = f"is computed at {host.name}'s loop {current.attach_ivar.var.name}"  # type: ignore[union-attr]
                if current is not consumer:
                    where = f"runs inside {current.name}, which {where}"
                raise _outside_error(stage, consumer, host, position, where)
        path.append(outer)
        if len(path) > len(stage.schedule.stages):  # pragma: no cover - compute_at refuses cycles
            raise ScheduleError(f"stage {stage.name}: compute_at: the stages computed at each other form a cycle")
    return path


def _outside_error(stage: Stage, consumer: Stage, host: Stage, position: int, where: str) -> ScheduleError:
    axis = host.leaf_iter_vars[position].var.name
    return ScheduleError(
        f"stage {stage.name}: compute_at: axis {axis}: {stage.name} is also read by {consumer.name}, which {where}, "
        f"outside {host.name}'s loop {axis}; compute {consumer.name} at that loop or inside it, or {stage.name} "
        "further out"
    )


def _relaxed(stage: Stage, consumer: Stage, leaf: IterVar) -> bool:
    """Whether ``consumer``'s loop ``leaf``, outside ``stage``'s attach point, ranges over its whole extent in the
    region ``stage`` holds: a loop bound to ``threadIdx`` when ``stage`` is in shared memory."""
    if stage.scope != "shared":
        return False
    attr = consumer.iter_attrs.get(leaf)
    thread = None if attr is None else attr.bind_thread
    return thread is not None and thread.thread_tag.startswith("threadIdx.")


def _relaxed_host_loops(
    stage: Stage, hosts: list[Stage], position: int, stage_bounds: Mapping[Stage, StageBound]
) -> dict[Var, IntervalSet]:
    """Ranges of the loops of the stages a consumer runs inside that vary within one iteration of ``stage``'s attach
    loop: every loop of the stages strictly between the consumer and the host (``hosts[1:-1]``), the host's loops
    inside the attach loop, and, for shared storage, the ``threadIdx`` loops of the host and of the stages it is
    itself computed at (directly or through others)."""
    relax: dict[Var, IntervalSet] = {}
    host = hosts[-1]
    for middle in hosts[1:-1]:
        for leaf in middle.leaf_iter_vars:
            relax[leaf.var] = IntervalSet.from_range(const(0), stage_bounds[middle].extent[leaf])
    if len(hosts) > 1:
        for leaf in host.leaf_iter_vars[position + 1:]:
            relax[leaf.var] = IntervalSet.from_range(const(0), stage_bounds[host].extent[leaf])
        for leaf in host.leaf_iter_vars[: position + 1]:
            if _relaxed(stage, host, leaf):
                relax[leaf.var] = IntervalSet.from_range(const(0), stage_bounds[host].extent[leaf])
    inner = host
    outer = host.attach_stage if host.attach_type is AttachType.SCOPE else None
    while outer is not None and outer in stage_bounds and inner.attach_ivar is not None:
        leaves = outer.leaf_iter_vars
        attached_at = next((i for i, leaf in enumerate(leaves) if leaf is inner.attach_ivar), -1)
        for leaf in leaves[: attached_at + 1]:
            if _relaxed(stage, outer, leaf):
                relax[leaf.var] = IntervalSet.from_range(const(0), stage_bounds[outer].extent[leaf])
        inner = outer
        outer = outer.attach_stage if outer.attach_type is AttachType.SCOPE else None
    return relax


def _loop_invariant_extent(
    extent: Expr, bounds: Bounds, size_vars: frozenset[Var], loop_extents: Mapping[Var, Expr]
) -> Expr | None:
    """An extent free of loop variables (every variable of ``bounds`` but the ``size_vars``): the expression
    itself, its constant upper bound when the extent does not depend on a size variable, or else its upper bound
    with each loop variable over its loop's range (``loop_extents``; an expression of size variables: a region read
    by several readers can be ``max(m - 1, j + ...) + 1`` for ``j`` in ``[0, m)``); None when there is none."""
    used = free_vars(extent)
    loop_vars = [v for v in used if v in bounds and v not in size_vars]
    if not loop_vars:
        return extent
    _, hi = const_int_bound(extent, bounds)
    if hi is not None and not any(v in size_vars for v in used):
        return const(hi)
    ranges = {}
    for v in loop_vars:
        loop_extent = loop_extents.get(v)
        high = const(bounds[v][1]) if loop_extent is None else cast(loop_extent, v.dtype) - 1
        ranges[v] = IntervalSet(const(bounds[v][0], v.dtype), high)
    upper = eval_interval(extent, ranges, bounds).max
    if upper is None or any(v in bounds and v not in size_vars for v in free_vars(upper)):
        return None
    return simplify(upper, bounds)


def declare_size_vars(stages: list[Stage], bounds: Bounds) -> frozenset[Var]:
    """Give every symbolic dimension of the stages' shapes and domains its declared range in ``bounds`` (a
    dimension is never negative; a divisor has no value at zero, so ``x % m`` lies in ``[0, m - 1]``); return them."""
    loop_vars = {iv.var for stage in stages for iv in stage.all_iter_vars}
    found: set[Var] = set()
    for stage in stages:
        exprs: list[Expr] = [d for t in stage.op.outputs for d in t.shape]
        exprs += [e for iv in stage.root_iter_vars if iv.dom is not None for e in (iv.dom.min, iv.dom.extent)]
        for expr in exprs:
            found.update(v for v in free_vars(expr) if v not in loop_vars and dt.is_int(v.dtype))
    for var in found:
        bounds.setdefault(var, var.declared_range())
    return frozenset(found)


def infer_bounds(
    stages: list[Stage],
    bodies: Mapping[ComputeOp, tuple[Expr, ...]],
    scan_time: Mapping[Stage, Var],
    bounds: Bounds,
) -> dict[Stage, StageBound]:
    """Bounds of every scheduled (non-inlined, non-placeholder) stage. ``scan_time`` maps the update stage of each
    scan to the scan's time variable."""
    result: dict[Stage, StageBound] = {}
    size_vars = declare_size_vars(stages, bounds)
    loop_extents: dict[Var, Expr] = {}
    for stage in reversed(stages):
        if stage.is_placeholder or stage.attach_type is AttachType.INLINE:
            continue
        bound = StageBound()
        if stage.attach_type is AttachType.SCOPE:
            consumer_bodies = {}
            for consumer in stage.schedule.readers(stage):
                body = bodies.get(consumer.op)  # type: ignore[call-overload]
                if consumer not in result or body is None:
                    raise ScheduleError(
                        f"stage {stage.name}: compute_at: its reader {consumer.name} is not a scheduled compute stage")
                consumer_bodies[consumer] = body
            region = infer_attached_region(stage, consumer_bodies, result, bounds, size_vars, loop_extents)
            bound.region = region
            domain = full_domain(stage)
            for index, iv in enumerate(stage.root_iter_vars):
                if index < len(region):
                    bound.root[iv] = Range(region[index][0], region[index][1])
                else:
                    bound.root[iv] = domain[iv]
        else:
            bound.root = full_domain(stage)
            if stage in scan_time:
                first = stage.root_iter_vars[0]
                bound.root[first] = Range(scan_time[stage], convert(1))
        pass_down_extents(stage, bound, bounds)
        if isinstance(stage.op, ScanOp):  # the time loop starts at the first row: its range lives in bounds alone
            _record_scan_bound(stage.op.scan_axis, bounds)
        else:
            loop_extents.update((leaf.var, bound.extent[leaf]) for leaf in stage.leaf_iter_vars)
        result[stage] = bound
    return result
