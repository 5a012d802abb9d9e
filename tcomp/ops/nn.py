"""Neural-network operators: matrix products, normalizations, activations; convolutions and pooling are defined in
``conv.py`` and ``pool.py`` and re-exported here.

Multi-stage operators (softmax, layer_norm, ...) name their stages ``<name>_<part>`` so schedules can find them
through ``tensor.op.input_tensors()``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tcomp import te
from tcomp.ir import dtype as dt
from tcomp.ir.expr import Expr, Var, cast, const
from tcomp.ops.conv import conv2d_nchw, depthwise_conv2d_nchw, pad
from tcomp.ops.elemwise import add, leaky_relu, relu, sigmoid, tanh
from tcomp.ops.pool import PoolType, global_pool, pool2d
from tcomp.ops.utils import (
    OP_KIND,
    OpError,
    OpKind,
    Tag,
    as_int,
    check_tensor,
    normalize_axes,
    normalize_axis,
    same_dim,
    shape_product,
    shape_str,
)
from tcomp.te.tensor import Tensor

__all__ = [
    "PoolType", "batch_matmul", "batch_norm", "bias_add", "conv2d_nchw", "dense", "depthwise_conv2d_nchw", "gelu",
    "global_pool", "layer_norm", "leaky_relu", "log_softmax", "matmul", "pad", "pool2d", "relu", "rms_norm",
    "sigmoid", "softmax", "tanh",
]


def _accumulate_dtype(op: str, a: Tensor, b: Tensor, out_dtype: str | None) -> str:
    if out_dtype is not None:
        try:
            return dt.normalize(out_dtype)
        except dt.DTypeError as exc:
            raise OpError(f"{op}: out_dtype: {exc}") from exc
    return dt.promote(a.dtype, b.dtype)


def _check_inner(op: str, k_a: Any, k_b: Any, a: Tensor, b: Tensor) -> None:
    if not same_dim(k_a, k_b):
        raise OpError(
            f"{op}: the reduction dimensions differ: {k_a} in {a.name}{shape_str(a.shape)} and {k_b} in "
            f"{b.name}{shape_str(b.shape)}"
        )


# ---------------------------------------------------------------------------------------------------------------------
# matrix products
def matmul(
    a: Tensor,
    b: Tensor,
    transpose_a: bool = False,
    transpose_b: bool = False,
    out_dtype: str | None = None,
    name: str = "T_matmul",
) -> Tensor:
    """``out[i, j] = sum_k A[i, k] * B[k, j]`` with ``A = a`` (``[M, K]``, or ``[K, M]`` when ``transpose_a``)
    and ``B = b`` (``[K, N]``, or ``[N, K]`` when ``transpose_b``). Products accumulate in ``out_dtype``
    (default: the promotion of the input dtypes)."""
    op = "matmul"
    check_tensor(op, "a", a, 2)
    check_tensor(op, "b", b, 2)
    m, k_a = (a.shape[1], a.shape[0]) if transpose_a else (a.shape[0], a.shape[1])
    k_b, n = (b.shape[1], b.shape[0]) if transpose_b else (b.shape[0], b.shape[1])
    _check_inner(op, k_a, k_b, a, b)
    acc = _accumulate_dtype(op, a, b, out_dtype)
    k = te.reduce_axis((0, k_a), name="k")

    def body(i: Var, j: Var) -> Expr:
        lhs = a[k, i] if transpose_a else a[i, k]
        rhs = b[j, k] if transpose_b else b[k, j]
        return te.sum(cast(lhs, acc) * cast(rhs, acc), axis=k)

    attrs = {OP_KIND: OpKind.MATMUL, "transpose_a": transpose_a, "transpose_b": transpose_b}
    return te.compute((m, n), body, name=name, tag=Tag.OUT_ELEMWISE_FUSABLE, attrs=attrs)


def dense(
    x: Tensor, weight: Tensor, bias: Tensor | None = None, out_dtype: str | None = None, name: str = "T_dense"
) -> Tensor:
    """Fully connected layer: ``x[M, K]``, ``weight[N, K]`` -> ``out[i, j] = sum_k x[i, k] * weight[j, k]``
    (+ ``bias[j]`` in a second stage ``<name>_bias`` when given)."""
    op = "dense"
    check_tensor(op, "x", x, 2)
    check_tensor(op, "weight", weight, 2)
    _check_inner(op, x.shape[1], weight.shape[1], x, weight)
    product = matmul(x, weight, transpose_b=True, out_dtype=out_dtype, name=name if bias is None else f"{name}_mm")
    if bias is None:
        return product
    check_tensor(op, "bias", bias, 1)
    if not same_dim(bias.shape[0], weight.shape[0]):
        raise OpError(f"{op}: bias has {bias.shape[0]} elements, expected the {weight.shape[0]} rows of weight")
    return add(product, bias, name=name)


def batch_matmul(
    a: Tensor,
    b: Tensor,
    transpose_a: bool = False,
    transpose_b: bool = False,
    out_dtype: str | None = None,
    name: str = "T_batch_matmul",
) -> Tensor:
    """``out[t, i, j] = sum_k A[t, i, k] * B[t, k, j]`` with ``a[batch, M, K]`` (``[batch, K, M]`` when
    ``transpose_a``) and ``b[batch, K, N]`` (``[batch, N, K]`` when ``transpose_b``). A batch of 1 broadcasts."""
    op = "batch_matmul"
    check_tensor(op, "a", a, 3)
    check_tensor(op, "b", b, 3)
    m, k_a = (a.shape[2], a.shape[1]) if transpose_a else (a.shape[1], a.shape[2])
    k_b, n = (b.shape[2], b.shape[1]) if transpose_b else (b.shape[1], b.shape[2])
    _check_inner(op, k_a, k_b, a, b)
    batch_a, batch_b = a.shape[0], b.shape[0]
    if same_dim(batch_a, batch_b) or as_int(batch_b) == 1:
        batch = batch_a
    elif as_int(batch_a) == 1:
        batch = batch_b
    else:
        raise OpError(f"{op}: batch sizes {batch_a} of a and {batch_b} of b differ and neither is 1")
    a_single = as_int(batch_a) == 1 and as_int(batch) != 1
    b_single = as_int(batch_b) == 1 and as_int(batch) != 1
    acc = _accumulate_dtype(op, a, b, out_dtype)
    k = te.reduce_axis((0, k_a), name="k")

    def body(t: Var, i: Var, j: Var) -> Expr:
        ta: Expr = const(0) if a_single else t
        tb: Expr = const(0) if b_single else t
        lhs = a[ta, k, i] if transpose_a else a[ta, i, k]
        rhs = b[tb, j, k] if transpose_b else b[tb, k, j]
        return te.sum(cast(lhs, acc) * cast(rhs, acc), axis=k)

    attrs = {OP_KIND: OpKind.BATCH_MATMUL, "transpose_a": transpose_a, "transpose_b": transpose_b}
    return te.compute((batch, m, n), body, name=name, tag=Tag.OUT_ELEMWISE_FUSABLE, attrs=attrs)


# ---------------------------------------------------------------------------------------------------------------------
# softmax family
def _without(indices: Sequence[Any], axes: Sequence[int]) -> tuple[Any, ...]:
    return tuple(index for position, index in enumerate(indices) if position not in axes)


def _with_reduce(indices: Sequence[Any], axes: Sequence[int], reduce_vars: Sequence[Any]) -> tuple[Any, ...]:
    """Output indices (the non-reduced dimensions) interleaved with reduction variables at ``axes``."""
    result: list[Any] = []
    remaining = iter(indices)
    pending = iter(reduce_vars)
    for position in range(len(indices) + len(axes)):
        result.append(next(pending) if position in axes else next(remaining))
    return tuple(result)


def _check_float(op: str, x: Tensor) -> None:
    if not dt.is_float(x.dtype):
        raise OpError(f"{op}: argument x must be a float tensor, got dtype {x.dtype}")


def _max_along(x: Tensor, ax: int, name: str) -> Tensor:
    """The maximum of ``x`` along axis ``ax`` (that axis removed): the first stage of softmax and log_softmax."""
    k = te.reduce_axis((0, x.shape[ax]), name="k")

    def max_body(*idx: Var) -> Expr:
        return te.max(x[_with_reduce(idx, [ax], [k])], axis=k)

    return te.compute(_without(x.shape, [ax]), max_body, name=name, tag=Tag.COMM_REDUCE)


def softmax(x: Tensor, axis: int = -1, name: str = "T_softmax") -> Tensor:
    """``exp(x - max) / sum(exp(x - max))`` along ``axis``, in four stages: ``<name>_maxelem`` (max over the axis),
    ``<name>_exp`` (``exp(x - max)``), ``<name>_expsum`` (sum over the axis) and the normalization (a multiply by
    the sum's reciprocal)."""
    op = "softmax"
    check_tensor(op, "x", x)
    _check_float(op, x)
    ax = normalize_axis(op, axis, x.ndim)
    reduced = _without(x.shape, [ax])
    maxelem = _max_along(x, ax, f"{name}_maxelem")

    def exp_body(*idx: Var) -> Expr:
        return te.exp(x[idx] - maxelem[_without(idx, [ax])])

    expo = te.compute(x.shape, exp_body, name=f"{name}_exp", tag=Tag.ELEMWISE)
    k2 = te.reduce_axis((0, x.shape[ax]), name="k")

    def sum_body(*idx: Var) -> Expr:
        return te.sum(expo[_with_reduce(idx, [ax], [k2])], axis=k2)

    expsum = te.compute(reduced, sum_body, name=f"{name}_expsum", tag=Tag.COMM_REDUCE)

    def norm_body(*idx: Var) -> Expr:
        # one division per row: the reciprocal is invariant along the row (within 1 ulp of the quotient)
        return expo[idx] * (const(1.0, x.dtype) / expsum[_without(idx, [ax])])

    attrs = {OP_KIND: OpKind.SOFTMAX, "axis": ax}
    return te.compute(x.shape, norm_body, name=name, tag=Tag.ELEMWISE, attrs=attrs)


def log_softmax(x: Tensor, axis: int = -1, name: str = "T_log_softmax") -> Tensor:
    """``x - max - log(sum(exp(x - max)))`` along ``axis``, in three stages: ``<name>_maxelem``, ``<name>_expsum``
    (the sum of ``exp(x - max)``) and the result."""
    op = "log_softmax"
    check_tensor(op, "x", x)
    _check_float(op, x)
    ax = normalize_axis(op, axis, x.ndim)
    reduced = _without(x.shape, [ax])
    maxelem = _max_along(x, ax, f"{name}_maxelem")
    k2 = te.reduce_axis((0, x.shape[ax]), name="k")

    def sum_body(*idx: Var) -> Expr:
        return te.sum(te.exp(x[_with_reduce(idx, [ax], [k2])] - maxelem[idx]), axis=k2)

    expsum = te.compute(reduced, sum_body, name=f"{name}_expsum", tag=Tag.COMM_REDUCE)

    def out_body(*idx: Var) -> Expr:
        rest = _without(idx, [ax])
        return x[idx] - maxelem[rest] - te.log(expsum[rest])

    attrs = {OP_KIND: OpKind.LOG_SOFTMAX, "axis": ax}
    return te.compute(x.shape, out_body, name=name, tag=Tag.ELEMWISE, attrs=attrs)


# ---------------------------------------------------------------------------------------------------------------------
# normalization
def _check_param(op: str, argument: str, param: Tensor | None, shape: Sequence[Any]) -> None:
    if param is None:
        return
    check_tensor(op, argument, param)
    if param.ndim != len(shape) or not all(same_dim(p, s) for p, s in zip(param.shape, shape)):
        raise OpError(f"{op}: {argument} has shape {shape_str(param.shape)}, expected {shape_str(shape)}")


def _norm_axes(op: str, x: Tensor, axis: int | Sequence[int], epsilon: float) -> tuple[int, ...]:
    """The normalized axes of a normalization ``op`` over float ``x`` (at least one), with ``epsilon`` checked."""
    check_tensor(op, "x", x)
    _check_float(op, x)
    axes = normalize_axes(op, axis, x.ndim)
    if not axes:
        raise OpError(f"{op}: axis must name at least one axis")
    if epsilon < 0:
        raise OpError(f"{op}: epsilon must be non-negative, got {epsilon}")
    return axes


def layer_norm(
    x: Tensor,
    gamma: Tensor | None = None,
    beta: Tensor | None = None,
    axis: int | Sequence[int] = -1,
    epsilon: float = 1e-5,
    name: str = "T_layer_norm",
) -> Tensor:
    """``(x - mean) / sqrt(var + epsilon) * gamma + beta`` where mean and (biased) variance are taken over ``axis``
    and ``gamma``/``beta`` have the shape of those axes. Three stages: ``<name>_sum`` (sum over the axes),
    ``<name>_sqsum`` (sum of squared deviations from the mean, two-pass for accuracy) and the result."""
    op = "layer_norm"
    axes = _norm_axes(op, x, axis, epsilon)
    norm_shape = [x.shape[a] for a in axes]
    _check_param(op, "gamma", gamma, norm_shape)
    _check_param(op, "beta", beta, norm_shape)
    reduced = _without(x.shape, axes)
    count = cast(shape_product(norm_shape), x.dtype)
    k1 = [te.reduce_axis((0, x.shape[a]), name=f"k{a}") for a in axes]

    def sum_body(*idx: Var) -> Expr:
        return te.sum(x[_with_reduce(idx, axes, k1)], axis=k1)

    total = te.compute(reduced, sum_body, name=f"{name}_sum", tag=Tag.COMM_REDUCE)
    k2 = [te.reduce_axis((0, x.shape[a]), name=f"k{a}") for a in axes]

    def sqsum_body(*idx: Var) -> Expr:
        deviation = x[_with_reduce(idx, axes, k2)] - total[idx] / count
        return te.sum(deviation * deviation, axis=k2)

    sqsum = te.compute(reduced, sqsum_body, name=f"{name}_sqsum", tag=Tag.COMM_REDUCE)

    def out_body(*idx: Var) -> Expr:
        rest = _without(idx, axes)
        param_index = tuple(idx[a] for a in axes)
        value = (x[idx] - total[rest] / count) * te.rsqrt(sqsum[rest] / count + const(epsilon, x.dtype))
        if gamma is not None:
            value = value * gamma[param_index]
        if beta is not None:
            value = value + beta[param_index]
        return value

    attrs = {OP_KIND: OpKind.LAYER_NORM, "axis": axes}
    return te.compute(x.shape, out_body, name=name, tag=Tag.INJECTIVE, attrs=attrs)


def rms_norm(
    x: Tensor,
    gamma: Tensor | None = None,
    axis: int | Sequence[int] = -1,
    epsilon: float = 1e-6,
    name: str = "T_rms_norm",
) -> Tensor:
    """``x / sqrt(mean(x^2) + epsilon) * gamma`` where the mean is taken over ``axis`` and ``gamma`` has the shape
    of those axes (RMSNorm, as Llama and T5 use it). Two stages: ``<name>_sqsum`` (sum of squares over the axes)
    and the result."""
    op = "rms_norm"
    axes = _norm_axes(op, x, axis, epsilon)
    norm_shape = [x.shape[a] for a in axes]
    _check_param(op, "gamma", gamma, norm_shape)
    count = cast(shape_product(norm_shape), x.dtype)
    k = [te.reduce_axis((0, x.shape[a]), name=f"k{a}") for a in axes]

    def sqsum_body(*idx: Var) -> Expr:
        value = x[_with_reduce(idx, axes, k)]
        return te.sum(value * value, axis=k)

    sqsum = te.compute(_without(x.shape, axes), sqsum_body, name=f"{name}_sqsum", tag=Tag.COMM_REDUCE)

    def out_body(*idx: Var) -> Expr:
        value = x[idx] * te.rsqrt(sqsum[_without(idx, axes)] / count + const(epsilon, x.dtype))
        if gamma is not None:
            value = value * gamma[tuple(idx[a] for a in axes)]
        return value

    attrs = {OP_KIND: OpKind.RMS_NORM, "axis": axes}
    return te.compute(x.shape, out_body, name=name, tag=Tag.INJECTIVE, attrs=attrs)


def bias_add(x: Tensor, bias: Tensor, axis: int = 1, name: str = "T_bias_add") -> Tensor:
    """``out[..., c, ...] = x[..., c, ...] + bias[c]`` with ``c`` the index along ``axis``."""
    op = "bias_add"
    check_tensor(op, "x", x)
    check_tensor(op, "bias", bias, 1)
    ax = normalize_axis(op, axis, x.ndim)
    if not same_dim(bias.shape[0], x.shape[ax]):
        raise OpError(f"{op}: bias has {bias.shape[0]} elements, expected {x.shape[ax]} (dimension {ax} of x)")
    return te.compute(x.shape, lambda *idx: x[idx] + bias[idx[ax]], name=name, tag=Tag.BROADCAST)


def batch_norm(
    x: Tensor,
    mean: Tensor,
    var: Tensor,
    gamma: Tensor | None = None,
    beta: Tensor | None = None,
    axis: int = 1,
    epsilon: float = 1e-5,
    name: str = "T_batch_norm",
) -> Tensor:
    """Inference batch normalization: ``(x - mean[c]) / sqrt(var[c] + epsilon) * gamma[c] + beta[c]`` with ``c``
    the index along ``axis``."""
    op = "batch_norm"
    check_tensor(op, "x", x)
    _check_float(op, x)
    ax = normalize_axis(op, axis, x.ndim)
    channel_shape = [x.shape[ax]]
    for argument, param in (("mean", mean), ("var", var), ("gamma", gamma), ("beta", beta)):
        _check_param(op, argument, param, channel_shape)

    def body(*idx: Var) -> Expr:
        c = idx[ax]
        value = (x[idx] - mean[c]) * te.rsqrt(var[c] + const(epsilon, x.dtype))
        if gamma is not None:
            value = value * gamma[c]
        if beta is not None:
            value = value + beta[c]
        return value

    return te.compute(x.shape, body, name=name, tag=Tag.BROADCAST)


def gelu(x: Tensor, name: str = "T_gelu") -> Tensor:
    """``0.5 * x * (1 + erf(x / sqrt(2)))`` elementwise."""
    check_tensor("gelu", "x", x)
    _check_float("gelu", x)

    def body(*idx: Var) -> Expr:
        value = x[idx]
        return value * 0.5 * (te.erf(value * (1.0 / math.sqrt(2.0))) + 1.0)

    return te.compute(x.shape, body, name=name, tag=Tag.ELEMWISE)

