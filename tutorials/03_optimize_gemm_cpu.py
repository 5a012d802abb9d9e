"""Tutorial 3: optimize GEMM on the CPU, one schedule primitive at a time.

Starting from the three-loop matmul, each step adds one idea and is timed against the previous ones and against
numpy in the same run: blocking, vectorizing, loop permutation, packing B, writing through a local cache, running
in parallel, tensorizing the inner block with tcomp's own register-blocked FMA micro-kernel, and finally packing A
and splitting the columns over the cores. Then a second operator: softmax's four stages fused under one row loop.
Every step's result is checked against numpy.
"""

import time

import numpy as np

import tcomp
from tcomp import ops, te
from tcomp.ops.cpu.intrin import default_lanes, gemm_intrin

M = N = K = 512
BN = 2 * default_lanes()  # columns of C per register tile: two SIMD vectors
BM = 8  # rows of C per register tile
rng = np.random.default_rng(0)
a = rng.random((M, K), dtype=np.float32)
b = rng.random((K, N), dtype=np.float32)
expected = a @ b
results = []


def measure(label, s, args, number=3):
    mod = tcomp.build(s, args)
    c = np.zeros((M, N), dtype=np.float32)
    mod(a, b, c)
    np.testing.assert_allclose(c, expected, rtol=1e-3)
    seconds = mod.time_evaluator(number=number, repeat=3)(a, b, c).min
    baseline = results[0][1] if results else seconds
    results.append((label, seconds))
    print(f"{label:<34}{seconds * 1e3:9.2f} ms {2 * M * N * K / seconds / 1e9:8.1f} GFLOP/s "
          f"{baseline / seconds:7.1f}x the default")


def matmul():
    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, N), name="B")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return A, B, C, k


