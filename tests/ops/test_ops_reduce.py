"""Reductions: sum / prod / max / min / mean over axes with keepdims, integer reductions, user-defined reducers,
conditional reductions (``where=``), initial values, and argument errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import tcomp
from tcomp import ops, te
from tcomp.backend.testing import build_and_check
from tcomp.ops import OpError
from tcomp.ops.testing import random_data

REDUCERS: dict[str, tuple[Callable[..., te.Tensor], Callable[..., np.ndarray]]] = {
    "sum": (ops.sum, np.sum),
    "prod": (ops.prod, np.prod),
    "max": (ops.max, np.max),
    "min": (ops.min, np.min),
    "mean": (ops.mean, np.mean),
}
AXES: list[Any] = [None, 0, 1, -1, (0, 2), (2, 0, 1), ()]


def _check(output: te.Tensor, inputs: list[te.Tensor], arrays: list[np.ndarray], expected: Any,
           rtol: float = 1e-5, atol: float = 1e-6) -> None:
    build_and_check(tcomp.create_schedule(output), [*inputs, output], arrays, np.asarray(expected), rtol, atol)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("name", sorted(REDUCERS))
def test_reduce_float32(name: str, axis: Any, keepdims: bool) -> None:
    fop, fnp = REDUCERS[name]
    shape = (3, 7, 5)
    x_tensor = te.placeholder(shape, name="X")
    x = random_data(np.random.default_rng(200), shape, low=0.6, high=1.4)
    out = fop(x_tensor, axis=axis, keepdims=keepdims)
    expected = fnp(x.astype(np.float64), axis=axis, keepdims=keepdims).astype("float32")
    assert tuple(int(d) for d in out.shape) == expected.shape
    _check(out, [x_tensor], [x], expected, rtol=2e-5)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_integer_reductions(dtype: str) -> None:
    x_tensor = te.placeholder((7, 13), dtype=dtype, name="X")
    x = np.random.default_rng(201).integers(-100, 100, (7, 13)).astype(dtype)
    _check(ops.sum(x_tensor, axis=1), [x_tensor], [x], x.sum(axis=1))
    _check(ops.max(x_tensor, axis=0), [x_tensor], [x], x.max(axis=0))
    _check(ops.min(x_tensor), [x_tensor], [x], x.min())
    mean = ops.mean(x_tensor, axis=1)
    assert mean.dtype == "float64"
    _check(mean, [x_tensor], [x], x.mean(axis=1), rtol=1e-12)


def test_float64_sum_is_exact_to_double_precision() -> None:
    x_tensor = te.placeholder((100,), dtype="float64", name="X")
    x = random_data(np.random.default_rng(202), (100,), "float64")
    _check(ops.sum(x_tensor), [x_tensor], [x], x.sum(), rtol=1e-12)


def test_max_min_of_negative_and_infinite_values() -> None:
    x_tensor = te.placeholder((2, 4), name="X")
    x = np.array([[-5.0, -np.inf, -3.0, -4.0], [np.inf, 1.0, -np.inf, 0.0]], dtype="float32")
    _check(ops.max(x_tensor, axis=1), [x_tensor], [x], x.max(axis=1))
    _check(ops.min(x_tensor, axis=1), [x_tensor], [x], x.min(axis=1))


# ---------------------------------------------------------------------------------------------------------------------
# user-defined reducers, where=, init=
def test_comm_reducer_product() -> None:
    product = te.comm_reducer(lambda x, y: x * y, lambda dtype: te.const(1, dtype), name="product")
    x_tensor = te.placeholder((13, 7), name="X")
    k = te.reduce_axis((0, 7), name="k")
    out = te.compute((13,), lambda i: product(x_tensor[i, k], axis=k), name="out")
    x = random_data(np.random.default_rng(203), (13, 7), low=0.5, high=1.5)
    _check(out, [x_tensor], [x], x.prod(axis=1))


def test_comm_reducer_sum_of_squares_over_two_axes() -> None:
    sumsq = te.comm_reducer(lambda x, y: x + y, lambda dtype: te.const(0, dtype), name="sumsq")
    x_tensor = te.placeholder((5, 7, 13), name="X")
    j = te.reduce_axis((0, 5), name="j")
    k = te.reduce_axis((0, 13), name="k")
    out = te.compute((7,), lambda i: sumsq(x_tensor[j, i, k] * x_tensor[j, i, k], axis=[j, k]), name="out")
    x = random_data(np.random.default_rng(204), (5, 7, 13))
    _check(out, [x_tensor], [x], (x.astype(np.float64) ** 2).sum(axis=(0, 2)))


def test_comm_reducer_max_abs() -> None:
    max_abs = te.comm_reducer(lambda x, y: te.if_then_else(x > y, x, y), lambda dtype: te.const(0, dtype),
                              name="max_abs")
    x_tensor = te.placeholder((7, 31), name="X")
    k = te.reduce_axis((0, 31), name="k")
    out = te.compute((7,), lambda i: max_abs(te.abs(x_tensor[i, k]), axis=k), name="out")
    x = random_data(np.random.default_rng(205), (7, 31))
    _check(out, [x_tensor], [x], np.abs(x).max(axis=1))


def test_reduction_with_where_condition() -> None:
    x_tensor = te.placeholder((13, 13), name="X")
    k = te.reduce_axis((0, 13), name="k")
    out = te.compute((13,), lambda i: te.sum(x_tensor[i, k], axis=k, where=k <= i), name="lower_row_sum")
    x = random_data(np.random.default_rng(206), (13, 13))
    _check(out, [x_tensor], [x], np.tril(x).sum(axis=1))


def test_max_with_where_on_data() -> None:
    x_tensor = te.placeholder((7, 13), name="X")
    k = te.reduce_axis((0, 13), name="k")
    out = te.compute((7,), lambda i: te.max(x_tensor[i, k], axis=k, where=x_tensor[i, k] < 0.5), name="capped")
    x = random_data(np.random.default_rng(207), (7, 13))
    _check(out, [x_tensor], [x], np.where(x < 0.5, x, -np.inf).max(axis=1))


def test_reduction_with_init_value() -> None:
    x_tensor = te.placeholder((7, 13), name="X")
    k = te.reduce_axis((0, 13), name="k")
    out = te.compute((7,), lambda i: te.sum(x_tensor[i, k], axis=k, init=10.0), name="offset_sum")
    x = random_data(np.random.default_rng(208), (7, 13))
    _check(out, [x_tensor], [x], x.sum(axis=1) + 10)


def test_reduction_over_a_sub_range() -> None:
    x_tensor = te.placeholder((7, 13), name="X")
    k = te.reduce_axis((3, 11), name="k")
    out = te.compute((7,), lambda i: te.sum(x_tensor[i, k], axis=k), name="window_sum")
    x = random_data(np.random.default_rng(209), (7, 13))
    _check(out, [x_tensor], [x], x[:, 3:11].sum(axis=1))


def test_symbolic_reduction() -> None:
    n, m = te.var("n"), te.var("m")
    x_tensor = te.placeholder((n, m), name="X")
    out = ops.sum(x_tensor, axis=1)
    s = tcomp.create_schedule(out)
    _, inner = s[out].split(out.op.axis[0], factor=4)
    module = tcomp.build(s, [x_tensor, out])
    rng = np.random.default_rng(210)
    for rows, cols in ((1, 1), (5, 7), (13, 100)):
        x = random_data(rng, (rows, cols))
        result = np.zeros(rows, dtype="float32")
        module(x, result)
        np.testing.assert_allclose(result, x.sum(axis=1), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------------
# errors
def test_axis_out_of_range() -> None:
    with pytest.raises(OpError, match="sum: axis=3 is out of range for a tensor of 2 dimensions"):
        ops.sum(te.placeholder((3, 4), name="X"), axis=3)


def test_repeated_axis() -> None:
    with pytest.raises(OpError, match=r"max: axis=\(0, -2\) repeats an axis"):
        ops.max(te.placeholder((3, 4), name="X"), axis=(0, -2))


def test_non_integer_axis() -> None:
    with pytest.raises(OpError, match="mean: axis must be an int, got 1.0"):
        ops.mean(te.placeholder((3, 4), name="X"), axis=1.0)


def test_reduce_needs_a_tensor() -> None:
    with pytest.raises(OpError, match="min: argument x must be a tensor"):
        ops.min(np.zeros(3))


@pytest.mark.parametrize("shape", [(1, 128, 768), (3, 40, 320), (96, 8, 48), (5, 7, 4096), (1, 64, 28, 28), (50176,),
                                   (3, 5, 7, 9)])
@pytest.mark.parametrize("name", ["sum", "max", "min"])
def test_large_reductions_to_one_value_in_parallel_parts(shape: tuple[int, ...], name: str) -> None:
    """The default CPU schedule of a large reduction to one value (``_reduce_in_parts``: parts over the cores, each
    several vector accumulators) against numpy, NaN propagating; and where no outer axis splits into parts."""
    from tcomp.ops.cpu.dispatch import schedule_cpu

    build, reference = REDUCERS[name]
    x = te.placeholder(shape, name="x")
    y = build(x)
    module = tcomp.build(schedule_cpu(y, tcomp.Target("llvm -num-cores=2")), [x, y], target="llvm -num-cores=2",
                         check_bounds=True)
    data = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    for planted in (None, tuple(min(i, d - 1) for i, d in zip((0, 5, 7, 8), shape))):
        if planted is not None:
            data[planted] = np.nan
        got = np.zeros((), np.float32)
        module(data, got)
        np.testing.assert_allclose(got, reference(data), rtol=1e-4, atol=1e-3, equal_nan=True)


@pytest.mark.parametrize("shape", [(1, 64, 28, 28), (50176,)])
def test_whole_tensors_reduce_in_parts_whatever_their_last_axis(shape: tuple[int, ...]) -> None:
    """A reduction of a whole tensor fuses its trailing axes until the vector width divides them (an image's 28 x 28
    plane), or splits its one axis: it runs in parallel parts (1 x 256 x 56 x 56, 2 cores: 1.39 -> 0.034 ms)."""
    from tcomp.ops.cpu.dispatch import schedule_cpu

    x = te.placeholder(shape, name="x")
    y = ops.max(x)
    target = tcomp.Target("llvm -num-cores=2")
    assert "parallel" in str(tcomp.lower(schedule_cpu(y, target), [x, y]))


@pytest.mark.parametrize("name", ["sum", "max", "min"])
def test_a_reduction_to_one_value_over_a_symbolic_axis_runs_in_parts(name: str) -> None:
    """A prompt's activations quantized at run time (``[n, 768]``, ``n`` symbolic): the outer axis cut into parts
    over the cores, the last ones guarded; against numpy for lengths no part count divides, NaN propagating."""
    from tcomp.ops.cpu.dispatch import schedule_cpu

    build, reference = REDUCERS[name]
    n = te.var("n", "int32", max_value=1 << 20)
    x = te.placeholder((n, 768), name="x")
    y = build(x)
    target = tcomp.Target("llvm -num-cores=2")
    schedule = schedule_cpu(y, target)
    assert "parallel" in str(tcomp.lower(schedule, [x, y]))
    module = tcomp.build(schedule, [x, y], target=target, check_bounds=True)
    rng = np.random.default_rng(4)
    for rows in (1, 3, 17, 130):
        data = rng.standard_normal((rows, 768)).astype(np.float32)
        got = np.zeros((), np.float32)
        module(data, got)
        np.testing.assert_allclose(got, reference(data), rtol=1e-4, atol=1e-3)
        data[rows - 1, 5] = np.nan
        module(data, got)
        assert np.isnan(got)
