"""Native shared libraries: compiled kernels exported as one ``.so`` and loaded back without recompiling.

``export_library(artifacts, path)`` links the optimized LLVM modules of ``artifacts`` (``LLVMArtifact``s) into one
module, emits a position-independent object file (``llvm_toolchain.shared_object``) and links it with the system C
compiler (``cc -shared ... -lgomp -lm``). Only the entry functions stay exported; every other function a module
defines becomes internal, so helper names cannot collide. Entry names must be distinct.

``load_library(path)`` opens it with ``ctypes``; ``library_function`` gives the address of an entry point with the
ABI of ``artifact.py`` (``int32 entry(void** buffers, int64* size_vars, int64* error_area)``).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tcomp.runtime import llvm_toolchain
from tcomp.runtime.artifact import LLVMArtifact
from tcomp.target import Target


class LibraryError(RuntimeError):
    """Exporting or loading a native library failed (no C compiler, a link error, a missing symbol)."""


def c_compiler() -> str:
    for name in (os.environ.get("CC", ""), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    raise LibraryError("no C compiler (cc, gcc or clang) was found to link the shared library")


def export_library(artifacts: Sequence[LLVMArtifact], path: str | os.PathLike[str], target: Target) -> None:
    """Write a shared library holding the entry functions of ``artifacts`` to ``path``."""
    entries = [a.entry_name for a in artifacts]
    duplicates = sorted({e for e in entries if entries.count(e) > 1})
    if duplicates:
        raise LibraryError(f"several kernels export the same symbol: {', '.join(duplicates)}")
    uses_openmp = any(a.uses_openmp for a in artifacts)
    obj = llvm_toolchain.shared_object([(a.ll, a.entry_name) for a in artifacts], target)
    with tempfile.TemporaryDirectory(prefix="tcomp_lib_") as tmp:
        obj_path = Path(tmp) / "kernels.o"
        obj_path.write_bytes(obj)
        command = [c_compiler(), "-shared", "-o", os.fspath(path), os.fspath(obj_path), "-lm"]
        if uses_openmp:
            command.append("-lgomp")
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LibraryError(f"linking the shared library failed: {' '.join(command)}\n{result.stderr[-2000:]}")


def load_library(path: str | os.PathLike[str]) -> ctypes.CDLL:
    """Open a library written by ``export_library`` (loading libgomp and libm for it first)."""
    from tcomp.runtime.thread_pool import load_system_libraries, openmp_available

    load_system_libraries()
    openmp_available()
    try:
        return ctypes.CDLL(os.fspath(Path(path).resolve()))
    except OSError as exc:
        raise LibraryError(f"cannot load the shared library {os.fspath(path)!r}: {exc}") from None


def library_function(library: ctypes.CDLL, entry: str) -> int:
    """The address of ``entry`` in ``library``."""
    try:
        symbol = getattr(library, entry)
    except AttributeError:
        raise LibraryError(f"the library has no kernel {entry!r}") from None
    return int(ctypes.cast(symbol, ctypes.c_void_p).value or 0)
