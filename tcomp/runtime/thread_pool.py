"""The thread pool that runs parallel loops: libgomp's persistent pool, loaded into the process for JIT'd code.

Generated code calls ``GOMP_parallel(fn, data, num_threads, 0)``; each thread of the pool runs ``fn(data)`` and asks
``omp_get_thread_num()`` / ``omp_get_num_threads()`` for its share of the iterations. libgomp keeps its threads alive
between calls, so launching a parallel loop costs a wake-up, not a thread creation. Where libgomp cannot be found,
``openmp_available()`` is False, code generation emits parallel loops as serial loops, and a warning says so once.
"""

from __future__ import annotations

import ctypes.util
import functools
import os
import warnings

import llvmlite.binding as llvm


@functools.cache
def load_system_libraries() -> None:
    """Make libm's functions (``tanhf``, ``erff`` ...) and the compiler runtime's (libgcc_s: ``__truncdfhf2`` for
    float64 -> float16 casts on CPUs without AVX512-FP16, 128-bit integer division ...) resolvable by JIT'd code.
    Without the compiler runtime such a call jumps to address 0 and the process dies."""
    for name in ("m", "gcc_s"):
        path = ctypes.util.find_library(name)
        if path:
            try:
                llvm.load_library_permanently(path)
            except RuntimeError:  # pragma: no cover - already part of the process
                pass


def _set_wait_policy() -> None:
    """Idle pool threads spin for ``Settings.thread_spin_count`` rounds (about a millisecond), then sleep, unless
    the user chose otherwise (``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``). Measured on 2 cores: sleeping at once
    costs a wake-up per parallel loop, which made ResNet-50 1.5x onnxruntime's latency where a short spin gives
    1.25x; spinning without limit starves numpy's BLAS threads, the compiler and other processes. libgomp reads
    the variables once, when it is loaded, so this runs just before loading it."""
    from tcomp import config

    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        spin = config.current().thread_spin_count
        if spin <= 0:
            os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        else:
            os.environ["GOMP_SPINCOUNT"] = str(spin)


@functools.cache
def openmp_available() -> bool:
    """Load libgomp for JIT'd code; True when its ``GOMP_parallel`` can be called. Warns once when missing."""
    path = ctypes.util.find_library("gomp")
    if path is not None:
        _set_wait_policy()
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
