"""Test templates with a ``fault`` knob: each fault value makes the config fail in one specific way.

Kernel faults are real compiled kernels (a read gigabytes out of bounds, a call of libc's ``abort``, a loop nest
that never ends, a wrong formula) or a kernel whose input shape differs from the task's, so the call raises; builder
faults run in the template itself (in the builder process). Index 0
of each space (and the fallback) is the healthy config. Worker processes import this module by name, which works
because pytest puts this directory on ``sys.path`` and spawned workers inherit it.
"""

from __future__ import annotations

import ctypes
import enum
import os
import time
from typing import Any

import numpy as np

from tcomp import te
from tcomp.autotune import template
from tcomp.ir.expr import call_pure
from tcomp.schedule import create_schedule
from tcomp.te.intrin import call_extern

SIZE = 16


class Fault(enum.Enum):
    NONE = "none"
    SEGFAULT = "segfault"  # kernel reads far outside its input
    ABORT = "abort"  # kernel calls abort()
    HANG = "hang"  # kernel loops for hours
    RUN_EXCEPTION = "run_exception"  # the kernel's input has another shape: the call raises
    WRONG = "wrong"  # kernel computes something else
    BUILD_ERROR = "build_error"  # code generation rejects an unknown intrinsic
    INVALID = "invalid"  # a schedule primitive rejects the config
    BUILD_SEGFAULT = "build_segfault"  # the builder process dies of SIGSEGV
    BUILD_ABORT = "build_abort"  # the builder process aborts
    BUILD_HANG = "build_hang"  # the template sleeps


KERNEL_FAULTS = [Fault.NONE, Fault.SEGFAULT, Fault.ABORT, Fault.HANG, Fault.RUN_EXCEPTION, Fault.WRONG,
                 Fault.BUILD_ERROR, Fault.INVALID]
ALL_FAULTS = KERNEL_FAULTS + [Fault.BUILD_SEGFAULT, Fault.BUILD_ABORT, Fault.BUILD_HANG]


def reference(inputs: list[np.ndarray], n: int, faults: Any = None) -> list[np.ndarray]:
    return [inputs[0] * 2.0]


def _faulty(cfg: Any, n: int, faults: list[str]) -> Any:
    fault = Fault(cfg.define_knob("fault", faults).val)
    split = cfg.define_split("tile", n, 2)
    A = te.placeholder((n + 1,) if fault is Fault.RUN_EXCEPTION else (n,), name="A")
    if fault is Fault.SEGFAULT:
        B = te.compute((n,), lambda i: A[i + 600_000_000] * 2.0, name="B")
    elif fault is Fault.HANG:
        r1 = te.reduce_axis((0, 1 << 30), name="r1")
        r2 = te.reduce_axis((0, 1 << 30), name="r2")
        B = te.compute((n,), lambda i: te.sum(A[(i + r1 + r2) % n], axis=[r1, r2]), name="B")
    elif fault is Fault.ABORT:
        B = te.compute((n,), lambda i: A[i] * 2.0 + te.cast(call_extern("int32", "abort"), "float32"), name="B")
    elif fault is Fault.WRONG:
        B = te.compute((n,), lambda i: A[i] * 2.0 + 1.0, name="B")
    elif fault is Fault.BUILD_ERROR:
        B = te.compute((n,), lambda i: call_pure("no_such_intrinsic", A[i], dtype="float32"), name="B")
    else:
        B = te.compute((n,), lambda i: A[i] * 2.0, name="B")
    s = create_schedule(B)
    outer, inner = split.apply(s[B], B.op.axis[0])
    if fault is Fault.INVALID:
        s[B].fuse(inner, outer)  # not adjacent in this order: a ScheduleError
    if fault is Fault.BUILD_SEGFAULT:
        ctypes.string_at(0)
    elif fault is Fault.BUILD_ABORT:
        os.abort()
    elif fault is Fault.BUILD_HANG:
        time.sleep(3600)
    return s, [A, B]


@template("test_faulty", reference=reference)
def faulty(cfg: Any, n: int, faults: Any = None) -> Any:
    """``B = 2 * A`` unless the ``fault`` knob says otherwise. ``faults``: the fault values in the space."""
    return _faulty(cfg, n, list(faults) if faults else [f.value for f in KERNEL_FAULTS])


@template("test_scale")
def scale(cfg: Any, n: int) -> Any:
    """``B = 2 * A`` with a split knob and no numpy reference (checked against the naive default schedule)."""
    split = cfg.define_split("tile", n, 2)
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: A[i] * 2.0, name="B")
    s = create_schedule(B)
    split.apply(s[B], B.op.axis[0])
    return s, [A, B]


# -- jobs for IsolatedPool tests (module level, so worker processes find them by name) ---------------------------------
def job_square(x: int) -> int:
    return x * x


def job_sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def job_raise(message: str) -> None:
    raise ValueError(message)


def job_kill(signal_number: int) -> None:
    os.kill(os.getpid(), signal_number)
    time.sleep(10)


def job_hang_with_child(pid_file: str) -> None:
    """Start a grandchild process, note its pid, then hang: a timeout must kill both."""
    import subprocess

    child = subprocess.Popen(["sleep", "300"])
    with open(pid_file, "w") as handle:
        handle.write(str(child.pid))
    time.sleep(300)
