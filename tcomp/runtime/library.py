"""Native shared libraries: compiled kernels exported as one ``.so`` and loaded back without recompiling.

``export_library(artifacts, path)`` links the optimized LLVM modules of ``artifacts`` (``LLVMArtifact``s) into one
module, emits a position-independent object file (``llvm_toolchain.shared_object``) and links it with the system C
compiler (``cc -shared ... -lpthread -lm``). Only the entry functions stay exported; every other function a module
defines becomes internal, so helper names cannot collide. Kernels with parallel loops bring their own copy of the
thread pool (``pool_ir.py``), internal to the library. Entry names must be distinct. ``data`` adds exported
constant byte arrays (``library_data`` reads them back): what the compiler wants to say about the code, in the code.

``load_library(path)`` opens it with ``ctypes`` (``RTLD_LOCAL``: its symbols are not offered to other libraries).
``library_function`` gives the address of an entry point with the ABI of ``artifact.py`` (``int32 entry(void**
buffers, int64* size_vars, int64* error_area)``). A name is looked up in the library alone, never in the libraries
it depends on: ``dlsym`` searches those too (``abort``, ``system`` or ``exit`` of libc would be found), so the
address it returns must lie in the library itself (``dladdr`` names the object that defines it). Opening a shared
library runs its initializers: a ``.so`` is code, to be loaded only from someone you trust.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tcomp.runtime import llvm_toolchain
from tcomp.runtime.artifact import LLVMArtifact
from tcomp.runtime.thread_pool import default_policy, load_system_libraries, pool_source
from tcomp.target import Target


class LibraryError(RuntimeError):
    """Exporting or loading a native library failed (no C compiler, a link error, a missing symbol)."""


def c_compiler() -> str:
    for name in (os.environ.get("CC", ""), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    raise LibraryError("no C compiler (cc, gcc or clang) was found to link the shared library")


def export_library(artifacts: Sequence[LLVMArtifact], path: str | os.PathLike[str], target: Target,
                   data: Sequence[tuple[str, bytes]] = ()) -> None:
    """Write a shared library holding the entry functions of ``artifacts`` (and the constants ``data``, see the
    module docstring) to ``path``."""
    entries = [a.entry_name for a in artifacts]
    duplicates = sorted({e for e in entries if entries.count(e) > 1})
    if duplicates:
        raise LibraryError(f"several kernels export the same symbol: {', '.join(duplicates)}")
    uses_threads = any(a.uses_threads for a in artifacts)
    runtime = [pool_source(llvm_toolchain.process_triple(), default_policy())] if uses_threads else []
    obj = llvm_toolchain.shared_object([(a.ll, a.entry_name) for a in artifacts], target, data, runtime)
    with tempfile.TemporaryDirectory(prefix="tcomp_lib_") as tmp:
        obj_path = Path(tmp) / "kernels.o"
        obj_path.write_bytes(obj)
        command = [c_compiler(), "-shared", "-o", os.fspath(path), os.fspath(obj_path), "-lm"]
        if uses_threads:
            command.append("-lpthread")
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LibraryError(f"linking the shared library failed: {' '.join(command)}\n{result.stderr[-2000:]}")


def load_library(path: str | os.PathLike[str]) -> ctypes.CDLL:
    """Open a library written by ``export_library`` (making libm and the compiler runtime resolvable first)."""
    load_system_libraries()
    resolved = os.fspath(Path(path).resolve())
    try:
        library = ctypes.CDLL(resolved, mode=os.RTLD_LOCAL | os.RTLD_NOW)
    except OSError as exc:
        raise LibraryError(f"cannot load the shared library {os.fspath(path)!r}: {exc}") from None
    _check_not_stale(resolved)
    return library


def _check_not_stale(path: str) -> None:
    """``dlopen`` hands back a library already loaded under the same name, even when the file at that path has
    been replaced since: the process would run the old code. Refuse that (Linux: the mappings in
    ``/proc/self/maps`` name the inode they map)."""
    try:
        inode = os.stat(path).st_ino
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            mapped = {int(fields[4]) for fields in (line.split(maxsplit=5) for line in maps)
                      if len(fields) == 6 and fields[5].rstrip("\n").removesuffix(" (deleted)") == path}
    except (OSError, ValueError):
        return
    if mapped and inode not in mapped:
        raise LibraryError(f"an earlier library at {path!r} is still loaded in this process and the file has been "
                           "replaced since; load the new one in a new process (or from another path)")


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p), ("dli_sname", ctypes.c_char_p),
                ("dli_saddr", ctypes.c_void_p)]


@functools.cache
def _dladdr() -> Any:
    for name in (None, ctypes.util.find_library("dl")):
        try:
            function = ctypes.CDLL(name).dladdr
        except (OSError, AttributeError, TypeError):
            continue
        function.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
        function.restype = ctypes.c_int
        return function
    raise LibraryError("dladdr is not available: cannot tell which library defines a symbol")


def defining_object(address: int) -> str | None:
    """The path of the loaded object (library or executable) that holds ``address``, or None."""
    info = _DlInfo()
    if not _dladdr()(ctypes.c_void_p(address), ctypes.byref(info)) or not info.dli_fname:
        return None
    return os.fsdecode(info.dli_fname)


def _same_file(a: str, b: str) -> bool:
    try:
        first, second = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)


def _own_symbol(library: ctypes.CDLL, name: str, what: str) -> int:
    """The address of ``name``, which ``library`` itself must define (see the module docstring)."""
    try:
        symbol = getattr(library, name)
    except (AttributeError, ValueError):
        raise LibraryError(f"the library has no {what} {name!r}") from None
    address = int(ctypes.cast(symbol, ctypes.c_void_p).value or 0)
    owner = defining_object(address) if address else None
    if owner is None or not _same_file(owner, library._name):
        raise LibraryError(f"the library does not define {what} {name!r} (it is {owner or 'nowhere'}'s)")
    return address


def library_function(library: ctypes.CDLL, entry: str) -> int:
    """The address of the entry point ``entry`` that ``library`` defines."""
    return _own_symbol(library, entry, "kernel")


def library_data(library: ctypes.CDLL, name: str, limit: int) -> bytes:
    """The constant ``name`` that ``export_library(..., data=...)`` wrote into ``library`` (at most ``limit``
    bytes)."""
    size = ctypes.c_int64.from_address(_own_symbol(library, f"{name}_size", "constant")).value
    if not 0 <= size <= limit:
        raise LibraryError(f"the library's {name} has {size} bytes (at most {limit})")
    return ctypes.string_at(_own_symbol(library, name, "constant"), size)
