"""Measurement on a Dask cluster: builds on any worker, runs on the workers that hold the target's resource.

    from dask.distributed import Client
    executor = DaskExecutor(Client("tcp://scheduler:8786"))
    tuner.tune(200, measurer=executor.measurer(), callbacks=[log_to_file("mm.jsonl")])

(``tcomp tune ... --executor dask://scheduler:8786`` does the same.) ``dask.distributed`` is the engine: its
scheduler places the jobs, moves the results and notices dead workers; tcomp sends it the same two jobs its local
worker processes run (``workers.build_job``, ``workers.run_job``). Install it with ``pip install tcomp[distributed]``.

- **Builds** go to any worker (code generation for a target runs anywhere).
- **Runs** go only to workers that declared the Dask resource named after the target (``target_resource``:
  ``llvm:znver3``, ``cuda:sm_90``), one run at a time per worker (each run asks for the whole resource, ``1``). A
  cluster of different machines thus serves several targets: ``dask worker tcp://scheduler:8786 --nthreads 1
  --resources "llvm:znver3=1"``. Before the runs of a task, each such worker prepares its inputs and reference once.
- **Failures cost the trial, never the run.** A worker that dies while running a job (a kernel that crashes it, a
  machine that goes away) is noticed by Dask's scheduler, which runs the job again on another worker; the result
  then says so in its message, and after the scheduler's ``allowed-failures`` (start the scheduler with
  ``DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=1`` to retry once) the trial is ``RUN_CRASH`` /
  ``BUILD_CRASH``. A job that outlives its timeout is tried once more on another worker (the hung worker is
  restarted when it has a nanny), then is ``RUN_TIMEOUT`` / ``BUILD_TIMEOUT``.
- **Only the client writes records**: workers return results; the tuner's callbacks (``log_to_file``) run here.

``DaskExecutor`` is a ``Measurer``'s builder and runner in one (the ``Builder`` and ``Runner`` protocols), in place
of the default ``LocalBuilder`` and ``LocalRunner`` (process pools on this machine).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Sequence
from typing import Any

from tcomp import config
from tcomp.autotune.measure import BuildResult, MeasureInput, MeasureOptions, MeasureStatus, RunOutcome
from tcomp.autotune.measurer import Measurer
from tcomp.autotune.task import Task
from tcomp.autotune.workers import build_job, prepare_job, run_job, use_thread_spin
from tcomp.target import Target

POLL_SECONDS = 0.05


def target_resource(target: Target) -> str:
    """The Dask resource a worker declares to run ``target``'s kernels: ``kind:cpu`` (``llvm:znver3``) or
    ``cuda:sm_90`` (no spaces, commas or ``=``, which ``--resources`` splits on)."""
    detail = target.processor
    text = f"{target.kind}:{detail}" if detail else target.kind
    return "".join(c if c.isalnum() or c in ":._-" else "_" for c in text)


def client_for(address: str, timeout: float = 30.0) -> Any:
    """A ``dask.distributed.Client`` for ``dask://HOST:PORT`` (or ``tcp://HOST:PORT``); ``OSError`` or
    ``TimeoutError`` when no scheduler answers within ``timeout`` seconds."""
    try:
        from dask.distributed import Client
    except ImportError as error:
        raise ImportError("distributed tuning needs dask.distributed: pip install 'tcomp[distributed]'") from error
    if address.startswith("dask://"):
        address = "tcp://" + address[len("dask://"):]
    return Client(address, timeout=timeout)


def _thread_spin_plugin(spin: int) -> Any:
    """A Dask worker plugin that sets ``thread_spin_count`` in each worker as it starts (``MeasureOptions``), and
    has the worker compile its kernels itself: the workers are the parallelism (no compile processes)."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class ThreadSpin(WorkerPlugin):
        name = "tcomp-thread-spin"

        def setup(self, worker: Any) -> None:
            use_thread_spin(spin)
            config.set_settings(compile_processes=0)

    return ThreadSpin()


class _Job:
    """One job in flight: its future, when it was submitted, its attempt and the worker it must avoid."""

    def __init__(self, future: Any, attempt: int, avoid: str | None = None) -> None:
        self.future = future
        self.start = time.perf_counter()
        self.attempt = attempt
        self.avoid = avoid


