"""Graph executors for ``target="cuda"``: the same API as ``GraphExecutor`` (``set_input`` / ``run`` /
``get_output`` / ``benchmark`` / ``profile``).

- ``CudaGraphExecutor`` (CPU emulation): each kernel is a ``CudaModule`` called on the numpy arrays of its arguments.
  A run that lasts over a second shows a progress line on stderr (kernel k of n, seconds so far) when stderr is a
  terminal or ``progress`` is set.
- ``DeviceGraphExecutor`` (a GPU through CuPy): the memory plan's storage, the parameters and every kernel's
  temporaries live on the device, allocated once; every launch (function, grid, block, argument pointers) is
  prepared once, so ``run`` copies the inputs in, launches the kernels in order on the current stream and leaves
  the values on the device until ``get_output`` copies one back. ``benchmark`` and ``profile`` time with CUDA
  events; ``benchmark(cuda_graph=True)`` replays the launches as one captured CUDA graph.

``make_cuda_executor`` picks the one that fits the modules; ``make_executor`` the executor for any compiled or
loaded kernels. ``export`` writes the CUDA C and launch descriptions (the CUDA backend's ``export.py``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import numpy as np

from tcomp.graph.executor import ExecutorProgram, GraphExecutor, storage_view
from tcomp.runtime.cuda_device import DeviceCudaModule, event_seconds, run_launches
from tcomp.runtime.module import NativeEntry

PROGRESS_AFTER_SECONDS = 1.0


class Progress:
    """The progress line of an emulated run: ``emulating kernel k/n (node) s`` rewritten in place on ``stream``,
    shown once the run has lasted ``PROGRESS_AFTER_SECONDS``, ended with a newline."""

    def __init__(self, stream: TextIO, total: int) -> None:
        self.stream, self.total = stream, total
        self.start = time.perf_counter()
        self.shown = False

    def kernel(self, position: int, name: str) -> None:
        elapsed = time.perf_counter() - self.start
        if elapsed < PROGRESS_AFTER_SECONDS:
            return
        self.shown = True
        self.stream.write(f"\remulating kernel {position + 1}/{self.total} ({name[:40]}) {elapsed:.1f} s\x1b[K")
        self.stream.flush()

    def done(self) -> None:
        if self.shown:
            elapsed = time.perf_counter() - self.start
            self.stream.write(f"\remulated {self.total} kernels in {elapsed:.1f} s\x1b[K\n")
            self.stream.flush()


class CudaGraphExecutor(GraphExecutor):
    """A ``GraphExecutor`` whose kernels are CUDA modules (see the module docstring). ``progress``: show the
    progress line of emulated runs (``None``: when stderr is a terminal)."""

    def __init__(self, program: ExecutorProgram, modules: Sequence[Any]) -> None:
        super().__init__(program, [1] * len(modules), keep_alive=list(modules))
        self.progress: bool | None = None
        self._progress: Progress | None = None
        calls = []
        for position, ((_, pointers, sizes, errors, spec), module) in enumerate(zip(self._calls, modules)):
            arrays = [self._arrays[a] for a in spec.args]
            calls.append((self._entry(module, arrays, position, spec.name), pointers, sizes, errors, spec))
        self._calls = calls
        self.modules = list(modules)

    def _entry(self, module: Any, arrays: Sequence[np.ndarray], position: int, name: str) -> Any:
        def call(pointers: Any, sizes: Any, errors: Any) -> int:
            if self._progress is not None:
                self._progress.kernel(position, name)
            module(*arrays)
            return 0

        return call

    def run(self, inputs: Sequence[Any] | Mapping[str, Any] | None = None, **named: Any) -> list[np.ndarray] | None:
        show = self.progress if self.progress is not None else sys.stderr.isatty()
        self._progress = Progress(sys.stderr, len(self._calls)) if show else None
        try:
            return super().run(inputs, **named)
        finally:
            if self._progress is not None:
                self._progress.done()
            self._progress = None


class DeviceGraphExecutor(CudaGraphExecutor):
    """A ``GraphExecutor`` whose values live on the GPU (see the module docstring)."""

    def __init__(self, program: ExecutorProgram, modules: Sequence[Any]) -> None:
        super().__init__(program, modules)
        import cupy

        self._cupy = cupy
        self._storage_device = [cupy.empty(max(n, 1), dtype=cupy.uint8) for n in program.storage_bytes]
        device: dict[str, Any] = {}
        for name, storage in program.storage_of.items():
            device[name] = storage_view(self._storage_device[storage], program.types[name],
                                        program.offset_of.get(name, 0))
        for name in program.params:
            device[name] = cupy.asarray(self._arrays[name])
        self._device = device
        self._temporaries: list[Any] = []
        self._launches: list[list[Any]] = []
        calls = []
        for (_, _, _, _, spec), module in zip(self._calls, modules):
            _, sizes = module.bind_sizes([self._arrays[a] for a in spec.args])
            temporaries = [cupy.empty(t.shape, t.dtype) for t in module.temporaries(sizes)]
            self._temporaries.extend(temporaries)
            launches = module.prepare_launches([device[a] for a in spec.args] + temporaries, sizes)
            self._launches.append(launches)
            calls.append((_device_entry(launches), None, None, None, spec))
        self._calls = calls
        self._graph: Any = None

    def _set_one(self, key: str | int, value: Any) -> None:
        super()._set_one(key, value)
        name = self.program.inputs[key] if isinstance(key, int) else key
        self._device[name].set(self._arrays[name])

    def _advance_random(self) -> None:
        super()._advance_random()
        for name in self.program.random_states:
            self._device[name].set(self._arrays[name])

    def get_output(self, index: int) -> np.ndarray:
        return self._cupy.asnumpy(self._device[self.program.outputs[index]])

    def get_input(self, key: str | int) -> np.ndarray:
        name = self.program.inputs[key] if isinstance(key, int) else key
        return self._cupy.asnumpy(self._device[name])

    def _launch_all(self) -> None:
        for launches in self._launches:
            run_launches(launches)

    def _captured_graph(self) -> Any:
        """The launches captured once as a CUDA graph on a stream of their own."""
        if self._graph is None:
            stream = self._cupy.cuda.Stream(non_blocking=True)
            with stream:
                stream.begin_capture()
                self._launch_all()
                self._graph = (stream, stream.end_capture())
        return self._graph

    def benchmark(self, repeat: int = 10, number: int = 1, warmup: int = 1,
                  cuda_graph: bool = False) -> list[float]:
        """Seconds per run (the kernels alone, inputs already on the device), one entry per repeat, measured with
        CUDA events; ``cuda_graph`` replays a captured CUDA graph instead of launching from Python."""
        cupy = self._cupy
        stream: Any = cupy.cuda.get_current_stream()
        if cuda_graph:
            stream, graph = self._captured_graph()

            def once() -> None:
                graph.launch(stream)
        else:
            once = self._launch_all
        with stream:
            for _ in range(warmup):
                once()
            stream.synchronize()
            return [event_seconds(cupy, once, number, stream) / number for _ in range(repeat)]

    def profile(self, repeat: int = 10) -> list[tuple[str, str, float]]:
        """(node, kernel symbol, mean seconds) per kernel over ``repeat`` runs, timed with CUDA events."""
        cupy = self._cupy
        self._launch_all()
        totals = [0.0] * len(self._launches)
        for _ in range(repeat):
            events = [cupy.cuda.Event() for _ in range(len(self._launches) + 1)]
            events[0].record()
            for position, launches in enumerate(self._launches):
                run_launches(launches)
                events[position + 1].record()
            events[-1].synchronize()
            for position in range(len(self._launches)):
                totals[position] += cupy.cuda.get_elapsed_time(events[position], events[position + 1]) / 1e3
        return [(call[4].name, call[4].entry, totals[i] / repeat) for i, call in enumerate(self._calls)]


def _device_entry(launches: list[Any]) -> Any:
    def call(pointers: Any, sizes: Any, errors: Any) -> int:
        run_launches(launches)
        return 0

    return call


def make_cuda_executor(program: ExecutorProgram, modules: Sequence[Any]) -> CudaGraphExecutor:
    """A ``DeviceGraphExecutor`` when the modules run on a GPU, else a ``CudaGraphExecutor``."""
    if modules and all(isinstance(m, DeviceCudaModule) for m in modules):
        return DeviceGraphExecutor(program, modules)
    return CudaGraphExecutor(program, modules)


def native_entry(kernel: Any) -> NativeEntry | None:
    """The kernel's entry function with the CPU ABI, or None for a module called on arrays."""
    if isinstance(kernel, NativeEntry):
        return kernel
    entry = getattr(kernel, "native_entry", None)
    return entry() if callable(entry) else None


def make_executor(program: ExecutorProgram, kernels: Sequence[Any], compiled: bool = True,
                  executor_type: type[GraphExecutor] = GraphExecutor) -> GraphExecutor:
    """The executor that fits ``kernels`` (one per ``program.kernels`` entry): entry functions with the CPU ABI
    (``NativeEntry``, or modules that have one) run in an ``executor_type`` calling them directly; other modules in
    ``make_cuda_executor``'s. Kernels ``compiled`` in this process are kept as ``modules``, for export."""
    entries = [native_entry(kernel) for kernel in kernels]
    if not all(entry is not None for entry in entries):
        return make_cuda_executor(program, kernels)
    executor = executor_type(program, [e.address for e in entries if e is not None], keep_alive=list(kernels))
    executor.modules = list(kernels) if compiled else None
    return executor
