"""LLVM backend: runtime checks (AssertStmt) in serial and parallel code, and constructs it rejects."""

from __future__ import annotations

import numpy as np
import pytest
from llvm_testing import elementwise, imm, load, loop, store

import tcomp
from tcomp.codegen.llvm import CodegenError, codegen_llvm
from tcomp.ir import expr as E
from tcomp.ir import stmt as S
from tcomp.ir.buffer import Buffer
from tcomp.runtime import KernelError

MESSAGE = "index out of bounds: buffer 'A' dimension 0: index {} is not in [0, {})"


def _gather_func(kind: S.ForKind, with_heap: bool = False) -> S.PrimFunc:
    """C[i] = A[I[i]] with a bounds check on I[i]: the lowering's checked-mode pattern."""
    n, m = E.Var("n"), E.Var("m")
    A, I_, C = Buffer("A", (m,), "float32"), Buffer("I", (n,), "int32"), Buffer("C", (n,), "float32")
    i = E.Var("i")
    index = load(I_, i)
    ok = E.And(E.GE(index, imm(0), "bool"), E.LT(index, m, "bool"), "bool")
    body: S.Stmt = S.AssertStmt(ok, MESSAGE, (E.Cast(index, "int64"), E.Cast(m, "int64")),
                                store(C, load(A, index), i))
    if with_heap:
        T = Buffer("T", (n,), "float32", scope="global")
        body = S.Allocate(T, S.SeqStmt((store(T, imm(0), i), body)))
    return S.PrimFunc(f"gather_{kind.value}", (A, I_, C), loop(i, n, body, kind), (n, m))


@pytest.mark.parametrize("kind", [S.ForKind.SERIAL, S.ForKind.PARALLEL])
@pytest.mark.parametrize("with_heap", [False, True])
def test_failing_assert_raises_kernel_error(kind: S.ForKind, with_heap: bool) -> None:
    mod = tcomp.build(_gather_func(kind, with_heap))
    a = np.arange(10, dtype=np.float32)
    indices = np.array([3, 1, 9, 0] * 50, np.int32)
    c = np.zeros(indices.size, np.float32)
    mod(a, indices, c)
    np.testing.assert_array_equal(c, a[indices])
    indices[117] = 12
    with pytest.raises(KernelError, match=r"buffer 'A' dimension 0: index 12 is not in \[0, 10\)") as info:
        mod(a, indices, c)
    assert info.value.values == (12, 10)
    assert isinstance(info.value, RuntimeError)
    indices[117] = -4
    with pytest.raises(KernelError, match=r"index -4 is not in \[0, 10\)"):
        mod(a, indices, c)
    indices[117] = 2
    mod(a, indices, c)  # the error area was reset
    np.testing.assert_array_equal(c, a[indices])


def test_parallel_assert_first_failure_wins_and_others_stop() -> None:
    """Many iterations fail at once in a parallel loop: exactly one failure is reported, consistently."""
    mod = tcomp.build(_gather_func(S.ForKind.PARALLEL))
    a = np.arange(4, dtype=np.float32)
    indices = np.full(10000, 99, np.int32)
    indices[::2] = 100
    c = np.zeros(indices.size, np.float32)
    for _ in range(20):
        with pytest.raises(KernelError, match=r"index (99|100) is not in \[0, 4\)"):
            mod(a, indices, c)


def test_assert_values_of_every_dtype_and_bad_format() -> None:
    A = Buffer("A", (imm(1),), "float32")
    values = (E.FloatImm(2.9, "float32"), imm(-3, "int8"), E.IntImm(1, "bool"), E.IntImm(2**40, "int64"))
    body = S.AssertStmt(E.IntImm(0, "bool"), "{} {} {} {}", values, store(A, E.FloatImm(1.0), imm(0)))
    mod = tcomp.build(S.PrimFunc("vals", (A,), body))
    with pytest.raises(KernelError, match=f"^2 -3 1 {2**40}$"):
        mod(np.zeros(1, np.float32))
    body = S.AssertStmt(E.IntImm(0, "bool"), "needs {} and {}", (imm(5),), store(A, E.FloatImm(1.0), imm(0)))
    mod = tcomp.build(S.PrimFunc("fmt", (A,), body))
    with pytest.raises(KernelError, match=r"needs \{\} and \{\} \(values: 5\)"):
        mod(np.zeros(1, np.float32))


def test_codegen_rejects_what_it_cannot_translate() -> None:
    n = E.Var("n")
    A = Buffer("A", (imm(4), imm(4)), "float32")
    i, j = E.Var("i"), E.Var("j")
    unflattened = S.PrimFunc("multi", (A,), loop(i, 4, S.BufferStore(A, E.FloatImm(0.0), (i, j))))
    with pytest.raises(CodegenError, match="store to A has 2 indices"):
        codegen_llvm(unflattened)
    B = Buffer("B", (imm(4),), "float32")
    undefined = S.PrimFunc("undef", (B,), loop(i, 4, store(B, E.Cast(n, "float32"), i)))
    with pytest.raises(CodegenError, match="function 'undef': variable 'n'"):
        codegen_llvm(undefined)
    bound = S.For(i, imm(0), imm(4), S.ForKind.THREAD_BINDING, store(B, E.FloatImm(0.0), i), thread_tag="threadIdx.x")
    with pytest.raises(CodegenError, match="bound to GPU thread 'threadIdx.x'"):
        codegen_llvm(S.PrimFunc("gpu", (B,), bound))
    with pytest.raises(CodegenError, match="needs an llvm target"):
        codegen_llvm(elementwise("c", "float32", 4, lambda x: x, num_inputs=1), "cuda")


def test_entry_symbol_avoids_c_library_names() -> None:
    mod = tcomp.build(elementwise("exp", "float32", 4, lambda x: E.Call("exp", (x,), "float32"), num_inputs=1))
    assert mod.entry_name == "exp_kernel"
    x = np.linspace(0, 1, 4, dtype=np.float32)
    y = np.zeros_like(x)
    mod(x, y)
    np.testing.assert_allclose(y, np.exp(x), rtol=1e-6)
    assert tcomp.build(elementwise("my op-1", "float32", 4, lambda x: x, num_inputs=1)).entry_name == "my_op_1"


def test_failed_heap_allocation_raises_kernel_error() -> None:
    """T holds n * 2**58 floats: n = 4 asks for 2**62 bytes, which no allocator gives."""
    n = E.Var("n", "int64")
    A = Buffer("A", (n,), "float32")
    extent = E.Mul(n, E.IntImm(2**58, "int64"), "int64")
    huge = Buffer("T", (extent,), "float32", scope="global")
    i, j = E.Var("i", "int64"), E.Var("j", "int64")
    rev = E.Sub(E.Sub(n, E.IntImm(1, "int64"), "int64"), j, "int64")
    body = S.Allocate(huge, S.SeqStmt((loop(i, n, store(huge, load(A, i), i)),
                                       loop(j, n, store(A, load(huge, rev), j)))))
    mod = tcomp.build(S.PrimFunc("huge", (A,), body, (n,)))
    with pytest.raises(KernelError, match=f"cannot allocate {2**62} bytes for buffer 'T'"):
        mod(np.zeros(4, np.float32))
