"""Row-wise normalizations in one pass per row: softmax, log_softmax, layer_norm, rms_norm and any group of the
same form.

A *row group* is one output stage ``O`` (elementwise, constant shape ``rows x cols``: its leading ``k`` axes are
the rows, the others the columns) whose body reads, directly or through inlined stages, a set of root stages that
are all row-local: reductions over the columns whose outputs are indexed by the rows (a row's maximum, sum, sum of
squares), and elementwise stages of ``O``'s shape (softmax's ``exp(x - max)``). Every read of one of them (in ``O``
or in another) indexes its leading ``k`` dimensions by the reader's own row variables, so row ``r`` of every stage
depends on row ``r`` of the others alone.

Schedule: the rows (fused) are ``O``'s parallel loop; every stage of the group is computed at that loop
(``compute_at``, consumers first), so a row is read from memory once and its statistics, temporaries and result
are computed while it sits in L1:

    for row in parallel:
      max = reduce(x[row, :])              # vector partial results (rfactor), then their reduction
      e[:] = exp(x[row, :] - max)          # a row buffer on the stack
      sum = reduce(e[:])
      y[row, :] = e[:] * (1 / sum)         # vectorized at the target's width

Reductions are factored into ``lanes`` vector partial results where the last reduced axis allows (a power of two
up to the vector width that divides it). Groups whose row temporaries exceed ``ROW_BUFFER_BYTES`` keep the
stage-by-stage schedule.
"""

from __future__ import annotations

from tcomp.ir import dtype as dt
from tcomp.ir.expr import IterKind, ProducerLoad
from tcomp.ir.functor import post_order_visit
from tcomp.ops.cpu.common import CpuTarget, dot_lanes, extents, parallel_fused, product, vector_factor
from tcomp.ops.utils import OpKind, op_kind
from tcomp.schedule.inline import inline_bodies
from tcomp.schedule.relation import AttachType
from tcomp.schedule.schedule import Schedule
from tcomp.schedule.stage import Stage
from tcomp.te.tensor import ComputeOp

# row temporaries (elementwise stages) up to this size per row live on the stack, in L1/L2
ROW_BUFFER_BYTES = 64 << 10
# independent vector accumulators of a row reduction (a vector add waits on the one before it in the same register)
ACCUMULATORS = 4
_ANCHOR_KINDS = (OpKind.MATMUL, OpKind.BATCH_MATMUL, OpKind.PACKED_MATVEC, OpKind.CONV2D_NCHW, OpKind.CONV2D_NCHWC,
                 OpKind.DEPTHWISE_CONV2D_NCHW, OpKind.POOL2D, OpKind.GLOBAL_POOL, OpKind.ATTENTION,
                 OpKind.CONV2D_WINOGRAD)


def schedule_rows(s: Schedule, cpu: CpuTarget) -> bool:
    """Schedule ``s`` (its injective stages already inlined) as a row group when it is one; returns whether it
    was."""
    group = _row_group(s)
    if group is None:
        return False
    out, members, rows = group
    op = out.op
    assert isinstance(op, ComputeOp)
    sizes = extents(op.axis)
    assert sizes is not None
    lanes = cpu.lanes(op.output(0).dtype)
    row = out.fuse(*op.axis[:rows])
    cols = out.fuse(*op.axis[rows:])
    _vectorize_columns(out, cols, product(sizes[rows:]), lanes)
    parallel_fused(out, [row], product(sizes), cpu.cores)
    for stage in reversed(members):  # consumers first: compute_at needs every reader of a stage placed
        if stage.op.is_reduction:  # type: ignore[union-attr]
            _schedule_row_reduction(s, stage, cpu)
        else:
            inner = stage.fuse(*stage.op.axis[rows:])  # type: ignore[union-attr]
            _vectorize_columns(stage, inner, product(sizes[rows:]), lanes)
        stage.compute_at(out, row)
    return True


def _vectorize_columns(stage: Stage, axis: object, extent: int, lanes: int) -> None:
    """Vectors of a divisor of ``extent`` near ``lanes`` wide, else of ``lanes`` with the last one guarded (a row of
    33 runs four vectors and a one-element tail)."""
    factor = vector_factor(extent, lanes)
    if factor is None:
        if extent < 2:
            return
        factor = lanes
    if factor < extent:
        _, inner = stage.split(axis, factor=factor)  # type: ignore[arg-type]
    else:
        inner = axis
    stage.vectorize(inner)  # type: ignore[arg-type]


