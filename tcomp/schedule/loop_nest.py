"""Lowering a schedule to the loop IR (the ``tir`` stage of a build): ``lower_schedule(schedule, args, name)``.

Steps: substitute inlined stages into their readers (``inline.py``); give every tensor storage (function parameters
for the arguments, heap buffers for other root stages, local buffers at the attach point for stages computed at
another); infer bounds; build each stage's loop nest from its leaf axes (guarding iterations that fall outside the
domain); place attached stages inside their consumer's loop; wrap root temporaries in allocations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tcomp.arith import can_prove, simplify
from tcomp.ir import dtype as dt
from tcomp.ir.buffer import Buffer
from tcomp.ir.expr import (
    BufferLoad,
    Expr,
    IterKind,
    IterVar,
    ProducerLoad,
    Reduce,
    Var,
    const,
    const_int_value,
    convert,
    logical_and,
)
from tcomp.ir.functor import Mutator, combine_with, free_vars, substitute
from tcomp.ir.stmt import (
    Allocate,
    BufferStore,
    For,
    ForKind,
    IfThenElse,
    PrimFunc,
    Stmt,
    seq,
)
from tcomp.schedule.bound import Bounds, StageBound, infer_bounds, pass_up_index
from tcomp.schedule.cross_thread import cross_thread_leaf, lower_cross_thread_reduce
from tcomp.schedule.inline import inline_bodies
from tcomp.schedule.relation import AttachType, ScheduleError, Split
from tcomp.schedule.schedule import Schedule
from tcomp.schedule.stage import Stage
from tcomp.schedule.tensorize import Matcher, TensorizeError, make_region
from tcomp.te.tensor import ComputeOp, PlaceholderOp, ScanOp, Tensor


class LoweringError(ValueError):
    """A schedule or compute that cannot be lowered; the message says which stage and why."""


@dataclass
class Storage:
    """Where a tensor lives: ``buffer``, holding the region that starts at ``offset`` per dimension."""

    buffer: Buffer
    offset: tuple[Expr, ...] | None = None


class _LoadRewriter(Mutator):
    """Tensor reads -> buffer reads, relative to each storage's offset."""

    def __init__(self, storage: dict[Tensor, Storage], stage_name: str) -> None:
        self.storage = storage
        self.stage_name = stage_name

    def visit_ProducerLoad(self, node: ProducerLoad) -> Expr:
        indices = tuple(self.visit(i) for i in node.indices)
        store = self.storage.get(node.producer)
        if store is None:
            raise LoweringError(f"stage {self.stage_name}: reads tensor {node.producer.name}, which has no storage")
        if store.offset is not None:
            indices = tuple(i - o for i, o in zip(indices, store.offset))
        return BufferLoad(store.buffer, indices, node.dtype)


