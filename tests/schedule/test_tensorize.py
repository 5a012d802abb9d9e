"""tensorize: success with tcomp's GEMM and dot micro-kernels, and every mismatch reported clearly."""

from __future__ import annotations

import numpy as np
import pytest

import tcomp
from tcomp import te
from tcomp.ops.cpu.intrin import default_lanes, dot_intrin, gemm_intrin
from tcomp.schedule.tensorize import TensorizeError

RNG = np.random.default_rng(3)
NR = 2 * default_lanes()


def packed_gemm(M, N, K, mr, kc, mc=None, order="split_k"):
    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, N), name="B")
    packed = te.compute((N // NR, K, NR), lambda x, y, z: B[y, x * NR + z], name="packedB")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * packed[j // NR, k, j % NR], axis=k), name="C")
    s = tcomp.create_schedule(C)
    i, j = C.op.axis
    io, ii = s[C].split(i, factor=mr)
    jo, ji = s[C].split(j, factor=NR)
    if order == "split_k":
        ko, ki = s[C].split(k, factor=kc)
        s[C].reorder(ko, io, jo, ii, ji, ki)
    else:
        ki = k
        s[C].reorder(io, jo, ii, ji, ki)
    return s, (A, B, C), ii


def check_gemm(s, tensors, M, N, K):
    mod = tcomp.build(s, list(tensors))
    a = RNG.random((M, K), dtype=np.float32)
    b = RNG.random((K, N), dtype=np.float32)
    c = np.zeros((M, N), np.float32)
    mod(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-4)
    return mod


@pytest.mark.parametrize("M,K,mr,kc", [(16, 64, 8, 32), (12, 40, 6, 8), (4, 20, 4, 20)])
def test_gemm_intrinsic_with_split_reduction(M, K, mr, kc):
    N = 2 * NR
    s, tensors, ii = packed_gemm(M, N, K, mr, kc)
    s[tensors[2]].tensorize(ii, gemm_intrin(mr, NR, kc))
    mod = check_gemm(s, tensors, M, N, K)
    assert "tcomp_sgemm_f32" in mod.get_source("tir")
    assert "vfmadd" in mod.get_source("asm")


@pytest.mark.parametrize("K,kc,calls", [(20, 20, 1), (40, 20, 2)])
def test_a_single_slice_of_the_reduction_has_no_reset_pass(K, kc, calls):
    """Where the reduction loops outside the tensorized axis run once, each tile is computed from scratch by the
    intrinsic's body: no reset pass writes the output first (with two slices, the reset and the update)."""
    M, N = 8, 2 * NR
    s, tensors, ii = packed_gemm(M, N, K, 4, kc)
    s[tensors[2]].tensorize(ii, gemm_intrin(4, NR, kc))
    mod = check_gemm(s, tensors, M, N, K)
    assert mod.get_source("tir").count("tcomp_sgemm_f32_4x") == calls


def test_gemm_intrinsic_whole_reduction():
    M, N, K = 16, NR, 24
    s, tensors, ii = packed_gemm(M, N, K, 8, None, order="whole")
    s[tensors[2]].tensorize(ii, gemm_intrin(8, NR, K))
    check_gemm(s, tensors, M, N, K)


def test_dot_intrinsic():
    n = 1000
    X = te.placeholder((n,), name="X")
    Y = te.placeholder((n,), name="Y")
    r = te.reduce_axis((0, n), "r")
    D = te.compute((1,), lambda i: te.sum(X[r] * Y[r], axis=r), name="D")
    s = tcomp.create_schedule(D)
    ro, ri = s[D].split(r, factor=100)
    s[D].tensorize(ri, dot_intrin(100))
    mod = tcomp.build(s, [X, Y, D])
    x = RNG.random(n, dtype=np.float32)
    y = RNG.random(n, dtype=np.float32)
    out = np.zeros(1, np.float32)
    mod(x, y, out)
    np.testing.assert_allclose(out[0], x @ y, rtol=1e-4)


def test_dot_rows_of_matrix_vector():
    rows, n = 5, 37
    X = te.placeholder((rows, n), name="X")
    Y = te.placeholder((n,), name="Y")
    r = te.reduce_axis((0, n), "r")
    D = te.compute((rows, 1), lambda i, z: te.sum(X[i, r] * Y[r], axis=r), name="D")
    s = tcomp.create_schedule(D)
    s[D].tensorize(r, dot_intrin(n))
    mod = tcomp.build(s, [X, Y, D])
    x = RNG.random((rows, n), dtype=np.float32)
    y = RNG.random(n, dtype=np.float32)
    out = np.zeros((rows, 1), np.float32)
    mod(x, y, out)
    np.testing.assert_allclose(out[:, 0], x @ y, rtol=1e-4)


def test_mismatch_operation():
    M, K = 8, 16
    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, NR), name="B")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, NR), lambda i, j: te.sum(A[i, k] + B[k, j], axis=k), name="C")
    s = tcomp.create_schedule(C)
    s[C].tensorize(C.op.axis[0], gemm_intrin(M, NR, K))
    with pytest.raises(TensorizeError, match=r"stage C: tensorize with gemm_8x\d+x16: the nest computes .* \+ .*"):
        tcomp.lower(s, [A, B, C])


