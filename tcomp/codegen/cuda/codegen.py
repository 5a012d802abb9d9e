"""``codegen_cuda``: a lowered, flattened ``PrimFunc`` to CUDA C source and the facts the host needs to launch it.

Two stages of a CUDA build: ``kernels`` (``split_kernels``) and ``cu`` (``print_cuda``). ``split_host_device`` makes
one kernel per launched region; per kernel the ``KERNEL_PASSES`` run: ``bind_threads`` (launch dimensions),
``replicate_reduce_buffers``, ``inject_double_buffer``, ``simplify``, ``storage_sync`` (barriers); the limits are
checked against the target (a kernel over the 48 KB of static shared memory takes dynamic shared memory, up to the
target's maximum); ``KernelPrinter`` prints CUDA C. The source is one translation unit with a preamble of helpers
(guarded, so sources of several functions can be concatenated into one file), the device functions the kernels call
(``device_functions``: generated tile kernels such as the tensor-core GEMM, also guarded), and one
``extern "C" __global__`` function per kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcomp.codegen.cuda.doc import Doc
from tcomp.codegen.cuda.exprs import HELPERS
from tcomp.codegen.cuda.printer import (
    KernelPrinter,
    allocation_bytes,
    called_device_functions,
    dynamic_shared_layout,
    shared_buffers,
)
from tcomp.ir.buffer import Buffer
from tcomp.ir.expr import const_int_value
from tcomp.ir.functor import post_order_visit
from tcomp.ir.gpu import GPUError, synchronizes
from tcomp.ir.stmt import Allocate, PrimFunc
from tcomp.runtime.cuda_artifact import CudaArtifact, KernelInfo
from tcomp.target import CUDA_STATIC_SHARED_MEMORY, Target, TargetKind
from tcomp.transform.bind_threads import bind_threads, launch_dims
from tcomp.transform.double_buffer import ATTR as DOUBLE_BUFFER
from tcomp.transform.double_buffer import inject_double_buffer
from tcomp.transform.pipeline import Pass, run_pipeline
from tcomp.transform.replicate_reduce_buffers import replicate_reduce_buffers
from tcomp.transform.simplify import simplify_func
from tcomp.transform.split_host_device import split_host_device
from tcomp.transform.storage_sync import storage_sync

KERNEL_PASSES = (
    Pass("bind_threads", bind_threads, flat_after=True),
    Pass("replicate_reduce_buffers", replicate_reduce_buffers, flat_after=True),
    Pass("inject_double_buffer", inject_double_buffer, flat_after=True),
    Pass("simplify_kernel", simplify_func, flat_after=True),
    Pass("storage_sync", storage_sync, flat_after=True),
)

# per-dimension limits of every CUDA GPU since compute capability 3.0
MAX_BLOCK_DIMS = (1024, 1024, 64)
MAX_GRID_DIMS = (2**31 - 1, 65535, 65535)


def shared_allocations(kernel: PrimFunc) -> list[tuple[str, int]]:
    """(name, bytes) of every shared-memory array of ``kernel``, in program order."""
    return [(buffer.name, allocation_bytes(buffer)) for buffer in shared_buffers(kernel.body)]


def kernel_synchronizes(kernel: PrimFunc) -> bool:
    """Whether ``kernel`` synchronizes its threads: a barrier or a warp shuffle, or a call of a device function
    that synchronizes."""
    return synchronizes(kernel.body) or any(f.synchronizes for f in called_device_functions(kernel.body))


def local_bytes(kernel: PrimFunc) -> int:
    """Bytes of the local arrays of one thread of ``kernel`` (and the stack of the device functions it calls)."""
    total = 0

    def visit(node: object) -> None:
        nonlocal total
        if isinstance(node, Allocate) and node.buffer.scope not in ("shared", "global"):
            total += allocation_bytes(node.buffer)

    post_order_visit(kernel.body, visit)
    return total + max((f.local_bytes for f in called_device_functions(kernel.body)), default=0)


def check_limits(kernel: PrimFunc, target: Target) -> int:
    """Raise ``GPUError`` if ``kernel`` needs more threads per block or shared memory than ``target`` has; return its
    shared memory in bytes."""
    launch = launch_dims(kernel)
    block = "x".join(str(n) for n in launch.block)
    threads = launch.threads_per_block
    if threads > target.max_threads_per_block:
        raise GPUError(
            f"kernel {kernel.name}: {threads} threads per block (block {block}) exceed the limit of "
            f"{target.max_threads_per_block} of target {target}"
        )
    for axis, (count, limit) in enumerate(zip(launch.block, MAX_BLOCK_DIMS)):
        if count > limit:
            raise GPUError(f"kernel {kernel.name}: {count} threads along {'xyz'[axis]} exceed the limit of {limit}")
    for axis, (extent, limit) in enumerate(zip(launch.grid, MAX_GRID_DIMS)):
        value = const_int_value(extent)
        if value is not None and value > limit:
            raise GPUError(f"kernel {kernel.name}: {value} blocks along {'xyz'[axis]} exceed the limit of {limit}")
    arrays = shared_allocations(kernel)
    total = sum(size for _, size in arrays)
    if total > target.max_shared_memory_per_block:
        listing = ", ".join(f"{name}: {size}" for name, size in arrays)
        raise GPUError(
            f"kernel {kernel.name}: {total} bytes of shared memory ({listing}) exceed the limit of "
            f"{target.max_shared_memory_per_block} bytes per block of target {target}"
        )
    return total


@dataclass(frozen=True)
class Kernels:
    """The ``kernels`` stage of a CUDA build: a function split into kernels, each after the kernel passes, with the
    global temporaries the host allocates and how to launch each kernel. Prints as the kernels' loop IR."""

    func: PrimFunc
    temporaries: tuple[Buffer, ...]
    kernels: tuple[PrimFunc, ...]
    infos: tuple[KernelInfo, ...]

    def __str__(self) -> str:
        return "\n\n".join(str(kernel) for kernel in self.kernels)


