"""Building for ``target="cuda"``: lower, run the GPU pass list, generate CUDA C, pick a runtime.

Stages (each printable): ``te`` (the schedule) -> ``tir`` (``lower_schedule``) -> ``tir.opt`` (``cuda_pipeline``)
-> ``kernels`` (split, thread binding, barriers) -> ``cu`` (CUDA C) -> a module: on a GPU through CuPy when one is
available, else emulated on the CPU. A structurally equal function built before for the same target reuses its
generated code.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from tcomp import config
from tcomp.codegen.cuda.codegen import codegen_cuda
from tcomp.ir.stmt import PrimFunc
from tcomp.runtime.cuda_artifact import CudaArtifact
from tcomp.runtime.cuda_module import CudaModule
from tcomp.schedule.loop_nest import lower_schedule
from tcomp.schedule.schedule import Schedule
from tcomp.target import Target
from tcomp.te.tensor import Tensor
from tcomp.transform.double_buffer import ATTR as DOUBLE_BUFFER
from tcomp.transform.pipeline import cuda_pipeline, run_pipeline


class CudaRuntime(enum.Enum):
    """Where a CUDA module runs: ``AUTO`` (the GPU when available, else the emulator), ``DEVICE``, ``EMULATOR``."""

    AUTO = "auto"
    DEVICE = "device"
    EMULATOR = "emulator"


def lower_cuda(schedule: Schedule | PrimFunc, args: Sequence[Tensor] | None = None, name: str = "main") -> PrimFunc:
    """The loop IR of a GPU schedule after ``cuda_pipeline`` (flattened, not yet split into kernels). The names of
    double-buffered stages go in the function's attribute ``double_buffer``."""
    if isinstance(schedule, PrimFunc):
        func = schedule
    else:
        if args is None:
            raise TypeError("build: pass the argument tensors (inputs and outputs, in call order)")
        func = with_double_buffers(schedule, lower_schedule(schedule, args, name))
    return run_pipeline(func, cuda_pipeline())


def with_double_buffers(schedule: Schedule, func: PrimFunc) -> PrimFunc:
    """``func`` (lowered from ``schedule``) with the names of the schedule's double-buffered stages in its attribute
    ``double_buffer``, which the kernel passes read."""
    doubled = tuple(stage.op.output(0).name for stage in schedule.stages if stage.double_buffered)
    return func.with_attr(DOUBLE_BUFFER, doubled) if doubled else func


def generate(func: PrimFunc, target: Target) -> CudaArtifact:
    """``codegen_cuda`` through the build cache."""
    from tcomp.build_module import build_cache

    use_cache = config.current().build_cache
    key = str(target) + " (cuda c)"
    artifact = build_cache.get(func, key) if use_cache else None
    if artifact is None:
        artifact = codegen_cuda(func, target)
        if use_cache:
            build_cache.put(func, key, artifact)
    return artifact


def make_module(artifact: CudaArtifact, runtime: CudaRuntime = CudaRuntime.AUTO) -> CudaModule:
    """A module running ``artifact`` on the GPU or in emulation, as ``runtime`` asks."""
    from tcomp.runtime.cuda_device import gpu_available

    if runtime is CudaRuntime.DEVICE or (runtime is CudaRuntime.AUTO and gpu_available()):
        if not gpu_available():
            raise RuntimeError("no CUDA device: install CuPy (pip install cupy-cuda12x) on a machine with a GPU")
        from tcomp.runtime.cuda_device import DeviceCudaModule

        return DeviceCudaModule(artifact)
    from tcomp.runtime.cuda_emu import EmulatedCudaModule

    return EmulatedCudaModule(artifact)


def precompile(artifact: CudaArtifact) -> None:
    """On a GPU, compile ``artifact`` with NVRTC as ``make_module`` will, so that NVRTC's and the driver's disk
    caches hold it and a later ``make_module``, in any process, only loads it (tuning builders call this in
    parallel). Without a GPU nothing happens: the emulation compiles where it runs."""
    from tcomp.runtime.cuda_device import gpu_available

    if gpu_available():
        from tcomp.runtime.cuda_device import precompile as precompile_device

        precompile_device(artifact)


def build_cuda(
    schedule: Schedule | PrimFunc,
    args: Sequence[Tensor] | None = None,
    target: str | Target = "cuda",
    name: str = "main",
    *,
    runtime: CudaRuntime = CudaRuntime.AUTO,
) -> CudaModule:
    """Compile a GPU schedule (or a lowered function) to CUDA C and return a callable module (see the module
    docstring). Raises ``GPUError`` for schedules that cannot run as kernels or exceed the target's limits."""
    tgt = target if isinstance(target, Target) else Target.parse(target)
    if tgt.kind != "cuda":
        raise ValueError(f"build_cuda needs a cuda target, got {tgt}")
    func = lower_cuda(schedule, args, name)
    return make_module(generate(func, tgt), runtime)
