"""The indexing family (``frontend/onnx_index.py``, ``opdefs/indexing.py``, ``ops/indexing.py``, ``ops/sorting.py``,
``ops/scan.py``) against onnxruntime on random inputs of odd shapes, with every attribute."""

from __future__ import annotations

import numpy as np
import pytest

import tcomp.graph as tg
from tests.graph.ort_reference import check_node, single_node_model

RNG = np.random.default_rng(12)


def _x(shape: tuple[int, ...], dtype: str = "float32") -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather_elements_negative_indices(axis: int) -> None:
    x = _x((4, 5, 3))
    extent = x.shape[axis]
    shape = list(x.shape)
    shape[axis] = 6
    indices = RNG.integers(-extent, extent, shape).astype(np.int64)
    check_node("GatherElements", {"x": x, "i": indices}, {"axis": axis}, opset=13)
    check_node("GatherElements", {"x": x, "i": indices.astype(np.int32)}, {"axis": axis}, constants=["i"], opset=13)


@pytest.mark.parametrize(("data_shape", "index_shape", "batch_dims"), [
    ((5, 7), (3, 2), 0), ((5, 7, 3), (4, 1), 0), ((2, 5, 3), (2, 4, 1), 1), ((2, 3, 5, 4), (2, 3, 2, 2), 2),
])
def test_gather_nd(data_shape: tuple[int, ...], index_shape: tuple[int, ...], batch_dims: int) -> None:
    x = _x(data_shape)
    depth = index_shape[-1]
    extents = data_shape[batch_dims:batch_dims + depth]
    indices = np.stack([RNG.integers(-e, e, index_shape[:-1]) for e in extents], axis=-1).astype(np.int64)
    check_node("GatherND", {"x": x, "i": indices}, {"batch_dims": batch_dims}, opset=13)


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatter_elements(reduction: str) -> None:
    data = _x((5, 6, 3))
    # unique positions along the axis for "none" (ONNX leaves duplicates undefined there), repeats otherwise
    if reduction == "none":
        indices = np.stack([RNG.permutation(6)[:4] for _ in range(5 * 2)]).reshape(5, 2, 4).transpose(0, 2, 1)
    else:
        indices = RNG.integers(-6, 6, (5, 4, 2))
    updates = _x((5, 4, 2))
    check_node("ScatterElements", {"d": data, "i": indices.astype(np.int64), "u": updates},
               {"axis": 1, "reduction": reduction}, opset=18, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reduction", ["none", "add", "max"])
def test_scatter_nd(reduction: str) -> None:
    data = _x((4, 5, 3))
    if reduction == "none":
        flat = RNG.permutation(20)[:6]
        indices = np.stack([flat // 5, flat % 5], axis=-1).reshape(2, 3, 2)
    else:
        indices = np.stack([RNG.integers(-4, 4, (2, 3)), RNG.integers(0, 5, (2, 3))], axis=-1)
    updates = _x((2, 3, 3))
    check_node("ScatterND", {"d": data, "i": indices.astype(np.int64), "u": updates}, {"reduction": reduction},
               opset=18, rtol=1e-5, atol=1e-6)
    check_node("ScatterND", {"d": data, "i": np.array([[1, 2, 0], [3, -1, 2]], np.int64),
                             "u": _x((2,))}, opset=13)


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_one_hot(axis: int) -> None:
    indices = RNG.integers(-7, 9, (3, 5)).astype(np.int64)  # some out of [-depth, depth): all off
    # element-type combinations onnxruntime implements
    check_node("OneHot", {"i": indices, "depth": np.array(7.0, np.float32), "v": np.array([-2.0, 3.5], np.float32)},
               {"axis": axis}, constants=["depth"], opset=11)
    check_node("OneHot", {"i": indices, "depth": np.array([5.0], np.float32),
                          "v": np.array([0, 1], np.int32)}, {"axis": axis}, constants=["depth"], opset=11)
    check_node("OneHot", {"i": indices.astype(np.int32), "depth": np.array([8], np.int32),
                          "v": np.array([0.5, 1.0], np.float32)}, {"axis": axis}, constants=["depth"], opset=11)
    check_node("OneHot", {"i": indices.astype(np.float32), "depth": np.array([6], np.int64),
                          "v": np.array([4, 9], np.int64)}, {"axis": axis}, constants=["depth"], opset=11)


@pytest.mark.parametrize("upper", [0, 1])
def test_trilu_with_run_time_k(upper: int) -> None:
    x = _x((2, 5, 7))
    check_node("Trilu", {"x": x}, {"upper": upper}, opset=14)
    for k in (-2, 3):
        check_node("Trilu", {"x": x, "k": np.array(k, np.int64)}, {"upper": upper}, opset=14)


@pytest.mark.parametrize(("exclusive", "reverse"), [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_cumsum(exclusive: int, reverse: int) -> None:
    x = _x((3, 5, 7))
    for axis in (0, -2) if exclusive == reverse else (2,):
        check_node("CumSum", {"x": x, "axis": np.array(axis, np.int64)}, {"exclusive": exclusive, "reverse": reverse},
                   constants=["axis"], opset=14, rtol=1e-5, atol=1e-5)
    ints = RNG.integers(-9, 9, (2, 6)).astype(np.int32)
    check_node("CumSum", {"x": ints, "axis": np.array(0, np.int32)}, {"exclusive": exclusive, "reverse": reverse},
               constants=["axis"], opset=14)


@pytest.mark.parametrize(("exclusive", "reverse"), [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_cumprod(exclusive: int, reverse: int) -> None:
    x = RNG.uniform(0.5, 1.5, (3, 5, 7)).astype(np.float32) * RNG.choice([-1, 1], (3, 5, 7)).astype(np.float32)
    for axis in (0, -1, 1):
        check_node("CumProd", {"x": x, "axis": np.array(axis, np.int64)}, {"exclusive": exclusive, "reverse": reverse},
                   constants=["axis"], opset=26, rtol=1e-5, atol=1e-6)
    ints = RNG.integers(-3, 4, (2, 7)).astype(np.int32)
    check_node("CumProd", {"x": ints, "axis": np.array(1, np.int32)}, {"exclusive": exclusive, "reverse": reverse},
               constants=["axis"], opset=26)


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize(("axis", "keepdims", "last"), [(0, 1, 0), (1, 0, 0), (-1, 1, 1), (1, 0, 1)])
def test_arg_extremes_with_ties(op: str, axis: int, keepdims: int, last: int) -> None:
    x = RNG.integers(-2, 3, (4, 5, 3)).astype(np.float32)  # many ties
    check_node(op, {"x": x}, {"axis": axis, "keepdims": keepdims, "select_last_index": last}, opset=13)


def test_arg_extremes_of_integers_opset_11() -> None:
    x = RNG.integers(-2, 3, (4, 5, 3)).astype(np.int32)
    check_node("ArgMax", {"x": x}, {"axis": 1, "keepdims": 0}, opset=11)
    check_node("ArgMin", {"x": x}, {"axis": -1}, opset=11)


@pytest.mark.parametrize("largest", [1, 0])
def test_topk_with_ties(largest: int) -> None:
    x = RNG.integers(-3, 4, (3, 9, 2)).astype(np.float32)
    for axis, k in ((1, 4), (-1, 1), (0, 3)):
        check_node("TopK", {"x": x, "k": np.array([k], np.int64)}, {"axis": axis, "largest": largest},
                   constants=["k"], outputs=2, opset=11)
    check_node("TopK", {"x": _x((2, 11))}, {"k": 5}, outputs=2, opset=9)


@pytest.mark.parametrize(("start", "limit", "delta", "dtype"), [
    (0, 10, 3, "int64"), (10, 4, -2, "int32"), (1.5, 7.25, 0.5, "float32"), (-3.0, 2.0, 0.7, "float64"),
])
def test_range(start: float, limit: float, delta: float, dtype: str) -> None:
    inputs = {n: np.array(v, dtype) for n, v in (("start", start), ("limit", limit), ("delta", delta))}
    check_node("Range", inputs, constants=list(inputs), opset=11)


def test_huge_range_is_refused_before_it_is_made() -> None:
    inputs = {n: np.array(v, "float32") for n, v in (("start", 0), ("limit", 2.0**40), ("delta", 1))}
    with pytest.raises(tg.GraphError, match=r"Range\(0.0, 1099511627776.0, 1.0\) would take .* more than the limit"):
        tg.from_onnx(single_node_model("Range", inputs, 1, {}, 11, list(inputs)))


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_to_space_and_back(mode: str) -> None:
    x = _x((2, 18, 3, 5))
    check_node("DepthToSpace", {"x": x}, {"blocksize": 3, "mode": mode}, opset=13)
    check_node("SpaceToDepth", {"x": _x((2, 3, 6, 9))}, {"blocksize": 3}, opset=13)


@pytest.mark.parametrize(("op", "indices"), [
    ("GatherElements", np.array([[0, 5]], np.int64)), ("GatherND", np.array([[1, -5]], np.int64)),
    ("ScatterElements", np.array([[0, -5]], np.int64)), ("ScatterND", np.array([[3, 1]], np.int64)),
])
def test_out_of_range_indices_fail_the_call(op: str, indices: np.ndarray) -> None:
    import tcomp.graph as tg
    from tcomp.runtime.errors import KernelError
    from tests.graph.ort_reference import single_node_model

    inputs = {"x": _x((3, 4)), "i": indices}
    if op.startswith("Scatter"):
        inputs["u"] = _x((1, 2) if op == "ScatterElements" else (1,))
    executor = tg.compile(single_node_model(op, inputs, 1, {"axis": 1} if op == "GatherElements" else {}, 13))
    with pytest.raises(KernelError, match="out of range for an axis of"):
        executor.run(inputs)


@pytest.mark.parametrize(("opset", "axis"), [(13, -1), (13, 0), (13, 1), (11, 1), (11, 0), (11, 2)])
def test_hardmax_picks_the_first_maximum(opset: int, axis: int) -> None:
    x = RNG.integers(-2, 3, (3, 4, 5)).astype(np.float32)  # many ties
    check_node("Hardmax", {"x": x}, {"axis": axis}, opset=opset)


@pytest.mark.parametrize(("shape", "k", "dtype"), [((4, 4), 0, 0), ((3, 6), 2, 7), ((6, 3), -1, 11), ((2, 5), 9, 1)])
def test_eye_like(shape: tuple[int, int], k: int, dtype: int) -> None:
    attrs = {"k": k} | ({"dtype": dtype} if dtype else {})
    check_node("EyeLike", {"x": _x(shape)}, attrs, opset=22)
