"""Split a lowered function into host code and GPU kernels: one kernel per launched region.

Rewrite: the function body is read as host code made of allocations of global temporaries and sequences; every other
top-level statement (an allocation of shared or local storage included) is a launched region and must contain a loop
bound to ``blockIdx`` or ``threadIdx``. Each region
becomes a kernel ``<name>_kernel<k>`` whose parameters are the global buffers it reads or writes (function
parameters first, in their order, then temporaries) and the size variables it uses. Kernels run in order, each after
the previous one finished, so a kernel sees every write of the kernels before it.

Assumes flattened buffers. Raises ``GPUError`` for a loop nest no axis of which is bound to a GPU thread (it would
run on the host) and for shared or local buffers allocated outside every kernel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tcomp.ir.buffer import Buffer
from tcomp.ir.expr import BufferLoad, Var
from tcomp.ir.functor import free_vars, post_order_visit
from tcomp.ir.gpu import GPUError, is_launch_loop
from tcomp.ir.stmt import Allocate, BufferStore, NoOp, PrimFunc, SeqStmt, Stmt


@dataclass(frozen=True)
class HostDeviceSplit:
    """``host``: the function as lowered (its parameters and size variables are the call's); ``temporaries``: the
    global buffers the host allocates for the duration of a call; ``kernels``: the kernels to launch, in order."""

    host: PrimFunc
    temporaries: tuple[Buffer, ...]
    kernels: tuple[PrimFunc, ...]


def kernel_symbol(func_name: str, index: int) -> str:
    """``<name>_kernel<index>`` with characters outside ``[A-Za-z0-9_]`` replaced by ``_``."""
    base = re.sub(r"[^A-Za-z0-9_]", "_", func_name) or "main"
    if base[0].isdigit():
        base = "_" + base
    return f"{base}_kernel{index}"


def _contains_launch_loop(stmt: Stmt) -> bool:
    found = False

    def visit(node: object) -> None:
        nonlocal found
        if isinstance(node, Stmt) and is_launch_loop(node):
            found = True

    post_order_visit(stmt, visit)
    return found


def _stored_buffer(stmt: Stmt) -> str:
    names: list[str] = []

    def visit(node: object) -> None:
        if isinstance(node, BufferStore) and not names:
            names.append(node.buffer.name)

    post_order_visit(stmt, visit)
    return names[0] if names else "?"


def _collect(stmt: Stmt, temporaries: list[Buffer], regions: list[Stmt]) -> None:
    if isinstance(stmt, Allocate) and stmt.buffer.scope != "global" and _contains_launch_loop(stmt):
        regions.append(stmt)  # shared or local storage of a kernel whose thread loops are all inside it
    elif isinstance(stmt, Allocate):
        if stmt.buffer.scope != "global":
            raise GPUError(
                f"buffer {stmt.buffer.name} in {stmt.buffer.scope} memory is allocated outside every kernel: compute "
                "its stage at an axis of a stage bound to GPU threads (compute_at)"
            )
        temporaries.append(stmt.buffer)
        _collect(stmt.body, temporaries, regions)
    elif isinstance(stmt, SeqStmt):
        for item in stmt.seq:
            _collect(item, temporaries, regions)
    elif isinstance(stmt, NoOp):
        return
    elif _contains_launch_loop(stmt):
        regions.append(stmt)
    else:
        name = _stored_buffer(stmt)
        raise GPUError(
            f"the loop nest computing {name} is not bound to GPU threads and would run on the host: bind its outer "
            f"axes, e.g. s[{name}].bind(axis, te.thread_axis(\"blockIdx.x\")) and an inner one to threadIdx.x"
        )


def _kernel_params(region: Stmt, func: PrimFunc, temporaries: list[Buffer]) -> tuple[Buffer, ...]:
    used: set[int] = set()
    inner: set[int] = set()

    def visit(node: object) -> None:
        if isinstance(node, (BufferLoad, BufferStore)):
            used.add(id(node.buffer))
        elif isinstance(node, Allocate):
            inner.add(id(node.buffer))

    post_order_visit(region, visit)
    params = [b for b in func.params if id(b) in used]
    params += [b for b in temporaries if id(b) in used]
    known = {id(b) for b in params} | inner
    if used - known:
        raise GPUError(f"function {func.name}: a kernel accesses a buffer that is neither a parameter nor allocated")
    return tuple(params)


def _kernel_size_vars(region: Stmt, func: PrimFunc) -> tuple[Var, ...]:
    used = {id(v) for v in free_vars(region)}
    return tuple(v for v in func.size_vars if id(v) in used)


def split_host_device(func: PrimFunc) -> HostDeviceSplit:
    """Split ``func`` into host code and kernels (see the module docstring)."""
    temporaries: list[Buffer] = []
    regions: list[Stmt] = []
    _collect(func.body, temporaries, regions)
    kernels = []
    for index, region in enumerate(regions):
        params = _kernel_params(region, func, temporaries)
        size_vars = _kernel_size_vars(region, func)
        kernel = PrimFunc(kernel_symbol(func.name, index), params, region, size_vars)
        kernels.append(kernel.with_attr("kernel_index", index))
    return HostDeviceSplit(func, tuple(temporaries), tuple(kernels))
