"""ONNX operators that draw random numbers: ``RandomUniform``, ``RandomNormal``, their ``Like`` forms, ``Bernoulli``,
``Multinomial``, and ``Dropout`` (whose training mode drops at random).

Each draw is a graph ``random`` node (``tcomp/graph/opdefs/random.py``): new numbers at every run, from a generator
that an executor keys from the system's entropy, or from the node's ``seed`` attribute when it has one (then its
draws repeat from one executor, or one exported copy, to the next, run by run). Draws cannot equal onnxruntime's or
onnx's reference numbers, which come from other generators; what matches is the distribution.

``Bernoulli`` gives 1 with probability ``p``, as its definition, onnx's reference and ``torch.bernoulli`` do. (The
function body ONNX ships for it compares the other way round, ``uniform > p``, and draws 1 with probability
``1 - p``; onnxruntime 1.32 draws as that body does.)
"""

from __future__ import annotations

import numpy as np
import onnx

from tcomp.graph.frontend.onnx_builder import Builder
from tcomp.graph.frontend.onnx_common import Attrs, converts, optional, reshape, scalar_param
from tcomp.graph.frontend.onnx_data import onnx_dtype
from tcomp.graph.opdefs.random import STATE_TYPE
from tcomp.ir import dtype as dt

_FLOATS = ("float16", "float32", "float64")


def draw(b: Builder, shape: tuple[int, ...], dtype: str, distribution: str, first: float, second: float,
         seed: float | None, output: str | None = None) -> str:
    """A ``random`` node of the builder's random state: ``uniform`` from ``first`` to ``second``, or ``normal`` of
    mean ``first`` and standard deviation ``second``. Each node draws its own stream."""
    if not b.random_state:  # one per graph; the executor gives it its key and counter
        b.random_state = b.param(np.zeros(STATE_TYPE.shape, np.uint64), "random_state")
    stream = b.random_nodes
    b.random_nodes += 1
    attrs = {"shape": tuple(shape), "dtype": dtype, "distribution": distribution, "a": first, "b": second,
             "stream": stream}
    if seed is not None:
        attrs["seed"] = seed
    return b.add1("random", [b.random_state], output=output, **attrs)


def _seed(a: Attrs) -> float | None:
    return a.float("seed") if a.has("seed") else None


def _float_dtype(b: Builder, a: Attrs, default: str) -> str:
    dtype = onnx_dtype(a.int("dtype"), f"node {b.node_name}: attribute dtype") if a.has("dtype") else default
    if dtype not in _FLOATS:
        raise b.error(f"draws {', '.join(_FLOATS)} tensors, not {dtype}")
    return dtype


def _like_shape(b: Builder, ins: list[str]) -> tuple[tuple[int, ...], str]:
    t = b.type(ins[0])
    return t.shape, t.dtype


