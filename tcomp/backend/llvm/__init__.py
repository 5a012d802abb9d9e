"""The CPU backend: LLVM through llvmlite.

Stages: ``te`` (the schedule) -> ``tir`` (``lower_schedule``) -> ``tir.opt`` (``default_pipeline``: flattening,
vectorization, prefetching, unrolling; bounds checks in checked mode) -> ``ll`` (``codegen_llvm``: LLVM IR, optimized
at O3; the stage also prints ``ll_unopt`` and, emitted on request, ``asm``) -> ``module`` (a ``Module`` JIT-compiling
the IR on its first call). Default schedules: ``tcomp.ops.cpu.schedule_cpu``. A compiled model exports its kernels
as one shared library that lists them (``kernels.so``, ``export.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tcomp.backend.base import Backend, BuildContext, GraphOptions, SavedKernels, Stage, print_value
from tcomp.backend.common import lower_tir, schedule_text
from tcomp.backend.llvm.export import LIBRARY, library_entries, read_library, save_library
from tcomp.codegen.llvm import codegen_llvm
from tcomp.ir.stmt import PrimFunc
from tcomp.ops.cpu import schedule_cpu
from tcomp.runtime.artifact import LLVMArtifact
from tcomp.runtime.module import Module
from tcomp.schedule.schedule import Schedule
from tcomp.target import Precision, Target, TargetKind
from tcomp.te.tensor import Tensor
from tcomp.transform.pipeline import default_pipeline, run_pipeline


def _optimize(func: PrimFunc, context: BuildContext) -> PrimFunc:
    return run_pipeline(func, default_pipeline(context.check_bounds))


def _codegen(func: PrimFunc, context: BuildContext) -> LLVMArtifact:
    return codegen_llvm(func, context.target)


def _module(artifact: LLVMArtifact, context: BuildContext) -> Module:
    assert context.func is not None
    return Module(context.func, artifact, context.target)


STAGES = (
    Stage("te", lambda schedule, context: schedule, {"te": schedule_text}),
    Stage("tir", lower_tir),
    Stage("tir.opt", _optimize),
    Stage("ll", _codegen, {"ll": lambda a: a.ll, "ll_unopt": lambda a: a.ll_unopt, "asm": lambda a: a.assembly()}),
    Stage("module", _module, {"module": print_value}),
)


class LLVMBackend(Backend):
    kind = TargetKind.LLVM
    graph = GraphOptions(blocked_convolutions=True, matvec_weights=True, row_norms=True, fused_attention=True,
                         views=True, gemm_panels=True, concat_in_place=True, symbolic_dimensions=True)

    def stages(self) -> Sequence[Stage]:
        return STAGES

    def default_schedule(self, outputs: Sequence[Tensor], target: Target) -> Schedule:
        return schedule_cpu(list(outputs), target)

    def make_module(self, func: PrimFunc, artifact: Any, target: Target) -> Module:
        return Module(func, artifact, target)

    def emulation_reason(self, target: Target) -> str | None:
        if target.precision is Precision.BF16 and not target.bf16_dots:
            return (f"{target.mcpu} has no AVX512-BF16, so its bfloat16 products run as float32 multiply-adds: the "
                    "same results, at about float32's speed")
        return None

    def describe(self, target: Target) -> list[str]:
        where = "this machine's CPU" if target.host else "another CPU (code built for it may not run here)"
        extra = f", features {','.join(target.mattr)}" if target.mattr else ""
        fma = "yes" if target.has_feature("fma") else "no"
        dots = [name for name, has in (("VNNI bytes", target.byte_dots), ("bfloat16 pairs", target.bf16_dots)) if has]
        return [f"cpu: {target.mcpu} ({where}){extra}",
                f"vectors: {target.vector_bits}-bit, {target.vector_registers} registers; FMA: {fma}; dot products: "
                f"{', '.join(dots) or 'none'}; precision of products: {target.precision}",
                f"parallel loops: {target.num_cores} threads"]

    def save_kernels(self, modules: Sequence[Any], folder: Path, target: Target) -> None:
        """``kernels.so``: the entry functions of every distinct kernel, and the list of them (``export.py``)."""
        save_library(modules, folder, target)

    def read_kernels(self, file: Callable[[str], Path], target: Target) -> SavedKernels:
        library, signatures = read_library(file(LIBRARY))
        return SavedKernels(LIBRARY, signatures, library)

    def load_kernels(self, saved: SavedKernels, entries: Sequence[str], target: Target) -> list[Any]:
        return library_entries(saved.state, entries)