class Lowerer:
    def __init__(self, schedule: Schedule, args: Sequence[Tensor], name: str) -> None:
        self.schedule = schedule
        self.args = list(args)
        self.name = name
        self.bounds: Bounds = {}
        self.storage: dict[Tensor, Storage] = {}
        self.root_allocs: list[Buffer] = []
        self.attached: dict[Stage, list[Stage]] = {}
        self.stage_bounds: dict[Stage, StageBound] = {}

    # -- setup ------------------------------------------------------------------------------------------------------
    def check_args(self) -> list[Buffer]:
        params: list[Buffer] = []
        seen: set[int] = set()
        self.args = [self.schedule.resolve(a) if isinstance(a, Tensor) else a for a in self.args]
        for arg in self.args:
            if not isinstance(arg, Tensor):
                raise LoweringError(f"lower {self.name}: argument {arg!r} is not a tensor")
            if id(arg) in seen:
                raise LoweringError(f"lower {self.name}: tensor {arg.name} is listed twice in the arguments")
            seen.add(id(arg))
            buffer = Buffer(arg.name, arg.shape, arg.dtype, "global", dt.storage_bytes(arg.dtype))
            self.storage[arg] = Storage(buffer)
            params.append(buffer)
        names = [b.name for b in params]
        for n in names:
            if names.count(n) > 1:
                raise LoweringError(f"lower {self.name}: two arguments are named {n!r}; give tensors distinct names")
        return params

    def scan_state_tensors(self) -> dict[Tensor, Tensor]:
        mapping: dict[Tensor, Tensor] = {}
        for stage in self.schedule.stages:
            if isinstance(stage.op, ScanOp):
                mapping[stage.op.state_placeholder] = stage.op.output(0)
        return mapping

    def assign_storage(self) -> None:
        state_of = self.scan_state_tensors()
        for stage in self.schedule.stages:
            if stage.attach_type is AttachType.INLINE:
                continue
            for tensor in stage.op.outputs:
                if tensor in self.storage or tensor in state_of:
                    continue
                if isinstance(stage.op, PlaceholderOp):
                    raise LoweringError(
                        f"lower {self.name}: input {tensor.name} is read but not in the argument list"
                    )
                if stage.scan_parent is not None:
                    continue
                if stage.attach_type is AttachType.SCOPE:
                    self.attach_storage(stage)  # allocated at the attach point
                    continue
                strides = aligned_strides(stage, tensor.shape)
                buffer = Buffer(tensor.name, tensor.shape, tensor.dtype, stage.scope, 64, strides)
                self.storage[tensor] = Storage(buffer)
                self.root_allocs.append(buffer)
        for state, scan_out in state_of.items():
            self.storage[state] = self.storage[scan_out]
        for stage in self.schedule.stages:
            parent = stage.scan_parent
            if parent is not None:
                self.storage[stage.op.output(0)] = self.storage[parent.op.output(0)]

    # -- loop nests ------------------------------------------------------------------------------------------------
    def lower(self) -> PrimFunc:
        params = self.check_args()
        bodies = inline_bodies(self.schedule)
        scan_time = {}
        for stage in self.schedule.stages:
            if isinstance(stage.op, ScanOp):
                scan_time[self.schedule[stage.op.update]] = stage.op.scan_axis.var
        for stage in self.schedule.stages:
            if stage.attach_type is AttachType.SCOPE:
                assert stage.attach_stage is not None
                if stage.attach_stage.attach_type is AttachType.INLINE:
                    raise ScheduleError(
                        f"stage {stage.name}: compute_at: stage {stage.attach_stage.name} was inlined afterwards"
                    )
                self.attached.setdefault(stage.attach_stage, []).append(stage)
        self.stage_bounds = infer_bounds(self.schedule.stages, bodies, scan_time, self.bounds)
        self.bodies = bodies
        self.assign_storage()
        top: list[Stmt] = []
        for stage in self.schedule.stages:
            if stage.is_placeholder or stage.attach_type is not AttachType.ROOT:
                continue
            if stage.scan_parent is not None:
                continue
            top.append(self.stage_nest(stage))
        body = seq(*top)
        for buffer in reversed(self.root_allocs):
            body = Allocate(buffer, body)
        size_vars = _size_vars(params)
        outputs = tuple(i for i, a in enumerate(self.args) if not isinstance(a.op, PlaceholderOp))
        func = PrimFunc(self.name, tuple(params), body, size_vars)
        return func.with_attr("output_buffers", outputs)

    def stage_nest(self, stage: Stage) -> Stmt:
        if isinstance(stage.op, ScanOp):
            return self.scan_nest(stage)
        if not isinstance(stage.op, ComputeOp):
            raise LoweringError(f"stage {stage.name}: cannot lower operation {type(stage.op).__name__}")
        return self.compute_nest(stage)

    def scan_nest(self, stage: Stage) -> Stmt:
        op = stage.op
        assert isinstance(op, ScanOp)
        init = self.compute_nest(self.schedule[op.init])
        update = self.compute_nest(self.schedule[op.update])
        axis = op.scan_axis
        assert axis.dom is not None
        loop = For(axis.var, axis.dom.min, axis.dom.extent, ForKind.SERIAL, update)
        return seq(init, loop)

    def attach_storage(self, stage: Stage) -> Buffer:
        bound = self.stage_bounds[stage]
        assert bound.region is not None
        tensor = stage.op.output(0)
        scope = stage.scope if stage.scope != "global" else "local"
        shape = tuple(ext for _, ext in bound.region)
        buffer = Buffer(tensor.name, shape, tensor.dtype, scope, 64, aligned_strides(stage, shape))
        self.storage[tensor] = Storage(buffer, tuple(mn for mn, _ in bound.region))
        return buffer

    def compute_nest(self, stage: Stage) -> Stmt:
        op = stage.op
        assert isinstance(op, ComputeOp)
        bound = self.stage_bounds[stage]
        tensor = op.output(0)
        leaves = stage.leaf_iter_vars
        values = pass_up_index(stage, bound, {leaf: leaf.var for leaf in leaves})
        absolute: dict[Var, Expr] = {}
        for root in stage.root_iter_vars:
            rng = bound.root[root]
            absolute[root.var] = simplify(rng.min + values[root], self.bounds)
        guards = self.guards(stage, bound, values, absolute)
        body_expr = self.bodies[op][0]
        store_storage = self.storage[tensor]
        indices = tuple(absolute[iv.var] for iv in op.axis)
        if store_storage.offset is not None:
            indices = tuple(simplify(i - o, self.bounds) for i, o in zip(indices, store_storage.offset))
        rewriter = _LoadRewriter(self.storage, stage.name)

        def load(expr: Expr) -> Expr:
            return rewriter.visit(substitute(expr, absolute))

        buffer = store_storage.buffer
        tensorized = next(
            (i for i, lv in enumerate(leaves) if lv in stage.iter_attrs and stage.iter_attrs[lv].tensor_intrin),
            None,
        )
        if tensorized is not None:
            return self.tensorized_nest(stage, bound, tensorized, absolute, guards)
        if isinstance(body_expr, Reduce):
            return self.reduce_nest(stage, bound, body_expr, buffer, indices, guards, load)
        store = BufferStore(buffer, load(body_expr), indices)
        return self.build_nest(stage, bound, leaves, store, guards)

    def reduce_nest(
        self,
        stage: Stage,
        bound: StageBound,
        reduce: Reduce,
        buffer: Buffer,
        indices: tuple[Expr, ...],
        guards: list[tuple[Expr, set[int]]],
        load: object,
    ) -> Stmt:
        if cross_thread_leaf(stage) is not None:
            return lower_cross_thread_reduce(self, stage, bound, reduce, buffer, indices, guards, load)  # type: ignore[arg-type]
        leaves = stage.leaf_iter_vars
        first_reduce = next((i for i, lv in enumerate(leaves) if lv.kind is IterKind.REDUCE), len(leaves))
        common = leaves[:first_reduce]
        inner = leaves[first_reduce:]
        init_value = reduce.combiner.identity if reduce.init is None else reduce.init
        init_value = load(init_value)  # type: ignore[operator]
        init_store = BufferStore(buffer, init_value, indices)
        current = BufferLoad(buffer, indices, reduce.dtype)
        update_value = combine_with(reduce.combiner, current, load(reduce.source))  # type: ignore[operator]
        update: Stmt = BufferStore(buffer, update_value, indices)
        if reduce.condition is not None:
            update = IfThenElse(load(reduce.condition), update)  # type: ignore[operator]
        return self.init_update_nest(stage, bound, common, inner, init_store, update, guards)

    def init_update_nest(
        self,
        stage: Stage,
        bound: StageBound,
        common: Sequence[IterVar],
        inner: Sequence[IterVar],
        init: Stmt,
        update: Stmt,
        guards: list[tuple[Expr, set[int]]],
    ) -> Stmt:
        """``common`` loops around an init nest (the data-parallel leaves of ``inner``) followed by the update
        nest (all of ``inner``). Guards that use only ``common`` leaves wrap both (outside GPU kernels); guards on
        reduction leaves go to the update nest only. Attached stages go to the update nest only: they may read the
        reduction variables."""
        common_ids = {id(lv.var) for lv in common}
        common_guards = [g for g in guards if g[1] <= common_ids and not in_gpu_kernel(stage)]
        inner_guards = [g for g in guards if g not in common_guards]
        reduce_ids = {id(lv.var) for lv in inner if lv.kind is IterKind.REDUCE}
        init_guards = [g for g in inner_guards if not (g[1] & reduce_ids)]
        init_leaves = [lv for lv in inner if lv.kind is not IterKind.REDUCE]
        init_nest = self.build_nest(stage, bound, init_leaves, init, init_guards, attach=False)
        update_nest = self.build_nest(stage, bound, inner, update, inner_guards)
        return self.build_nest(stage, bound, common, seq(init_nest, update_nest), common_guards)

    def tensorized_nest(
        self,
        stage: Stage,
        bound: StageBound,
        position: int,
        absolute: dict[Var, Expr],
        guards: list[tuple[Expr, set[int]]],
    ) -> Stmt:
        """The stage's nest with the leaves from ``position`` inward replaced by a tensor intrinsic."""
        op = stage.op
        assert isinstance(op, ComputeOp)
        leaves = stage.leaf_iter_vars
        axis = leaves[position]
        intrin = stage.iter_attrs[axis].tensor_intrin
        inner, outer = leaves[position:], leaves[:position]
        inner_ids = {id(lv.var) for lv in inner}
        prefix = f"stage {stage.name}: tensorize with {intrin.name}"
        for cond, used in guards:
            if used & inner_ids and not intrin.partial:
                raise TensorizeError(
                    f"{prefix}: the loop nest under axis {axis.var.name} needs the bounds guard {cond} "
                    "(an extent the split factor does not divide); the intrinsic covers whole tiles only"
                )
        spatial = [lv for lv in inner if lv.kind is not IterKind.REDUCE]
        reduces = [lv for lv in inner if lv.kind is IterKind.REDUCE]
        intrin_spatial = list(intrin.axis)
        var_map: dict[Var, Expr] = {}
        if len(spatial) < len(intrin_spatial):
            # intrinsic axes of extent 1 need no loop of their own
            for iv in list(intrin_spatial):
                if len(spatial) < len(intrin_spatial) and intrin.extents((iv,))[0] == 1:
                    intrin_spatial.remove(iv)
                    var_map[iv.var] = const(0)
        if len(spatial) != len(intrin_spatial) or len(reduces) != len(intrin.reduce_axis):
            raise TensorizeError(
                f"{prefix}: the nest under axis {axis.var.name} has {len(spatial)} data-parallel and {len(reduces)} "
                f"reduction loops, the intrinsic {len(intrin.axis)} and {len(intrin.reduce_axis)}"
            )
        for lv, iv in zip(spatial + reduces, tuple(intrin_spatial) + intrin.reduce_axis):
            want = intrin.extents((iv,))[0]
            have = const_int_value(simplify(bound.extent[lv], self.bounds))
            if have != want:
                raise TensorizeError(
                    f"{prefix}: loop {lv.var.name} has extent {bound.extent[lv]}, "
                    f"intrinsic axis {iv.var.name} has {want}"
                )
            var_map[iv.var] = lv.var
        zero_map: dict[Var, Expr] = {lv.var: const(0) for lv in inner}
        matcher = Matcher(stage.name, intrin, var_map, zero_map, self.bounds)
        body = substitute(self.bodies[op][0], absolute)
        matcher.match(body, intrin.op.body[0])
        out_indices = tuple(absolute[iv.var] for iv in op.axis)
        intrin_out = tuple(iv.var for iv in intrin.axis)
        out_start = matcher.region_start(out_indices, intrin_out, f"write of {stage.name}")
        ins = []
        for placeholder in intrin.inputs:
            read = matcher.reads.get(placeholder)
            if read is None:
                raise TensorizeError(f"{prefix}: the nest does not read anything as intrinsic input {placeholder.name}")
            store = self.storage[read.tensor]
            ins.append(make_region(store.buffer, read.start, store.offset, placeholder.shape))
        out_store = self.storage[op.output(0)]
        outs = [make_region(out_store.buffer, out_start, out_store.offset, intrin.op.output(0).shape)]
        lowered = intrin.lower(ins, outs)
        full, reset, update = (lowered, None, None) if isinstance(lowered, Stmt) else lowered
        outer_guards = [g for g in guards if not g[1] & inner_ids]
        first_reduce = next((i for i, lv in enumerate(leaves) if lv.kind is IterKind.REDUCE), len(leaves))
        if not op.is_reduction or position <= first_reduce or self._single_pass(bound, leaves[first_reduce:position]):
            return self.build_nest(stage, bound, outer, full, outer_guards)
        if reset is None or update is None:
            raise TensorizeError(
                f"{prefix}: reduction loops outside axis {axis.var.name} need the intrinsic to return "
                "(body, reset, update)"
            )
        common = leaves[:first_reduce]
        middle = leaves[first_reduce:position]
        # the reset runs outside the reduction loops: their variables are 0 there (inputs are not read)
        reset = substitute(reset, {lv.var: const(0) for lv in middle if lv.kind is IterKind.REDUCE})
        return self.init_update_nest(stage, bound, common, middle, reset, update, outer_guards)

    def _single_pass(self, bound: StageBound, loops: Sequence[IterVar]) -> bool:
        """Whether every reduction loop of ``loops`` (those outside a tensorized axis) runs once: the intrinsic's
        body then computes each tile from scratch, with no reset pass over the output before it."""
        return all(const_int_value(simplify(bound.extent[lv], self.bounds)) == 1
                   for lv in loops if lv.kind is IterKind.REDUCE)

    def guards(
        self,
        stage: Stage,
        bound: StageBound,
        values: dict[IterVar, Expr],
        absolute: dict[Var, Expr],
    ) -> list[tuple[Expr, set[int]]]:
        """Conditions that keep iterations inside the domain, each with the ids of the leaf variables it uses."""
        conditions: list[Expr] = []
        for root in stage.root_iter_vars:
            value = values[root]
            leaf = next((lv for lv in stage.leaf_iter_vars if lv.var is value), None)
            if leaf is None or bound.extent[leaf] is not bound.root[root].extent:
                conditions.append(value < bound.root[root].extent)
            if stage.attach_type is AttachType.SCOPE and root.dom is not None:
                conditions.append(absolute[root.var] >= root.dom.min)
                conditions.append(absolute[root.var] < root.dom.min + root.dom.extent)
        # a split of a non-root axis whose factor does not divide its extent overshoots it: guard those too
        roots = set(map(id, stage.root_iter_vars))
        for rel in stage.relations:
            if isinstance(rel, Split) and id(rel.parent) not in roots:
                conditions.append(values[rel.parent] < bound.extent[rel.parent])
        leaf_ids = {id(lv.var) for lv in stage.leaf_iter_vars}
        result: list[tuple[Expr, set[int]]] = []
        for cond in conditions:
            cond = simplify(cond, self.bounds)
            if can_prove(cond, self.bounds):
                continue
            used = {id(v) for v in free_vars(cond) if id(v) in leaf_ids}
            result.append((cond, used))
        return result

    def build_nest(
        self,
        stage: Stage,
        bound: StageBound,
        leaves: Sequence[IterVar],
        core: Stmt,
        guards: list[tuple[Expr, set[int]]],
        attach: bool = True,
    ) -> Stmt:
        """Wrap ``core`` in loops over ``leaves`` (outermost first), each guard right inside the innermost loop it
        uses and each attached stage at the start of its loop's body. In a GPU kernel every guard wraps ``core``
        alone (as in TVM): attached stages then run in all threads, so barriers among them are never divergent."""
        position = {id(lv.var): i for i, lv in enumerate(leaves)}
        placed: dict[int, list[Expr]] = {}
        innermost = len(leaves) - 1 if in_gpu_kernel(stage) else None
        for cond, used in guards:
            depth = max((position[u] for u in used if u in position), default=-1)
            placed.setdefault(depth if innermost is None else innermost, []).append(cond)
        stmt = core
        for index in range(len(leaves) - 1, -2, -1):
            conds = placed.get(index, [])
            if conds:
                condition = conds[0]
                for c in conds[1:]:
                    condition = logical_and(condition, c)
                stmt = IfThenElse(condition, stmt)
            if index < 0:
                break
            leaf = leaves[index]
            if attach:
                stmt = self.attach_at(stage, leaf, stmt)
            stmt = self.make_loop(stage, bound, leaf, stmt)
        return stmt

    def attach_at(self, stage: Stage, leaf: IterVar, stmt: Stmt) -> Stmt:
        producers = [p for p in self.attached.get(stage, []) if p.attach_ivar is leaf]
        if not producers:
            return stmt
        buffers = [self.storage[p.op.output(0)].buffer for p in producers]
        nests = [self.stage_nest(p) for p in producers]
        result = seq(*nests, stmt)
        for buffer in reversed(buffers):
            result = Allocate(buffer, result)
        return result

    def make_loop(self, stage: Stage, bound: StageBound, leaf: IterVar, body: Stmt) -> For:
        attr = stage.iter_attrs.get(leaf)
        kind = ForKind.SERIAL if attr is None else attr.kind
        extent = bound.extent[leaf]
        tag = ""
        notes: tuple[tuple[str, object], ...] = ()
        if attr is not None:
            notes = tuple(attr.pragmas)
            if attr.bind_thread is not None:
                tag = attr.bind_thread.thread_tag
        if kind is ForKind.VECTORIZED and const_int_value(extent) is None:
            raise ScheduleError(
                f"stage {stage.name}: vectorize: axis {leaf.var.name}: extent {extent} is not a constant"
            )
        return For(leaf.var, const(0), extent, kind, body, tag, notes)


