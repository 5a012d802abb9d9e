"""``compute_at`` at a loop of a stage that does not read the stage directly but hosts every reader: the stage is
computed once per iteration of that loop, over the union of what its readers read there (the scores of a block of
attention rows, read by the row maximum and by the exponentials); and the errors lowering raises when a reader runs
elsewhere."""

from __future__ import annotations

import numpy as np
import pytest

import tcomp
from tcomp import te
from tcomp.schedule import ScheduleError


def diamond(n: int = 37):
    """``B = A + 1`` read by ``C[i] = B[i] * 2`` and ``D[i] = B[i + 1]`` (a shifted window), ``E = C + D``."""
    A = te.placeholder((n + 1,), name="A")
    B = te.compute((n + 1,), lambda i: A[i] + 1.0, name="B")
    C = te.compute((n,), lambda i: B[i] * 2.0, name="C")
    D = te.compute((n,), lambda i: B[i + 1] - 1.0, name="D")
    E = te.compute((n,), lambda i: C[i] + D[i], name="E")
    return A, B, C, D, E


def test_a_stage_computed_where_its_readers_are() -> None:
    A, B, C, D, E = diamond()
    s = tcomp.create_schedule(E)
    outer, _ = s[E].split(E.op.axis[0], factor=8)
    s[C].compute_at(s[E], outer)
    s[D].compute_at(s[E], outer)
    s[B].compute_at(s[E], outer)
    source = str(tcomp.lower(s, [A, E], simple_mode=True))
    assert "allocate B: float32[9]" in source  # 8 rows for C and the one more that D reads
    module = tcomp.build(s, [A, E], check_bounds=True)
    a = np.random.default_rng(3).random(38, dtype=np.float32)
    e = np.empty(37, np.float32)
    module(a, e)
    np.testing.assert_allclose(e, (a[:-1] + 1) * 2 + a[1:], rtol=1e-6)


def test_a_reader_outside_the_hosts_loop() -> None:
    A, B, C, D, E = diamond()
    s = tcomp.create_schedule(E)
    outer, _ = s[E].split(E.op.axis[0], factor=8)
    s[C].compute_at(s[E], outer)
    s[B].compute_at(s[E], outer)  # accepted here: D may still be placed inside the loop before lowering
    with pytest.raises(
        ScheduleError,
        match=r"stage B: compute_at: axis i.outer: B is also read by D, which is computed at the root, outside E's "
        r"loop i.outer; compute D at that loop or inside it, or B further out",
    ):
        tcomp.lower(s, [A, E])


def test_a_reader_computed_before_the_hosts_loop() -> None:
    A, B, C, D, E = diamond()
    s = tcomp.create_schedule(E)
    outer, inner = s[E].split(E.op.axis[0], factor=8)
    s[C].compute_at(s[E], outer)
    s[D].compute_at(s[E], outer)
    s[B].compute_at(s[E], inner)  # C and D run once per block of 8, before B's loop
    with pytest.raises(
        ScheduleError,
        match=r"stage B: compute_at: axis i.inner: B is also read by [CD], which is computed at E's loop i.outer, "
        r"outside E's loop i.inner",
    ):
        tcomp.lower(s, [A, E])
