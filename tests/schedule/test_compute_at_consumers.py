"""compute_at for a stage with several readers: legal when every reader runs inside the attach loop (the host
itself, or a stage computed, directly or through others, at that loop or inside it), with the region inferred over
all readers; a precise ScheduleError otherwise. Rows of softmax, layer norm and attention fused under the output's
row loop, against numpy, with constant and symbolic shapes and sizes no split divides."""

from __future__ import annotations

import numpy as np
import pytest

import tcomp
from tcomp import ops, te
from tcomp.backend.testing import build_and_check
from tcomp.ops import testing as reference
from tcomp.schedule import ScheduleError


def _softmax_stages(x: te.Tensor) -> tuple[te.Tensor, te.Tensor, te.Tensor, te.Tensor]:
    """``ops.softmax``'s four stages: max, exp, sum, and the output."""
    out = ops.softmax(x)
    expo, expsum = out.op.input_tensors()
    maxelem = next(t for t in expo.op.input_tensors() if t is not x)
    return maxelem, expo, expsum, out


@pytest.mark.parametrize("symbolic", [False, True])
def test_softmax_row_fused_under_the_output_row_loop(symbolic: bool) -> None:
    rows, cols = 13, 37
    n, m = (te.var("n"), te.var("m")) if symbolic else (rows, cols)
    x = te.placeholder((n, m), name="x")
    maxelem, expo, expsum, out = _softmax_stages(x)
    s = tcomp.create_schedule(out)
    row, col = out.op.axis
    for stage in (maxelem, expo, expsum):
        s[stage].compute_at(s[out], row)
    s[out].parallel(row)
    if not symbolic:
        _, inner = s[out].split(col, factor=8)
        s[out].vectorize(inner)
    text = str(tcomp.lower(s, [x, out]))
    assert text.count("parallel") == 1  # one row loop holds all four stages
    data = reference.random_data(np.random.default_rng(0), (rows, cols), low=-4, high=4)
    build_and_check(s, [x, out], [data], reference.softmax_python(data), rtol=1e-5, atol=1e-6)


def test_consumer_computed_at_an_inner_loop_of_the_host() -> None:
    x = te.placeholder((9, 21), name="x")
    maxelem, expo, expsum, out = _softmax_stages(x)
    s = tcomp.create_schedule(out)
    outer, inner = s[out].split(out.op.axis[0], factor=4)  # 4 does not divide 9
    s[maxelem].compute_at(s[out], outer)  # rows outer*4 .. outer*4+3
    s[expo].compute_at(s[out], outer)
    s[expsum].compute_at(s[out], inner)  # one row, inside the exp stage's loop
    data = reference.random_data(np.random.default_rng(1), (9, 21), low=-3, high=3)
    build_and_check(s, [x, out], [data], reference.softmax_python(data))


@pytest.mark.parametrize("symbolic", [False, True])
def test_layer_norm_row_fused(symbolic: bool) -> None:
    rows, cols = 11, 29
    n, m = (te.var("n"), te.var("m")) if symbolic else (rows, cols)
    x = te.placeholder((n, m), name="x")
    gamma, beta = te.placeholder((m,), name="gamma"), te.placeholder((m,), name="beta")
    out = ops.layer_norm(x, gamma, beta, axis=-1, epsilon=1e-5)
    total, sqsum = (t for t in out.op.input_tensors() if t.name.endswith(("_sum", "_sqsum")))
    s = tcomp.create_schedule(out)
    row = out.op.axis[0]
    s[total].compute_at(s[out], row)  # read by sqsum and by the output
    s[sqsum].compute_at(s[out], row)
    s[out].parallel(row)
    rng = np.random.default_rng(2)
    data, g, b = (reference.random_data(rng, shape) for shape in [(rows, cols), (cols,), (cols,)])
    expected = reference.layer_norm_python(data, g, b, axis=-1, epsilon=1e-5)
    build_and_check(s, [x, gamma, beta, out], [data, g, b], expected, rtol=1e-4, atol=1e-5)


def test_attention_row_block_fused() -> None:
    seq, dim, block = 19, 8, 4
    q, k, v = (te.placeholder((seq, dim), name=name) for name in "qkv")
    d = te.reduce_axis((0, dim), name="d")
    scale = dim ** -0.5
    scores = te.compute((seq, seq), lambda i, j: te.sum(q[i, d] * scale * k[j, d], axis=d), name="scores")
    maxelem, expo, expsum, probs = _softmax_stages(scores)
    j = te.reduce_axis((0, seq), name="j")
    out = te.compute((seq, dim), lambda i, c: te.sum(probs[i, j] * v[j, c], axis=j), name="out")
    s = tcomp.create_schedule(out)
    rows, _ = s[out].split(out.op.axis[0], factor=block)
    for stage in (scores, maxelem, expo, expsum, probs):
        s[stage].compute_at(s[out], rows)
    text = str(tcomp.lower(s, [q, k, v, out]))
    assert f"allocate scores: float32[{block * seq}], scope=local" in text  # a block of rows, not the whole matrix
    rng = np.random.default_rng(3)
    qa, ka, va = (reference.random_data(rng, (seq, dim)) for _ in range(3))
    expected = reference.softmax_python(qa.astype(np.float64) @ ka.T.astype(np.float64) * scale) @ va
    build_and_check(s, [q, k, v, out], [qa, ka, va], expected, rtol=1e-4, atol=1e-5)