def test_mismatch_extent():
    s, tensors, ii = packed_gemm(16, NR, 32, 8, 16)
    s[tensors[2]].tensorize(ii, gemm_intrin(4, NR, 16))
    with pytest.raises(TensorizeError, match=r"loop i.inner has extent 8, intrinsic axis i has 4"):
        tcomp.lower(s, list(tensors))


def test_mismatch_loop_count():
    s, tensors, ii = packed_gemm(16, NR, 32, 8, 16)
    C = tensors[2]
    jo = s[C].leaf_iter_vars[2]
    s[C].tensorize(jo, gemm_intrin(8, NR, 16))
    with pytest.raises(TensorizeError, match=r"has 3 data-parallel and 1 reduction loops, the intrinsic 2 and 1"):
        tcomp.lower(s, list(tensors))


def test_mismatch_index_pattern():
    M, K = 8, 16
    A = te.placeholder((M, 2 * K), name="A")
    B = te.placeholder((K, NR), name="B")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, NR), lambda i, j: te.sum(A[i, 2 * k] * B[k, j], axis=k), name="C")
    s = tcomp.create_schedule(C)
    s[C].tensorize(C.op.axis[0], gemm_intrin(M, NR, K))
    with pytest.raises(TensorizeError, match=r"read of A: dimension 1 index moves by k \* 2 .* expects k"):
        tcomp.lower(s, [A, B, C])


def test_mismatch_dtype():
    M, K = 8, 16
    A = te.placeholder((M, K), name="A", dtype="float64")
    B = te.placeholder((K, NR), name="B", dtype="float64")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, NR), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    s = tcomp.create_schedule(C)
    s[C].tensorize(C.op.axis[0], gemm_intrin(M, NR, K))
    with pytest.raises(TensorizeError, match=r"dtype float64"):
        tcomp.lower(s, [A, B, C])


def test_mismatch_reducer():
    M, K = 8, 16
    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, NR), name="B")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, NR), lambda i, j: te.max(A[i, k] * B[k, j], axis=k), name="C")
    s = tcomp.create_schedule(C)
    s[C].tensorize(C.op.axis[0], gemm_intrin(M, NR, K))
    with pytest.raises(TensorizeError, match=r"reducer max differs from the intrinsic's sum"):
        tcomp.lower(s, [A, B, C])


def test_mismatch_tail_guard():
    s, tensors, ii = packed_gemm(12, NR, 32, 8, 16)  # 12 rows: the 8-row tile has a tail
    s[tensors[2]].tensorize(ii, gemm_intrin(8, NR, 16))
    with pytest.raises(TensorizeError, match=r"needs the bounds guard .* covers whole tiles only"):
        tcomp.lower(s, list(tensors))


def test_mismatch_same_tensor_twice():
    M, K = 8, 16
    A = te.placeholder((M, K), name="A")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, M), lambda i, j: te.sum(A[i, k] * A[j, k], axis=k), name="C")
    s = tcomp.create_schedule(C)
    s[C].tensorize(C.op.axis[0], gemm_intrin(M, M, K, lanes=M))
    with pytest.raises(TensorizeError, match=r"A is read as two different intrinsic inputs|index moves by"):
        tcomp.lower(s, [A, C])


def test_tensorize_argument_errors():
    s, tensors, ii = packed_gemm(16, NR, 32, 8, 16)
    C = tensors[2]
    with pytest.raises(tcomp.ScheduleError, match=r"tensorize: axis i.inner: expected a te.decl_tensor_intrin"):
        s[C].tensorize(ii, "gemm")
    s[C].tensorize(ii, gemm_intrin(8, NR, 16))
    with pytest.raises(tcomp.ScheduleError, match=r"axis i.inner is already tensorized"):
        s[C].tensorize(s[C].leaf_iter_vars[0], gemm_intrin(8, NR, 16))


def test_intrinsic_inputs_must_be_placeholders():
    a = te.placeholder((4,), name="a")
    b = te.compute((4,), lambda i: a[i] * 2, name="b")
    c = te.compute((4,), lambda i: b[i] + 1, name="c")
    with pytest.raises(TypeError, match=r"input b must be a placeholder"):
        te.decl_tensor_intrin(c, lambda ins, outs: None)


def test_gemm_intrinsic_reading_a_panel_copied_inside_the_reduction_loop():
    """The B panel is copied (cache_read, compute_at) inside the k.outer loop: it belongs to the update nest only,
    and the reset of the output tile, placed outside the reduction loops, must not touch the panel's buffer."""
    M, N, K, mr, kc = 16, NR, 64, 8, 32
    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, N), name="B")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    s = tcomp.create_schedule(C)
    i, j = C.op.axis
    io, ii = s[C].split(i, factor=mr)
    jo, ji = s[C].split(j, factor=NR)
    ko, ki = s[C].split(k, factor=kc)
    s[C].reorder(ko, jo, io, ii, ji, ki)
    panel = s.cache_read(B, "local", [C])
    s[panel].compute_at(s[C], jo)
    s[C].tensorize(ii, gemm_intrin(mr, NR, kc))
    mod = check_gemm(s, (A, B, C), M, N, K)
    source = mod.get_source("tir")
    assert "B.local" in source and "tcomp_sgemm_f32" in source
