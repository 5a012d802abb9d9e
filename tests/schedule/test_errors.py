"""Every illegal schedule request raises ScheduleError naming the stage, the primitive, the axis and the reason."""

from __future__ import annotations

import pytest

import tcomp
from tcomp import te
from tcomp.schedule import ScheduleError


def matmul(n: int = 16):
    A = te.placeholder((n, n), name="A")
    B = te.placeholder((n, n), name="B")
    k = te.reduce_axis((0, n), name="k")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return A, B, C


def chain():
    A = te.placeholder((16,), name="A")
    B = te.compute((16,), lambda i: A[i] + 1, name="B")
    C = te.compute((16,), lambda i: B[i] * 2, name="C")
    D = te.compute((16,), lambda i: B[i] - 1, name="D")
    return A, B, C, D


def test_split_unknown_axis():
    _, _, C = matmul()
    other = te.compute((4,), lambda x: x * 1.0, name="O")
    s = tcomp.create_schedule(C)
    with pytest.raises(ScheduleError, match=r"stage C: split: axis x: is not an axis of this stage"):
        s[C].split(other.op.axis[0], factor=2)


def test_split_twice():
    _, _, C = matmul()
    s = tcomp.create_schedule(C)
    i = C.op.axis[0]
    s[C].split(i, factor=4)
    with pytest.raises(ScheduleError, match=r"stage C: split: axis i: is no longer a leaf axis: it was already split"):
        s[C].split(i, factor=2)


def test_split_needs_exactly_one_of_factor_nparts():
    _, _, C = matmul()
    s = tcomp.create_schedule(C)
    with pytest.raises(ScheduleError, match=r"split: axis i: give exactly one of factor= or nparts="):
        s[C].split(C.op.axis[0])
    with pytest.raises(ScheduleError, match=r"give exactly one"):
        s[C].split(C.op.axis[0], factor=2, nparts=2)


@pytest.mark.parametrize("factor", [0, -3, 2.5, "4"])
def test_split_bad_factor(factor):
    _, _, C = matmul()
    s = tcomp.create_schedule(C)
    with pytest.raises(ScheduleError, match=r"stage C: split: axis i: factor must be a positive integer"):
        s[C].split(C.op.axis[0], factor=factor)


def test_split_bad_nparts():
    _, _, C = matmul()
    s = tcomp.create_schedule(C)
    with pytest.raises(ScheduleError, match=r"nparts must be a positive integer"):
        s[C].split(C.op.axis[0], nparts=0)


def test_fuse_non_adjacent():
    _, _, C = matmul()
    s = tcomp.create_schedule(C)
    i, j = C.op.axis
    io, ii = s[C].split(i, factor=4)
    with pytest.raises(ScheduleError, match=r"stage C: fuse: axis j: is not adjacent to i.outer"):
        s[C].fuse(io, j)


def test_fuse_wrong_order():
    _, _, C = matmul()
    s = tcomp.create_schedule(C)
    i, j = C.op.axis
    with pytest.raises(ScheduleError, match=r"fuse: axis i: is not adjacent to j"):
        s[C].fuse(j, i)


def test_fuse_spatial_with_reduce():
    _, _, C = matmul()
    s = tcomp.create_schedule(C)
    j = C.op.axis[1]
    k = C.op.reduce_axis[0]
    with pytest.raises(ScheduleError, match=r"fuse: axis k: cannot fuse a data-parallel axis with a reduction axis"):
        s[C].fuse(j, k)


def test_fuse_annotated_axis():
    _, _, C = matmul()
    s = tcomp.create_schedule(C)
    i, j = C.op.axis
    s[C].parallel(i)
    with pytest.raises(ScheduleError, match=r"fuse: axis i: is already annotated parallel"):
        s[C].fuse(i, j)


def test_reorder_duplicate():
    _, _, C = matmul()
    s = tcomp.create_schedule(C)
    i, j = C.op.axis
    with pytest.raises(ScheduleError, match=r"reorder: axis i: is listed more than once"):
        s[C].reorder(i, j, i)


