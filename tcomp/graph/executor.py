"""The graph executor: one compiled kernel per top-level node, storage pre-allocated from the memory plan,
parameters bound once.

API (classic TVM graph runtime, plus a plain call)::

    ex = tcomp.graph.compile("model.onnx", target="llvm")
    ex.set_input("data", x)            # or ex.set_input(**params)
    ex.run()                           # or ex.run(data=x)
    y = ex.get_output(0)               # a copy; ex.get_num_outputs()
    [y] = ex.run([x])                  # inputs in graph order -> outputs as numpy arrays
    ex.export("out/")                  # kernels.so + graph.json + params.npz
    ex2 = tcomp.graph.load_executor("out/")

Each kernel is an entry point with the ABI of ``tcomp/runtime/artifact.py``, with argument pointers prepared once;
a run calls them all through one ``ctypes`` call (``tcomp/runtime/sequence.py``). Kernels come from the JIT (after
``compile``) or from the exported library (after ``load_executor``); both run the same code.

``run(inputs)`` reads and writes the caller's arrays where it can instead of copying: an input or output whose
planned storage holds no other value (``bindable``) is bound for that run, by its argument pointers, to the array
given (an input of the exact dtype and shape, C-ordered and aligned) or to a new array the run returns (an output).
An input stays bound (a later ``run()`` reads it again) until it is set again; an output until the next run, so an
array handed to the caller is never written while the caller holds it. The memory of the outputs of the last
``RECYCLED_RUNS`` runs is kept and serves a new output once no array the caller holds is on it (a loop that feeds
each run's outputs to the next, as a decoder its cache, then writes pages already mapped).
"""

from __future__ import annotations

import ctypes
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tcomp.graph.export import export_executor
from tcomp.graph.ir import GraphError, TensorType
from tcomp.ir import dtype as dt
from tcomp.runtime.artifact import ENTRY_PROTOTYPE
from tcomp.runtime.errors import KernelError
from tcomp.runtime.sequence import SequenceRunner
from tcomp.target import Target

ALIGNMENT = 64
RECYCLED_RUNS = 2


@dataclass(frozen=True)
class KernelSpec:
    """What the executor needs to call one kernel: its symbol, argument values and error messages."""

    name: str  # the node it computes
    entry: str  # the exported symbol
    args: tuple[str, ...]  # value names: inputs, then outputs
    num_inputs: int
    asserts: tuple[tuple[str, int], ...]  # (message, number of values) per runtime check
    error_slots: int
    sizes: tuple[int, ...] = ()  # the values of its symbolic dimensions (``tcomp.graph.dynamic``), in order


