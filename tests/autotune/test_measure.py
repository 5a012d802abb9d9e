"""Measurement in worker processes: every kind of failure becomes one status and the batch goes on."""

from __future__ import annotations

import concurrent.futures as cf
import os
import signal
import time
from pathlib import Path

import pytest
from autotune_fault_templates import (
    ALL_FAULTS,
    Fault,
    job_hang_with_child,
    job_kill,
    job_raise,
    job_sleep,
    job_square,
)

from tcomp.autotune import create_task
from tcomp.autotune.measure import MeasureInput, MeasureOptions, MeasureResult, MeasureStatus
from tcomp.autotune.measurer import Measurer
from tcomp.autotune.pool import IsolatedPool, OutcomeKind

EXPECTED = {
    Fault.NONE: MeasureStatus.OK,
    Fault.SEGFAULT: MeasureStatus.RUN_CRASH,
    Fault.ABORT: MeasureStatus.RUN_CRASH,
    Fault.HANG: MeasureStatus.RUN_TIMEOUT,
    Fault.RUN_EXCEPTION: MeasureStatus.RUN_ERROR,
    Fault.WRONG: MeasureStatus.WRONG_ANSWER,
    Fault.BUILD_ERROR: MeasureStatus.BUILD_ERROR,
    Fault.INVALID: MeasureStatus.INSTANTIATION_ERROR,
    Fault.BUILD_SEGFAULT: MeasureStatus.BUILD_CRASH,
    Fault.BUILD_ABORT: MeasureStatus.BUILD_CRASH,
    Fault.BUILD_HANG: MeasureStatus.BUILD_TIMEOUT,
}


def test_every_fault_gets_its_status_and_the_rest_is_measured() -> None:
    task = create_task("test_faulty", (16, [f.value for f in ALL_FAULTS]))
    space = task.config_space
    # each fault twice, with healthy configs (other tile sizes) in between
    indices = []
    for digit in range(len(ALL_FAULTS)):
        indices += [space.index_from_digits([digit, 1]), space.index_from_digits([0, 2 + digit % 3])]
    inputs = [MeasureInput(task, space.get(i)) for i in indices]
    with Measurer(MeasureOptions(build_timeout=4, run_timeout=3, n_parallel=2)) as measurer:
        results = measurer.measure(inputs)
    for inp, result in zip(inputs, results):
        fault = Fault(inp.config["fault"].val)
        assert result.status is EXPECTED[fault], (fault, result)
        assert result.ok == (fault is Fault.NONE)
        assert (result.costs != ()) == result.ok  # no fake times for failures
        assert result.message or result.ok
    messages = {Fault(i.config["fault"].val): r.message for i, r in zip(inputs, results)}
    assert "SIGSEGV" in messages[Fault.SEGFAULT] and "SIGABRT" in messages[Fault.ABORT]
    assert "SIGSEGV" in messages[Fault.BUILD_SEGFAULT] and "SIGABRT" in messages[Fault.BUILD_ABORT]
    assert "dimension 0 must be 17" in messages[Fault.RUN_EXCEPTION]
    assert "exceeds the tolerance" in messages[Fault.WRONG]


def test_reference_from_the_naive_schedule_when_no_numpy_reference() -> None:
    task = create_task("test_scale", (40,))
    space = task.config_space
    inputs = [MeasureInput(task, space.get(i)) for i in range(len(space))]
    with Measurer(MeasureOptions(n_parallel=1)) as measurer:
        results = measurer.measure(inputs)
    assert all(r.ok for r in results), results
    assert all(r.build_time > 0 and r.run_time > 0 and r.timestamp > 0 for r in results)


def test_executor_is_pluggable() -> None:
    """Any concurrent.futures executor works; here threads, in this process (no isolation from crashes)."""

    def threads(workers: int) -> cf.Executor:
        return cf.ThreadPoolExecutor(workers)

    task = create_task("matmul", (32, 32, 32))
    space = task.config_space
    inputs = [MeasureInput(task, space.get(i)) for i in (space.fallback.index, 0, 5)]
    with Measurer(MeasureOptions(executor_factory=threads, n_parallel=2)) as measurer:
        results = measurer.measure(inputs)
    assert [r.status for r in results] == [MeasureStatus.OK] * 3


def test_pool_outcomes_and_restart() -> None:
    with IsolatedPool(2) as pool:
        outcomes = pool.map(job_square, [(3,), (4,)], timeout=30)
        assert [(o.kind, o.value) for o in outcomes] == [(OutcomeKind.OK, 9), (OutcomeKind.OK, 16)]
        mixed = pool.map(job_sleep, [(0.0,), (60.0,), (0.1,)], timeout=1.5)
        assert [o.kind for o in mixed] == [OutcomeKind.OK, OutcomeKind.TIMEOUT, OutcomeKind.OK]
        assert pool.restarts == 1
        error = pool.call(job_raise, ("boom",), timeout=30)
        assert error.kind is OutcomeKind.ERROR and "ValueError: boom" in error.message
        crashed = pool.map(job_kill, [(signal.SIGSEGV,), (signal.SIGABRT,)], timeout=30)
        assert [o.kind for o in crashed] == [OutcomeKind.CRASH, OutcomeKind.CRASH]
        assert "SIGSEGV" in crashed[0].message and "SIGABRT" in crashed[1].message
        assert pool.call(job_square, (5,), timeout=30).value == 25


def test_timeout_kills_the_whole_process_tree(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    with IsolatedPool(1) as pool:
        outcome = pool.call(job_hang_with_child, (str(pid_file),), timeout=2)
    assert outcome.kind is OutcomeKind.TIMEOUT
    child = int(pid_file.read_text())
    deadline = time.time() + 5
    while time.time() < deadline and _alive(child):
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split()[2] == "Z")


def test_measure_result_json_round_trip() -> None:
    result = MeasureResult(MeasureStatus.OK, (1e-3, 2e-3), "", 0.5, 0.25, 1234.5)
    assert MeasureResult.from_json(result.to_json()) == result
    assert result.cost == 1e-3
    failed = MeasureResult(MeasureStatus.RUN_TIMEOUT, (), "killed")
    assert failed.cost == float("inf") and not failed.ok


def test_bad_options_raise() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        MeasureOptions(number=0)
    with pytest.raises(ValueError, match="positive"):
        MeasureOptions(run_timeout=0)
