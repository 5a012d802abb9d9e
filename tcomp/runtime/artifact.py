"""What LLVM code generation hands the runtime: ``LLVMArtifact`` and the ABI of its entry function.

ABI of the exported entry function (the only external symbol)::

    i32 @<entry>(i8** buffers, i64* size_vars, i64* error_area)

``buffers[k]`` is the data pointer of parameter ``k`` (C-contiguous, row-major); ``size_vars[k]`` the value of
``func.size_vars[k]``; ``error_area`` has ``artifact.error_slots`` zeroed int64 slots. The return value is 0 on
success, else the id of the failed check (``artifact.asserts[id - 1]``), whose int64 values are in
``error_area[1:]``. ``ENTRY_PROTOTYPE`` is that signature for ``ctypes``; every caller (modules, graph executors,
exported libraries) calls entries through it.

An artifact is plain data plus two things made on request and kept: its assembly and its JIT-compiled code. It
pickles without them (the measurement workers send artifacts from the builder process to the runner), and the
receiving process compiles its own.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass, field
from typing import Any

from tcomp.runtime import llvm_toolchain
from tcomp.runtime.thread_pool import load_system_libraries, parallel_runtime
from tcomp.target import Target

ENTRY_PROTOTYPE = ctypes.CFUNCTYPE(
    ctypes.c_int32, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_int64)
)


@dataclass(frozen=True)
class AssertInfo:
    """One runtime check of the kernel: its id (1-based, the kernel's nonzero return status when it fails), the
    message to format with the recorded values, and how many int64 values it records."""

    id: int
    message: str
    num_values: int


@dataclass
class LLVMArtifact:
    """The output of LLVM code generation: IR text before (``ll_unopt``) and after (``ll``) optimization, assembly
    (``asm``, empty until ``assembly()`` emits it: most builds never need it), the entry symbol, and what the
    runtime needs to call it and report its failures. The optimized IR and machine code may still be on their way
    from a compile process (``compiled``): ``ll`` and ``function_address`` wait for them."""

    func_name: str
    entry_name: str
    target: Target
    ll_unopt: str
    compiled: llvm_toolchain.CompiledIR = field(repr=False)
    asm: str
    asserts: tuple[AssertInfo, ...]
    uses_threads: bool
    _jit: llvm_toolchain.JITFunction | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def ll(self) -> str:
        return self.compiled.result()[0]

    def assembly(self) -> str:
        """The assembly of the optimized module (``asm``), emitted on the first request."""
        with self._lock:
            if not self.asm:
                self.asm = llvm_toolchain.assemble(self.ll, self.target)
            return self.asm

    @property
    def error_slots(self) -> int:
        """Size of the int64 error area: slot 0 for the failed check's id, then its values."""
        return 1 + max((a.num_values for a in self.asserts), default=0)

    def function_address(self) -> int:
        """JIT-compile the optimized module (once) and return the entry function's address."""
        with self._lock:
            if self._jit is None:
                load_system_libraries()
                if self.uses_threads:
                    parallel_runtime()  # offers tcomp_parallel_for to the JIT'd code
                ll, obj = self.compiled.result()
                self._jit = llvm_toolchain.JITFunction(ll, self.entry_name, self.target, obj)
            return self._jit.address

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_jit"], state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _jit=None, _lock=threading.Lock())
