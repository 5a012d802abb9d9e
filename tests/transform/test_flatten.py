"""``flatten_buffers``: every access gets one row-major index; allocations get a 1-d shape, parameters keep theirs."""

from __future__ import annotations

from transform_golden import assert_ir, loop_nest

import tcomp
from tcomp import te
from tcomp.transform.flatten import flatten_buffers

M = te.placeholder((3, 5), name="M")


def test_accesses_become_row_major_offsets() -> None:
    T = te.compute((5, 3), lambda i, j: M[j, i], name="T")
    func = loop_nest(tcomp.create_schedule(T), [M, T], "transpose")
    assert_ir(func, """
        def transpose(M: float32[3, 5], T: float32[5, 3]):
          for i in range(0, 5):
            for j in range(0, 3):
              T[i, j] = M[j, i]
    """)
    assert_ir(flatten_buffers(func), """
        def transpose(M: float32[3, 5], T: float32[5, 3]):
          for i in range(0, 5):
            for j in range(0, 3):
              T[i * 3 + j] = M[j * 5 + i]
    """)


def test_an_allocation_gets_one_dimension_of_its_whole_size() -> None:
    tmp = te.compute((3, 5), lambda i, j: M[i, j] * 2.0, name="Tmp")
    out = te.compute((3,), lambda i: tmp[i, 0] + tmp[i, 4], name="Out")
    func = loop_nest(tcomp.create_schedule(out), [M, out], "alloc")
    assert_ir(flatten_buffers(func), """
        def alloc(M: float32[3, 5], Out: float32[3]):
          allocate Tmp: float32[15]
          for i in range(0, 3):
            for j in range(0, 5):
              Tmp[i * 5 + j] = M[i * 5 + j] * 2.0f
          for i in range(0, 3):
            Out[i] = Tmp[i * 5 + 0] + Tmp[i * 5 + 4]
    """)
