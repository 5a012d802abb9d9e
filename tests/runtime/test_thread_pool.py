"""The parallel runtime's pool (``tcomp/runtime/pool_ir.py``): every iteration of a parallel loop runs exactly once,
whatever the extent, the policy, the callers (several Python threads, nested loops, a forked child) or the library
(JIT'd or exported)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tcomp
from tcomp.autotune.workers import use_thread_spin
from tcomp.ir import expr as E
from tcomp.ir import stmt as S
from tcomp.ir.buffer import Buffer
from tcomp.runtime import load_module
from tcomp.runtime.pool_ir import PoolPolicy
from tcomp.runtime.thread_pool import PoolState, configure_pool, parallel_runtime

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "codegen"))
from llvm_testing import load, loop, store  # noqa: E402


def _counting_kernel(name: str, cores: int = 4) -> tcomp.runtime.Module:
    """``C[i] = C[i] + A[i]`` over a parallel ``i < n``: an iteration run twice or never shows in ``C``."""
    n = E.Var("n", "int64")
    A, C = Buffer("A", (n,), "float32"), Buffer("C", (n,), "float32")
    i = E.Var("i", "int64")
    body = loop(i, n, store(C, E.Add(load(C, i), load(A, i), "float32"), i), S.ForKind.PARALLEL)
    return tcomp.build(S.PrimFunc(name, (A, C), body, (n,)), f"llvm -num-cores={cores}")


@pytest.fixture(scope="module")
def counting() -> tcomp.runtime.Module:
    return _counting_kernel("pool_count")


@pytest.fixture
def restore_policy() -> Iterator[None]:
    before = parallel_runtime().policy
    try:
        yield
    finally:
        parallel_runtime().configure(before)


def _check_once(mod: tcomp.runtime.Module, size: int, seed: int = 0) -> None:
    a = np.random.default_rng(seed).integers(1, 100, size).astype(np.float32)
    c = np.zeros(size, np.float32)
    mod(a, c)
    np.testing.assert_array_equal(c, a)


@settings(max_examples=40, deadline=None)
@given(size=st.integers(0, 5000), tasks=st.integers(1, 64), limit=st.integers(0, 5))
def test_every_iteration_runs_once(counting: tcomp.runtime.Module, size: int, tasks: int, limit: int) -> None:
    before = parallel_runtime().policy
    try:
        configure_pool(tasks_per_thread=tasks, thread_limit=limit)
        _check_once(counting, size, seed=size)
    finally:
        parallel_runtime().configure(before)


@pytest.mark.parametrize("worker_spin, master_spin", [(0, 0), (0, 100000), (1000000, 0)])
def test_spin_policies(counting: tcomp.runtime.Module, restore_policy: None, worker_spin: int,
                       master_spin: int) -> None:
    """Workers that sleep at once, and a caller that yields at once: still every iteration once, call after call
    (each call wakes the sleeping workers)."""
    configure_pool(worker_spin=worker_spin, master_spin=master_spin)
    for size in (2, 3, 1000, 65537):
        for _ in range(5):
            _check_once(counting, size)


def test_a_measurement_sets_the_spin_of_a_running_pool(restore_policy: None) -> None:
    """A measurement worker process runs task after task, each with its measure options' spin: a pool compiled by
    an earlier task follows the later one's, and so does a pool compiled after the setting."""
    with tcomp.config.override():
        parallel_runtime()  # started
        for spin in (0, 123, 0):
            use_thread_spin(spin)
            assert parallel_runtime().policy.worker_spin == spin
            assert tcomp.config.current().thread_spin_count == spin


def test_concurrent_callers(counting: tcomp.runtime.Module) -> None:
    """Python threads calling parallel kernels at once: one holds the pool, the others run serially."""
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            for k in range(30):
                _check_once(counting, 997 + 13 * k, seed)
        except BaseException as error:  # noqa: BLE001 (reported by the main thread)
            errors.append(error)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_starts_its_own_workers(counting: tcomp.runtime.Module) -> None:
    _check_once(counting, 4096)  # the parent's workers exist
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork of a threaded process: the pool restarts
        pid = os.fork()
    if pid == 0:  # the child: only the forking thread exists here
        status = 1
        try:
            a = np.arange(1, 5001, dtype=np.float32)
            for _ in range(20):
                c = np.zeros_like(a)
                counting(a, c)
                if not np.array_equal(c, a):
                    break
            else:
                status = 0
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    _check_once(counting, 4096)  # the parent's pool is unharmed


