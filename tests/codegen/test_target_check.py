"""CPU names and features are checked against LLVM's lists before LLVM sees them, and no target string can abort
the interpreter: bad names are refused with the closest matches, CPUs LLVM cannot generate x86-64 code for are
refused with LLVM's reason, and code for a CPU with vector features this one lacks is refused before it runs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import tcomp
from tcomp import te
from tcomp.target import Target, TargetError
from tcomp.target_check import llvm_catalog

X86_64 = llvm_catalog().triple.startswith("x86_64")
needs_x86 = pytest.mark.skipif(not X86_64, reason="the CPU names below are x86-64 ones")


@pytest.mark.parametrize("text, pattern", [
    ("llvm -mcpu=foo", r"-mcpu: LLVM knows no CPU 'foo' for .*tcomp target --list"),
    ("llvm -mattr=+definitely-not-a-feature", r"-mattr: LLVM knows no feature 'definitely-not-a-feature'"),
])
def test_unknown_names_are_refused(text: str, pattern: str) -> None:
    with pytest.raises(TargetError, match=pattern):
        Target(text)


@needs_x86
def test_close_matches_are_listed() -> None:
    with pytest.raises(TargetError, match=r"closest: .*znver3"):
        Target("llvm -mcpu=znver")
    with pytest.raises(TargetError, match=r"closest: avx, avx2"):
        Target("llvm -mattr=+avx3")


@needs_x86
@pytest.mark.parametrize("text", ["llvm -mcpu=i386", "llvm -mcpu=x86-64 -mattr=-sse,-sse2"])
def test_cpus_llvm_cannot_compile_for_are_refused_with_its_reason(text: str) -> None:
    with pytest.raises(TargetError, match=r"LLVM cannot generate code for .*: .*(64-bit|SSE)"):
        Target(text)


@needs_x86
def test_another_cpu_has_the_vector_features_llvm_uses_for_it() -> None:
    haswell = Target("llvm -mcpu=haswell")
    assert (haswell.vector_bits, haswell.has_feature("fma"), haswell.has_feature("avx512f")) == (256, True, False)
    assert Target("llvm -mcpu=skylake-avx512").vector_bits == 512
    assert Target("llvm -mcpu=x86-64").vector_bits == 128


@needs_x86
def test_code_for_a_cpu_with_features_this_one_lacks_is_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    import tcomp.target as target_module

    host = target_module.host_cpu_features()
    without_avx512 = ",".join(f for f in host.split(",") if not f[1:].startswith("avx512")) + ",-avx512f"
    monkeypatch.setattr(target_module, "host_cpu_features", lambda: without_avx512)
    foreign = Target("llvm -mcpu=skylake-avx512")
    assert foreign.missing_here() == ("avx512f",)
    n = 64
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: A[i] * 2.0, name="B")
    mod = tcomp.build(tcomp.create_schedule(B), [A, B], target=foreign)
    assert "zmm" in mod.get_source("asm") or "ymm" in mod.get_source("asm")  # printing it is fine
    with pytest.raises(TargetError, match="uses avx512f, which this machine's CPU .* lacks"):
        mod(np.ones(n, np.float32), np.empty(n, np.float32))


@needs_x86
def test_features_added_to_this_cpu_are_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """``-mattr=+avx512f`` on the host's own CPU name: the code uses AVX-512, so a CPU without it must not run it."""
    import tcomp.target as target_module

    host = target_module.host_cpu_features()
    without_avx512 = ",".join(f for f in host.split(",") if not f[1:].startswith("avx512")) + ",-avx512f"
    monkeypatch.setattr(target_module, "host_cpu_features", lambda: without_avx512)
    assert Target("llvm").missing_here() == ()
    assert Target("llvm -mattr=-avx512f").missing_here() == ()
    widened = Target("llvm -mattr=+avx512f")
    assert widened.vector_bits == 512 and widened.missing_here() == ("avx512f",)
    with pytest.raises(TargetError, match="uses avx512f"):
        widened.check_runs_here()


_BUILD_WITH_BAD_TARGETS = """
import tcomp
from tcomp import te
A = te.placeholder((8,), name="A")
B = te.compute((8,), lambda i: A[i] + 1.0, name="B")
for text in ("llvm -mcpu=foo", "llvm -mcpu=i386", "llvm -mattr=+nope"):
    try:
        tcomp.build(tcomp.create_schedule(B), [A, B], target=text)
        print("BUILT", text)
    except ValueError as exc:
        print("REFUSED", type(exc).__name__, text)
print("ALIVE")
"""


def _child(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300)


def test_build_with_bad_cpu_names_does_not_abort_the_interpreter() -> None:
    result = _child(["-c", _BUILD_WITH_BAD_TARGETS])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "LLVM ERROR" not in result.stdout + result.stderr
    assert "BUILT" not in result.stdout and result.stdout.count("REFUSED TargetError") == 3
    assert result.stdout.rstrip().endswith("ALIVE")


_COMMANDS_WITH_BAD_TARGETS = """
import sys
from tcomp.cli import main
for argv in (["target", "llvm -mcpu=foo"],
             ["tune", "--op", "matmul", "--shape", "8,8,8", "--target", "llvm -mcpu=i386"],
             ["compile", "missing.onnx", "--target", "llvm -mcpu=foo", "-o", "out"]):
    status = main(argv)
    sys.stderr.flush()
    print("STATUS", status, flush=True)
"""


def test_commands_refuse_bad_cpu_names_cleanly(tmp_path) -> None:
    result = subprocess.run([sys.executable, "-c", _COMMANDS_WITH_BAD_TARGETS], capture_output=True, text=True,
                            timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["STATUS", "2", "STATUS", "2", "STATUS", "1"]
    assert "LLVM ERROR" not in result.stderr and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 3 and all("-mcpu" in line for line in lines)
