"""``Module``: a compiled function callable on numpy arrays.

``mod(a, b, c)`` checks every array against the function's parameters (``args.py``), then calls the JIT'd entry
with the data pointers, the size variables bound from the shapes and an error area. Outputs are written in place.
A failed runtime check in the kernel raises ``KernelError`` with the check's message.

``mod.export_library("add.so")`` writes the kernel as a shared library with a description of its signature
(``add.json``); ``load_module("add.so")`` checks the description and loads it back as a ``Module`` that makes the
same argument checks, without recompiling (``kernel_library.py``).
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tcomp.ir.stmt import PrimFunc
from tcomp.runtime.args import ArgumentChecker
from tcomp.runtime.artifact import ENTRY_PROTOTYPE, AssertInfo, LLVMArtifact
from tcomp.runtime.errors import KernelError
from tcomp.runtime.kernel_library import LibraryArtifact, read_kernel, write_kernel
from tcomp.runtime.timer import TimingResult, measure
from tcomp.target import Target

SOURCE_FORMATS = ("ll", "ll_unopt", "asm", "tir")


@dataclass(frozen=True)
class NativeEntry:
    """An entry function with the ABI of ``artifact.py`` at ``address``, kept alive by ``owner`` (a JIT engine's
    module, or a loaded shared library). A graph executor calls such entries directly."""

    address: int
    owner: Any


class Module:
    """A ``PrimFunc`` compiled for ``target``, callable with numpy arrays in parameter order.

    Assumes ``artifact`` was compiled from ``func``. A call that does not match the parameters
    raises ``TypeError``/``ValueError`` before any native code runs. Calls from several Python threads are safe:
    each thread has its own error area.
    """

    def __init__(self, func: PrimFunc, artifact: LLVMArtifact | LibraryArtifact, target: Target | None = None,
                 ) -> None:
        self.func = func
        self.artifact = artifact
        self.target = target if target is not None else artifact.target
        self.entry_name = artifact.entry_name
        self._checker = ArgumentChecker(func)
        self._entry_function: Any = None  # the JIT compiles (or loads) the code on the first call
        self._pointer_array = ctypes.c_void_p * max(1, len(func.params))
        self._size_array = ctypes.c_int64 * max(1, len(func.size_vars))
        self._error_array = ctypes.c_int64 * artifact.error_slots
        self._local = threading.local()
        self._runs_here = False

    def __repr__(self) -> str:
        return f"Module({self.func.name}, target={self.target})"

    @property
    def asserts(self) -> tuple[AssertInfo, ...]:
        """The runtime checks of the kernel (what a failed status means)."""
        return self.artifact.asserts

    @property
    def error_slots(self) -> int:
        return self.artifact.error_slots

    def native_entry(self) -> NativeEntry:
        """The entry function (JIT-compiled, or in its library), to call without this module's argument checks."""
        return NativeEntry(self.artifact.function_address(), self)

    # ------------------------------------------------------------------------------------------------ calling
    def _prepare(self, arrays: tuple[Any, ...], sizes: Mapping[str, int] | None = None) -> tuple[Any, Any]:
        if not self._runs_here:  # code for a CPU whose vector features this one lacks would stop the process
            self.target.check_runs_here()
            self._runs_here = True
        pointers, sizes = self._checker.check(arrays, sizes)
        return self._pointer_array(*pointers), self._size_array(*sizes)

    def _error_area(self) -> Any:
        area = getattr(self._local, "error_area", None)
        if area is None:
            area = self._error_array()
            self._local.error_area = area
        return area

    def _run(self, pointers: Any, sizes: Any) -> None:
        error_area = self._error_area()
        if self._entry_function is None:
            self._entry_function = ENTRY_PROTOTYPE(self.artifact.function_address())
        status = self._entry_function(pointers, sizes, error_area)
        if status != 0:
            self._raise(status, error_area)

    def _raise(self, status: int, error_area: Any) -> None:
        recorded = int(error_area[0]) or status
        raw_values = [int(error_area[k]) for k in range(1, len(error_area))]
        for k in range(len(error_area)):
            error_area[k] = 0
        asserts = self.artifact.asserts
        if not 1 <= recorded <= len(asserts):
            raise KernelError(f"{self.func.name}: the kernel failed with unknown status {recorded}", recorded)
        info = asserts[recorded - 1]
        values = tuple(raw_values[: info.num_values])
        try:
            message = info.message.format(*values)
        except (IndexError, KeyError, ValueError):
            message = f"{info.message} (values: {', '.join(map(str, values))})"
        raise KernelError(message, recorded, values)

    def __call__(self, *arrays: Any, sizes: Mapping[str, int] | None = None) -> None:
        """Run the kernel on ``arrays``. ``sizes`` names the values of size variables that no parameter shape binds
        alone (a shape ``batch*seq`` binds neither ``batch`` nor ``seq``)."""
        pointers, sizes = self._prepare(arrays, sizes)
        self._run(pointers, sizes)

    # ------------------------------------------------------------------------------------------------ inspection
    def get_source(self, fmt: str = "ll") -> str:
        """The code at one stage: ``ll`` (optimized LLVM IR), ``ll_unopt``, ``asm`` or ``tir`` (the loop IR)."""
        if not isinstance(self.artifact, LLVMArtifact):
            raise ValueError(f"{self.func.name} was loaded from {self.artifact.library_path}, which keeps no source")
        if fmt == "ll":
            return self.artifact.ll
        if fmt == "ll_unopt":
            return self.artifact.ll_unopt
        if fmt == "asm":
            return self.artifact.assembly()
        if fmt == "tir":
            return str(self.func)
        raise ValueError(f"unknown source format {fmt!r}; expected one of {', '.join(SOURCE_FORMATS)}")

    # ------------------------------------------------------------------------------------------------ export
    def export_library(self, path: str | os.PathLike[str]) -> Path:
        """Write this kernel to ``path`` as a shared library (``.so``), with the description of its signature
        beside it (``path`` with the suffix ``.json``, which it returns); ``load_module(path)`` loads both."""
        if not isinstance(self.artifact, LLVMArtifact):
            raise ValueError(f"{self.func.name} was loaded from a library: copy {self.artifact.library_path} instead")
        return write_kernel(self.func, self.artifact, path)

    # ------------------------------------------------------------------------------------------------ timing
    def time_evaluator(self, number: int = 10, repeat: int = 3,
                       min_repeat_ms: float = 0) -> Callable[..., TimingResult]:
        """A function ``(*arrays) -> TimingResult`` that times calls of this module on ``arrays``.

        The arrays are checked once; the timed calls run the kernel directly (a failed runtime check still raises
        ``KernelError``). One warm-up call precedes the repeats; see ``timer.measure``.
        """

        def evaluate(*arrays: Any, sizes: Mapping[str, int] | None = None) -> TimingResult:
            pointers, sizes = self._prepare(arrays, sizes)

            def run() -> None:
                self._run(pointers, sizes)

            return measure(run, number, repeat, min_repeat_ms)

        return evaluate


def load_module(path: str | os.PathLike[str]) -> Module:
    """A kernel exported by ``Module.export_library(path)``, from the library ``path`` or its description (what
    ``export_library`` returns): the description is checked (``read_kernel``), then the library is opened; calls
    make the same argument checks as the module that was exported."""
    func, artifact = read_kernel(path)
    return Module(func, artifact)