def test_host_need_not_read_the_stage_directly() -> None:
    x = te.placeholder((5, 6), name="x")
    a = te.compute((5, 6), lambda i, j: x[i, j] * 2, name="a")
    b = te.compute((5, 6), lambda i, j: a[i, j] + 1, name="b")
    c = te.compute((5, 6), lambda i, j: b[i, j] * 3, name="c")
    s = tcomp.create_schedule(c)
    s[a].compute_at(s[c], c.op.axis[0])  # c reads a only through b
    s[b].compute_at(s[c], c.op.axis[0])
    data = reference.random_data(np.random.default_rng(4), (5, 6))
    build_and_check(s, [x, c], [data], (data * 2 + 1) * 3)


# ---------------------------------------------------------------------------------------------------------------------
# still illegal
def test_other_reader_at_the_root() -> None:
    x = te.placeholder((8, 16), name="x")
    maxelem, expo, expsum, out = _softmax_stages(x)
    s = tcomp.create_schedule(out)
    s[expo].compute_at(s[out], out.op.axis[0])  # the sum, at the root, reads it too
    with pytest.raises(ScheduleError, match=(
            r"stage T_softmax_exp: compute_at: axis i0: T_softmax_exp is also read by T_softmax_expsum, which is "
            r"computed at the root, outside T_softmax's loop i0")):
        tcomp.lower(s, [x, out])


def test_other_reader_at_an_outer_loop_of_the_host() -> None:
    x = te.placeholder((8, 16), name="x")
    maxelem, expo, expsum, out = _softmax_stages(x)
    s = tcomp.create_schedule(out)
    outer, inner = s[out].split(out.op.axis[0], factor=2)
    s[expo].compute_at(s[out], inner)
    s[expsum].compute_at(s[out], outer)  # runs before the exp stage of each row
    with pytest.raises(ScheduleError, match=(
            r"stage T_softmax_exp: compute_at: axis i0.inner: T_softmax_exp is also read by T_softmax_expsum, which "
            r"is computed at T_softmax's loop i0.outer, outside T_softmax's loop i0.inner")):
        tcomp.lower(s, [x, out])


def test_reader_inside_a_stage_that_runs_outside() -> None:
    x = te.placeholder((8, 16), name="x")
    maxelem, expo, expsum, out = _softmax_stages(x)
    s = tcomp.create_schedule(out)
    outer, inner = s[out].split(out.op.axis[0], factor=2)
    s[maxelem].compute_at(s[out], inner)
    s[expo].compute_at(s[out], outer)  # reads the max, but runs outside the loop that computes it
    s[expsum].compute_at(s[out], outer)
    with pytest.raises(ScheduleError, match=(
            r"stage T_softmax_maxelem: compute_at: axis i0.inner: T_softmax_maxelem is also read by T_softmax_exp, "
            r"which is computed at T_softmax's loop i0.outer")):
        tcomp.lower(s, [x, out])


def test_reader_is_an_output() -> None:
    x = te.placeholder((8,), name="x")
    a = te.compute((8,), lambda i: x[i] + 1, name="a")
    b = te.compute((8,), lambda i: a[i] * 2, name="b")
    c = te.compute((8,), lambda i: a[i] - 1, name="c")
    s = tcomp.create_schedule([b, c])
    with pytest.raises(ScheduleError, match=(
            r"stage a: compute_at: axis i: a is also read by c, an output computed at the root, outside b's loop")):
        s[a].compute_at(s[b], b.op.axis[0])


def test_host_that_does_not_read_the_stage_at_all() -> None:
    x = te.placeholder((8,), name="x")
    a = te.compute((8,), lambda i: x[i] + 1, name="a")
    b = te.compute((8,), lambda i: x[i] * 2, name="b")
    c = te.compute((8,), lambda i: a[i] + b[i], name="c")
    s = tcomp.create_schedule(c)
    with pytest.raises(ScheduleError, match=r"stage a: compute_at: axis i: stage b does not read a, directly or "
                                            r"through other stages"):
        s[a].compute_at(s[b], b.op.axis[0])
