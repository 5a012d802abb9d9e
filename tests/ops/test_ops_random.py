"""``tcomp.ops.random``: the generated bits against a numpy implementation of the documented SplitMix64 scheme, the
distributions against their CDFs (Kolmogorov-Smirnov at significance 1e-6), what changes the draws, and the errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tcomp
from tcomp import te
from tcomp.ops.random import GAMMA, mix64, random, seed_key
from tcomp.ops.utils import OpError

SHAPE = (3, 7, 5)
KS_SAMPLES = 20000
KS_LIMIT = math.sqrt(-math.log(1e-6 / 2) / (2 * KS_SAMPLES))  # the KS distance exceeded with probability 1e-6


def _draw(shape: tuple[int, ...], dtype: str, distribution: str, a: float, b: float, state: tuple[int, int],
          stream: int = 0, seed: float | None = None) -> np.ndarray:
    s = te.placeholder((2,), name="state", dtype="uint64")
    out = random(s, shape, dtype, distribution, a, b, stream, seed)
    schedule = tcomp.create_schedule(out)
    if len(shape) == 1 and shape[0] >= 16:
        outer, inner = schedule[out].split(out.op.axis[0], factor=8)
        schedule[out].parallel(outer)
        schedule[out].vectorize(inner)
    module = tcomp.build(schedule, [s, out], target="llvm")
    result = np.zeros(shape, dtype)
    module(np.array(state, np.uint64), result)
    return result


def _mix(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _reference_bits(count: int, key: int, counter: int, stream: int) -> np.ndarray:
    """The module docstring's formula, in numpy: ``mix(run + (i + 1) * GAMMA)``."""
    mask = (1 << 64) - 1
    run = mix64((key + mix64(stream) + counter * GAMMA) & mask)
    with np.errstate(over="ignore"):
        positions = np.arange(1, count + 1, dtype=np.uint64)
        return _mix(np.uint64(run) + positions * np.uint64(GAMMA))


def test_mix64_is_splitmix64() -> None:
    # SplitMix64 seeded with 0 (state advanced by GAMMA before each output) starts with these outputs
    assert [mix64(k * GAMMA & ((1 << 64) - 1)) for k in (1, 2, 3)] == [
        0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]


@pytest.mark.parametrize("seed", [None, 2.5])
def test_bits_are_the_documented_splitmix64_sequence(seed: float | None) -> None:
    state, stream = (0x0123456789ABCDEF, 41), 7
    got = _draw(SHAPE, "float64", "uniform", 0.0, 1.0, state, stream, seed)
    key = seed_key(seed) if seed is not None else state[0]
    bits = _reference_bits(math.prod(SHAPE), key, state[1], stream)
    want = (bits >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    np.testing.assert_array_equal(got.reshape(-1), want)


def test_float32_uniform_takes_the_top_24_bits() -> None:
    got = _draw((1001,), "float32", "uniform", -2.0, 3.0, (99, 5))
    bits = _reference_bits(1001, 99, 5, 0)
    unit = (bits >> np.uint64(40)).astype(np.float32) * np.float32(2.0 ** -24)
    # within an ulp: the generated code may fuse the multiply-add
    np.testing.assert_allclose(got, np.float32(-2.0) + np.float32(5.0) * unit, rtol=0, atol=np.spacing(np.float32(3)))


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def _ks_distance(samples: np.ndarray, cdf: np.ndarray) -> float:
    n = samples.size
    upper = np.arange(1, n + 1) / n - cdf
    lower = cdf - np.arange(0, n) / n
    return float(max(upper.max(), lower.max()))


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_uniform_is_uniform(dtype: str) -> None:
    x = _draw((KS_SAMPLES,), dtype, "uniform", 2.0, 6.0, (12345, 1)).astype(np.float64)
    assert x.min() >= 2.0 and x.max() <= 6.0
    x.sort()
    assert _ks_distance(x, (x - 2.0) / 4.0) < KS_LIMIT + (2e-3 if dtype == "float16" else 0.0)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_normal_is_normal(dtype: str) -> None:
    x = _draw((KS_SAMPLES,), dtype, "normal", -1.0, 3.0, (777, 3)).astype(np.float64)
    assert np.isfinite(x).all()
    x.sort()
    assert _ks_distance(x, _normal_cdf((x + 1.0) / 3.0)) < KS_LIMIT + (2e-3 if dtype == "float16" else 0.0)


def test_draws_change_with_key_counter_and_stream_and_repeat_otherwise() -> None:
    base = _draw(SHAPE, "float32", "normal", 0.0, 1.0, (5, 1), stream=0)
    np.testing.assert_array_equal(base, _draw(SHAPE, "float32", "normal", 0.0, 1.0, (5, 1), stream=0))
    for state, stream in (((6, 1), 0), ((5, 2), 0), ((5, 1), 1)):
        other = _draw(SHAPE, "float32", "normal", 0.0, 1.0, state, stream=stream)
        assert (other != base).mean() > 0.99
    seeded = _draw(SHAPE, "float32", "normal", 0.0, 1.0, (5, 1), seed=1.0)
    np.testing.assert_array_equal(seeded, _draw(SHAPE, "float32", "normal", 0.0, 1.0, (6, 1), seed=1.0))


def test_errors() -> None:
    state = te.placeholder((2,), name="state", dtype="uint64")
    with pytest.raises(OpError, match="two elements"):
        random(te.placeholder((3,), name="s3", dtype="uint64"), (4,), "float32", "uniform", 0, 1, 0)
    with pytest.raises(OpError, match="uint64"):
        random(te.placeholder((2,), name="s", dtype="int64"), (4,), "float32", "uniform", 0, 1, 0)
    with pytest.raises(OpError, match="float tensors"):
        random(state, (4,), "int32", "uniform", 0, 1, 0)
    with pytest.raises(OpError, match="distribution"):
        random(state, (4,), "float32", "gamma", 0, 1, 0)
