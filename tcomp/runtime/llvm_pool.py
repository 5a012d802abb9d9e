"""Compile processes: LLVM's optimization and code generation of kernels beside the compiler, on the other cores.

llvmlite serializes every call into LLVM within a process, and a model's kernels spend most of their compile time
in LLVM, so one process compiles one kernel at a time however many cores it has. ``CompilePool.submit`` hands a
kernel's IR to one of a few compile processes (``llvm_worker.py`` run as a script: llvmlite only, no tcomp, so a
process starts in a fraction of a second and never imports the user's program) and returns a future of its
optimized IR and object file. The compiler lowers the next kernel while the processes compile; the JIT engine
then only loads each object (``llvm_toolchain.JITFunction``).

``Settings.compile_processes`` sets how many (-1: one per core, at most ``MAX_PROCESSES``, none on one core;
0: none, every kernel compiles in the compiler's process, as it also does where the processes cannot start or
their LLVM is not the compiler's). A process that dies while compiling (LLVM stopped on a kernel) fails that
kernel's future with an error that says so and is started again; the compiler's process lives on. The processes
exit when the compiler's process does (their stdin closes).
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import os
import queue
import select
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tcomp import config
from tcomp.runtime import llvm_worker
from tcomp.runtime.errors import exit_reason
from tcomp.target import host_num_cores

MAX_PROCESSES = 4
WORKER_SCRIPT = Path(llvm_worker.__file__)  # run as a script: see llvm_worker.py
STARTUP_SECONDS = 60.0  # a process that has not said its version by then is not used
JOBS_PER_PROCESS = 256  # then a fresh process: LLVM keeps memory from every kernel it compiled (its pass builders)


class CompileProcessError(RuntimeError):
    """A compile process stopped while it compiled a kernel (LLVM aborted on it)."""


class StartFailure(CompileProcessError):
    """A compile process could not start, or its LLVM is not this process's: the kernel compiles here."""


@dataclass(frozen=True)
class _Job:
    ll_unopt: str
    cpu: str
    features: str
    triple: str
    future: cf.Future[tuple[str, bytes]]


class _Process:
    """One compile process and the thread that feeds it jobs from the pool's queue, one at a time."""

    def __init__(self, jobs: queue.SimpleQueue[_Job | None], expected_version: str) -> None:
        self.jobs = jobs
        self.expected_version = expected_version
        self.process: subprocess.Popen[bytes] | None = None
        self.errors: IO[bytes] | None = None
        self.served = 0
        self.start_failure: str | None = None  # then every job is left to the compiler's process at once

    def start(self) -> None:
        self.served = 0
        self.errors = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-P", str(WORKER_SCRIPT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.errors, start_new_session=True, close_fds=True)
        frame = _first_frame(self.process, STARTUP_SECONDS)
        version = frame[0].get("version") if frame is not None else None
        if version != self.expected_version:
            self.stop()
            raise StartFailure(f"the compile process has {version or 'no version'}; this process has "
                               f"{self.expected_version}")

    def stop(self) -> None:
        if self.process is not None:
            for stream in (self.process.stdin, self.process.stdout):
                try:
                    if stream is not None:
                        stream.close()
                except OSError:
                    pass
            try:
                self.process.kill()
                self.process.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
            self.process = None
        if self.errors is not None:
            self.errors.close()
            self.errors = None

    def serve(self) -> None:
        while (job := self.jobs.get()) is not None:
            if not job.future.set_running_or_notify_cancel():
                continue
            try:
                job.future.set_result(self.compile(job))
            except BaseException as exc:  # every failure belongs to the job's future
                job.future.set_exception(exc)
        self.stop()

    def compile(self, job: _Job) -> tuple[str, bytes]:
        if self.process is not None and (self.process.poll() is not None or self.served >= JOBS_PER_PROCESS):
            self.stop()  # it died between jobs, or has served its share
        if self.start_failure is not None:
            raise StartFailure(self.start_failure)
        if self.process is None:
            try:
                self.start()
            except (OSError, StartFailure) as exc:
                self.stop()
                self.start_failure = f"a compile process could not start: {exc}"
                mark_broken()
                raise StartFailure(self.start_failure) from None
        assert self.process is not None and self.process.stdin is not None and self.process.stdout is not None
        try:
            llvm_worker.write_frame(self.process.stdin, {"cpu": job.cpu, "features": job.features,
                                                         "triple": job.triple}, (job.ll_unopt.encode(),))
            frame = llvm_worker.read_frame(self.process.stdout)
        except (OSError, ValueError):
            frame = None
        if frame is None:
            raise CompileProcessError(self._death())
        self.served += 1
        header, parts = frame
        if "error" in header:
            raise RuntimeError(str(header["error"]))
        return parts[0].decode(), parts[1]

    def _death(self) -> str:
        """What stopped the process (its exit signal and the end of what it wrote to stderr); it is restarted for
        the next job."""
        assert self.process is not None
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        said = b""
        if self.errors is not None:
            self.errors.seek(0)
            said = self.errors.read()[-2000:]
        self.stop()
        text = said.decode(errors="replace").strip()
        return f"LLVM's compile process stopped on this kernel ({exit_reason(code)})" + (f": {text}" if text else "")


