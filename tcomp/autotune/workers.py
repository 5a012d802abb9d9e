"""The jobs that run inside measurement worker processes (module-level functions, so they pickle by name).

- ``build_job``: instantiate the template with the config and run the target backend's stages up to the artifact
  (``tcomp.backend.compile_artifact``: optimized LLVM IR, or CUDA C). A Python error becomes a status; a crash or
  hang is caught by the pool around it.
- ``run_job``: JIT the IR (or compile the CUDA C for the GPU, or for its CPU emulation where there is no GPU), call
  the kernel once on fresh inputs with outputs poisoned (NaN, or the dtype's maximum), compare with the reference,
  then time it with ``time_evaluator`` (one warm-up call, ``number`` x ``repeat`` calls; ``number`` shrinks for a
  config so slow that the calls would not fit the timeout). On a GPU the time is the kernels' alone, measured
  with CUDA events on data already on the device.

Inputs and reference outputs are made once per task in each runner process (``prepare``): random data from the
seed, outputs from the template's numpy ``reference``, or else from the same compute with the naive default schedule
(built for this machine's CPU).
"""

from __future__ import annotations

import math
import os
import time
import traceback
from typing import Any

import numpy as np

from tcomp import backend, config
from tcomp.autotune.measure import BuildResult, MeasureInput, MeasureStatus, RunOutcome
from tcomp.autotune.task import Task
from tcomp.ir import dtype as dt
from tcomp.ir.expr import const_int_value
from tcomp.runtime.errors import KernelError
from tcomp.runtime.thread_pool import configure_pool, pool_started
from tcomp.runtime.timer import wait_until_threads_idle
from tcomp.schedule.schedule import create_schedule
from tcomp.target import Target


def _error_text(error: BaseException, limit: int = 1500) -> str:
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= limit else text[:limit] + " ..."


def build_job(inp: MeasureInput) -> BuildResult:
    start = time.perf_counter()
    try:
        schedule, tensors = inp.task.instantiate(inp.config)
    except Exception as error:  # noqa: BLE001 - any template failure is this config's status
        return BuildResult(MeasureStatus.INSTANTIATION_ERROR, _error_text(error), time.perf_counter() - start)
    outputs = tuple(k for k, t in enumerate(tensors) if schedule[t].is_output)
    try:
        compiled = backend.compile_artifact(schedule, tensors, inp.task.target)
        # on a GPU, NVRTC compiles here, in parallel builders; the one runner then only loads
        compiled.backend.precompile(compiled.artifact, compiled.target)
    except Exception as error:  # noqa: BLE001
        detail = _error_text(error) + "\n" + "".join(traceback.format_exc(limit=3))[-800:]
        return BuildResult(MeasureStatus.BUILD_ERROR, detail, time.perf_counter() - start)
    return BuildResult(MeasureStatus.OK, "", time.perf_counter() - start, compiled.func, compiled.artifact, outputs)


# ---------------------------------------------------------------------------------------------------------------------
class _Prepared:
    def __init__(self, inputs: list[np.ndarray], references: list[np.ndarray], positions: tuple[int, ...]) -> None:
        self.inputs = inputs
        self.references = references
        self.output_positions = positions


_PREPARED: dict[tuple[str, int], _Prepared] = {}


