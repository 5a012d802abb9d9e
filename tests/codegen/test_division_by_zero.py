"""Integer division and remainder by zero never raise a signal.

By default a zero divisor gives 0, numpy's result. In checked mode (and in the kernels of ONNX models, see
tests/graph/test_division_by_zero.py) LLVM code checks every divisor that is not a non-zero constant (one branch per
division) and fails the call with a ``KernelError`` naming the expression; a guarded division
(``if_then_else(b != 0, a // b, ...)``) runs only where its guard holds. CUDA C (in emulation here) gives 0, as a
kernel has no error channel. These calls killed the interpreter with SIGFPE before, so each runs in a child process.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable

import numpy as np
import pytest

import tcomp
from tcomp import te
from tcomp.ir.expr import truncdiv, truncmod
from tcomp.runtime import Module
from tcomp.runtime.cuda_device import gpu_available

N = 37  # no multiple of a vector width

_CHILD = textwrap.dedent("""
    import numpy as np
    import tcomp
    from tcomp import te
    from tcomp.ir.expr import truncdiv, truncmod
    from tcomp.runtime import KernelError

    OPS = {{"//": lambda a, b: a // b, "%": lambda a, b: a % b, "truncdiv": truncdiv, "truncmod": truncmod}}
    n = {n}
    for dtype, op, vector, checked in {cases}:
        A = te.placeholder((n,), dtype, name="A")
        B = te.placeholder((n,), dtype, name="B")
        C = te.compute((n,), lambda i: OPS[op](A[i], B[i]), name="C")
        s = tcomp.create_schedule(C)
        if vector:
            s[C].vectorize(s[C].split(C.op.axis[0], factor=8)[1])
        mod = tcomp.build(s, [A, B, C], check_bounds=checked)
        a = np.arange(n).astype(dtype)
        b = np.ones(n, dtype)
        b[n - 3] = 0
        c = np.full(n, 7, dtype)
        try:
            mod(a, b, c)
            print(dtype, op, vector, checked, "result", c[n - 3], flush=True)
        except KernelError as exc:
            print(dtype, op, vector, checked, "KernelError:", exc, flush=True)
""")


def _run_child(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)


def test_zero_divisor_gives_zero_or_a_kernel_error_never_a_signal() -> None:
    cases = [(dtype, op, vector, checked) for dtype in ("int32", "int64", "uint8", "int8")
             for op in ("//", "%", "truncdiv", "truncmod") for vector in (False, True) for checked in (False, True)]
    child = _run_child(_CHILD.format(n=N, cases=cases))
    assert child.returncode == 0, f"the child died (status {child.returncode}): {child.stderr[-2000:]}"
    lines = child.stdout.strip().splitlines()
    assert len(lines) == len(cases)
    for line in lines:
        if line.split()[3] == "True":  # checked mode
            assert "KernelError: integer division by zero in " in line, line
        else:
            assert line.endswith("result 0"), line
    assert any("A[i] // B[i]" in line for line in lines)
    assert any("truncmod(A[i], B[i])" in line for line in lines)


def _divide(dtype: str, body: Callable[[te.Tensor, te.Tensor], object], vector: bool = False,
            checked: bool = False) -> Module:
    A, B = te.placeholder((N,), dtype, name="A"), te.placeholder((N,), dtype, name="B")
    C = te.compute((N,), lambda i: body(A[i], B[i]), name="C")
    s = tcomp.create_schedule(C)
    if vector:
        s[C].vectorize(s[C].split(C.op.axis[0], factor=8)[1])
    return tcomp.build(s, [A, B, C], check_bounds=checked)


@pytest.mark.parametrize("vector", [False, True])
def test_guarded_division_runs_only_where_the_guard_holds(vector: bool) -> None:
    mod = _divide("int32", lambda a, b: te.if_then_else(b != 0, a // b, a * 0 - 1), vector, checked=True)
    a, b = np.arange(N, dtype=np.int32) - 5, np.arange(N, dtype=np.int32) % 4 - 1
    c = np.empty(N, np.int32)
    mod(a, b, c)
    safe = np.where(b == 0, 1, b)
    np.testing.assert_array_equal(c, np.where(b != 0, a // safe, -1))


def test_constant_divisors_are_not_checked() -> None:
    mod = _divide("int32", lambda a, b: a // 3 + b % 5 + truncdiv(a, 7) + truncmod(b, -2), checked=True)
    assert not any("division by zero" in info.message for info in mod.artifact.asserts)
    a, b = np.arange(N, dtype=np.int32) - 9, np.arange(N, dtype=np.int32) - 20
    c = np.empty(N, np.int32)
    mod(a, b, c)
    np.testing.assert_array_equal(c, a // 3 + b % 5 + np.trunc(a / 7).astype(np.int32) + np.fmod(b, -2))


def test_nonzero_divisors_give_numpy_results() -> None:
    mod = _divide("int64", lambda a, b: a // b + a % b)
    a = np.array([np.iinfo(np.int64).min, -7, 7, -7, 7] * 8)[:N].astype(np.int64)
    b = np.array([-1, 2, -2, -3, 3] * 8)[:N].astype(np.int64)
    c = np.empty(N, np.int64)
    mod(a, b, c)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(c, a // b + a % b)


_CUDA_CHILD = textwrap.dedent("""
    import numpy as np
    import tcomp
    from tcomp import te
    n = 300
    for dtype in ("int32", "int64", "uint32"):
        A = te.placeholder((n,), dtype, name="A")
        B = te.placeholder((n,), dtype, name="B")
        C = te.compute((n,), lambda i: A[i] // B[i] + A[i] % B[i], name="C")
        s = tcomp.create_schedule(C)
        outer, inner = s[C].split(C.op.axis[0], factor=64)
        s[C].bind(outer, te.thread_axis("blockIdx.x"))
        s[C].bind(inner, te.thread_axis("threadIdx.x"))
        mod = tcomp.build(s, [A, B, C], target="cuda")
        a = np.arange(n).astype(dtype)
        b = (np.arange(n) % 3).astype(dtype)
        c = np.full(n, 99, dtype)
        mod(a, b, c)
        with np.errstate(divide="ignore"):
            want = a // b + a % b
        print(dtype, np.array_equal(c, want), flush=True)
""")


@pytest.mark.skipif(gpu_available(), reason="checks the CPU emulation")
def test_cuda_zero_divisor_gives_numpy_zero_in_emulation() -> None:
    child = _run_child(_CUDA_CHILD)
    assert child.returncode == 0, f"the child died (status {child.returncode}): {child.stderr[-2000:]}"
    assert child.stdout.split() == ["int32", "True", "int64", "True", "uint32", "True"]