def test_exported_library_brings_its_own_pool(counting: tcomp.runtime.Module, tmp_path: Path) -> None:
    counting.export_library(tmp_path / "count.so")
    loaded = load_module(tmp_path / "count.so")
    for size in (0, 1, 5, 3001):
        _check_once(loaded, size)
    _check_once(counting, 3001)  # both pools in one process


@pytest.mark.parametrize("field, value", [("tasks_per_thread", 0), ("worker_spin", -1), ("master_spin", 1.5),
                                          ("thread_limit", True), ("backoff_us", -1)])
def test_bad_policy(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"pool policy: {field}"):
        PoolPolicy(**{field: value})


def test_configure_unknown_field() -> None:
    with pytest.raises(TypeError, match="spin_rounds"):
        configure_pool(spin_rounds=3)


def test_loops_that_lose_to_serial_start_a_growing_backoff(restore_policy: None) -> None:
    """The pool's rule (``pool_ir.py``, serial backoff) on loops of given times: a loop slower than its caller's
    serial estimate, or one the caller ran alone for over 100 us, starts a backoff of twice its time that doubles
    with every loss in a row, up to ``backoff_us``; a loop faster than serial ends the streak."""
    runtime = parallel_runtime()
    configure_pool(backoff_us=50)
    lost = runtime.state().lost_loops
    runtime.judge(0, 1000, 9000, 1, 8)  # serially 8000 ns: 9000 lost (9000 <= 8000 * 9 / 8: not yet)
    assert runtime.state() == PoolState(0, 0, lost, runtime.state().serial_loops)  # within the 1/8 slack
    runtime.judge(0, 1000, 9001, 1, 8)
    state = runtime.state()
    assert (state.streak, state.serial_until, state.lost_loops) == (1, 9001 + 2 * 9001, lost + 1)
    runtime.judge(100_000, 101_000, 110_000, 1, 8)
    assert (runtime.state().streak, runtime.state().serial_until) == (2, 110_000 + 4 * 10_000)
    runtime.judge(200_000, 201_000, 220_000, 1, 8)  # 8 * 20000 ns is over the 50 us limit
    assert (runtime.state().streak, runtime.state().serial_until) == (3, 220_000 + 50_000)
    runtime.judge(0, 100_001, 100_001, 4, 4)  # the caller alone for over 100 us
    assert runtime.state().streak == 4
    runtime.judge(0, 100_000, 100_000, 4, 4)  # alone, but quick: neither
    runtime.judge(0, 50, 60, 0, 4)  # the workers ran every task: not judged
    assert runtime.state().streak == 4
    runtime.judge(0, 1000, 2000, 4, 8)  # faster than the serial 2000 ns: the streak ends
    assert runtime.state().streak == 0
    assert runtime.state().lost_loops == lost + 4


def test_a_streak_ends_when_no_loop_lost_for_50_ms(restore_policy: None) -> None:
    """Quick loops the caller ran alone keep a streak while losses are recent, and end it 50 ms after the last."""
    runtime = parallel_runtime()
    configure_pool(backoff_us=50)
    t = 10**9
    runtime.judge(t, t + 1000, t + 9001, 1, 8)  # lost
    runtime.judge(t + 10**6, t + 10**6 + 5000, t + 10**6 + 5000, 4, 4)  # alone, quick, 1 ms later: neither
    assert runtime.state().streak == 1
    runtime.judge(t + 60 * 10**6, t + 60 * 10**6 + 5000, t + 60 * 10**6 + 5000, 4, 4)  # 60 ms after the loss
    assert runtime.state().streak == 0


def test_no_backoff_when_disabled(restore_policy: None) -> None:
    runtime = parallel_runtime()
    configure_pool(backoff_us=0)
    before = runtime.state()
    runtime.judge(0, 1000, 1_000_000, 1, 8)
    assert runtime.state() == before


