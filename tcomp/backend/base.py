"""What every backend is: the ordered named stages of a build, the default schedules, and modules from artifacts.

A ``Backend`` serves one ``TargetKind``. Its ``stages`` are an ordered list from the schedule to a runnable module,
for example ``te -> tir -> tir.opt -> ll -> module`` for CPUs; each ``Stage`` is a function from the previous stage's
output (and the ``BuildContext`` threaded through all of them) to its own, and names the texts it can print (``ll``,
``ll_unopt`` and ``asm`` for the LLVM stage). The build driver (``driver.py``) runs them, caches what follows the
``cache_key_stage`` (the optimized loop function determines everything after it), dumps any stage by name and times
each. A new target is one new backend package: a subclass registered in ``registry.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tcomp.ir.stmt import PrimFunc
from tcomp.schedule.schedule import Schedule
from tcomp.target import Target, TargetKind
from tcomp.te.tensor import Tensor

SOURCE_STAGE = "te"  # the schedule itself: every stage list starts here
MODULE_STAGE = "module"  # the runnable module: every stage list ends here


class EmulationWarning(RuntimeWarning):
    """Code compiled for a target will run in an emulation of it on this machine (a ``cuda`` target without a GPU):
    the results are checked, the speed is not the target's."""


class ExportError(ValueError):
    """Kernels that cannot be exported, or an exported folder whose kernels cannot be loaded (the message says why)."""


@dataclass
class BuildContext:
    """What the stages of one build share: the target, the function's name and arguments, the schedule (``None``
    when the build starts from a loop function), whether to build in checked mode, the optimized loop function once
    it is made, and a dictionary the stages may pass facts through."""

    target: Target
    name: str
    args: tuple[Tensor, ...] = ()
    schedule: Schedule | None = None
    check_bounds: bool = False
    func: PrimFunc | None = None  # the optimized loop function, once the build has it (the module stage reads it)
    metadata: dict[str, Any] = field(default_factory=dict)


StageFunc = Callable[[Any, BuildContext], Any]


def print_value(value: Any) -> str:
    return str(value)


@dataclass(frozen=True)
class Stage:
    """One named step of a build: ``run(previous output, context) -> output``. ``texts`` maps the names under which
    the output can be printed to the function printing it (by default the stage's own name and ``str``)."""

    name: str
    run: StageFunc
    texts: Mapping[str, Callable[[Any], str]] = field(default_factory=dict)

    def printers(self) -> Mapping[str, Callable[[Any], str]]:
        return self.texts or {self.name: print_value}


@dataclass(frozen=True)
class GraphOptions:
    """How the graph compiler treats a model for a target kind.

    ``blocked_convolutions``: convolutions compile in the blocked layout NCHW[x]c (``alter_layout``), fused with
    their epilogues, and tuning records give the tiles of those fused kernels. ``matvec_weights``: the weights of
    small-batch matrix products are stored ``[N, K]``. ``row_norms``: the operator chains of layer norm and RMS norm
    become one operator each (``recognize_norms``), which the target computes a row at a time. ``fold_on_host``:
    constant subgraphs are evaluated by kernels built for this machine's CPU rather than for the target.
    ``fused_attention``: attention subgraphs become one ``attention`` node (``fuse_attention``). ``views``: reshapes
    and transposes are absorbed into the matrix products that read them (``fuse_ops``). ``gemm_panels``: the
    constant weights of larger products are stored in the packed GEMM's panels (``gemm_panels``).
    ``concat_in_place``: the producers of a batch-1 concatenation write their parts into slices of its result
    (``concat_in_place``; the target's kernels take arguments at any byte offset). ``float16_arithmetic``: the
    target's kernels compute float16 products as they are; without it, products of float16 tensors compute in
    float32 between casts (``float16_products``). ``symbolic_dimensions``: the target's kernels take symbolic
    dimensions as arguments in the executor's calls, so a model whose inputs' dimensions vary compiles once for
    them (``tcomp.graph.dynamic``). ``templates``: the tunable template
    of each workload the graph finds (named by the CPU templates' names), ``None`` for the same names; a
    workload missing from the mapping has no template on this target."""

    blocked_convolutions: bool = False
    matvec_weights: bool = False
    row_norms: bool = False
    fold_on_host: bool = False
    fused_attention: bool = False
    views: bool = False
    gemm_panels: bool = False
    concat_in_place: bool = False
    float16_arithmetic: bool = False
    symbolic_dimensions: bool = False
    templates: Mapping[str, str] | None = None

    def template_for(self, workload: str) -> str | None:
        return workload if self.templates is None else self.templates.get(workload)


