"""Every operator problem of ``op_cases`` under each generic schedule recipe (splits with tails, tile + reorder,
fuse + parallel, vectorize, unroll, compute_inline, compute_at), against numpy; plus the symbolic vector add and
the scan under several schedules."""

from __future__ import annotations

import numpy as np
import pytest

import tcomp
from tcomp import te
from tcomp.backend.testing import build_and_check
from tests.ops.op_cases import CASES, UNARY
from tests.schedule.schedule_recipes import RECIPES

# unary math functions are single-stage: the recipes that only differ for multi-stage operators are skipped for them
_SINGLE_STAGE_RECIPES = ("split_tails", "fuse_parallel", "vectorize_inner", "unroll_inner")
_UNARY_CASES = {f"{name}_{dtype}" for name in UNARY for dtype in ("float32", "float64")}


def _pairs() -> list[tuple[str, str]]:
    pairs = []
    for case_name in sorted(CASES):
        for recipe_name in RECIPES:
            if case_name in _UNARY_CASES and recipe_name not in _SINGLE_STAGE_RECIPES:
                continue
            pairs.append((case_name, recipe_name))
    return pairs


@pytest.mark.parametrize(("case_name", "recipe_name"), _pairs())
def test_operator_under_schedule(case_name: str, recipe_name: str) -> None:
    problem = CASES[case_name]()
    s = tcomp.create_schedule(problem.output)
    RECIPES[recipe_name](s, problem.output)
    build_and_check(s, problem.args, problem.arrays, problem.expected, problem.rtol, problem.atol)


def test_recipes_change_the_loop_nest() -> None:
    """Guards against a recipe that silently does nothing: each one changes the lowered IR of conv2d."""
    baseline_problem = CASES["conv2d_pad"]()
    baseline = str(tcomp.lower(tcomp.create_schedule(baseline_problem.output), baseline_problem.args))
    for name, recipe in RECIPES.items():
        problem = CASES["conv2d_pad"]()
        s = tcomp.create_schedule(problem.output)
        recipe(s, problem.output)
        assert str(tcomp.lower(s, problem.args)) != baseline, name


# ---------------------------------------------------------------------------------------------------------------------
# symbolic shapes
def _vector_add() -> tuple[te.Tensor, te.Tensor, te.Tensor]:
    n = te.var("n")
    a = te.placeholder((n,), name="A")
    b = te.placeholder((n,), name="B")
    c = te.compute((n,), lambda i: a[i] + b[i], name="C")
    return a, b, c


def _vector_add_default(s: tcomp.schedule.Schedule, c: te.Tensor) -> None:
    return None


def _vector_add_split_vectorize(s: tcomp.schedule.Schedule, c: te.Tensor) -> None:
    outer, inner = s[c].split(c.op.axis[0], factor=8)
    s[c].vectorize(inner)


def _vector_add_parallel_unroll(s: tcomp.schedule.Schedule, c: te.Tensor) -> None:
    outer, inner = s[c].split(c.op.axis[0], nparts=3)
    s[c].parallel(outer)
    inner_outer, inner_inner = s[c].split(inner, factor=4)
    s[c].unroll(inner_inner)


@pytest.mark.parametrize(
    "schedule_fn", [_vector_add_default, _vector_add_split_vectorize, _vector_add_parallel_unroll],
    ids=["default", "split_vectorize", "parallel_unroll"],
)
def test_symbolic_vector_add_with_several_n(schedule_fn: object) -> None:
    a, b, c = _vector_add()
    s = tcomp.create_schedule(c)
    schedule_fn(s, c)  # type: ignore[operator]
    module = tcomp.build(s, [a, b, c])
    rng = np.random.default_rng(30)
    for n in (1, 2, 7, 13, 100, 257):
        x = rng.standard_normal(n).astype("float32")
        y = rng.standard_normal(n).astype("float32")
        out = np.full(n, np.nan, dtype="float32")
        module(x, y, out)
        np.testing.assert_allclose(out, x + y, rtol=1e-6, err_msg=f"n={n}")


# ---------------------------------------------------------------------------------------------------------------------
# scan
def _cumsum() -> tuple[te.Tensor, te.Tensor]:
    """TVM's scan example: ``s[0, i] = X[0, i]``, ``s[t, i] = s[t - 1, i] + X[t, i]`` over symbolic ``(m, n)``."""
    m, n = te.var("m"), te.var("n")
    x = te.placeholder((m, n), name="X")
    state = te.placeholder((m, n), name="state")
    init = te.compute((1, n), lambda _, i: x[0, i], name="init")
    update = te.compute((m, n), lambda t, i: state[t - 1, i] + x[t, i], name="update")
    return x, te.scan(init, update, state, inputs=[x], name="cumsum")


