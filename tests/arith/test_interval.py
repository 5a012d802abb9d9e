"""Unit tests of IntervalSet and eval_interval (tcomp/arith/interval.py)."""

from __future__ import annotations

from tcomp.arith import IntervalSet, eval_interval, simplify
from tcomp.arith.keys import ExprKeys
from tcomp.ir import expr as E
from tcomp.ir.expr import Var, const, max_expr, min_expr, select, truncdiv

o, i, j, n = Var("o"), Var("i"), Var("j"), Var("n")


def same(a: E.Expr | None, b: E.Expr) -> bool:
    return a is not None and ExprKeys().equal(a, b)


def is_const(e: E.Expr | None, value: int) -> bool:
    return isinstance(e, E.IntImm) and e.value == value


def rng(lo: int, hi: int) -> IntervalSet:
    return IntervalSet(const(lo), const(hi))


def test_split_extent_is_constant() -> None:
    result = eval_interval(o * 4 + i, {i: rng(0, 3)})
    assert same(result.min, o * 4)
    assert same(result.max, o * 4 + 3)
    assert result.min is not None and result.max is not None
    assert is_const(simplify(result.max - result.min + 1), 4)


def test_both_axes_of_a_split() -> None:
    result = eval_interval(o * 4 + i, {o: rng(0, 7), i: rng(0, 3)})
    assert is_const(result.min, 0) and is_const(result.max, 31)


def test_floormod_inside_one_period() -> None:
    result = eval_interval((o * 4 + i) % 4, {i: rng(0, 3)})
    assert is_const(result.min, 0) and is_const(result.max, 3)
    result = eval_interval((o * 8 + i) % 8, {i: rng(0, 3)})
    assert is_const(result.min, 0) and is_const(result.max, 3)


def test_floormod_spanning_periods() -> None:
    result = eval_interval(i % 4, {i: IntervalSet(n, n + 5)})
    assert is_const(result.min, 0) and is_const(result.max, 3)


def test_floordiv() -> None:
    result = eval_interval((o * 4 + i) // 2, {i: rng(0, 3)})
    assert same(result.min, o * 2) and same(result.max, o * 2 + 1)
    result = eval_interval(i // -2, {i: rng(0, 5)})
    assert is_const(result.min, -3) and is_const(result.max, 0)
    result = eval_interval(truncdiv(i, 2), {i: rng(0, 5)})
    assert is_const(result.min, 0) and is_const(result.max, 2)


def test_multiplication_signs() -> None:
    result = eval_interval(i * -2, {i: rng(1, 3)})
    assert is_const(result.min, -6) and is_const(result.max, -2)
    result = eval_interval(i * j, {i: rng(1, 3), j: rng(2, 4)})
    assert is_const(result.min, 2) and is_const(result.max, 12)
    result = eval_interval(i * j, {i: rng(-1, 3), j: rng(-2, 4)})
    assert is_const(result.min, -6) and is_const(result.max, 12)
    result = eval_interval(i * n, {i: rng(0, 3)}, {n: (1, 100)})
    assert is_const(result.min, 0) and same(result.max, n * 3)


def test_min_max_select() -> None:
    result = eval_interval(min_expr(i, 2), {i: rng(0, 5)})
    assert is_const(result.min, 0) and is_const(result.max, 2)
    result = eval_interval(max_expr(i, n), {i: rng(0, 5)})
    assert same(result.min, max_expr(n, 0)) or same(result.min, max_expr(0, n))
    result = eval_interval(select(j < 2, i, i + 10), {i: rng(0, 5), j: rng(0, 3)})
    assert is_const(result.min, 0) and is_const(result.max, 15)


def test_unbounded_sides() -> None:
    result = eval_interval(i + 1, {i: IntervalSet(const(0), None)})
    assert is_const(result.min, 1) and result.max is None
    result = eval_interval(i % 8, {i: IntervalSet(None, None)})
    assert is_const(result.min, 0) and is_const(result.max, 7)


def test_comparisons() -> None:
    assert is_const(eval_interval(i < 8, {i: rng(0, 7)}).min, 1)
    both = eval_interval(i < 4, {i: rng(0, 7)})
    assert is_const(both.min, 0) and is_const(both.max, 1)
    decided = eval_interval(i < n, {i: IntervalSet(const(0), n - 1)})
    assert is_const(decided.min, 1) and is_const(decided.max, 1)


def test_cast_ramp_broadcast_and_loads() -> None:
    result = eval_interval(E.Cast(i, "int64"), {i: rng(0, 3)})
    assert result.min is not None and result.min.dtype == "int64"
    ramp = E.Ramp(i * 4, const(1), 4, "int32x4")
    result = eval_interval(ramp, {i: rng(0, 2)})
    assert is_const(result.min, 0) and is_const(result.max, 11)
    call = E.Call("f", (i,), "int32")
    assert eval_interval(call, {i: rng(0, 2)}).is_everything()
    free = E.Call("f", (n,), "int32")
    assert eval_interval(free, {i: rng(0, 2)}).is_point()


def test_interval_set_helpers() -> None:
    assert IntervalSet.point(n).is_point()
    assert not rng(0, 3).is_point()
    assert IntervalSet.point(const(3)).is_point()
    ranged = IntervalSet.from_range(n, 4)
    assert same(ranged.min, n) and same(ranged.max, n + 3)
    union = rng(0, 3).union(rng(2, 9))
    assert is_const(union.min, 0) and is_const(union.max, 9)
    symbolic = IntervalSet(n, n + 3).union(IntervalSet(n + 1, n + 8))
    assert same(symbolic.min, n) and same(symbolic.max, n + 8)
    assert rng(0, 3).union(IntervalSet(None, const(1))).min is None
    assert str(IntervalSet(None, const(2))) == "[-inf, 2]"


def test_domain_replaces_the_bound_of_its_variable() -> None:
    """A variable of the domain takes the domain's interval even where ``bounds`` says something else about it: in
    bound inference one ``Var`` is both a loop variable (bounds: its loop's range) and a root axis of a compute
    (domain: the absolute rows read). A symbolic point used to keep the stale loop bound (``i`` in ``[0, 0]``, so
    the region read at row ``r`` was row 0)."""
    result = eval_interval(i, {i: IntervalSet.point(n)}, {i: (0, 0)})
    assert same(result.min, n) and same(result.max, n)
    result = eval_interval(i * 2, {i: IntervalSet(const(0), n)}, {i: (0, 0)})
    assert same(result.max, n * 2)
