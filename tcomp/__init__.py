"""tcomp: a tensor compiler with autotuning.

Define an operator with ``tcomp.te``, schedule it with ``create_schedule``, inspect it with ``lower``, compile it
with ``build`` (``tcomp.backend``: the stages of each target, the build driver)::

    A = te.placeholder((n,), name="A"); B = te.placeholder((n,), name="B")
    C = te.compute((n,), lambda i: A[i] + B[i], name="C")
    s = tcomp.create_schedule(C)
    mod = tcomp.build(s, [A, B, C])
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names below load on first use, so ``import tcomp.cli`` stays light (Ctrl-C answered early)
    from tcomp import te
    from tcomp.backend import build, lower
    from tcomp.schedule import ScheduleError, create_schedule
    from tcomp.target import Target, TargetKind

__version__ = "0.1.0"

_HOMES = {"te": "tcomp.te", "build": "tcomp.backend", "lower": "tcomp.backend", "ScheduleError": "tcomp.schedule",
          "create_schedule": "tcomp.schedule", "Target": "tcomp.target", "TargetKind": "tcomp.target"}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name, f"tcomp.{name}")  # a subpackage (tcomp.graph, tcomp.ops ...) loads on first use too
    try:
        module = importlib.import_module(home)
    except ModuleNotFoundError as error:
        if error.name != home:
            raise
        raise AttributeError(f"module 'tcomp' has no attribute {name!r}") from None
    value = module if home == f"tcomp.{name}" else getattr(module, name)
    globals()[name] = value
    return value

__all__ = ["ScheduleError", "Target", "TargetKind", "build", "create_schedule", "lower", "te"]
