"""Tunable templates: a compute plus a schedule parameterized by a config, registered by name.

    @autotune.template("matmul", reference=matmul_reference)
    def matmul(cfg, M, N, K, dtype="float32"):
        ...                                  # te.compute stages
        tile = cfg.define_split("tile_i", M, num_outputs=3)
        io, im, ii = tile.apply(s[C], i)     # the same code defines the knob and applies the choice
        return s, [A, B, C]

There is no global "in tuning" state: what a call does depends only on the ``cfg`` it receives (a ``ConfigSpace``
collects knobs and yields fallbacks; a ``ConfigEntity`` applies its choices; see ``space.py``). The target a
schedule is for is ``cfg.target``. Template arguments are JSON values (ints, floats, strings, lists), so a task
key and its records are plain JSON.

``reference`` (optional): ``reference(inputs, *args) -> outputs``, numpy arrays in the order of the template's
input and output tensors. Without one, measurement checks results against the compute built with the naive
default schedule (``create_schedule`` of the same outputs). The registry maps names to templates; it is a table of
definitions, filled at import, not tuning state.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tcomp.autotune.space import Config, ConfigSpace
from tcomp.schedule.schedule import Schedule
from tcomp.target import Target, TargetKind
from tcomp.te.tensor import Tensor

TemplateFunc = Callable[..., tuple[Schedule, list[Tensor]]]
ReferenceFunc = Callable[..., Sequence[np.ndarray]]

# Templates tcomp ships, imported on first lookup of a name not registered yet.
BUILTIN_MODULES = ("tcomp.autotune.templates",)


class TemplateError(LookupError):
    """An unknown template name, or a template that returned something other than (schedule, tensors)."""


@dataclass(frozen=True)
class Template:
    """A registered template; ``kind`` is the kind of target its schedules are for (``None``: any)."""

    name: str
    func: TemplateFunc
    reference: ReferenceFunc | None
    module: str
    kind: TargetKind | None = None

    def __call__(self, cfg: Config, *args: Any) -> tuple[Schedule, list[Tensor]]:
        target = cfg.target
        if self.kind is not None and target is not None and target.kind is not self.kind:
            raise ValueError(f"{self.name} is a {self.kind.value} template; target {target} is not {self.kind.value}")
        result = self.func(cfg, *args)
        if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], Schedule)):
            raise TemplateError(f"template {self.name} must return (schedule, tensors), got {type(result).__name__}")
        schedule, tensors = result
        return schedule, list(tensors)

    def space(self, *args: Any, target: Target | None = None) -> ConfigSpace:
        """The config space of this template for ``args`` on ``target`` (calls the template in define mode)."""
        space = ConfigSpace(target)
        self(space, *args)
        return space


_REGISTRY: dict[str, Template] = {}


def template(name: str, reference: ReferenceFunc | None = None,
             kind: TargetKind | None = None) -> Callable[[TemplateFunc], Template]:
    """Register ``func(cfg, *args) -> (Schedule, tensors)`` as the template ``name``, for targets of ``kind``."""
    if not isinstance(name, str) or not name:
        raise TemplateError(f"a template name must be a non-empty string, got {name!r}")

    def register(func: TemplateFunc) -> Template:
        existing = _REGISTRY.get(name)
        if existing is not None and (existing.module, existing.func.__qualname__) != (
            func.__module__, func.__qualname__
        ):
            raise TemplateError(f"template {name} is already registered by {existing.module}")
        entry = Template(name, func, reference, func.__module__, kind)
        _REGISTRY[name] = entry
        return entry

    return register


def get_template(name: str) -> Template:
    """The template registered as ``name`` (tcomp's built-in templates are imported on the first lookup of a name
    not registered yet). Names are only looked up in the registry: no name or other value of a task or a record
    ever says which code to import. A template defined outside tcomp is found once the module that defines it
    has been imported (its ``@template`` decorator registers it)."""
    if not isinstance(name, str):
        raise TemplateError(f"a template name must be a string, got {type(name).__name__}")
    if name not in _REGISTRY:
        for module in BUILTIN_MODULES:
            importlib.import_module(module)
    entry = _REGISTRY.get(name)
    if entry is None:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        shown = name if len(name) <= 80 else name[:77] + "..."
        raise TemplateError(f"unknown template {shown!r} (registered: {known}); a template defined outside "
                            "tcomp is known once the module that defines it is imported")
    return entry


def registered_module(name: str) -> str:
    """The module whose ``@template`` registered ``name`` in this process ("" when none did)."""
    entry = _REGISTRY.get(name)
    return entry.module if entry is not None else ""


def import_registering_module(name: str, module: str) -> None:
    """In a worker process, make ``name`` known by importing ``module``: the module that registered it in the
    parent process, which sent it along with a task (see ``Task.__reduce__``). Never called with a value read
    from a file: a task read from records only names templates already registered."""
    if name not in _REGISTRY and module:
        importlib.import_module(module)


def list_templates() -> list[str]:
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    return sorted(_REGISTRY)
