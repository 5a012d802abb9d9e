"""Elementwise operators: broadcasting, scalars, dtypes, math functions, casts and argument errors."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import tcomp
from tcomp import ops, te
from tcomp.backend.testing import build_and_check
from tcomp.ops import OpError
from tcomp.ops.testing import random_data
from tests.ops.op_cases import UNARY, unary_problem


def _run(output: te.Tensor, inputs: list[te.Tensor], arrays: list[np.ndarray], expected: np.ndarray,
         rtol: float = 1e-6, atol: float = 1e-6) -> None:
    s = tcomp.create_schedule(output)
    build_and_check(s, [*inputs, output], arrays, expected, rtol, atol)


BINARY: dict[str, tuple[Callable[..., te.Tensor], Callable[..., np.ndarray]]] = {
    "add": (ops.add, np.add),
    "subtract": (ops.subtract, np.subtract),
    "multiply": (ops.multiply, np.multiply),
    "divide": (ops.divide, np.divide),
    "maximum": (ops.maximum, np.maximum),
    "minimum": (ops.minimum, np.minimum),
    "power": (ops.power, np.power),
}
SHAPE_PAIRS = [
    ((13,), (13,)),
    ((7, 1, 13), (5, 13)),
    ((1,), (31,)),
    ((13, 1), (1, 7)),
    ((2, 1, 3, 1), (5, 1, 4)),
    ((3, 7), (1, 1, 1)),
]


@pytest.mark.parametrize("op_name", sorted(BINARY))
@pytest.mark.parametrize(("shape_a", "shape_b"), SHAPE_PAIRS, ids=[f"{a}x{b}" for a, b in SHAPE_PAIRS])
def test_broadcast_binary(op_name: str, shape_a: tuple[int, ...], shape_b: tuple[int, ...]) -> None:
    fop, fnp = BINARY[op_name]
    rng = np.random.default_rng(100)
    a_tensor, b_tensor = te.placeholder(shape_a, name="A"), te.placeholder(shape_b, name="B")
    a, b = random_data(rng, shape_a, low=0.2, high=2.0), random_data(rng, shape_b, low=0.2, high=2.0)
    out = fop(a_tensor, b_tensor)
    assert tuple(int(d) for d in out.shape) == np.broadcast_shapes(shape_a, shape_b)
    _run(out, [a_tensor, b_tensor], [a, b], fnp(a, b), rtol=2e-6)


@pytest.mark.parametrize(
    ("fop", "fnp"),
    [
        (lambda t: ops.add(t, 2.5), lambda x: x + np.float32(2.5)),
        (lambda t: ops.subtract(3, t), lambda x: np.float32(3) - x),
        (lambda t: ops.multiply(t, -2), lambda x: x * np.float32(-2)),
        (lambda t: ops.divide(1.0, t), lambda x: np.float32(1) / x),
        (lambda t: ops.power(2.0, t), lambda x: np.power(np.float32(2), x)),
        (lambda t: ops.power(t, 3), lambda x: x**3),
        (lambda t: ops.maximum(t, 1.0), lambda x: np.maximum(x, np.float32(1))),
        (lambda t: ops.minimum(0.5, t), lambda x: np.minimum(x, np.float32(0.5))),
    ],
    ids=["add", "rsub", "mul_int", "rdiv", "rpow", "pow_int", "max", "rmin"],
)
def test_scalar_operands_take_the_tensor_dtype(fop: Callable, fnp: Callable) -> None:
    x_tensor = te.placeholder((31,), name="X")
    x = random_data(np.random.default_rng(101), (31,), low=0.5, high=2.0)
    out = fop(x_tensor)
    assert out.dtype == "float32"
    _run(out, [x_tensor], [x], fnp(x), rtol=2e-6)


def test_mixed_dtypes_promote() -> None:
    a_tensor = te.placeholder((7,), dtype="float32", name="A")
    b_tensor = te.placeholder((7,), dtype="float64", name="B")
    out = ops.add(a_tensor, b_tensor)
    assert out.dtype == "float64"
    rng = np.random.default_rng(102)
    a, b = random_data(rng, (7,)), random_data(rng, (7,), "float64")
    _run(out, [a_tensor, b_tensor], [a, b], a.astype("float64") + b, rtol=1e-12)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_integer_arithmetic_with_python_floor_semantics(dtype: str) -> None:
    rng = np.random.default_rng(103)
    a_tensor, b_tensor = te.placeholder((13,), dtype=dtype, name="A"), te.placeholder((13,), dtype=dtype, name="B")
    a = rng.integers(-50, 50, 13).astype(dtype)
    b = rng.choice([-7, -3, -1, 1, 2, 5], 13).astype(dtype)
    for fop, fnp in ((ops.floor_divide, np.floor_divide), (ops.floor_mod, np.mod), (ops.add, np.add),
                     (ops.multiply, np.multiply), (ops.maximum, np.maximum)):
        out = fop(a_tensor, b_tensor)
        assert out.dtype == dtype
        _run(out, [a_tensor, b_tensor], [a, b], fnp(a, b))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_math(name: str, dtype: str) -> None:
    problem = unary_problem(name, dtype, shape=(3, 31))
    assert problem.output.dtype == dtype
    _run(problem.output, problem.inputs, problem.arrays, problem.expected, problem.rtol, problem.atol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_is_half_to_even_and_floor_ceil_on_halves(dtype: str) -> None:
    values = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, -0.0, 0.49999997, 7.0], dtype=dtype)
    x_tensor = te.placeholder((values.size,), dtype=dtype, name="X")
    for fop, fnp in ((ops.round, np.round), (ops.floor, np.floor), (ops.ceil, np.ceil)):
        _run(fop(x_tensor), [x_tensor], [values], fnp(values), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_math_on_extreme_inputs(dtype: str) -> None:
    values = np.array([-100.0, -30.0, -1e-3, 0.0, 1e-3, 30.0, 100.0], dtype=dtype)
    x_tensor = te.placeholder((values.size,), dtype=dtype, name="X")
    with np.errstate(over="ignore"):
        expected = 1 / (1 + np.exp(-values))
    _run(ops.sigmoid(x_tensor), [x_tensor], [values], expected, rtol=1e-6, atol=1e-30)
    _run(ops.tanh(x_tensor), [x_tensor], [values], np.tanh(values), rtol=1e-6, atol=1e-30)
    _run(ops.abs(x_tensor), [x_tensor], [values], np.abs(values), rtol=0, atol=0)


def test_abs_of_integers() -> None:
    x_tensor = te.placeholder((5,), dtype="int32", name="X")
    x = np.array([-3, -1, 0, 1, 7], dtype="int32")
    _run(ops.abs(x_tensor), [x_tensor], [x], np.abs(x))


@pytest.mark.parametrize(
    ("source", "target"),
    [("float32", "int32"), ("float32", "float64"), ("float64", "float32"), ("int32", "float32"), ("int64", "int32")],
)
def test_cast(source: str, target: str) -> None:
    x_tensor = te.placeholder((13,), dtype=source, name="X")
    x = random_data(np.random.default_rng(104), (13,), source, low=-40, high=40)
    out = ops.cast(x_tensor, target)
    assert out.dtype == target
    _run(out, [x_tensor], [x], x.astype(target))


def test_comparisons_and_where() -> None:
    rng = np.random.default_rng(105)
    a_tensor, b_tensor = te.placeholder((7, 13), name="A"), te.placeholder((13,), name="B")
    a, b = random_data(rng, (7, 13)), random_data(rng, (13,))
    a[0, :] = b  # some equal elements
    comparisons = ((ops.less, np.less), (ops.less_equal, np.less_equal), (ops.greater, np.greater),
                   (ops.greater_equal, np.greater_equal), (ops.equal, np.equal), (ops.not_equal, np.not_equal))
    for fop, fnp in comparisons:
        out = fop(a_tensor, b_tensor)
        assert out.dtype == "bool"
        _run(out, [a_tensor, b_tensor], [a, b], fnp(a, b))
    chosen = ops.where(ops.greater(a_tensor, b_tensor), a_tensor, 0.0)
    _run(chosen, [a_tensor, b_tensor], [a, b], np.where(a > b, a, np.float32(0)))


def test_activations() -> None:
    x_tensor = te.placeholder((7, 13), name="X")
    x = random_data(np.random.default_rng(106), (7, 13), low=-3, high=3)
    _run(ops.leaky_relu(x_tensor, 0.1), [x_tensor], [x], np.where(x > 0, x, x * np.float32(0.1)))
    _run(ops.clip(x_tensor, -1.0, 0.5), [x_tensor], [x], np.clip(x, -1.0, 0.5))
    erf = np.vectorize(__import__("math").erf)
    _run(ops.nn.gelu(x_tensor), [x_tensor], [x], (0.5 * x * (1 + erf(x / np.sqrt(2)))).astype("float32"), 2e-6,
         1e-6)


def test_broadcast_to() -> None:
    x_tensor = te.placeholder((7, 1), name="X")
    x = random_data(np.random.default_rng(107), (7, 1))
    _run(ops.broadcast_to(x_tensor, (3, 7, 13)), [x_tensor], [x], np.broadcast_to(x, (3, 7, 13)))


def test_symbolic_broadcast() -> None:
    n = te.var("n")
    a_tensor, b_tensor = te.placeholder((n, 1), name="A"), te.placeholder((13,), name="B")
    out = ops.multiply(a_tensor, b_tensor)
    module = tcomp.build(tcomp.create_schedule(out), [a_tensor, b_tensor, out])
    rng = np.random.default_rng(108)
    b = random_data(rng, (13,))
    for size in (1, 5, 31):
        a = random_data(rng, (size, 1))
        result = np.zeros((size, 13), dtype="float32")
        module(a, b, result)
        np.testing.assert_allclose(result, a * b, rtol=1e-6)


# ---------------------------------------------------------------------------------------------------------------------
# errors
def test_incompatible_shapes_name_the_operator_and_shapes() -> None:
    a_tensor, b_tensor = te.placeholder((3, 4), name="A"), te.placeholder((5,), name="B")
    with pytest.raises(OpError, match=r"add: shapes \(3, 4\) and \(5\) do not broadcast"):
        ops.add(a_tensor, b_tensor)


def test_distinct_symbolic_dimensions_do_not_broadcast() -> None:
    a_tensor, b_tensor = te.placeholder((te.var("n"),), name="A"), te.placeholder((te.var("m"),), name="B")
    with pytest.raises(OpError, match="multiply: shapes"):
        ops.multiply(a_tensor, b_tensor)


def test_two_scalars_are_rejected() -> None:
    with pytest.raises(OpError, match="add: at least one operand must be a tensor"):
        ops.add(1.0, 2.0)


def test_non_tensor_operand_is_rejected() -> None:
    with pytest.raises(OpError, match="subtract: argument rhs must be a tensor or a scalar, got list"):
        ops.subtract(te.placeholder((3,), name="A"), [1, 2, 3])


def test_integer_true_division_is_rejected() -> None:
    a_tensor = te.placeholder((3,), dtype="int32", name="A")
    with pytest.raises(OpError, match="divide: argument lhs has integer dtype int32; use floor_divide"):
        ops.divide(a_tensor, 2)


def test_cast_to_unknown_dtype() -> None:
    with pytest.raises(OpError, match="cast: argument dtype"):
        ops.cast(te.placeholder((3,), name="A"), "float17")


def test_unary_requires_a_tensor() -> None:
    with pytest.raises(OpError, match="exp: argument x must be a tensor, got float"):
        ops.exp(1.0)


def test_clip_bounds_order() -> None:
    with pytest.raises(OpError, match="clip: a_min=2 is greater than a_max=1"):
        ops.clip(te.placeholder((3,), name="A"), 2, 1)


def test_where_needs_a_bool_condition() -> None:
    a_tensor = te.placeholder((3,), name="A")
    with pytest.raises(OpError, match="where: argument condition must be a bool tensor"):
        ops.where(a_tensor, a_tensor, a_tensor)


def test_broadcast_to_a_smaller_shape() -> None:
    with pytest.raises(OpError, match=r"broadcast_to: shape \(3, 4\) cannot be broadcast to \(4\)"):
        ops.broadcast_to(te.placeholder((3, 4), name="A"), (4,))


def test_te_max_of_two_expressions() -> None:
    """TVM's reducers combine two expressions directly when the second argument is not an axis."""
    x_tensor = te.placeholder((3,), name="X")
    out = te.compute((3,), lambda i: te.max(x_tensor[i], 0.0), name="out")
    x = np.array([-1.0, 0.5, 2.0], dtype="float32")
    _run(out, [x_tensor], [x], np.maximum(x, 0))
