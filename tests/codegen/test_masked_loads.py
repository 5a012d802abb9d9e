"""Vector selects whose branches read memory (``codegen/llvm/masked.py``): each lane reads what the scalar program
reads and nothing else, and the results are numpy's."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import tcomp
from tcomp import te
from tcomp.ops.conv import pad
from tcomp.ops.cpu import schedule_cpu


def _vectorized(tensor: te.Tensor, lanes: int) -> tcomp.Schedule:
    s = tcomp.create_schedule(tensor)
    _, inner = s[tensor].split(tensor.op.axis[-1], factor=lanes)
    s[tensor].vectorize(inner)
    return s


_GUARD_PAGE_CHILD = r"""
import ctypes, json, mmap
import numpy as np
import tcomp
from tcomp import te

page = mmap.PAGESIZE
region = mmap.mmap(-1, 2 * page, prot=mmap.PROT_READ | mmap.PROT_WRITE)
start = ctypes.addressof(ctypes.c_char.from_buffer(region))
libc = ctypes.CDLL(None, use_errno=True)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
assert libc.mprotect(start + page, page, 0) == 0  # PROT_NONE: a read past the array's end faults
n = 37
a = np.frombuffer(region, dtype=np.float32, count=n, offset=page - 4 * n)
a[:] = np.arange(1, n + 1)
A = te.placeholder((n,), name="A")
results = {}
for name, body in {
    "ramp": lambda r, i: te.if_then_else(i < n, A[i], -1.0),
    "shifted": lambda r, i: te.if_then_else(i + 3 < n, A[i + 3], -1.0),
    "broadcast": lambda r, i: te.if_then_else(i == r * 50, A[r * 50], -1.0),  # row 1: A[50], taken by no lane
}.items():
    Y = te.compute((2, n + 11), body, name="Y")
    s = tcomp.create_schedule(Y)
    _, inner = s[Y].split(Y.op.axis[1], factor=16)
    s[Y].vectorize(inner)
    mod = tcomp.build(s, [A, Y], target="llvm")
    y = np.zeros((2, n + 11), np.float32)
    mod(a, y)
    results[name] = {"masked": "llvm.masked" in mod.get_source("ll_unopt") or "masked.then" in mod.get_source(
        "ll_unopt"), "y": y.tolist()}