def _schedule_row_reduction(s: Schedule, stage: Stage, cpu: CpuTarget) -> None:
    """Vector partial results (rfactor): up to ``ACCUMULATORS`` vectors of them, so the adds along a row do not
    wait on each other, summed into one vector, whose lanes are then summed into the result."""
    op = stage.op
    assert isinstance(op, ComputeOp)
    rows = len(op.axis)
    extent = extents([op.reduce_axis[-1]])
    lanes = cpu.lanes(op.output(0).dtype)
    width = dot_lanes(extent[0], lanes * ACCUMULATORS) if extent else 1
    if width < 4 or extent is None or extent[0] < 2 * width:
        return
    vector = min(width, lanes)
    _, lane = stage.split(op.reduce_axis[-1], factor=vector)
    partial = s[s.rfactor(op.output(0), lane, factor_axis=rows)]
    partial.compute_at(stage, stage.fuse(*stage.op.axis))  # type: ignore[union-attr]
    if width == vector:
        _vectorize_partials(partial, rows)
        return
    partial_op = partial.op
    assert isinstance(partial_op, ComputeOp)
    _, group = partial.split(partial_op.reduce_axis[-1], factor=width // vector)
    vectors = s[s.rfactor(partial_op.output(0), group, factor_axis=rows)]
    row, lane_axis, group_axis = partial.fuse(*partial.op.axis[:rows]), *partial.leaf_iter_vars[-2:]  # type: ignore
    partial.reorder(row, group_axis, lane_axis)
    partial.vectorize(lane_axis)
    vectors.compute_at(partial, row)
    _vectorize_partials(vectors, rows)


def _vectorize_partials(partial: Stage, rows: int) -> None:
    """The rows fused, the reduction loops inside them, the partial results (fused) vectorized innermost."""
    op = partial.op
    assert isinstance(op, ComputeOp)
    row = partial.fuse(*op.axis[:rows])
    results = partial.fuse(*op.axis[rows:])
    reduce = [iv for iv in partial.leaf_iter_vars if iv.kind is IterKind.REDUCE]
    partial.reorder(row, *reduce, results)
    partial.vectorize(results)


def _row_group(s: Schedule) -> tuple[Stage, list[Stage], int] | None:
    """``(output stage, member stages in schedule order, row rank)`` of a row group, or ``None``."""
    outputs = [st for st in s.stages if st.is_output]
    if len(outputs) != 1:
        return None
    out = outputs[0]
    op = out.op
    if not isinstance(op, ComputeOp) or op.is_reduction or op.num_outputs != 1:
        return None
    if out.attach_type is not AttachType.ROOT:
        return None
    shape = extents(op.axis)
    if shape is None or not shape:
        return None
    bodies = inline_bodies(s)
    members = [st for st in s.stages if st is not out and not st.is_placeholder
               and st.attach_type is not AttachType.INLINE]
    if not members or any(not _member_kind_ok(st) for st in members):
        return None
    reductions = [st for st in members if st.op.is_reduction]  # type: ignore[union-attr]
    ranks = {len(st.op.axis) for st in reductions}  # type: ignore[union-attr]
    if len(ranks) != 1:
        return None
    rows = ranks.pop()
    if not 1 <= rows < len(shape):
        return None
    for st in members:
        member_shape = extents(st.op.axis)  # type: ignore[union-attr]
        if st.op.is_reduction:  # type: ignore[union-attr]
            reduced = extents(st.op.reduce_axis)  # type: ignore[union-attr]
            if member_shape != shape[:rows] or reduced is None or product(reduced) != product(shape[rows:]):
                return None
        elif member_shape != shape:
            return None
    temporaries = sum(product(shape[rows:]) * dt.storage_bytes(st.op.output(0).dtype)
                      for st in members if not st.op.is_reduction)  # type: ignore[union-attr]
    if temporaries > ROW_BUFFER_BYTES:
        return None
    computed = {id(st.op.output(0)) for st in members}
    for st in [*members, out]:
        row_vars = [iv.var for iv in st.op.axis[:rows]]  # type: ignore[union-attr]
        if not _reads_rows(bodies[st.op], computed, row_vars):  # type: ignore[index]
            return None
    return out, members, rows


def _member_kind_ok(stage: Stage) -> bool:
    op = stage.op
    if not isinstance(op, ComputeOp) or op.num_outputs != 1 or stage.attach_type is not AttachType.ROOT:
        return False
    return op_kind(op) not in _ANCHOR_KINDS


def _reads_rows(body: tuple[object, ...], computed: set[int], row_vars: list[object]) -> bool:
    """Whether every read of a ``computed`` tensor (by id) in ``body`` indexes its leading dimensions by
    ``row_vars``."""
    ok = True

    def visit(node: object) -> None:
        nonlocal ok
        if isinstance(node, ProducerLoad) and id(node.producer) in computed:
            lead = node.indices[: len(row_vars)]
            if len(lead) != len(row_vars) or any(index is not var for index, var in zip(lead, row_vars)):
                ok = False

    for expr in body:
        post_order_visit(expr, visit)
    return ok
