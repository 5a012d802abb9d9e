"""The build driver: one path from a schedule to a runnable module for every target, used by ``tcomp.build``,
``tcomp.lower``, the tuner's build workers, the graph compiler and export alike.

``compile_artifact(schedule, args, target)`` runs the target backend's stages (``te -> tir -> tir.opt -> ... ``) up
to the last one before ``module``; ``build`` also makes the module. A build that starts from a loop function (a
``PrimFunc``) enters at ``tir.opt``: the function is taken as optimized (as ``tcomp.lower`` returns it).

- Caching: the stages after ``tir.opt`` of a function structurally equal to one built before for the same target
  are not run again (the cache finds candidates by structural hash and confirms each by structural equality).
- Dumping: ``dump="tir.opt"`` (or several names, or ``Settings.dump_stages``) prints a stage's output as it is
  made; any stage name or text a stage offers (``asm``, ``ll_unopt``) is accepted.
- Timing: ``timings`` (a dict) accumulates the seconds each stage took.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tcomp import config
from tcomp.backend.base import MODULE_STAGE, SOURCE_STAGE, Backend, BuildContext, Stage
from tcomp.backend.registry import backend_for
from tcomp.ir.stmt import PrimFunc
from tcomp.ir.structural import structural_equal, structural_hash
from tcomp.lru import LRUCache
from tcomp.schedule.schedule import Schedule
from tcomp.target import Target, as_target
from tcomp.te.tensor import Tensor

DumpNames = str | Sequence[str] | None


class BuildCache:
    """The outputs of the stages after the cache-key stage, by (structural hash of its output, backend key);
    hits confirmed by structural equality. An LRU of ``Settings.build_cache_size`` entries: a long-lived process
    building ever new kernels stays bounded."""

    def __init__(self) -> None:
        self.entries: LRUCache[tuple[int, str], list[tuple[PrimFunc, dict[str, Any]]]] = LRUCache(
            lambda: config.current().build_cache_size)
        self.lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, func: PrimFunc, key: str) -> dict[str, Any] | None:
        with self.lock:
            for cached, outputs in self.entries.get((structural_hash(func), key)) or []:
                if structural_equal(cached, func):
                    self.hits += 1
                    return outputs
            self.misses += 1
            return None

    def put(self, func: PrimFunc, key: str, outputs: dict[str, Any]) -> None:
        with self.lock:
            entry = (structural_hash(func), key)
            self.entries.put(entry, [*(self.entries.get(entry) or []), (func, outputs)])

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.hits = self.misses = 0


build_cache = BuildCache()


@dataclass(frozen=True)
class Compiled:
    """A build up to its artifact: the optimized loop function, the artifact compiled from it, and the backend
    that makes a module of them (``module()``)."""

    func: PrimFunc
    artifact: Any
    target: Target
    backend: Backend

    def module(self) -> Any:
        return self.backend.make_module(self.func, self.artifact, self.target)


class _Run:
    """One pass over a backend's stages: dumping and timing as asked."""

    def __init__(self, backend: Backend, context: BuildContext, dump: DumpNames,
                 timings: dict[str, float] | None) -> None:
        self.backend = backend
        self.context = context
        self.stages = list(backend.stages())
        self.dump = _dump_names(backend, dump)
        self.timings = timings

    def index(self, name: str) -> int:
        return [stage.name for stage in self.stages].index(name)

    def run(self, value: Any, first: int, last: int) -> dict[str, Any]:
        """Run stages ``first`` to ``last`` (inclusive) on ``value``; return every output by stage name."""
        outputs: dict[str, Any] = {}
        for stage in self.stages[first: last + 1]:
            start = time.perf_counter()
            value = stage.run(value, self.context)
            if self.timings is not None:
                self.timings[stage.name] = self.timings.get(stage.name, 0.0) + time.perf_counter() - start
            outputs[stage.name] = value
            self.show(stage, value)
        return outputs

    def show(self, stage: Stage, value: Any) -> None:
        for text, printer in stage.printers().items():
            if text in self.dump:
                sys.stdout.write(f"// stage {text}: {self.context.name} for {self.context.target}\n"
                                 f"{printer(value).rstrip()}\n\n")


