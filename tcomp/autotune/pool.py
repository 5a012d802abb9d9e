"""Run jobs in worker processes with a hard timeout per job; a job that hangs or kills its worker costs itself only.

``IsolatedPool.map(fn, items, timeout)`` returns one ``Outcome`` per item: ``OK`` (the value), ``ERROR`` (``fn``
raised, or its arguments or result could not be sent), ``TIMEOUT`` (killed after ``timeout`` seconds) or ``CRASH``
(the worker died, e.g. of SIGSEGV or SIGABRT). At most one job per worker is in flight, so a job starts as soon as
it is submitted and its deadline is exact. On a timeout or a crash the pool kills every worker's process tree
(each default worker leads its own process group) and starts fresh workers; jobs that were in flight beside the
culprit run again. After a crash with several jobs in flight, the suspects run again one at a time, so only the job
that crashes on its own is reported as ``CRASH``.

Workers die with the process that started them (a watchdog thread in each exits it when its parent is gone), so
killing the tuner, even with SIGKILL, leaves no worker behind.

The executor is pluggable: ``executor_factory(n_workers) -> concurrent.futures.Executor``. The default is a
``ProcessPoolExecutor`` with the ``spawn`` start method (libgomp's thread pool does not survive ``fork``). With
another executor (threads, a cluster client), timeouts still return ``TIMEOUT``, but stopping the stuck job is the
executor's business: the pool calls its ``kill_workers()`` when it has one, then ``shutdown(wait=False)``.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import enum
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from tcomp import config
from tcomp.runtime.errors import exit_reason

ExecutorFactory = Callable[[int], cf.Executor]


class StartMethod(enum.Enum):
    SPAWN = "spawn"
    FORKSERVER = "forkserver"


class OutcomeKind(enum.Enum):
    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"
    CRASH = "crash"


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    value: Any = None
    message: str = ""
    elapsed: float = 0.0


PARENT_CHECK_SECONDS = 0.2  # how often a worker checks that the process that started it is alive


def init_worker() -> None:
    """Runs first in every default worker: lead a process group (so the worker and anything it started can be
    killed together), leave Ctrl-C to the parent, which cleans up, and die with the parent: a watchdog thread
    exits the worker as soon as the process that started it is gone (a SIGKILL of the tuner, even of its whole
    process group, does not reach the workers, which lead their own groups). The resource tracker of
    ``multiprocessing`` then sees its pipe close and exits too."""
    try:
        os.setpgrp()
    except OSError:  # pragma: no cover - not permitted in some sandboxes
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    config.set_settings(compile_processes=0)  # the workers are the parallelism: each compiles its kernels itself
    watch_parent()


def watch_parent() -> None:
    """Exit this process (``os._exit``, no cleanup) once its parent process is gone. The parent is the tuner with
    the ``spawn`` start method, the fork server (which exits with the tuner) with ``forkserver``."""
    parent = os.getppid()
    if parent == 1:  # orphaned already: the parent died before this worker started
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="tcomp-parent-watchdog", daemon=True).start()


def ping() -> int:
    """A job that only makes a worker start: the first job of each worker unless the pool is given another."""
    return os.getpid()


def process_pool_factory(start_method: StartMethod = StartMethod.SPAWN) -> ExecutorFactory:
    def make(workers: int) -> cf.Executor:
        context = multiprocessing.get_context(start_method.value)
        return cf.ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=init_worker)

    return make


class IsolatedPool:
    """``workers`` processes (made by ``executor_factory``) running jobs with per-job timeouts. Each fresh worker
    first runs ``warm_up`` (within ``startup_timeout``), so that what it imports is not charged to a job's time."""

    def __init__(self, workers: int = 1, executor_factory: ExecutorFactory | None = None,
                 startup_timeout: float = 120.0, warm_up: Callable[[], Any] = ping) -> None:
        if workers < 1:
            raise ValueError(f"an IsolatedPool needs at least one worker, got {workers}")
        self.workers = workers
        self.executor_factory = executor_factory or process_pool_factory()
        self.startup_timeout = startup_timeout
        self.warm_up = warm_up
        self.generation = 0  # counts fresh executors: work cached in workers is gone when it changes
        self.restarts = 0
        self._executor: cf.Executor | None = None
        self._processes: list[Any] = []

    # -- lifecycle ---------------------------------------------------------------------------------------------------
    def _ensure(self) -> cf.Executor:
        if self._executor is None:
            executor = self.executor_factory(self.workers)
            self._executor = executor
            self.generation += 1
            pings = [executor.submit(self.warm_up) for _ in range(self.workers)]
            done, not_done = cf.wait(pings, timeout=self.startup_timeout)
            failed = [f for f in done if f.exception() is not None]
            if not_done or failed:
                self._discard()
                reason = "did not start in time" if not_done else repr(failed[0].exception())
                raise RuntimeError(f"measurement workers failed to start: {reason}")
            processes = getattr(executor, "_processes", None)
            self._processes = list(processes.values()) if isinstance(processes, dict) else []
        return self._executor

    def _discard(self) -> None:
        """Kill the workers (with their process groups) and drop the executor."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        kill = getattr(executor, "kill_workers", None)
        if callable(kill):
            try:
                kill()
            except Exception:  # noqa: BLE001 - best effort
                pass
        for process in self._processes:
            _kill_tree(process)
        executor.shutdown(wait=False, cancel_futures=True)
        for process in self._processes:
            join = getattr(process, "join", None)
            if callable(join):
                join(timeout=5)
        self._processes = []

    def restart(self) -> None:
        self._discard()
        self.restarts += 1

    def close(self) -> None:
        if self._executor is None:
            return
        executor, self._executor = self._executor, None
        executor.shutdown(wait=True, cancel_futures=True)
        self._processes = []

    def __enter__(self) -> IsolatedPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _crash_message(self) -> str:
        """Why the worker died: the signals or exit codes of dead workers, leaving out the SIGTERM the executor
        sends to the survivors when one dies."""
        codes = []
        deadline = time.perf_counter() + 2.0
        for process in self._processes:
            join = getattr(process, "join", None)
            if not callable(join):
                continue
            join(timeout=2)
            # a dead worker's pipes close a moment before its exit status can be collected
            while getattr(process, "exitcode", None) is None and time.perf_counter() < deadline:
                time.sleep(0.005)
            code = getattr(process, "exitcode", None)
            if code not in (None, 0):
                codes.append(exit_reason(code))
        causes = [c for c in codes if c != "SIGTERM"] or codes
        return "the worker process died" + (f" ({', '.join(sorted(set(causes)))})" if causes else "")

    # -- running -----------------------------------------------------------------------------------------------------
    def call(self, fn: Callable[..., Any], args: tuple[Any, ...], timeout: float) -> Outcome:
        return self.map(fn, [args], timeout)[0]

    def map(self, fn: Callable[..., Any], items: Sequence[tuple[Any, ...]], timeout: float) -> list[Outcome]:
        """Run ``fn(*item)`` for each item; see the module docstring for what each outcome means."""
        results: list[Outcome | None] = [None] * len(items)
        pending: collections.deque[int] = collections.deque(range(len(items)))
        suspects: collections.deque[int] = collections.deque()
        in_flight: dict[cf.Future[Any], tuple[int, float, bool]] = {}  # future -> (item, start, alone)
        while pending or suspects or in_flight:
            executor = self._ensure()
            alone_running = any(alone for _, _, alone in in_flight.values())
            if suspects and not in_flight:
                index = suspects.popleft()
                in_flight[executor.submit(fn, *items[index])] = (index, time.perf_counter(), True)
            elif not suspects and not alone_running:
                while pending and len(in_flight) < self.workers:
                    index = pending.popleft()
                    in_flight[executor.submit(fn, *items[index])] = (index, time.perf_counter(), False)
            next_deadline = min(start + timeout for _, start, _ in in_flight.values())
            done, _ = cf.wait(list(in_flight), timeout=max(0.0, next_deadline - time.perf_counter()),
                              return_when=cf.FIRST_COMPLETED)
            broken: list[tuple[int, bool]] = []
            for future in done:
                index, start, alone = in_flight.pop(future)
                elapsed = time.perf_counter() - start
                try:
                    results[index] = Outcome(OutcomeKind.OK, future.result(), elapsed=elapsed)
                except (BrokenProcessPool, cf.BrokenExecutor):
                    broken.append((index, alone))
                except Exception as error:  # noqa: BLE001 - the job's own failure, reported as its outcome
                    results[index] = Outcome(OutcomeKind.ERROR, message=f"{type(error).__name__}: {error}",
                                             elapsed=elapsed)
            if broken:
                self._after_crash(broken, in_flight, results, suspects, timeout)
                continue
            now = time.perf_counter()
            expired = [f for f, (_, start, _) in in_flight.items() if now - start >= timeout]
            if expired:
                for future in expired:
                    index, start, _ = in_flight.pop(future)
                    results[index] = Outcome(OutcomeKind.TIMEOUT, message=f"killed after {timeout:g} s",
                                             elapsed=now - start)
                for index, _, _ in in_flight.values():
                    pending.appendleft(index)
                in_flight.clear()
                self.restart()
        return [r if r is not None else Outcome(OutcomeKind.ERROR, message="not run") for r in results]

    def _after_crash(self, broken: list[tuple[int, bool]], in_flight: dict[cf.Future[Any], tuple[int, float, bool]],
                     results: list[Outcome | None], suspects: collections.deque[int], timeout: float) -> None:
        message = self._crash_message()
        involved = broken + [(index, alone) for index, _, alone in in_flight.values()]
        in_flight.clear()
        if len(involved) == 1:
            results[involved[0][0]] = Outcome(OutcomeKind.CRASH, message=message)
        else:
            suspects.extend(index for index, _ in involved)
        self.restart()


def _kill_tree(process: Any) -> None:
    pid = getattr(process, "pid", None)
    if pid is None:
        return
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
            return
    except OSError:
        pass
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