def test_reorder_axis_of_other_stage():
    A, B, C = matmul()
    D = te.compute((16, 16), lambda i, j: C[i, j] + 1, name="D")
    s = tcomp.create_schedule(D)
    with pytest.raises(ScheduleError, match=r"stage D: reorder: axis i: is not an axis of this stage"):
        s[D].reorder(C.op.axis[0], D.op.axis[1])


def test_vectorize_reduction_axis():
    _, _, C = matmul()
    s = tcomp.create_schedule(C)
    with pytest.raises(ScheduleError, match=r"stage C: vectorize: axis k: is a reduction axis"):
        s[C].vectorize(C.op.reduce_axis[0])


def test_parallel_reduction_axis():
    _, _, C = matmul()
    s = tcomp.create_schedule(C)
    with pytest.raises(ScheduleError, match=r"stage C: parallel: axis k: is a reduction axis"):
        s[C].parallel(C.op.reduce_axis[0])


def test_conflicting_annotations():
    _, _, C = matmul()
    s = tcomp.create_schedule(C)
    j = C.op.axis[1]
    s[C].vectorize(j)
    with pytest.raises(ScheduleError, match=r"stage C: unroll: axis j: is already annotated vectorized"):
        s[C].unroll(j)


def test_split_annotated_axis():
    _, _, C = matmul()
    s = tcomp.create_schedule(C)
    j = C.op.axis[1]
    s[C].vectorize(j)
    with pytest.raises(ScheduleError, match=r"split: axis j: is already annotated vectorized"):
        s[C].split(j, factor=4)


def test_vectorize_symbolic_extent():
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: A[i] + 1, name="B")
    s = tcomp.create_schedule(B)
    s[B].vectorize(B.op.axis[0])
    with pytest.raises(ScheduleError, match=r"stage B: vectorize: axis i: extent n is not a constant"):
        tcomp.lower(s, [A, B])


def test_inline_reduction():
    A, B, C = matmul()
    D = te.compute((16, 16), lambda i, j: C[i, j] + 1, name="D")
    s = tcomp.create_schedule(D)
    with pytest.raises(ScheduleError, match=r"stage C: compute_inline: a reduction cannot be inlined"):
        s[C].compute_inline()


def test_inline_output():
    A, B, C, D = chain()
    s = tcomp.create_schedule(C)
    with pytest.raises(ScheduleError, match=r"stage C: compute_inline: an output of the schedule cannot be inlined"):
        s[C].compute_inline()


def test_inline_placeholder():
    A, B, C, D = chain()
    s = tcomp.create_schedule(C)
    with pytest.raises(ScheduleError, match=r"stage A: compute_inline: only a compute stage can be inlined"):
        s[A].compute_inline()


def test_schedule_placeholder():
    A, B, C, D = chain()
    s = tcomp.create_schedule(C)
    with pytest.raises(ScheduleError, match=r"stage A: compute_at: a placeholder \(an input\) has no loops"):
        s[A].compute_at(s[C], C.op.axis[0])


def test_compute_at_non_consumer():
    A, B, C, D = chain()
    E = te.compute((16,), lambda i: A[i] * 3, name="E")
    F = te.compute((16,), lambda i: E[i] + C[i], name="F")
    s = tcomp.create_schedule(F)
    with pytest.raises(ScheduleError, match=r"stage E: compute_at: axis i: stage C does not read E"):
        s[E].compute_at(s[C], C.op.axis[0])


def test_compute_at_also_read_elsewhere():
    A, B, C, D = chain()
    s = tcomp.create_schedule([C, D])
    with pytest.raises(ScheduleError, match=r"stage B: compute_at: axis i: B is also read by D, an output computed at "
                                            r"the root, outside C's loop"):
        s[B].compute_at(s[C], C.op.axis[0])


def test_compute_at_axis_of_other_stage():
    A, B, C, D = chain()
    s = tcomp.create_schedule(C)
    with pytest.raises(ScheduleError, match=r"stage B: compute_at: axis i: is not a leaf axis of stage C"):
        s[B].compute_at(s[C], B.op.axis[0])