def _random_array(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    np_dtype = dt.to_numpy(dtype)
    if dt.is_float(dtype):
        return rng.uniform(-1.0, 1.0, size=shape).astype(np_dtype)
    if dt.is_bool(dtype):
        return rng.integers(0, 2, size=shape).astype(np_dtype)
    low = 0 if not dt.is_signed(dtype) else -8
    return rng.integers(low, 8, size=shape).astype(np_dtype)


def _static_shape(tensor: Any) -> tuple[int, ...]:
    shape = []
    for dim in tensor.shape:
        value = const_int_value(dim)
        if value is None:
            raise ValueError(f"tensor {tensor.name} has a symbolic shape; tasks need constant shapes")
        shape.append(value)
    return tuple(shape)


def prepare(task: Task, seed: int) -> _Prepared:
    """Inputs and reference outputs for ``task`` (cached in this process)."""
    key = (task.key, seed)
    cached = _PREPARED.get(key)
    if cached is not None:
        return cached
    schedule, tensors = task.instantiate(None)
    positions = tuple(k for k, t in enumerate(tensors) if schedule[t].is_output)
    rng = np.random.default_rng(seed)
    inputs = [_random_array(rng, _static_shape(t), t.dtype) for k, t in enumerate(tensors) if k not in positions]
    reference = task.template.reference
    if reference is not None:
        references = [np.asarray(r) for r in reference(inputs, *task.args)]
        # OpenBLAS's threads spin for a while after a call: measured here, a kernel timed right after np.matmul
        # ran at half speed on two cores. Let them go idle before the first candidate (the default) is timed; a
        # fixed 0.3 s was not enough on a loaded machine, where they get the CPU less often.
        wait_until_threads_idle(limit_s=2.0)
    else:
        outputs = [t for k, t in enumerate(tensors) if k in positions]
        naive = create_schedule([t.op for t in outputs])
        module = backend.build(naive, tensors, target=Target.current_host())  # the reference runs on this machine
        arrays = _call_arrays(tensors, positions, inputs)
        module(*arrays)
        references = [arrays[k] for k in positions]
    prepared = _Prepared(inputs, references, positions)
    _PREPARED.clear()  # one task at a time: keep memory bounded
    _PREPARED[key] = prepared
    return prepared


def ready() -> int:
    """The first job of each measurement worker (``IsolatedPool``'s ``warm_up``): it returns once the worker has
    imported this module, and with it the compiler."""
    return os.getpid()


def use_thread_spin(spin: int) -> None:
    """Set how long this process's pool threads spin when idle: in the settings, for a pool compiled later, and in
    the running pool's policy (a worker process measures task after task). libgomp, which the CUDA emulation
    loads, reads the setting once, when it is loaded. Measurement runners call this before anything else."""
    config.set_settings(thread_spin_count=spin)
    if pool_started():
        configure_pool(worker_spin=spin)


def prepare_job(task: Task, seed: int, spin: int | None = None) -> str:
    if spin is not None:
        use_thread_spin(spin)
    prepare(task, seed)
    return task.key


def _poison(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    np_dtype = dt.to_numpy(dtype)
    if dt.is_float(dtype):
        return np.full(shape, np.nan, dtype=np_dtype)
    return np.full(shape, dt.max_value(dtype), dtype=np_dtype)


def _call_arrays(tensors: list[Any], positions: tuple[int, ...], inputs: list[np.ndarray]) -> list[np.ndarray]:
    arrays: list[np.ndarray] = []
    feed = iter(inputs)
    for k, tensor in enumerate(tensors):
        arrays.append(_poison(_static_shape(tensor), tensor.dtype) if k in positions else next(feed))
    return arrays


def _mismatch(output: np.ndarray, reference: np.ndarray, rtol: float, atol: float) -> str | None:
    if output.shape != reference.shape:
        return f"output shape {output.shape} differs from the reference's {reference.shape}"
    if not np.issubdtype(reference.dtype, np.floating):
        bad = int(np.count_nonzero(output != reference))
        return f"{bad} of {output.size} elements differ from the reference" if bad else None
    ref = reference.astype(np.float64)
    out = output.astype(np.float64)
    finite = np.isfinite(ref)
    if np.any(np.isfinite(out) != finite):
        return "the output has NaN/inf where the reference has none (elements not written?)"
    scale = float(np.max(np.abs(ref[finite]))) if np.any(finite) else 0.0
    error = float(np.max(np.abs(out[finite] - ref[finite]))) if np.any(finite) else 0.0
    tolerance = atol + rtol * scale
    if error > tolerance:
        return f"max abs error {error:.3g} exceeds the tolerance {tolerance:.3g} (max |reference| {scale:.3g})"
    return None


def run_job(build: BuildResult, task: Task, seed: int, number: int, repeat: int, min_repeat_ms: float,
            timeout: float, check: bool, rtol: float, atol: float, spin: int | None = None) -> RunOutcome:
    if spin is not None:
        use_thread_spin(spin)
    start = time.perf_counter()
    try:
        prepared = prepare(task, seed)
        module = backend.backend_for(task.target).make_module(build.func, build.artifact, task.target)
        feed = iter(prepared.inputs)
        arrays = []
        for k, param in enumerate(build.func.params):
            if k in build.output_positions:
                arrays.append(_poison(_static_shape(param), param.dtype))
            else:
                arrays.append(next(feed))
        first = time.perf_counter()
        module(*arrays)
        first_call = time.perf_counter() - first
        if check:
            rtol = max(rtol, task.target.precision.relative_tolerance)  # tensor cores round the operands
            for position, reference in zip(build.output_positions, prepared.references):
                problem = _mismatch(arrays[position], reference, rtol, atol)
                if problem is not None:
                    return RunOutcome(MeasureStatus.WRONG_ANSWER, (), problem, time.perf_counter() - start)
        budget = max(0.0, 0.5 * timeout - (time.perf_counter() - start))
        fitting = math.floor(budget / max(first_call, 1e-9) / max(1, repeat + 1))
        number = max(1, min(number, fitting))
        timing = module.time_evaluator(number=number, repeat=repeat, min_repeat_ms=min_repeat_ms)(*arrays)
    except KernelError as error:
        return RunOutcome(MeasureStatus.RUN_ERROR, (), _error_text(error), time.perf_counter() - start)
    except Exception as error:  # noqa: BLE001
        return RunOutcome(MeasureStatus.RUN_ERROR, (), _error_text(error), time.perf_counter() - start)
    return RunOutcome(MeasureStatus.OK, tuple(timing.results), "", time.perf_counter() - start)
