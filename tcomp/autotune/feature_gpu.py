"""GPU features of a lowered function, for the cost model: what a CUDA kernel's loop-IR statements do not show.

A tile kernel (a call of a generated GEMM device function) is one call statement whatever its tile; a shared-memory
schedule's speed depends on how many threads and blocks share a multiprocessor. ``gpu_features(func)`` reads, from
the loop IR that ``tcomp.lower`` gives (zeros where the function launches nothing):

- per block: threads (the product of the ``threadIdx`` extents), shared memory (the shared allocations and the
  tile kernels' own), local memory per thread, registers per thread (``registers`` when given, such as ptxas's
  count, else an estimate: local words plus 32, or the tile kernel's accumulators and fragments), occupancy
  (resident warps over 64, from threads, registers and shared memory) and the blocks of the grid over what one
  wave of 132 multiprocessors holds, with the last wave's fill;
- vector widths: the widest vectorized copy into shared memory and the widest global access, in bytes (a tile
  kernel's ``cp.async`` copies);
- for a tile kernel: tensor cores or not, the operands' mantissa bits, log2 of the block tile (m, n, k), warps
  (m, n), warp tile (m, n), lanes' register tile (m, n), stages, swizzled or padded, k-outer, blocks per
  multiprocessor asked.

Counts go through ``log2(1 + x)``; the vector has ``GPU_WIDTH`` entries.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from tcomp.backend import compile_artifact
from tcomp.codegen.cuda.device_functions import device_function
from tcomp.ir import dtype as dt
from tcomp.ir import expr as E
from tcomp.ir import stmt as S
from tcomp.ir.functor import post_order_visit
from tcomp.ops.cuda.gemm_source import GemmSource
from tcomp.ops.cuda.gemm_tile import SmemLayout, estimated_registers, occupancy, resident_blocks, shared_bytes
from tcomp.runtime.nvcc import kernel_resources, nvcc_available

GPU_WIDTH = 27
MULTIPROCESSORS = 132


@dataclass
class _Launch:
    threads: dict[str, int] = field(default_factory=dict)
    blocks: dict[str, int] = field(default_factory=dict)
    shared: int = 0
    local: int = 0
    shared_vector: int = 0
    global_vector: int = 0
    tiles: list[object] = field(default_factory=list)


def _const(expr: E.Expr) -> int:
    value = E.const_int_value(expr)
    return value if value is not None else 1


def _bytes(buffer: object) -> int:
    shape = getattr(buffer, "shape", ())
    return math.prod(_const(d) for d in shape) * dt.storage_bytes(getattr(buffer, "dtype", "float32"))


def _scan(func: S.PrimFunc) -> _Launch:
    found = _Launch()

    def visit(node: object) -> None:
        if isinstance(node, S.For) and node.kind is S.ForKind.THREAD_BINDING and node.thread_tag:
            table = found.threads if node.thread_tag.startswith("threadIdx") else found.blocks
            if node.thread_tag.startswith(("threadIdx", "blockIdx")):
                table[node.thread_tag] = max(table.get(node.thread_tag, 1), _const(node.extent))
        elif isinstance(node, S.For) and node.kind is S.ForKind.VECTORIZED:
            lanes = _const(node.extent)
            stores = _stores(node.body)
            for buffer in stores:
                width = lanes * dt.storage_bytes(buffer.dtype)
                if buffer.scope == "shared":
                    found.shared_vector = max(found.shared_vector, width)
                else:
                    found.global_vector = max(found.global_vector, width)
        elif isinstance(node, S.Allocate):
            if node.buffer.scope == "shared":
                found.shared += _bytes(node.buffer)
            elif node.buffer.scope == "local":
                found.local += _bytes(node.buffer)
        elif isinstance(node, E.Call) and node.kind == "extern":
            function = device_function(node.op)
            if function is not None and function.info is not None:
                found.tiles.append(function.info)

    post_order_visit(func.body, visit)
    return found


def _stores(stmt: S.Stmt) -> list[object]:
    buffers: list[object] = []

    def visit(node: object) -> None:
        if isinstance(node, S.BufferStore):
            buffers.append(node.buffer)

    post_order_visit(stmt, visit)
    return buffers


def _log(x: float) -> float:
    return math.log2(1.0 + max(0.0, x))


def _tile_block(info: object) -> tuple[list[float], int, int, int]:
    """Features of a tile kernel; also its registers estimate, copy width in bytes and shared bytes."""
    tile, problem = info  # type: ignore[misc]
    source = GemmSource(tile, problem)
    ea, eb = problem.element_bytes
    copy = max(source.a_vec * ea, source.b_vec * eb)
    warp_m, warp_n = tile.warp_tile
    thread_m, thread_n = tile.thread_tile if not problem.precision.uses_tensor_cores else (0, 0)
    values = [1.0 if problem.precision.uses_tensor_cores else 0.0, problem.precision.mantissa_bits / 23.0]
    values += [_log(v) for v in (tile.block_m, tile.block_n, tile.block_k, tile.warps_m, tile.warps_n, warp_m,
                                 warp_n, thread_m, thread_n)]
    values += [float(tile.stages), 1.0 if tile.layout is SmemLayout.SWIZZLE else 0.0, float(tile.k_outer),
               float(tile.min_blocks), float(max(ea, eb))]
    return values, estimated_registers(tile, problem), copy, shared_bytes(tile, problem)


TILE_WIDTH = 16


def gpu_features(func: S.PrimFunc, registers: int | None = None) -> list[float]:
    """The ``GPU_WIDTH`` GPU features of ``func`` (see the module docstring)."""
    launch = _scan(func)
    if not launch.threads and not launch.blocks:
        return [0.0] * GPU_WIDTH
    threads = math.prod(launch.threads.values()) if launch.threads else 1
    blocks = math.prod(launch.blocks.values()) if launch.blocks else 1
    tile_values = [0.0] * TILE_WIDTH
    shared, estimate, global_vector = launch.shared, launch.local // 4 + 32, launch.global_vector
    shared_vector = launch.shared_vector
    if launch.tiles:
        tile_values, estimate, copy, _ = _tile_block(launch.tiles[0])
        shared_vector = max(shared_vector, copy)
        global_vector = max(global_vector, copy)
    used = registers if registers is not None else estimate
    resident = resident_blocks(threads, used, shared)
    waves = blocks / max(1, resident * MULTIPROCESSORS)
    fill = waves / math.ceil(waves) if waves > 0 else 0.0
    values = [_log(threads), _log(blocks), _log(shared), _log(launch.local), min(1.0, used / 255.0),
              occupancy(threads, used, shared), _log(waves), fill, _log(shared_vector), _log(global_vector),
              float(resident)]
    values += tile_values
    assert len(values) == GPU_WIDTH
    return values


def ptxas_registers(schedule: object, tensors: Sequence[object], target: object) -> int | None:
    """Registers per thread of the kernel with the most of them, from ``ptxas -v`` (``None`` without nvcc)."""
    if not nvcc_available():
        return None
    artifact = compile_artifact(schedule, tensors, target).artifact  # type: ignore[arg-type]
    found = kernel_resources(artifact.source, artifact.target.arch)
    return max((r.registers for r in found.values()), default=None)
