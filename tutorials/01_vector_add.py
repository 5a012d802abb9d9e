"""Tutorial 1: define, schedule, print, build and run a vector add.

tcomp separates *what* to compute (a tensor expression) from *how* (a schedule). This script walks through the
whole path for the smallest useful operator, with a symbolic length ``n`` so one compiled function serves every
length.
"""

import numpy as np

import tcomp
from tcomp import te

# 1. What: C[i] = A[i] + B[i] for i in [0, n).
n = te.var("n")
A = te.placeholder((n,), name="A", dtype="float32")
B = te.placeholder((n,), name="B", dtype="float32")
C = te.compute((n,), lambda i: A[i] + B[i], name="C")

# 2. How: the default schedule is one serial loop. Print the loop program it lowers to.
s = tcomp.create_schedule(C)
print("default schedule:")
print(tcomp.lower(s, [A, B, C]))

# 3. A better schedule: split the loop into chunks of 64, run the chunks on all cores and each chunk's
#    inner 16 elements as one SIMD vector. Lengths that 64 does not divide are guarded automatically.
outer, inner = s[C].split(C.op.axis[0], factor=64)
s[C].parallel(outer)
vec_outer, vec_inner = s[C].split(inner, factor=16)
s[C].vectorize(vec_inner)
print("\nscheduled:")
print(tcomp.lower(s, [A, B, C]))

# 4. Build for the host CPU and run on numpy arrays; the output array is written in place.
mod = tcomp.build(s, [A, B, C], target="llvm")
for length in (1, 1000, 4099):
    a = np.random.rand(length).astype("float32")
    b = np.random.rand(length).astype("float32")
    c = np.empty(length, dtype="float32")
    mod(a, b, c)
    np.testing.assert_allclose(c, a + b)
    print(f"n={length}: matches numpy")

# 5. Calls are checked before any native code runs: a wrong dtype is a clear error, not a crash.
try:
    mod(a.astype("float64"), b, c)
except TypeError as err:
    print("bad call rejected:", err)

# 6. The generated code can be read at every stage.
asm = mod.get_source("asm")
print("\nvector instructions in the assembly:", sum(1 for line in asm.splitlines() if "vadd" in line))