@dataclass
class ExecutorProgram:
    """Everything an executor needs besides the code: value types, storages, parameters, kernels."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    types: dict[str, TensorType]
    storage_of: dict[str, int]
    storage_bytes: tuple[int, ...]
    params: dict[str, np.ndarray]
    kernels: list[KernelSpec]
    target: str
    stats: dict[str, Any] = field(default_factory=dict)
    constants: tuple[str, ...] = ()  # parameters compiled into the code (one element): not read at run time
    offset_of: dict[str, int] = field(default_factory=dict)  # byte offset of a value in its storage, where not 0
    random_states: tuple[str, ...] = ()  # parameters the executor advances before each run (``opdefs/random.py``)


def _block(nbytes: int) -> np.ndarray:
    """Memory for ``nbytes`` (at least one) at an ``ALIGNMENT``-byte boundary somewhere inside (``_aligned``)."""
    return np.empty(max(nbytes, 1) + ALIGNMENT, dtype=np.uint8)


def _aligned(block: np.ndarray, nbytes: int) -> np.ndarray:
    """The ``nbytes`` (at least one) of ``block`` from its first ``ALIGNMENT``-byte boundary."""
    offset = (-block.ctypes.data) % ALIGNMENT
    return block[offset: offset + max(nbytes, 1)]


def _aligned_storage(nbytes: int) -> np.ndarray:
    return _aligned(_block(nbytes), nbytes)


class GraphExecutor:
    """Runs a compiled graph. Not safe to run from several threads at once (the storage is shared)."""

    def __init__(self, program: ExecutorProgram, addresses: Sequence[int], keep_alive: Any = None) -> None:
        self.program = program
        self._keep_alive = keep_alive  # JIT engines or the loaded library
        try:
            self._storage = [_aligned_storage(n) for n in program.storage_bytes]
        except MemoryError:
            total = sum(program.storage_bytes)
            raise GraphError(f"{program.name}: cannot allocate the {total} bytes of its memory plan") from None
        self._arrays: dict[str, np.ndarray] = {}
        for name, storage in program.storage_of.items():
            t = program.types[name]
            self._arrays[name] = storage_view(self._storage[storage], t, program.offset_of.get(name, 0))
        for name, value in program.params.items():
            self._arrays[name] = np.require(value, requirements="C")
        self._random = [_random_state() for _ in program.random_states]  # this executor's own, never shared
        self._arrays.update(zip(program.random_states, self._random))
        self._calls = []
        self._addresses = [int(address) for address in addresses]
        for spec, address in zip(program.kernels, self._addresses):
            if address == 0:
                raise GraphError(f"kernel {spec.entry} has no code")
            arrays = [self._arrays[a] for a in spec.args]
            pointers = (ctypes.c_void_p * max(1, len(arrays)))(*[a.ctypes.data for a in arrays])
            sizes = (ctypes.c_int64 * max(1, len(spec.sizes)))(*spec.sizes)
            errors = (ctypes.c_int64 * max(1, spec.error_slots))()
            self._calls.append((ENTRY_PROTOTYPE(address), pointers, sizes, errors, spec))
        self._native_calls = self._calls  # a subclass may replace ``_calls`` by callables that are not entry points
        self._slots = _argument_slots(self._calls)
        self._bindable = {name: (np.dtype(_numpy_dtype(program.types[name].dtype)), program.types[name].shape)
                          for name in bindable(program)}  # with the dtype and shape a bound array has
        self._planned: dict[str, np.ndarray] = {}  # value -> its planned array, while bound to another
        self._returned: list[np.ndarray] = []  # the memory of the outputs the last runs returned
        self._output_bytes: dict[str, int] = {}  # per output, the memory to give each of its arrays when larger
        self._sequence: SequenceRunner | None = None
        self._input_index = {name: i for i, name in enumerate(program.inputs)}
        self.modules: list[Any] | None = None  # the kernels' modules, one per kernel (compiled executors; for export)
        self.graph: Any = None  # the optimized graph, when compiled in this process
        self._runs_here = False

    # ------------------------------------------------------------------------------------------------------ inputs
    def set_input(self, key: str | int | None = None, value: Any = None, **params: Any) -> None:
        """Copy ``value`` into input ``key`` (a name or an index); ``set_input(**params)`` sets several."""
        if key is not None:
            self._set_one(key, value)
        take_inputs(self.program.name, self.program.inputs, self._set_one, None, params)

    def _set_one(self, key: str | int, value: Any) -> None:
        name = self.program.inputs[key] if isinstance(key, int) else key
        self._unbind((name,))  # copied into the planned storage, not into the array of an earlier run
        if name not in self._input_index:
            if name in self.program.params or name in self.program.constants:
                self._set_param(name, value)
                return
            raise KeyError(f"{self.program.name} has no input {name!r}; inputs: {list(self.program.inputs)}")
        t = self.program.types[name]
        array = np.asarray(value)
        if array.shape != t.shape:
            raise ValueError(f"input {name!r}: expected shape {t.shape}, got {array.shape}")
        expected = np.dtype(_numpy_dtype(t.dtype))
        if array.dtype != expected:
            if not np.can_cast(array.dtype, expected, casting="same_kind"):
                raise TypeError(f"input {name!r}: expected {expected}, got {array.dtype}")
            array = array.astype(expected)
        np.copyto(self._arrays[name], array)

    def _set_param(self, name: str, value: Any) -> None:
        read = any(name in spec.args for spec in self.program.kernels) or name in self.program.outputs
        if name in self.program.constants or not read:
            raise ValueError(f"parameter {name!r} is compiled into the code as a constant (a one-element parameter)"
                             " and cannot change after compilation; to change it, compile the model again with "
                             "the new value")
        target = self._arrays[name]
        array = np.asarray(value)
        if array.shape != target.shape:
            raise ValueError(f"parameter {name!r}: expected shape {target.shape}, got {array.shape}")
        np.copyto(target, array.astype(target.dtype, copy=False))

    # ------------------------------------------------------------------------------------------------------ running
    def run(self, inputs: Sequence[Any] | Mapping[str, Any] | None = None, **named: Any) -> list[np.ndarray] | None:
        """Run the graph. ``run(**inputs)`` / ``run()`` as TVM (results via ``get_output``); ``run([x, ...])`` or
        ``run({"x": x})`` returns the outputs as numpy arrays (see the module docstring for the arrays it binds)."""
        self._unbind(self.program.outputs)
        if inputs is None:
            take_inputs(self.program.name, self.program.inputs, self._set_one, inputs, named)
            self._check_runs_here()
            self._run_kernels()
            return None
        binds = self._calls is self._native_calls
        take_inputs(self.program.name, self.program.inputs, self._bind_input if binds else self._set_one, inputs,
                    named)
        fresh = {}
        issued: list[np.ndarray] = []
        for name in self.program.outputs:
            if binds and name in self._bindable and name not in fresh:
                fresh[name] = self._output_array(*self._bindable[name], issued, self._output_bytes.get(name, 0))
                self._bind(name, fresh[name])
        self._returned = (self._returned + issued)[-RECYCLED_RUNS * max(1, len(issued)):]
        self._check_runs_here()
        self._run_kernels()
        return [fresh[name] if name in fresh else self.get_output(i) for i, name in enumerate(self.program.outputs)]

    def _output_array(self, dtype: np.dtype, shape: tuple[int, ...], issued: list[np.ndarray],
                      block_bytes: int = 0) -> np.ndarray:
        """A new array for an output, on the memory of one an earlier run returned where the caller holds no array
        on it any more (fresh pages cost more than the writes: 11 against 3 ms for 74 MB here). The memory is
        ``block_bytes`` long where that is more than the array needs (the output's largest size, so that an output
        whose size changes from run to run still takes an earlier one's memory)."""
        size = dtype.itemsize * math.prod(shape)
        length = max(size, block_bytes)
        block = None
        for position in range(len(self._returned)):
            candidate = self._returned[position]
            if candidate.nbytes == length + ALIGNMENT and sys.getrefcount(candidate) == 3:  # list, here, argument
                block = self._returned.pop(position)
                break
        if block is None:
            block = _block(length)
        issued.append(block)
        return _aligned(block, size).view(dtype).reshape(shape)

    def _bind_input(self, key: str | int, value: Any) -> None:
        """Input ``key`` read from ``value`` itself by this run when it can be, else copied (``_set_one``)."""
        name = self.program.inputs[key] if isinstance(key, int) else key
        layout = self._bindable.get(name)
        if layout is not None and isinstance(value, np.ndarray) and value.dtype == layout[0] \
                and value.shape == layout[1] and value.flags.c_contiguous and value.flags.aligned:
            self._bind(name, value)
        else:
            self._set_one(key, value)

    def _bind(self, name: str, array: np.ndarray) -> None:
        self._planned.setdefault(name, self._arrays[name])
        self._place(name, array)

    def _unbind(self, names: Sequence[str]) -> None:
        """Values ``names`` back on their planned storage."""
        for name in names:
            planned = self._planned.pop(name, None)
            if planned is not None:
                self._place(name, planned)

    def _place(self, name: str, array: np.ndarray) -> None:
        """Value ``name`` read and written at ``array`` by every kernel argument that is it."""
        self._arrays[name] = array
        address = array.ctypes.data
        for pointers, position in self._slots.get(name, ()):
            pointers[position] = address

    def get_output(self, index: int) -> np.ndarray:
        """A copy of output ``index``."""
        return self._arrays[self.program.outputs[index]].copy()

    def get_num_outputs(self) -> int:
        return len(self.program.outputs)

    def get_input(self, key: str | int) -> np.ndarray:
        name = self.program.inputs[key] if isinstance(key, int) else key
        return self._arrays[name].copy()

    @property
    def input_names(self) -> tuple[str, ...]:
        """The model's input names, in order."""
        return self.program.inputs

    @property
    def output_names(self) -> tuple[str, ...]:
        """The model's output names, in the order ``run`` returns them."""
        return self.program.outputs

    @property
    def num_kernels(self) -> int:
        return len(self._calls)

    # ------------------------------------------------------------------------------------------------------ timing
    def benchmark(self, repeat: int = 10, number: int = 1, warmup: int = 1) -> list[float]:
        """Seconds per run, one entry per repeat (each the mean of ``number`` runs), after ``warmup`` runs."""
        self._check_runs_here()
        for _ in range(warmup):
            self.run()
        results = []
        for _ in range(repeat):
            start = time.perf_counter()
            for _ in range(number):
                self._run_kernels()
            results.append((time.perf_counter() - start) / number)
        return results

    def profile(self, repeat: int = 10) -> list[tuple[str, str, float]]:
        """(node, kernel symbol, mean seconds) per kernel over ``repeat`` runs, in execution order."""
        self.run()
        totals = [0.0] * len(self._calls)
        for _ in range(repeat):
            for position, call in enumerate(self._calls):
                start = time.perf_counter()
                _invoke(call)
                totals[position] += time.perf_counter() - start
        return [(call[4].name, call[4].entry, totals[i] / repeat) for i, call in enumerate(self._calls)]

    def _run_kernels(self) -> None:
        """Every kernel in order: compiled entry points in one call (``tcomp/runtime/sequence.py``: no Python work
        per kernel), other callables one by one. Random states advance first: every run draws new numbers."""
        self._advance_random()
        if self._calls is not self._native_calls:
            for call in self._calls:
                _invoke(call)
            return
        if self._sequence is None:
            self._sequence = SequenceRunner([(address, pointers, sizes, errors) for address, (_, pointers, sizes,
                                             errors, _) in zip(self._addresses, self._calls)])
        status, failed = self._sequence.run()
        if status != 0:
            _, _, _, errors, spec = self._calls[failed]
            _raise(status, errors, spec)

    def _advance_random(self) -> None:
        for state in self._random:
            state[1] += np.uint64(1)

    def _check_runs_here(self) -> None:
        """Refuse to run kernels built for a CPU whose vector features this machine lacks (an illegal instruction
        would stop the process)."""
        if not self._runs_here:
            Target(self.program.target).check_runs_here()
            self._runs_here = True

    def export(self, folder: str | os.PathLike[str]) -> None:
        """Write the compiled model to ``folder`` (see ``tcomp.graph.export``); ``tcomp.graph.load_executor`` loads
        it back without compiling."""
        export_executor(self, folder)


def _random_state() -> np.ndarray:
    """A random state (``tcomp/ops/random.py``): a key drawn from the system's entropy, so that unseeded draws differ
    from one executor to the next, and a run counter."""
    return np.array([int.from_bytes(os.urandom(8), "little"), 0], dtype=np.uint64)


def take_inputs(name: str, input_names: Sequence[str], set_one: Callable[[str | int, Any], None],
                inputs: Sequence[Any] | Mapping[str, Any] | None, named: Mapping[str, Any]) -> None:
    """Give ``set_one(key, value)`` the inputs of a ``run`` or ``set_input`` call of executor ``name``: those named
    by keyword, then ``inputs``, a mapping by name or a sequence in ``input_names`` order (of the right length)."""
    for key, value in named.items():
        set_one(key, value)
    if inputs is None:
        return
    if isinstance(inputs, Mapping):
        for key, value in inputs.items():
            set_one(key, value)
        return
    if len(inputs) != len(input_names):
        raise TypeError(f"{name} takes {len(input_names)} inputs {list(input_names)}, got {len(inputs)}")
    for index, value in enumerate(inputs):
        set_one(index, value)


def bindable(program: ExecutorProgram) -> frozenset[str]:
    """The inputs and outputs a run may bind to the caller's arrays: those alone in their storage (no other value
    placed there at any time, no part written at an offset), of at least one element, not both input and output."""
    sharing: dict[int, int] = {}
    for storage in program.storage_of.values():
        sharing[storage] = sharing.get(storage, 0) + 1
    both = set(program.inputs) & set(program.outputs)
    return frozenset(name for name in (*program.inputs, *program.outputs)
                     if name in program.storage_of and sharing[program.storage_of[name]] == 1
                     and not program.offset_of.get(name) and name not in both and program.types[name].numel > 0)


def _argument_slots(calls: Sequence[tuple[Any, Any, Any, Any, KernelSpec]]) -> dict[str, list[tuple[Any, int]]]:
    """value -> (the argument pointers of a kernel, the position) for every argument that is that value."""
    slots: dict[str, list[tuple[Any, int]]] = {}
    for _, pointers, _, _, spec in calls:
        for position, name in enumerate(spec.args):
            slots.setdefault(name, []).append((pointers, position))
    return slots


def storage_view(storage: Any, t: TensorType, offset: int = 0) -> Any:
    """The array of type ``t`` at byte ``offset`` of ``storage`` (a byte array: numpy's, or cupy's)."""
    dtype = np.dtype(_numpy_dtype(t.dtype))
    return storage[offset: offset + t.numel * dtype.itemsize].view(dtype).reshape(t.shape)


def _numpy_dtype(dtype: str) -> Any:
    return dt.to_numpy(dtype)


def _invoke(call: tuple[Any, Any, Any, Any, KernelSpec]) -> None:
    entry, pointers, sizes, errors, spec = call
    status = entry(pointers, sizes, errors)
    if status != 0:
        _raise(status, errors, spec)


def _raise(status: int, errors: Any, spec: KernelSpec) -> None:
    recorded = int(errors[0]) or status
    values = [int(errors[k]) for k in range(1, len(errors))]
    for k in range(len(errors)):
        errors[k] = 0
    if not 1 <= recorded <= len(spec.asserts):
        raise KernelError(f"{spec.name}: the kernel failed with unknown status {recorded}", recorded)
    message, count = spec.asserts[recorded - 1]
    shown = tuple(values[:count])
    try:
        text = message.format(*shown)
    except (IndexError, KeyError, ValueError):
        text = f"{message} (values: {', '.join(map(str, shown))})"
    raise KernelError(f"{spec.name}: {text}", recorded, shown)
