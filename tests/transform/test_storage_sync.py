"""``storage_sync``: a barrier goes where threads read shared memory others wrote (after the cooperative fetch) and
where they overwrite shared memory others may still read (before the next iteration's fetch)."""

from __future__ import annotations

from transform_golden import assert_ir, shared_row_sum

from tcomp.transform.storage_sync import storage_sync


def test_barriers_after_the_fetch_and_before_the_next_one() -> None:
    kernel = shared_row_sum()
    assert_ir(storage_sync(kernel), """
        def rowsum_kernel0(A: float32[8, 32], B: float32[8]):
          for i in thread_binding(0, 8, thread='threadIdx.x'):
            B[i] = 0.0f
            for k.outer in range(0, 8):
              cuda.syncthreads()
              allocate A.shared: float32[32], scope=shared
              for ax0.ax1.fused.outer in range(0, 4):
                for ax0.ax1.fused.inner in thread_binding(0, 8, thread='threadIdx.x'):
                  A.shared[ax0.ax1.fused.outer * 8 + ax0.ax1.fused.inner] = A[ax0.ax1.fused.outer * 64 + ax0.ax1.fused.inner // 4 * 32 + k.outer * 4 + ax0.ax1.fused.inner % 4]
              cuda.syncthreads()
              for k.inner in range(0, 4):
                B[i] = B[i] + A.shared[i * 4 + k.inner]
    """)  # noqa: E501
