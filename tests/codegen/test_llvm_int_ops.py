"""LLVM backend: integer and logical operators against Python semantics, casts between all dtypes, float16 and
bool storage."""

from __future__ import annotations

import numpy as np
import pytest
from llvm_testing import elementwise

import tcomp
from tcomp.ir import dtype as dt
from tcomp.ir import expr as E

INT_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
ARITH = [E.Add, E.Sub, E.Mul, E.Div, E.Mod, E.FloorDiv, E.FloorMod, E.Min, E.Max]
COMPARE = [E.EQ, E.NE, E.LT, E.LE, E.GT, E.GE]
DIVISIONS = (E.Div, E.Mod, E.FloorDiv, E.FloorMod)


def _trunc_div(a: int, b: int) -> int:
    quotient = abs(a) // abs(b)
    return quotient if (a >= 0) == (b >= 0) else -quotient


PYTHON_OPS = {
    E.Add: lambda a, b: a + b,
    E.Sub: lambda a, b: a - b,
    E.Mul: lambda a, b: a * b,
    E.Div: _trunc_div,
    E.Mod: lambda a, b: a - b * _trunc_div(a, b),
    E.FloorDiv: lambda a, b: a // b,
    E.FloorMod: lambda a, b: a % b,
    E.Min: min,
    E.Max: max,
    E.EQ: lambda a, b: a == b,
    E.NE: lambda a, b: a != b,
    E.LT: lambda a, b: a < b,
    E.LE: lambda a, b: a <= b,
    E.GT: lambda a, b: a > b,
    E.GE: lambda a, b: a >= b,
}