def _first_frame(process: subprocess.Popen[bytes], seconds: float) -> tuple[dict, list[bytes]] | None:
    """The process's first frame (its LLVM version), or None when it says nothing within ``seconds``."""
    assert process.stdout is not None
    readable, _, _ = select.select([process.stdout], [], [], seconds)
    if not readable:
        return None
    try:
        return llvm_worker.read_frame(process.stdout)
    except (OSError, ValueError):
        return None


class CompilePool:
    """A few compile processes fed from one queue; ``submit`` returns a future of ``(optimized IR, object)``."""

    def __init__(self, processes: int, expected_version: str) -> None:
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.processes = [_Process(self.jobs, expected_version) for _ in range(processes)]
        for index, process in enumerate(self.processes):
            threading.Thread(target=process.serve, name=f"tcomp-llvm-{index}", daemon=True).start()

    def submit(self, ll_unopt: str, cpu: str, features: str, triple: str) -> cf.Future[tuple[str, bytes]]:
        future: cf.Future[tuple[str, bytes]] = cf.Future()
        self.jobs.put(_Job(ll_unopt, cpu, features, triple, future))
        return future

    def close(self) -> None:
        for _ in self.processes:
            self.jobs.put(None)


_POOL: CompilePool | None = None
_POOL_PID = -1
_BROKEN = False
_POOL_LOCK = threading.Lock()


def process_count() -> int:
    """How many compile processes ``Settings.compile_processes`` asks for on this machine (0: none)."""
    asked = config.current().compile_processes
    if asked >= 0:
        return asked
    cores = host_num_cores()
    return min(cores, MAX_PROCESSES) if cores > 1 else 0  # one core: nothing to overlap


def _runs_python() -> bool:
    """Whether ``sys.executable`` is a Python interpreter that can run the compile process's script: not an
    application that embeds Python, nor a frozen one, which would start themselves."""
    name = Path(sys.executable or "").name.lower()
    return not getattr(sys, "frozen", False) and name.startswith(("python", "pypy"))


def pool() -> CompilePool | None:
    """The process's compile pool, started on first use; None where kernels compile in this process."""
    global _POOL, _POOL_PID
    count = process_count()
    if count == 0 or _BROKEN or not _runs_python():
        return None
    with _POOL_LOCK:
        if _POOL is None or _POOL_PID != os.getpid() or len(_POOL.processes) != count:
            if _POOL is not None and _POOL_PID == os.getpid():
                _POOL.close()
            _POOL = CompilePool(count, llvm_worker.llvm_version())
            _POOL_PID = os.getpid()
        return _POOL


def mark_broken() -> None:
    """Stop using compile processes in this process (they could not start): kernels compile here from now on."""
    global _BROKEN
    _BROKEN = True


@atexit.register
def _close() -> None:
    if _POOL is not None and _POOL_PID == os.getpid():
        _POOL.close()
