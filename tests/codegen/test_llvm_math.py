"""LLVM backend: every math intrinsic against numpy, on scalars, vector lanes and float16."""

from __future__ import annotations

import math

import numpy as np
import pytest
from llvm_testing import elementwise, imm, load, loop, ramp, store

import tcomp
from tcomp.codegen.llvm import SUPPORTED_OPS, CodegenError, codegen_llvm
from tcomp.ir import expr as E
from tcomp.ir import stmt as S
from tcomp.ir.buffer import Buffer

RNG = np.random.default_rng(1)
SIZE = 37

_erf = np.vectorize(math.erf)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


# op -> (numpy reference, input low, input high)
UNARY: dict[str, tuple] = {
    "exp": (np.exp, -5, 5),
    "exp2": (np.exp2, -5, 5),
    "log": (np.log, 0.01, 10),
    "log2": (np.log2, 0.01, 10),
    "log10": (np.log10, 0.01, 10),
    "sqrt": (np.sqrt, 0, 10),
    "rsqrt": (lambda x: 1 / np.sqrt(x), 0.01, 10),
    "tanh": (np.tanh, -4, 4),
    "sigmoid": (_sigmoid, -8, 8),
    "erf": (lambda x: _erf(x).astype(x.dtype), -3, 3),
    "fabs": (np.abs, -5, 5),
    "abs": (np.abs, -5, 5),
    "floor": (np.floor, -5, 5),
    "ceil": (np.ceil, -5, 5),
    "trunc": (np.trunc, -5, 5),
    "sin": (np.sin, -6, 6),
    "cos": (np.cos, -6, 6),
    "tan": (np.tan, -1, 1),
    "asin": (np.arcsin, -0.9, 0.9),
    "acos": (np.arccos, -0.9, 0.9),
    "atan": (np.arctan, -5, 5),
    "sinh": (np.sinh, -3, 3),
    "cosh": (np.cosh, -3, 3),
    "log1p": (np.log1p, -0.5, 5),
    "expm1": (np.expm1, -2, 2),
}
BINARY: dict[str, tuple] = {
    "pow": (np.power, 0.1, 3),
    "atan2": (np.arctan2, -3, 3),
    "fmod": (np.fmod, 0.5, 5),
}


def _tolerance(dtype: str) -> float:
    return {"float16": 2e-3, "float32": 2e-6, "float64": 1e-13}[dtype]


def _inputs(dtype: str, low: float, high: float, size: int = SIZE) -> np.ndarray:
    return RNG.uniform(low, high, size).astype(dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op", sorted(UNARY))
def test_unary_scalar(op: str, dtype: str) -> None:
    ref, low, high = UNARY[op]
    mod = tcomp.build(elementwise(f"u_{op}", dtype, SIZE, lambda x: E.Call(op, (x,), dtype), num_inputs=1))
    x = _inputs(dtype, low, high)
    y = np.zeros_like(x)
    mod(x, y)
    np.testing.assert_allclose(y, ref(x), rtol=_tolerance(dtype), atol=_tolerance(dtype))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op", sorted(BINARY))
def test_binary_scalar(op: str, dtype: str) -> None:
    ref, low, high = BINARY[op]
    mod = tcomp.build(elementwise(f"b_{op}", dtype, SIZE, lambda x, y: E.Call(op, (x, y), dtype)))
    x, y = _inputs(dtype, low, high), _inputs(dtype, low, high)
    out = np.zeros_like(x)
    mod(x, y, out)
    np.testing.assert_allclose(out, ref(x, y), rtol=_tolerance(dtype), atol=_tolerance(dtype))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fma_and_round_half_to_even(dtype: str) -> None:
    mod = tcomp.build(elementwise("fma", dtype, SIZE, lambda a, b, c: E.Call("fma", (a, b, c), dtype),
                                   num_inputs=3))
    a, b, c = (_inputs(dtype, -3, 3) for _ in range(3))
    out = np.zeros_like(a)
    mod(a, b, c, out)
    np.testing.assert_allclose(out, a * b + c, rtol=_tolerance(dtype), atol=_tolerance(dtype))

    halves = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 0.49, -0.51, 7.0], dtype)
    mod = tcomp.build(elementwise("rnd", dtype, halves.size, lambda x: E.Call("round", (x,), dtype),
                                   num_inputs=1))
    out = np.zeros_like(halves)
    mod(halves, out)
    np.testing.assert_array_equal(out, np.round(halves))


