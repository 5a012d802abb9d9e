"""Neural-network operators under the default schedule: matrix products, softmax family, normalizations,
activations, and argument errors. Convolutions and pooling are in ``test_ops_conv_pool.py``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import tcomp
from tcomp import ops, te
from tcomp.backend.testing import build_and_check
from tcomp.ops import OpError
from tcomp.ops import testing as reference
from tcomp.ops.testing import random_data


def _check(output: te.Tensor, inputs: list[te.Tensor], arrays: list[np.ndarray], expected: Any,
           rtol: float = 1e-4, atol: float = 1e-5) -> None:
    build_and_check(tcomp.create_schedule(output), [*inputs, output], arrays, np.asarray(expected), rtol, atol)


# ---------------------------------------------------------------------------------------------------------------------
# matrix products
@pytest.mark.parametrize("transpose_b", [False, True])
@pytest.mark.parametrize("transpose_a", [False, True])
@pytest.mark.parametrize(("m", "k", "n"), [(1, 1, 1), (13, 7, 31), (4, 100, 3)])
def test_matmul(m: int, k: int, n: int, transpose_a: bool, transpose_b: bool) -> None:
    rng = np.random.default_rng(300)
    shape_a = (k, m) if transpose_a else (m, k)
    shape_b = (n, k) if transpose_b else (k, n)
    a_tensor, b_tensor = te.placeholder(shape_a, name="A"), te.placeholder(shape_b, name="B")
    a, b = random_data(rng, shape_a), random_data(rng, shape_b)
    expected = (a.T if transpose_a else a).astype(np.float64) @ (b.T if transpose_b else b)
    _check(ops.matmul(a_tensor, b_tensor, transpose_a, transpose_b), [a_tensor, b_tensor], [a, b], expected)


def test_matmul_mixed_dtypes_accumulate_in_out_dtype() -> None:
    a_tensor = te.placeholder((7, 13), dtype="int32", name="A")
    b_tensor = te.placeholder((13, 5), dtype="int32", name="B")
    rng = np.random.default_rng(301)
    a, b = rng.integers(-9, 9, (7, 13)).astype("int32"), rng.integers(-9, 9, (13, 5)).astype("int32")
    out = ops.matmul(a_tensor, b_tensor, out_dtype="float64")
    assert out.dtype == "float64"
    _check(out, [a_tensor, b_tensor], [a, b], a.astype(np.float64) @ b, rtol=1e-12)
    int_out = ops.matmul(a_tensor, b_tensor)
    assert int_out.dtype == "int32"
    _check(int_out, [a_tensor, b_tensor], [a, b], a @ b)


def test_symbolic_matmul() -> None:
    m, k, n = te.var("m"), te.var("k"), te.var("n")
    a_tensor, b_tensor = te.placeholder((m, k), name="A"), te.placeholder((k, n), name="B")
    out = ops.matmul(a_tensor, b_tensor)
    s = tcomp.create_schedule(out)
    xo, yo, xi, yi = s[out].tile(out.op.axis[0], out.op.axis[1], 4, 8)
    s[out].vectorize(yi)
    module = tcomp.build(s, [a_tensor, b_tensor, out])
    rng = np.random.default_rng(302)
    for rows, inner, cols in ((1, 1, 1), (7, 13, 31), (16, 5, 8)):
        a, b = random_data(rng, (rows, inner)), random_data(rng, (inner, cols))
        result = np.zeros((rows, cols), dtype="float32")
        module(a, b, result)
        np.testing.assert_allclose(result, a @ b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("with_bias", [False, True])
def test_dense(with_bias: bool) -> None:
    rng = np.random.default_rng(303)
    x_tensor, w_tensor = te.placeholder((7, 13), name="X"), te.placeholder((31, 13), name="W")
    x, w = random_data(rng, (7, 13)), random_data(rng, (31, 13))
    if with_bias:
        b_tensor = te.placeholder((31,), name="bias")
        b = random_data(rng, (31,))
        _check(ops.dense(x_tensor, w_tensor, b_tensor), [x_tensor, w_tensor, b_tensor], [x, w, b], x @ w.T + b)
    else:
        _check(ops.dense(x_tensor, w_tensor), [x_tensor, w_tensor], [x, w], x @ w.T)


@pytest.mark.parametrize(("batch_a", "batch_b"), [(3, 3), (1, 4), (4, 1)])
@pytest.mark.parametrize(("transpose_a", "transpose_b"), [(False, False), (True, False), (False, True)])
def test_batch_matmul(batch_a: int, batch_b: int, transpose_a: bool, transpose_b: bool) -> None:
    rng = np.random.default_rng(304)
    m, k, n = 5, 7, 13
    shape_a = (batch_a, k, m) if transpose_a else (batch_a, m, k)
    shape_b = (batch_b, n, k) if transpose_b else (batch_b, k, n)
    a_tensor, b_tensor = te.placeholder(shape_a, name="A"), te.placeholder(shape_b, name="B")
    a, b = random_data(rng, shape_a), random_data(rng, shape_b)
    lhs = a.transpose(0, 2, 1) if transpose_a else a
    rhs = b.transpose(0, 2, 1) if transpose_b else b
    out = ops.batch_matmul(a_tensor, b_tensor, transpose_a, transpose_b)
    _check(out, [a_tensor, b_tensor], [a, b], np.matmul(lhs, rhs))


# ---------------------------------------------------------------------------------------------------------------------
# softmax family and normalizations
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_and_log_softmax(axis: int) -> None:
    x_tensor = te.placeholder((5, 7, 13), name="X")
    x = random_data(np.random.default_rng(305), (5, 7, 13), low=-10, high=10)
    _check(ops.softmax(x_tensor, axis), [x_tensor], [x], reference.softmax_python(x, axis), 1e-5, 1e-6)
    _check(ops.log_softmax(x_tensor, axis), [x_tensor], [x], reference.log_softmax_python(x, axis), 1e-5, 1e-5)


def test_softmax_is_stable_for_large_inputs() -> None:
    x_tensor = te.placeholder((2, 4), name="X")
    x = np.array([[1000.0, 1001.0, 1002.0, 999.0], [-1000.0, -1000.0, 50.0, -3.0]], dtype="float32")
    _check(ops.softmax(x_tensor), [x_tensor], [x], reference.softmax_python(x), 1e-5, 1e-7)
    _check(ops.log_softmax(x_tensor), [x_tensor], [x], reference.log_softmax_python(x), 1e-5, 1e-5)


def test_softmax_stages_are_separate() -> None:
    out = ops.softmax(te.placeholder((3, 4), name="X"))
    names = [st.name for st in tcomp.create_schedule(out).stages]
    assert names == ["X", "T_softmax_maxelem", "T_softmax_exp", "T_softmax_expsum", "T_softmax"]


@pytest.mark.parametrize(("axis", "affine"), [(-1, True), ((1, 2), True), ((-2, -1), False), (2, False)])
def test_layer_norm(axis: Any, affine: bool) -> None:
    rng = np.random.default_rng(306)
    shape = (3, 5, 13)
    axes = (axis,) if isinstance(axis, int) else axis
    param_shape = tuple(shape[a] for a in sorted(a % 3 for a in axes))
    x_tensor = te.placeholder(shape, name="X")
    x = random_data(rng, shape, low=-2, high=4)
    if affine:
        g_tensor, b_tensor = te.placeholder(param_shape, name="gamma"), te.placeholder(param_shape, name="beta")
        gamma, beta = random_data(rng, param_shape), random_data(rng, param_shape)
        out = ops.layer_norm(x_tensor, g_tensor, b_tensor, axis, 1e-5)
        expected = reference.layer_norm_python(x, gamma, beta, axis, 1e-5)
        _check(out, [x_tensor, g_tensor, b_tensor], [x, gamma, beta], expected)
    else:
        out = ops.layer_norm(x_tensor, axis=axis, epsilon=1e-3)
        _check(out, [x_tensor], [x], reference.layer_norm_python(x, None, None, axis, 1e-3))


def test_batch_norm_and_bias_add() -> None:
    rng = np.random.default_rng(307)
    x_tensor = te.placeholder((2, 3, 5, 7), name="X")
    params = [te.placeholder((3,), name=n) for n in ("mean", "var", "gamma", "beta")]
    x = random_data(rng, (2, 3, 5, 7))
    mean, var, gamma, beta = (random_data(rng, (3,)), random_data(rng, (3,), low=0.5, high=2.0),
                              random_data(rng, (3,)), random_data(rng, (3,)))
    out = ops.batch_norm(x_tensor, *params, axis=1, epsilon=1e-5)

    def channel(v: np.ndarray) -> np.ndarray:
        return v.reshape(1, 3, 1, 1)

    expected = (x - channel(mean)) / np.sqrt(channel(var) + 1e-5) * channel(gamma) + channel(beta)
    _check(out, [x_tensor, *params], [x, mean, var, gamma, beta], expected)
    _check(ops.bias_add(x_tensor, params[0]), [x_tensor, params[0]], [x, mean], x + channel(mean))


# ---------------------------------------------------------------------------------------------------------------------
# errors
def test_matmul_inner_dimensions_must_agree() -> None:
    a_tensor, b_tensor = te.placeholder((3, 4), name="A"), te.placeholder((5, 6), name="B")
    with pytest.raises(OpError, match=r"matmul: the reduction dimensions differ: 4 in A\(3, 4\) and 5 in B\(5, 6\)"):
        ops.matmul(a_tensor, b_tensor)


def test_matmul_needs_matrices() -> None:
    with pytest.raises(OpError, match=r"matmul: argument b must have 2 dimensions, got shape \(4\)"):
        ops.matmul(te.placeholder((3, 4), name="A"), te.placeholder((4,), name="B"))


def test_batch_matmul_batch_sizes() -> None:
    with pytest.raises(OpError, match="batch_matmul: batch sizes 2 of a and 3 of b differ"):
        ops.batch_matmul(te.placeholder((2, 3, 4), name="A"), te.placeholder((3, 4, 5), name="B"))


def test_dense_bias_length() -> None:
    x_tensor, w_tensor = te.placeholder((2, 4), name="X"), te.placeholder((3, 4), name="W")
    with pytest.raises(OpError, match="dense: bias has 5 elements, expected the 3 rows of weight"):
        ops.dense(x_tensor, w_tensor, te.placeholder((5,), name="b"))


def test_softmax_axis_and_dtype() -> None:
    with pytest.raises(OpError, match="softmax: axis=2 is out of range"):
        ops.softmax(te.placeholder((3, 4), name="X"), axis=2)
    with pytest.raises(OpError, match="log_softmax: argument x must be a float tensor, got dtype int32"):
        ops.log_softmax(te.placeholder((3, 4), dtype="int32", name="X"))


def test_layer_norm_parameter_shape() -> None:
    x_tensor = te.placeholder((3, 4), name="X")
    with pytest.raises(OpError, match=r"layer_norm: gamma has shape \(3\), expected \(4\)"):
        ops.layer_norm(x_tensor, te.placeholder((3,), name="g"))
    with pytest.raises(OpError, match="layer_norm: epsilon must be non-negative"):
        ops.layer_norm(x_tensor, epsilon=-1.0)


def test_bias_add_length() -> None:
    with pytest.raises(OpError, match=r"bias_add: bias has 3 elements, expected 4 \(dimension 1 of x\)"):
        ops.bias_add(te.placeholder((2, 4), name="X"), te.placeholder((3,), name="b"))
