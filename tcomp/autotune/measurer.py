"""``Measurer``: a ``Builder`` and a ``Runner`` (by default the local ones, ``local.py``) behind one call.

``measure(inputs)`` builds every input (in parallel), then runs the built ones one by one, and gives one
``MeasureResult`` per input, in order.
"""

from __future__ import annotations

from collections.abc import Sequence

from tcomp.autotune.local import LocalBuilder, LocalRunner
from tcomp.autotune.measure import Builder, MeasureInput, MeasureOptions, MeasureResult, MeasureStatus, Runner


class Measurer:
    """A builder and a runner: ``measure(inputs)`` builds all (in parallel), then runs the built ones one by one."""

    def __init__(self, options: MeasureOptions | None = None, builder: Builder | None = None,
                 runner: Runner | None = None) -> None:
        self.options = options or MeasureOptions()
        self.builder = builder or LocalBuilder(self.options)
        self.runner = runner or LocalRunner(self.options)

    def measure(self, inputs: Sequence[MeasureInput]) -> list[MeasureResult]:
        if not inputs:
            return []
        builds = self.builder.build(inputs)
        runnable = [k for k, b in enumerate(builds) if b.status is MeasureStatus.OK]
        outcomes = self.runner.run([inputs[k] for k in runnable], [builds[k] for k in runnable])
        results: list[MeasureResult] = []
        by_index = dict(zip(runnable, outcomes))
        for k, build in enumerate(builds):
            outcome = by_index.get(k)
            if outcome is None:
                results.append(MeasureResult(build.status, (), build.message, build.build_time))
            else:
                costs = outcome.costs if outcome.status is MeasureStatus.OK else ()
                results.append(MeasureResult(outcome.status, costs, outcome.message, build.build_time,
                                             outcome.run_time))
        return results

    def close(self) -> None:
        self.builder.close()
        self.runner.close()

    def __enter__(self) -> Measurer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
