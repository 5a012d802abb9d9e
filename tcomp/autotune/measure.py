"""Measurement records and protocols: ``MeasureInput`` -> builder -> runner -> ``MeasureResult`` with one status.

Every result has exactly one ``MeasureStatus``; costs are present only for ``OK`` (no fake times for failures),
so a failed or wrong config can never win. A ``Measurer`` (``measurer.py``) pairs a ``Builder`` and a ``Runner``
(the local ones in ``local.py`` use worker processes; tests plug in fakes). Options are one typed ``MeasureOptions``
value.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tcomp.autotune.pool import ExecutorFactory, StartMethod
from tcomp.autotune.space import ConfigEntity
from tcomp.autotune.task import Task
from tcomp.json_value import JSONValueError, as_float, as_list, as_object, as_str

MAX_COSTS = 10_000  # repeats of one measurement read from a record
MAX_MESSAGE = 100_000  # characters of a record's message


class MeasureStatus(enum.Enum):
    OK = "ok"
    INSTANTIATION_ERROR = "instantiation_error"  # the template or a schedule primitive rejected the config
    BUILD_ERROR = "build_error"  # lowering or code generation raised
    BUILD_TIMEOUT = "build_timeout"
    BUILD_CRASH = "build_crash"  # the builder process died
    RUN_ERROR = "run_error"  # the kernel raised (a failed runtime check) or the run failed otherwise
    RUN_TIMEOUT = "run_timeout"
    RUN_CRASH = "run_crash"  # the runner process died (SIGSEGV, SIGABRT ...)
    WRONG_ANSWER = "wrong_answer"  # the output differs from the reference

    @property
    def is_build_failure(self) -> bool:
        return self in (MeasureStatus.INSTANTIATION_ERROR, MeasureStatus.BUILD_ERROR, MeasureStatus.BUILD_TIMEOUT,
                        MeasureStatus.BUILD_CRASH)


@dataclass(frozen=True)
class MeasureInput:
    task: Task
    config: ConfigEntity


@dataclass(frozen=True)
class MeasureResult:
    """``costs``: seconds per call, one per repeat (empty unless ``OK``). ``build_time``: seconds to instantiate,
    lower and compile; ``run_time``: wall seconds of the run stage (JIT, check, timing); ``timestamp``: when the
    measurement finished (Unix time)."""

    status: MeasureStatus
    costs: tuple[float, ...] = ()
    message: str = ""
    build_time: float = 0.0
    run_time: float = 0.0
    timestamp: float = field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        return self.status is MeasureStatus.OK and bool(self.costs)

    @property
    def cost(self) -> float:
        """The best repeat (interference from other processes only adds time), ``inf`` unless ``OK``."""
        return min(self.costs) if self.ok else math.inf

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status.value, "costs": list(self.costs), "message": self.message,
                "build_time": round(self.build_time, 6), "run_time": round(self.run_time, 6),
                "timestamp": self.timestamp}

    @staticmethod
    def from_json(value: Any) -> MeasureResult:
        """A result from its JSON form: costs are finite and not negative, and only an ``OK`` result has any."""
        fields = as_object(value, "result")
        try:
            status = MeasureStatus(as_str(fields.get("status"), "result status", 40))
        except ValueError:
            raise JSONValueError(f"result: unknown status {fields.get('status')!r}") from None
        costs = tuple(as_float(c, "result cost", 0.0) for c in as_list(fields.get("costs", []), "result costs",
                                                                        MAX_COSTS))
        if status is not MeasureStatus.OK and costs:
            raise JSONValueError(f"result: a {status.value} result has no costs")
        return MeasureResult(status, costs, as_str(fields.get("message", ""), "result message", MAX_MESSAGE),
                             as_float(fields.get("build_time", 0.0), "build time", 0.0),
                             as_float(fields.get("run_time", 0.0), "run time", 0.0),
                             as_float(fields.get("timestamp", 0.0), "timestamp"))


@dataclass(frozen=True)
class MeasureOptions:
    """How to measure. Timeouts in seconds; ``number`` calls per repeat (fewer for a config so slow that the
    timeout could not fit them), ``repeat`` repeats, ``min_repeat_ms`` grows ``number`` until a repeat lasts that
    long. ``n_parallel`` builder processes (default: the cores of this machine); the runner uses one process so
    timings do not disturb each other. ``check_correctness`` compares every output with the reference within
    ``rtol`` * max|reference| + ``atol``. ``seed`` makes the input data. ``thread_spin_count``: how long the
    runner's idle pool threads spin before sleeping (``tcomp.config.Settings``); 0, the default, sleeps at once.
    Measured on two cores under a load average of 15: with the compiler's default spin every kernel with a parallel
    loop ran 3x (a conv) to 80x (a batch-1 dense: 6.5 ms against 64 us) slower than with sleeping threads, because
    a spinning thread waiting at a barrier uses up the time slice that the thread it waits for needs; how much
    depends on the config's parallel loops and on the load at that moment, so it scrambled the ranking."""

    number: int = 3
    repeat: int = 3
    min_repeat_ms: float = 0.0
    build_timeout: float = 10.0
    run_timeout: float = 10.0
    n_parallel: int | None = None
    check_correctness: bool = True
    rtol: float = 1e-3
    atol: float = 1e-5
    seed: int = 0
    start_method: StartMethod = StartMethod.SPAWN
    executor_factory: ExecutorFactory | None = None
    thread_spin_count: int = 0

    def __post_init__(self) -> None:
        if self.number < 1 or self.repeat < 1:
            raise ValueError(f"number and repeat must be at least 1, got {self.number} and {self.repeat}")
        if self.build_timeout <= 0 or self.run_timeout <= 0:
            raise ValueError("timeouts must be positive")
        if not isinstance(self.start_method, StartMethod):
            raise TypeError(f"start_method must be a StartMethod, got {self.start_method!r}")


@dataclass(frozen=True)
class BuildResult:
    """What the builder sends to the runner: the optimized loop function and the artifact the target's backend
    compiled from it (its optimized LLVM IR, or its CUDA C: code compiled in one process cannot move to another,
    an artifact can), with the positions of the outputs among the arguments; or a failure status."""

    status: MeasureStatus
    message: str = ""
    build_time: float = 0.0
    func: Any = None  # PrimFunc
    artifact: Any = None
    output_positions: tuple[int, ...] = ()


@dataclass(frozen=True)
class RunOutcome:
    status: MeasureStatus
    costs: tuple[float, ...] = ()
    message: str = ""
    run_time: float = 0.0


class Builder(Protocol):
    def build(self, inputs: Sequence[MeasureInput]) -> list[BuildResult]: ...

    def close(self) -> None: ...


class Runner(Protocol):
    def run(self, inputs: Sequence[MeasureInput], builds: Sequence[BuildResult]) -> list[RunOutcome]: ...

    def close(self) -> None: ...
