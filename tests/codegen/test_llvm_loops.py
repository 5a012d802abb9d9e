"""LLVM backend: loops of every kind, vector loads and stores, control flow, allocations, source stages."""

from __future__ import annotations

import re

import numpy as np
import pytest
from llvm_testing import elementwise, imm, load, loop, ramp, store

import tcomp
from tcomp.codegen.llvm import codegen_llvm
from tcomp.ir import expr as E
from tcomp.ir import stmt as S
from tcomp.ir.buffer import Buffer

RNG = np.random.default_rng(0)


def _add(a: E.Expr, b: E.Expr) -> E.Expr:
    return E.Add(a, b, a.dtype)


@pytest.mark.parametrize("size", [1, 7, 1000])
def test_serial_add_constant_size(size: int) -> None:
    mod = tcomp.build(elementwise("add_const", "float32", size, _add))
    a, b = RNG.random(size, dtype=np.float32), RNG.random(size, dtype=np.float32)
    c = np.zeros(size, np.float32)
    mod(a, b, c)
    np.testing.assert_array_equal(c, a + b)


@pytest.mark.parametrize("size", [0, 1, 13, 4099])
def test_symbolic_size_add(size: int) -> None:
    n = E.Var("n", "int32")
    mod = tcomp.build(elementwise("add_sym", "float64", n, _add))
    a, b = RNG.random(size), RNG.random(size)
    c = np.full(size, -1.0)
    mod(a, b, c)
    np.testing.assert_array_equal(c, a + b)


@pytest.mark.parametrize("size", [0, 1, 3, 1001])
def test_parallel_loop(size: int) -> None:
    n = E.Var("n", "int64")
    mod = tcomp.build(elementwise("add_par", "float32", n, _add, kind=S.ForKind.PARALLEL))
    a, b = RNG.random(size, dtype=np.float32), RNG.random(size, dtype=np.float32)
    c = np.zeros(size, np.float32)
    mod(a, b, c)
    np.testing.assert_array_equal(c, a + b)
    assert "tcomp_parallel_for" in mod.get_source("ll")


def test_parallel_captures_outer_values_and_nested_parallel_runs_serially() -> None:
    """A parallel loop inside a serial loop, using the outer loop variable, a let variable, a heap buffer
    allocated outside it and a nested parallel loop; the result is checked against numpy."""
    rows, cols = 5, 37
    A = Buffer("A", (imm(rows * cols),), "float32")
    C = Buffer("C", (imm(rows * cols),), "float32")
    H = Buffer("H", (imm(cols),), "float32", scope="global")
    r, i, j, k = E.Var("r"), E.Var("i"), E.Var("j"), E.Var("k")
    scale = E.Var("scale", "float32")
    fill = loop(k, cols, store(H, E.Cast(k, "float32"), k))
    flat = E.Add(E.Mul(r, imm(cols), "int32"), i, "int32")
    inner = loop(j, 1, store(C, _add(E.Mul(load(A, flat), scale, "float32"), load(H, i)), flat),
                 S.ForKind.PARALLEL)
    par = loop(i, cols, inner, S.ForKind.PARALLEL)
    body = S.Allocate(H, S.SeqStmt((fill, loop(r, rows, S.LetStmt(scale, E.Cast(E.Add(r, imm(1), "int32"),
                                                                                   "float32"), par)))))
    mod = tcomp.build(S.PrimFunc("par_capture", (A, C), body))
    a = RNG.random(rows * cols, dtype=np.float32)
    c = np.zeros_like(a)
    mod(a, c)
    expected = a.reshape(rows, cols) * np.arange(1, rows + 1, dtype=np.float32)[:, None] + np.arange(cols)
    np.testing.assert_allclose(c.reshape(rows, cols), expected, rtol=1e-6)


def test_vector_loop_with_scalar_tail() -> None:
    """C[ramp(8*io, 1, 8)] = A[ramp] * B[ramp] for the full vectors, then a scalar loop for the n % 8 rest."""
    n = E.Var("n", "int32")
    A, B, C = (Buffer(name, (n,), "float32") for name in "ABC")
    io, i = E.Var("io"), E.Var("i")
    base = E.Mul(io, imm(8), "int32")
    index = ramp(base, 8)
    vec_body = store(C, E.Mul(load(A, index), load(B, index), "float32x8"), index)
    full = E.FloorDiv(n, imm(8), "int32")
    tail_start = E.Mul(full, imm(8), "int32")
    tail = loop(i, E.Sub(n, tail_start, "int32"),
                store(C, E.Mul(load(A, i), load(B, i), "float32"), i), start=tail_start)
    func = S.PrimFunc("vmul", (A, B, C), S.SeqStmt((loop(io, full, vec_body), tail)), (n,))
    mod = tcomp.build(func)
    assert "<8 x float>" in mod.get_source("ll_unopt")
    for size in (0, 5, 8, 29):
        a, b = RNG.random(size, dtype=np.float32), RNG.random(size, dtype=np.float32)
        c = np.zeros(size, np.float32)
        mod(a, b, c)
        np.testing.assert_array_equal(c, a * b)


