"""``time_evaluator``: repeatable timing of a compiled function, in seconds per call; ``alternating``: several
callables timed side by side."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class TimingResult:
    """Seconds per call, one entry per repeat (each the mean over that repeat's ``number`` calls)."""

    results: tuple[float, ...]
    number: int

    @property
    def min(self) -> float:
        return min(self.results)

    @property
    def max(self) -> float:
        return max(self.results)

    @property
    def median(self) -> float:
        return statistics.median(self.results)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.results)

    @property
    def std(self) -> float:
        return statistics.pstdev(self.results) if len(self.results) > 1 else 0.0

    def __str__(self) -> str:
        return (f"TimingResult(min={self.min * 1e3:.4f} ms, median={self.median * 1e3:.4f} ms, "
                f"mean={self.mean * 1e3:.4f} ms, std={self.std * 1e3:.4f} ms, repeats={len(self.results)}, "
                f"number={self.number})")


def measure(run: Callable[[], None], number: int, repeat: int, min_repeat_ms: float) -> TimingResult:
    """Call ``run`` once to warm up, then ``repeat`` times ``number`` calls; ``number`` grows (and the repeat is
    run again) while a repeat lasts under ``min_repeat_ms``. Uses ``time.perf_counter``."""
    if number < 1 or repeat < 1:
        raise ValueError(f"number and repeat must be at least 1, got number={number}, repeat={repeat}")
    if min_repeat_ms < 0:
        raise ValueError(f"min_repeat_ms must not be negative, got {min_repeat_ms}")
    run()
    results: list[float] = []
    while len(results) < repeat:
        start = time.perf_counter()
        for _ in range(number):
            run()
        elapsed = time.perf_counter() - start
        if elapsed * 1e3 < min_repeat_ms:
            scale = min_repeat_ms / max(elapsed * 1e3, 1e-6)
            number = max(number * 2, math.ceil(number * scale * 1.1))
            continue
        results.append(elapsed / number)
    return TimingResult(tuple(results), number)


def wait_until_threads_idle(slice_s: float = 0.01, limit_s: float = 1.0) -> None:
    """Sleep until this process's other threads stop using CPU time (at most ``limit_s``). After a call,
    OpenBLAS's worker threads spin for 2^28 TSC cycles (about 0.1 s at 3 GHz) before sleeping, onnxruntime's a while
    too; timing tcomp while they spin measures tcomp on a shared core (up to 2x slower on 2 cores)."""
    deadline = time.perf_counter() + limit_s
    while time.perf_counter() < deadline:
        before = time.process_time()
        time.sleep(slice_s)
        if time.process_time() - before < 0.1 * slice_s:
            return


def alternating(runners: dict[str, Callable[[], object]], rounds: int, number: int) -> dict[str, list[float]]:
    """Seconds of every call of each runner, timed in alternation: ``number`` calls of each runner per round, runner
    after runner, for ``rounds`` rounds after a warm-up call each, so a change of the machine's load falls on every
    side alike. Each runner's turn starts once this process's other threads are idle (a runtime's spinning pool
    would share the cores), and the order turns by one every other round and reverses every other round, so no
    runner always follows the same one or runs last: in a fixed order (tuned, onnxruntime, untuned) an untuned
    ResNet-50 measured 1.22x the tuned one where in turning orders the two were level (1.015)."""
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for run in runners.values():
        run()
    names = list(runners)
    for index in range(rounds):
        turn = index // 2 % len(names)
        order = names[turn:] + names[:turn]
        for name in order if index % 2 == 0 else reversed(order):
            run = runners[name]
            wait_until_threads_idle()
            for _ in range(number):
                start = time.perf_counter()
                run()
                samples[name].append(time.perf_counter() - start)
    return samples
