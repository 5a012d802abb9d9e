"""The thread pool that runs parallel loops: libgomp's persistent pool, loaded into the process for JIT'd code.

Generated code calls ``GOMP_parallel(fn, data, num_threads, 0)``; each thread of the pool runs ``fn(data)`` and asks
``omp_get_thread_num()`` / ``omp_get_num_threads()`` for its share of the iterations. libgomp keeps its threads alive
between calls, so launching a parallel loop costs a wake-up, not a thread creation. Where libgomp cannot be found,
``openmp_available()`` is False, code generation emits parallel loops as serial loops, and a warning says so once.
"""

from __future__ import annotations

import ctypes.util
import functools
import warnings

import llvmlite.binding as llvm


@functools.cache
def load_system_libraries() -> None:
    """Make libm's functions (``tanhf``, ``erff`` ...) resolvable by JIT'd code."""
    libm = ctypes.util.find_library("m")
    if libm:
        try:
            llvm.load_library_permanently(libm)
        except RuntimeError:  # pragma: no cover - libm is already part of the process
            pass


@functools.cache
def openmp_available() -> bool:
    """Load libgomp for JIT'd code; True when its ``GOMP_parallel`` can be called. Warns once when missing."""
    path = ctypes.util.find_library("gomp")
    if path is not None:
        try:
            llvm.load_library_permanently(path)
            return True
        except RuntimeError:
            pass
    warnings.warn(
        "libgomp was not found: parallel loops will run serially on one thread",
        RuntimeWarning,
        stacklevel=2,
    )
    return False
