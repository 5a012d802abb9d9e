"""``vectorize_loops``: a vectorized loop of constant extent becomes vector operations (its variable a ramp,
invariant operands broadcast); a body that cannot be written so keeps its loop for LLVM's vectorizer."""

from __future__ import annotations

from transform_golden import assert_ir, flat

import tcomp
from tcomp import te
from tcomp.transform.vectorize import vectorize_loops


def test_the_loop_variable_becomes_a_ramp_and_invariants_are_broadcast() -> None:
    X = te.placeholder((10, 8), name="X")
    Y = te.compute((10, 8), lambda i, j: X[i, j] * 2.0 + X[i, 0], name="Y")
    s = tcomp.create_schedule(Y)
    s[Y].vectorize(Y.op.axis[1])
    func = flat(s, [X, Y], "vec")
    assert_ir(func, """
        def vec(X: float32[10, 8], Y: float32[10, 8]):
          for i in range(0, 10):
            for j in vectorized(0, 8):
              Y[i * 8 + j] = X[i * 8 + j] * 2.0f + X[i * 8]
    """)
    assert_ir(vectorize_loops(func), """
        def vec(X: float32[10, 8], Y: float32[10, 8]):
          for i in range(0, 10):
            Y[ramp(i * 8 + 0, 0 + 1, 8)] = X[ramp(i * 8 + 0, 0 + 1, 8)] * x8(2.0f) + x8(X[i * 8])
    """)


def test_a_guard_that_depends_on_the_lane_keeps_the_loop() -> None:
    A = te.placeholder((8,), name="A")
    Z = te.compute((10,), lambda i: A[i % 8], name="Z")
    s = tcomp.create_schedule(Z)
    _, inner = s[Z].split(Z.op.axis[0], factor=4)
    s[Z].vectorize(inner)
    func = flat(s, [A, Z], "partial")
    assert_ir(vectorize_loops(func), """
        def partial(A: float32[8], Z: float32[10]):
          for i.outer in range(0, 3):
            for i.inner in vectorized(0, 4):
              if i.outer * 4 + i.inner < 10:
                Z[i.outer * 4 + i.inner] = A[i.outer % 2 * 4 + i.inner]
    """)
