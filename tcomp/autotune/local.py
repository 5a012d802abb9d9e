"""``LocalBuilder`` and ``LocalRunner``: builds in parallel worker processes, runs in one worker process.

Both sit on ``IsolatedPool``: a build that hangs past ``build_timeout`` is ``BUILD_TIMEOUT``, one whose process dies
is ``BUILD_CRASH``; a run that hangs is ``RUN_TIMEOUT``, one that kills the runner (SIGSEGV, SIGABRT) is
``RUN_CRASH``. Each gets a fresh worker and the batch goes on.
"""

from __future__ import annotations

from collections.abc import Sequence

from tcomp.autotune.measure import BuildResult, MeasureInput, MeasureOptions, MeasureStatus, RunOutcome
from tcomp.autotune.pool import IsolatedPool, Outcome, OutcomeKind, process_pool_factory
from tcomp.autotune.workers import build_job, prepare_job, ready, run_job
from tcomp.target import host_num_cores

_BUILD_STATUS = {OutcomeKind.ERROR: MeasureStatus.BUILD_ERROR, OutcomeKind.TIMEOUT: MeasureStatus.BUILD_TIMEOUT,
                 OutcomeKind.CRASH: MeasureStatus.BUILD_CRASH}
_RUN_STATUS = {OutcomeKind.ERROR: MeasureStatus.RUN_ERROR, OutcomeKind.TIMEOUT: MeasureStatus.RUN_TIMEOUT,
               OutcomeKind.CRASH: MeasureStatus.RUN_CRASH}


def _factory(options: MeasureOptions):  # type: ignore[no-untyped-def]
    return options.executor_factory or process_pool_factory(options.start_method)


class LocalBuilder:
    def __init__(self, options: MeasureOptions | None = None) -> None:
        self.options = options or MeasureOptions()
        workers = self.options.n_parallel or host_num_cores()
        self.pool = IsolatedPool(workers, _factory(self.options), warm_up=ready)

    def build(self, inputs: Sequence[MeasureInput]) -> list[BuildResult]:
        outcomes = self.pool.map(build_job, [(inp,) for inp in inputs], self.options.build_timeout)
        return [_build_result(o) for o in outcomes]

    def close(self) -> None:
        self.pool.close()


def _build_result(outcome: Outcome) -> BuildResult:
    if outcome.kind is OutcomeKind.OK:
        result: BuildResult = outcome.value
        return result
    return BuildResult(_BUILD_STATUS[outcome.kind], outcome.message, outcome.elapsed)


class LocalRunner:
    """Runs one kernel at a time in a worker process; inputs and references are prepared there once per task
    (``prepare_timeout``, default 10x the run timeout: a naive reference schedule can be slow)."""

    def __init__(self, options: MeasureOptions | None = None, prepare_timeout: float | None = None) -> None:
        self.options = options or MeasureOptions()
        self.prepare_timeout = prepare_timeout or 10 * self.options.run_timeout
        self.pool = IsolatedPool(1, _factory(self.options), warm_up=ready)

    def run(self, inputs: Sequence[MeasureInput], builds: Sequence[BuildResult]) -> list[RunOutcome]:
        opts = self.options
        results: list[RunOutcome | None] = [None] * len(inputs)
        for task in dict.fromkeys(inp.task for inp in inputs):
            prepared = self.pool.call(prepare_job, (task, opts.seed, opts.thread_spin_count), self.prepare_timeout)
            indices = [k for k, inp in enumerate(inputs) if inp.task == task]
            if prepared.kind is not OutcomeKind.OK:
                for k in indices:
                    results[k] = RunOutcome(MeasureStatus.RUN_ERROR, (),
                                            f"preparing inputs and reference failed: {prepared.message}")
                continue
            items = [(builds[k], task, opts.seed, opts.number, opts.repeat, opts.min_repeat_ms, opts.run_timeout,
                      opts.check_correctness, opts.rtol, opts.atol, opts.thread_spin_count) for k in indices]
            for k, outcome in zip(indices, self.pool.map(run_job, items, opts.run_timeout)):
                if outcome.kind is OutcomeKind.OK:
                    results[k] = outcome.value
                else:
                    results[k] = RunOutcome(_RUN_STATUS[outcome.kind], (), outcome.message, outcome.elapsed)
        return [r if r is not None else RunOutcome(MeasureStatus.RUN_ERROR, (), "not run") for r in results]

    def close(self) -> None:
        self.pool.close()