def _vector_func(op: str, dtype: str, lanes: int, arity: int) -> S.PrimFunc:
    """Y[ramp(8*v)] = op(X0[ramp(8*v)], ...) over SIZE // lanes vectors."""
    count = SIZE // lanes * lanes
    inputs = tuple(Buffer(f"X{k}", (imm(count),), dtype) for k in range(arity))
    out = Buffer("Y", (imm(count),), dtype)
    v = E.Var("v")
    index = ramp(E.Mul(v, imm(lanes), "int32"), lanes)
    vec_dtype = f"{dtype}x{lanes}"
    value = E.Call(op, tuple(load(b, index) for b in inputs), vec_dtype)
    return S.PrimFunc(f"vec_{op}", (*inputs, out), loop(v, count // lanes, store(out, value, index)))


@pytest.mark.parametrize("op", sorted(UNARY) + sorted(BINARY))
def test_vector_lanes(op: str) -> None:
    dtype, lanes = ("float32", 8) if op < "m" else ("float64", 4)
    table = UNARY if op in UNARY else BINARY
    ref, low, high = table[op]
    arity = 1 if op in UNARY else 2
    mod = tcomp.build(_vector_func(op, dtype, lanes, arity))
    count = SIZE // lanes * lanes
    xs = [_inputs(dtype, low, high, count) for _ in range(arity)]
    out = np.zeros(count, dtype)
    mod(*xs, out)
    np.testing.assert_allclose(out, ref(*xs), rtol=_tolerance(dtype), atol=_tolerance(dtype))


@pytest.mark.parametrize("op", ["exp", "sqrt", "tanh", "sigmoid", "erf", "floor", "round", "sin"])
def test_float16_math_is_computed_in_float32(op: str) -> None:
    ref, low, high = UNARY.get(op, (np.round, -5, 5))
    mod = tcomp.build(elementwise(f"h_{op}", "float16", SIZE, lambda x: E.Call(op, (x,), "float16"),
                                   num_inputs=1))
    x = _inputs("float16", low, high)
    y = np.zeros_like(x)
    mod(x, y)
    expected = ref(x.astype(np.float32)).astype(np.float16)
    np.testing.assert_allclose(y.astype(np.float32), expected.astype(np.float32), rtol=2e-3, atol=2e-3)


def test_likely_returns_its_argument_and_int_abs() -> None:
    mod = tcomp.build(elementwise("iabs", "int32", 6, lambda x: E.Call("abs", (E.Call("likely", (x,), "int32"),),
                                                                        "int32"), num_inputs=1))
    x = np.array([-5, -1, 0, 1, 7, -(2**31) + 1], np.int32)
    y = np.zeros_like(x)
    mod(x, y)
    np.testing.assert_array_equal(y, np.abs(x))


def test_unknown_intrinsic_is_a_clear_error() -> None:
    func = elementwise("bad", "float32", 4, lambda x: E.Call("frobnicate", (x,), "float32"), num_inputs=1)
    with pytest.raises(CodegenError, match="unknown intrinsic 'frobnicate'"):
        codegen_llvm(func)
    func = elementwise("bad2", "int32", 4, lambda x: E.Call("exp", (x,), "int32"), num_inputs=1)
    with pytest.raises(CodegenError, match="'exp' needs a float dtype"):
        codegen_llvm(func)
    func = elementwise("bad3", "float32", 4, lambda x: E.Call("pow", (x,), "float32"), num_inputs=1)
    with pytest.raises(CodegenError, match="'pow' takes 2 argument"):
        codegen_llvm(func)
    assert {"exp", "tanh", "erf", "round", "fma", "likely", "abs", "sigmoid", "rsqrt"} <= set(SUPPORTED_OPS)


@pytest.mark.parametrize("exponent", [1.0, 2.0, 3.0, 4.0, 2.5, 5.0, -2.0])
@pytest.mark.parametrize("lanes", [1, 8])
def test_pow_by_a_small_whole_constant_is_products(exponent: float, lanes: int) -> None:
    """``pow(x, c)`` for a constant whole ``c`` in [1, 4] is ``c - 1`` products (no call to ``pow``), within 2 ulp of
    numpy's power, infinities, zeros and NaN included; other constants still call ``pow``."""
    dtype = "float32"
    count = SIZE // lanes * lanes
    x_buf, out = Buffer("X0", (imm(count),), dtype), Buffer("Y", (imm(count),), dtype)
    v = E.Var("v")
    vec = dtype if lanes == 1 else f"{dtype}x{lanes}"
    index = v if lanes == 1 else ramp(E.Mul(v, imm(lanes), "int32"), lanes)
    c: E.Expr = E.FloatImm(exponent, dtype)
    if lanes > 1:
        c = E.Broadcast(c, lanes, vec)
    func = S.PrimFunc(f"pow_{lanes}_{int(exponent * 10)}", (x_buf, out),
                      loop(v, count // lanes, store(out, E.Call("pow", (load(x_buf, index), c), vec), index)))
    mod = tcomp.build(func)
    calls = [line for line in mod.get_source("ll").splitlines() if "call" in line and "pow" in line]
    assert (not calls) == (exponent in (1.0, 2.0, 3.0, 4.0))
    x = _inputs(dtype, -40, 40, count)
    x[:6] = [np.inf, -np.inf, np.nan, 0.0, -0.0, 1e-30]
    y = np.zeros_like(x)
    mod(x, y)
    with np.errstate(all="ignore"):
        expected = np.power(x.astype(np.float64), exponent).astype(np.float32)
    np.testing.assert_array_max_ulp(y, expected, maxulp=2)
