"""Unit tests of const_int_bound (tcomp/arith/int_bound.py)."""

from __future__ import annotations

import pytest

from tcomp.arith import const_int_bound
from tcomp.ir import expr as E
from tcomp.ir.expr import Var, const, max_expr, min_expr, select, truncdiv, truncmod

x, y = Var("x"), Var("y")
BOUNDS = {x: (-3, 5), y: (0, 7)}


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda: x + y, (-3, 12)),
        (lambda: x - y, (-10, 5)),
        (lambda: x * y, (-21, 35)),
        (lambda: x * -2, (-10, 6)),
        (lambda: x // 2, (-2, 2)),
        (lambda: x // -2, (-3, 1)),
        (lambda: x % 4, (0, 3)),
        (lambda: y % 8, (0, 7)),
        (lambda: (y + 8) % 8, (0, 7)),
        (lambda: truncdiv(x, 2), (-1, 2)),
        (lambda: truncmod(x, 4), (-3, 3)),
        (lambda: truncmod(y, 4), (0, 3)),
        (lambda: min_expr(x, y), (-3, 5)),
        (lambda: max_expr(x, y), (0, 7)),
        (lambda: select(x < 0, y, x), (-3, 7)),
        (lambda: x < 6, (1, 1)),
        (lambda: x < -3, (0, 0)),
        (lambda: x < y, (0, 1)),
        (lambda: y // (x + 4), (0, 7)),
        (lambda: x % (y + 1), (0, 7)),
        (lambda: x * x, (0, 25)),
    ],
)
def test_bounds(build, expected: tuple[int, int]) -> None:
    lo, hi = const_int_bound(build(), BOUNDS)
    assert lo is not None and hi is not None
    assert lo <= expected[0] and hi >= expected[1]
    assert (lo, hi) == expected


def test_unknown_sides_are_none() -> None:
    z = Var("z")
    assert const_int_bound(z) == (None, None)
    assert const_int_bound(z % 8) == (0, 7)
    assert const_int_bound(min_expr(z, 4)) == (None, 4)
    assert const_int_bound(z - z) == (0, 0)  # decided after simplification


def test_dtype_ranges() -> None:
    b = Var("b", "bool")
    u = Var("u", "uint8")
    i8 = Var("c", "int8")
    assert const_int_bound(b) == (0, 1)
    assert const_int_bound(u) == (0, 255)
    assert const_int_bound(E.Cast(u, "int32") + 1) == (1, 256)
    assert const_int_bound(i8) == (-128, 127)
    # uint8 arithmetic wraps: the bound falls back to the whole type
    assert const_int_bound(u + E.IntImm(1, "uint8")) == (0, 255)
    assert const_int_bound(Var("w", "uint32")) == (0, None)


def test_casts() -> None:
    assert const_int_bound(E.Cast(x, "int64"), BOUNDS) == (-3, 5)
    assert const_int_bound(E.Cast(x * 100, "int8"), BOUNDS) == (-128, 127)
    assert const_int_bound(E.Cast(x, "bool"), BOUNDS) == (0, 1)
    assert const_int_bound(E.Cast(y + 1, "bool"), BOUNDS) == (1, 1)


def test_vectors_and_let() -> None:
    ramp = E.Ramp(y, const(2), 4, "int32x4")
    assert const_int_bound(ramp, BOUNDS) == (0, 13)
    assert const_int_bound(E.Broadcast(x, 4, "int32x4"), BOUNDS) == (-3, 5)
    t = Var("t")
    assert const_int_bound(E.Let(t, y * 2, t + 1, "int32"), BOUNDS) == (1, 15)


def test_loads_and_calls_use_their_dtype() -> None:
    call = E.Call("popcount", (x,), "int32")
    assert const_int_bound(call, BOUNDS) == (None, None)
    assert const_int_bound(E.Call("f", (x,), "uint16"), BOUNDS) == (0, 65535)
