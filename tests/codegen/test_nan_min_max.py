"""Float ``min``/``max`` propagate NaN (IEEE 754-2019 ``minimum``/``maximum``, numpy's ``minimum``/``maximum``) in
every place they are computed: LLVM code (scalar, vectorized, against a constant on either side, as a reduction),
CUDA C (run in emulation), constant folding and the reference evaluator."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tcomp
from tcomp import te
from tcomp.arith import simplify
from tcomp.arith.evaluate import evaluate
from tcomp.ir.expr import FloatImm, Max, Min

N = 45  # no multiple of a vector width


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    a, b = rng.uniform(-2, 2, N).astype(np.float32), rng.uniform(-2, 2, N).astype(np.float32)
    a[[0, 7, 20]] = np.nan
    b[[0, 3, 21, 44]] = np.nan  # NaN in b alone, in a alone and in both
    return a, b


@pytest.mark.parametrize("vectorize", [False, True])
@pytest.mark.parametrize("which", ["max", "min"])
def test_elementwise_min_max(which: str, vectorize: bool) -> None:
    fn, ref = (te.max, np.maximum) if which == "max" else (te.min, np.minimum)
    a_t, b_t = te.placeholder((N,), name="a"), te.placeholder((N,), name="b")
    out = te.compute((N,), lambda i: fn(a_t[i], b_t[i]), name="out")
    left = te.compute((N,), lambda i: fn(te.const(0.5, "float32"), a_t[i]), name="left")  # constant first
    right = te.compute((N,), lambda i: fn(b_t[i], te.const(0.5, "float32")), name="right")  # constant second
    s = tcomp.create_schedule([out, left, right])
    if vectorize:
        for t in (out, left, right):
            _, inner = s[t].split(t.op.axis[0], factor=8)
            s[t].vectorize(inner)
    mod = tcomp.build(s, [a_t, b_t, out, left, right])
    a, b = _inputs()
    got = [np.empty(N, np.float32) for _ in range(3)]
    mod(a, b, *got)
    np.testing.assert_array_equal(got[0], ref(a, b))
    np.testing.assert_array_equal(got[1], ref(np.float32(0.5), a))
    np.testing.assert_array_equal(got[2], ref(b, np.float32(0.5)))


@pytest.mark.parametrize("position", [0, 17, N - 1])
@pytest.mark.parametrize("which", ["max", "min"])
def test_reductions(which: str, position: int) -> None:
    reducer, ref = (te.max, np.max) if which == "max" else (te.min, np.min)
    a_t = te.placeholder((3, N), name="a")
    k = te.reduce_axis((0, N), name="k")
    out = te.compute((3,), lambda i: reducer(a_t[i, k], axis=k), name="out")
    s = tcomp.create_schedule(out)
    mod = tcomp.build(s, [a_t, out])
    a = np.random.default_rng(1).uniform(-2, 2, (3, N)).astype(np.float32)
    a[1, position] = np.nan  # first, middle or last element of row 1
    got = np.empty(3, np.float32)
    mod(a, got)
    np.testing.assert_array_equal(got, ref(a, axis=1))
    assert np.isnan(got[1]) and not np.isnan(got[[0, 2]]).any()


def test_cuda_min_max_propagate_nan() -> None:
    a_t, b_t = te.placeholder((N,), name="a"), te.placeholder((N,), name="b")
    out = te.compute((N,), lambda i: te.max(a_t[i], b_t[i]) - te.min(a_t[i], b_t[i]), name="out")
    s = tcomp.create_schedule(out)
    outer, inner = s[out].split(out.op.axis[0], factor=16)
    s[out].bind(outer, te.thread_axis("blockIdx.x"))
    s[out].bind(inner, te.thread_axis("threadIdx.x"))
    mod = tcomp.build(s, [a_t, b_t, out], target="cuda")
    assert "tc_max_nan(" in mod.get_source("cuda")
    a, b = _inputs()
    got = np.empty(N, np.float32)
    mod(a, b, got)
    np.testing.assert_array_equal(got, np.maximum(a, b) - np.minimum(a, b))


@pytest.mark.parametrize("cls", [Max, Min])
def test_folding_and_evaluation(cls: type) -> None:
    nan, one = FloatImm(math.nan, "float32"), FloatImm(1.0, "float32")
    for a, b in [(nan, one), (one, nan)]:
        folded = simplify(cls(a, b, "float32"))
        assert isinstance(folded, FloatImm) and math.isnan(folded.value)
        assert math.isnan(evaluate(cls(a, b, "float32")))
