"""The NVIDIA GPU backend: CUDA C.

Stages: ``te`` (the schedule) -> ``tir`` (``lower_schedule``, with the names of double-buffered stages in the
function's attribute ``double_buffer``) -> ``tir.opt`` (``cuda_pipeline``) -> ``kernels`` (one kernel per launched
region, thread binding, barriers, limits checked: ``split_kernels``) -> ``cu`` (CUDA C: ``print_cuda``) -> ``module``
(on a GPU through CuPy when one is available, else in a CPU emulation of the same CUDA C). Default schedules:
``tcomp.ops.cuda.schedule_cuda``. Models keep NCHW; their constants are folded on the host. A compiled model exports
its kernels as CUDA C with their launch descriptions (``kernels.cu``, ``export.py``).
"""

from __future__ import annotations

import enum
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tcomp.backend.base import Backend, BuildContext, GraphOptions, SavedKernels, Stage, print_value
from tcomp.backend.common import lower_tir, schedule_text
from tcomp.backend.cuda.export import (
    SOURCE,
    export_cuda_modules,
    load_cuda_artifacts,
    module_signature,
    read_cuda_source,
)
from tcomp.codegen.cuda.codegen import Kernels, print_cuda, split_kernels
from tcomp.ir.stmt import PrimFunc
from tcomp.ops.cuda import schedule_cuda
from tcomp.runtime.cuda_artifact import CudaArtifact
from tcomp.runtime.cuda_device import DeviceCudaModule, gpu_available
from tcomp.runtime.cuda_device import precompile as precompile_device
from tcomp.runtime.cuda_emu import EmulatedCudaModule, EmulationError, host_compiler
from tcomp.runtime.cuda_module import CudaModule
from tcomp.runtime.nvcc import nvcc_available
from tcomp.schedule.schedule import Schedule
from tcomp.target import CUDA_STATIC_SHARED_MEMORY, Target, TargetKind
from tcomp.te.tensor import Tensor
from tcomp.transform.double_buffer import ATTR as DOUBLE_BUFFER
from tcomp.transform.pipeline import cuda_pipeline, run_pipeline


class CudaRuntime(enum.Enum):
    """Where a CUDA module runs: ``AUTO`` (the GPU when available, else the emulator), ``DEVICE``, ``EMULATOR``."""

    AUTO = "auto"
    DEVICE = "device"
    EMULATOR = "emulator"


def with_double_buffers(schedule: Schedule, func: PrimFunc) -> PrimFunc:
    """``func`` (lowered from ``schedule``) with the names of the schedule's double-buffered stages in its attribute
    ``double_buffer``, which the kernel passes read."""
    doubled = tuple(stage.op.output(0).name for stage in schedule.stages if stage.double_buffered)
    return func.with_attr(DOUBLE_BUFFER, doubled) if doubled else func


def make_module(artifact: CudaArtifact, runtime: CudaRuntime = CudaRuntime.AUTO) -> CudaModule:
    """A module running ``artifact`` on the GPU or in emulation, as ``runtime`` asks."""
    if runtime is CudaRuntime.DEVICE or (runtime is CudaRuntime.AUTO and gpu_available()):
        if not gpu_available():
            raise RuntimeError("no CUDA device: install CuPy (pip install cupy-cuda12x) on a machine with a GPU")
        return DeviceCudaModule(artifact)
    return EmulatedCudaModule(artifact)


def precompile(artifact: CudaArtifact) -> None:
    """On a GPU, compile ``artifact`` with NVRTC as ``make_module`` will, so that NVRTC's and the driver's disk
    caches hold it and a later ``make_module``, in any process, only loads it (tuning builders call this in
    parallel). Without a GPU nothing happens: the emulation compiles where it runs."""
    if gpu_available():
        precompile_device(artifact)


def _lower(schedule: Schedule, context: BuildContext) -> PrimFunc:
    return with_double_buffers(schedule, lower_tir(schedule, context))


def _optimize(func: PrimFunc, context: BuildContext) -> PrimFunc:
    return run_pipeline(func, cuda_pipeline())


def _kernels(func: PrimFunc, context: BuildContext) -> Kernels:
    return split_kernels(func, context.target)


def _print(kernels: Kernels, context: BuildContext) -> CudaArtifact:
    return print_cuda(kernels, context.target)


def _module(artifact: CudaArtifact, context: BuildContext) -> CudaModule:
    return make_module(artifact)


STAGES = (
    Stage("te", lambda schedule, context: schedule, {"te": schedule_text}),
    Stage("tir", _lower),
    Stage("tir.opt", _optimize),
    Stage("kernels", _kernels),
    Stage("cu", _print, {"cu": lambda artifact: artifact.source}),
    Stage("module", _module, {"module": print_value}),
)


class CudaBackend(Backend):
    kind = TargetKind.CUDA
    graph = GraphOptions(fold_on_host=True, float16_arithmetic=True,
                         templates={"conv2d_nchw": "conv2d_nchw_cuda", "matmul": "matmul_cuda"})

    def stages(self) -> Sequence[Stage]:
        return STAGES

    def default_schedule(self, outputs: Sequence[Tensor], target: Target) -> Schedule:
        return schedule_cuda(list(outputs), target)

    def make_module(self, func: PrimFunc, artifact: Any, target: Target) -> CudaModule:
        return make_module(artifact)

    def emulation_reason(self, target: Target) -> str | None:
        if gpu_available():
            return None
        return ("no CUDA device is available (CuPy and a GPU), so its kernels will run in CPU emulation: the results "
                "are checked, the speed is not a GPU's")

    def precompile(self, artifact: Any, target: Target) -> None:
        precompile(artifact)

    def describe(self, target: Target) -> list[str]:
        lines = [f"architecture: {target.arch} (compute capability {target.arch[3:-1]}.{target.arch[-1]})",
                 f"limits per block: {target.max_threads_per_block} threads, "
                 f"{target.max_shared_memory_per_block // 1024} KiB shared memory (over "
                 f"{CUDA_STATIC_SHARED_MEMORY // 1024} KiB: dynamic, with the opt-in), "
                 f"{target.max_registers_per_block} registers"]
        lines.append(f"nvcc: {shutil.which('nvcc')} (PTX and ptxas's resource report available)" if nvcc_available()
                     else "nvcc: not on the PATH (no PTX, no ptxas resource report)")
        if gpu_available():
            lines.append("runs on: the GPU, through CuPy")
            return lines
        try:
            lines.append(f"runs on: a CPU emulation of the same CUDA C ({host_compiler()} with OpenMP); no GPU seen")
        except EmulationError:
            lines.append("runs on: nothing here: no GPU (CuPy) and no C++ compiler for the CPU emulation")
        return lines

    def save_kernels(self, modules: Sequence[Any], folder: Path, target: Target) -> None:
        """``kernels.cu``: the CUDA C of every distinct module, its launch descriptions on the last line."""
        export_cuda_modules(modules, folder)

    def read_kernels(self, file: Callable[[str], Path], target: Target) -> SavedKernels:
        text, described = read_cuda_source(file(SOURCE))
        signatures = {name: module_signature(value) for name, value in described.items()}
        return SavedKernels(SOURCE, signatures, (text, described))

    def load_kernels(self, saved: SavedKernels, entries: Sequence[str], target: Target) -> list[Any]:
        text, described = saved.state
        artifacts = load_cuda_artifacts(text, {entry: described[entry] for entry in entries}, target)
        modules = {name: make_module(artifact) for name, artifact in artifacts.items()}
        return [modules[entry] for entry in entries]
