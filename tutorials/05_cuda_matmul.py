"""Tutorial 5: a matrix multiply on a GPU, written as a CUDA schedule, checked without a GPU.

The computation is the same as in tutorial 2; only the schedule changes. A GPU runs a grid of thread blocks; we give
each block a 32x32 tile of C and each of its 8x8 threads a 4x4 sub-tile, accumulated in registers. The blocks' threads
copy the tiles of A and B they need into shared memory together, 8 columns of A and 8 rows of B at a time.

``tcomp.build(..., target="cuda")`` prints CUDA C and returns a module that runs on a GPU when one is present (with
CuPy installed) and otherwise in emulation: the very same CUDA C compiled for the CPU, one OpenMP thread per CUDA
thread. Where nvcc is installed, the kernel is also compiled to PTX and ptxas reports its registers and shared memory.
"""

import numpy as np

import tcomp
from tcomp import te
from tcomp.runtime.nvcc import kernel_resources, nvcc_available, resource_report

M, N, K = 200, 160, 100  # sizes the tiles do not divide: the kernel guards the edges
A = te.placeholder((M, K), name="A")
B = te.placeholder((K, N), name="B")
k = te.reduce_axis((0, K), name="k")
C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")

# The CUDA schedule, step by step.
s = tcomp.create_schedule(C)
C_local = s.cache_write(C, "local")  # each thread's 4x4 accumulators, in registers
A_shared = s.cache_read(A, "shared", [C_local])  # tiles every thread of a block reads
B_shared = s.cache_read(B, "shared", [C_local])

# 1. Tile C: blocks of 32x32 over the grid, 8x8 threads per block, 4x4 elements per thread.
i, j = s[C].op.axis
by, i = s[C].split(i, factor=32)
bx, j = s[C].split(j, factor=32)
ty, i = s[C].split(i, nparts=8)
tx, j = s[C].split(j, nparts=8)
s[C].reorder(by, bx, ty, tx, i, j)
s[C].bind(by, te.thread_axis("blockIdx.y"))
s[C].bind(bx, te.thread_axis("blockIdx.x"))
s[C].bind(ty, te.thread_axis("threadIdx.y"))
s[C].bind(tx, te.thread_axis("threadIdx.x"))

# 2. Each thread accumulates its sub-tile in registers, walking K in steps of 8.
s[C_local].compute_at(s[C], tx)
ci, cj = s[C_local].op.axis
(kk,) = s[C_local].op.reduce_axis
ko, ki = s[C_local].split(kk, factor=8)
s[C_local].reorder(ko, ki, ci, cj)
s[C_local].unroll(ci)
s[C_local].unroll(cj)

# 3. At each step the block copies a 32x8 tile of A and an 8x32 tile of B into shared memory: all 64 threads
#    together (cooperative fetching), consecutive threads reading consecutive addresses. Barriers around the copies
#    are inserted by the compiler.
for cache in (A_shared, B_shared):
    s[cache].compute_at(s[C_local], ko)
    fused = s[cache].fuse(*s[cache].op.axis)
    _, thread = s[cache].split(fused, factor=64)
    thread_y, thread_x = s[cache].split(thread, factor=8)
    s[cache].bind(thread_y, te.thread_axis("threadIdx.y"))
    s[cache].bind(thread_x, te.thread_axis("threadIdx.x"))
# Pad the rows of the A tile to 9 floats, so threads reading one column of it use different memory banks.
s[A_shared].storage_align(s[A_shared].op.axis[0], 8, 1)

module = tcomp.build(s, [A, B, C], target="cuda", name="matmul")
print(module)
print(module.get_source("cuda"))
for kernel, config in zip(module.kernels, module.launch_configs(
        np.empty((M, K), "float32"), np.empty((K, N), "float32"), np.empty((M, N), "float32"))):
    print(f"{kernel.name}: {config}, {kernel.shared_bytes} bytes of shared memory")

rng = np.random.default_rng(0)
a = rng.standard_normal((M, K), dtype=np.float32)
b = rng.standard_normal((K, N), dtype=np.float32)
c = np.zeros((M, N), dtype=np.float32)
module(a, b, c)
np.testing.assert_allclose(c, a @ b, rtol=1e-4, atol=1e-4)
print("result matches numpy")

if nvcc_available():
    print(resource_report(kernel_resources(module.get_source("cuda"), module.target.arch)))
else:
    print("nvcc is not installed: skipping the PTX compile")

if "gpu" in repr(module):
    timing = module.time_evaluator(number=10, repeat=3)(a, b, c)
    print(f"GPU: {timing.min * 1e6:.1f} us, {2 * M * N * K / timing.min / 1e9:.1f} GFLOP/s")

# The library's default schedule does the same with tunable tile sizes (tcomp.ops.cuda.MatmulKnobs).
from tcomp.ops.cuda import MatmulKnobs, matmul_cuda  # noqa: E402

s2, tensors = matmul_cuda(M, N, K, MatmulKnobs(block_m=64, block_n=32, block_k=8, thread_m=4, thread_n=4))
module2 = tcomp.build(s2, tensors, target="cuda", name="matmul_default")
c2 = np.zeros((M, N), dtype=np.float32)
module2(a, b, c2)
np.testing.assert_allclose(c2, a @ b, rtol=1e-4, atol=1e-4)
print("ops.cuda.matmul_cuda matches numpy too")
