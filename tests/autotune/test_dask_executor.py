"""Tuning through a real Dask cluster (``LocalCluster``, 2 worker processes): builds anywhere, runs on workers
holding the target's resource, a worker killed mid-trial costs nothing but a retry, only the client writes records."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from tcomp.autotune import MeasureOptions, create_task
from tcomp.autotune.measure import MeasureInput, MeasureStatus
from tcomp.autotune.record import log_to_file, read_records
from tcomp.autotune.tuner import RandomTuner

distributed = pytest.importorskip("distributed")
from tcomp.autotune.dask_executor import DaskExecutor, target_resource  # noqa: E402


@pytest.fixture(scope="module")
def cluster():  # type: ignore[no-untyped-def]
    import dask
    from dask.distributed import Client, LocalCluster

    task = create_task("matmul", (32, 32, 32))
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):  # a job whose worker died: run once more
        local = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                             resources={target_resource(task.target): 1})
        client = Client(local)
    yield client
    client.close()
    local.close()


def test_resource_names_have_no_separators() -> None:
    resource = target_resource(create_task("matmul", (8, 8, 8)).target)
    assert resource.startswith("llvm:") and not set(resource) & set(" ,=")


def test_tune_through_a_local_cluster(cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    task = create_task("matmul", (32, 32, 32))
    executor = DaskExecutor(cluster, MeasureOptions(number=1, repeat=2))
    records = tmp_path / "dask.jsonl"
    result = RandomTuner(task, seed=3).tune(6, measurer=executor.measurer(), batch_size=3,
                                            callbacks=[log_to_file(records)])
    assert result.trials == 6 and result.statuses == {MeasureStatus.OK: 6}
    assert result.best_gflops >= result.default_gflops > 0
    logged = read_records(records).records  # written here, by the client, one line per measurement
    assert len({r.config.index for r in logged}) == 6 and all(r.result.ok for r in logged)
    ran_on = cluster.run(lambda: os.getpid())
    assert len(ran_on) == 2


def test_a_resource_no_worker_declares_is_a_run_error(cluster) -> None:  # type: ignore[no-untyped-def]
    task = create_task("matmul", (16, 16, 16), target="llvm -mcpu=skylake")  # no worker runs skylake here
    executor = DaskExecutor(cluster, MeasureOptions(number=1, repeat=1))
    (result,) = executor.measurer().measure([MeasureInput(task, task.config_space.fallback)])
    assert result.status is MeasureStatus.RUN_ERROR and "llvm:skylake=1" in result.message


def test_a_worker_killed_mid_trial_costs_a_retry_not_the_run(cluster) -> None:  # type: ignore[no-untyped-def]
    """SIGKILL the worker that is running a trial: Dask's scheduler runs the trial again on the other worker, the
    run completes, and that trial's result says what happened."""
    task = create_task("matmul", (32, 32, 32))
    executor = DaskExecutor(cluster, MeasureOptions(number=1, repeat=3, min_repeat_ms=400, run_timeout=60))
    pids = cluster.run(lambda: os.getpid())
    killed: list[str] = []

    def kill_a_running_trial() -> None:
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            def running(dask_scheduler):  # type: ignore[no-untyped-def]
                return [t.processing_on.address for t in dask_scheduler.tasks.values()
                        if t.processing_on is not None and "run_job" in str(t.key)]

            busy = cluster.run_on_scheduler(running)
            if busy:
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(busy[0])
                return
            time.sleep(0.05)

    messages: list[str] = []

    def keep_messages(tuner, inputs, results) -> None:  # type: ignore[no-untyped-def]
        messages.extend(r.message for r in results)

    killer = threading.Thread(target=kill_a_running_trial)
    killer.start()
    result = RandomTuner(task, seed=5).tune(4, measurer=executor.measurer(), batch_size=4, confirm=0,
                                            callbacks=[keep_messages])
    killer.join()
    assert killed, "no trial was seen running"
    assert result.trials == 4 and result.statuses == {MeasureStatus.OK: 4}
    assert sum("a worker died while running it" in m for m in messages) == 1, messages  # that trial is marked


def test_tcomp_tune_through_the_scheduler_address(cluster, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                  capsys: pytest.CaptureFixture) -> None:
    from tcomp.cli import main

    address = cluster.scheduler.address.replace("tcp://", "dask://")
    records = tmp_path / "cli.jsonl"
    argv = ["tune", "--op", "matmul", "--shape", "32,32,32", "--trials", "3", "--tuner", "random",
            "--tuning-records", str(records), "--number", "1", "--repeat", "1", "--executor", address]
    assert main(argv) == 0, capsys.readouterr().err
    assert len({r.config.index for r in read_records(records).records}) == 3


def test_an_address_nobody_listens_on_is_a_clear_error() -> None:
    from tcomp.autotune.dask_executor import client_for

    with pytest.raises((OSError, TimeoutError)):
        client_for("dask://127.0.0.1:1", timeout=1)
