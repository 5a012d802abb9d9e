"""Runtime: compiled modules callable on numpy arrays (exported and loaded back with ``Module.export_library`` and
``load_module``), the thread pool for parallel loops, timing."""

from tcomp.runtime.errors import KernelError
from tcomp.runtime.module import SOURCE_FORMATS, Module, load_module
from tcomp.runtime.timer import TimingResult

__all__ = ["KernelError", "Module", "SOURCE_FORMATS", "TimingResult", "load_module"]
