"""``insert_index_checks``: indices read from data (``te.checked_index``) are asserted in range before use and
wrapped (negative ones count from the end); an assertion that does not depend on an inner loop moves above it.
``drop_index_checks`` only wraps them (targets without run-time assertions)."""

from __future__ import annotations

import numpy as np
import pytest
from transform_golden import assert_ir, loop_nest

import tcomp
from tcomp import te
from tcomp.runtime.errors import KernelError
from tcomp.transform.index_checks import drop_index_checks, insert_index_checks


def _gather() -> tcomp.ir.stmt.PrimFunc:
    data = te.placeholder((5, 3), name="data")
    idx = te.placeholder((4,), name="idx", dtype="int64")
    G = te.compute((4, 3), lambda i, j: data[te.checked_index(idx[i], 5), j], name="G")
    return loop_nest(tcomp.create_schedule(G), [data, idx, G], "gather")


def test_an_index_from_data_is_checked_once_per_row_and_wrapped() -> None:
    func = _gather()
    assert_ir(func, """
        def gather(data: float32[5, 3], idx: int64[4], G: float32[4, 3]):
          for i in range(0, 4):
            for j in range(0, 3):
              G[i, j] = data[int32(max(min(tcomp.checked_index(idx[i], 5i64), 4i64), 0i64)), j]
    """)
    assert_ir(insert_index_checks(func), """
        def gather(data: float32[5, 3], idx: int64[4], G: float32[4, 3]):
          for i in range(0, 4):
            assert idx[i] >= 0i64 - 5i64 && idx[i] < 5i64, 'index {} is out of range for an axis of {} elements', idx[i], 5i64
            for j in range(0, 3):
              G[i, j] = data[int32(max(min(select(idx[i] < 0i64, idx[i] + 5i64, idx[i]), 4i64), 0i64)), j]
    """)  # noqa: E501


def test_without_assertions_the_index_is_only_wrapped() -> None:
    assert_ir(drop_index_checks(_gather()), """
        def gather(data: float32[5, 3], idx: int64[4], G: float32[4, 3]):
          for i in range(0, 4):
            for j in range(0, 3):
              G[i, j] = data[int32(max(min(select(idx[i] < 0i64, idx[i] + 5i64, idx[i]), 4i64), 0i64)), j]
    """)


def test_an_axis_of_symbolic_extent() -> None:
    """The extent may be an expression of symbolic sizes (a kernel compiled for symbolic dimensions): the check
    and the wrap use it, and calls bind it from the data's shape."""
    n = te.var("n", "int32", max_value=1 << 20)
    data = te.placeholder((n, 3), name="data")
    idx = te.placeholder((4,), name="idx", dtype="int64")
    G = te.compute((4, 3), lambda i, j: data[te.checked_index(idx[i], n), j], name="G")
    func = insert_index_checks(loop_nest(tcomp.create_schedule(G), [data, idx, G], "gather"))
    assert "idx[i] < int64(n)" in str(func) and "idx[i] + int64(n)" in str(func)
    module = tcomp.build(tcomp.create_schedule(G), [data, idx, G])
    values = np.arange(15, dtype=np.float32).reshape(5, 3)
    out = np.zeros((4, 3), np.float32)
    module(values, np.array([0, -1, 4, 2]), out)
    np.testing.assert_array_equal(out[:, 0], [0, 12, 12, 6])
    with pytest.raises(KernelError, match="index 5 is out of range for an axis of 5 elements"):
        module(values, np.array([0, 5, 1, 1]), out)
    with pytest.raises(ValueError, match="a symbolic extent must be an int32 expression"):
        te.checked_index(idx[0], te.var("m", "int64"))
