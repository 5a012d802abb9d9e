"""Backends, one per target kind, and the build driver that runs their stages.

``backend_for(target)`` gives the ``Backend`` of a target (``registry.py``); ``build`` / ``lower`` /
``compile_artifact`` (``driver.py``) run its stages for ``tcomp.build``, the tuner's workers, the graph compiler and
export alike. Each backend package (``llvm/``, ``cuda/``) holds its stage list, its default schedules, how it makes a
module of an artifact and how compiled kernels are exported.
"""

from tcomp.backend.base import Backend, BuildContext, EmulationWarning, ExportError, GraphOptions, SavedKernels, Stage
from tcomp.backend.driver import Compiled, build, build_cache, compile_artifact, lower
from tcomp.backend.registry import BACKENDS, backend_for

__all__ = [
    "BACKENDS", "Backend", "BuildContext", "Compiled", "EmulationWarning", "ExportError", "GraphOptions",
    "SavedKernels", "Stage", "backend_for", "build", "build_cache", "compile_artifact", "lower",
]
