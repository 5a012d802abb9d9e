"""Unit tests of the simplifier's rule sets (see tcomp/arith/rewrite.py, canonical.py, divmod.py, vector.py)."""

from __future__ import annotations

import pytest

from tcomp.arith import simplify
from tcomp.arith.keys import ExprKeys
from tcomp.ir import expr as E
from tcomp.ir.expr import Var, const, max_expr, min_expr, select, truncdiv, truncmod


def same(a: E.Expr, b: E.Expr) -> bool:
    """Exact equality: the same tree over the same variables."""
    return ExprKeys().equal(a, b)


def is_const(e: E.Expr, value: int) -> bool:
    return isinstance(e, E.IntImm) and e.value == value


@pytest.fixture
def v() -> dict[str, Var]:
    return {name: Var(name) for name in ("i", "j", "o", "x", "y", "z", "a", "n")}


# -- constant folding --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda: const(7) // const(2), 3),
        (lambda: const(-7) // const(2), -4),
        (lambda: const(-7) % const(2), 1),
        (lambda: const(7) % const(-2), -1),
        (lambda: truncdiv(-7, 2), -3),
        (lambda: truncmod(-7, 2), -1),
        (lambda: min_expr(3, 5), 3),
        (lambda: max_expr(3, 5), 5),
        (lambda: const(3) * 4 - 2, 10),
    ],
)
def test_int_constant_folding(build, expected: int) -> None:
    result = simplify(build())
    assert is_const(result, expected)


