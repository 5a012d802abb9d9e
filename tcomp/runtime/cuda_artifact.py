"""What CUDA code generation hands the runtime: ``CudaArtifact`` (the CUDA C of a function's kernels and how to
launch each), and the C types of tcomp's dtypes, which the kernels and every launcher (the GPU's, the emulation's)
agree on.

Grid extents are expressions of the size variables (``ceil(n / 256)`` blocks for a symbolic ``n``), evaluated for
each call from the values the argument checker bound; blocks are constants.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tcomp.ir import dtype as dt
from tcomp.ir.buffer import Buffer
from tcomp.ir.expr import Var
from tcomp.ir.stmt import PrimFunc
from tcomp.runtime.args import evaluate_shape_expr
from tcomp.target import Target
from tcomp.transform.bind_threads import LaunchDims

C_TYPES = {
    "bool": "bool",
    "int8": "signed char",
    "int16": "short",
    "int32": "int",
    "int64": "long long",
    "uint8": "unsigned char",
    "uint16": "unsigned short",
    "uint32": "unsigned int",
    "uint64": "unsigned long long",
    "float32": "float",
    "float64": "double",
    # storage types, as their bits: kernels compute on them in wider types (``tcomp.transform.storage_types``)
    "bfloat16": "unsigned short",
    "int4": "unsigned char",
    "uint4": "unsigned char",
    "int2": "unsigned char",
    "uint2": "unsigned char",
    "float8_e4m3fn": "unsigned char",
    "float8_e4m3fnuz": "unsigned char",
    "float8_e5m2": "unsigned char",
    "float8_e5m2fnuz": "unsigned char",
}


def c_type(dtype: str) -> str:
    """The C type of a scalar ``dtype``; ``ValueError`` for one CUDA C kernels do not support."""
    elem, lanes = dt.split_lanes(dtype)
    if lanes != 1 or elem not in C_TYPES:
        raise ValueError(f"dtype {dtype} is not supported by the CUDA backend")
    return C_TYPES[elem]


# buffer element types in memory: float16 data moves as raw bits, which only tcomp's device functions interpret
STORAGE_TYPES = {**C_TYPES, "float16": "unsigned short"}


def storage_type(dtype: str) -> str:
    """The C element type of a buffer of ``dtype`` (pointers, arrays): ``c_type``, and ``unsigned short`` for the
    bits of ``float16``; ``ValueError`` for others."""
    elem, lanes = dt.split_lanes(dtype)
    if lanes != 1 or elem not in STORAGE_TYPES:
        raise ValueError(f"dtype {dtype} is not supported by the CUDA backend")
    return STORAGE_TYPES[elem]


@dataclass(frozen=True)
class LaunchConfig:
    """Blocks per grid and threads per block, along x, y, z."""

    grid: tuple[int, int, int]
    block: tuple[int, int, int]

    def __str__(self) -> str:
        return f"grid={self.grid}, block={self.block}"


@dataclass(frozen=True)
class KernelInfo:
    """A kernel of a CUDA module: its symbol, parameters (buffers, then size variables), launch dimensions, static
    shared memory in bytes, and whether it synchronizes its threads (barriers or warp shuffles)."""

    name: str
    params: tuple[Buffer, ...]
    size_vars: tuple[Var, ...]
    launch: LaunchDims
    shared_bytes: int
    synchronizes: bool
    local_bytes: int = 0  # local arrays per thread (registers, or local memory where they spill)
    dynamic_shared_bytes: int = 0  # the dynamic shared memory a launch asks for (0: the arrays are static)

    def launch_config(self, sizes: Mapping[Var, int]) -> LaunchConfig:
        """The grid and block for size-variable values ``sizes`` (a grid of 0 blocks along some axis means there
        is nothing to do)."""
        grid = tuple(max(0, evaluate_shape_expr(e, dict(sizes))) for e in self.launch.grid)
        return LaunchConfig((grid[0], grid[1], grid[2]), self.launch.block)


def buffer_elements(buffer: Buffer, sizes: Mapping[Var, int]) -> int:
    """The number of elements of a (flattened) temporary for the given size-variable values."""
    count = 1
    for dim in buffer.shape:
        count *= evaluate_shape_expr(dim, dict(sizes))
    return max(count, 0)


@dataclass(frozen=True)
class CudaArtifact:
    """``source``: the CUDA C translation unit; ``kernels``: how to launch each, in order; ``temporaries``: global
    buffers the host allocates per call; ``kernel_funcs``: each kernel's loop IR as printed."""

    func: PrimFunc
    target: Target
    source: str
    kernels: tuple[KernelInfo, ...]
    temporaries: tuple[Buffer, ...]
    kernel_funcs: tuple[PrimFunc, ...]