def split_kernels(func: PrimFunc, target: Target) -> Kernels:
    """``func`` (lowered and flattened) split into kernels, the kernel passes run and the limits of ``target``
    checked (see the module docstring)."""
    if target.kind is not TargetKind.CUDA:
        raise GPUError(f"CUDA code generation needs a cuda target, got {target}")
    split = split_host_device(func)
    if not split.kernels:
        raise GPUError(f"function {func.name}: nothing to compute on the GPU")
    kernels: list[PrimFunc] = []
    infos: list[KernelInfo] = []
    for kernel in split.kernels:
        kernel = run_pipeline(kernel.with_attr(DOUBLE_BUFFER, func.attr(DOUBLE_BUFFER, ())), KERNEL_PASSES, flat=True)
        shared = check_limits(kernel, target)
        dynamic = dynamic_shared_layout(kernel.body)[1] if shared > CUDA_STATIC_SHARED_MEMORY else 0
        kernels.append(kernel)
        infos.append(KernelInfo(kernel.name, kernel.params, kernel.size_vars, launch_dims(kernel), shared,
                                kernel_synchronizes(kernel), local_bytes(kernel), dynamic))
    return Kernels(func, split.temporaries, tuple(kernels), tuple(infos))


def print_cuda(kernels: Kernels, target: Target) -> CudaArtifact:
    """The CUDA C translation unit of ``kernels``: a guarded preamble of the helpers and device functions they use,
    then one ``extern "C" __global__`` function per kernel."""
    doc = Doc()
    printers = []
    for kernel, info in zip(kernels.kernels, kernels.infos):
        printer = KernelPrinter(kernel, Doc(), dynamic_shared=info.dynamic_shared_bytes > 0)
        printer.print()
        printers.append(printer)
    functions = [f for kernel in kernels.kernels for f in called_device_functions(kernel.body)]
    functions = list({f.name: f for f in functions}.values())
    helpers = sorted({h for p in printers for h in p.expr.helpers} | {h for f in functions for h in f.helpers})
    doc.line(f"// CUDA C generated by tcomp for target {target}: function {kernels.func.name}, "
             f"{len(kernels.kernels)} kernel(s)")
    for helper in helpers:
        guard = f"TCOMP_HELPER_{helper.upper()}"
        doc.line(f"#ifndef {guard}")
        doc.line(f"#define {guard}")
        doc.lines.extend(HELPERS[helper].rstrip("\n").split("\n"))
        doc.line("#endif")
    for function in functions:
        guard = f"TCOMP_FUNCTION_{function.name.upper()}"
        doc.line(f"#ifndef {guard}")
        doc.line(f"#define {guard}")
        doc.lines.extend(function.source.rstrip("\n").split("\n"))
        doc.line("#endif")
    for printer in printers:
        doc.line()
        doc.lines.extend(printer.doc.lines)
    return CudaArtifact(kernels.func, target, doc.text(), kernels.infos, kernels.temporaries, kernels.kernels)


def codegen_cuda(func: PrimFunc, target: Target) -> CudaArtifact:
    """CUDA C for ``func`` (lowered and flattened) on ``target``: ``split_kernels``, then ``print_cuda``."""
    return print_cuda(split_kernels(func, target), target)
