"""``inject_prefetch``: a loop marked ``pragma(axis, "prefetch", distance)`` starts each iteration with a prefetch of
the data it will read ``distance`` iterations later."""

from __future__ import annotations

import numpy as np
from transform_golden import assert_ir, flat

import tcomp
from tcomp import te
from tcomp.transform.prefetch import inject_prefetch


def test_each_iteration_prefetches_what_a_later_one_reads() -> None:
    V = te.placeholder((64,), name="V")
    W = te.compute((64,), lambda i: V[i] * 3.0, name="W")
    s = tcomp.create_schedule(W)
    outer, _ = s[W].split(W.op.axis[0], factor=16)
    s[W].pragma(outer, "prefetch", 2)
    func = flat(s, [V, W], "pf")
    assert_ir(func, """
        def pf(V: float32[64], W: float32[64]):
          for i.outer in range(0, 4):  # prefetch=2
            for i.inner in range(0, 16):
              W[i.outer * 16 + i.inner] = V[i.outer * 16 + i.inner] * 3.0f
    """)
    assert_ir(inject_prefetch(func), """
        def pf(V: float32[64], W: float32[64]):
          for i.outer in range(0, 4):  # prefetch=2
            tcomp.prefetch(address_of(V[(i.outer + 2) * 16 + 0]))
            for i.inner in range(0, 16):
              W[i.outer * 16 + i.inner] = V[i.outer * 16 + i.inner] * 3.0f
    """)


def test_a_vector_load_prefetches_each_cache_line_it_spans() -> None:
    """32 float32 lanes span two 64-byte lines: both are prefetched, from the ramp's base (LLVM takes no vector
    index in a prefetch's address)."""
    V = te.placeholder((128,), name="V")
    W = te.compute((128,), lambda i: V[i] * 3.0, name="W")
    s = tcomp.create_schedule(W)
    outer, inner = s[W].split(W.op.axis[0], factor=32)
    s[W].pragma(outer, "prefetch", 1)
    s[W].vectorize(inner)
    text = str(tcomp.lower(s, [V, W]))
    assert "tcomp.prefetch(address_of(V[i.outer * 32 + 32]))" in text
    assert "tcomp.prefetch(address_of(V[i.outer * 32 + 48]))" in text
    module = tcomp.build(s, [V, W])
    v = np.arange(128, dtype=np.float32)
    w = np.empty_like(v)
    module(v, w)
    np.testing.assert_array_equal(w, v * 3)
