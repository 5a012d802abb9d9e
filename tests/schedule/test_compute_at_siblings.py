"""``compute_at`` of a stage read by several stages computed at the same loop (siblings): its region covers every
reader's, one row each, it runs before them, and a reader nested in a sibling (an rfactor part) counts as inside.
A reader left outside the loop is refused when the schedule is lowered."""

from __future__ import annotations

import numpy as np
import pytest

import tcomp
from tcomp import te
from tcomp.schedule import ScheduleError


def _rows(n: int = 6, m: int = 40):
    """``mx[i] = max_j x[i, j]``; ``e[i, j] = x[i, j] - mx[i]``; ``total[i] = sum_j e[i, j]``;
    ``out[i, j] = e[i, j] * total[i]``: ``e`` is read by ``total`` and ``out``, ``mx`` by ``e`` alone."""
    x = te.placeholder((n, m), name="x")
    j1, j2 = te.reduce_axis((0, m), name="j1"), te.reduce_axis((0, m), name="j2")
    mx = te.compute((n,), lambda i: te.max(x[i, j1], axis=j1), name="mx")
    e = te.compute((n, m), lambda i, j: x[i, j] - mx[i], name="e")
    total = te.compute((n,), lambda i: te.sum(e[i, j2], axis=j2), name="total")
    out = te.compute((n, m), lambda i, j: e[i, j] * total[i], name="out")
    return x, mx, e, total, out


def _reference(x: np.ndarray) -> np.ndarray:
    e = x - x.max(axis=1, keepdims=True)
    return e * e.sum(axis=1, keepdims=True)


def test_stages_computed_at_one_row_loop() -> None:
    x, mx, e, total, out = _rows()
    s = tcomp.create_schedule(out)
    row = out.op.axis[0]
    s[total].compute_at(s[out], row)
    s[e].compute_at(s[out], row)  # read by out and by total, computed at the same loop
    s[mx].compute_at(s[out], row)  # out does not read mx; e, computed there, does
    text = str(tcomp.lower(s, [x, out]))
    assert "allocate e: float32[40]" in text and "allocate mx: float32[1]" in text  # one row each
    assert text.index("mx[0] = max") < text.index("e[j] = x") < text.index("total[0] = total") < text.index("out[")
    data = np.random.default_rng(5).uniform(-3, 3, (6, 40)).astype("float32")
    result = np.empty_like(data)
    tcomp.build(s, [x, out])(data, result)
    np.testing.assert_allclose(result, _reference(data), rtol=1e-5, atol=1e-4)


def test_a_reader_nested_in_a_sibling() -> None:
    """``total`` factored into 8 partial sums computed inside ``total``: ``e``'s region covers the partial stage's."""
    x, mx, e, total, out = _rows()
    s = tcomp.create_schedule(out)
    row = out.op.axis[0]
    _, lane = s[total].split(total.op.reduce_axis[0], factor=8)
    partial = s.rfactor(total, lane)
    s[total].compute_at(s[out], row)
    s[partial].compute_at(s[total], s[total].op.axis[0])
    s[e].compute_at(s[out], row)
    data = np.random.default_rng(6).uniform(-3, 3, (6, 40)).astype("float32")
    result = np.empty_like(data)
    tcomp.build(s, [x, out])(data, result)
    np.testing.assert_allclose(result, _reference(data), rtol=1e-5, atol=1e-4)


def test_a_reader_outside_the_loop_is_refused_at_lowering() -> None:
    x, mx, e, total, out = _rows()
    s = tcomp.create_schedule(out)
    row = out.op.axis[0]
    s[e].compute_at(s[out], row)  # total is still at the root: accepted here, refused when lowered
    outside = (
        r"stage e: compute_at: axis i: e is also read by total, which is computed at the root, outside out's loop i;"
    )
    with pytest.raises(ScheduleError, match=outside):
        tcomp.lower(s, [x, out])
    s[total].compute_at(s[out], row)  # the sibling joins the loop: lowering succeeds
    tcomp.lower(s, [x, out])
    s[total].compute_root()  # and leaves it again
    with pytest.raises(ScheduleError, match=outside):
        tcomp.lower(s, [x, out])
