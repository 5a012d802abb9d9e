"""time_evaluator and the timing statistics."""

from __future__ import annotations

import time

import numpy as np
import pytest

import tcomp
from tcomp.ir import expr as E
from tcomp.ir import stmt as S
from tcomp.ir.buffer import Buffer
from tcomp.runtime import KernelError, TimingResult
from tcomp.runtime.timer import alternating, measure


def _scale_func() -> S.PrimFunc:
    n = E.Var("n")
    A, B = Buffer("A", (n,), "float32"), Buffer("B", (n,), "float32")
    i = E.Var("i")
    x = E.BufferLoad(A, (i,), "float32")
    body = S.AssertStmt(E.GE(x, E.FloatImm(0.0), "bool"), "negative input at {}", (E.Cast(i, "int64"),),
                        S.BufferStore(B, E.Mul(x, E.FloatImm(3.0), "float32"), (i,)))
    return S.PrimFunc("scale", (A, B), S.For(i, E.IntImm(0), n, S.ForKind.SERIAL, body), (n,))


def test_time_evaluator_statistics() -> None:
    mod = tcomp.build(_scale_func())
    a = np.ones(4096, np.float32)
    b = np.zeros_like(a)
    result = mod.time_evaluator(number=5, repeat=4)(a, b)
    assert isinstance(result, TimingResult)
    assert len(result.results) == 4 and result.number == 5
    assert 0 < result.min <= result.median <= result.max
    assert result.min <= result.mean <= result.max
    assert result.std >= 0
    assert "median=" in str(result)
    np.testing.assert_array_equal(b, 3)


def test_min_repeat_ms_grows_number() -> None:
    mod = tcomp.build(_scale_func())
    a = np.ones(64, np.float32)
    result = mod.time_evaluator(number=1, repeat=2, min_repeat_ms=5)(a, np.zeros_like(a))
    assert result.number > 1
    assert result.min * result.number >= 0.004


def test_time_evaluator_checks_arguments_and_reports_kernel_errors() -> None:
    mod = tcomp.build(_scale_func())
    timer = mod.time_evaluator()
    with pytest.raises(TypeError, match="expected float32, got float64"):
        timer(np.ones(4), np.ones(4))
    with pytest.raises(KernelError, match="negative input at 2"):
        timer(np.array([1, 1, -1, 1], np.float32), np.zeros(4, np.float32))


def test_measure_counts_calls_and_checks_arguments() -> None:
    calls = []

    def run() -> None:
        calls.append(time.perf_counter())

    result = measure(run, number=3, repeat=2, min_repeat_ms=0)
    assert len(calls) == 1 + 3 * 2
    assert len(result.results) == 2
    with pytest.raises(ValueError, match="number and repeat must be at least 1"):
        measure(run, number=0, repeat=1, min_repeat_ms=0)
    with pytest.raises(ValueError, match="min_repeat_ms must not be negative"):
        measure(run, number=1, repeat=1, min_repeat_ms=-1)


def test_timing_result_statistics_values() -> None:
    result = TimingResult((1.0, 3.0, 2.0), number=1)
    assert (result.min, result.max, result.median, result.mean) == (1.0, 3.0, 2.0, 2.0)
    assert result.std == pytest.approx((2 / 3) ** 0.5)
    assert TimingResult((5.0,), 1).std == 0.0


def test_alternating_times_every_call_in_turning_orders() -> None:
    order: list[str] = []
    runners = {name: (lambda name=name: order.append(name)) for name in "abc"}
    samples = alternating(runners, rounds=4, number=2)
    assert {name: len(values) for name, values in samples.items()} == {"a": 8, "b": 8, "c": 8}
    assert all(value >= 0.0 for values in samples.values() for value in values)
    warm_up, timed = order[:3], order[3:]
    assert warm_up == ["a", "b", "c"]
    turns = [timed[k] for k in range(0, len(timed), 2)]  # each runner's turn: 2 calls
    assert turns == ["a", "b", "c", "c", "b", "a", "b", "c", "a", "a", "c", "b"]