@dataclass(frozen=True)
class SavedKernels:
    """The kernels of an exported folder as its code lists them, before any is loaded: ``file``, the code file's
    name; ``signatures``, per entry symbol its parameters' dtypes and shapes, runtime checks and error area (JSON
    values, ``{"params": [[dtype, shape], ...], "asserts": [[message, values], ...], "error_slots": n}``), for the
    loader to check ``graph.json`` against; ``state``, what ``load_kernels`` needs."""

    file: str
    signatures: Mapping[str, Any]
    state: Any


class Backend:
    """The code generator, compiler and runtime of one target kind, behind its ordered stage list.

    Subclasses set ``kind`` and ``graph``, and implement ``stages``, ``default_schedule``, ``make_module``,
    ``describe`` and the export of compiled kernels (``save_kernels``, ``read_kernels``, ``load_kernels``)."""

    kind: TargetKind
    graph = GraphOptions()
    cache_key_stage = "tir.opt"  # the stage whose output keys the build cache

    def stages(self) -> Sequence[Stage]:
        """The build's stages in order, from ``te`` (the schedule) to ``module``."""
        raise NotImplementedError

    def default_schedule(self, outputs: Sequence[Tensor], target: Target) -> Schedule:
        """The default schedule computing ``outputs`` (one fused group of library operators) on ``target``."""
        raise NotImplementedError

    def make_module(self, func: PrimFunc, artifact: Any, target: Target) -> Any:
        """A module running ``artifact`` (compiled from ``func``), callable on numpy arrays."""
        raise NotImplementedError

    def emulation_reason(self, target: Target) -> str | None:
        """Why modules of this backend for ``target`` would run in an emulation on this machine (or emulate part of
        what ``target`` asks for), or None when they run natively."""
        return None

    def precompile(self, artifact: Any, target: Target) -> None:
        """Do, in this process, what ``make_module`` would otherwise do first in another (compile ``artifact`` into a
        disk cache the other process reads): the tuner's builders call it, so its one runner only loads."""

    def save_kernels(self, modules: Sequence[Any], folder: Path, target: Target) -> None:
        """Write the code of ``modules`` (one per kernel of a compiled model, repeats allowed) into ``folder``, with
        the list of its kernels and their signatures. Raises ``ExportError`` for kernels that cannot be exported."""
        raise NotImplementedError

    def read_kernels(self, file: Callable[[str], Path], target: Target) -> SavedKernels:
        """The kernels a folder's code lists (``file(name)`` gives the checked path of one of the folder's files).
        Raises ``ExportError`` (or the runtime's ``LibraryError``) for code that cannot be read."""
        raise NotImplementedError

    def load_kernels(self, saved: SavedKernels, entries: Sequence[str], target: Target) -> list[Any]:
        """The kernels ``entries`` (entry symbols that ``saved`` lists), in that order: modules, or entry functions
        with the ABI of ``tcomp/runtime/artifact.py`` (``NativeEntry``)."""
        raise NotImplementedError

    def describe(self, target: Target) -> list[str]:
        """Lines telling what ``target`` means on this machine and where its code runs (``tcomp target``)."""
        raise NotImplementedError

    def stage_names(self) -> list[str]:
        return [stage.name for stage in self.stages()]

    def text_names(self) -> list[str]:
        """Every name a build can dump: the stages' own and the other texts they print."""
        names: list[str] = []
        for stage in self.stages():
            names.extend(n for n in stage.printers() if n not in names)
        return names

    def cache_key(self, target: Target) -> str:
        """This backend's part of every build-cache key: the target with every option that changes code."""
        return str(target)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.kind.value}: {' -> '.join(self.stage_names())})"
