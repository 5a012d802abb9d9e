"""Native shared libraries: compiled kernels exported as one ``.so`` and loaded back without recompiling.

``export_library(artifacts, path)`` links the optimized LLVM modules of ``artifacts`` (``LLVMArtifact``s from
``codegen_llvm``) into one module, emits a position-independent object file with the target's machine and links it
with the system C compiler (``cc -shared ... -lgomp -lm``). Only the entry functions stay exported; every other
function a module defines becomes internal, so helper names cannot collide. Entry names must be distinct.

``load_library(path)`` opens it with ``ctypes``; ``LibraryFunction`` is an entry point with the ABI of
``codegen_llvm`` (``int32 entry(void** buffers, int64* size_vars, int64* error_area)``).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import llvmlite.binding as llvm

from tcomp.codegen.llvm import toolchain
from tcomp.target import Target

if TYPE_CHECKING:
    from tcomp.codegen.llvm.codegen import LLVMArtifact

ENTRY_PROTOTYPE = ctypes.CFUNCTYPE(
    ctypes.c_int32, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_int64)
)


class LibraryError(RuntimeError):
    """Exporting or loading a native library failed (no C compiler, a link error, a missing symbol)."""


def c_compiler() -> str:
    for name in (os.environ.get("CC", ""), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    raise LibraryError("no C compiler (cc, gcc or clang) was found to link the shared library")


def _object_machine(target: Target) -> llvm.TargetMachine:
    toolchain._initialize()
    llvm_target = llvm.Target.from_triple(toolchain.process_triple())
    return llvm_target.create_target_machine(cpu=target.mcpu, features=target.features, opt=3, reloc="pic",
                                             codemodel="default")


def export_library(artifacts: Sequence[LLVMArtifact], path: str | os.PathLike[str], target: Target) -> None:
    """Write a shared library holding the entry functions of ``artifacts`` to ``path``."""
    entries = [a.entry_name for a in artifacts]
    duplicates = sorted({e for e in entries if entries.count(e) > 1})
    if duplicates:
        raise LibraryError(f"several kernels export the same symbol: {', '.join(duplicates)}")
    uses_openmp = any(a.uses_openmp for a in artifacts)
    with toolchain._LOCK:
        machine = _object_machine(target)
        linked: llvm.ModuleRef | None = None
        for artifact in artifacts:
            module = llvm.parse_assembly(artifact.ll)
            module.triple = toolchain.process_triple()
            module.data_layout = str(machine.target_data)
            for function in module.functions:
                if not function.is_declaration and function.name != artifact.entry_name:
                    function.linkage = llvm.Linkage.internal
            for variable in module.global_variables:
                if not variable.is_declaration:
                    variable.linkage = llvm.Linkage.internal
            if linked is None:
                linked = module
            else:
                linked.link_in(module)
        if linked is None:
            linked = llvm.parse_assembly("")
            linked.triple = toolchain.process_triple()
        linked.verify()
        obj = machine.emit_object(linked)
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
