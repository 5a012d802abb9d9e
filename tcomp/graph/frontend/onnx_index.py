"""ONNX converters for the indexing family: ``GatherElements GatherND ScatterElements Scatter ScatterND OneHot Trilu
CumSum CumProd ArgMax ArgMin Hardmax TopK Range EyeLike DepthToSpace SpaceToDepth``.

Inputs that decide a shape (``OneHot``'s depth, ``TopK``'s k, ``Range``'s bounds) or the computation's structure
(the axis of ``CumSum`` and ``CumProd``) must be known at compile time; ``Trilu``'s k is read at run time.
``Range`` and ``EyeLike`` become constants; ``Hardmax`` is the one-hot of the ``argmax`` (its first maximum).
``DepthToSpace`` and ``SpaceToDepth`` are a reshape, a transpose and a reshape.
"""

from __future__ import annotations

import math

import numpy as np
import onnx

from tcomp.graph.frontend.onnx_builder import Builder
from tcomp.graph.frontend.onnx_common import Attrs, const_ints, converts, optional, register
from tcomp.graph.frontend.onnx_data import ONNX_DTYPES
from tcomp.graph.infer import check_size
from tcomp.graph.ir import TensorType
from tcomp.ir import dtype as dt


@converts("GatherElements", (11, 13))
def _gather_elements(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    return [b.add1("gather_elements", [ins[0], ins[1]], output=node.output[0], axis=a.int("axis", 0))]


@converts("GatherND", (11, 12, 13))
def _gather_nd(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    batch_dims = a.int("batch_dims", 0) if v >= 12 else 0
    return [b.add1("gather_nd", [ins[0], ins[1]], output=node.output[0], batch_dims=batch_dims)]


def _reduction(b: Builder, a: Attrs, v: int, since_max_min: int) -> str:
    reduction = a.string("reduction", "none") if v >= 16 else "none"
    allowed = ("none", "add", "mul") + (("max", "min") if v >= since_max_min else ())
    if reduction not in allowed:
        raise b.error(f"reduction {reduction!r} is not one of {allowed}")
    return reduction


@converts("ScatterElements", (11, 13, 16, 18))
def _scatter_elements(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    return [b.add1("scatter_elements", ins[:3], output=node.output[0], axis=a.int("axis", 0),
                   reduction=_reduction(b, a, v, 18))]


@converts("Scatter", (9, 11))
def _scatter(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    return [b.add1("scatter_elements", ins[:3], output=node.output[0], axis=a.int("axis", 0), reduction="none")]


@converts("ScatterND", (11, 13, 16, 18))
def _scatter_nd(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    return [b.add1("scatter_nd", ins[:3], output=node.output[0], reduction=_reduction(b, a, v, 18))]


@converts("OneHot", (9, 11, 28))
def _one_hot(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    depth_value = b.require_const(ins[1], "the depth")
    if depth_value.size != 1:
        raise b.error(f"the depth must be a scalar, got shape {depth_value.shape}")
    depth = int(depth_value.reshape(-1)[0])  # a float depth is truncated, as onnxruntime does
    values = ins[2]
    if b.type(values).shape != (2,):
        values = b.add1("reshape", [values], shape=(2,))
    return [b.add1("one_hot", [ins[0], values], output=node.output[0], depth=depth, axis=a.int("axis", -1))]


@converts("Trilu", (14,))
def _trilu(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    k = optional(ins, 1)
    return [b.add1("trilu", [ins[0], k] if k else [ins[0]], output=node.output[0], upper=a.int("upper", 1))]


def _cumulative(op: str) -> object:
    def convert(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
        axis = const_ints(b, ins[1], "the axis")
        if len(axis) != 1:
            raise b.error(f"the axis must be a scalar, got {axis}")
        return [b.add1(op, [ins[0]], output=node.output[0], axis=axis[0], exclusive=a.int("exclusive", 0),
                       reverse=a.int("reverse", 0))]

    return convert


register("CumSum", (11, 14), _cumulative("cumsum"))  # type: ignore[arg-type]
register("CumProd", (26,), _cumulative("cumprod"))  # type: ignore[arg-type]


def _arg(op: str) -> object:
    def convert(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
        last = a.int("select_last_index", 0) if v >= 12 else 0
        return [b.add1(op, [ins[0]], output=node.output[0], axis=a.int("axis", 0), keepdims=a.int("keepdims", 1),
                       select_last_index=last)]

    return convert


converts("ArgMax", (1, 11, 12, 13))(_arg("argmax"))  # type: ignore[arg-type]
converts("ArgMin", (1, 11, 12, 13))(_arg("argmin"))  # type: ignore[arg-type]


@converts("Hardmax", (1, 11, 13))
def _hardmax(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    x = ins[0]
    t = b.type(x)
    if not dt.is_float(t.dtype):
        raise b.error(f"input must be a float tensor, got {t.dtype}")
    axis = a.int("axis", -1 if v >= 13 else 1)
    if not -t.ndim <= axis < max(t.ndim, 1):
        raise b.error(f"axis={axis} is out of range for {t.ndim} dimensions")
    axis = axis + t.ndim if axis < 0 else axis
    data, flat = x, v < 13  # before 13, the input is a matrix [prod(shape[:axis]), prod(shape[axis:])]
    if flat:
        data = b.add1("reshape", [x], shape=(math.prod(t.shape[:axis]), math.prod(t.shape[axis:])))
        axis = 1
    shape = b.type(data).shape
    first = b.add1("argmax", [data], axis=axis, keepdims=0, select_last_index=0)
    values = b.param(np.array([0, 1], dtype=dt.to_numpy(t.dtype)), f"{b.node_name}/values")
    hot = b.add1("one_hot", [first, values], output=None if flat else node.output[0], depth=shape[axis], axis=axis)
    return [b.add1("reshape", [hot], output=node.output[0], shape=t.shape) if flat else hot]


@converts("EyeLike", (9, 22))
def _eye_like(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    t = b.type(ins[0])
    if t.ndim != 2:
        raise b.error(f"input must be a matrix, got {t}")
    code = a.int("dtype", 0)
    if code and code not in ONNX_DTYPES:
        raise b.error(f"dtype {code} is not an element type tcomp supports")
    dtype = ONNX_DTYPES[code] if code else t.dtype
    eye = np.eye(t.shape[0], t.shape[1], k=a.int("k", 0), dtype=dt.to_numpy(dtype))
    return [b.param(eye, node.output[0])]


@converts("TopK", (1, 10, 11, 24))
def _topk(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    if v >= 10:
        k = const_ints(b, ins[1], "k")
        if len(k) != 1:
            raise b.error(f"k must be a single value, got {k}")
    else:
        k = [a.int("k")]
    largest = a.int("largest", 1) if v >= 11 else 1
    outputs = [name or b.fresh(f"{b.node_name}/unused") for name in node.output[:2]]
    while len(outputs) < 2:
        outputs.append(b.fresh(f"{b.node_name}/unused"))
    return b.add("topk", [ins[0]], outputs, k=k[0], axis=a.int("axis", -1), largest=largest)


@converts("Range", (11, 27))
def _range(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    bounds = []
    for name, what in zip(ins[:3], ("start", "limit", "delta")):
        value = b.require_const(name, f"the {what}")
        if value.size != 1:
            raise b.error(f"the {what} must be a scalar, got shape {value.shape}")
        bounds.append(value.reshape(-1)[0])
    dtype = b.type(ins[0]).dtype
    start, limit, delta = (np.asarray(x, dtype=dt.to_numpy(dtype)) for x in bounds)
    if delta == 0:
        raise b.error("the delta must not be zero")
    count = max(int(math.ceil((float(limit) - float(start)) / float(delta))), 0)
    if count == 0:
        raise b.error(f"Range({start}, {limit}, {delta}) is empty (zero-size tensors are not supported)")
    check_size(TensorType((count,), dtype), f"node {b.node_name}: Range({start}, {limit}, {delta})")
    if all(name in b.params for name in ins[:3]):
        values = (start + np.arange(count, dtype=start.dtype) * delta).astype(start.dtype)
        return [b.param(values, node.output[0])]
    # bounds computed in the graph (from shapes): a node, which folds to a constant unless its values vary
    return [b.add1("range", [ins[0], ins[2]], output=node.output[0], count=count)]


def _nchw_and_blocksize(b: Builder, x: str, a: Attrs) -> tuple[int, int, int, int, int]:
    """DepthToSpace's and SpaceToDepth's 4-D input's ``(n, c, h, w)`` and the positive ``blocksize``."""
    shape = b.type(x).shape
    if len(shape) != 4:
        raise b.error(f"expects a 4-D input, got {b.type(x)}")
    size = a.int("blocksize")
    if size <= 0:
        raise b.error(f"blocksize={size} must be positive")
    n, c, h, w = shape
    return n, c, h, w, size


@converts("DepthToSpace", (1, 11, 13, 28))
def _depth_to_space(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    x = ins[0]
    n, c, h, w, size = _nchw_and_blocksize(b, x, a)
    mode = a.string("mode", "DCR") if v >= 11 else "DCR"
    if c % (size * size):
        raise b.error(f"{c} channels are not a multiple of blocksize^2 = {size * size}")
    depth = c // (size * size)
    if mode == "DCR":
        split, perm = (n, size, size, depth, h, w), (0, 3, 4, 1, 5, 2)
    elif mode == "CRD":
        split, perm = (n, depth, size, size, h, w), (0, 1, 4, 2, 5, 3)
    else:
        raise b.error(f"mode {mode!r} must be 'DCR' or 'CRD'")
    blocks = b.add1("reshape", [x], shape=split)
    moved = b.add1("transpose", [blocks], perm=perm)
    return [b.add1("reshape", [moved], output=node.output[0], shape=(n, depth, h * size, w * size))]


@converts("SpaceToDepth", (1, 13, 28))
def _space_to_depth(b: Builder, node: onnx.NodeProto, ins: list[str], a: Attrs, v: int) -> list[str]:
    x = ins[0]
    n, c, h, w, size = _nchw_and_blocksize(b, x, a)
    if h % size or w % size:
        raise b.error(f"the spatial size {h} x {w} is not a multiple of blocksize {size}")
    mode = a.string("mode", "DCR") if v >= 28 else "DCR"
    if mode not in ("DCR", "CRD"):
        raise b.error(f"mode {mode!r} must be 'DCR' or 'CRD'")
    blocks = b.add1("reshape", [x], shape=(n, c, h // size, size, w // size, size))
    moved = b.add1("transpose", [blocks], perm=(0, 3, 5, 1, 2, 4) if mode == "DCR" else (0, 1, 3, 5, 2, 4))
    return [b.add1("reshape", [moved], output=node.output[0], shape=(n, c * size * size, h // size, w // size))]
