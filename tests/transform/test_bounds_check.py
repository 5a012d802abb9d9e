"""``insert_bounds_checks`` (checked mode): every access is preceded by an assertion on each of its indices."""

from __future__ import annotations

from transform_golden import assert_ir, loop_nest

import tcomp
from tcomp import te
from tcomp.transform.bounds_check import insert_bounds_checks


def test_each_index_of_each_access_is_asserted_before_the_statement() -> None:
    A = te.placeholder((8,), name="A")
    B = te.compute((7,), lambda i: A[i + 1] - A[i], name="B")
    func = loop_nest(tcomp.create_schedule(B), [A, B], "diff")
    assert_ir(insert_bounds_checks(func), """
        def diff(A: float32[8], B: float32[7]):
          for i in range(0, 7):
            assert i + 1 >= 0 && i + 1 < 8, "index out of bounds: buffer 'A' dimension 0: index {} is not in [0, {})", int64(i + 1), 8i64
            assert i >= 0 && i < 8, "index out of bounds: buffer 'A' dimension 0: index {} is not in [0, {})", int64(i), 8i64
            assert i >= 0 && i < 7, "index out of bounds: buffer 'B' dimension 0: index {} is not in [0, {})", int64(i), 7i64
            B[i] = A[i + 1] - A[i]
    """)  # noqa: E501
