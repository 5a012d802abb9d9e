"""The build driver: named stages, the build cache, checked mode, division by zero, schedule steps as data."""

from __future__ import annotations

import numpy as np
import pytest

import tcomp
from tcomp import te
from tcomp.backend import build_cache
from tcomp.runtime import KernelError
from tcomp.transform.check_division import DivisionByZeroError


def vector_add(n=64, name_a="A"):
    A = te.placeholder((n,), name=name_a)
    B = te.placeholder((n,), name="B")
    C = te.compute((n,), lambda i: A[i] + B[i], name="C")
    return A, B, C


def test_same_schedule_twice_reuses_code():
    build_cache.clear()
    for _ in range(2):
        A, B, C = vector_add()
        s = tcomp.create_schedule(C)
        s[C].split(C.op.axis[0], factor=8)
        mod = tcomp.build(s, [A, B, C])
    assert build_cache.hits == 1 and build_cache.misses == 1
    a, b, c = np.ones(64, "float32"), np.ones(64, "float32"), np.zeros(64, "float32")
    mod(a, b, c)
    np.testing.assert_allclose(c, 2)


def test_different_schedule_is_a_miss():
    build_cache.clear()
    A, B, C = vector_add()
    s = tcomp.create_schedule(C)
    tcomp.build(s, [A, B, C])
    A, B, C = vector_add()
    s = tcomp.create_schedule(C)
    s[C].split(C.op.axis[0], factor=8)
    s[C].vectorize(s[C].leaf_iter_vars[-1])
    tcomp.build(s, [A, B, C])
    A, B, C = vector_add(n=65)
    tcomp.build(tcomp.create_schedule(C), [A, B, C])
    assert build_cache.hits == 0 and build_cache.misses == 3


def test_cache_hit_keeps_the_callers_names():
    build_cache.clear()
    A, B, C = vector_add()
    tcomp.build(tcomp.create_schedule(C), [A, B, C])
    X, B2, C2 = vector_add(name_a="X")
    mod = tcomp.build(tcomp.create_schedule(C2), [X, B2, C2])
    assert build_cache.hits == 1
    with pytest.raises(TypeError, match="X"):
        mod(np.ones(64, "float64"), np.ones(64, "float32"), np.zeros(64, "float32"))


def test_checked_mode_reports_out_of_bounds_read():
    A = te.placeholder((10,), name="A")
    B = te.compute((10,), lambda i: A[i + 1], name="B")  # reads A[10] at i = 9
    s = tcomp.create_schedule(B)
    mod = tcomp.build(s, [A, B], check_bounds=True)
    with pytest.raises(KernelError, match=r"buffer 'A' dimension 0: index 10 is not in \[0, 10\)"):
        mod(np.zeros(10, "float32"), np.zeros(10, "float32"))


def test_checked_mode_in_parallel_loop_and_select_guard():
    A = te.placeholder((8, 8), name="A")
    B = te.compute((8, 8), lambda i, j: te.if_then_else(j > 0, A[i, j - 1], 0.0), name="B")
    s = tcomp.create_schedule(B)
    s[B].parallel(B.op.axis[0])
    mod = tcomp.build(s, [A, B], check_bounds=True)
    a = np.random.rand(8, 8).astype("float32")
    b = np.zeros((8, 8), "float32")
    mod(a, b)  # the guarded load at j = 0 is never taken: no error
    np.testing.assert_allclose(b[:, 1:], a[:, :-1])
    C = te.compute((8, 8), lambda i, j: A[i, j * 2], name="C")
    s = tcomp.create_schedule(C)
    s[C].parallel(C.op.axis[0])
    mod = tcomp.build(s, [A, C], check_bounds=True)
    with pytest.raises(KernelError, match=r"buffer 'A' dimension 1: index 8 is not in \[0, 8\)"):
        mod(a, b)


def test_checked_mode_passes_for_correct_program():
    A, B, C = vector_add(37)
    s = tcomp.create_schedule(C)
    xo, xi = s[C].split(C.op.axis[0], factor=8)
    s[C].vectorize(xi)
    mod = tcomp.build(s, [A, B, C], check_bounds=True)
    a = np.random.rand(37).astype("float32")
    c = np.zeros(37, "float32")
    mod(a, a, c)
    np.testing.assert_allclose(c, 2 * a)


def test_division_by_constant_zero_is_a_compile_error():
    A = te.placeholder((10,), name="A")
    B = te.compute((10,), lambda i: A[i // 0], name="B")
    with pytest.raises(DivisionByZeroError, match=r"integer division by the constant zero in i // 0"):
        tcomp.build(tcomp.create_schedule(B), [A, B])
    C = te.compute((10,), lambda i: A[i % (3 - 3)], name="C")
    with pytest.raises(DivisionByZeroError, match="division by the constant zero"):
        tcomp.lower(tcomp.create_schedule(C), [A, C])


def test_missing_input_argument():
    A, B, C = vector_add()
    with pytest.raises(ValueError, match=r"input B is read but not in the argument list"):
        tcomp.lower(tcomp.create_schedule(C), [A, C])


def test_source_stages_are_printable():
    A, B, C = vector_add()
    s = tcomp.create_schedule(C)
    mod = tcomp.build(s, [A, B, C])
    assert "for i in range(0, 64)" in mod.get_source("tir")
    assert "define" in mod.get_source("ll")
    assert mod.get_source("asm").strip()
    assert "for i in range(0, 64)" in str(tcomp.lower(s, [A, B, C], simple_mode=True))
