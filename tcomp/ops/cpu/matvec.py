"""The default CPU schedule of ``packed_matvec`` (``tcomp.ops.matvec``): a few rows times a weight packed in column
blocks, streamed once from memory by all cores.

The output's columns are split into the weight's blocks of ``NB``; the cores take blocks (each block one
contiguous run of the packed weight), and per block the rows' ``NB``-wide accumulators are computed in registers
over the whole of K before the output (or its fused elementwise epilogue) writes them:

    for j.block in parallel:                  # packed[j.block] streamed start to end, prefetched ahead
      for i.group:                            # rows in groups whose accumulators fit the registers
        for k:                                # x[i, k] broadcast, packed[j.block, k, :] loaded once per group
          for i.inner in unrolled:  for c in vectorized(NB):  acc[i, c] += x[i, k] * packed[j.block, k, c]
      for i:  for c in vectorized(NB):  out[i, j.block * NB + c] = epilogue(acc[i, c])

The last block's columns past N are computed on the zero padding (the product spans whole blocks) and not stored:
only the output loop's tail is guarded. Without a host (the product is itself the output) the blocks are computed
into a local buffer, copied out per block. Software prefetch runs ``PREFETCH_ROWS`` steps of K ahead of the loads,
every cache line of the block's row.
"""

from __future__ import annotations

from tcomp.arith.factors import largest_divisor
from tcomp.ops.cpu.common import CpuTarget, extents, parallel_fused
from tcomp.schedule.schedule import Schedule
from tcomp.schedule.stage import Stage
from tcomp.te.tensor import ComputeOp, Tensor

# how far ahead (in steps of k) the weight stream is prefetched
PREFETCH_ROWS = 8
# vector registers kept for the broadcast of x, the weight vector and the addresses
SPARE_REGISTERS = 4


def row_group(rows: int, block: int, lanes: int, registers: int) -> int:
    """How many rows share one pass over a block: as many as keep ``rows x block / lanes`` accumulators (plus
    ``SPARE_REGISTERS``) in registers, a divisor of ``rows`` where one is close, so no group needs a guard."""
    vectors = max(1, -(-block // lanes))
    fit = max(1, (registers - SPARE_REGISTERS) // vectors)
    if rows <= fit:
        return rows
    divisor = largest_divisor(rows, fit)
    return divisor if 2 * divisor > fit else fit


def schedule_packed_matvec(s: Schedule, tensor: Tensor, host: Stage | None, cpu: CpuTarget) -> None:
    """Schedule the ``packed_matvec`` compute ``tensor`` (a root stage) and ``host``, the output that reads it
    elementwise (the fused epilogue), or a copy of it when there is none (see the module docstring)."""
    stage = s[tensor]
    op = stage.op
    assert isinstance(op, ComputeOp)
    sizes = extents(op.axis)
    if sizes is None:
        raise ValueError(f"packed_matvec {op.name}: the rows must be constant, got {op.output(0).shape}")
    rows, columns = sizes
    block = int(op.attrs["column_block"])
    k_sizes = extents(op.reduce_axis)
    depth = k_sizes[0] if k_sizes else 1
    if host is not None:
        out, acc = host, stage
    else:
        out, acc = stage, s[s.cache_write(tensor, "local")]
    *outer, i, j = out.op.axis  # type: ignore[attr-defined]
    j_block, j_lane = out.split(j, factor=block)
    out.reorder(*outer, j_block, i, j_lane)
    parallel_fused(out, [*outer, j_block], rows * depth * max(columns, block), cpu.cores)
    out.vectorize(j_lane)
    acc.compute_at(out, j_block)
    acc_i, acc_j = acc.op.axis  # type: ignore[attr-defined]
    (acc_k,) = acc.op.reduce_axis  # type: ignore[attr-defined]
    group = row_group(rows, block, cpu.lanes(tensor.dtype), cpu.vector_registers)
    i_group, i_inner = acc.split(acc_i, factor=group)
    acc.reorder(i_group, acc_k, i_inner, acc_j)
    acc.unroll(i_inner)
    acc.vectorize(acc_j)
    if depth > PREFETCH_ROWS:
        acc.pragma(acc_k, "prefetch", PREFETCH_ROWS)