def test_gather_scatter_broadcast_and_vector_select() -> None:
    """Strided Ramp loads (gather), a strided store (scatter), a Broadcast index and a vector Select."""
    A = Buffer("A", (imm(16),), "float32")
    C = Buffer("C", (imm(16),), "float32")
    S0 = Buffer("S", (imm(1),), "float32")
    evens = ramp(imm(0), 8, stride=2)
    odds = ramp(imm(1), 8, stride=2)
    first = E.Broadcast(imm(0), 8, "int32x8")
    a_even, a_odd = load(A, evens), load(A, odds)
    bigger = E.GT(a_even, a_odd, "boolx8")
    value = E.Select(bigger, a_even, E.Add(a_odd, load(S0, first), "float32x8"), "float32x8")
    body = S.SeqStmt((store(C, value, odds), store(C, E.Broadcast(E.FloatImm(-1.0), 8, "float32x8"), evens)))
    mod = tcomp.build(S.PrimFunc("gather", (A, S0, C), body))
    a = RNG.random(16, dtype=np.float32)
    s = np.array([10.0], np.float32)
    c = np.zeros(16, np.float32)
    mod(a, s, c)
    expected = np.full(16, -1.0, np.float32)
    expected[1::2] = np.where(a[0::2] > a[1::2], a[0::2], a[1::2] + 10)
    np.testing.assert_array_equal(c, expected)


@pytest.mark.parametrize("kind", [S.ForKind.UNROLLED, S.ForKind.VECTORIZED])
def test_loop_metadata(kind: S.ForKind) -> None:
    n = E.Var("n", "int32")
    for extent in (imm(4), n):
        func = elementwise("meta", "float32", extent, _add, kind=kind)
        if isinstance(extent, E.IntImm):
            func = S.PrimFunc(func.name, func.params, func.body, ())
        else:
            func = S.PrimFunc(func.name, func.params, func.body, (n,))
        mod = tcomp.build(func)
        source = mod.get_source("ll_unopt")
        expected = {S.ForKind.UNROLLED: "llvm.loop.unroll", S.ForKind.VECTORIZED: "llvm.loop.vectorize.enable"}
        assert expected[kind] in source
        assert "distinct !{" in source
        a, b = RNG.random(4, dtype=np.float32), RNG.random(4, dtype=np.float32)
        c = np.zeros(4, np.float32)
        mod(a, b, c)
        np.testing.assert_array_equal(c, a + b)


def test_if_then_else_likely_let_and_select() -> None:
    n = E.Var("n", "int32")
    A, C = Buffer("A", (n,), "int32"), Buffer("C", (n,), "int32")
    i, t = E.Var("i"), E.Var("t")
    x = load(A, i)
    positive = E.Call("likely", (E.GT(x, imm(0), "bool"),), "bool")
    then_case = S.LetStmt(t, E.Mul(x, imm(2), "int32"), store(C, E.Add(t, imm(1), "int32"), i))
    let_expr = E.Let(t, E.Sub(imm(0), x, "int32"), E.Select(E.EQ(t, imm(3), "bool"), imm(100), t, "int32"), "int32")
    body = loop(i, n, S.SeqStmt((
        S.IfThenElse(positive, then_case, store(C, let_expr, i)),
        S.IfThenElse(E.EQ(x, imm(7), "bool"), store(C, imm(-7), i)),
    )))
    mod = tcomp.build(S.PrimFunc("branches", (A, C), body, (n,)))
    a = np.array([-3, -1, 0, 1, 5, 7], np.int32)
    c = np.zeros_like(a)
    mod(a, c)
    expected = np.where(a > 0, 2 * a + 1, np.where(-a == 3, 100, -a))
    expected[a == 7] = -7
    np.testing.assert_array_equal(c, expected)


@pytest.mark.parametrize("scope,size,where", [("local", 16, "alloca"), ("local", 20000, "aligned_alloc"),
                                              ("global", 16, "aligned_alloc")])