def test_loops_run_serially_during_a_backoff(counting: tcomp.runtime.Module, restore_policy: None) -> None:
    """A backoff under way (a loss just now, with a 10 s limit) runs the loops serially, each iteration once; a new
    policy ends it."""
    runtime = parallel_runtime()
    configure_pool(backoff_us=10_000_000)
    now = time.monotonic_ns()
    runtime.judge(now - 10**9, now - 10**9 + 10, now, 1, 2)  # lost: serial for min(2 s, 10 s)
    serial = runtime.state().serial_loops
    for size in (2, 1000, 65537):
        _check_once(counting, size)
    assert runtime.state().serial_loops == serial + 3
    configure_pool(backoff_us=10_000_000)
    assert runtime.state().serial_until == 0 and runtime.state().streak == 0
    _check_once(counting, 65537)
    assert runtime.state().serial_loops == serial + 3


_PLACEMENT_SCRIPT = """
import json, os, sys, time
import numpy as np
sys.path.insert(0, {codegen!r})
sys.path.insert(0, {runtime!r})
from test_thread_pool import _counting_kernel
from tcomp.runtime.thread_pool import configure_pool

def affinities(threads):
    return {{t: sorted(os.sched_getaffinity(t)) for t in threads}}

def settled(threads, done):
    # a worker places itself as it starts or wakes, which a busy machine can delay past the loop that woke it
    deadline = time.monotonic() + 60
    while not done(affinities(threads)) and time.monotonic() < deadline:
        time.sleep(0.01)
    return affinities(threads)

module = _counting_kernel("pool_place", {threads})  # the pool's threads start with the first call
before = {{int(t) for t in os.listdir("/proc/self/task")}}
a = np.ones(100_000, np.float32)
module(a, np.zeros_like(a))
workers = sorted({{int(t) for t in os.listdir("/proc/self/task")}} - before)
allowed = sorted(os.sched_getaffinity(0))
pinned = settled(workers, lambda found: all(len(cpus) == 1 for cpus in found.values()))
caller_cpu = sorted(pinned.values())[0][0]
os.sched_setaffinity(0, {{caller_cpu}})  # the caller moves onto a worker's CPU: that worker moves off it
module(a, np.zeros_like(a))
moved = settled(workers, lambda found: all(cpus != [caller_cpu] for cpus in found.values()))
os.sched_setaffinity(0, allowed)
configure_pool(pin_workers=False)
time.sleep(0.2)  # the workers sleep; the next loop wakes them and they follow the policy
module(a, np.zeros_like(a))
unpinned = settled(workers, lambda found: all(cpus == allowed for cpus in found.values()))
print(json.dumps({{"allowed": allowed, "pinned": list(pinned.values()), "unpinned": list(unpinned.values()),
                  "caller_cpu": caller_cpu, "moved": list(moved.values())}}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2,
                    reason="thread placement: Linux with 2 CPUs or more")
def test_workers_keep_to_cpus_of_their_own() -> None:
    """Pinned (the default), each worker of a loop over all the process's CPUs may run on one CPU of its own, and
    moves off the CPU the caller runs on when the caller moves there; with ``pin_workers=False`` they may run
    anywhere again (see ``pool_ir.py``, placement)."""
    threads = len(os.sched_getaffinity(0))
    here = Path(__file__).resolve().parent
    script = _PLACEMENT_SCRIPT.format(codegen=str(here.parent / "codegen"), runtime=str(here), threads=threads)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            cwd=here.parents[1])
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    allowed, pinned = report["allowed"], report["pinned"]
    assert len(pinned) == threads - 1
    assert all(len(cpus) == 1 and cpus[0] in allowed for cpus in pinned), report
    assert len({cpus[0] for cpus in pinned}) == threads - 1
    assert report["unpinned"] == [allowed] * (threads - 1)
    moved = report["moved"]
    assert all(len(cpus) == 1 and cpus[0] != report["caller_cpu"] for cpus in moved), report
    assert len({cpus[0] for cpus in moved}) == threads - 1
