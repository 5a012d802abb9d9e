"""Randomized differential tests of the arithmetic analyses against exhaustive evaluation.

Random integer expressions over three bounded variables (``+ - * // % truncdiv truncmod min max select`` with
comparisons and ``&& || !``) are evaluated on every point of the variable box with numpy; then

- ``simplify(e, bounds)`` must take the same value at every point;
- ``const_int_bound(e, bounds)`` must contain every value;
- ``eval_interval(e, dom, bounds)`` (``dom`` a random subset of the variables) must contain every value, with ends
  that use no variable of ``dom``;
- ``can_prove(c, bounds)`` may only return True when ``c`` holds at every point.

Divisors are nonzero constants or subexpressions that are nonzero on the whole box. The numpy evaluator is itself
checked against the scalar reference ``tcomp.arith.evaluate`` on a sample.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import numpy as np
import pytest

from tcomp.arith import IntervalSet, can_prove, const_int_bound, eval_interval, evaluate, simplify
from tcomp.ir import dtype as dt
from tcomp.ir import expr as E
from tcomp.ir.expr import Var, const
from tcomp.ir.functor import free_vars

SEED = 20240601
COUNT = 10_000
LIMIT = 1 << 40

X, Y, Z = Var("x"), Var("y"), Var("z")
RANGES = {X: (-3, 5), Y: (0, 7), Z: (-2, 2)}
VARS = (X, Y, Z)
GRID = np.meshgrid(*(np.arange(lo, hi + 1, dtype=np.int64) for lo, hi in RANGES.values()), indexing="ij")
ENV = dict(zip(VARS, GRID))


# -- vectorized evaluation ---------------------------------------------------------------------------------------


def _trunc_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    q = np.abs(a) // np.abs(b)
    return np.where((a >= 0) == (b > 0), q, -q)


_BINARY: dict[type, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    E.Add: np.add,
    E.Sub: np.subtract,
    E.Mul: np.multiply,
    E.FloorDiv: np.floor_divide,
    E.FloorMod: np.mod,
    E.Div: _trunc_div,
    E.Mod: lambda a, b: a - b * _trunc_div(a, b),
    E.Min: np.minimum,
    E.Max: np.maximum,
    E.LT: np.less,
    E.LE: np.less_equal,
    E.GT: np.greater,
    E.GE: np.greater_equal,
    E.EQ: np.equal,
    E.NE: np.not_equal,
    E.And: np.logical_and,
    E.Or: np.logical_or,
}


class DivisionByZero(Exception):
    pass


def _wrap(values: np.ndarray, dtype: str) -> np.ndarray:
    """Two's-complement wrap to ``dtype`` for the types whose arithmetic wraps (narrow or unsigned)."""
    if dt.is_bool(dtype):
        return (values != 0).astype(np.int64)
    if dt.is_int(dtype) and (not dt.is_signed(dtype) or dt.bits(dtype) < 32):
        return values.astype(dt.to_numpy(dtype)).astype(np.int64)
    return values


def np_eval(e: E.Expr, env: dict[Var, np.ndarray]) -> np.ndarray:
    """Evaluate a scalar integer/bool expression on arrays of variable values (one array per variable, all of the
    same shape). Index types (32/64-bit signed) use mathematical integers; narrow and unsigned types wrap."""
    if isinstance(e, E.IntImm):
        return np.full(next(iter(env.values())).shape, e.value, dtype=np.int64)
    if isinstance(e, E.Var):
        return env[e]
    if isinstance(e, E.BinaryOp):
        a, b = np_eval(e.a, env), np_eval(e.b, env)
        if type(e) in (E.FloorDiv, E.FloorMod, E.Div, E.Mod):
            if np.any(b == 0):
                raise DivisionByZero
        result = _BINARY[type(e)](a, b)
        return _wrap(result.astype(np.int64), e.dtype)
    if isinstance(e, E.Not):
        return np.logical_not(np_eval(e.a, env)).astype(np.int64)
    if isinstance(e, E.Select):
        return np.where(np_eval(e.condition, env) != 0, np_eval(e.true_value, env), np_eval(e.false_value, env))
    if isinstance(e, E.Cast):
        value = np_eval(e.value, env)
        if dt.is_bool(e.dtype) or dt.bits(e.dtype) < 64:
            return value.astype(dt.to_numpy(e.dtype)).astype(np.int64)
        return value
    raise TypeError(f"cannot evaluate {type(e).__name__}")