def _scan_split(s: tcomp.schedule.Schedule, update: te.Tensor, init: te.Tensor) -> None:
    s[update].split(update.op.axis[1], factor=3)


def _scan_vectorize(s: tcomp.schedule.Schedule, update: te.Tensor, init: te.Tensor) -> None:
    _, inner = s[update].split(update.op.axis[1], factor=4)
    s[update].vectorize(inner)
    _, init_inner = s[init].split(init.op.axis[1], factor=4)
    s[init].vectorize(init_inner)


def _scan_parallel(s: tcomp.schedule.Schedule, update: te.Tensor, init: te.Tensor) -> None:
    outer, inner = s[update].split(update.op.axis[1], factor=2)
    s[update].parallel(outer)
    s[update].unroll(inner)


@pytest.mark.parametrize("schedule_fn", [None, _scan_split, _scan_vectorize, _scan_parallel],
                         ids=["default", "split", "vectorize", "parallel_unroll"])
def test_scan_cumulative_sum(schedule_fn: object) -> None:
    x, result = _cumsum()
    s = tcomp.create_schedule(result)
    if schedule_fn is not None:
        scan_op = result.op
        schedule_fn(s, scan_op.update, scan_op.init)  # type: ignore[operator, attr-defined]
    module = tcomp.build(s, [x, result])
    rng = np.random.default_rng(31)
    for m, n in ((1, 1), (5, 7), (13, 31), (4, 100)):
        data = rng.standard_normal((m, n)).astype("float32")
        out = np.full((m, n), np.nan, dtype="float32")
        module(data, out)
        np.testing.assert_allclose(out, np.cumsum(data, axis=0), rtol=1e-5, atol=1e-5, err_msg=f"m={m}, n={n}")




# ---------------------------------------------------------------------------------------------------------------------
# checked mode: no operator under any recipe reads or writes outside a buffer
@pytest.mark.parametrize("recipe_name", ["default", "compute_at_inner", "inline_injective", "tile_reorder"])
def test_operators_stay_in_bounds_in_checked_mode(recipe_name: str) -> None:
    with tcomp.config.override(check_bounds=True):
        for case_name in sorted(CASES):
            if case_name in _UNARY_CASES:
                continue
            problem = CASES[case_name]()
            s = tcomp.create_schedule(problem.output)
            if recipe_name != "default":
                RECIPES[recipe_name](s, problem.output)
            build_and_check(s, problem.args, problem.arrays, problem.expected, problem.rtol, problem.atol)


# ---------------------------------------------------------------------------------------------------------------------
def test_split_of_a_split_inner_axis_with_a_tail() -> None:
    """Splitting the inner part of a split with a factor that does not divide it must not repeat iterations
    (k = ko * 2 + kii with kii in [0, 3) would cover k = 2 twice without a guard on k.inner)."""
    a = te.placeholder((4,), name="A")
    k = te.reduce_axis((0, 4), name="k")
    c = te.compute((1,), lambda i: te.sum(a[k], axis=k), name="C")
    s = tcomp.create_schedule(c)
    _, k_inner = s[c].split(k, nparts=2)  # k.inner has extent 2
    s[c].split(k_inner, factor=3)  # k.inner.inner in [0, 3) overshoots it
    data = np.ones(4, dtype="float32")
    build_and_check(s, [a, c], [data], np.array([4.0], dtype="float32"))


@pytest.mark.parametrize("rows", [1, 2, 3])
def test_scan_with_static_rows_reads_its_time_variable(rows: int) -> None:
    # the time variable starts at the init's row count: with one update step it is the constant 1, never 0
    x = te.placeholder((rows, 5), name="X")
    state = te.placeholder((rows, 5), name="state")
    init = te.compute((1, 5), lambda _, i: x[0, i], name="init")
    update = te.compute((rows, 5), lambda t, i: state[t - 1, i] + x[t, i], name="update")
    result = te.scan(init, update, state, inputs=[x], name="cumsum")
    module = tcomp.build(tcomp.create_schedule(result), [x, result])
    data = np.random.default_rng(32).standard_normal((rows, 5)).astype("float32")
    out = np.full((rows, 5), np.nan, dtype="float32")
    module(data, out)
    np.testing.assert_allclose(out, np.cumsum(data, axis=0), rtol=1e-5, atol=1e-6)
