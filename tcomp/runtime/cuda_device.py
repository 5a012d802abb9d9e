"""CUDA on a GPU through CuPy (``pip install cupy-cuda12x``), when it is installed and sees a device.

The generated source is compiled once by NVRTC (``cupy.RawModule``); a kernel with dynamic shared memory gets the
opt-in attribute (``max_dynamic_shared_size_bytes``) and asks for it at each launch. A call copies the numpy inputs
to the device, launches the kernels in order on the current stream, and copies the written buffers back.
``time_evaluator`` times the kernels alone (data already on the device) with CUDA events. Nothing here runs without
a GPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tcomp.gpu_probe import gpu_available
from tcomp.runtime.cuda_artifact import CudaArtifact
from tcomp.runtime.cuda_module import CudaModule
from tcomp.runtime.timer import TimingResult

# function, grid, block, arguments, dynamic shared memory in bytes
Launch = tuple[Any, tuple[int, int, int], tuple[int, int, int], tuple[Any, ...], int]


def _raw_module(artifact: CudaArtifact) -> Any:
    import cupy

    options = (f"--gpu-architecture=compute_{artifact.target.arch[3:]}", "-std=c++17")
    return cupy.RawModule(code=artifact.source, options=options)


def precompile(artifact: CudaArtifact) -> None:
    """Compile and load ``artifact``'s kernels once, as ``DeviceCudaModule`` will: NVRTC and the driver keep what
    they compiled in their disk caches, so a later process loads the kernels without compiling them (tuning
    builders call this in parallel, the runner then only loads). Nothing happens without a GPU."""
    if not gpu_available():
        return
    module = _raw_module(artifact)
    for kernel in artifact.kernels:
        module.get_function(kernel.name)


class DeviceCudaModule(CudaModule):
    """A CUDA module run on the GPU (see the module docstring)."""

    runtime_name = "gpu"

    def __init__(self, artifact: CudaArtifact) -> None:
        super().__init__(artifact)
        import cupy

        self._cupy = cupy
        self._module = _raw_module(artifact)
        self._functions = [self._module.get_function(k.name) for k in artifact.kernels]
        for kernel, function in zip(artifact.kernels, self._functions):
            if kernel.dynamic_shared_bytes:  # the opt-in above the 48 KB every kernel may have
                function.max_dynamic_shared_size_bytes = kernel.dynamic_shared_bytes

    def prepare_launches(self, device_arrays: list[Any], sizes: dict[Any, int]) -> list[Launch]:
        """Each kernel's function, grid, block and arguments for a call on ``device_arrays`` (arrays already on the
        device: parameters, then temporaries), ready to launch again and again (kernels with an empty grid are
        left out)."""
        buffers = dict(zip(self.buffer_ids(), device_arrays))
        launches = []
        for kernel, function in zip(self.kernels, self._functions):
            config = kernel.launch_config(sizes)
            if 0 in config.grid:
                continue
            pointer_args, scalar_args = self.kernel_arguments(kernel, buffers, sizes)
            scalars = [np.int64(s) if v.dtype == "int64" else np.int32(s)
                       for v, s in zip(kernel.size_vars, scalar_args)]
            launches.append((function, config.grid, config.block, (*pointer_args, *scalars),
                             kernel.dynamic_shared_bytes))
        return launches

    def device_call(self, device_arrays: list[Any], sizes: dict[Any, int]) -> None:
        """Launch the kernels on arrays already on the device (parameters, then temporaries)."""
        run_launches(self.prepare_launches(device_arrays, sizes))

    def _to_device(self, arrays: tuple[Any, ...]) -> tuple[list[Any], dict[Any, int]]:
        _, sizes = self.bind_sizes(arrays)
        cupy = self._cupy
        device = [cupy.asarray(a) for a in arrays]
        device += [cupy.empty(t.shape, t.dtype) for t in self.temporaries(sizes)]
        return device, sizes

    def __call__(self, *arrays: Any) -> None:
        device, sizes = self._to_device(arrays)
        self.device_call(device, sizes)
        for index in self._checker.written:
            arrays[index][...] = device[index].get()

    def time_evaluator(self, number: int = 10, repeat: int = 3,
                       min_repeat_ms: float = 0) -> Callable[..., TimingResult]:
        """Kernel time per call measured with CUDA events (inputs copied to the device once, before timing)."""

        def evaluate(*arrays: Any) -> TimingResult:
            cupy = self._cupy
            device, sizes = self._to_device(arrays)
            launches = self.prepare_launches(device, sizes)
            run_launches(launches)  # warm-up
            results: list[float] = []
            count = number
            while len(results) < repeat:
                elapsed = event_seconds(cupy, lambda: run_launches(launches), count)
                if elapsed * 1e3 < min_repeat_ms:
                    count *= 2
                    continue
                results.append(elapsed / count)
            return TimingResult(tuple(results), count)

        return evaluate


def run_launches(launches: list[Launch]) -> None:
    """Launch prepared kernels in order on the current stream."""
    for function, grid, block, args, shared in launches:
        function(grid, block, args, shared_mem=shared)


def event_seconds(cupy: Any, run: Callable[[], object], count: int, stream: Any = None) -> float:
    """Seconds that ``count`` calls of ``run`` keep the GPU busy, between two CUDA events on ``stream`` (default:
    the current stream)."""
    start, stop = cupy.cuda.Event(), cupy.cuda.Event()
    start.record(stream)
    for _ in range(count):
        run()
    stop.record(stream)
    stop.synchronize()
    return float(cupy.cuda.get_elapsed_time(start, stop)) / 1e3
