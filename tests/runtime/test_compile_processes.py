"""Compile processes (``tcomp.runtime.llvm_pool``): kernels compiled beside the compiler are the kernels it would
compile itself; a process that stops on a kernel fails that kernel only; one that cannot serve is not used."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

import tcomp
from tcomp import config, te
from tcomp.runtime import llvm_pool, llvm_toolchain, llvm_worker
from tcomp.target import as_target

GOOD_IR = 'define i32 @seven() {\n  ret i32 7\n}\n'


def _kernel() -> tcomp.runtime.Module:
    """exp over 1001 elements in a parallel loop: a call into libm and into the parallel runtime."""
    n = 1001
    a = te.placeholder((n,), name="a")
    b = te.compute((n,), lambda i: te.exp(a[i]) * 2.0, name="b")
    s = tcomp.schedule.create_schedule(b.op)
    outer, _ = s[b].split(b.op.axis[0], factor=64)
    s[b].parallel(outer)
    return tcomp.build(s, [a, b], target="llvm")


def _fake_worker(tmp_path: Path, loop_body: str) -> Path:
    """A compile process script that announces this process's LLVM and runs ``loop_body`` (Python lines indented
    by 4) for each request, with ``header``, ``ir`` and ``out`` (its stdout) set."""
    script = tmp_path / "worker.py"
    script.write_text(
        "import os, sys\n"
        f"sys.path.insert(0, {str(Path(llvm_worker.__file__).parent)!r})\n"
        "import llvm_worker\n"
        "out = sys.stdout.buffer\n"
        "llvm_worker.write_frame(out, {'version': llvm_worker.llvm_version()})\n"
        "while (frame := llvm_worker.read_frame(sys.stdin.buffer)) is not None:\n"
        "    header, parts = frame\n"
        "    ir = parts[0].decode()\n" + loop_body)
    return script


def test_kernels_compiled_in_processes_are_those_compiled_here() -> None:
    a = np.random.default_rng(0).random(1001, dtype=np.float32)
    texts = []
    for processes in (2, 0):
        with config.override(compile_processes=processes, build_cache=False):
            module = _kernel()
            out = np.zeros_like(a)
            module(a, out)
            np.testing.assert_allclose(out, np.exp(a) * 2.0, rtol=1e-6)
            ll, obj = module.artifact.compiled.result()
            assert (obj is not None) == (processes == 2)  # a process hands over machine code; here the JIT makes it
            texts.append(ll)
    assert texts[0] == texts[1]


def test_a_process_that_stops_on_a_kernel_fails_that_kernel_only(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llvm_pool, "WORKER_SCRIPT", _fake_worker(tmp_path, (
        "    if 'abort' in ir:\n"
        "        sys.stderr.write('LLVM ERROR: cannot select\\n'); sys.stderr.flush(); os.abort()\n"
        "    ll, obj = llvm_worker.compile_object(ir, header['cpu'], header['features'], header['triple'])\n"
        "    llvm_worker.write_frame(out, {}, (ll.encode(), obj))\n")))
    pool = llvm_pool.CompilePool(1, llvm_worker.llvm_version())
    target = as_target("llvm")
    try:
        stopped = pool.submit("; abort\n" + GOOD_IR, target.mcpu, target.features, llvm_toolchain.process_triple())
        with pytest.raises(llvm_pool.CompileProcessError, match="stopped on this kernel.*SIGABRT.*cannot select"):
            stopped.result(timeout=120)
        ll, obj = pool.submit(GOOD_IR, target.mcpu, target.features,
                              llvm_toolchain.process_triple()).result(timeout=120)  # a new process
        assert "@seven" in ll and obj
    finally:
        pool.close()


def test_ir_that_llvm_refuses_is_an_error_and_the_process_serves_on() -> None:
    pool = llvm_pool.CompilePool(1, llvm_worker.llvm_version())
    target = as_target("llvm")
    triple = llvm_toolchain.process_triple()
    try:
        with pytest.raises(RuntimeError, match="parsing error"):
            pool.submit("define i32 @broken( {", target.mcpu, target.features, triple).result(timeout=120)
        ll, _ = pool.submit(GOOD_IR, target.mcpu, target.features, triple).result(timeout=120)
        assert "ret i32 7" in ll
    finally:
        pool.close()


def test_a_process_with_another_llvm_leaves_kernels_to_this_one(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "other.py"
    script.write_text("import sys, json, struct\n"
                      "data = json.dumps({'version': 'llvmlite 0.0, LLVM 1.0', 'parts': 0}).encode()\n"
                      "sys.stdout.buffer.write(struct.pack('<Q', len(data)) + data); sys.stdout.flush()\n"
                      "sys.stdin.read()\n")
    monkeypatch.setattr(llvm_pool, "WORKER_SCRIPT", script)
    monkeypatch.setattr(llvm_pool, "_POOL", None)
    monkeypatch.setattr(llvm_pool, "_BROKEN", False)
    with config.override(compile_processes=2, build_cache=False):
        module = _kernel()
        a = np.ones(1001, np.float32)
        out = np.zeros_like(a)
        module(a, out)
    np.testing.assert_allclose(out, np.exp(a) * 2.0, rtol=1e-6)
    assert module.artifact.compiled.result()[1] is None and llvm_pool._BROKEN
    llvm_pool._POOL.close()


@pytest.mark.parametrize("stream, message", [
    (llvm_worker.LENGTH.pack(llvm_pool.llvm_worker.MAX_FRAME + 1), "broken"),
    (llvm_worker.LENGTH.pack(2) + b"[]", "header object"),
    (llvm_worker.LENGTH.pack(12) + b'{"parts": 1}', "ended inside a frame"),
])
def test_broken_frames_are_errors(stream: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        llvm_worker.read_frame(io.BytesIO(stream))


def test_a_frame_round_trips() -> None:
    buffer = io.BytesIO()
    llvm_worker.write_frame(buffer, {"cpu": "x"}, (b"ir", b"\0obj"))
    buffer.seek(0)
    assert llvm_worker.read_frame(buffer) == ({"cpu": "x", "parts": 2}, [b"ir", b"\0obj"])
    assert llvm_worker.read_frame(buffer) is None


@pytest.mark.parametrize("executable", ["/opt/app/bin/editor", ""])
def test_an_interpreter_embedded_in_an_application_compiles_here(executable: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """``sys.executable`` of an application that embeds Python is the application: it is never started."""
    monkeypatch.setattr("sys.executable", executable)
    with config.override(compile_processes=2, build_cache=False):
        assert llvm_pool.pool() is None
        module = _kernel()
    a = np.ones(1001, np.float32)
    out = np.zeros_like(a)
    module(a, out)
    np.testing.assert_allclose(out, np.exp(a) * 2.0, rtol=1e-6)
    assert module.artifact.compiled.result()[1] is None
