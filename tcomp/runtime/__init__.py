"""Runtime: compiled modules callable on numpy arrays, the thread pool for parallel loops, timing."""

from tcomp.runtime.errors import KernelError
from tcomp.runtime.module import SOURCE_FORMATS, Module
from tcomp.runtime.timer import TimingResult

__all__ = ["KernelError", "Module", "SOURCE_FORMATS", "TimingResult"]
