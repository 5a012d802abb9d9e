"""cache_read, cache_write, rfactor and storage_align against numpy, with sizes the factors do not divide."""

from __future__ import annotations

import numpy as np
import pytest

import tcomp
from tcomp import te
from tcomp.schedule import ScheduleError

RNG = np.random.default_rng(7)


def matmul(M, N, K):
    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, N), name="B")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return A, B, C


def run_matmul(s, A, B, C, M, N, K):
    mod = tcomp.build(s, [A, B, C])
    a = RNG.random((M, K), dtype=np.float32)
    b = RNG.random((K, N), dtype=np.float32)
    c = np.zeros((M, N), np.float32)
    mod(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-5)


@pytest.mark.parametrize("M,N,K", [(64, 48, 37), (13, 29, 7), (32, 32, 32)])
def test_cache_write_local_tile(M, N, K):
    A, B, C = matmul(M, N, K)
    s = tcomp.create_schedule(C)
    CC = s.cache_write(C, "local")
    mo, no, mi, ni = s[C].tile(C.op.axis[0], C.op.axis[1], 8, 16)
    s[CC].compute_at(s[C], no)
    mc, nc = s[CC].op.axis
    (kk,) = s[CC].op.reduce_axis
    ko, ki = s[CC].split(kk, factor=4)
    s[CC].reorder(ko, mc, ki, nc)
    s[CC].vectorize(nc)
    s[CC].unroll(ki)
    s[C].vectorize(ni)
    s[C].parallel(mo)
    run_matmul(s, A, B, C, M, N, K)
    assert "C.local" in str(tcomp.lower(s, [A, B, C]))


@pytest.mark.parametrize("attach", [False, True])
def test_cache_read(attach):
    M, N, K = 30, 20, 17
    A, B, C = matmul(M, N, K)
    s = tcomp.create_schedule(C)
    AA = s.cache_read(A, "local", [C])
    BB = s.cache_read(B, "global", C)
    if attach:
        io, ii = s[C].split(C.op.axis[0], factor=8)
        s[AA].compute_at(s[C], io)
    run_matmul(s, A, B, C, M, N, K)
    text = str(tcomp.lower(s, [A, B, C]))
    assert "A.local" in text and "B.global" in text
    del BB


def test_cache_write_then_read_chain():
    n = 50
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: A[i] * 2, name="B")
    C = te.compute((n,), lambda i: B[i] + 1, name="C")
    s = tcomp.create_schedule(C)
    BL = s.cache_write(B, "local")
    BR = s.cache_read(B, "local", [C])
    xo, xi = s[C].split(C.op.axis[0], factor=8)
    s[BR].compute_at(s[C], xo)
    mod = tcomp.build(s, [A, C])
    a = RNG.random(n, dtype=np.float32)
    c = np.zeros(n, np.float32)
    mod(a, c)
    np.testing.assert_allclose(c, a * 2 + 1)
    del BL


@pytest.mark.parametrize("n,factor", [(1000, 16), (999, 8), (64, 64)])
def test_rfactor_sum(n, factor):
    X = te.placeholder((n,), name="X")
    r = te.reduce_axis((0, n), "r")
    S = te.compute((1,), lambda i: te.sum(X[r], axis=r), name="S")
    s = tcomp.create_schedule(S)
    ro, ri = s[S].split(r, factor=factor)
    SF = s.rfactor(S, ri)
    s[SF].vectorize(SF.op.axis[0])
    mod = tcomp.build(s, [X, S])
    x = RNG.random(n, dtype=np.float32)
    out = np.zeros(1, np.float32)
    mod(x, out)
    np.testing.assert_allclose(out[0], x.sum(), rtol=1e-5)


def test_rfactor_row_max_parallel():
    rows, cols = 7, 301
    X = te.placeholder((rows, cols), name="X")
    r = te.reduce_axis((0, cols), "r")
    S = te.compute((rows,), lambda i: te.max(X[i, r], axis=r), name="S")
    s = tcomp.create_schedule(S)
    ro, ri = s[S].split(r, nparts=4)
    SF = s.rfactor(S, ro, factor_axis=1)
    s[SF].parallel(SF.op.axis[0])
    mod = tcomp.build(s, [X, S])
    x = RNG.standard_normal((rows, cols)).astype(np.float32)
    out = np.zeros(rows, np.float32)
    mod(x, out)
    np.testing.assert_allclose(out, x.max(axis=1))


def test_storage_align_pads_rows():
    A = te.placeholder((30, 30), name="A")
    B = te.compute((30, 30), lambda i, j: A[i, j] * 2, name="B")
    C = te.compute((30, 30), lambda i, j: B[j, i] + 1, name="C")
    s = tcomp.create_schedule(C)
    s[B].storage_align(B.op.axis[0], 16, 1)
    text = str(tcomp.lower(s, [A, C]))
    assert "B[i * 33 + j]" in text
    mod = tcomp.build(s, [A, C])
    a = RNG.random((30, 30), dtype=np.float32)
    c = np.zeros_like(a)
    mod(a, c)
    np.testing.assert_allclose(c, a.T * 2 + 1)


def test_cache_errors():
    A, B, C = matmul(8, 8, 8)
    s = tcomp.create_schedule(C)
    with pytest.raises(ScheduleError, match=r"stage A: cache_read: unknown scope 'texture'"):
        s.cache_read(A, "texture", [C])
    D = te.compute((8,), lambda i: A[i, 0], name="D")
    s2 = tcomp.create_schedule([C, D])
    with pytest.raises(ScheduleError, match=r"stage B: cache_read: stage D does not read B"):
        s2.cache_read(B, "local", [D])
    s[C].split(C.op.axis[0], factor=2)
    with pytest.raises(ScheduleError, match=r"stage C: cache_write: the stage was already split or fused"):
        s.cache_write(C, "local")
    with pytest.raises(ScheduleError, match=r"stage C: rfactor: axis i.outer: is not a reduction axis"):
        s.rfactor(C, s[C].leaf_iter_vars[0])
    with pytest.raises(ScheduleError, match=r"stage A: cache_write: only a compute stage"):
        s.cache_write(A, "local")


def test_storage_align_errors():
    A = te.placeholder((8, 8), name="A")
    B = te.compute((8, 8), lambda i, j: A[i, j] * 2, name="B")
    C = te.compute((8, 8), lambda i, j: B[i, j], name="C")
    s = tcomp.create_schedule(C)
    with pytest.raises(ScheduleError, match=r"stage B: storage_align: axis i: needs factor > 0"):
        s[B].storage_align(B.op.axis[0], 4, 5)
    with pytest.raises(ScheduleError, match=r"stage B: storage_align: axis i: is not a data-parallel root axis"):
        s[B].storage_align(C.op.axis[0], 4, 1)
