"""Device functions that tcomp generates itself, called from kernels as ``Call(name, kind="extern")``.

A tensor intrinsic whose work is a whole CUDA C function (a block-level GEMM tile on tensor cores, say) registers
the function's source here under its name when it is declared; the code generator prints a call of it like a C
call (``address_of`` arguments as pointers) and puts its source, and the helpers it uses, into the translation
unit before the kernels. ``synchronizes``: the function calls ``__syncthreads()`` or warp-collective instructions,
so every thread of the block must call it (the CPU emulation then runs the block's threads as fibers).
``min_blocks``: blocks per multiprocessor the kernel should fit (``__launch_bounds__``'s second argument), 0 for
none. ``local_bytes``: about how much stack a thread needs in it (the emulation sizes its fibers' stacks by it).
``info`` holds whatever the declarer wants tools (features, reports) to see, such as the tile config.

Names are made from a hash of the source, so equal functions share a name and different ones never do; the
registry lives in the process (a worker that instantiates a template registers what it builds).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DeviceFunction:
    name: str
    source: str
    helpers: tuple[str, ...] = ()
    synchronizes: bool = False
    min_blocks: int = 0
    local_bytes: int = 0
    info: Any = field(default=None, compare=False)


_REGISTRY: dict[str, DeviceFunction] = {}
_LOCK = threading.Lock()


def function_name(prefix: str, source: str) -> str:
    """``<prefix>_<16 hex digits of the source's hash>``."""
    return f"{prefix}_{hashlib.sha256(source.encode()).hexdigest()[:16]}"


def register_device_function(function: DeviceFunction) -> DeviceFunction:
    """Register ``function``; registering the same name twice must give the same source."""
    with _LOCK:
        known = _REGISTRY.get(function.name)
        if known is not None and known.source != function.source:
            raise ValueError(f"device function {function.name} is registered with a different source")
        _REGISTRY.setdefault(function.name, function)
        return _REGISTRY[function.name]


def device_function(name: str) -> DeviceFunction | None:
    """The registered function ``name``, or ``None``."""
    return _REGISTRY.get(name)
