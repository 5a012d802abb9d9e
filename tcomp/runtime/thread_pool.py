"""The thread pools that run parallel loops.

Kernels compiled by tcomp call ``tcomp_parallel_for`` (``pool_ir.py``: dynamic scheduling, the caller works too,
workers spin and then sleep, loops run serially for a while after one that lost to serial). ``parallel_runtime()``
JIT-compiles that pool once per process and offers its symbol to every JIT'd kernel; an exported library links its
own copy. ``configure_pool`` changes its policy at run time; ``ParallelRuntime.state`` tells how often it backed off.

libgomp is still loaded for the CUDA emulation's OpenMP code (``openmp_available``): ``GOMP_parallel`` there.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import threading
import warnings
from dataclasses import dataclass, replace

import llvmlite.binding as llvm

from tcomp import config
from tcomp.runtime import llvm_toolchain
from tcomp.runtime.pool_ir import CONFIGURE, ENTRY, JUDGE, STATE, PoolPolicy, pool_module
from tcomp.target import Target


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
    """Idle pool threads spin for ``Settings.thread_spin_count`` rounds (3000 ``pause`` rounds: from a few
    microseconds on Zen 1 to about 0.1 ms on recent Intel cores, longer than the gap between two kernels), then
    sleep, unless the user chose otherwise (``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``). Measured on 2 cores:
    sleeping at once costs a wake-up per parallel loop, which made ResNet-50 1.5x onnxruntime's latency where a
    short spin gives 1.25x; spinning without limit starves numpy's BLAS threads, the compiler and other processes.
    30000 rounds against 3000, interleaved in one process on a busy znver1 with one more busy process: medians
    ShuffleNet 75 -> 66 and 39 -> 29 ms, SqueezeNet 124 -> 96, MobileNetV2 107 -> 95, ResNet-50 979 -> 939 (the
    spinning workers took the time slices the caller needed); idle no worse. libgomp reads
    the variables once, when it is loaded, so this runs just before loading it."""
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
        "libgomp was not found: the CUDA emulation will run each kernel's blocks on one thread",
        RuntimeWarning,
        stacklevel=2,
    )
    return False


def pool_source(triple: str, policy: PoolPolicy) -> str:
    """The pool's LLVM assembly for ``triple`` with ``policy``."""
    return pool_module(triple, policy)


@dataclass(frozen=True)
class PoolState:
    """The pool's serial backoff: ``streak`` loops lost to serial in a row, running serially until ``serial_until``
    (monotonic nanoseconds, ``time.monotonic_ns``); ``lost_loops`` and ``serial_loops`` count the loops that lost
    and the loops run serially by a backoff since the pool was compiled."""

    streak: int
    serial_until: int
    lost_loops: int
    serial_loops: int


class ParallelRuntime:
    """The JIT-compiled pool of this process: ``address`` is ``tcomp_parallel_for``'s."""

    def __init__(self, policy: PoolPolicy) -> None:
        load_system_libraries()
        target = Target.current_host()
        ll = pool_source(llvm_toolchain.process_triple(), policy)
        self._jit = llvm_toolchain.JITFunction(ll, ENTRY, target)
        # the workers run the pool's code until the process ends: its engine must never be freed, not even while
        # the interpreter shuts down (an idle worker still spinning would jump into unmapped memory)
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(self._jit))
        self.address = self._jit.address
        configure_type = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                                          ctypes.c_int32, ctypes.c_int64, ctypes.c_int32)
        self._configure = configure_type(self._jit.address_of(CONFIGURE))
        self._judge = ctypes.CFUNCTYPE(ctypes.c_int32, *[ctypes.c_int64] * 5)(self._jit.address_of(JUDGE))
        self._state = ctypes.CFUNCTYPE(None, ctypes.POINTER(ctypes.c_int64))(self._jit.address_of(STATE))
        self.policy = policy
        llvm.add_symbol(ENTRY, self.address)

    def configure(self, policy: PoolPolicy) -> None:
        """Use ``policy`` from the next parallel loop on (waits while a loop runs)."""
        while self._configure(*policy.values()) != 0:
            os.sched_yield()
        self.policy = policy

    def state(self) -> PoolState:
        values = (ctypes.c_int64 * 4)()
        self._state(values)
        return PoolState(*values)

    def judge(self, start: int, own_done: int, end: int, mine: int, count: int) -> None:
        """Judge a parallel loop of these times (monotonic ns: published, the caller's own tasks done, every task
        done) in which the caller ran ``mine`` of ``count`` tasks, as the pool judges each of its loops."""
        while self._judge(start, own_done, end, mine, count) != 0:
            os.sched_yield()


def parallel_runtime_available() -> bool:
    """True where the pool can run (POSIX threads); elsewhere parallel loops are emitted as serial loops."""
    return os.name == "posix"


_RUNTIME_LOCK = threading.Lock()
_RUNTIME: ParallelRuntime | None = None


def default_policy() -> PoolPolicy:
    settings = config.current()
    return PoolPolicy(settings.parallel_tasks_per_thread, settings.thread_spin_count, settings.join_spin_count,
                      settings.parallel_thread_limit, settings.parallel_backoff_us, settings.pin_threads)


def parallel_runtime() -> ParallelRuntime:
    """The process's pool, compiled on first use with the settings' policy (``tcomp.config``)."""
    global _RUNTIME
    with _RUNTIME_LOCK:
        if _RUNTIME is None:
            _RUNTIME = ParallelRuntime(default_policy())
        return _RUNTIME


def pool_started() -> bool:
    """Whether this process's pool is compiled (its policy is then changed by ``configure_pool``, no longer by the
    settings)."""
    return _RUNTIME is not None


def configure_pool(**changes: int | bool) -> PoolPolicy:
    """Change fields of the pool's policy for this process (``configure_pool(tasks_per_thread=8)``; see
    ``PoolPolicy``); returns the new policy."""
    runtime = parallel_runtime()
    policy = replace(runtime.policy, **changes)
    runtime.configure(policy)
    return policy
