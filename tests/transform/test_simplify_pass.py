"""``simplify_func``: every expression simplified with the ranges of the loops around it; loops of extent 1 vanish.
A guard that the ranges do not decide stays."""

from __future__ import annotations

from transform_golden import assert_ir, loop_nest

import tcomp
from tcomp import te
from tcomp.transform.simplify import simplify_func

A = te.placeholder((8,), name="A")


def test_indices_simplify_within_their_loop_ranges_and_a_one_iteration_loop_goes() -> None:
    C = te.compute((8,), lambda i: A[(i // 4) * 4 + i % 4] + 1.0, name="C")
    s = tcomp.create_schedule(C)
    s[C].split(C.op.axis[0], factor=8)
    func = loop_nest(s, [A, C], "simp")
    assert_ir(func, """
        def simp(A: float32[8], C: float32[8]):
          for i.outer in range(0, 1):
            for i.inner in range(0, 8):
              C[i.inner] = A[i.inner // 4 * 4 + i.inner % 4] + 1.0f
    """)
    assert_ir(simplify_func(func), """
        def simp(A: float32[8], C: float32[8]):
          for i.inner in range(0, 8):
            C[i.inner] = A[i.inner] + 1.0f
    """)


def test_a_guard_the_ranges_do_not_decide_stays_and_nothing_changes() -> None:
    D = te.compute((10,), lambda i: A[i % 7] * 2.0, name="D")
    s = tcomp.create_schedule(D)
    s[D].split(D.op.axis[0], factor=4)
    func = loop_nest(s, [A, D], "guard")
    assert_ir(func, """
        def guard(A: float32[8], D: float32[10]):
          for i.outer in range(0, 3):
            for i.inner in range(0, 4):
              if i.outer * 4 + i.inner < 10:
                D[i.outer * 4 + i.inner] = A[(i.outer * 4 + i.inner) % 7] * 2.0f
    """)
    assert simplify_func(func) is func


def test_a_loop_over_a_symbolic_extent_is_bounded_by_its_declared_maximum() -> None:
    """``n`` declares at most 1000: ``i % 4096`` is ``i`` in a loop of ``n`` iterations. Undeclared, it stays."""
    table = te.placeholder((4096,), name="T")
    for most, index in ((1000, "i"), (None, "i % 4096")):
        n = te.var("n", max_value=most)
        E = te.compute((n,), lambda i: table[i % 4096] * 2.0, name="E")
        func = simplify_func(loop_nest(tcomp.create_schedule(E), [table, E], "sized"))
        assert f"E[i] = T[{index}] * 2.0f" in str(func)