def test_division_by_zero_is_not_folded() -> None:
    for e in (const(4) // const(0), const(4) % const(0), truncdiv(4, 0), truncmod(4, 0)):
        result = simplify(e)
        assert type(result) is type(e)
        assert is_const(result.b, 0)


def test_float_folding_and_identities() -> None:
    f = Var("f", "float32")
    result = simplify(const(1.5) * const(2.0) + const(0.25))
    assert isinstance(result, E.FloatImm) and result.value == 3.25
    assert simplify(f * 1.0) is f
    assert simplify(f + 0.0) is f
    assert simplify(f - 0.0) is f
    assert simplify(f / 1.0) is f
    assert simplify(const(1.0) / const(0.0)).__class__ is E.Div


def test_comparison_and_logic_folding() -> None:
    assert is_const(simplify(const(3) < const(4)), 1)
    assert simplify(const(3) < const(4)).dtype == "bool"
    b = Var("b", "bool")
    assert simplify(E.logical_and(b, True)) is b
    assert is_const(simplify(E.logical_and(b, False)), 0)
    assert simplify(E.logical_or(b, False)) is b
    assert is_const(simplify(E.logical_or(True, b)), 1)
    assert simplify(E.logical_not(E.logical_not(b))) is b


# -- canonical linear form ---------------------------------------------------------------------------------------


def test_like_terms_cancel(v: dict[str, Var]) -> None:
    i, j, a, x = v["i"], v["j"], v["a"], v["x"]
    assert is_const(simplify((i * 4 + j) - (j + i * 4)), 0)
    assert is_const(simplify((a + 1) * 4 - 4 * a), 4)
    assert same(simplify(x * 2 + x * 3), x * 5)


def test_term_order_is_deterministic(v: dict[str, Var]) -> None:
    i, j, k = v["i"], v["j"], v["x"]
    first = simplify(j + k + i * 4 + 3)
    second = simplify(3 + k + i * 4 + j)
    assert same(first, second)
    assert str(first) == "i * 4 + j + x + 3"


def test_products_expand(v: dict[str, Var]) -> None:
    x, y = v["x"], v["y"]
    assert is_const(simplify((x + 1) * (y + 2) - x * y - 2 * x - y), 2)
    assert is_const(simplify(x * y - y * x), 0)


def test_returns_same_object_when_unchanged(v: dict[str, Var]) -> None:
    i, j = v["i"], v["j"]
    e = i * 4 + j
    assert simplify(e) is e
    assert simplify(i) is i


# -- division and modulo -----------------------------------------------------------------------------------------


def test_split_fuse_identities(v: dict[str, Var]) -> None:
    o, i, x, y, z = v["o"], v["i"], v["x"], v["y"], v["z"]
    bounds = {i: (0, 3), z: (0, 3)}
    assert simplify((o * 4 + i) // 4, bounds) is o
    assert simplify((o * 4 + i) % 4, bounds) is i
    assert same(simplify((x * 8 + y * 4 + z) // 4, bounds), x * 2 + y)
    assert same(simplify((x // 4) * 4 + x % 4), x)


def test_coarser_period(v: dict[str, Var]) -> None:
    """A tile of 17 channels inside a group of 68: the group of channel ``k*17 + o`` is ``k // 4`` for every ``o``
    of the tile (so a register tile's channels share one input load)."""
    k, o, x = v["o"], v["i"], v["x"]
    bounds = {o: (0, 16)}
    assert same(simplify((k * 17 + o) // 68, bounds), k // 4)
    assert same(simplify((k * 17 + o) % 68, bounds), k % 4 * 17 + o)
    assert same(simplify((k * 34 + o * 2) % 136, bounds), k % 4 * 34 + o * 2)
    # o may pass the tile: nothing to simplify
    assert isinstance(simplify((k * 17 + x) // 68, {x: (0, 17)}), E.FloorDiv)


def test_coarser_period_matches_python() -> None:
    """Every dividend ``k*c1 + o + offset`` over small ranges, against Python's ``//`` and ``%``."""
    k, o = Var("k"), Var("o")
    for c1, d, extra, offset, o_max in ((2, 3, 1, 0, 1), (17, 4, 1, 0, 16), (4, 2, 2, 1, 2), (3, 3, 1, 2, 0),
                                        (8, 2, 1, 0, 9)):
        divisor = c1 * d * extra
        dividend = k * c1 + o + offset
        for is_div in (True, False):
            result = simplify(dividend // divisor if is_div else dividend % divisor, {k: (0, 30), o: (0, o_max)})
            for kv in range(31):
                for ov in range(o_max + 1):
                    n = kv * c1 + ov + offset
                    got = simplify(result, {k: (kv, kv), o: (ov, ov)})
                    assert is_const(got, n // divisor if is_div else n % divisor), (c1, divisor, offset, kv, ov)


def test_div_mod_by_one_and_nesting(v: dict[str, Var]) -> None:
    x = v["x"]
    assert simplify(x // 1) is x
    assert is_const(simplify(x % 1), 0)
    assert same(simplify((x // 4) // 8), x // 32)
    assert same(simplify((x % 16) % 4), x % 4)


def test_div_mod_small_dividend(v: dict[str, Var]) -> None:
    x = v["x"]
    bounds = {x: (0, 7)}
    assert is_const(simplify(x // 8, bounds), 0)
    assert simplify(x % 8, bounds) is x
    assert is_const(simplify(truncdiv(x, 8), bounds), 0)
    assert simplify(truncmod(x, 8), bounds) is x


def test_common_factor(v: dict[str, Var]) -> None:
    x = v["x"]
    assert same(simplify((x * 6) // 4), (x * 3) // 2)
    assert same(simplify((x * 6) % 4), (x * 3) % 2 * 2)
    assert is_const(simplify((x * 4 + 2) % 2), 0)


def test_exact_truncdiv(v: dict[str, Var]) -> None:
    x = v["x"]
    assert same(simplify(truncdiv(x * 4 + 8, 4)), x + 2)
    assert is_const(simplify(truncmod(x * 4 + 8, 4)), 0)


# -- min / max / compare / select --------------------------------------------------------------------------------


def test_min_max(v: dict[str, Var]) -> None:
    x, i = v["x"], v["i"]
    assert same(simplify(min_expr(x + 1, x + 3)), x + 1)
    assert same(simplify(max_expr(x + 1, x + 3)), x + 3)
    assert simplify(min_expr(i, 8), {i: (0, 3)}) is i
    assert is_const(simplify(max_expr(i, 8), {i: (0, 3)}), 8)
    assert same(simplify(min_expr(min_expr(x, 4), 2)), min_expr(x, 2))


def test_comparisons_decided_by_bounds(v: dict[str, Var]) -> None:
    o, i = v["o"], v["i"]
    bounds = {o: (0, 3), i: (0, 3)}
    assert is_const(simplify(o * 4 + i < 16, bounds), 1)
    assert is_const(simplify(o * 4 + i >= 16, bounds), 0)
    assert is_const(simplify(o * 4 + i < 15, bounds), 1) is False


def test_comparison_canonical_form(v: dict[str, Var]) -> None:
    x, n = v["x"], v["n"]
    assert str(simplify(x * 4 < 8)) == "x < 2"
    assert str(simplify(x + 1 <= 5)) == "x < 5"
    assert str(simplify(x >= 4)) == "3 < x"
    assert str(simplify(x > 3)) == "3 < x"
    assert is_const(simplify(x * 2 == 3), 0)
    assert is_const(simplify(x * 2 != 3), 1)
    e = x < n
    assert simplify(e) is e


def test_select(v: dict[str, Var]) -> None:
    x, y = v["x"], v["y"]
    assert simplify(select(const(True), x, y)) is x
    assert simplify(select(x < 2, y + 0, y)) is y
    assert simplify(select(x < 4, x, y), {x: (0, 3)}) is x


# -- casts -------------------------------------------------------------------------------------------------------


def test_casts() -> None:
    x = Var("x", "int32")
    assert is_const(simplify(E.Cast(const(300), "int8")), 44)
    f = simplify(E.Cast(const(3), "float32"))
    assert isinstance(f, E.FloatImm) and f.value == 3.0
    assert is_const(simplify(E.Cast(const(-3.7), "int32")), -3)
    nested = E.Cast(E.Cast(x, "int64"), "int32")
    assert simplify(nested) is x
    narrowing = E.Cast(E.Cast(x, "int8"), "int32")
    assert isinstance(simplify(narrowing).value, E.Cast)
    assert simplify(narrowing, {x: (0, 100)}) is x


# -- vectors -----------------------------------------------------------------------------------------------------


def test_vector_rules(v: dict[str, Var]) -> None:
    x, y = v["x"], v["y"]
    ramp = E.Ramp(x, const(1), 4, "int32x4")
    added = simplify(E.Add(ramp, E.Broadcast(y, 4, "int32x4"), "int32x4"))
    assert isinstance(added, E.Ramp) and same(added.base, x + y)
    scaled = simplify(E.Mul(ramp, E.Broadcast(const(3), 4, "int32x4"), "int32x4"))
    assert isinstance(scaled, E.Ramp) and same(scaled.base, x * 3) and is_const(scaled.stride, 3)
    both = simplify(E.Add(E.Broadcast(x, 4, "int32x4"), E.Broadcast(x, 4, "int32x4"), "int32x4"))
    assert isinstance(both, E.Broadcast) and same(both.value, x * 2)
    flat = simplify(E.Ramp(x, const(0), 4, "int32x4"))
    assert isinstance(flat, E.Broadcast) and flat.value is x


def test_a_widened_ramp_stays_a_ramp(v: dict[str, Var]) -> None:
    """``int64xN(ramp(b, s, N))`` is ``ramp(int64(b), int64(s), N)`` (a contiguous access, not a gather) where no
    lane of the 32-bit ramp can wrap around; else the cast stays. A widening cast of a vector ``min`` is the
    ``min`` of the casts (a clamped ramp stays one)."""
    i = v["i"]
    ramp = E.Ramp(i * 16, const(1), 16, "int32x16")
    widened = simplify(E.Cast(ramp, "int64x16"), {i: (0, 1000)})
    assert isinstance(widened, E.Ramp) and widened.dtype == "int64x16" and is_const(widened.stride, 1)
    assert widened.base.dtype == "int64"
    summed = simplify(E.Add(E.Broadcast(E.Cast(v["x"], "int64"), 16, "int64x16"), E.Cast(ramp, "int64x16"),
                            "int64x16"), {i: (0, 1000)})
    assert isinstance(summed, E.Ramp)
    unbounded = simplify(E.Cast(E.Ramp(v["x"], const(1), 16, "int32x16"), "int64x16"))
    assert isinstance(unbounded, E.Cast)  # x + 15 may pass the largest int32
    narrowed = simplify(E.Cast(ramp, "int8x16"), {i: (0, 1000)})
    assert isinstance(narrowed, E.Cast)
    clamp = E.Min(ramp, E.Broadcast(v["n"], 16, "int32x16"), "int32x16")  # a padded row's clamped read
    widened_clamp = simplify(E.Cast(clamp, "int64x16"), {i: (0, 1000)})
    assert isinstance(widened_clamp, E.Min) and isinstance(widened_clamp.a, E.Ramp)
    assert widened_clamp.dtype == "int64x16" and isinstance(widened_clamp.b, E.Broadcast)
    assert isinstance(simplify(E.Cast(clamp, "int16x16"), {i: (0, 1000)}), E.Cast)  # narrowing: stays


def test_vector_div_mod_in_one_period(v: dict[str, Var]) -> None:
    i = v["i"]
    ramp = E.Ramp(i * 4, const(1), 4, "int32x4")
    four = E.Broadcast(const(4), 4, "int32x4")
    quotient = simplify(E.FloorDiv(ramp, four, "int32x4"))
    assert isinstance(quotient, E.Broadcast) and quotient.value is i
    remainder = simplify(E.FloorMod(ramp, four, "int32x4"))
    assert isinstance(remainder, E.Ramp) and is_const(remainder.base, 0)


# -- other nodes -------------------------------------------------------------------------------------------------


def test_unknown_nodes_keep_their_kind(v: dict[str, Var]) -> None:
    x = v["x"]
    call = E.Call("exp", (E.Cast(x + 0 * x, "float32"),), "float32")
    result = simplify(call)
    assert isinstance(result, E.Call) and result.op == "exp"
    assert result.args[0].value is x


def test_let(v: dict[str, Var]) -> None:
    x, y = v["x"], v["y"]
    assert same(simplify(E.Let(y, const(3), y + x, "int32")), x + 3)
    kept = simplify(E.Let(y, x * 2, y % 2, "int32"))
    assert isinstance(kept, E.Let)


def test_bound_point_becomes_constant(v: dict[str, Var]) -> None:
    i, x = v["i"], v["x"]
    assert is_const(simplify(i * 4 + 1, {i: (2, 2)}), 9)
    assert is_const(simplify(x % 4 // 4), 0)


# -- further index rules -----------------------------------------------------------------------------------------


def test_nested_split_merge_and_mod_recovery(v: dict[str, Var]) -> None:
    x, y = v["x"], v["y"]
    assert simplify((x // 8) * 8 + (x % 8) // 4 * 4 + x % 4) is x
    assert same(simplify(x - (x // 4) * 4), x % 4)
    assert same(simplify(x * 2 - (x // 4) * 8 + y), x % 4 * 2 + y)


def test_symbolic_divisor(v: dict[str, Var]) -> None:
    o, j, n = v["o"], v["j"], v["n"]
    bounds = {n: (1, 100)}
    assert is_const(simplify((n * 4 - 1) // n, bounds), 3)
    assert same(simplify((o * n + j) // n, bounds), o + j // n)
    assert same(simplify((o * n + j) % n, bounds), j % n)
    assert simplify((o * n * 4 + 3) // (n * 4), bounds) is o
    assert same(simplify((o * n - 1) % n, bounds), n - 1)
    assert isinstance(simplify((o * n + j) // n), E.FloorDiv)  # the sign of n is unknown


def test_symbolic_divisor_of_a_clamped_index(v: dict[str, Var]) -> None:
    """A row clamped to ``n - 1`` lies below ``n`` (each ``min`` at its operand bounds it above), and the quotient
    and remainder by a symbolic ``n`` merge back (``n*(x // n) + x % n -> x``): a reshape of ``[b*n, c]`` rows."""
    j, n, x, y = v["j"], v["n"], v["x"], v["y"]
    bounds = {n: (2, 1 << 20), j: (0, 1023), y: (0, 767)}
    row = E.Min(j, n - 1, "int32")
    assert is_const(simplify((row * 768 + y) // (n * 768), bounds), 0)
    assert same(simplify((row * 768 + y) % (n * 768), bounds), row * 768 + y)
    assert same(simplify(row % n, bounds), row)
    assert isinstance(simplify((row * 768 + y + 1) // (n * 768), bounds), E.FloorDiv)  # may reach n*768
    assert simplify(n * (x // n) + x % n, bounds) is x
    assert same(simplify(n * (x // n) * 3 + x % n * 3 + y, bounds), x * 3 + y)
    assert isinstance(simplify(n * (x // n) + x % y, bounds), E.Add)  # another divisor: no merge
    wide = E.Cast(n, "int64") * E.Cast(x // n, "int64") * 768 + E.Cast(x % n, "int64") * 768 + E.Cast(y, "int64")
    assert same(simplify(wide, bounds), E.Cast(x, "int64") * 768 + E.Cast(y, "int64"))  # a 64-bit offset


def test_comparison_split_and_limits(v: dict[str, Var]) -> None:
    i, j, n, x = v["i"], v["j"], v["n"], v["x"]
    assert str(simplify(i * 4 + j < n * 4, {j: (0, 3)})) == "i < n"
    assert str(simplify(i * 4 + j + 1 <= n * 4, {j: (0, 3)})) == "i < n"
    assert str(simplify(E.logical_and(x < 4, x < 6))) == "x < 4"
    assert str(simplify(E.logical_and(x >= 3, x >= 1))) == "2 < x"
    assert is_const(simplify(E.logical_and(x < 2, x > 5)), 0)
    assert is_const(simplify(E.logical_or(x < 4, x > 2)), 1)
    assert str(simplify(E.logical_not(x < 4))) == "3 < x"
    assert str(simplify(E.logical_not(x <= n))) == "n < x"


def test_truncmod_negative_divisor(v: dict[str, Var]) -> None:
    x = v["x"]
    assert same(simplify(truncmod(x, -4)), truncmod(x, 4))


def test_wrapping_types_keep_their_semantics() -> None:
    u = Var("u", "uint32")
    b = Var("b", "int8")
    assert str(simplify(u - 1)) == "u - 1u32"
    assert isinstance(simplify(u - 1 < 5), E.LT)  # u - 1 wraps at u == 0: not rewritten to u < 6
    assert isinstance(simplify(b + 1 > b), E.GT)  # false at b == 127
    wrapped = simplify(E.binary(E.Mul, E.make_const(127, "uint8"), E.make_const(6, "uint8")))
    assert isinstance(wrapped, E.IntImm) and wrapped.value == 250 and wrapped.dtype == "uint8"
    w = Var("w", "uint8")
    assert isinstance(simplify(w // E.make_const(8, "uint8")), E.FloorDiv)
    assert is_const(simplify(w // E.make_const(8, "uint8"), {w: (0, 7)}), 0)


def test_select_to_min_max_and_operand_order(v: dict[str, Var]) -> None:
    x, y = v["x"], v["y"]
    assert same(simplify(select(x < y, x, y)), min_expr(x, y))
    assert same(simplify(select(x < y, y, x)), max_expr(x, y))
    assert same(simplify(select(x + 1 <= y, x, y)), min_expr(x, y))
    assert is_const(simplify(select(x < y, x, y) - min_expr(y, x)), 0)
    assert same(simplify(min_expr(4, x)), min_expr(x, 4))