# -- random expressions ------------------------------------------------------------------------------------------


class Generator:
    """Random expressions of one integer ``dtype`` over ``variables`` (values in ``env``)."""

    def __init__(
        self,
        rng: random.Random,
        variables: tuple[Var, ...] = VARS,
        env: dict[Var, np.ndarray] | None = None,
        dtype: str = "int32",
    ) -> None:
        self.rng = rng
        self.variables = variables
        self.env = env if env is not None else ENV
        self.dtype = dtype

    def const(self, value: int) -> E.Expr:
        lo, hi = dt.min_value(self.dtype), dt.max_value(self.dtype)
        if not lo <= value <= hi:
            value = abs(value) if lo <= abs(value) <= hi else 1
        return E.make_const(value, self.dtype)

    def leaf(self) -> E.Expr:
        if self.rng.random() < 0.65:
            return self.rng.choice(self.variables)
        if self.dtype != "int32" and self.rng.random() < 0.3:
            return self.const(self.rng.choice([100, 127, 128, 200, 255, -100, -128, 1000, 32767]))
        return self.const(self.rng.randint(-6, 8))

    def divisor(self, depth: int) -> E.Expr:
        if self.rng.random() < 0.8:
            return self.const(self.rng.choice([1, 2, 3, 4, 4, 8, 16, 5, -2, -3]))
        candidate = self.expr(depth)
        try:
            values = np_eval(candidate, self.env)
        except DivisionByZero:
            values = np.zeros(1)
        if np.any(values == 0):
            return self.const(self.rng.choice([2, 4, -3]))
        return candidate

    def cond(self, depth: int) -> E.Expr:
        kind = self.rng.random()
        if kind < 0.7 or depth <= 0:
            op = self.rng.choice([E.LT, E.LE, E.GT, E.GE, E.EQ, E.NE])
            return E.binary(op, self.expr(depth - 1), self.expr(depth - 1))
        if kind < 0.8:
            return E.logical_not(self.cond(depth - 1))
        op = self.rng.choice([E.logical_and, E.logical_or])
        return op(self.cond(depth - 1), self.cond(depth - 1))

    def expr(self, depth: int) -> E.Expr:
        if depth <= 0 or self.rng.random() < 0.2:
            return self.leaf()
        r = self.rng.random()
        if r < 0.15:
            return self.pattern(depth)
        op = self.rng.choice(
            [E.Add, E.Add, E.Sub, E.Sub, E.Mul, E.Mul, E.FloorDiv, E.FloorMod, E.Div, E.Mod, E.Min, E.Max, "select"]
        )
        if op == "select":
            return E.select(self.cond(depth - 1), self.expr(depth - 1), self.expr(depth - 1))
        if op in (E.FloorDiv, E.FloorMod, E.Div, E.Mod):
            return E.binary(op, self.expr(depth - 1), self.divisor(depth - 2))
        if op is E.Mul and self.rng.random() < 0.6:
            return E.binary(op, self.expr(depth - 1), self.const(self.rng.randint(-4, 8)))
        if self.dtype == "int32" and self.rng.random() < 0.05:
            return self.cast_chain(depth)
        return E.binary(op, self.expr(depth - 1), self.expr(depth - 1))

    def cast_chain(self, depth: int) -> E.Expr:
        """Casts through other integer types and back (narrowing ones wrap)."""
        inner = self.expr(depth - 1)
        middle = self.rng.choice(["int8", "uint8", "int16", "int64", "int64", "bool"])
        through = E.cast(inner, middle)
        if middle == "int64" and self.rng.random() < 0.5:
            through = E.binary(E.Add, through, 1)
        return E.cast(through, self.dtype)

    def pattern(self, depth: int) -> E.Expr:
        """Shapes that the index rules target, with random parts."""
        a, b = self.expr(depth - 2), self.expr(depth - 2)
        c = self.rng.choice([2, 3, 4, 8])
        c1, c2 = self.rng.randint(-4, 4), self.rng.randint(-4, 4)
        choices = [
            lambda: (a * c + b) // c,
            lambda: (a * c + b) % c,
            lambda: (a // c) * c + a % c,
            lambda: (a + b) - (b + a) + a,
            lambda: E.min_expr(a + c1, a + c2),
            lambda: E.max_expr(a + c1, a + c2),
            lambda: (a % (c * 2)) % c,
            lambda: (a // c) // 2,
            lambda: (a + c1) * c - a * c,
            lambda: E.select(a < b, a, b) - E.min_expr(a, b),
        ]
        return self.rng.choice(choices)()

    def fresh(self) -> tuple[E.Expr, np.ndarray]:
        """A random expression and its values on the grid (retrying on overflow-sized values)."""
        while True:
            e = self.expr(self.rng.randint(1, 5))
            try:
                values = np_eval(e, self.env)
            except DivisionByZero:
                continue
            if np.all(np.abs(values) < LIMIT):
                return e, values


# -- checks ------------------------------------------------------------------------------------------------------


def _check_interval(e: E.Expr, values: np.ndarray, rng: random.Random) -> None:
    dom_vars = [v for v in VARS if rng.random() < 0.6] or [X]
    dom = {v: IntervalSet(const(RANGES[v][0]), const(RANGES[v][1])) for v in dom_vars}
    free = {v: RANGES[v] for v in VARS if v not in dom}
    result = eval_interval(e, dom, free)
    for end, holds in ((result.min, np.less_equal), (result.max, np.greater_equal)):
        if end is None:
            continue
        used = {id(v) for v in free_vars(end)}
        assert not used & {id(v) for v in dom_vars}, f"{end} uses a dom variable ({e})"
        assert np.all(holds(np_eval(end, ENV), values)), f"eval_interval({e}) = {result} misses a value"


def _check_bound(e: E.Expr, values: np.ndarray) -> None:
    lo, hi = const_int_bound(e, RANGES)
    assert lo is None or lo <= values.min(), f"const_int_bound({e}) = {lo, hi}, min {values.min()}"
    assert hi is None or hi >= values.max(), f"const_int_bound({e}) = {lo, hi}, max {values.max()}"


def _check_prove(e: E.Expr, values: np.ndarray, rng: random.Random) -> int:
    k = int(rng.choice([values.min(), values.max()])) + rng.randint(-2, 2)
    op = rng.choice([E.LT, E.LE, E.GT, E.GE, E.EQ, E.NE])
    cond = E.binary(op, e, const(k))
    truth = np_eval(cond, ENV)
    proved = can_prove(cond, RANGES)
    if proved:
        assert np.all(truth != 0), f"can_prove({cond}) but it fails somewhere"
    return int(proved)


def test_fuzz_against_exhaustive_evaluation() -> None:
    rng = random.Random(SEED)
    gen = Generator(rng)
    start = time.process_time()  # CPU time: other processes on the machine don't count
    proved = shrunk = 0
    for _ in range(COUNT):
        e, values = gen.fresh()
        simple = simplify(e, RANGES)
        assert np.array_equal(np_eval(simple, ENV), values), f"simplify({e}) = {simple} differs"
        shrunk += _size(simple) < _size(e)
        _check_bound(e, values)
        _check_interval(e, values, rng)
        proved += _check_prove(e, values, rng)
    elapsed = time.process_time() - start
    assert proved > COUNT // 10, f"can_prove succeeded only {proved} times"
    assert shrunk > COUNT // 10, f"simplify shrank only {shrunk} expressions"
    assert elapsed < 60, f"fuzz took {elapsed:.1f} s of CPU time"


def test_conditions_fuzz() -> None:
    """Boolean expressions: simplify keeps their truth table, and const_int_bound stays inside [0, 1]."""
    rng = random.Random(SEED + 1)
    gen = Generator(rng)
    checked = 0
    while checked < 4000:
        cond = gen.cond(rng.randint(1, 4))
        try:
            truth = np_eval(cond, ENV) != 0
        except DivisionByZero:
            continue
        simple = simplify(cond, RANGES)
        assert simple.dtype == "bool"
        assert np.array_equal(np_eval(simple, ENV) != 0, truth), f"simplify({cond}) = {simple} differs"
        lo, hi = const_int_bound(cond, RANGES)
        assert lo is not None and hi is not None and 0 <= lo <= truth.min() and truth.max() <= hi <= 1
        if can_prove(cond, RANGES):
            assert truth.all(), f"can_prove({cond}) but it fails somewhere"
        checked += 1


def test_numpy_evaluator_matches_reference() -> None:
    rng = random.Random(SEED + 2)
    gen = Generator(rng)
    points = [(x, y, z) for x in (-3, 0, 5) for y in (0, 3, 7) for z in (-2, 1)]
    for _ in range(200):
        e, values = gen.fresh()
        for x, y, z in points:
            index = (x - RANGES[X][0], y - RANGES[Y][0], z - RANGES[Z][0])
            assert int(evaluate(e, {X: x, Y: y, Z: z})) == values[index]


@pytest.mark.parametrize("seed", range(3))
def test_vector_fuzz(seed: int) -> None:
    """Ramp/Broadcast expressions: every lane of the simplified vector equals the scalar reference."""
    rng = random.Random(SEED + 10 + seed)
    gen = Generator(rng)
    lanes = 4
    vec = f"int32x{lanes}"
    for _ in range(150):
        base, _ = gen.fresh()
        ramp = E.Ramp(base, const(rng.randint(0, 3)), lanes, vec)
        other = E.Broadcast(gen.fresh()[0], lanes, vec)
        op = rng.choice([E.Add, E.Sub, E.Mul, E.FloorDiv, E.FloorMod, E.Min, E.Max])
        if op in (E.FloorDiv, E.FloorMod):
            other = E.Broadcast(const(rng.choice([2, 4, 8])), lanes, vec)
        e = op(ramp, other, vec) if rng.random() < 0.7 else op(other, ramp, vec)
        if op in (E.FloorDiv, E.FloorMod) and isinstance(e.b, E.Ramp):
            continue
        simple = simplify(e, RANGES)
        for x, y, z in [(-3, 0, -2), (5, 7, 2), (1, 4, 0), (-1, 2, 1)]:
            env = {X: x, Y: y, Z: z}
            assert evaluate(simple, env) == evaluate(e, env), f"simplify({e}) = {simple}"


def _size(e: E.Expr) -> int:
    count = 0

    def visit(_: object) -> None:
        nonlocal count
        count += 1

    from tcomp.ir.functor import post_order_visit

    post_order_visit(e, visit)
    return count


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "uint32"])
def test_wrapping_types_fuzz(dtype: str) -> None:
    """Narrow and unsigned integers wrap: simplify and can_prove must respect two's-complement semantics."""
    rng = random.Random(SEED + 100 + dt.bits(dtype))
    a, b = Var("a", dtype), Var("b", dtype)
    lo, hi = int(dt.min_value(dtype)), int(dt.max_value(dtype))
    a_range = (lo, min(hi, lo + 255))
    b_start = rng.randint(lo, max(lo, min(hi, 1 << 20) - 16))
    b_range = (b_start, b_start + 15)
    if dtype == "uint32":
        a_range = (hi - 200, hi)
    grid = np.meshgrid(
        np.arange(a_range[0], a_range[1] + 1, dtype=np.int64),
        np.arange(b_range[0], b_range[1] + 1, dtype=np.int64),
        indexing="ij",
    )
    env = {a: grid[0], b: grid[1]}
    bounds = {a: a_range, b: b_range}
    gen = Generator(rng, (a, b), env, dtype)
    for _ in range(400):
        e, values = gen.fresh()
        simple = simplify(e, bounds)
        assert simple.dtype == e.dtype
        assert np.array_equal(np_eval(simple, env), values), f"simplify({e}) = {simple} differs"
        low, high = const_int_bound(e, bounds)
        assert low is None or low <= values.min(), f"const_int_bound({e}) = {low, high}"
        assert high is None or high >= values.max(), f"const_int_bound({e}) = {low, high}"
        k = int(values.min()) if rng.random() < 0.5 else int(values.max())
        cond = E.binary(rng.choice([E.LT, E.LE, E.GE, E.GT]), e, E.make_const(k, dtype))
        if can_prove(cond, bounds):
            assert np.all(np_eval(cond, env) != 0), f"can_prove({cond}) but it fails somewhere"


