"""Tutorial 2: a matrix multiply, from the default loop nest to a tiled, packed, vectorized, parallel schedule.

Each step changes only the schedule; the computation stays the same and is checked against numpy after every
build. The timing of each step is printed (absolute numbers depend on the machine; compare them with each other).
"""

import numpy as np

import tcomp
from tcomp import te

M = N = K = 256
A = te.placeholder((M, K), name="A")
B = te.placeholder((K, N), name="B")
k = te.reduce_axis((0, K), name="k")
C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")

a = np.random.rand(M, K).astype("float32")
b = np.random.rand(K, N).astype("float32")
expected = a @ b


def run(s, args, label):
    mod = tcomp.build(s, args)
    c = np.zeros((M, N), dtype="float32")
    mod(a, b, c)
    np.testing.assert_allclose(c, expected, rtol=1e-4)
    timing = mod.time_evaluator(number=3, repeat=3)(a, b, c)
    print(f"{label:<28} {timing.min * 1e3:8.3f} ms  {2 * M * N * K / timing.min / 1e9:7.1f} GFLOP/s")


# Step 0: the default schedule, three nested loops.
s = tcomp.create_schedule(C)
print(tcomp.lower(s, [A, B, C]))
run(s, [A, B, C], "default")

# Step 1: tile i and j so a block of C stays in cache, and vectorize the innermost axis.
s = tcomp.create_schedule(C)
i, j = C.op.axis
io, jo, ii, ji = s[C].tile(i, j, 8, 32)
(kk,) = C.op.reduce_axis
s[C].reorder(io, jo, kk, ii, ji)
s[C].unroll(ii)
s[C].vectorize(ji)
run(s, [A, B, C], "tiled + vectorized")

# Step 2: pack B into [N/32][K][32] panels with a compute stage, so the inner loop reads contiguous memory,
# and run the row blocks in parallel.
bn = 32
packed = te.compute((N // bn, K, bn), lambda x, y, z: B[y, x * bn + z], name="packedB")
k2 = te.reduce_axis((0, K), name="k")
C2 = te.compute((M, N), lambda i, j: te.sum(A[i, k2] * packed[j // bn, k2, j % bn], axis=k2), name="C")
s = tcomp.create_schedule(C2)
i, j = C2.op.axis
io, jo, ii, ji = s[C2].tile(i, j, 8, bn)
s[C2].reorder(io, jo, k2, ii, ji)
s[C2].unroll(ii)
s[C2].vectorize(ji)
s[C2].parallel(io)
x, y, z = packed.op.axis
s[packed].vectorize(z)
s[packed].parallel(x)
print(tcomp.lower(s, [A, B, C2]))
run(s, [A, B, C2], "packed + parallel")