def packed_matmul():
    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, N), name="B")
    packed = te.compute((N // BN, K, BN), lambda x, y, z: B[y, x * BN + z], name="packedB")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * packed[j // BN, k, j % BN], axis=k), name="C")
    return A, B, C, k, packed


# Step 0: the default schedule, i-j-k loops: the k loop walks down a column of B, one cache miss per step.
A, B, C, k = matmul()
s = tcomp.create_schedule(C)
measure("0 default", s, [A, B, C], number=1)

# Step 1: blocking. Tiles of C small enough that the rows of A and the columns of B they need stay in cache.
A, B, C, k = matmul()
s = tcomp.create_schedule(C)
io, jo, ii, ji = s[C].tile(C.op.axis[0], C.op.axis[1], 32, 32)
ko, ki = s[C].split(k, factor=4)
s[C].reorder(io, jo, ko, ki, ii, ji)
measure("1 blocking", s, [A, B, C])

# Step 2: vectorize the innermost axis: one SIMD instruction computes several columns of C.
s[C].vectorize(ji)
measure("2 + vectorize", s, [A, B, C])

# Step 3: loop permutation. A register tile of BM x BN, with k outside it, so LLVM keeps the C tile in registers.
A, B, C, k = matmul()
s = tcomp.create_schedule(C)
io, jo, ii, ji = s[C].tile(C.op.axis[0], C.op.axis[1], BM, BN)
s[C].reorder(io, jo, k, ii, ji)
s[C].unroll(ii)
s[C].vectorize(ji)
measure("3 + register tile, permutation", s, [A, B, C])

# Step 4: pack B into panels of BN columns so each k step reads one contiguous line of B.
A, B, C, k, packed = packed_matmul()
s = tcomp.create_schedule(C)
io, jo, ii, ji = s[C].tile(C.op.axis[0], C.op.axis[1], BM, BN)
s[C].reorder(io, jo, k, ii, ji)
s[C].unroll(ii)
s[C].vectorize(ji)
s[packed].vectorize(packed.op.axis[2])
print(tcomp.lower(s, [A, B, C]))
measure("4 + packing B", s, [A, B, C])

# Step 5: cache_write. Accumulate the tile in a small local buffer and write C once per tile; with k split
# into cache-sized slices (kc) the same B panel slice is reused by a block of rows.
A, B, C, k, packed = packed_matmul()
s = tcomp.create_schedule(C)
CC = s.cache_write(C, "local")
io, jo, ii, ji = s[C].tile(C.op.axis[0], C.op.axis[1], BM, BN)
s[CC].compute_at(s[C], jo)
ic, jc = s[CC].op.axis
(kc,) = s[CC].op.reduce_axis
s[CC].reorder(kc, ic, jc)
s[CC].unroll(ic)
s[CC].vectorize(jc)
s[C].vectorize(ji)
s[packed].vectorize(packed.op.axis[2])
measure("5 + cache_write", s, [A, B, C])

# Step 6: parallel. Rows of tiles run on all cores (a persistent thread pool), and so does packing.
s[C].parallel(io)
s[packed].parallel(packed.op.axis[0])
measure("6 + parallel", s, [A, B, C])

# Step 7: tensorize. The BM x BN x kc block is replaced by tcomp's register-blocked micro-kernel (LLVM IR that
# tcomp generates: BM x BN/lanes vector accumulators, broadcast-FMA), after checking that the loop nest computes
# exactly what the intrinsic declares.
A, B, C, k, packed = packed_matmul()
s = tcomp.create_schedule(C)
i, j = C.op.axis
ib, irest = s[C].split(i, factor=64)
im, ii = s[C].split(irest, factor=BM)
jo, ji = s[C].split(j, factor=BN)
ko, ki = s[C].split(k, factor=256)
s[C].reorder(ib, ko, jo, im, ii, ji, ki)
s[C].tensorize(ii, gemm_intrin(BM, BN, 256))
s[C].parallel(ib)
s[packed].vectorize(packed.op.axis[2])
s[packed].parallel(packed.op.axis[0])
print(tcomp.lower(s, [A, B, C]))
measure("7 + tensorize (micro-kernel)", s, [A, B, C])

# Step 8: pack A as well, and give each core its own columns. A is copied into micro-panels of BM rows (each row a
# contiguous run of the kc slice), so the micro-kernel reads A and B from two small contiguous buffers. The cores
# split N: each packs the kc-deep slice of B for its own column panels once per k.outer, still hot in its cache when
# the micro-kernel reads it, and an mc x kc block of A per row block. This is tcomp.ops.cpu.packed_matmul.packed_matmul
# (which also zero-pads shapes the tiles do not divide).
cores = tcomp.Target.current_host().num_cores
A = te.placeholder((M, K), name="A")
B = te.placeholder((K, N), name="B")
packedB = te.compute((N // BN, K, BN), lambda x, y, z: B[y, x * BN + z], name="packedB")
packedA = te.compute((M // BM, BM, K), lambda x, z, y: A[x * BM + z, y], name="packedA")
k = te.reduce_axis((0, K), name="k")
C = te.compute((M, N), lambda i, j: te.sum(packedA[i // BM, i % BM, k] * packedB[j // BN, k, j % BN], axis=k),
               name="C")
s = tcomp.create_schedule(C)
i, j = C.op.axis
im, ii = s[C].split(i, factor=BM)
ib, im = s[C].split(im, factor=256 // BM)
jo, ji = s[C].split(j, factor=BN)
jt, jo = s[C].split(jo, nparts=cores)
ko, ki = s[C].split(k, factor=256)
s[C].reorder(jt, ko, ib, jo, im, ii, ji, ki)
s[C].tensorize(ii, gemm_intrin(BM, BN, 256))
s[C].parallel(jt)
s[packedB].compute_at(s[C], ko)
x, y, z = packedB.op.axis
s[packedB].reorder(y, x, z)  # read B row by row
s[packedB].vectorize(z)
s[packedA].compute_at(s[C], ib)
_, run = s[packedA].split(packedA.op.axis[2], factor=default_lanes())
s[packedA].vectorize(run)
print(tcomp.lower(s, [A, B, C]))
measure("8 + pack A, columns per core", s, [A, B, C])

times = []
for _ in range(10):
    start = time.perf_counter()
    np.matmul(a, b)
    times.append(time.perf_counter() - start)
print(f"{'numpy (OpenBLAS), reference':<34}{min(times) * 1e3:9.2f} ms "
      f"{2 * M * N * K / min(times) / 1e9:8.1f} GFLOP/s")


# A second operator: a whole softmax row under one loop. ops.softmax has four stages, max, exp, sum and the division,
# and by default each is a loop nest over the whole matrix at the root: the exponentials make a round trip through
# memory. compute_at puts the max, the exp and the sum under the output's row loop. The exp stage has two readers
# (the sum and the division); both run inside that loop, so bound inference sizes every stage to the one row the
# loop needs and keeps it in a small local buffer.
ROWS, COLS = 2048, 1000
X = te.placeholder((ROWS, COLS), name="X")
Y = ops.softmax(X)
expo, expsum = Y.op.input_tensors()
maxelem = next(t for t in expo.op.input_tensors() if t is not X)
x = rng.standard_normal((ROWS, COLS), dtype=np.float32)
shifted = np.exp(x - x.max(axis=1, keepdims=True))
softmax_expected = shifted / shifted.sum(axis=1, keepdims=True)


def measure_softmax(label, s):
    mod = tcomp.build(s, [X, Y])
    y = np.empty_like(x)
    mod(x, y)
    np.testing.assert_allclose(y, softmax_expected, rtol=1e-5, atol=1e-7)
    seconds = mod.time_evaluator(number=3, repeat=3)(x, y).min
    print(f"{label:<34}{seconds * 1e3:9.2f} ms")


measure_softmax("softmax, four stages at the root", tcomp.create_schedule(Y))
s = tcomp.create_schedule(Y)
row, col = Y.op.axis
for stage in (maxelem, expo, expsum):
    s[stage].compute_at(s[Y], row)  # each stage holds one row
for stage in (expo, Y):
    _, lanes = s[stage].split(stage.op.axis[1], factor=default_lanes())
    s[stage].vectorize(lanes)
s[Y].parallel(row)
print(tcomp.lower(s, [X, Y]))
measure_softmax("softmax, one fused row per step", s)
times = []
for _ in range(10):
    start = time.perf_counter()
    e = np.exp(x - x.max(axis=1, keepdims=True))
    e / e.sum(axis=1, keepdims=True)
    times.append(time.perf_counter() - start)
print(f"{'numpy, reference':<34}{min(times) * 1e3:9.2f} ms")