def _grid(ranges: dict[Var, tuple[int, int]]) -> dict[Var, np.ndarray]:
    """Every point of ``ranges`` (inclusive), as one array per variable."""
    grid = np.meshgrid(*(np.arange(lo, hi + 1, dtype=np.int64) for lo, hi in ranges.values()), indexing="ij")
    return dict(zip(ranges, grid))


def _simplified_alike(e: E.Expr, env: dict[Var, np.ndarray], ranges: dict[Var, tuple[int, int]]) -> np.ndarray | None:
    """``e``'s values at every point of ``env``, checked equal to its simplified form's; None where it divides by
    zero somewhere."""
    try:
        values = np_eval(e, env)
    except DivisionByZero:
        return None
    simple = simplify(e, ranges)
    assert np.array_equal(np_eval(simple, env), values), f"simplify({e}) = {simple} differs"
    return values


def test_symbolic_divisor_fuzz() -> None:
    """Division and remainder by a positive symbolic divisor (``n``, ``n*c``), with exhaustive checks."""
    rng = random.Random(SEED + 200)
    n, u, w = Var("n"), Var("u"), Var("w")
    ranges = {n: (1, 6), u: (-4, 9), w: (0, 5)}
    env = _grid(ranges)
    gen = Generator(rng, (n, u, w), env)
    checked = 0
    while checked < 1500:
        a, b = gen.expr(rng.randint(0, 3)), gen.expr(rng.randint(0, 2))
        c = rng.choice([1, 1, 2, 3])
        divisor = n * c
        numerator = a * divisor + b if rng.random() < 0.7 else a * n + b
        op = rng.choice([E.FloorDiv, E.FloorMod, E.Div, E.Mod])
        e = E.binary(op, numerator, divisor)
        values = _simplified_alike(e, env, ranges)
        if values is None:
            continue
        lo, hi = const_int_bound(e, ranges)
        assert (lo is None or lo <= values.min()) and (hi is None or hi >= values.max())
        checked += 1


def test_symbolic_divisor_of_clamped_indices_fuzz() -> None:
    """Division and remainder by ``n*c`` of ``a*min(w, n*c2 + d) + b`` forms (the clamped rows of a symbolic
    number of rows), and ``n*(x // n) + x % n`` merges (their atoms widened to 64 bits too), with exhaustive
    checks."""
    rng = random.Random(SEED + 300)
    n, u, w = Var("n"), Var("u"), Var("w")
    ranges = {n: (1, 7), u: (0, 5), w: (0, 12)}
    env = _grid(ranges)
    for _ in range(600):
        c = rng.choice([1, 2, 3])
        clamp = E.Min(w, n * rng.choice([1, c]) + rng.randint(-2, 1), "int32")
        numerator = clamp * rng.choice([1, c, 2 * c]) + u * rng.randint(0, 2) + rng.randint(-1, 2)
        if rng.random() < 0.3:
            numerator = n * c * u + numerator
        widened = E.Cast(n, "int64") * E.Cast(numerator // n, "int64") + E.Cast(numerator % n, "int64")
        for e in (numerator // (n * c), numerator % (n * c), n * (numerator // n) + numerator % n, widened):
            _simplified_alike(e, env, ranges)
