"""``check_division``: no rewrite; an integer division or modulo by the constant zero is refused, naming it."""

from __future__ import annotations

import pytest
from transform_golden import loop_nest

import tcomp
from tcomp import te
from tcomp.transform.check_division import DivisionByZeroError, check_division
from tcomp.transform.simplify import simplify_func


def test_a_function_without_division_by_zero_is_returned_as_is() -> None:
    A = te.placeholder((8,), name="A", dtype="int32")
    B = te.compute((8,), lambda i: A[i] // 3 + A[i] % 2, name="B")
    func = loop_nest(tcomp.create_schedule(B), [A, B], "div")
    assert check_division(func) is func


def test_a_division_by_the_constant_zero_is_refused() -> None:
    A = te.placeholder((8,), name="A", dtype="int32")
    B = te.compute((8,), lambda i: A[i] // (A[i] * 0), name="B")
    func = simplify_func(loop_nest(tcomp.create_schedule(B), [A, B], "zero"))  # A[i] * 0 folds to 0
    with pytest.raises(DivisionByZeroError, match=r"integer division by the constant zero in A\[i\] // 0"):
        check_division(func)
