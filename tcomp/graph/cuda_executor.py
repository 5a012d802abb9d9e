"""Graph executors for ``target="cuda"``: the same ``GraphExecutor`` (storage, parameters, ``run`` / ``benchmark`` /
``profile``), with each kernel a ``CudaModule`` called on the numpy arrays of its arguments (on a GPU through CuPy
when one is available, else in CPU emulation). Export is not supported yet for cuda.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tcomp.graph.executor import ExecutorProgram, GraphExecutor, KernelSpec
from tcomp.graph.ir import GraphError


def _entry(module: Any, arrays: Sequence[np.ndarray]) -> Any:
    def call(pointers: Any, sizes: Any, errors: Any) -> int:
        module(*arrays)
        return 0

    return call


class CudaGraphExecutor(GraphExecutor):
    """A ``GraphExecutor`` whose kernels are CUDA modules (see the module docstring)."""

    def __init__(self, program: ExecutorProgram, modules: Sequence[Any]) -> None:
        super().__init__(program, [1] * len(modules), keep_alive=list(modules))
        calls = []
        for (_, pointers, sizes, errors, spec), module in zip(self._calls, modules):
            arrays = [self._arrays[a] for a in spec.args]
            calls.append((_entry(module, arrays), pointers, sizes, errors, spec))
        self._calls = calls
        self.modules = list(modules)

    def export(self, folder: str) -> None:
        raise GraphError(f"export is not supported yet for cuda (target {self.program.target}); compile for llvm "
                         "to export a model")


def cuda_spec(node_name: str, module: Any, args: tuple[str, ...], num_inputs: int) -> KernelSpec:
    return KernelSpec(name=node_name, entry=module.func.name, args=args, num_inputs=num_inputs, asserts=(),
                      error_slots=0)
