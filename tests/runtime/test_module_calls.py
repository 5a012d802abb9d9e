"""Runtime Module: every class of bad call raises before native code runs; good calls of odd shapes work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tcomp
from tcomp import te
from tcomp.ir import expr as E
from tcomp.ir import stmt as S
from tcomp.ir.buffer import Buffer
from tcomp.runtime import Module
from tcomp.runtime.args import ArgumentChecker, written_params
from tcomp.runtime.kernel_library import KernelLibraryError
from tcomp.target import Target, TargetKind


def _matrix_add() -> S.PrimFunc:
    """C[n, 4] = A[n, 4] + B[n, 4] over the flattened n * 4 elements; D[n + 1] = 1."""
    n = E.Var("n")
    four = E.IntImm(4)
    A, B, C = (Buffer(name, (n, four), "float32") for name in "ABC")
    D = Buffer("D", (E.Add(n, E.IntImm(1), "int32"),), "int32")
    i = E.Var("i")
    total = E.Mul(n, four, "int32")
    add = S.For(i, E.IntImm(0), total, S.ForKind.SERIAL, S.BufferStore(
        C, E.Add(E.BufferLoad(A, (i,), "float32"), E.BufferLoad(B, (i,), "float32"), "float32"), (i,)))
    fill = S.For(i, E.IntImm(0), E.Add(n, E.IntImm(1), "int32"), S.ForKind.SERIAL,
                 S.BufferStore(D, E.IntImm(1), (i,)))
    return S.PrimFunc("madd", (A, B, C, D), S.SeqStmt((add, fill)), (n,))


@pytest.fixture(scope="module")
def mod() -> Module:
    return tcomp.build(_matrix_add())


def _args(n: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    a = rng.random((n, 4), dtype=np.float32)
    b = rng.random((n, 4), dtype=np.float32)
    return [a, b, np.zeros((n, 4), np.float32), np.zeros(n + 1, np.int32)]


def test_good_call(mod: Module) -> None:
    a, b, c, d = _args()
    mod(a, b, c, d)
    np.testing.assert_array_equal(c, a + b)
    np.testing.assert_array_equal(d, 1)


def test_zero_size_arrays_run(mod: Module) -> None:
    a, b, c, d = _args(0)
    mod(a, b, c, d)
    np.testing.assert_array_equal(d, [1])


def test_read_only_inputs_are_fine(mod: Module) -> None:
    a, b, c, d = _args()
    a.flags.writeable = False
    mod(a, b, c, d)
    np.testing.assert_array_equal(c, a + b)


def test_same_input_twice_is_fine(mod: Module) -> None:
    a, _, c, d = _args()
    mod(a, a, c, d)
    np.testing.assert_array_equal(c, a + a)


BAD_CALLS = [
    ("too few", lambda a, b, c, d: (a, b, c), TypeError, r"madd takes 4 arrays \(A, B, C, D\), got 3"),
    ("too many", lambda a, b, c, d: (a, b, c, d, d), TypeError, "takes 4 arrays.*got 5"),
    ("list", lambda a, b, c, d: (a, b.tolist(), c, d), TypeError,
     r"argument 1 \('B'\): expected a numpy.ndarray, got list"),
    ("scalar", lambda a, b, c, d: (a, b, c, 3), TypeError, r"argument 3 \('D'\): expected a numpy.ndarray, got int"),
    ("dtype", lambda a, b, c, d: (a.astype(np.float64), b, c, d), TypeError,
     r"argument 0 \('A'\): expected float32, got float64"),
    ("int dtype", lambda a, b, c, d: (a, b, c, d.astype(np.int64)), TypeError, "expected int32, got int64"),
    ("big-endian", lambda a, b, c, d: (a.astype(">f4"), b, c, d), TypeError,  # was "expected float32, got float32"
     r"argument 0 \('A'\): expected float32, got float32 in big-endian byte order \(>f4; convert it with "
     r"arr.astype\(np.float32\)\)"),
    ("rank", lambda a, b, c, d: (a.reshape(-1), b, c, d), ValueError,
     r"argument 0 \('A'\): expected 2 dimension\(s\) \(n, 4\), got 1"),
    ("constant dim", lambda a, b, c, d: (a, b, np.zeros((3, 5), np.float32), d), ValueError,
     r"argument 2 \('C'\): dimension 1 must be 4, got 5"),
    ("inconsistent n", lambda a, b, c, d: (a, np.zeros((2, 4), np.float32), c, d), ValueError,
     r"argument 1 \('B'\): dimension 0 binds n to 2, but argument 0 \('A'\) bound it to 3"),
    ("compound dim", lambda a, b, c, d: (a, b, c, np.zeros(3, np.int32)), ValueError,
     r"argument 3 \('D'\): dimension 0 binds n to 2, but argument 0 \('A'\) bound it to 3"),
    ("non-contiguous", lambda a, b, c, d: (np.asfortranarray(a), b, c, d), ValueError,
     r"argument 0 \('A'\): the array must be C-contiguous"),
    ("strided", lambda a, b, c, d: (a, b, c, np.zeros(8, np.int32)[::2]), ValueError, "C-contiguous"),
    ("read-only output", lambda a, b, c, d: (a, b, _read_only(c), d), ValueError,
     r"argument 2 \('C'\): the function writes this buffer, but the array is read-only"),
    ("output is input", lambda a, b, c, d: (a, b, a, d), ValueError,
     r"argument 2 \('C'\): the output shares memory with argument 0 \('A'\).*noalias"),
    ("output overlaps input", lambda a, b, c, d: (a, b, c, c.view(np.int32).reshape(-1)[:4]), ValueError,
     r"argument 2 \('C'\): the output shares memory with argument 3"),
]


def _read_only(arr: np.ndarray) -> np.ndarray:
    arr.flags.writeable = False
    return arr


@pytest.mark.parametrize("case", BAD_CALLS, ids=[case[0] for case in BAD_CALLS])
def test_bad_calls(mod: Module, case: tuple) -> None:
    _, make, error, pattern = case
    a, b, c, d = _args()
    c[:] = 42
    with pytest.raises(error, match=pattern):
        mod(*make(a, b, c, d))
    np.testing.assert_array_equal(c, 42)  # nothing ran


def test_output_buffers_attr_overrides_the_scan() -> None:
    func = _matrix_add()
    assert written_params(func) == frozenset({2, 3})
    func = func.with_attr("output_buffers", (3,))
    assert written_params(func) == frozenset({3})
    mod = tcomp.build(func)
    a, b, c, d = _args()
    c.flags.writeable = False  # not declared as written: accepted (the attr is trusted)
    with pytest.raises(ValueError, match="read-only"):
        mod(a, b, c, _read_only(d))


def test_size_vars_that_only_a_product_binds_are_given_by_name(tmp_path: Path) -> None:
    """A buffer of ``n*m`` elements binds neither ``n`` nor ``m``: a call names their values, which the shapes must
    agree with."""
    n, m = te.var("n"), te.var("m", max_value=100)
    A = te.placeholder((n * m,), name="A")
    B = te.compute((n * m,), lambda i: A[i] * 2.0, name="B")
    mod = tcomp.build(tcomp.create_schedule(B), [A, B])
    a = np.arange(12, dtype=np.float32)
    b = np.zeros(12, np.float32)
    mod(a, b, sizes={"n": 3, "m": 4})
    np.testing.assert_array_equal(b, a * 2)
    with pytest.raises(ValueError, match="n, m appear in no parameter shape alone or plus a constant; give their"):
        mod(a, b)
    with pytest.raises(ValueError, match=r"dimension 0 must be n \* m = 10 \(n=2, m=5\), got 12"):
        mod(a, b, sizes={"n": 2, "m": 5})
    with pytest.raises(ValueError, match=r"sizes \['k'\] name no size variable"):
        mod(a, b, sizes={"n": 3, "m": 4, "k": 1})
    with pytest.raises(ValueError, match="m = 120 exceeds its declared maximum 100"):
        mod(np.zeros(120, np.float32), np.zeros(120, np.float32), sizes={"n": 1, "m": 120})
    with pytest.raises(TypeError, match="size 'n' must be an int"):
        mod(a, b, sizes={"n": 3.0, "m": 4})
    with pytest.raises(KernelLibraryError, match="cannot be exported: size variable.s. n, m appear in no"):
        mod.export_library(tmp_path / "k.so")


def test_size_var_bound_by_an_extent_plus_a_constant() -> None:
    n = E.Var("n")
    A = Buffer("A", (E.Add(n, E.IntImm(1), "int32"),), "float32")
    B = Buffer("B", (E.Add(E.IntImm(3), n, "int32"),), "float32")
    checker = ArgumentChecker(S.PrimFunc("offset", (A, B), S.NoOp(), (n,)))
    _, sizes = checker.check([np.zeros(5, np.float32), np.zeros(7, np.float32)])
    assert sizes == [4]
    with pytest.raises(ValueError, match="binds n to 5, but argument 0"):
        checker.check([np.zeros(5, np.float32), np.zeros(8, np.float32)])


def test_declared_range_of_a_size_variable() -> None:
    """Calls with a size above the declared maximum or below the declared minimum are refused; so are ranges that
    are not non-negative values of the dtype."""
    from tcomp import te
    from tcomp.te.operation import TEError

    n = te.var("n", max_value=5, min_value=2)
    assert n.declared_range() == (2, 5)
    A = Buffer("A", (n,), "float32")
    i = E.Var("i")
    body = S.For(i, E.IntImm(0), n, S.ForKind.SERIAL, S.BufferStore(A, E.FloatImm(1.0), (i,)))
    mod = tcomp.build(S.PrimFunc("fill", (A,), body, (n,)))
    for size in (2, 5):
        a = np.zeros(size, np.float32)
        mod(a)
        np.testing.assert_array_equal(a, 1.0)
    with pytest.raises(ValueError, match="n = 6 exceeds its declared maximum 5"):
        mod(np.zeros(6, np.float32))
    with pytest.raises(ValueError, match="n = 1 is below its declared minimum 2"):
        mod(np.zeros(1, np.float32))
    with pytest.raises(TEError, match="max_value -1 is not a non-negative value of its dtype int32"):
        te.var("n", max_value=-1)
    with pytest.raises(TEError, match="max_value 4294967296 is not a non-negative value"):
        te.var("n", max_value=1 << 32)
    with pytest.raises(TEError, match="min_value 6 is not a non-negative value of its dtype int32 at most max_value"):
        te.var("n", max_value=5, min_value=6)
    with pytest.raises(TEError, match="min_value -1 is not"):
        te.var("n", min_value=-1)
    with pytest.raises(TEError, match="min_value must be an int"):
        te.var("n", min_value=2.0)  # type: ignore[arg-type]


def test_bool_and_float16_parameters() -> None:
    M = Buffer("M", (E.IntImm(5),), "bool")
    H = Buffer("H", (E.IntImm(5),), "float16")
    i = E.Var("i")
    value = E.Select(E.BufferLoad(M, (i,), "bool"), E.FloatImm(1.5, "float16"), E.FloatImm(-2.0, "float16"),
                     "float16")
    func = S.PrimFunc("mask", (M, H), S.For(i, E.IntImm(0), E.IntImm(5), S.ForKind.SERIAL,
                                            S.BufferStore(H, value, (i,))))
    mod = tcomp.build(func)
    m = np.array([True, False, True, True, False])
    h = np.zeros(5, np.float16)
    mod(m, h)
    np.testing.assert_array_equal(h, np.where(m, 1.5, -2.0).astype(np.float16))
    with pytest.raises(TypeError, match="expected bool, got uint8"):
        mod(m.astype(np.uint8), h)


def test_module_attributes(mod: Module) -> None:
    assert mod.entry_name == "madd"
    assert mod.func.name == "madd"
    assert isinstance(mod.target, Target) and mod.target.kind is TargetKind.LLVM
    assert "madd" in repr(mod)


def test_calls_from_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    module = tcomp.build(_matrix_add())

    def run(k: int) -> bool:
        a, b, c, d = _args(k + 1)
        for _ in range(50):
            module(a, b, c, d)
        return bool(np.array_equal(c, a + b))

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(run, range(8)))


def test_an_artifact_pickles_without_its_compiled_code_and_runs_after(mod: Module) -> None:
    """Measurement workers send artifacts between processes: the JIT'd code and the lock stay behind, the copy
    compiles its own on its first call."""
    import pickle

    copy = pickle.loads(pickle.dumps(mod.artifact))
    assert copy.ll == mod.artifact.ll and copy.asserts == mod.artifact.asserts and copy._jit is None
    a, b, c, d = _args()
    Module(mod.func, copy)(a, b, c, d)
    np.testing.assert_allclose(c, a + b)
