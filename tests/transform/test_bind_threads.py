"""``bind_threads``: a kernel's launch dimensions come from its thread-bound loops (the ``launch`` attribute);
loops bound to ``vthread`` become unrolled loops, each thread running the virtual threads in turn."""

from __future__ import annotations

from transform_golden import assert_ir, gpu_kernels

import tcomp
from tcomp import te
from tcomp.ir.expr import const_int_value
from tcomp.transform.bind_threads import bind_threads, launch_dims


def test_virtual_threads_unroll_and_the_launch_is_recorded() -> None:
    X = te.placeholder((4, 32), name="X")
    Y = te.compute((4, 32), lambda i, j: X[i, j] + 1.0, name="Y")
    s = tcomp.create_schedule(Y)
    s[Y].bind(Y.op.axis[0], te.thread_axis("vthread"))
    s[Y].bind(Y.op.axis[1], te.thread_axis("threadIdx.x"))
    (kernel,) = gpu_kernels(s, [X, Y], "vt")
    assert_ir(kernel, """
        def vt_kernel0(X: float32[4, 32], Y: float32[4, 32]):
          for i in thread_binding(0, 4, thread='vthread'):
            for j in thread_binding(0, 32, thread='threadIdx.x'):
              Y[i * 32 + j] = X[i * 32 + j] + 1.0f
    """)
    bound = bind_threads(kernel)
    assert_ir(bound, """
        def vt_kernel0(X: float32[4, 32], Y: float32[4, 32]):
          for i in unrolled(0, 4):
            for j in thread_binding(0, 32, thread='threadIdx.x'):
              Y[i * 32 + j] = X[i * 32 + j] + 1.0f
    """)
    launch = launch_dims(bound)
    assert [const_int_value(g) for g in launch.grid] == [1, 1, 1] and launch.block == (32, 1, 1)
