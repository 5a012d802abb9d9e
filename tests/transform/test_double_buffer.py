"""``inject_double_buffer``: a double-buffered shared tile gets two copies; the loop is unrolled twice so the fetch
of the next tile (into one copy) comes before the computation on the current one (in the other)."""

from __future__ import annotations

from transform_golden import assert_ir, shared_row_sum

from tcomp.transform.double_buffer import inject_double_buffer


def test_two_copies_the_next_fetch_overlapping_the_current_tile() -> None:
    assert_ir(inject_double_buffer(shared_row_sum(double_buffer=True)), """
        def rowsum_kernel0(A: float32[8, 32], B: float32[8]):
          for i in thread_binding(0, 8, thread='threadIdx.x'):
            B[i] = 0.0f
            allocate A.shared.0: float32[32], scope=shared
            allocate A.shared.1: float32[32], scope=shared
            for ax0.ax1.fused.outer in range(0, 4):
              for ax0.ax1.fused.inner in thread_binding(0, 8, thread='threadIdx.x'):
                A.shared.0[ax0.ax1.fused.outer * 8 + ax0.ax1.fused.inner] = A[ax0.ax1.fused.outer * 64 + ax0.ax1.fused.inner // 4 * 32 + 0 * 4 + ax0.ax1.fused.inner % 4]
            for k.outer.pair in range(0, 4):
              if k.outer.pair * 2 + 1 < 8:
                for ax0.ax1.fused.outer in range(0, 4):
                  for ax0.ax1.fused.inner in thread_binding(0, 8, thread='threadIdx.x'):
                    A.shared.1[ax0.ax1.fused.outer * 8 + ax0.ax1.fused.inner] = A[ax0.ax1.fused.outer * 64 + ax0.ax1.fused.inner // 4 * 32 + (k.outer.pair * 2 + 1) * 4 + ax0.ax1.fused.inner % 4]
              for k.inner in range(0, 4):
                B[i] = B[i] + A.shared.0[i * 4 + k.inner]
              if k.outer.pair * 2 + 1 < 8:
                if k.outer.pair * 2 + 2 < 8:
                  for ax0.ax1.fused.outer in range(0, 4):
                    for ax0.ax1.fused.inner in thread_binding(0, 8, thread='threadIdx.x'):
                      A.shared.0[ax0.ax1.fused.outer * 8 + ax0.ax1.fused.inner] = A[ax0.ax1.fused.outer * 64 + ax0.ax1.fused.inner // 4 * 32 + (k.outer.pair * 2 + 2) * 4 + ax0.ax1.fused.inner % 4]
                for k.inner in range(0, 4):
                  B[i] = B[i] + A.shared.1[i * 4 + k.inner]
    """)  # noqa: E501


def test_a_kernel_without_double_buffered_stages_is_returned_as_is() -> None:
    kernel = shared_row_sum()
    assert inject_double_buffer(kernel) is kernel
