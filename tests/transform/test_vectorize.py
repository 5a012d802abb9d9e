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
            Y[ramp(i * 8 + 0, 1, 8)] = X[ramp(i * 8 + 0, 1, 8)] * x8(2.0f) + x8(X[i * 8])
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


def _guarded(read):  # type: ignore[no-untyped-def]
    """``Y[i, j] = 0 < j < 9 ? read(X, D, i, j) : 0`` with ``j`` vectorized (10 lanes), flattened."""
    X = te.placeholder((4, 20), name="X")
    D = te.placeholder((4,), name="D", dtype="int32")
    Y = te.compute((4, 10), lambda i, j: te.if_then_else(te.all(j > 0, j < 9), read(X, D, i, j), 0.0), name="Y")
    s = tcomp.create_schedule(Y)
    s[Y].vectorize(Y.op.axis[1])
    return flat(s, [X, D, Y], "guarded")


def test_a_select_guarding_contiguous_reads_becomes_a_vector_select() -> None:
    """A padded read (``pad``'s clamped index included) vectorizes: the backend reads the lanes that take the
    branch only (``codegen/llvm/masked.py``); the stride of ``j - 1 + 0 * 1`` folds to 1 on the way."""
    for read in (lambda X, D, i, j: X[i, j - 1], lambda X, D, i, j: X[i, te.max(te.min(j - 1, 7), 0)]):
        body = vectorize_loops(_guarded(read)).body
        assert "vectorized" not in str(body) and "x10(0.0f)" in str(body), body
        assert "ramp(j" not in str(body) and ", 1, 10)" in str(body), body


def test_a_select_guarding_strided_reads_or_divisions_keeps_the_loop() -> None:
    """A strided read under a lane-dependent select would be a masked gather (slower than LLVM's code for the
    loop, measured), and a masked-off lane's division by zero is undefined: both stay loops for LLVM."""
    for read in (lambda X, D, i, j: X[i, 2 * j], lambda X, D, i, j: X[i, j] + te.cast(10 // D[i], "float32")):
        func = _guarded(read)
        assert str(vectorize_loops(func)) == str(func)
