"""Which GPU this machine has, asked of CuPy (an optional dependency): whether a CUDA device is visible, and its
architecture and per-block limits. Targets read it to resolve ``Target("cuda")`` to the present GPU; the CUDA
runtime reads it to decide between the device and the emulator. Nothing here compiles or runs a kernel."""

from __future__ import annotations

import functools
from dataclasses import dataclass


@dataclass(frozen=True)
class GpuLimits:
    """What a present GPU reports: its architecture and per-block limits (shared memory with the opt-in)."""

    arch: str
    max_threads_per_block: int
    max_shared_memory_per_block: int
    max_registers_per_block: int


@functools.cache
def gpu_available() -> bool:
    """Whether CuPy is installed and a CUDA device is visible."""
    try:
        import cupy
    except ImportError:
        return False
    try:
        return int(cupy.cuda.runtime.getDeviceCount()) > 0
    except Exception:  # noqa: BLE001 - any driver or runtime failure means no usable GPU
        return False


@functools.cache
def gpu_limits() -> GpuLimits | None:
    """The architecture and per-block limits of the current GPU (shared memory with the opt-in: 227 KB on an H100
    or H200), or ``None`` without one."""
    if not gpu_available():
        return None
    import cupy

    device = cupy.cuda.Device()
    attributes = device.attributes
    major, minor = device.compute_capability[:-1], device.compute_capability[-1]
    shared = attributes.get("MaxSharedMemoryPerBlockOptin") or attributes.get("MaxSharedMemoryPerBlock", 48 * 1024)
    return GpuLimits(f"sm_{major}{minor}", int(attributes.get("MaxThreadsPerBlock", 1024)), int(shared),
                     int(attributes.get("MaxRegistersPerBlock", 65536)))
