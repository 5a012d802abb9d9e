"""The parallel runtime's pool (``tcomp/runtime/pool_ir.py``): every iteration of a parallel loop runs exactly once,
whatever the extent, the policy, the callers (several Python threads, nested loops, a forked child) or the library
(JIT'd or exported)."""

from __future__ import annotations

import os
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tcomp
from tcomp.ir import expr as E
from tcomp.ir import stmt as S
from tcomp.ir.buffer import Buffer
from tcomp.runtime import load_module
from tcomp.runtime.pool_ir import PoolPolicy
from tcomp.runtime.thread_pool import configure_pool, parallel_runtime

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
                                          ("thread_limit", True)])
def test_bad_policy(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"pool policy: {field}"):
        PoolPolicy(**{field: value})


def test_configure_unknown_field() -> None:
    with pytest.raises(TypeError, match="spin_rounds"):
        configure_pool(spin_rounds=3)
