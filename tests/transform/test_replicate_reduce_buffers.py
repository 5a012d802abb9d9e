"""``replicate_reduce_buffers``: the shared buffer of a cross-thread reduction gets one copy per row of threads
(``threadIdx.y``), each row indexing its own."""

from __future__ import annotations

from transform_golden import assert_ir, gpu_kernels

import tcomp
from tcomp import ops, te
from tcomp.ops import cuda as cuda_ops
from tcomp.transform.bind_threads import bind_threads
from tcomp.transform.replicate_reduce_buffers import replicate_reduce_buffers


def _row_sums(threads: int, columns: int) -> tcomp.ir.stmt.PrimFunc:
    x = te.placeholder((4, columns), name="x")
    out = ops.sum(x, axis=1)
    s = tcomp.create_schedule(out)
    cuda_ops.schedule_reduce_stage_cross_thread(s[out], num_threads=threads, rows_per_block=2)
    (kernel,) = gpu_kernels(s, [x, out], "rsum")
    return bind_threads(kernel)


def test_each_row_of_threads_gets_its_own_slots() -> None:
    kernel = _row_sums(64, 128)  # two warps per row: their partial sums meet in shared memory
    assert_ir(replicate_reduce_buffers(kernel), """
        def rsum_kernel0(x: float32[4, 128], x_sum: float32[4]):
          for i0.outer in thread_binding(0, 2, thread='blockIdx.x'):
            for i0.inner in thread_binding(0, 2, thread='threadIdx.y'):
              allocate x_sum.red: float32[4], scope=shared
              for x_sum.red.threadIdx.y in thread_binding(0, 2, thread='threadIdx.y'):
                allocate x_sum.acc: float32[1], scope=local
                x_sum.acc[0] = 0.0f
                for k1.inner in thread_binding(0, 64, thread='threadIdx.x'):
                  for k1.outer in range(0, 2):
                    x_sum.acc[0] = x_sum.acc[0] + x[i0.outer * 256 + i0.inner * 128 + k1.outer * 64 + k1.inner]
                for k1.inner.red in thread_binding(0, 64, thread='threadIdx.x'):  # thread_reduce=x_sum.red
                  x_sum.acc[0] = x_sum.acc[0] + cuda.shfl_xor(x_sum.acc[0], 16, 32)
                  x_sum.acc[0] = x_sum.acc[0] + cuda.shfl_xor(x_sum.acc[0], 8, 32)
                  x_sum.acc[0] = x_sum.acc[0] + cuda.shfl_xor(x_sum.acc[0], 4, 32)
                  x_sum.acc[0] = x_sum.acc[0] + cuda.shfl_xor(x_sum.acc[0], 2, 32)
                  x_sum.acc[0] = x_sum.acc[0] + cuda.shfl_xor(x_sum.acc[0], 1, 32)
                  if k1.inner.red % 32 == 0:
                    x_sum.red[x_sum.red.threadIdx.y * 2 + k1.inner.red // 32] = x_sum.acc[0]
                  x_sum.acc[0] = x_sum.red[x_sum.red.threadIdx.y * 2 + k1.inner.red % 2]
                  x_sum.acc[0] = x_sum.acc[0] + cuda.shfl_xor(x_sum.acc[0], 1, 2)
                  if k1.inner.red == 0:
                    x_sum[i0.outer * 2 + i0.inner] = x_sum.acc[0]
    """)


def test_a_reduction_within_one_warp_has_no_shared_buffer_and_is_returned_as_is() -> None:
    kernel = _row_sums(8, 16)
    assert "shared" not in str(kernel) and replicate_reduce_buffers(kernel) is kernel
