"""Gather checks its indices as ONNX says: negative ones count from the end, out-of-range ones fail the run with a
``KernelError`` naming the index (onnxruntime raises too), and large ones are never wrapped to small ones.

Before: out-of-range indices were clamped (10^9 read the last row) and 2^40 was cast to int32 (row 0).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import tcomp
import tcomp.graph as tg
from tcomp import te
from tcomp.ir.stmt import AssertStmt, For, ForKind
from tcomp.runtime.errors import KernelError

RNG = np.random.default_rng(0)


def gather_model(data_shape: tuple[int, ...], indices_shape: tuple[int, ...], axis: int, index_type: int,
                 fused_add: bool = False) -> tuple[onnx.ModelProto, np.ndarray]:
    data = RNG.standard_normal(data_shape).astype(np.float32)
    nodes = [helper.make_node("Relu", ["d"], ["r"])]  # data computed in the kernel, not just read
    indices = "i"
    if fused_add:  # indices computed in the same kernel
        nodes.append(helper.make_node("Add", ["i", "one"], ["i1"]))
        indices = "i1"
    nodes.append(helper.make_node("Gather", ["r", indices], ["y"], axis=axis))
    out_shape = data_shape[:axis] + indices_shape + data_shape[axis + 1:]
    inits = [numpy_helper.from_array(data, "d")]
    if fused_add:
        inits.append(numpy_helper.from_array(np.array(1, dtype=onnx.helper.tensor_dtype_to_np_dtype(index_type)),
                                             "one"))
    graph = helper.make_graph(nodes, "gather", [helper.make_tensor_value_info("i", index_type, list(indices_shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), data


CASES = [((10, 3), (4,), 0, TensorProto.INT64, False), ((10, 3), (2, 3), 0, TensorProto.INT32, False),
         ((5, 7, 3), (6,), 1, TensorProto.INT64, True), ((4, 9), (), 1, TensorProto.INT64, False),
         ((1000, 64), (1, 16), 0, TensorProto.INT64, False)]


@pytest.mark.parametrize("data_shape, indices_shape, axis, index_type, fused_add", CASES)
def test_gather_matches_onnxruntime_and_checks_indices(data_shape, indices_shape, axis, index_type,  # type: ignore[no-untyped-def]
                                                       fused_add) -> None:
    model, _ = gather_model(data_shape, indices_shape, axis, index_type, fused_add)
    executor = tg.compile(model)
    options = ort.SessionOptions()
    options.log_severity_level = 4  # its errors are expected here
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    np_type = helper.tensor_dtype_to_np_dtype(index_type)
    extent = data_shape[axis]
    shift = 1 if fused_add else 0
    for _ in range(3):
        indices = np.asarray(RNG.integers(-extent, extent, size=indices_shape) - shift, dtype=np_type)
        [got] = executor.run([indices])
        [want] = session.run(None, {"i": indices})
        np.testing.assert_array_equal(got, want)
    for bad in (extent, -extent - 1, 10**9, -(10**9), np.iinfo(np_type).max, np.iinfo(np_type).min + 1):
        indices = np.zeros(indices_shape, dtype=np_type)
        indices.reshape(-1)[-1] = bad - shift
        with pytest.raises(KernelError, match=f"index {bad} is out of range for an axis of {extent} elements"):
            executor.run([indices])
        with pytest.raises(Exception):  # noqa: B017 - onnxruntime's own error type
            session.run(None, {"i": indices})
    if index_type == TensorProto.INT64:
        indices = np.zeros(indices_shape, dtype=np.int64)
        indices.reshape(-1)[0] = 2**40 - shift  # was cast to int32: row 0
        with pytest.raises(KernelError, match=f"index {2**40} is out of range"):
            executor.run([indices])


def test_a_failed_gather_leaves_the_executor_usable() -> None:
    model, data = gather_model((10, 3), (2,), 0, TensorProto.INT64)
    executor = tg.compile(model)
    with pytest.raises(KernelError):
        executor.run([np.array([3, 11])])
    [got] = executor.run([np.array([3, -1])])
    np.testing.assert_array_equal(got, np.maximum(data, 0)[[3, 9]])


def _loops_above_asserts(stmt: object, depth: int = 0) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    if isinstance(stmt, AssertStmt):
        found.append((depth, "assert"))
        return found + _loops_above_asserts(stmt.body, depth)
    if isinstance(stmt, For):
        found.append((depth, stmt.kind.value))
        return found + _loops_above_asserts(stmt.body, depth + 1)
    for name in ("body", "then_case", "seq"):
        child = getattr(stmt, name, None)
        for item in child if isinstance(child, tuple) else (child,):
            if item is not None:
                found += _loops_above_asserts(item, depth)
    return found


def test_the_check_of_a_row_index_sits_above_the_row_copy() -> None:
    """The index of a row is checked once per row, so the copy of the row still vectorizes."""
    table = te.placeholder((100, 64), name="table")
    ids = te.placeholder((8,), name="ids", dtype="int64")
    out = te.compute((8, 64), lambda i, j: table[te.checked_index(ids[i], 100), j], name="rows")
    s = tcomp.create_schedule(out)
    _, inner = s[out].split(out.op.axis[1], factor=16)
    s[out].vectorize(inner)
    func = tcomp.lower(s, [table, ids, out])
    shape = _loops_above_asserts(func.body)
    assert ("assert" in [kind for _, kind in shape]), shape
    assert_depth = next(d for d, kind in shape if kind == "assert")
    assert assert_depth == 1 and not any(kind == ForKind.VECTORIZED.value for d, kind in shape if d < assert_depth)
    module = tcomp.build(s, [table, ids, out])
    t = RNG.standard_normal((100, 64)).astype(np.float32)
    rows = np.array([0, 5, -1, 99, -100, 7, 8, 9], dtype=np.int64)
    result = np.zeros((8, 64), dtype=np.float32)
    module(t, rows, result)
    np.testing.assert_array_equal(result, t[rows])
    rows[4] = 100
    with pytest.raises(KernelError, match="index 100 is out of range for an axis of 100 elements"):
        module(t, rows, result)


def test_checked_index_rejects_bad_arguments() -> None:
    with pytest.raises(TypeError, match="must be an integer"):
        te.checked_index(te.const(1.5), 4)
    with pytest.raises(ValueError, match="positive int"):
        te.checked_index(te.const(1), 0)


def test_a_checked_index_into_an_inlined_reshape_keeps_index_dtypes() -> None:
    """A gather from a reshaped tensor: the reshape is inlined, so the checked index enters its flat index
    arithmetic beside the int32 loop variables (a BERT export's attention mask does this)."""
    from tcomp import ops
    from tcomp.ops.cpu import schedule_cpu

    mask = te.placeholder((2, 16), name="mask")
    ids = te.placeholder((2, 16), name="ids", dtype="int64")
    flat = ops.reshape(ops.cast(mask, "float32"), (32, 1))
    out = te.compute((2, 16, 16), lambda b, i, j: flat[te.checked_index(ids[b, j], 32), 0] + te.const(0.0) * i,
                     name="gathered")
    module = tcomp.build(schedule_cpu(out), [mask, ids, out])
    m = RNG.standard_normal((2, 16)).astype(np.float32)
    rows = RNG.integers(-32, 32, (2, 16)).astype(np.int64)
    result = np.zeros((2, 16, 16), dtype=np.float32)
    module(m, rows, result)
    want = m.reshape(32)[np.where(rows < 0, rows + 32, rows)]
    np.testing.assert_array_equal(result, np.broadcast_to(want[:, None, :], (2, 16, 16)))
    assert te.checked_index(te.const(3, "int64"), 1 << 40).dtype == "int64"
