"""The constant-folding table (``arith/fold.py``) and the tile factors (``arith/factors.py``) against numpy and
brute force, since the interpreter and the simplifier both rest on them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcomp.arith.factors import ceil_power_of_two, divisors, largest_divisor, pow2_divisor, powers_of_two
from tcomp.arith.fold import fold_binary, trunc_div
from tcomp.ir import expr as E

INTS = st.integers(-1000, 1000)


@given(INTS, INTS.filter(lambda v: v != 0))
def test_integer_division_truncates_like_c(x: int, y: int) -> None:
    assert trunc_div(x, y) == int(np.trunc(x / y))
    assert fold_binary(E.Div, x, y, is_float=False) == trunc_div(x, y)
    assert fold_binary(E.Mod, x, y, is_float=False) == int(np.fmod(np.int64(x), np.int64(y)))
    assert fold_binary(E.FloorDiv, x, y, is_float=False) == x // y
    assert fold_binary(E.FloorMod, x, y, is_float=False) == x % y


@given(st.floats(-100, 100), st.floats(0.5, 50) | st.floats(-50, -0.5))
def test_float_division_rules(x: float, y: float) -> None:
    assert fold_binary(E.Div, x, y, is_float=True) == x / y
    assert fold_binary(E.Mod, x, y, is_float=True) == math.fmod(x, y)
    assert fold_binary(E.FloorDiv, x, y, is_float=True) == math.floor(x / y)
    assert fold_binary(E.FloorMod, x, y, is_float=True) == pytest.approx(x - y * math.floor(x / y))


@pytest.mark.parametrize("cls", [E.Div, E.Mod, E.FloorDiv, E.FloorMod])
def test_division_by_zero_folds_to_nothing(cls: type[E.BinaryOp]) -> None:
    assert fold_binary(cls, 7, 0, is_float=False) is None


def test_comparisons_and_logic() -> None:
    assert fold_binary(E.LT, 2, 3, is_float=False) is True
    assert fold_binary(E.GE, 2, 3, is_float=False) is False
    assert fold_binary(E.And, 1, 0, is_float=False) is False
    assert fold_binary(E.Or, 1, 0, is_float=False) is True
    assert fold_binary(E.Min, -4, 3, is_float=False) == -4


@pytest.mark.parametrize("cls", [E.Min, E.Max])
def test_float_min_max_propagate_nan(cls: type[E.BinaryOp]) -> None:
    for x, y in [(math.nan, 1.0), (1.0, math.nan), (math.nan, math.nan)]:
        assert math.isnan(fold_binary(cls, x, y, is_float=True))
    assert fold_binary(cls, -0.5, 2.0, is_float=True) == (-0.5 if cls is E.Min else 2.0)


@given(st.integers(1, 5000), st.integers(0, 300))
def test_factors_against_brute_force(n: int, limit: int) -> None:
    brute = [d for d in range(1, n + 1) if n % d == 0]
    assert divisors(n) == brute
    assert largest_divisor(n, limit) == max(d for d in brute if d <= max(1, limit))
    power = pow2_divisor(n, max(1, limit))
    assert n % power == 0 and power <= max(1, limit) and (power * 2 > limit or n % (power * 2) != 0)
    assert ceil_power_of_two(n) >= n > ceil_power_of_two(n) // 2 or n == 1
    assert powers_of_two(1, n) == [1 << p for p in range(n.bit_length())]
