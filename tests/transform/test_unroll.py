"""``unroll_explicit``: a loop marked ``pragma(axis, "unroll_explicit")`` becomes one copy of its body per
iteration, in the loop IR itself."""

from __future__ import annotations

from transform_golden import assert_ir, loop_nest

import tcomp
from tcomp import te
from tcomp.transform.flatten import flatten_buffers
from tcomp.transform.unroll import unroll_explicit


def test_a_marked_loop_becomes_one_copy_per_iteration() -> None:
    M = te.placeholder((3, 5), name="M")
    U = te.compute((2, 3), lambda i, j: M[i, j] + M[i + 1, j], name="U")
    s = tcomp.create_schedule(U)
    s[U].pragma(U.op.axis[1], "unroll_explicit")
    func = flatten_buffers(loop_nest(s, [M, U], "unrolled"))
    assert_ir(func, """
        def unrolled(M: float32[3, 5], U: float32[2, 3]):
          for i in range(0, 2):
            for j in range(0, 3):  # unroll_explicit=True
              U[i * 3 + j] = M[i * 5 + j] + M[(i + 1) * 5 + j]
    """)
    assert_ir(unroll_explicit(func), """
        def unrolled(M: float32[3, 5], U: float32[2, 3]):
          for i in range(0, 2):
            U[i * 3 + 0] = M[i * 5 + 0] + M[(i + 1) * 5 + 0]
            U[i * 3 + 1] = M[i * 5 + 1] + M[(i + 1) * 5 + 1]
            U[i * 3 + 2] = M[i * 5 + 2] + M[(i + 1) * 5 + 2]
    """)


def test_each_copy_keeps_the_side_of_a_select_its_iteration_takes() -> None:
    M = te.placeholder((3, 5), name="M")
    U = te.compute((3, 5), lambda i, j: te.if_then_else(i == 0, M[i, j] * 2.0,
                                                         te.if_then_else(i == 1, M[i, j] - 1.0, M[i, j])), name="U")
    s = tcomp.create_schedule(U)
    s[U].reorder(U.op.axis[1], U.op.axis[0])
    s[U].pragma(U.op.axis[0], "unroll_explicit")
    func = unroll_explicit(flatten_buffers(loop_nest(s, [M, U], "rows")))
    assert_ir(func, """
        def rows(M: float32[3, 5], U: float32[3, 5]):
          for j in range(0, 5):
            U[0 * 5 + j] = M[0 * 5 + j] * 2.0f
            U[1 * 5 + j] = M[1 * 5 + j] - 1.0f
            U[2 * 5 + j] = M[2 * 5 + j]
    """)


def test_a_loop_of_unknown_extent_stays_a_loop() -> None:
    n = te.var("n")
    V = te.placeholder((n,), name="V")
    W = te.compute((n,), lambda i: V[i] + 1.0, name="W")
    s = tcomp.create_schedule(W)
    s[W].pragma(W.op.axis[0], "unroll_explicit")
    func = flatten_buffers(loop_nest(s, [V, W], "symbolic"))
    assert unroll_explicit(func) is func
