"""``build_cuda``: ``tcomp.build`` for a CUDA target with the choice of where the module runs (``CudaRuntime``)."""

from __future__ import annotations

from collections.abc import Sequence

from tcomp.backend.cuda import CudaRuntime, make_module
from tcomp.backend.driver import compile_artifact
from tcomp.ir.stmt import PrimFunc
from tcomp.runtime.cuda_module import CudaModule
from tcomp.schedule.schedule import Schedule
from tcomp.target import Target
from tcomp.te.tensor import Tensor


def build_cuda(
    schedule: Schedule | PrimFunc,
    args: Sequence[Tensor] | None = None,
    target: str | Target = "cuda",
    name: str = "main",
    *,
    runtime: CudaRuntime = CudaRuntime.AUTO,
) -> CudaModule:
    """Compile a GPU schedule (or an optimized loop function) to CUDA C and return a module running on the GPU or
    in emulation, as ``runtime`` asks. Raises ``GPUError`` for schedules that cannot run as kernels or exceed the
    target's limits."""
    return make_module(compile_artifact(schedule, args, target, name).artifact, runtime)
