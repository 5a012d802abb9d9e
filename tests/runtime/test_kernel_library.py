"""``Module.export_library`` and ``tcomp.runtime.load_module``: a kernel written as a shared library with a
description of its signature, loaded back without recompiling, making the same checks; descriptions that are
wrong, tampered with or paired with another library are refused before the library is opened."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import tcomp
from tcomp import te
from tcomp.runtime import KernelError, load_module
from tcomp.runtime.kernel_library import KernelLibraryError


def _gather() -> tcomp.runtime.Module:
    """C[i] = A[B[i]] over a symbolic n, split and parallel, built with bounds checks: a runtime check whose
    message must survive the export."""
    n = te.var("n")
    A = te.placeholder((n,), name="A", dtype="float32")
    B = te.placeholder((n,), name="B", dtype="int32")
    C = te.compute((n,), lambda i: A[B[i]], name="C")
    s = tcomp.create_schedule(C)
    outer, _ = s[C].split(C.op.axis[0], factor=8)
    s[C].parallel(outer)
    with tcomp.config.override(check_bounds=True):
        return tcomp.build(s, [A, B, C])


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kernel") / "gather.so"
    assert _gather().export_library(path) == path.with_suffix(".json")
    return path


@pytest.mark.parametrize("size", [1, 7, 8, 1001])
def test_loaded_kernel_matches_numpy(exported: Path, size: int) -> None:
    mod = load_module(exported)
    rng = np.random.default_rng(size)
    a = rng.standard_normal(size).astype(np.float32)
    b = rng.integers(0, size, size, dtype=np.int32)
    c = np.zeros(size, np.float32)
    mod(a, b, c)
    np.testing.assert_array_equal(c, a[b])


def test_loaded_kernel_checks_arguments_and_reports_its_runtime_checks(exported: Path) -> None:
    mod = load_module(exported)
    a = np.arange(8, dtype=np.float32)
    index = np.zeros(8, np.int32)
    with pytest.raises(ValueError, match="dimension 0 binds n to 4, but argument 0 .'A'. bound it to 8"):
        mod(a, np.ones(4, np.int32), np.zeros(8, np.float32))
    with pytest.raises(TypeError, match="expected int32, got float32"):
        mod(a, np.ones(8, np.float32), np.zeros(8, np.float32))
    with pytest.raises(ValueError, match="writes this buffer, but the array is read-only"):
        out = np.zeros(8, np.float32)
        out.flags.writeable = False
        mod(a, index, out)
    with pytest.raises(KernelError, match=r"buffer 'A' dimension 0: index 9 is not in \[0, 8\)"):
        mod(a, np.array([0, 1, 2, 9, 0, 0, 0, 0], np.int32), np.zeros(8, np.float32))
    with pytest.raises(ValueError, match="keeps no source"):
        mod.get_source("asm")
    timing = mod.time_evaluator(number=2, repeat=2)(a, index, np.zeros(8, np.float32))
    assert timing.min > 0


def _tamper(exported: Path, tmp_path: Path, change) -> Path:  # noqa: ANN001
    library = tmp_path / "k.so"
    library.write_bytes(exported.read_bytes())
    document = json.loads(exported.with_suffix(".json").read_text())
    change(document)
    library.with_suffix(".json").write_text(json.dumps(document))
    return library


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(format="tcomp-kernel/9"), "not a kernel description of format tcomp-kernel/1"),
    (lambda d: d["params"][0].update(dtype="float128x"), "parameter 0: unknown dtype 'float128x'"),
    (lambda d: d["params"][0].update(shape=["m"]), "dimension 'm' is no declared size variable"),
    (lambda d: d["params"][0].update(shape=[["**", "n", 2]]), "cannot read dimension"),
    (lambda d: [p.update(shape=[["*", "n", 2]]) for p in d["params"]], "n appear in no parameter shape alone"),
    (lambda d: d.update(target="llvm -mcpu=foo"), "target: target option -mcpu: LLVM knows no CPU 'foo'"),
    (lambda d: d.update(target="cuda"), "only CPU kernels are exported as libraries"),
    (lambda d: d.update(library_sha256="0" * 64), "not the one k.json describes"),
    (lambda d: d.update(asserts=[["x", -1]]), r"assert 0: expected \[message, number of values\]"),
    (lambda d: d.update(may_alias=[7]), "'may_alias' must list parameter positions"),
])
def test_bad_descriptions_are_refused(exported: Path, tmp_path: Path, change, message: str) -> None:  # noqa: ANN001
    with pytest.raises(KernelLibraryError, match=message):
        load_module(_tamper(exported, tmp_path, change))


def test_the_description_export_library_returns_loads_too(exported: Path) -> None:
    mod = load_module(exported.with_suffix(".json"))  # the path export_library returned: its library beside it
    a = np.arange(8, dtype=np.float32)
    c = np.zeros(8, np.float32)
    mod(a, np.arange(8, dtype=np.int32)[::-1].copy(), c)
    np.testing.assert_array_equal(c, a[::-1])


@pytest.mark.parametrize("name, message", [
    (None, "it names no library: load the library itself"),
    ("../gather.so", "expected the file name of a library beside the description"),
    ("/tmp/gather.so", "expected the file name of a library beside the description"),
    ("sub/gather.so", "expected the file name of a library beside the description"),
    ("..", "expected the file name"),
    ("k.json", "expected the file name"),
    ("other.so", "other.so: no such library"),
])
def test_a_description_names_only_a_library_beside_it(exported: Path, tmp_path: Path, name: str | None,
                                                      message: str) -> None:
    description = _tamper(exported, tmp_path, lambda d: d.update(library=name)).with_suffix(".json")
    with pytest.raises(KernelLibraryError, match=message):
        load_module(description)


def test_missing_files_are_named(exported: Path, tmp_path: Path) -> None:
    with pytest.raises(KernelLibraryError, match="no such library"):
        load_module(tmp_path / "none.so")
    lonely = tmp_path / "lonely.so"
    lonely.write_bytes(exported.read_bytes())
    with pytest.raises(KernelLibraryError, match="its description lonely.json is missing"):
        load_module(lonely)
    (tmp_path / "lonely.json").write_text("{not json")
    with pytest.raises(KernelLibraryError, match="not JSON"):
        load_module(lonely)


def test_a_loaded_module_is_not_exported_again(exported: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="was loaded from a library"):
        load_module(exported).export_library(tmp_path / "again.so")