@converts("RandomUniform", (1, 22))
def _random_uniform(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    shape = tuple(a.ints("shape", required=True) or ())
    return [draw(b, shape, _float_dtype(b, a, "float32"), "uniform", a.float("low", 0.0), a.float("high", 1.0),
                 _seed(a), node.output[0])]


@converts("RandomNormal", (1, 22))
def _random_normal(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    shape = tuple(a.ints("shape", required=True) or ())
    return [draw(b, shape, _float_dtype(b, a, "float32"), "normal", a.float("mean", 0.0), a.float("scale", 1.0),
                 _seed(a), node.output[0])]


@converts("RandomUniformLike", (1, 22))
def _random_uniform_like(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    shape, dtype = _like_shape(b, ins)
    return [draw(b, shape, _float_dtype(b, a, dtype), "uniform", a.float("low", 0.0), a.float("high", 1.0),
                 _seed(a), node.output[0])]


@converts("RandomNormalLike", (1, 22))
def _random_normal_like(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    shape, dtype = _like_shape(b, ins)
    return [draw(b, shape, _float_dtype(b, a, dtype), "normal", a.float("mean", 0.0), a.float("scale", 1.0),
                 _seed(a), node.output[0])]


@converts("Bernoulli", (15, 22))
def _bernoulli(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    """1 where a uniform draw in [0, 1) is below ``p``: probability ``p``."""
    p = b.type(ins[0])
    if p.dtype not in _FLOATS:
        raise b.error(f"the probabilities must be {', '.join(_FLOATS)}, got {p.dtype}")
    dtype = onnx_dtype(a.int("dtype"), f"node {b.node_name}: attribute dtype") if a.has("dtype") else p.dtype
    uniform = draw(b, p.shape, p.dtype, "uniform", 0.0, 1.0, _seed(a))
    return [b.add1("cast", [b.add1("less", [uniform, ins[0]])], output=node.output[0], dtype=dtype)]


@converts("Multinomial", (7, 22))
def _multinomial(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    """``sample_size`` classes per row of unnormalized log-probabilities ``[batch, classes]``: the number of
    classes whose cumulative probability is at most a uniform draw scaled to the row's total."""
    x = b.type(ins[0])
    if x.ndim != 2 or x.dtype not in _FLOATS:
        raise b.error(f"input must be a float tensor [batch_size, class_size], got {x}")
    dtype = onnx_dtype(a.int("dtype", onnx.TensorProto.INT32), f"node {b.node_name}: attribute dtype")
    if dtype not in ("int32", "int64"):
        raise b.error(f"dtype must be int32 or int64, got {dtype}")
    samples = a.int("sample_size", 1)
    if samples < 1:
        raise b.error(f"sample_size must be at least 1, got {samples}")
    batch, classes = x.shape
    if classes < 1:
        raise b.error("there must be at least one class")
    cumulative = b.add1("cumsum", [b.add1("softmax", [ins[0]], axis=-1)], axis=1)
    total = b.add1("strided_slice", [cumulative], begin=(classes - 1,), end=(classes,), strides=(1,), axes=(1,))
    uniform = b.add1("multiply", [draw(b, (batch, samples), x.dtype, "uniform", 0.0, 1.0, _seed(a)), total])
    below = b.add1("less_equal", [reshape(b, cumulative, (batch, 1, classes)),
                                  reshape(b, uniform, (batch, samples, 1))])
    count = b.add1("sum", [b.add1("cast", [below], dtype=dtype)], axes=(2,), keepdims=False)
    return [b.add1("identity", [count], output=node.output[0])]


# ---------------------------------------------------------------------------------------------------------------------
# dropout: the identity in inference; in training mode (opset 12 on), a random mask of keep probability 1 - ratio
@converts("Dropout", (7, 10, 12, 13, 22))
def _dropout(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    x = b.type(ins[0])
    ratio = 0.0
    if v >= 12 and optional(ins, 2) and bool(b.require_const(ins[2], "training_mode").reshape(-1)[0]):
        ratio = float(b.require_const(ins[1], "ratio").reshape(-1)[0]) if optional(ins, 1) else 0.5
        if not 0.0 <= ratio < 1.0:
            raise b.error(f"ratio {ratio} must be in [0, 1)")
    wants_mask = len(node.output) > 1 and bool(node.output[1])
    if ratio == 0.0:  # inference, or a ratio that drops nothing
        outputs = [b.add1("dropout", [ins[0]], output=node.output[0])]
        if wants_mask:
            outputs.append(b.add1("constant_of_shape", [], output=node.output[1], shape=x.shape, value=True,
                                  dtype="bool"))
        return outputs
    if not dt.is_float(x.dtype):
        raise b.error(f"training mode drops float tensors, got {x.dtype}")
    keep = b.add1("greater_equal", [draw(b, x.shape, x.dtype, "uniform", 0.0, 1.0, _seed(a)),
                                    scalar_param(b, ratio, x.dtype, f"{b.node_name}/ratio")])
    scaled = b.add1("multiply", [ins[0], scalar_param(b, 1.0 / (1.0 - ratio), x.dtype, f"{b.node_name}/scale")])
    kept = b.add1("multiply", [scaled, b.add1("cast", [keep], dtype=x.dtype)], output=node.output[0])
    return [kept, b.add1("identity", [keep], output=node.output[1])] if wants_mask else [kept]


__all__ = ["draw"]
