"""The launch dimensions of a kernel, from its thread-bound loops; virtual threads become unrolled loops.

No rewrite of launch-bound loops: each loop bound to ``blockIdx.<d>`` or ``threadIdx.<d>`` stays a ``THREAD_BINDING``
loop (code generation reads it as the thread's index). Records the attribute ``launch`` (a ``LaunchDims``): the grid
is the extent of the ``blockIdx`` loops (expressions of the kernel's size variables), the block the extent of the
``threadIdx`` loops (constants); a tag no loop binds has extent 1. Loops bound to ``vthread`` become ``UNROLLED``
loops (each thread runs the virtual threads one after the other).

Raises ``GPUError`` when two loops bound to one tag have different extents (the thread counts of a consumer and of
its cooperative fetch must agree), when a ``threadIdx`` extent is not a constant, or when a grid extent depends on
anything but the kernel's size variables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from tcomp.arith import simplify
from tcomp.arith.keys import same_tree
from tcomp.ir.expr import Expr, const, const_int_value
from tcomp.ir.functor import Mutator, free_vars
from tcomp.ir.gpu import BLOCK_TAGS, THREAD_TAGS, GPUError, is_launch_loop, is_vthread_loop
from tcomp.ir.stmt import For, ForKind, PrimFunc, Stmt


@dataclass(frozen=True)
class LaunchDims:
    """``grid``: blocks along x, y, z (expressions of size variables); ``block``: threads along x, y, z."""

    grid: tuple[Expr, Expr, Expr]
    block: tuple[int, int, int]

    @property
    def threads_per_block(self) -> int:
        return math.prod(self.block)


class _Binder(Mutator):
    def __init__(self, kernel: PrimFunc) -> None:
        self.kernel = kernel
        self.extents: dict[str, tuple[Expr, str]] = {}

    def visit_For(self, node: For) -> Stmt:
        if is_vthread_loop(node):
            return replace(node, kind=ForKind.UNROLLED, thread_tag="", body=self.visit(node.body))
        if not is_launch_loop(node):
            return self.generic_visit(node)
        tag = node.thread_tag
        if const_int_value(node.min) != 0:
            raise GPUError(f"kernel {self.kernel.name}: loop {node.loop_var.name} bound to {tag} starts at {node.min}")
        extent = simplify(node.extent)
        seen = self.extents.get(tag)
        if seen is None:
            self.extents[tag] = (extent, node.loop_var.name)
        elif not same_tree(simplify(seen[0]), simplify(extent)):  # variables by identity: n and m differ
            raise GPUError(
                f"kernel {self.kernel.name}: thread axis {tag} is bound with extent {seen[0]} (loop {seen[1]}) and "
                f"extent {extent} (loop {node.loop_var.name}); all loops bound to {tag} in one kernel must have the "
                "same extent (split the axes so the thread counts agree)"
            )
        return self.generic_visit(node)

    def launch(self) -> LaunchDims:
        grid: list[Expr] = []
        for tag in BLOCK_TAGS:
            extent = self.extents.get(tag, (const(1), ""))[0]
            allowed = {id(v) for v in self.kernel.size_vars}
            if any(id(v) not in allowed for v in free_vars(extent)):
                raise GPUError(
                    f"kernel {self.kernel.name}: the extent {extent} of {tag} depends on a loop variable; the grid "
                    "must be computable before the launch"
                )
            grid.append(extent)
        block: list[int] = []
        for tag in THREAD_TAGS:
            extent, loop = self.extents.get(tag, (const(1), ""))
            value = const_int_value(extent)
            if value is None:
                raise GPUError(
                    f"kernel {self.kernel.name}: the extent {extent} of {tag} (loop {loop}) is not a constant; split "
                    "the axis by a constant factor before binding it to a thread axis"
                )
            block.append(value)
        return LaunchDims((grid[0], grid[1], grid[2]), (block[0], block[1], block[2]))


def bind_threads(kernel: PrimFunc) -> PrimFunc:
    """Check the kernel's thread-bound loops and record its launch dimensions (see the module docstring)."""
    binder = _Binder(kernel)
    body = binder.visit(kernel.body)
    launch = binder.launch()
    result = kernel if body is kernel.body else replace(kernel, body=body)
    return result.with_attr("launch", launch)


def launch_dims(kernel: PrimFunc) -> LaunchDims:
    """The launch dimensions ``bind_threads`` recorded on ``kernel``."""
    launch = kernel.attr("launch")
    if not isinstance(launch, LaunchDims):
        raise GPUError(f"kernel {kernel.name}: no launch dimensions; run bind_threads first")
    return launch
