"""Which config a template uses at compile time: dispatch contexts, without process-wide state.

A ``DispatchContext`` answers ``query(task) -> ConfigEntity | None``. ``ApplyHistoryBest(records)`` answers with
the fastest successful record of the task (the same key; else the same computation on a target with the same
kind and CPU, e.g. another core count), and remembers the tasks it could not answer. Use it

- explicitly: ``ctx = ApplyHistoryBest("log.jsonl"); instantiate("matmul", 64, 64, 64, context=ctx)`` - this is how
  a graph compiler asks "best config for this task", passing the context object along, or
- as a context manager: ``with apply_history_best("log.jsonl"): instantiate(...)``. The active context lives in a
  ``contextvars.ContextVar``: it is local to the thread (and asyncio task) that entered it, and restored on exit.

Tasks with no record use the template's fallback config (its default schedule). When the ``with`` block ends (or
on ``ctx.report_missing()``), one summary warning lists them, instead of one warning per operator.
"""

from __future__ import annotations

import contextvars
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tcomp import backend
from tcomp.autotune.record import Record, best_by_task, load_records
from tcomp.autotune.space import ConfigEntity
from tcomp.autotune.task import Task, create_task
from tcomp.schedule.schedule import Schedule
from tcomp.target import Target
from tcomp.te.tensor import Tensor


class DispatchContext:
    """Base class: ``query`` returns the config to use for ``task``, or None for the template's fallback."""

    def query(self, task: Task) -> ConfigEntity | None:
        raise NotImplementedError

    def __enter__(self) -> DispatchContext:
        self._tokens: list[contextvars.Token[DispatchContext | None]] = getattr(self, "_tokens", [])
        self._tokens.append(_CURRENT.set(self))
        return self

    def __exit__(self, *exc: object) -> None:
        _CURRENT.reset(self._tokens.pop())
        self.on_exit()

    def on_exit(self) -> None:
        """Called when a ``with`` block of this context ends."""


_CURRENT: contextvars.ContextVar[DispatchContext | None] = contextvars.ContextVar("tcomp_dispatch", default=None)


def current_context() -> DispatchContext | None:
    """The context entered most recently in this thread / asyncio task, or None."""
    return _CURRENT.get()


class ApplyHistoryBest(DispatchContext):
    """The best record per task from ``records`` (a path, lines, or ``Record`` objects)."""

    def __init__(self, records: str | os.PathLike[str] | Iterable[str] | Sequence[Record]) -> None:
        self.best: dict[str, Record] = best_by_task(load_records(records))
        self._by_machine: dict[tuple[str, str, str], Record] = {}
        for record in self.best.values():
            key = _machine_key(record.task)
            current = self._by_machine.get(key)
            if current is None or record.result.cost < current.result.cost:
                self._by_machine[key] = record
        self.missing: dict[str, Task] = {}
        self.hits = 0

    def best_record(self, task: Task) -> Record | None:
        record = self.best.get(task.key) or self._by_machine.get(_machine_key(task))
        return record

    def query(self, task: Task) -> ConfigEntity | None:
        record = self.best_record(task)
        if record is None:
            self.missing.setdefault(task.key, task)
            return None
        self.hits += 1
        return record.config.with_target(task.target)

    def report_missing(self) -> None:
        """One warning naming the tasks that had no record (then forgets them)."""
        if not self.missing:
            return
        names = sorted(str(task) for task in self.missing.values())
        shown = "; ".join(names[:8]) + (f"; and {len(names) - 8} more" if len(names) > 8 else "")
        warnings.warn(f"{len(names)} task(s) had no tuning record and use the default schedule: {shown}",
                      RuntimeWarning, stacklevel=3)
        self.missing.clear()

    def on_exit(self) -> None:
        self.report_missing()


class ApplyConfig(DispatchContext):
    """Always the given config (for debugging a single config); ``SpaceError`` for a task whose space does not
    hold it."""

    def __init__(self, config: ConfigEntity) -> None:
        self.config = config

    def query(self, task: Task) -> ConfigEntity | None:
        task.config_space.check(self.config)
        return self.config.with_target(task.target)


def _machine_key(task: Task) -> tuple[str, str, str]:
    return (task.workload_key, task.target.kind, task.target.mcpu)


def apply_history_best(records: str | os.PathLike[str] | Iterable[str] | Sequence[Record]) -> ApplyHistoryBest:
    """``with apply_history_best("log.jsonl"): ...`` - templates instantiated inside use the best records."""
    return ApplyHistoryBest(records)


@dataclass(frozen=True)
class Instantiation:
    """A template instantiated for compilation: the schedule and tensors, the config used, and whether it came
    from a record (False: the fallback config, i.e. the default schedule)."""

    schedule: Schedule
    tensors: list[Tensor]
    config: ConfigEntity
    tuned: bool


def instantiate(name: str, *args: Any, target: Target | str | None = None,
                context: DispatchContext | None = None) -> Instantiation:
    """Instantiate template ``name`` with ``args`` for ``target`` using ``context`` (default: the current one)."""
    task = create_task(name, args, target)
    ctx = context if context is not None else current_context()
    config = ctx.query(task) if ctx is not None else None
    tuned = config is not None
    if config is None:
        config = task.config_space.fallback
    schedule, tensors = task.instantiate(config)
    return Instantiation(schedule, tensors, config, tuned)


def build(name: str, *args: Any, target: Target | str | None = None,
          context: DispatchContext | None = None) -> tuple[Any, Instantiation]:
    """Instantiate template ``name`` (as ``instantiate``) and compile it: ``(module, instantiation)``."""
    inst = instantiate(name, *args, target=target, context=context)
    module = backend.build(inst.schedule, inst.tensors, target=create_task(name, args, target).target)
    return module, inst
