"""Checking ``vecmath``'s float32 functions against float64 references, in ulps: shared by the tests (millions of
points) and ``bench/vecmath.py`` (every float32).

``ulp_error(result, reference)`` measures ``|result - reference|`` in units of the float32 spacing at the reference
(``2^-149`` below the smallest normal number); a result equal to the reference rounded to float32 counts 0 (so
an overflow to ``inf`` where the reference rounds to ``inf`` is exact), and ``NaN`` matches only ``NaN``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from tcomp import te
from tcomp.backend.driver import build
from tcomp.runtime.module import Module
from tcomp.schedule.schedule import create_schedule
from tcomp.target import Target
from tcomp.te import compute, placeholder


def _erf(x: np.ndarray) -> np.ndarray:
    try:
        from scipy.special import erf  # installed with xgboost; math.erf gives the same float64 values, slower
    except ImportError:  # pragma: no cover - scipy comes with xgboost
        return np.frompyfunc(math.erf, 1, 1)(x).astype(np.float64)
    return np.asarray(erf(x), np.float64)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.where(x >= 0, 1.0 / (1.0 + np.exp(-x)), np.exp(x) / (1.0 + np.exp(x)))


REFERENCES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "exp": np.exp,
    "log": np.log,
    "tanh": np.tanh,
    "erf": _erf,
    "sigmoid": _sigmoid,
}


def reference(op: str, x: np.ndarray) -> np.ndarray:
    """``op`` of the float32 inputs ``x``, computed in float64."""
    with np.errstate(all="ignore"):
        return REFERENCES[op](x.astype(np.float64))


def ulp_error(result: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """The error of each float32 ``result`` against its float64 ``ref``, in float32 ulps (``inf`` for a NaN
    where a number was due, or the reverse)."""
    with np.errstate(all="ignore"):
        result64 = result.astype(np.float64)
        rounded = ref.astype(np.float32)
        magnitude = np.abs(ref)
        exponent = np.floor(np.log2(np.maximum(magnitude, 2.0**-126)))
        exponent = np.where(np.isfinite(exponent), exponent, 127.0)
        error = np.abs(result64 - ref) / np.exp2(exponent - 23)
    exact = (result == rounded) | (np.isnan(result) & np.isnan(ref))
    error = np.where(exact, 0.0, error)
    return np.where(np.isnan(error), np.inf, error)


def special_inputs() -> np.ndarray:
    """Zeros, infinities, NaNs (quiet and signalling, both signs), the smallest and largest denormals and normals,
    the largest finite numbers, and a few ulps around every threshold of ``vecmath``'s functions."""
    bits = np.array([0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7F800001,
                     0x7FBFFFFF, 0x00000001, 0x80000001, 0x007FFFFF, 0x807FFFFF, 0x00800000, 0x80800000,
                     0x7F7FFFFF, 0xFF7FFFFF], np.uint32)
    edges = [88.72283935546875, 89.0, -87.33654, -103.27893, -103.97208, -104.0, 0.625, 0.875, 4.0, 3.9215,
             9.01, 0.34657359, 1.0, 0.70710677, 1.4142135, 2.0**-12, 2.0**-126, 1e-30, 0.5, 2.0, 44.0]
    around = []
    for edge in edges:
        for sign in (1.0, -1.0):
            center = np.array([sign * edge], np.float32).view(np.uint32).astype(np.int64)
            around.append((center + np.arange(-64, 65)).astype(np.uint32))
    return np.concatenate([bits, *around]).view(np.float32)


def sample_inputs(count: int, seed: int = 0) -> np.ndarray:
    """``special_inputs()`` and ``count`` more: half uniform over all float32 bit patterns (every binade alike, NaNs
    included), half uniform in ``[-12, 12]`` where the functions change fastest."""
    rng = np.random.default_rng(seed)
    patterns = rng.integers(0, 1 << 32, count // 2, dtype=np.uint64).astype(np.uint32).view(np.float32)
    dense = rng.uniform(-12.0, 12.0, count - count // 2).astype(np.float32)
    return np.concatenate([special_inputs(), patterns, dense])


def build_unary(op: str, size: int, lanes: int, target: Target | str | None = None) -> Module:
    """A kernel ``y[i] = op(x[i])`` over ``size`` float32 elements, ``lanes`` at a time (``size`` a multiple),
    the vectors shared by the cores."""
    x = placeholder((size,), "float32", name="x")
    y = compute((size,), lambda i: getattr(te, op)(x[i]), name=f"y_{op}")
    s = create_schedule(y)
    outer, inner = s[y].split(y.op.axis[0], factor=lanes)
    if lanes > 1:
        s[y].vectorize(inner)
    s[y].parallel(outer)
    return build(s, [x, y], target=target or "llvm")
