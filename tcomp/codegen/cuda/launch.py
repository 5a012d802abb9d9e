"""Host side of a launch: which buffers and scalars a kernel takes, and its grid and block for a call's shapes.

Grid extents are expressions of the size variables (``ceil(n / 256)`` blocks for a symbolic ``n``), evaluated for
each call from the values the argument checker bound; blocks are constants.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tcomp.ir.buffer import Buffer
from tcomp.ir.expr import Var
from tcomp.runtime.args import evaluate_shape_expr
from tcomp.transform.bind_threads import LaunchDims


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
    shared memory in bytes, and whether it synchronizes its threads."""

    name: str
    params: tuple[Buffer, ...]
    size_vars: tuple[Var, ...]
    launch: LaunchDims
    shared_bytes: int
    uses_barrier: bool

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

