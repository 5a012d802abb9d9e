"""``split_host_device``: a GPU function becomes one kernel per launched region; global intermediates become
temporaries the host allocates, passed to the kernels that touch them."""

from __future__ import annotations

import pytest
from transform_golden import assert_ir

import tcomp
from tcomp import te
from tcomp.ir.gpu import GPUError
from tcomp.transform.split_host_device import split_host_device


def _bound(s: tcomp.schedule.Schedule, tensor: te.Tensor) -> None:
    block, thread = s[tensor].split(tensor.op.axis[0], factor=32)
    s[tensor].bind(block, te.thread_axis("blockIdx.x"))
    s[tensor].bind(thread, te.thread_axis("threadIdx.x"))


def test_each_launched_region_becomes_a_kernel_and_the_intermediate_a_temporary() -> None:
    A = te.placeholder((64,), name="A")
    B = te.compute((64,), lambda i: A[i] * 2.0, name="B")
    C = te.compute((64,), lambda i: B[63 - i] + 1.0, name="C")
    s = tcomp.create_schedule(C)
    _bound(s, B)
    _bound(s, C)
    func = tcomp.lower(s, [A, C], "two", target="cuda")
    assert_ir(func, """
        def two(A: float32[64], C: float32[64]):
          allocate B: float32[64]
          for i.outer in thread_binding(0, 2, thread='blockIdx.x'):
            for i.inner in thread_binding(0, 32, thread='threadIdx.x'):
              B[i.outer * 32 + i.inner] = A[i.outer * 32 + i.inner] * 2.0f
          for i.outer in thread_binding(0, 2, thread='blockIdx.x'):
            for i.inner in thread_binding(0, 32, thread='threadIdx.x'):
              C[i.outer * 32 + i.inner] = B[63 - i.outer * 32 - i.inner] + 1.0f
    """)
    split = split_host_device(func)
    assert [b.name for b in split.temporaries] == ["B"]
    first, second = split.kernels
    assert_ir(first, """
        def two_kernel0(A: float32[64], B: float32[64]):
          for i.outer in thread_binding(0, 2, thread='blockIdx.x'):
            for i.inner in thread_binding(0, 32, thread='threadIdx.x'):
              B[i.outer * 32 + i.inner] = A[i.outer * 32 + i.inner] * 2.0f
    """)
    assert_ir(second, """
        def two_kernel1(C: float32[64], B: float32[64]):
          for i.outer in thread_binding(0, 2, thread='blockIdx.x'):
            for i.inner in thread_binding(0, 32, thread='threadIdx.x'):
              C[i.outer * 32 + i.inner] = B[63 - i.outer * 32 - i.inner] + 1.0f
    """)


def test_a_loop_nest_bound_to_no_thread_is_refused() -> None:
    A = te.placeholder((8,), name="A")
    B = te.compute((8,), lambda i: A[i] + 1.0, name="B")
    func = tcomp.lower(tcomp.create_schedule(B), [A, B], "host", target="cuda")
    with pytest.raises(GPUError, match="the loop nest computing B is not bound to GPU threads and would run on"):
        split_host_device(func)