def test_allocate(scope: str, size: int, where: str) -> None:
    """A temporary T: T[i] = A[i] + 1, then C[i] = T[size - 1 - i] * 2."""
    A, C = Buffer("A", (imm(size),), "float32"), Buffer("C", (imm(size),), "float32")
    T = Buffer("T", (imm(size),), "float32", scope=scope)
    i, j = E.Var("i"), E.Var("j")
    fill = loop(i, size, store(T, _add(load(A, i), E.FloatImm(1.0)), i))
    rev = E.Sub(imm(size - 1), j, "int32")
    use = loop(j, size, store(C, E.Mul(load(T, rev), E.FloatImm(2.0), "float32"), j))
    mod = tcomp.build(S.PrimFunc("alloc", (A, C), S.Allocate(T, S.SeqStmt((fill, use)))))
    assert where in mod.get_source("ll_unopt")
    a = RNG.random(size, dtype=np.float32)
    c = np.zeros_like(a)
    mod(a, c)
    np.testing.assert_array_equal(c, ((a + 1) * 2)[::-1])


def test_symbolic_heap_allocation_inside_parallel_loop_is_per_thread() -> None:
    """Each parallel iteration fills its own heap row buffer of symbolic size m and reduces it."""
    rows, m = E.Var("rows"), E.Var("m")
    A = Buffer("A", (rows, m), "float64")
    out = Buffer("O", (rows,), "float64")
    T = Buffer("T", (m,), "float64", scope="global")
    acc = Buffer("acc", (imm(1),), "float64", scope="local")
    r, j, k = E.Var("r"), E.Var("j"), E.Var("k")
    flat = E.Add(E.Mul(r, m, "int32"), j, "int32")
    fill = loop(j, m, store(T, E.Mul(load(A, flat), load(A, flat), "float64"), j))
    reduce = S.SeqStmt((store(acc, E.FloatImm(0.0, "float64"), imm(0)),
                        loop(k, m, store(acc, E.Add(load(acc, imm(0)), load(T, k), "float64"), imm(0))),
                        store(out, load(acc, imm(0)), r)))
    body = loop(r, rows, S.Allocate(T, S.Allocate(acc, S.SeqStmt((fill, reduce)))), S.ForKind.PARALLEL)
    mod = tcomp.build(S.PrimFunc("rowsq", (A, out), body, (rows, m)))
    a = RNG.random((9, 33))
    o = np.zeros(9)
    mod(a, o)
    np.testing.assert_allclose(o, (a * a).sum(axis=1), rtol=1e-12)


def test_source_formats_and_avx_vectorization() -> None:
    n = E.Var("n", "int32")
    func = elementwise("vadd", "float32", n, _add)
    mod = tcomp.build(func)
    assert re.search(r"define .*i32 @vadd\(", mod.get_source("ll"))
    assert "@\"vadd.impl\"" in mod.get_source("ll_unopt")
    assert mod.get_source("tir") == str(func)
    asm = mod.get_source("asm")
    assert "vaddps" in asm
    assert "ymm" in asm or "zmm" in asm
    with pytest.raises(ValueError, match="unknown source format 'ptx'.*ll, ll_unopt, asm, tir"):
        mod.get_source("ptx")


def test_artifact_fields() -> None:
    func = elementwise("art", "float32", 8, _add)
    artifact = codegen_llvm(func, "llvm -num-cores=1")
    assert artifact.entry_name == "art"
    assert artifact.target.num_cores == 1
    assert artifact.error_slots == 1
    assert artifact.function_address() == artifact.function_address() != 0


def test_parallel_loop_without_threads_runs_serially(monkeypatch: pytest.MonkeyPatch) -> None:
    import tcomp.codegen.llvm.codegen as codegen_module

    monkeypatch.setattr(codegen_module, "parallel_runtime_available", lambda: False)
    n = E.Var("n", "int32")
    artifact = codegen_llvm(elementwise("serial_par", "float32", n, _add, kind=S.ForKind.PARALLEL))
    assert not artifact.uses_threads
    assert "tcomp_parallel_for" not in artifact.ll_unopt
    monkeypatch.undo()
    from tcomp.runtime import Module

    func = elementwise("serial_par", "float32", n, _add, kind=S.ForKind.PARALLEL)
    mod = Module(func, artifact)
    a, b = RNG.random(100, dtype=np.float32), RNG.random(100, dtype=np.float32)
    c = np.zeros(100, np.float32)
    mod(a, b, c)
    np.testing.assert_array_equal(c, a + b)


def test_builds_from_several_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    def build_and_run(k: int) -> bool:
        size = 10 + k
        func = elementwise(f"threaded{k}", "float32", size, _add, kind=S.ForKind.PARALLEL if k % 2 else
                           S.ForKind.SERIAL)
        mod = tcomp.build(func)
        a, b = np.full(size, k, np.float32), np.ones(size, np.float32)
        c = np.zeros(size, np.float32)
        mod(a, b, c)
        return bool(np.all(c == k + 1))

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(build_and_run, range(12)))