def _operands(dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """All pairs of interesting values (MIN / -1 included: it wraps to MIN, as in numpy; a zero divisor gives 0,
    as in numpy, and never traps)."""
    low, high = dt.min_value(dtype), dt.max_value(dtype)
    values = [0, 1, 2, 3, 5, 7, 100, int(high), int(high) - 1]
    if low < 0:
        values += [-1, -2, -3, -5, -7, -100, int(low) + 1, int(low)]
    pairs = [(a, b) for a in values for b in values]
    a = np.array([p[0] for p in pairs], dtype)
    b = np.array([p[1] for p in pairs], dtype)
    return a, b


def _wrap(value: int, dtype: str) -> int:
    bits = dt.bits(dtype)
    value &= (1 << bits) - 1
    if dt.is_signed(dtype) and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("op", ARITH, ids=lambda op: op.__name__)
def test_integer_arithmetic(op: type, dtype: str) -> None:
    a, b = _operands(dtype)
    mod = tcomp.build(elementwise(f"{op.__name__}_{dtype}", dtype, a.size, lambda x, y: op(x, y, dtype)))
    out = np.zeros_like(a)
    mod(a, b, out)
    expected = [0 if y == 0 and op in DIVISIONS else _wrap(PYTHON_OPS[op](int(x), int(y)), dtype)
                for x, y in zip(a, b)]
    assert out.tolist() == expected


@pytest.mark.parametrize("dtype", ["int32", "uint8", "int64", "float32", "float64"])
@pytest.mark.parametrize("op", COMPARE, ids=lambda op: op.__name__)
def test_comparisons(op: type, dtype: str) -> None:
    if dt.is_float(dtype):
        a = np.array([0.0, 1.5, -2.0, np.nan, np.nan, np.inf, 3.0], dtype)
        b = np.array([0.0, 2.5, -2.0, 1.0, np.nan, np.inf, np.nan], dtype)
    else:
        a, b = _operands(dtype)
    mod = tcomp.build(elementwise(f"cmp_{op.__name__}", dtype, a.size, lambda x, y: op(x, y, "bool"),
                                   out_dtype="bool"))
    out = np.zeros(a.size, np.bool_)
    mod(a, b, out)
    numpy_ops = {E.EQ: np.equal, E.NE: np.not_equal, E.LT: np.less, E.LE: np.less_equal, E.GT: np.greater,
                 E.GE: np.greater_equal}
    np.testing.assert_array_equal(out, numpy_ops[op](a, b))


def test_logical_operators_on_bool_buffers() -> None:
    a = np.array([False, False, True, True])
    b = np.array([False, True, False, True])
    for op, ref in ((E.And, np.logical_and), (E.Or, np.logical_or)):
        mod = tcomp.build(elementwise(f"logic_{op.__name__}", "bool", 4, lambda x, y, op=op: op(x, y, "bool")))
        out = np.zeros(4, np.bool_)
        mod(a, b, out)
        np.testing.assert_array_equal(out, ref(a, b))
    mod = tcomp.build(elementwise("logic_not", "bool", 4, lambda x: E.Not(x, "bool"), num_inputs=1))
    out = np.zeros(4, np.bool_)
    mod(a, out)
    np.testing.assert_array_equal(out, ~a)


ALL_DTYPES = ["bool", *INT_DTYPES, "float16", "float32", "float64"]


def _cast_inputs(src: str, dst: str) -> np.ndarray:
    """Values of ``src`` whose conversion to ``dst`` is defined (in range, no NaN into an integer)."""
    if src == "bool":
        return np.array([False, True, True, False])
    candidates = [0, 1, 2, 7, 100, 127, -1, -3, -100, -128, 255, 1000, -1000, 65504]
    if dt.is_float(src):
        candidates += [0.5, -0.5, 2.75, -2.75, 99.9]
    lows = [dt.min_value(src)]
    highs = [dt.max_value(src)]
    if dst != "bool" and not dt.is_float(dst):
        lows.append(dt.min_value(dst))
        highs.append(dt.max_value(dst))
    if dst == "float16" or src == "float16":
        lows.append(-65504)
        highs.append(65504)
    kept = [c for c in candidates if max(lows) <= c <= min(highs) and (dt.is_float(src) or float(c).is_integer())]
    return np.array(kept).astype(src)


@pytest.mark.parametrize("dst", ALL_DTYPES)
@pytest.mark.parametrize("src", ALL_DTYPES)
def test_casts(src: str, dst: str) -> None:
    x = _cast_inputs(src, dst)
    mod = tcomp.build(elementwise(f"cast_{src}_{dst}", src, x.size, lambda v: E.Cast(v, dst), num_inputs=1,
                                   out_dtype=dst))
    out = np.zeros(x.size, dst)
    mod(x, out)
    if dst == "bool":
        expected = x != 0
    elif dt.is_float(src) and not dt.is_float(dst):
        expected = np.trunc(x.astype(np.float64)).astype(dst)
    else:
        expected = x.astype(dst)
    np.testing.assert_array_equal(out, expected)


def test_float_to_bool_is_nonzero_and_nan_is_true() -> None:
    x = np.array([0.0, -0.0, 1e-30, np.nan, -np.inf], np.float32)
    mod = tcomp.build(elementwise("f2b", "float32", x.size, lambda v: E.Cast(v, "bool"), num_inputs=1,
                                   out_dtype="bool"))
    out = np.zeros(x.size, np.bool_)
    mod(x, out)
    np.testing.assert_array_equal(out, x.astype(np.bool_))


def test_float16_storage_and_arithmetic() -> None:
    rng = np.random.default_rng(2)
    a = rng.uniform(-10, 10, 50).astype(np.float16)
    b = rng.uniform(-10, 10, 50).astype(np.float16)
    for op, ref in ((E.Add, np.add), (E.Mul, np.multiply), (E.Div, np.divide), (E.Max, np.maximum)):
        mod = tcomp.build(elementwise(f"h_{op.__name__}", "float16", 50, lambda x, y, op=op: op(x, y, "float16")))
        out = np.zeros(50, np.float16)
        mod(a, b, out)
        np.testing.assert_array_equal(out, ref(a, b))


def test_float_min_max_and_floor_ops() -> None:
    a = np.array([-7.5, 7.5, 3.0, -3.0, 0.25], np.float64)
    b = np.array([2.0, -2.0, 3.0, 2.5, -1.0], np.float64)
    cases = ((E.Min, np.minimum), (E.Max, np.maximum), (E.FloorDiv, np.floor_divide), (E.FloorMod, np.mod),
             (E.Mod, np.fmod), (E.Div, np.divide), (E.Sub, np.subtract))
    for op, ref in cases:
        mod = tcomp.build(elementwise(f"f_{op.__name__}", "float64", 5, lambda x, y, op=op: op(x, y, "float64")))
        out = np.zeros(5)
        mod(a, b, out)
        np.testing.assert_allclose(out, ref(a, b), rtol=1e-15)


def _shift_reference(x: int, s: int, dtype: str, left: bool) -> int:
    """ONNX's BitShift: an amount outside [0, bits) leaves only the sign fill (-1 for a negative x shifted right)."""
    if not 0 <= s < dt.bits(dtype):
        return -1 if (not left and x < 0) else 0
    return _wrap(x << s, dtype) if left else x >> s


BIT_OPS = {"bitwise_and": lambda a, b: a & b, "bitwise_or": lambda a, b: a | b, "bitwise_xor": lambda a, b: a ^ b}


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_bit_operations(dtype: str) -> None:
    """and / or / xor / not / shifts on every integer dtype, amounts out of range and MIN / MAX included."""
    from tcomp import te

    a, b = _operands(dtype)
    for name, ref in BIT_OPS.items():
        mod = tcomp.build(elementwise(f"{name}_{dtype}", dtype, a.size, getattr(te, name)))
        out = np.zeros_like(a)
        mod(a, b, out)
        assert out.tolist() == [ref(int(x), int(y)) for x, y in zip(a, b)], name
    mod = tcomp.build(elementwise(f"not_{dtype}", dtype, a.size, te.bitwise_not, num_inputs=1))
    out = np.zeros_like(a)
    mod(a, out)
    assert out.tolist() == [_wrap(~int(x), dtype) for x in a]
    amounts = np.array([0, 1, 3, dt.bits(dtype) - 1, dt.bits(dtype), dt.bits(dtype) + 5, 255]
                       + ([-1, -8, int(dt.min_value(dtype))] if dt.is_signed(dtype) else []))
    amounts = np.array([s for s in amounts if dt.min_value(dtype) <= s <= dt.max_value(dtype)], dtype)
    x = np.repeat(a[:: max(1, a.size // 9)], amounts.size)
    s = np.tile(amounts, x.size // amounts.size)
    for left, fn in ((True, te.shift_left), (False, te.shift_right)):
        mod = tcomp.build(elementwise(f"shift_{left}_{dtype}", dtype, x.size, fn))
        out = np.zeros_like(x)
        mod(x, s, out)
        assert out.tolist() == [_shift_reference(int(v), int(k), dtype, left) for v, k in zip(x, s)], left


def test_bit_operations_in_a_vectorized_loop() -> None:
    from tcomp import te

    n = 37
    x = te.placeholder((n,), "int16", name="x")
    y = te.placeholder((n,), "int16", name="y")
    z = te.compute((n,), lambda i: te.bitwise_xor(te.shift_left(x[i], y[i]), te.bitwise_not(x[i])), name="z")
    s = tcomp.create_schedule(z)
    _, inner = s[z].split(z.op.axis[0], factor=8)
    s[z].vectorize(inner)
    mod = tcomp.build(s, [x, y, z])
    rng = np.random.default_rng(5)
    a = rng.integers(-2**15, 2**15, n).astype(np.int16)
    b = rng.integers(-2, 18, n).astype(np.int16)
    out = np.zeros(n, np.int16)
    mod(a, b, out)
    assert out.tolist() == [_wrap(_shift_reference(int(v), int(k), "int16", True) ^ ~int(v), "int16")
                            for v, k in zip(a, b)]


def test_bit_operations_refuse_floats() -> None:
    from tcomp import te

    with pytest.raises(TypeError, match="integers"):
        te.bitwise_and(E.FloatImm(1.0, "float32"), E.FloatImm(2.0, "float32"))
    with pytest.raises(TypeError, match="one dtype"):
        te.shift_left(E.IntImm(1, "int32"), E.IntImm(2, "int64"))
