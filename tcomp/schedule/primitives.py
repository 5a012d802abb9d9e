"""Schedule primitives on a stage. Each checks its arguments and legality, then updates the stage.

Rewrite rules (``E`` is the extent of the axis being rewritten):
- ``split(x, factor=f)``: ``x -> (x.outer in [0, ceil(E/f)), x.inner in [0, f))`` with ``x = x.outer * f + x.inner``;
  iterations with ``x >= E`` are guarded off. ``nparts=p`` fixes the outer extent instead.
- ``fuse(x, y)`` (adjacent, ``x`` outside ``y``): ``f in [0, Ex * Ey)``, ``x = f // Ey``, ``y = f % Ey``; ``f`` is
  64-bit when ``Ex * Ey`` may exceed 2^31 - 1 (symbolic extents by their declared ranges).
- ``reorder(a, b, ...)``: the listed leaves take the positions they occupied, in the order given.
- ``tile(x, y, fx, fy)`` = ``split(x, fx)``, ``split(y, fy)``, ``reorder(xo, yo, xi, yi)``.
- ``vectorize`` / ``unroll`` / ``parallel`` / ``bind`` set a leaf's loop kind; ``pragma`` adds an annotation.
- ``compute_inline`` substitutes the stage's body into its readers; ``compute_at(parent, axis)`` computes, at the
  start of each iteration of ``parent``'s loop ``axis``, the region its readers need during that iteration;
  ``compute_root`` undoes either. Every reader must run inside that loop: ``parent`` itself, or a stage computed,
  directly or through other stages, at ``axis`` or at a loop inside it (so a softmax's max, exp and sum can all be
  computed at the output's row loop). ``parent`` must read the stage, directly or through others; lowering checks
  the readers (they may be placed after this call) and raises ``ScheduleError`` naming one that runs outside.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tcomp.arith import declared_upper_bound
from tcomp.ir.expr import Expr, IterKind, IterVar, Var, const_int_value, convert
from tcomp.ir.stmt import ForKind
from tcomp.schedule.relation import AttachType, Fuse, Split, schedule_error
from tcomp.te.intrin import TensorIntrin
from tcomp.te.tensor import ComputeOp, PlaceholderOp, Tensor

if TYPE_CHECKING:
    from tcomp.schedule.stage import Stage


def _positive_int(stage: Stage, primitive: str, axis: IterVar, name: str, value: Any) -> Expr:
    if isinstance(value, bool) or not isinstance(value, (int, Expr)):
        raise schedule_error(stage, primitive, axis, f"{name} must be a positive integer, got {value!r}")
    expr = convert(value)
    constant = const_int_value(expr)
    if constant is not None and constant <= 0:
        raise schedule_error(stage, primitive, axis, f"{name} must be a positive integer, got {constant}")
    return expr


class StagePrimitives:
    """Primitives, mixed into ``Stage``."""

    # -- loop structure -----------------------------------------------------------------------------------------------
    def split(self: Any, axis: IterVar, factor: Any = None, nparts: Any = None) -> tuple[IterVar, IterVar]:
        stage: Stage = self
        _check_schedulable(stage, "split")
        index = stage.leaf_index(axis, "split")
        if (factor is None) == (nparts is None):
            raise schedule_error(stage, "split", axis, "give exactly one of factor= or nparts=")
        factor_expr = None if factor is None else _positive_int(stage, "split", axis, "factor", factor)
        nparts_expr = None if nparts is None else _positive_int(stage, "split", axis, "nparts", nparts)
        if stage.iter_attrs.get(axis) is not None and stage.iter_attrs[axis].kind is not ForKind.SERIAL:
            raise schedule_error(
                stage, "split", axis, f"is already annotated {stage.iter_attrs[axis].kind.value}; split it first"
            )
        outer = IterVar(Var(f"{axis.var.name}.outer", axis.var.dtype), None, axis.kind)
        inner = IterVar(Var(f"{axis.var.name}.inner", axis.var.dtype), None, axis.kind)
        stage.relations.append(Split(axis, outer, inner, factor_expr, nparts_expr))
        stage.all_iter_vars.extend((outer, inner))
        stage.leaf_iter_vars[index : index + 1] = [outer, inner]
        return outer, inner

    def fuse(self: Any, *axes: IterVar) -> IterVar:
        stage: Stage = self
        _check_schedulable(stage, "fuse")
        if len(axes) == 1 and isinstance(axes[0], (list, tuple)):
            axes = tuple(axes[0])
        if not axes:
            raise schedule_error(stage, "fuse", None, "needs at least one axis")
        if len(axes) == 1:
            stage.leaf_index(axes[0], "fuse")
            return axes[0]
        positions = [stage.leaf_index(a, "fuse") for a in axes]
        for (a, pa), (b, pb) in zip(zip(axes, positions), zip(axes[1:], positions[1:])):
            if pb != pa + 1:
                raise schedule_error(
                    stage,
                    "fuse",
                    b,
                    f"is not adjacent to {a.var.name} in the loop order "
                    f"({', '.join(iv.var.name for iv in stage.leaf_iter_vars)}); fuse needs consecutive axes, "
                    "outermost first",
                )
            if (a.kind is IterKind.REDUCE) != (b.kind is IterKind.REDUCE):
                raise schedule_error(stage, "fuse", b, "cannot fuse a data-parallel axis with a reduction axis")
        for a in axes:
            attr = stage.iter_attrs.get(a)
            if attr is not None and attr.kind is not ForKind.SERIAL:
                raise schedule_error(stage, "fuse", a, f"is already annotated {attr.kind.value}")
        fused = axes[0]
        for inner in axes[1:]:
            dtype = "int64" if "int64" in (fused.var.dtype, inner.var.dtype) else "int32"
            if not _fits_int32(_extent_bound(stage, fused), _extent_bound(stage, inner)):
                dtype = "int64"  # the fused loop can run past 2^31 iterations
            new = IterVar(Var(f"{fused.var.name}.{inner.var.name}.fused", dtype), None, fused.kind)
            stage.relations.append(Fuse(fused, inner, new))
            stage.all_iter_vars.append(new)
            pos = stage.leaf_index(fused, "fuse")
            stage.leaf_iter_vars[pos : pos + 2] = [new]
            fused = new
        return fused

    def reorder(self: Any, *axes: IterVar) -> None:
        stage: Stage = self
        _check_schedulable(stage, "reorder")
        if len(axes) == 1 and isinstance(axes[0], (list, tuple)):
            axes = tuple(axes[0])
        positions = [stage.leaf_index(a, "reorder") for a in axes]
        if len(set(positions)) != len(positions):
            dup = next(a for i, a in enumerate(axes) if positions.index(positions[i]) != i)
            raise schedule_error(stage, "reorder", dup, "is listed more than once")
        for position, axis in zip(sorted(positions), axes):
            stage.leaf_iter_vars[position] = axis

    def tile(
        self: Any, x_parent: IterVar, y_parent: IterVar, x_factor: Any, y_factor: Any
    ) -> tuple[IterVar, IterVar, IterVar, IterVar]:
        stage: Stage = self
        xo, xi = stage.split(x_parent, factor=x_factor)
        yo, yi = stage.split(y_parent, factor=y_factor)
        stage.reorder(xo, yo, xi, yi)
        return xo, yo, xi, yi

    # -- loop annotations -------------------------------------------------------------------------------------------
    def _annotate(self: Any, axis: IterVar, kind: ForKind, primitive: str, cross_thread: bool = False) -> None:
        stage: Stage = self
        _check_schedulable(stage, primitive)
        stage.leaf_index(axis, primitive)
        parallel_kinds = (ForKind.PARALLEL, ForKind.VECTORIZED, ForKind.THREAD_BINDING)
        if axis.kind is IterKind.REDUCE and kind in parallel_kinds and not cross_thread:
            raise schedule_error(
                stage,
                primitive,
                axis,
                "is a reduction axis: its iterations update the same element, so they cannot run in parallel "
                "(use rfactor first)",
            )
        attr = stage.attr(axis)
        if attr.kind is not ForKind.SERIAL and attr.kind is not kind:
            raise schedule_error(stage, primitive, axis, f"is already annotated {attr.kind.value}")
        attr.kind = kind

    def vectorize(self: Any, axis: IterVar) -> None:
        self._annotate(axis, ForKind.VECTORIZED, "vectorize")

    def unroll(self: Any, axis: IterVar) -> None:
        self._annotate(axis, ForKind.UNROLLED, "unroll")

    def parallel(self: Any, axis: IterVar) -> None:
        self._annotate(axis, ForKind.PARALLEL, "parallel")

    def bind(self: Any, axis: IterVar, thread: IterVar) -> None:
        """Run the iterations of ``axis`` on the GPU threads ``thread`` (a ``te.thread_axis``). A reduction axis may
        be bound to a ``threadIdx`` axis only: the threads then combine their partial results (a cross-thread
        reduction, see ``cross_thread.py``)."""
        stage: Stage = self
        if not isinstance(thread, IterVar) or thread.kind is not IterKind.THREAD:
            raise schedule_error(stage, "bind", axis, f"expected a te.thread_axis, got {thread!r}")
        for other, attr in stage.iter_attrs.items():
            if attr.bind_thread is not None and attr.bind_thread.thread_tag == thread.thread_tag and other is not axis:
                raise schedule_error(
                    stage, "bind", axis, f"thread {thread.thread_tag} is already bound to axis {other.var.name}"
                )
        previous = stage.iter_attrs.get(axis)
        if previous is not None and previous.bind_thread is not None:
            raise schedule_error(stage, "bind", axis, f"is already bound to {previous.bind_thread.thread_tag}")
        cross_thread = axis.kind is IterKind.REDUCE and thread.thread_tag.startswith("threadIdx.")
        if cross_thread and any(
            a.bind_thread is not None and lv.kind is IterKind.REDUCE for lv, a in stage.iter_attrs.items()
        ):
            raise schedule_error(stage, "bind", axis, "another reduction axis is already bound to a thread")
        self._annotate(axis, ForKind.THREAD_BINDING, "bind", cross_thread)
        stage.attr(axis).bind_thread = thread

    def pragma(self: Any, axis: IterVar, key: str, value: Any = True) -> None:
        stage: Stage = self
        stage.leaf_index(axis, "pragma")
        if not isinstance(key, str) or not key:
            raise schedule_error(stage, "pragma", axis, f"pragma key must be a non-empty string, got {key!r}")
        stage.attr(axis).pragmas.append((key, value))

    def tensorize(self: Any, axis: IterVar, intrin: Any) -> None:
        """Replace the loop nest from ``axis`` inward by the tensor intrinsic ``intrin`` (checked when lowering:
        the nest must compute exactly what the intrinsic declares)."""
        stage: Stage = self
        _check_schedulable(stage, "tensorize")
        stage.leaf_index(axis, "tensorize")
        if not isinstance(intrin, TensorIntrin):
            raise schedule_error(stage, "tensorize", axis, f"expected a te.decl_tensor_intrin result, got {intrin!r}")
        for other, attr in stage.iter_attrs.items():
            if attr.tensor_intrin is not None and other is not axis:
                raise schedule_error(stage, "tensorize", axis, f"axis {other.var.name} is already tensorized")
        stage.attr(axis).tensor_intrin = intrin

    def storage_align(self: Any, axis: IterVar, factor: int, offset: int) -> None:
        """Pad the stride of ``axis``'s dimension of this stage's buffer to ``k * factor + offset`` elements (to
        spread rows over memory banks or cache sets). Applies to the stage's own (non-argument) storage."""
        stage: Stage = self
        _check_schedulable(stage, "storage_align")
        dims = [i for i, iv in enumerate(stage.op.axis) if iv is axis]
        if not dims:
            raise schedule_error(stage, "storage_align", axis, "is not a data-parallel root axis of this stage")
        for name, value in (("factor", factor), ("offset", offset)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise schedule_error(stage, "storage_align", axis, f"{name} must be an integer, got {value!r}")
        if factor <= 0 or not 0 <= offset < factor:
            raise schedule_error(
                stage, "storage_align", axis, f"needs factor > 0 and 0 <= offset < factor, got {factor}, {offset}"
            )
        stage.storage_aligns.append((dims[0], factor, offset))

    def double_buffer(self: Any) -> None:
        """Keep two copies of this stage's storage where it is computed at a loop (a GPU kernel's shared-memory
        tile): the copy for the next iteration is filled while the current one is read, so the loads of the next
        tile overlap the computation on this one, and one barrier per iteration suffices. Applied by the CUDA
        backend (``transform/double_buffer.py``)."""
        stage: Stage = self
        _check_schedulable(stage, "double_buffer")
        stage.double_buffered = True

    # -- placement ---------------------------------------------------------------------------------------------------
    def compute_inline(self: Any) -> None:
        stage: Stage = self
        if not isinstance(stage.op, ComputeOp):
            raise schedule_error(stage, "compute_inline", None, "only a compute stage can be inlined")
        if stage.is_reduction:
            raise schedule_error(stage, "compute_inline", None, "a reduction cannot be inlined into its readers")
        if stage.is_output:
            raise schedule_error(stage, "compute_inline", None, "an output of the schedule cannot be inlined")
        if stage.op.num_outputs != 1:
            raise schedule_error(stage, "compute_inline", None, "a stage with several outputs cannot be inlined")
        for other in stage.schedule.stages:
            if other.attach_stage is stage:
                raise schedule_error(
                    stage, "compute_inline", None, f"stage {other.name} is computed at one of its axes"
                )
        stage.attach_type = AttachType.INLINE
        stage.attach_stage = None
        stage.attach_ivar = None

    def compute_root(self: Any) -> None:
        stage: Stage = self
        _check_schedulable(stage, "compute_root")
        stage.attach_type = AttachType.ROOT
        stage.attach_stage = None
        stage.attach_ivar = None

    def compute_at(self: Any, parent: Stage, axis: IterVar) -> None:
        stage: Stage = self
        _check_schedulable(stage, "compute_at")
        if not isinstance(parent, StagePrimitives):  # every Stage is one
            raise schedule_error(stage, "compute_at", axis, f"expected a stage as parent, got {parent!r}")
        if parent is stage:
            raise schedule_error(stage, "compute_at", axis, "a stage cannot be computed at its own axis")
        if stage.is_output:
            raise schedule_error(stage, "compute_at", axis, "an output of the schedule must be computed at the root")
        if parent.attach_type is AttachType.INLINE:
            raise schedule_error(stage, "compute_at", axis, f"stage {parent.name} is inlined and has no loops")
        if not any(leaf is axis for leaf in parent.leaf_iter_vars):
            raise schedule_error(
                stage, "compute_at", axis, f"is not a leaf axis of stage {parent.name} (pass an axis of {parent.name})"
            )
        readers = stage.schedule.readers(stage)
        if not _reads_through(stage.schedule, parent, stage):
            raise schedule_error(
                stage, "compute_at", axis,
                f"stage {parent.name} does not read {stage.name}, directly or through other stages, so it cannot "
                "host it"
            )
        outputs = [r.name for r in readers if r is not parent and r.is_output]
        if outputs:
            raise schedule_error(
                stage,
                "compute_at",
                axis,
                f"{stage.name} is also read by {', '.join(outputs)}, an output computed at the root, outside "
                f"{parent.name}'s loop",
            )
        ancestor: Stage | None = parent
        while ancestor is not None:
            if ancestor.attach_stage is stage:
                raise schedule_error(stage, "compute_at", axis, f"would make a cycle through stage {ancestor.name}")
            ancestor = ancestor.attach_stage
        stage.attach_type = AttachType.SCOPE
        stage.attach_stage = parent
        stage.attach_ivar = axis


def _extent_bound(stage: Stage, axis: IterVar) -> int | None:
    """An upper bound of the extent of ``axis`` (a root axis: its domain's, symbolic dimensions in their declared
    ranges; split and fused axes: from their parents), or None when unbounded."""
    bounds: dict[IterVar, int | None] = {}
    for root in stage.root_iter_vars:
        bounds[root] = None if root.dom is None else declared_upper_bound(root.dom.extent)
    for rel in stage.relations:
        if isinstance(rel, Split):
            parent = bounds.get(rel.parent)
            factor = None if rel.factor is None else declared_upper_bound(rel.factor)
            parts = None if rel.nparts is None else declared_upper_bound(rel.nparts)
            bounds[rel.outer] = parts if rel.nparts is not None else parent
            bounds[rel.inner] = factor if rel.factor is not None else parent
        else:
            outer, inner = bounds.get(rel.outer), bounds.get(rel.inner)
            bounds[rel.fused] = None if outer is None or inner is None else outer * inner
    return bounds.get(axis)


def _fits_int32(*extents: int | None) -> bool:
    product = 1
    for extent in extents:
        if extent is None:
            return False
        product *= extent
    return product <= (1 << 31) - 1


def _reads_through(schedule: Any, reader: Stage, stage: Stage) -> bool:
    """Whether ``reader`` reads ``stage``'s output directly or through other stages."""
    seen: set[int] = set()
    pending = [stage]
    while pending:
        for other in schedule.readers(pending.pop()):
            if other is reader:
                return True
            if id(other) not in seen:
                seen.add(id(other))
                pending.append(other)
    return False


def _check_schedulable(stage: Stage, primitive: str) -> None:
    if isinstance(stage.op, PlaceholderOp):
        raise schedule_error(stage, primitive, None, "a placeholder (an input) has no loops to schedule")
    if stage.attach_type is AttachType.INLINE:
        raise schedule_error(stage, primitive, None, "the stage is inlined; call compute_root() first")


def as_tensor_list(values: Any) -> list[Tensor]:
    if isinstance(values, Tensor):
        return [values]
    return list(values)