def in_gpu_kernel(stage: Stage) -> bool:
    """Whether ``stage`` runs inside a GPU kernel: it, or a stage it is computed at, binds a loop to a thread."""
    current: Stage | None = stage
    while current is not None:
        if any(attr.bind_thread is not None for attr in current.iter_attrs.values()):
            return True
        current = current.attach_stage if current.attach_type is AttachType.SCOPE else None
    return False


def aligned_strides(stage: Stage, shape: tuple[Expr, ...]) -> tuple[Expr, ...] | None:
    """Row-major strides with the padding ``storage_align`` asked for, or None for a compact buffer."""
    if not stage.storage_aligns:
        return None
    align = {dim: (factor, offset) for dim, factor, offset in stage.storage_aligns}
    strides: list[Expr] = [const(1)] * len(shape)
    for dim in range(len(shape) - 2, -1, -1):
        stride = simplify(strides[dim + 1] * shape[dim + 1])
        if dim in align:
            value = const_int_value(stride)
            if value is None:
                raise LoweringError(f"stage {stage.name}: storage_align: the stride of dimension {dim} is not constant")
            factor, offset = align[dim]
            stride = const(value + (offset - value) % factor)
        strides[dim] = stride
    return tuple(strides)


def _size_vars(params: Sequence[Buffer]) -> tuple[Var, ...]:
    found: list[Var] = []
    for buffer in params:
        for dim in buffer.shape:
            for v in free_vars(dim):
                if not any(v is f for f in found):
                    found.append(v)
    return tuple(found)


def lower_schedule(schedule: Schedule, args: Sequence[Tensor], name: str = "main") -> PrimFunc:
    """The loop IR of ``schedule`` as a function of ``args`` (inputs and outputs, in call order)."""
    if not isinstance(schedule, Schedule):
        raise TypeError(f"lower: expected a Schedule, got {type(schedule).__name__}")
    return Lowerer(schedule, args, name).lower()


_ = convert
