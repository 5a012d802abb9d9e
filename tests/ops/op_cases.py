"""Operator test problems shared by the operator tests (default schedule) and the schedule tests (many schedules).

A case builds a fresh tensor graph and random inputs with a fixed seed, and gives the numpy result. Sizes are odd
on purpose (7, 13, 31, ...) so the split factors used by the schedule tests leave tails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tcomp import ops, te
from tcomp.ops import testing as reference
from tcomp.te.tensor import Tensor


@dataclass
class Problem:
    """One operator instance: ``output`` computed from ``inputs`` (tensors) fed with ``arrays``, expecting
    ``expected``."""

    output: Tensor
    inputs: list[Tensor]
    arrays: list[np.ndarray]
    expected: np.ndarray
    rtol: float = 1e-5
    atol: float = 1e-6
    notes: dict[str, object] = field(default_factory=dict)

    @property
    def args(self) -> list[Tensor]:
        return [*self.inputs, self.output]


CASES: dict[str, Callable[[], Problem]] = {}


def case(name: str) -> Callable[[Callable[[], Problem]], Callable[[], Problem]]:
    def register(builder: Callable[[], Problem]) -> Callable[[], Problem]:
        CASES[name] = builder
        return builder

    return register


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def data(generator: np.random.Generator, shape: tuple[int, ...], dtype: str = "float32", low: float = -1.0,
         high: float = 1.0) -> np.ndarray:
    return reference.random_data(generator, shape, dtype, low, high)


# ---------------------------------------------------------------------------------------------------------------------
# elementwise
def _binary_case(name: str, fop: Callable[..., Tensor], fnp: Callable[..., np.ndarray], shape_a: tuple[int, ...],
                 shape_b: tuple[int, ...], low: float = -1.0) -> None:
    def build() -> Problem:
        g = rng(1)
        a_tensor = te.placeholder(shape_a, name="A")
        b_tensor = te.placeholder(shape_b, name="B")
        a, b = data(g, shape_a, low=low, high=2.0), data(g, shape_b, low=low, high=2.0)
        return Problem(fop(a_tensor, b_tensor), [a_tensor, b_tensor], [a, b], fnp(a, b).astype("float32"))

    CASES[name] = build


_binary_case("add_broadcast", ops.add, np.add, (7, 1, 13), (5, 13))
_binary_case("subtract_rank", ops.subtract, np.subtract, (13,), (3, 7, 13))
_binary_case("multiply_same", ops.multiply, np.multiply, (13, 31), (13, 31))
_binary_case("divide_broadcast", ops.divide, np.divide, (7, 13), (7, 1), low=0.5)
_binary_case("maximum_broadcast", ops.maximum, np.maximum, (1, 13), (7, 1))
_binary_case("minimum_broadcast", ops.minimum, np.minimum, (7, 13), (13,))
_binary_case("power_broadcast", ops.power, np.power, (7, 13), (13,), low=0.1)


def _positive(x: np.ndarray) -> np.ndarray:
    return np.abs(x) + np.asarray(0.1, x.dtype)


UNARY: dict[str, tuple[Callable[..., Tensor], Callable[[np.ndarray], np.ndarray], bool]] = {
    # name: (operator, numpy reference, needs positive input)
    "exp": (ops.exp, np.exp, False),
    "log": (ops.log, np.log, True),
    "sqrt": (ops.sqrt, np.sqrt, True),
    "rsqrt": (ops.rsqrt, lambda x: 1 / np.sqrt(x), True),
    "tanh": (ops.tanh, np.tanh, False),
    "sigmoid": (ops.sigmoid, lambda x: 1 / (1 + np.exp(-x)), False),
    "erf": (ops.erf, reference.erf_python, False),
    "abs": (ops.abs, np.abs, False),
    "floor": (ops.floor, np.floor, False),
    "ceil": (ops.ceil, np.ceil, False),
    "round": (ops.round, np.round, False),
    "relu": (ops.relu, lambda x: np.maximum(x, 0), False),
    "negative": (ops.negative, np.negative, False),
    "square": (ops.square, np.square, False),
}
# a float32 result needs this relative tolerance (float64: UNARY_RTOL_F64); libm-quality functions are much closer
UNARY_RTOL_F32 = 2e-6
UNARY_RTOL_F64 = 1e-12


def unary_problem(name: str, dtype: str, shape: tuple[int, ...] = (7, 13)) -> Problem:
    fop, fnp, positive = UNARY[name]
    x_tensor = te.placeholder(shape, dtype=dtype, name="X")
    x = data(rng(2), shape, dtype, low=-3.0, high=3.0)
    if positive:
        x = _positive(x)
    rtol = UNARY_RTOL_F32 if dtype == "float32" else UNARY_RTOL_F64
    return Problem(fop(x_tensor), [x_tensor], [x], fnp(x).astype(dtype), rtol=rtol, atol=rtol)


for _name in UNARY:
    for _dtype in ("float32", "float64"):
        CASES[f"{_name}_{_dtype}"] = (lambda n=_name, d=_dtype: unary_problem(n, d))


@case("pow_float64")
def _pow64() -> Problem:
    g = rng(3)
    a_tensor = te.placeholder((7, 13), dtype="float64", name="A")
    b_tensor = te.placeholder((7, 13), dtype="float64", name="B")
    a, b = data(g, (7, 13), "float64", 0.1, 3.0), data(g, (7, 13), "float64", -2.0, 2.0)
    return Problem(ops.power(a_tensor, b_tensor), [a_tensor, b_tensor], [a, b], np.power(a, b), rtol=1e-12)


@case("cast_int")
def _cast() -> Problem:
    x_tensor = te.placeholder((31,), name="X")
    x = data(rng(4), (31,), low=-20.0, high=20.0)
    return Problem(ops.cast(x_tensor, "int32"), [x_tensor], [x], x.astype("int32"))


# ---------------------------------------------------------------------------------------------------------------------
# reductions
@case("sum_axis1_keepdims")
def _sum() -> Problem:
    x_tensor = te.placeholder((7, 13, 5), name="X")
    x = data(rng(5), (7, 13, 5))
    return Problem(ops.sum(x_tensor, axis=1, keepdims=True), [x_tensor], [x], x.sum(axis=1, keepdims=True),
                   rtol=1e-5, atol=1e-5)


@case("max_axis0")
def _max() -> Problem:
    x_tensor = te.placeholder((13, 7), name="X")
    x = data(rng(6), (13, 7))
    return Problem(ops.max(x_tensor, axis=0), [x_tensor], [x], x.max(axis=0))


@case("min_axes")
def _min() -> Problem:
    x_tensor = te.placeholder((5, 7, 13), name="X")
    x = data(rng(7), (5, 7, 13))
    return Problem(ops.min(x_tensor, axis=(0, 2)), [x_tensor], [x], x.min(axis=(0, 2)))


@case("mean_last")
def _mean() -> Problem:
    x_tensor = te.placeholder((7, 31), name="X")
    x = data(rng(8), (7, 31))
    return Problem(ops.mean(x_tensor, axis=-1), [x_tensor], [x], x.mean(axis=-1), rtol=1e-5, atol=1e-6)


@case("prod_reducer")
def _prod() -> Problem:
    x_tensor = te.placeholder((7, 5), name="X")
    x = data(rng(9), (7, 5), low=0.5, high=1.5)
    return Problem(ops.prod(x_tensor, axis=1), [x_tensor], [x], x.prod(axis=1), rtol=1e-5)


@case("sum_of_squares_comm_reducer")
def _sum_squares() -> Problem:
    """User-defined reducers: a sum of squares (a sum reducer over ``x * x``) feeding a product reducer."""
    product = te.comm_reducer(lambda x, y: x * y, lambda dtype: te.const(1, dtype), name="product")
    sumsq = te.comm_reducer(lambda x, y: x + y, lambda dtype: te.const(0, dtype), name="sumsq")
    x_tensor = te.placeholder((13, 7), name="X")
    k = te.reduce_axis((0, 7), name="k")
    squares = te.compute((13,), lambda i: sumsq(x_tensor[i, k] * x_tensor[i, k], axis=k), name="sumsq")
    j = te.reduce_axis((0, 7), name="j")
    out = te.compute((13,), lambda i: product(x_tensor[i, j] + squares[i], axis=j), name="prod_plus")
    x = data(rng(10), (13, 7), low=0.1, high=1.0)
    sq = (x.astype(np.float64) ** 2).sum(axis=1)
    expected = (x + sq[:, None]).prod(axis=1).astype("float32")
    return Problem(out, [x_tensor], [x], expected, rtol=1e-5)


@case("sum_where_triangular")
def _sum_where() -> Problem:
    x_tensor = te.placeholder((13, 13), name="X")
    k = te.reduce_axis((0, 13), name="k")
    out = te.compute((13,), lambda i: te.sum(x_tensor[i, k], axis=k, where=k <= i), name="tri_sum")
    x = data(rng(11), (13, 13))
    return Problem(out, [x_tensor], [x], np.tril(x).sum(axis=1), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------------
# nn
def _matmul_problem(transpose_a: bool, transpose_b: bool, m: int = 13, k: int = 7, n: int = 31) -> Problem:
    g = rng(12)
    shape_a = (k, m) if transpose_a else (m, k)
    shape_b = (n, k) if transpose_b else (k, n)
    a_tensor, b_tensor = te.placeholder(shape_a, name="A"), te.placeholder(shape_b, name="B")
    a, b = data(g, shape_a), data(g, shape_b)
    out = ops.matmul(a_tensor, b_tensor, transpose_a, transpose_b)
    expected = (a.T if transpose_a else a).astype(np.float64) @ (b.T if transpose_b else b)
    return Problem(out, [a_tensor, b_tensor], [a, b], expected.astype("float32"), rtol=1e-4, atol=1e-5)


CASES["matmul"] = lambda: _matmul_problem(False, False)
CASES["matmul_tt"] = lambda: _matmul_problem(True, True, 7, 13, 5)


@case("dense_bias")
def _dense() -> Problem:
    g = rng(13)
    x_tensor, w_tensor, b_tensor = (te.placeholder((7, 13), name="X"), te.placeholder((5, 13), name="W"),
                                    te.placeholder((5,), name="bias"))
    x, w, b = data(g, (7, 13)), data(g, (5, 13)), data(g, (5,))
    out = ops.dense(x_tensor, w_tensor, b_tensor)
    return Problem(out, [x_tensor, w_tensor, b_tensor], [x, w, b], (x @ w.T + b).astype("float32"), 1e-4, 1e-5)


@case("batch_matmul")
def _batch_matmul() -> Problem:
    g = rng(14)
    a_tensor, b_tensor = te.placeholder((3, 7, 5), name="A"), te.placeholder((3, 5, 13), name="B")
    a, b = data(g, (3, 7, 5)), data(g, (3, 5, 13))
    return Problem(ops.batch_matmul(a_tensor, b_tensor), [a_tensor, b_tensor], [a, b], a @ b, 1e-4, 1e-5)


def conv2d_problem(batch: int, channels: int, size: tuple[int, int], out_channels: int, kernel: tuple[int, int],
                   stride: object = 1, padding: object = 0, dilation: object = 1, groups: int = 1) -> Problem:
    g = rng(15)
    data_shape = (batch, channels, *size)
    kernel_shape = (out_channels, channels // groups, *kernel)
    x_tensor, w_tensor = te.placeholder(data_shape, name="data"), te.placeholder(kernel_shape, name="kernel")
    x, w = data(g, data_shape), data(g, kernel_shape)
    out = ops.conv2d_nchw(x_tensor, w_tensor, stride, padding, dilation, groups)
    expected = reference.conv2d_nchw_python(x, w, stride, padding, dilation, groups)
    return Problem(out, [x_tensor, w_tensor], [x, w], expected, rtol=1e-4, atol=1e-5)


CASES["conv2d_pad"] = lambda: conv2d_problem(1, 3, (7, 7), 5, (3, 3), padding=1)
CASES["conv2d_stride_dilation"] = lambda: conv2d_problem(2, 2, (9, 8), 3, (3, 2), (2, 1), (1, 0, 2, 1), (2, 1))
CASES["conv2d_groups"] = lambda: conv2d_problem(1, 4, (6, 7), 6, (3, 3), 1, (1, 2), 1, 2)


@case("depthwise_conv2d")
def _depthwise() -> Problem:
    g = rng(16)
    x_tensor, w_tensor = te.placeholder((1, 3, 7, 9), name="data"), te.placeholder((3, 2, 3, 3), name="kernel")
    x, w = data(g, (1, 3, 7, 9)), data(g, (3, 2, 3, 3))
    out = ops.depthwise_conv2d_nchw(x_tensor, w_tensor, stride=(1, 2), padding=1)
    expected = reference.depthwise_conv2d_nchw_python(x, w, (1, 2), 1)
    return Problem(out, [x_tensor, w_tensor], [x, w], expected, rtol=1e-4, atol=1e-5)


def pool_problem(pool_type: str, kernel: object, stride: object, padding: object, ceil_mode: bool = False,
                 count_include_pad: bool = True, size: tuple[int, int] = (9, 8)) -> Problem:
    shape = (1, 3, *size)
    x_tensor = te.placeholder(shape, name="data")
    x = data(rng(17), shape)
    out = ops.pool2d(x_tensor, kernel, stride, padding, pool_type, ceil_mode, count_include_pad)
    expected = reference.pool2d_python(x, kernel, stride, padding, pool_type, ceil_mode, count_include_pad)
    return Problem(out, [x_tensor], [x], expected, rtol=1e-5, atol=1e-6)


CASES["max_pool"] = lambda: pool_problem("max", 3, 2, 1)
CASES["max_pool_ceil"] = lambda: pool_problem("max", (3, 2), (2, 2), (1, 0), ceil_mode=True)
CASES["avg_pool"] = lambda: pool_problem("avg", 3, 2, 1)
CASES["avg_pool_exclude_pad_ceil"] = lambda: pool_problem("avg", 3, 2, (1, 1), True, False)


@case("global_avg_pool")
def _global_pool() -> Problem:
    x_tensor = te.placeholder((2, 3, 7, 5), name="data")
    x = data(rng(18), (2, 3, 7, 5))
    return Problem(ops.global_pool(x_tensor, "avg"), [x_tensor], [x], x.mean(axis=(2, 3), keepdims=True), 1e-5, 1e-6)


@case("softmax")
def _softmax() -> Problem:
    x_tensor = te.placeholder((7, 13), name="X")
    x = data(rng(19), (7, 13), low=-5.0, high=5.0)
    return Problem(ops.softmax(x_tensor), [x_tensor], [x], reference.softmax_python(x), rtol=1e-5, atol=1e-6)


@case("log_softmax_axis0")
def _log_softmax() -> Problem:
    x_tensor = te.placeholder((13, 7), name="X")
    x = data(rng(20), (13, 7), low=-5.0, high=5.0)
    return Problem(ops.log_softmax(x_tensor, axis=0), [x_tensor], [x], reference.log_softmax_python(x, 0), 1e-5, 1e-5)


@case("layer_norm")
def _layer_norm() -> Problem:
    g = rng(21)
    x_tensor, g_tensor, b_tensor = (te.placeholder((7, 31), name="X"), te.placeholder((31,), name="gamma"),
                                    te.placeholder((31,), name="beta"))
    x, gamma, beta = data(g, (7, 31), low=-2.0, high=3.0), data(g, (31,)), data(g, (31,))
    out = ops.layer_norm(x_tensor, g_tensor, b_tensor, epsilon=1e-5)
    expected = reference.layer_norm_python(x, gamma, beta, -1, 1e-5)
    return Problem(out, [x_tensor, g_tensor, b_tensor], [x, gamma, beta], expected, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------------
# transforms
@case("transpose")
def _transpose() -> Problem:
    x_tensor = te.placeholder((3, 7, 13), name="X")
    x = data(rng(22), (3, 7, 13))
    return Problem(ops.transpose(x_tensor, (2, 0, 1)), [x_tensor], [x], x.transpose(2, 0, 1))


@case("reshape")
def _reshape() -> Problem:
    x_tensor = te.placeholder((6, 35), name="X")
    x = data(rng(23), (6, 35))
    return Problem(ops.reshape(x_tensor, (5, -1, 3)), [x_tensor], [x], x.reshape(5, -1, 3))


@case("concatenate")
def _concatenate() -> Problem:
    g = rng(24)
    shapes = [(7, 3), (7, 5), (7, 1)]
    tensors = [te.placeholder(s, name=f"X{k}") for k, s in enumerate(shapes)]
    arrays = [data(g, s) for s in shapes]
    return Problem(ops.concatenate(tensors, axis=1), tensors, arrays, np.concatenate(arrays, axis=1))


@case("strided_slice")
def _strided_slice() -> Problem:
    x_tensor = te.placeholder((13, 31), name="X")
    x = data(rng(25), (13, 31))
    out = ops.strided_slice(x_tensor, [1, -2], [12, 0], [3, -4])
    return Problem(out, [x_tensor], [x], x[1:12:3, -2:0:-4])