class DaskExecutor:
    """Builder and runner over a ``dask.distributed.Client`` (see the module docstring). ``retries``: how many
    times a job that outlived its timeout is tried again elsewhere."""

    def __init__(self, client: Any, options: MeasureOptions | None = None, retries: int = 1,
                 close_client: bool = False) -> None:
        self.client = client
        self.close_client = close_client
        self.options = options or MeasureOptions()
        self.retries = retries
        self.prepared: set[tuple[str, str]] = set()  # (worker, task key) prepared
        # a worker builds too, which loads libgomp: set its idle threads' spin before that, on every worker
        client.register_plugin(_thread_spin_plugin(self.options.thread_spin_count))

    def measurer(self) -> Measurer:
        return Measurer(self.options, builder=self, runner=self)

    # -- placing jobs --------------------------------------------------------------------------------------------
    def _run_workers(self, resource: str) -> list[str]:
        info = self.client.scheduler_info()
        return sorted(address for address, worker in info.get("workers", {}).items()
                      if worker.get("resources", {}).get(resource, 0) >= 1)

    def _submit(self, fn: Any, args: tuple[Any, ...], resource: str | None, avoid: str | None = None,
                workers: list[str] | None = None) -> Any:
        options: dict[str, Any] = {"pure": False}
        if resource is not None:
            options["resources"] = {resource: 1}
        candidates = workers if workers is not None else None
        if avoid is not None:
            pool = candidates if candidates is not None else (
                self._run_workers(resource) if resource else sorted(self.client.scheduler_info()["workers"]))
            others = [w for w in pool if w != avoid]
            candidates = others or candidates
        if candidates:
            options["workers"] = candidates
            options["allow_other_workers"] = False
        return self.client.submit(fn, *args, **options)

    def _processing_on(self, future: Any) -> str | None:
        key = future.key

        def where(dask_scheduler: Any) -> str | None:
            task = dask_scheduler.tasks.get(key)
            worker = getattr(task, "processing_on", None) if task is not None else None
            return getattr(worker, "address", None)

        try:
            return self.client.run_on_scheduler(where)
        except Exception:  # noqa: BLE001 - best effort
            return None

    def _suspicious(self, future: Any) -> int:
        """How many workers died while running ``future``'s job (the scheduler counts them)."""
        key = future.key

        def count(dask_scheduler: Any) -> int:
            task = dask_scheduler.tasks.get(key)
            return int(getattr(task, "suspicious", 0) or 0) if task is not None else 0

        try:
            return self.client.run_on_scheduler(count)
        except Exception:  # noqa: BLE001
            return 0

    def _restart(self, worker: str | None) -> None:
        if worker is None:
            return
        try:
            self.client.restart_workers([worker], timeout=60, raise_for_error=False)
        except Exception:  # noqa: BLE001 - a worker without a nanny cannot be restarted: it stays busy
            pass

    def _slots(self, resource: str | None) -> int:
        """Jobs to keep in flight: one per run worker, or one per worker thread for builds (a job's timeout runs
        from its submission, so none waits in a queue)."""
        workers = self.client.scheduler_info().get("workers", {})
        if resource is not None:
            return max(1, len(self._run_workers(resource)))
        return max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))

    def _gather(self, items: Sequence[tuple[Any, ...]], fn: Any, timeout: float, resource: str | None,
                ) -> list[tuple[str, Any, str, float]]:
        """Run ``fn(*item)`` for every item; each outcome is ``(kind, value, note, seconds)`` with kind ``ok``,
        ``error``, ``crash`` or ``timeout`` (see the module docstring for the retries)."""
        pending = collections.deque(range(len(items)))
        jobs: dict[int, _Job] = {}
        outcomes: dict[int, tuple[str, Any, str, float]] = {}
        slots = self._slots(resource)
        while pending or jobs:
            while pending and len(jobs) < slots:
                k = pending.popleft()
                jobs[k] = _Job(self._submit(fn, items[k], resource), 0)
            finished = [k for k, job in jobs.items() if job.future.done()]
            for k in finished:
                outcomes[k] = self._outcome(jobs.pop(k))
            now = time.perf_counter()
            for k, job in list(jobs.items()):
                if now - job.start < timeout:
                    continue
                worker = self._processing_on(job.future)
                job.future.cancel()
                self._restart(worker)
                if job.attempt < self.retries:
                    jobs[k] = _Job(self._submit(fn, items[k], resource, avoid=worker), job.attempt + 1, worker)
                else:
                    del jobs[k]
                    outcomes[k] = ("timeout", None, f"killed after {timeout:g} s on {worker or 'a worker'} "
                                   f"({job.attempt + 1} attempts)", now - job.start)
            if jobs and not finished:
                time.sleep(POLL_SECONDS)
        return [outcomes[k] for k in range(len(items))]

    def _outcome(self, job: _Job) -> tuple[str, Any, str, float]:
        elapsed = time.perf_counter() - job.start
        note = "" if job.attempt == 0 else f"tried again after a timeout on {job.avoid}"
        died = self._suspicious(job.future)
        if died:
            note = (note + "; " if note else "") + f"a worker died while running it: run again ({died}x)"
        status = job.future.status
        if status == "finished":
            return "ok", job.future.result(), note, elapsed
        error = job.future.exception()
        name = type(error).__name__
        if name == "KilledWorker":
            return "crash", None, f"the workers running it died ({error})", elapsed
        return "error", None, f"{name}: {error}", elapsed

    # -- Builder and Runner ------------------------------------------------------------------------------------
    def build(self, inputs: Sequence[MeasureInput]) -> list[BuildResult]:
        status = {"error": MeasureStatus.BUILD_ERROR, "crash": MeasureStatus.BUILD_CRASH,
                  "timeout": MeasureStatus.BUILD_TIMEOUT}
        results = []
        for kind, value, note, elapsed in self._gather([(inp,) for inp in inputs], build_job,
                                                       self.options.build_timeout, None):
            results.append(value if kind == "ok" else BuildResult(status[kind], note, elapsed))
        return results

    def _prepare(self, task: Task, resource: str) -> str | None:
        """Make the task's inputs and reference on every worker that will run it; an error text when none can."""
        workers = [w for w in self._run_workers(resource) if (w, task.key) not in self.prepared]
        if not workers and not self._run_workers(resource):
            return f"no Dask worker declares the resource {resource!r} (dask worker ... --resources \"{resource}=1\")"
        opts = self.options
        futures = {w: self._submit(prepare_job, (task, opts.seed, opts.thread_spin_count), resource, workers=[w])
                   for w in workers}
        deadline = time.perf_counter() + 10 * opts.run_timeout
        problem = None
        for worker, future in futures.items():
            try:
                future.result(timeout=max(0.1, deadline - time.perf_counter()))
                self.prepared.add((worker, task.key))
            except Exception as error:  # noqa: BLE001 - the runs will report it
                problem = f"preparing inputs and reference failed on {worker}: {type(error).__name__}: {error}"
        return problem if len(futures) and not any((w, task.key) in self.prepared for w in futures) else None

    def run(self, inputs: Sequence[MeasureInput], builds: Sequence[BuildResult]) -> list[RunOutcome]:
        opts = self.options
        status = {"error": MeasureStatus.RUN_ERROR, "crash": MeasureStatus.RUN_CRASH,
                  "timeout": MeasureStatus.RUN_TIMEOUT}
        results: list[RunOutcome | None] = [None] * len(inputs)
        for task in dict.fromkeys(inp.task for inp in inputs):
            resource = target_resource(task.target)
            indices = [k for k, inp in enumerate(inputs) if inp.task == task]
            problem = self._prepare(task, resource)
            if problem is not None:
                for k in indices:
                    results[k] = RunOutcome(MeasureStatus.RUN_ERROR, (), problem)
                continue
            items = [(builds[k], task, opts.seed, opts.number, opts.repeat, opts.min_repeat_ms, opts.run_timeout,
                      opts.check_correctness, opts.rtol, opts.atol, opts.thread_spin_count) for k in indices]
            for k, (kind, value, note, elapsed) in zip(indices, self._gather(items, run_job, opts.run_timeout,
                                                                           resource)):
                if kind == "ok":
                    outcome: RunOutcome = value
                    message = "; ".join(m for m in (outcome.message, note) if m)
                    results[k] = RunOutcome(outcome.status, outcome.costs, message, outcome.run_time)
                else:
                    results[k] = RunOutcome(status[kind], (), note, elapsed)
        return [r if r is not None else RunOutcome(MeasureStatus.RUN_ERROR, (), "not run") for r in results]

    def close(self) -> None:
        """Closes the client only with ``close_client`` (by default it belongs to the caller)."""
        if self.close_client:
            self.close_client = False
            self.client.close()
