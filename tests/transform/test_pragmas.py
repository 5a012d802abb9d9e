"""Pragmas: explicit unrolling and software prefetch change the code, never the result."""

from __future__ import annotations

import numpy as np

import tcomp
from tcomp import te


def stencil(n=100):
    A = te.placeholder((n + 2,), name="A")
    B = te.compute((n,), lambda i: A[i] + A[i + 1] * 2 + A[i + 2], name="B")
    return A, B


def run(s, A, B, n=100):
    mod = tcomp.build(s, [A, B])
    a = np.random.default_rng(0).random(n + 2, dtype=np.float32)
    b = np.zeros(n, np.float32)
    mod(a, b)
    np.testing.assert_allclose(b, a[:-2] + 2 * a[1:-1] + a[2:], rtol=1e-6)
    return mod


def test_unroll_explicit_replicates_the_body():
    A, B = stencil()
    s = tcomp.create_schedule(B)
    xo, xi = s[B].split(B.op.axis[0], factor=4)
    s[B].pragma(xi, "unroll_explicit")
    text = str(tcomp.lower(s, [A, B]))
    assert "i.inner" not in text.split("for i.outer")[1].split(":", 1)[1].splitlines()[1]
    assert text.count("B[") == 4
    run(s, A, B)


def test_unroll_explicit_with_tail_keeps_guards():
    A, B = stencil(n=99)
    s = tcomp.create_schedule(B)
    xo, xi = s[B].split(B.op.axis[0], factor=4)
    s[B].pragma(xi, "unroll_explicit")
    run(s, A, B, n=99)


def test_prefetch_emits_llvm_prefetch():
    A, B = stencil()
    s = tcomp.create_schedule(B)
    xo, xi = s[B].split(B.op.axis[0], factor=16)
    s[B].pragma(xo, "prefetch", 2)
    text = str(tcomp.lower(s, [A, B]))
    assert "tcomp.prefetch(address_of(A[" in text
    mod = run(s, A, B)
    assert "llvm.prefetch" in mod.get_source("ll_unopt")
    assert "prefetch" in mod.get_source("asm")
