"""Golden-text checks for loop-IR passes: a pass applied to a small program prints exactly the expected text.

``assert_ir(func, expected)`` compares ``str(func)`` with ``expected`` (dedented, surrounding blank lines dropped),
showing both in full when they differ. The expected texts are the passes' documentation by example: each test
file is named after its pass and shows its rewrite on the smallest program that has it.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import tcomp
from tcomp import te
from tcomp.ir.stmt import PrimFunc
from tcomp.schedule.schedule import Schedule
from tcomp.te.tensor import Tensor
from tcomp.transform.bind_threads import bind_threads
from tcomp.transform.double_buffer import ATTR as DOUBLE_BUFFER
from tcomp.transform.flatten import flatten_buffers
from tcomp.transform.simplify import simplify_func
from tcomp.transform.split_host_device import split_host_device


def assert_ir(func: PrimFunc, expected: str) -> None:
    actual = str(func).strip("\n")
    wanted = textwrap.dedent(expected).strip("\n")
    assert actual == wanted, f"\n--- expected ---\n{wanted}\n--- printed ---\n{actual}"


def loop_nest(schedule: Schedule, args: Sequence[Tensor], name: str) -> PrimFunc:
    """The ``tir`` stage: the loop nest straight from the schedule."""
    return tcomp.lower(schedule, args, name, simple_mode=True)


def flat(schedule: Schedule, args: Sequence[Tensor], name: str) -> PrimFunc:
    """The loop nest simplified and flattened (one index per access), as the passes after flattening take it."""
    return simplify_func(flatten_buffers(simplify_func(loop_nest(schedule, args, name))))


def gpu_kernels(schedule: Schedule, args: Sequence[Tensor], name: str) -> tuple[PrimFunc, ...]:
    """The kernels of a GPU schedule as the kernel passes take them: the CUDA backend's ``tir.opt`` stage split by
    ``split_host_device``, each with the function's ``double_buffer`` attribute."""
    func = tcomp.lower(schedule, args, name, target="cuda")
    kernels = split_host_device(func).kernels
    return tuple(kernel.with_attr(DOUBLE_BUFFER, func.attr(DOUBLE_BUFFER, ())) for kernel in kernels)


def shared_row_sum(double_buffer: bool = False) -> PrimFunc:
    """``B[i] = sum_k A[i, k]`` with ``A`` fetched tile by tile into shared memory by the block's 8 threads."""
    A = te.placeholder((8, 32), name="A")
    k = te.reduce_axis((0, 32), name="k")
    B = te.compute((8,), lambda i: te.sum(A[i, k], axis=k), name="B")
    s = tcomp.create_schedule(B)
    shared = s.cache_read(A, "shared", [B])
    k_outer, _ = s[B].split(s[B].op.reduce_axis[0], factor=4)
    s[B].bind(s[B].op.axis[0], te.thread_axis("threadIdx.x"))
    s[shared].compute_at(s[B], k_outer)
    _, thread = s[shared].split(s[shared].fuse(*s[shared].op.axis), factor=8)
    s[shared].bind(thread, te.thread_axis("threadIdx.x"))
    if double_buffer:
        s[shared].double_buffer()
    (kernel,) = gpu_kernels(s, [A, B], "rowsum")
    return bind_threads(kernel)
