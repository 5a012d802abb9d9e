"""``CudaModule``: what the emulated and the GPU runtimes share: argument checks, launch configurations, sources.

A call ``mod(a, b, c)`` checks the numpy arrays against the function's parameters (as CPU modules do), binds the size
variables, allocates the global temporaries, and launches each kernel in order with its grid and block for these
shapes. Subclasses say how a kernel is launched and where the data lives.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tcomp.ir import dtype as dt
from tcomp.ir.expr import Var
from tcomp.runtime.args import ArgumentChecker
from tcomp.runtime.cuda_artifact import CudaArtifact, KernelInfo, LaunchConfig, buffer_elements
from tcomp.runtime.nvcc import compile_ptx
from tcomp.runtime.timer import TimingResult, measure

CUDA_SOURCE_FORMATS = ("cuda", "tir", "kernels", "ptx")


class CudaModule:
    """A function compiled to CUDA C kernels, callable on numpy arrays in parameter order (outputs in place)."""

    runtime_name = "cuda"

    def __init__(self, artifact: CudaArtifact) -> None:
        self.artifact = artifact
        self.func = artifact.func
        self.target = artifact.target
        self.kernels: tuple[KernelInfo, ...] = artifact.kernels
        self._checker = ArgumentChecker(artifact.func)
        self._lock = threading.Lock()

    @property
    def entry_name(self) -> str:
        return self.func.name

    @property
    def asserts(self) -> tuple[()]:
        """Kernels report no failed checks through a status (the host checks shapes before launching)."""
        return ()

    @property
    def error_slots(self) -> int:
        return 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.func.name}, target={self.target}, runtime={self.runtime_name})"

    # -- calling -----------------------------------------------------------------------------------------------------
    def bind_sizes(self, arrays: Sequence[Any]) -> tuple[list[int], dict[Var, int]]:
        """Check ``arrays``; return their host data pointers and the size variables' values."""
        pointers, values = self._checker.check(arrays)
        return pointers, dict(zip(self.func.size_vars, values))

    def launch_configs(self, *arrays: Any) -> list[LaunchConfig]:
        """The grid and block of each kernel for a call with ``arrays``."""
        _, sizes = self.bind_sizes(arrays)
        return [kernel.launch_config(sizes) for kernel in self.kernels]

    def temporaries(self, sizes: dict[Var, int]) -> list[np.ndarray]:
        return [
            np.empty(buffer_elements(b, sizes), dtype=dt.to_numpy(b.dtype)) for b in self.artifact.temporaries
        ]

    def kernel_arguments(
        self, kernel: KernelInfo, buffers: dict[int, Any], sizes: dict[Var, int]
    ) -> tuple[list[Any], list[int]]:
        """The buffer arguments (looked up by buffer id in ``buffers``) and the scalar arguments of ``kernel``."""
        return [buffers[id(b)] for b in kernel.params], [sizes[v] for v in kernel.size_vars]

    def buffer_ids(self) -> list[int]:
        """Ids of the function's parameters, then of its temporaries (the order of a call's buffers)."""
        return [id(b) for b in self.func.params] + [id(b) for b in self.artifact.temporaries]

    def __call__(self, *arrays: Any) -> None:
        raise NotImplementedError

    # -- inspection --------------------------------------------------------------------------------------------------
    def get_source(self, fmt: str = "cuda") -> str:
        """``cuda`` (the CUDA C), ``tir`` (the lowered function), ``kernels`` (each kernel's loop IR after the GPU
        passes) or ``ptx`` (compiled by nvcc, which must be on the PATH)."""
        if fmt == "cuda":
            return self.artifact.source
        if fmt == "tir":
            return str(self.func)
        if fmt == "kernels":
            return "\n\n".join(str(k) for k in self.artifact.kernel_funcs)
        if fmt == "ptx":
            return compile_ptx(self.artifact.source, self.target.arch)
        raise ValueError(f"unknown source format {fmt!r}; expected one of {', '.join(CUDA_SOURCE_FORMATS)}")

    def time_evaluator(self, number: int = 10, repeat: int = 3,
                       min_repeat_ms: float = 0) -> Callable[..., TimingResult]:
        """A function ``(*arrays) -> TimingResult`` timing calls on ``arrays`` (wall clock, see ``timer.measure``)."""

        def evaluate(*arrays: Any) -> TimingResult:
            def run() -> None:
                self(*arrays)

            return measure(run, number, repeat, min_repeat_ms)

        return evaluate
