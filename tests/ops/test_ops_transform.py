"""Layout transforms: transpose and reshape index maps, flatten, concatenate, split, strided_slice, expand_dims,
squeeze, under the default schedule; symbolic reshapes; argument errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import tcomp
from tcomp import ops, te
from tcomp.backend.testing import build_and_check
from tcomp.ops import OpError
from tcomp.ops.indexing import gather_elements, gather_nd
from tcomp.ops.scan import cumsum
from tcomp.ops.testing import random_data
from tcomp.runtime.errors import KernelError


def _check(output: te.Tensor, inputs: list[te.Tensor], arrays: list[np.ndarray], expected: Any) -> None:
    build_and_check(tcomp.create_schedule(output), [*inputs, output], arrays, np.asarray(expected), 0, 0)


def _input(shape: tuple[int, ...], seed: int = 500) -> tuple[te.Tensor, np.ndarray]:
    return te.placeholder(shape, name="X"), random_data(np.random.default_rng(seed), shape)


@pytest.mark.parametrize("axes", [None, (1, 0, 2), (2, 0, 1), (0, 2, 1), (-1, -3, -2)], ids=str)
def test_transpose(axes: Any) -> None:
    x_tensor, x = _input((3, 7, 13))
    _check(ops.transpose(x_tensor, axes), [x_tensor], [x], np.transpose(x, axes))


@pytest.mark.parametrize(
    ("shape", "newshape"),
    [
        ((6, 35), (5, -1, 3)),
        ((6, 35), (210,)),
        ((210,), (2, 3, 5, 7)),
        ((2, 3, 5, 7), (7, 5, 3, 2)),
        ((13, 1, 7), (7, 13)),
        ((4, 6), (4, 6)),
        ((1,), (1, 1, 1)),
        ((3, 1, 4), (-1, 1)),
        ((1, 6, 1, 5), (6, 5)),
        ((3, 4), (1, 3, 1, 4, 1)),
        ((2, 3, 12), (2, 3, 4, 3)),
        ((2, 3, 4, 5), (2, 12, 5)),
        ((2, 6, 5), (2, 3, 10)),
    ],
    ids=str,
)
def test_reshape(shape: tuple[int, ...], newshape: tuple[int, ...]) -> None:
    x_tensor, x = _input(shape)
    _check(ops.reshape(x_tensor, newshape), [x_tensor], [x], x.reshape(newshape))


def test_reshape_of_only_unit_dimensions_reads_each_axis_by_its_index() -> None:
    x_tensor, x = _input((5, 1, 7))
    out = ops.reshape(x_tensor, (1, 5, 7, 1))
    _check(out, [x_tensor], [x], x.reshape(1, 5, 7, 1))
    body = str(out.op.body[0])
    assert "//" not in body and "%" not in body


def test_reshape_of_a_transpose_composes_index_maps() -> None:
    x_tensor, x = _input((3, 5, 7))
    out = ops.reshape(ops.transpose(x_tensor, (2, 0, 1)), (7, 15))
    _check(out, [x_tensor], [x], x.transpose(2, 0, 1).reshape(7, 15))


def test_reshape_keeps_shared_leading_dimensions_out_of_the_flat_index() -> None:
    """``[b, s, 12] -> [b, s, 3, 4]`` (attention heads split off projections of a symbolic batch of prompts): ``b``
    and ``s`` read by their own indices, and no division by the symbolic ``s``."""
    b, s = te.var("b", max_value=64), te.var("s", max_value=64)
    x_tensor = te.placeholder((b, s, 12), name="X")
    out = ops.reshape(x_tensor, (b, s, 3, 4))
    body = str(out.op.body[0])
    assert "//" not in body and "%" not in body
    module = tcomp.build(tcomp.create_schedule(out), [x_tensor, out])
    x = random_data(np.random.default_rng(502), (3, 5, 12))
    result = np.zeros((3, 5, 3, 4), dtype="float32")
    module(x, result)
    np.testing.assert_array_equal(result, x.reshape(3, 5, 3, 4))


def test_symbolic_reshape() -> None:
    n = te.var("n")
    x_tensor = te.placeholder((n, 6), name="X")
    out = ops.reshape(x_tensor, (3, -1, 2))
    module = tcomp.build(tcomp.create_schedule(out), [x_tensor, out])
    rng = np.random.default_rng(501)
    for rows in (1, 4, 13):
        x = random_data(rng, (rows, 6))
        result = np.zeros((3, rows, 2), dtype="float32")
        module(x, result)
        np.testing.assert_array_equal(result, x.reshape(3, -1, 2))


def test_operators_over_a_symbolic_dimension() -> None:
    """What a causal mask and positions built from a prompt's length compute (``n`` a symbolic dimension): a slice
    whose bounds are expressions of ``n`` (or an open end, or counted from the end), the first ``n`` rows of a
    table, a running sum along ``n``, a ``gather_nd`` from a tensor of ``n`` columns and ``gather_elements`` along
    and across them (a position table of a batch of prompts); each length against numpy,
    every access bounds-checked, every index checked. A slice ending at a positive int stays inside when ``n``'s
    declared minimum says so (``[:, 0:3]`` of ``n + 1`` columns, ``n >= 2``), else it may pass ``n``: refused."""
    n = te.var("n", "int32", max_value=1 << 20, min_value=2)
    x = te.placeholder((2, n + 1), name="X", dtype="int64")
    head = ops.strided_slice(x, [0], [n], axes=[1], name="head")
    tail = ops.strided_slice(x, [1], [None], axes=[1], name="tail")
    last = ops.strided_slice(x, [-3], [-1], axes=[1], name="last")
    sums = cumsum(tail, axis=1)
    indices = te.placeholder((n, 2), name="I", dtype="int64")
    picked = gather_nd(x, indices)
    table = te.placeholder((40, 3), name="T", dtype="int64")
    positions = ops.strided_slice(table, [0], [n], axes=[0], name="positions")  # a table's first n rows
    first = ops.strided_slice(x, [0], [3], axes=[1], name="first")
    chosen, sided = te.placeholder((2, n), name="E", dtype="int64"), te.placeholder((2, n), name="S", dtype="int64")
    along, across = gather_elements(x, chosen, axis=1), gather_elements(x, sided, axis=0, name="across")
    outputs = [head, tail, last, sums, picked, positions, first, along, across]
    assert [str(out.shape[1]) for out in outputs[:4]] == ["n", "n", "2", "n"] and first.shape[1].value == 3
    module = tcomp.build(tcomp.create_schedule([o.op for o in outputs]), [x, indices, table, chosen, sided, *outputs],
                         check_bounds=True)
    rng = np.random.default_rng(503)
    for length in (2, 3, 17):
        data = rng.integers(-9, 9, (2, length + 1))
        where = np.stack([rng.integers(0, 2, length), rng.integers(-length - 1, length + 1, length)], axis=1)
        rows = rng.integers(0, 99, (40, 3))
        columns, sides = rng.integers(-length - 1, length + 1, (2, length)), rng.integers(-2, 2, (2, length))
        results = [np.zeros((2, length), np.int64), np.zeros((2, length), np.int64), np.zeros((2, 2), np.int64),
                   np.zeros((2, length), np.int64), np.zeros(length, np.int64), np.zeros((length, 3), np.int64),
                   np.zeros((2, 3), np.int64), np.zeros((2, length), np.int64), np.zeros((2, length), np.int64)]
        module(data, where, rows, columns, sides, *results)
        expected = [data[:, :length], data[:, 1:], data[:, -3:-1], np.cumsum(data[:, 1:], axis=1),
                    data[where[:, 0], where[:, 1]], rows[:length], data[:, :3],
                    np.take_along_axis(data, columns, axis=1), np.take_along_axis(data[:, :length], sides, axis=0)]
        for got, want in zip(results, expected):
            np.testing.assert_array_equal(got, want)
    with pytest.raises(KernelError, match=f"index {length + 1} is out of range for an axis of {length + 1} elements"):
        module(data, where, rows, np.full((2, length), length + 1), sides, *results)
    assert str(ops.strided_slice(x, [0], [(1 << 63) - 1], axes=[1]).shape[1]) == "n + 1"  # ONNX's open end
    with pytest.raises(OpError, match="may lie past its symbolic extent"):
        ops.strided_slice(x, [0], [5], axes=[1])
    with pytest.raises(ValueError, match="n = 1 is below its declared minimum 2"):
        shapes = ((2, 2), (1, 2), (40, 3), (2, 1), (2, 1), (2, 1), (2, 1), (2, 2), (2, 1), (1,), (1, 3), (2, 3), (2, 1),
                  (2, 1))
        module(*(np.zeros(s, np.int64) for s in shapes))
    with pytest.raises(OpError, match="unit steps"):
        ops.strided_slice(x, [0], [n], [2], axes=[1])
    with pytest.raises(OpError, match="last dimension of indices must be a constant"):
        gather_nd(x, te.placeholder((3, n), name="J", dtype="int64"))


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_flatten(axis: int) -> None:
    x_tensor, x = _input((3, 5, 7))
    cut = axis + x.ndim if axis < 0 else axis
    expected = x.reshape(int(np.prod(x.shape[:cut])), -1)
    _check(ops.flatten(x_tensor, axis), [x_tensor], [x], expected)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate(axis: int) -> None:
    rng = np.random.default_rng(502)
    base = [3, 5, 7]
    extents = [1, 4, 2]
    shapes = []
    for extent in extents:
        shape = list(base)
        shape[axis] = extent
        shapes.append(tuple(shape))
    tensors = [te.placeholder(s, name=f"X{k}") for k, s in enumerate(shapes)]
    arrays = [random_data(rng, s) for s in shapes]
    _check(ops.concatenate(tensors, axis), tensors, arrays, np.concatenate(arrays, axis))


def test_concatenate_single_tensor_is_a_copy() -> None:
    x_tensor, x = _input((3, 4))
    _check(ops.concatenate([x_tensor], 1), [x_tensor], [x], x)


@pytest.mark.parametrize("sections", [3, [2, 5], [1]], ids=str)
def test_split(sections: Any) -> None:
    x_tensor, x = _input((4, 9))
    parts = ops.split(x_tensor, sections, axis=1)
    expected = np.split(x, sections, axis=1)
    assert len(parts) == len(expected)
    for part, want in zip(parts, expected):
        _check(part, [x_tensor], [x], want)


@pytest.mark.parametrize(
    ("begin", "end", "strides", "axes"),
    [
        ([1, 2], [3, 9], None, None),
        ([0, -1], [13, -14], [2, -1], None),
        ([None, 3], [None, None], [3, 4], None),
        ([-100], [100], [5], [1]),
        ([5, 1], [0, 6], [-2, 2], [0, 1]),
        ([2], [3], [1], [-2]),
    ],
    ids=str,
)
def test_strided_slice(begin: list[Any], end: list[Any], strides: Any, axes: Any) -> None:
    x_tensor, x = _input((7, 13))
    slices: list[slice] = [slice(None)] * 2
    for k, (b, e) in enumerate(zip(begin, end)):
        axis = k if axes is None else axes[k] % 2
        slices[axis] = slice(b, e, None if strides is None else strides[k])
    out = ops.strided_slice(x_tensor, begin, end, strides, axes)
    _check(out, [x_tensor], [x], x[tuple(slices)])


@pytest.mark.parametrize(("axis", "count"), [(0, 1), (1, 2), (-1, 1), (3, 1), (-4, 2)])
def test_expand_dims(axis: int, count: int) -> None:
    x_tensor, x = _input((3, 1, 7))
    expected = x
    position = axis + 4 if axis < 0 else axis
    for _ in range(count):
        expected = np.expand_dims(expected, position)
    _check(ops.expand_dims(x_tensor, axis, count), [x_tensor], [x], expected)


@pytest.mark.parametrize("axis", [None, 0, (0, 2), -2])
def test_squeeze(axis: Any) -> None:
    x_tensor, x = _input((1, 7, 1, 3))
    _check(ops.squeeze(x_tensor, axis), [x_tensor], [x], np.squeeze(x, axis))


# ---------------------------------------------------------------------------------------------------------------------
# errors
def test_transpose_errors() -> None:
    x_tensor = te.placeholder((2, 3, 4), name="X")
    with pytest.raises(OpError, match=r"transpose: axes=\(0, 1\) must list each of the 3 dimensions"):
        ops.transpose(x_tensor, (0, 1))
    with pytest.raises(OpError, match=r"transpose: axes=\(0, 1, 1\) is not a permutation"):
        ops.transpose(x_tensor, (0, 1, 1))


def test_reshape_errors() -> None:
    x_tensor = te.placeholder((6, 4), name="X")
    with pytest.raises(OpError, match=r"reshape: cannot reshape \(6, 4\) \(24 elements\) into \(5, 5\)"):
        ops.reshape(x_tensor, (5, 5))
    with pytest.raises(OpError, match=r"reshape: cannot reshape \(6, 4\) \(24 elements\) into \(5, -1\)"):
        ops.reshape(x_tensor, (5, -1))
    with pytest.raises(OpError, match="reshape: newshape=.* has more than one -1"):
        ops.reshape(x_tensor, (-1, -1))
    with pytest.raises(OpError, match="reshape: newshape entries must be positive"):
        ops.reshape(x_tensor, (0, 24))


def test_concatenate_errors() -> None:
    a_tensor, b_tensor = te.placeholder((2, 3), name="A"), te.placeholder((4, 4), name="B")
    with pytest.raises(OpError, match=r"concatenate: tensors\[1\] has shape \(4, 4\), which differs"):
        ops.concatenate([a_tensor, b_tensor], axis=1)
    with pytest.raises(OpError, match=r"concatenate: tensors\[1\] has dtype int32"):
        ops.concatenate([a_tensor, te.placeholder((2, 3), dtype="int32", name="C")])
    with pytest.raises(OpError, match="concatenate: tensors must be a non-empty sequence"):
        ops.concatenate([])


def test_slice_and_split_errors() -> None:
    x_tensor = te.placeholder((5, 6), name="X")
    with pytest.raises(OpError, match="strided_slice: the slice 3:3:1 of dimension 0 .* is empty"):
        ops.strided_slice(x_tensor, [3], [3])
    with pytest.raises(OpError, match="strided_slice: strides must be non-zero ints"):
        ops.strided_slice(x_tensor, [0], [3], [0])
    with pytest.raises(OpError, match="split: 4 sections do not divide dimension 1 of extent 6"):
        ops.split(x_tensor, 4, axis=1)
    with pytest.raises(OpError, match=r"split: split points \[0, 3\] must lie strictly inside"):
        ops.split(x_tensor, [0, 3], axis=1)


def test_squeeze_and_expand_dims_errors() -> None:
    x_tensor = te.placeholder((1, 6), name="X")
    with pytest.raises(OpError, match="squeeze: dimension 1 of x has extent 6, not 1"):
        ops.squeeze(x_tensor, 1)
    with pytest.raises(OpError, match=r"expand_dims: axis=3 must be an int in \[-3, 2\]"):
        ops.expand_dims(x_tensor, 3)