def _dump_names(backend: Backend, dump: DumpNames) -> set[str]:
    names = [dump] if isinstance(dump, str) else list(dump or ())
    names += list(config.current().dump_stages)
    known = backend.text_names()
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"dump: unknown stage {', '.join(unknown)} for target kind {backend.kind.value}; "
                         f"stages: {', '.join(known)}")
    return set(names)


def _context(schedule: Schedule | PrimFunc, args: Sequence[Tensor] | None, target: Target, name: str,
             check_bounds: bool | None) -> BuildContext:
    checked = config.current().check_bounds if check_bounds is None else check_bounds
    if isinstance(schedule, PrimFunc):
        return BuildContext(target, schedule.name, check_bounds=checked)
    if not isinstance(schedule, Schedule):
        raise TypeError(f"build: expected a Schedule or a PrimFunc, got {type(schedule).__name__}")
    if args is None:
        raise TypeError("build: pass the argument tensors (inputs and outputs, in call order)")
    return BuildContext(target, name, tuple(args), schedule, checked)


def lower(schedule: Schedule, args: Sequence[Tensor], name: str = "main", *, target: Target | str | None = "llvm",
          check_bounds: bool | None = None, simple_mode: bool = False, dump: DumpNames = None,
          timings: dict[str, float] | None = None) -> PrimFunc:
    """The loop function of ``schedule`` over ``args`` (inputs and outputs in call order) for ``target``: the
    ``tir.opt`` stage (after the target's pass list), or with ``simple_mode=True`` the ``tir`` stage (the loop nest
    straight from the schedule)."""
    if not isinstance(schedule, Schedule):
        raise TypeError(f"lower: expected a Schedule, got {type(schedule).__name__}")
    tgt = as_target(target)
    backend = backend_for(tgt)
    context = _context(schedule, args, tgt, name, check_bounds)
    run = _Run(backend, context, dump, timings)
    last = run.index("tir" if simple_mode else "tir.opt")
    return run.run(schedule, run.index(SOURCE_STAGE), last)[run.stages[last].name]


def _compile(schedule: Schedule | PrimFunc, args: Sequence[Tensor] | None, target: Target | str | None, name: str,
             check_bounds: bool | None, dump: DumpNames, timings: dict[str, float] | None) -> tuple[_Run, Compiled]:
    tgt = as_target(target)
    backend = backend_for(tgt)
    run = _Run(backend, _context(schedule, args, tgt, name, check_bounds), dump, timings)
    key_stage = run.index(backend.cache_key_stage)
    artifact_stage = run.index(MODULE_STAGE) - 1
    if isinstance(schedule, PrimFunc):
        func = schedule
        run.show(run.stages[key_stage], func)
    else:
        func = run.run(schedule, run.index(SOURCE_STAGE), key_stage)[backend.cache_key_stage]
    run.context.func = func
    use_cache = config.current().build_cache
    key = backend.cache_key(tgt)
    outputs = build_cache.get(func, key) if use_cache else None
    if outputs is None:
        outputs = run.run(func, key_stage + 1, artifact_stage)
        if use_cache:
            build_cache.put(func, key, outputs)
    else:
        for stage in run.stages[key_stage + 1: artifact_stage + 1]:
            run.show(stage, outputs[stage.name])
    return run, Compiled(func, outputs[run.stages[artifact_stage].name], tgt, backend)


def compile_artifact(schedule: Schedule | PrimFunc, args: Sequence[Tensor] | None = None,
                     target: Target | str | None = "llvm", name: str = "main", *, check_bounds: bool | None = None,
                     dump: DumpNames = None, timings: dict[str, float] | None = None) -> Compiled:
    """Run the stages of ``target``'s backend up to the artifact (see the module docstring)."""
    return _compile(schedule, args, target, name, check_bounds, dump, timings)[1]


def build(schedule: Schedule | PrimFunc, args: Sequence[Tensor] | None = None, target: Target | str | None = "llvm",
          name: str = "main", *, check_bounds: bool | None = None, dump: DumpNames = None,
          timings: dict[str, float] | None = None) -> Any:
    """Compile ``schedule`` (or an optimized loop function, as ``lower`` returns it) for ``target`` and return a
    callable module: ``mod(*arrays)`` with inputs and outputs in the order of ``args``."""
    run, compiled = _compile(schedule, args, target, name, check_bounds, dump, timings)
    module_stage = run.index(MODULE_STAGE)
    return run.run(compiled.artifact, module_stage, module_stage)[MODULE_STAGE]