print(json.dumps(results))
"""


def test_a_guarded_vector_read_never_touches_memory_past_the_buffer() -> None:
    """The input ends where a protected page begins: the lanes the select leaves out would read it (a fault kills
    the child), the lanes it takes read the array."""
    child = subprocess.run([sys.executable, "-c", _GUARD_PAGE_CHILD], capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, f"exit {child.returncode}: {child.stderr[-2000:]}"
    results = json.loads(child.stdout.splitlines()[-1])
    n = 37
    a = np.arange(1, n + 1, dtype=np.float32)
    i = np.arange(n + 11)
    row = np.where(i < n, np.concatenate([a, np.zeros(11)]), -1.0)
    shifted = np.where(i + 3 < n, np.concatenate([a[3:], np.zeros(14)]), -1.0)
    expected = {"ramp": [row, row], "shifted": [shifted, shifted],
                "broadcast": [np.where(i == 0, a[0], -1.0), np.full(n + 11, -1.0)]}
    for name, want in expected.items():
        assert results[name]["masked"], name
        np.testing.assert_array_equal(results[name]["y"], want, err_msg=name)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 50), extra=st.integers(0, 20), lanes=st.sampled_from([4, 8, 15, 16, 32]),
       shift=st.integers(-4, 4), modulus=st.integers(1, 4), bounds=st.tuples(st.integers(0, 49), st.integers(0, 49)),
       max_outside=st.booleans())
def test_a_clamped_guarded_read_matches_numpy(n: int, extra: int, lanes: int, shift: int, modulus: int,
                                              bounds: tuple[int, int], max_outside: bool) -> None:
    """``Y[i] = i % m != 0 ? A[clamp(i + shift, lo, hi)] : -1``, either order of min and max, ``lo > hi``
    included: the lanes inside ``[lo, hi]`` take one masked load, the clamped ones a masked gather."""
    lo, hi = (min(b, n - 1) for b in bounds)
    A = te.placeholder((n,), name="A")

    def clamp(v):  # type: ignore[no-untyped-def]
        return te.max(te.min(v, hi), lo) if max_outside else te.min(te.max(v, lo), hi)

    Y = te.compute((n + extra,), lambda i: te.if_then_else(i % modulus != 0, A[clamp(i + shift)], -1.0), name="Y")
    mod = tcomp.build(_vectorized(Y, lanes), [A, Y], target="llvm")
    a = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    y = np.zeros(n + extra, np.float32)
    mod(a, y)
    i = np.arange(n + extra)
    v = i + shift
    index = np.maximum(np.minimum(v, hi), lo) if max_outside else np.minimum(np.maximum(v, lo), hi)
    np.testing.assert_array_equal(y, np.where(i % modulus != 0, a[index], -1.0))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 50), extra=st.integers(0, 20), lanes=st.sampled_from([4, 8, 15, 16]),
       shift=st.integers(0, 4), side=st.sampled_from(["min", "max", "both"]), bound=st.integers(0, 49))
def test_an_unguarded_clamped_read_is_one_load(n: int, extra: int, lanes: int, shift: int, side: str,
                                               bound: int) -> None:
    """``Y[i] = A[min(i + s, hi)]`` (a padded row reading its last element again), ``A[max(i - s, lo)]`` and both
    clamps, with no select around them: one masked load of the lanes inside the bounds, a masked gather only for
    the clamped lanes, never a load per lane."""
    bound = min(bound, n - 1)
    A = te.placeholder((n,), name="A")
    size = n + extra if side != "max" else n
    if side == "min":
        Y = te.compute((size,), lambda i: A[te.min(i + shift, bound)], name="Y")
        index = np.minimum(np.arange(size) + shift, bound)
    elif side == "max":
        Y = te.compute((size,), lambda i: A[te.max(i - shift, bound)], name="Y")
        index = np.maximum(np.arange(size) - shift, bound)
    else:
        Y = te.compute((size,), lambda i: A[te.max(te.min(i + shift - 2, bound), 0)], name="Y")
        index = np.maximum(np.minimum(np.arange(size) + shift - 2, bound), 0)
    mod = tcomp.build(_vectorized(Y, lanes), [A, Y], target="llvm")
    assert "extractelement" not in mod.get_source("ll_unopt")  # no lane loaded alone
    a = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    y = np.zeros(size, np.float32)
    mod(a, y)
    np.testing.assert_array_equal(y, a[index])


def test_nested_selects_and_boolean_reads_under_a_mask() -> None:
    """An inner select whose condition is itself a guarded read (a boolean buffer) narrows the outer mask."""
    n = 29
    M = te.placeholder((n,), name="M", dtype="bool")
    A = te.placeholder((n,), name="A")
    B = te.placeholder((n,), name="B")
    Y = te.compute((n + 7,), lambda i: te.if_then_else(i < n, te.if_then_else(M[i], A[i], B[i] * 2.0), -1.0),
                   name="Y")
    mod = tcomp.build(_vectorized(Y, 8), [M, A, B, Y], target="llvm")
    assert "llvm.masked.load" in mod.get_source("ll_unopt")
    rng = np.random.default_rng(3)
    m, a, b = rng.random(n) < 0.5, rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    y = np.zeros(n + 7, np.float32)
    mod(m, a, b, y)
    np.testing.assert_array_equal(y[:n], np.where(m, a, b * 2))
    np.testing.assert_array_equal(y[n:], -1.0)


def test_a_padded_copy_reads_rows_with_masked_loads() -> None:
    """``pad`` of NCHW rows (the innermost axis padded): vector code, as ``np.pad``. Measured on znver4, 2
    threads, 136 channels at 28x28 padded by 1: 41 -> 14 us (each lane had been loaded on its own)."""
    x = te.placeholder((2, 3, 11, 13), name="x")
    y = pad(x, [0, 0, 1, 2], [0, 0, 2, 1])
    mod = tcomp.build(schedule_cpu([y]), [x, y], target="llvm")
    assert "llvm.masked.load" in mod.get_source("ll_unopt")
    data = np.random.default_rng(5).standard_normal((2, 3, 11, 13)).astype(np.float32)
    out = np.zeros((2, 3, 14, 16), np.float32)
    mod(data, out)
    np.testing.assert_array_equal(out, np.pad(data, ((0, 0), (0, 0), (1, 2), (2, 1))))