def test_compute_at_self():
    A, B, C, D = chain()
    s = tcomp.create_schedule(C)
    with pytest.raises(ScheduleError, match=r"stage B: compute_at: axis i: a stage cannot be computed at its own axis"):
        s[B].compute_at(s[B], B.op.axis[0])


def test_compute_at_output():
    A, B, C, D = chain()
    s = tcomp.create_schedule([B, C])
    with pytest.raises(ScheduleError, match=r"stage B: compute_at: axis i: an output of the schedule"):
        s[B].compute_at(s[C], C.op.axis[0])


def test_compute_at_inlined_parent():
    A = te.placeholder((16,), name="A")
    B = te.compute((16,), lambda i: A[i] + 1, name="B")
    C = te.compute((16,), lambda i: B[i] * 2, name="C")
    D = te.compute((16,), lambda i: C[i] - 1, name="D")
    s = tcomp.create_schedule(D)
    s[C].compute_inline()
    with pytest.raises(ScheduleError, match=r"stage B: compute_at: axis i: stage C is inlined and has no loops"):
        s[B].compute_at(s[C], C.op.axis[0])


def test_schedule_inlined_stage():
    A, B, C, D = chain()
    s = tcomp.create_schedule(C)
    s[B].compute_inline()
    with pytest.raises(ScheduleError, match=r"stage B: split: the stage is inlined; call compute_root\(\) first"):
        s[B].split(B.op.axis[0], factor=2)


def test_inline_stage_with_attached_producer():
    A = te.placeholder((16,), name="A")
    B = te.compute((16,), lambda i: A[i] + 1, name="B")
    C = te.compute((16,), lambda i: B[i] * 2, name="C")
    D = te.compute((16,), lambda i: C[i] - 1, name="D")
    s = tcomp.create_schedule(D)
    s[B].compute_at(s[C], C.op.axis[0])
    with pytest.raises(ScheduleError, match=r"stage C: compute_inline: stage B is computed at one of its axes"):
        s[C].compute_inline()


def test_stage_not_in_schedule():
    A, B, C, D = chain()
    s = tcomp.create_schedule(C)
    with pytest.raises(ScheduleError, match=r"stage D: not part of this schedule"):
        s[D]


def test_bind_non_thread_axis():
    _, _, C = matmul()
    s = tcomp.create_schedule(C)
    with pytest.raises(ScheduleError, match=r"stage C: bind: axis i: expected a te.thread_axis"):
        s[C].bind(C.op.axis[0], C.op.axis[1])


def test_bind_thread_twice():
    _, _, C = matmul()
    s = tcomp.create_schedule(C)
    tx = te.thread_axis("threadIdx.x")
    s[C].bind(C.op.axis[0], tx)
    with pytest.raises(ScheduleError, match=r"bind: axis j: thread threadIdx.x is already bound to axis i"):
        s[C].bind(C.op.axis[1], te.thread_axis("threadIdx.x"))


def test_pragma_bad_key():
    _, _, C = matmul()
    s = tcomp.create_schedule(C)
    with pytest.raises(ScheduleError, match=r"pragma: axis i: pragma key must be a non-empty string"):
        s[C].pragma(C.op.axis[0], "")


def test_errors_leave_schedule_usable():
    """A rejected primitive changes nothing: the stage keeps its axes, relations and annotations, and the schedule
    still lowers."""
    A, B, C = matmul()
    s = tcomp.create_schedule(C)
    io, ii = s[C].split(C.op.axis[0], factor=4)
    s[C].vectorize(ii)
    stage = s[C]

    def state() -> tuple[object, ...]:
        return list(stage.leaf_iter_vars), list(stage.relations), {iv: a.kind for iv, a in stage.iter_attrs.items()}

    before = state()
    with pytest.raises(ScheduleError):
        s[C].fuse(io, C.op.axis[1])
    with pytest.raises(ScheduleError):
        s[C].parallel(C.op.reduce_axis[0])
    assert state() == before
    assert "i.outer" in str(tcomp.lower(s, [A, B, C]))
