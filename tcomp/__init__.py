"""tcomp: a tensor compiler with autotuning.

Define an operator with ``tcomp.te``, schedule it with ``create_schedule``, inspect it with ``lower``, compile it
with ``build`` (``tcomp.backend``: the stages of each target, the build driver)::

    A = te.placeholder((n,), name="A"); B = te.placeholder((n,), name="B")
    C = te.compute((n,), lambda i: A[i] + B[i], name="C")
    s = tcomp.create_schedule(C)
    mod = tcomp.build(s, [A, B, C])
"""

from tcomp import te
from tcomp.backend import build, lower
from tcomp.schedule import ScheduleError, create_schedule
from tcomp.target import Target, TargetKind

__version__ = "0.1.0"

__all__ = ["ScheduleError", "Target", "TargetKind", "build", "create_schedule", "lower", "te"]
