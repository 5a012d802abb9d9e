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

When the rows take several groups (more accumulators than registers), K is split in chunks of ``KC`` steps
whose part of the block (``KC x NB`` weights) fills a quarter of the L1 cache, and every group runs over one chunk
before the next: the weight comes from memory once and the other groups read it from L1, not from L2 or memory
again (a 6 MB block of a 2 x 25088 x 4096 product did, once per group). The prefetches then run one chunk ahead,
so the next chunk streams in while every group works, not only the first:

      for k.outer:                            # the block's rows k.outer * KC ... streamed once
        for i.group:  for k.inner:  ...       # the accumulators kept in a local [rows, NB] buffer between chunks

The last block's columns past N are computed on the zero padding (the product spans whole blocks) and not stored:
only the output loop's tail is guarded. Without a host (the product is itself the output) the blocks are computed
into a local buffer, copied out per block. Without chunks, software prefetch runs ``PREFETCH_BYTES`` ahead of the
loads in the block (as many steps of K as that is), every cache line of the block's row.
"""

from __future__ import annotations

from tcomp.arith.factors import largest_divisor
from tcomp.ir import dtype as dt
from tcomp.ops.cpu.common import CpuTarget, extents, parallel_fused, product
from tcomp.schedule.schedule import Schedule
from tcomp.schedule.stage import Stage
from tcomp.target import CACHE_LINE_BYTES
from tcomp.te.tensor import ComputeOp, Tensor

# how far ahead (in bytes of the block) the weight stream is prefetched: the same memory latency to hide whatever
# the block's width, so a distance in steps of K would be too short for narrow blocks and long for wide ones
PREFETCH_BYTES = 2048
# the fewest steps of K a core takes when K is split across cores (fewer blocks of columns than cores)
MIN_PART_STEPS = 256
# vector registers kept for the broadcast of x, the weight vector and the addresses
SPARE_REGISTERS = 4
# rows of x whose addresses differ by a multiple of ALIAS_BYTES share an L1 set; from ALIASED_ROWS of them on
# (the sets' ways, less the weight's lines) they are copied apart first (``_copy_rows_apart``)
ALIAS_BYTES = 4096
ALIASED_ROWS = 8


def row_group(rows: int, block: int, lanes: int, registers: int) -> int:
    """How many rows share one pass over a block: as many as keep ``rows x block / lanes`` accumulators (plus
    ``SPARE_REGISTERS``) in registers, a divisor of ``rows`` where one is close, so no group needs a guard."""
    vectors = max(1, -(-block // lanes))
    fit = max(1, (registers - SPARE_REGISTERS) // vectors)
    if rows <= fit:
        return rows
    divisor = largest_divisor(rows, fit)
    return divisor if 2 * divisor > fit else fit


def prefetch_steps(block: int, element_bytes: int) -> int:
    """Steps of K that ``PREFETCH_BYTES`` of a block of ``block`` columns span (at least one)."""
    return max(1, PREFETCH_BYTES // max(1, block * element_bytes))


def k_chunk(depth: int, block: int, element_bytes: int, l1_bytes: int) -> int:
    """Steps of K per chunk when the row groups share each chunk of the block from L1: as many as fill a quarter
    of L1, so the chunk and the next one (prefetched meanwhile) fit beside ``x`` (a divisor of ``depth`` where one
    is at least half that, so no step needs a guard)."""
    fit = max(1, l1_bytes // 4 // max(1, block * element_bytes))
    if depth <= fit:
        return depth
    divisor = largest_divisor(depth, fit)
    return divisor if 2 * divisor >= fit else fit


def k_parts(blocks: int, depth: int, cores: int) -> int:
    """Parts of K that run on separate cores when the ``blocks`` column blocks are fewer than the cores: as many
    as give every core work, each at least ``MIN_PART_STEPS`` steps of K long (1: no split)."""
    if cores <= 1 or blocks >= cores:
        return 1
    return max(1, min(cores // max(1, blocks), depth // MIN_PART_STEPS))


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
    out = host if host is not None else stage
    outer_sizes = extents(out.op.axis[:-2]) or []  # type: ignore[attr-defined]
    parts = k_parts(product(outer_sizes) * -(-columns // block), depth, cpu.cores)
    if parts > 1:
        _schedule_split_k(s, tensor, host, cpu, parts)
        return
    _copy_rows_apart(s, stage, rows, depth, cpu)
    acc = stage if host is not None else s[s.cache_write(tensor, "local")]
    _schedule_blocks(out, acc, tensor.dtype, depth, cpu)


def _copy_rows_apart(s: Schedule, stage: Stage, rows: int, depth: int, cpu: CpuTarget) -> None:
    """Rows of ``x`` a multiple of 4 KiB apart map to one set of the L1 cache: with ``ALIASED_ROWS`` or more of them
    the broadcasts of one step of K evict each other (16 x 4096 x 4096 float32 on znver4: 5.5 ms, against 3.5 ms
    with K = 4100). Such an ``x`` is copied first into rows padded by a cache line (``storage_align``)."""
    op = stage.op
    assert isinstance(op, ComputeOp)
    inputs = [t for t in op.input_tensors() if len(t.shape) == 2]
    element_bytes = dt.storage_bytes(op.output(0).dtype)
    if rows < ALIASED_ROWS or len(inputs) != 1 or (depth * element_bytes) % ALIAS_BYTES:
        return
    copy = s[s.cache_read(inputs[0], "global", [op])]
    row, k = copy.op.axis  # type: ignore[attr-defined]
    copy.storage_align(row, ALIAS_BYTES // element_bytes, CACHE_LINE_BYTES // element_bytes)
    _, k_lane = copy.split(k, factor=cpu.lanes(op.output(0).dtype))  # K fills 4 KiB rows: whole vectors
    copy.vectorize(k_lane)


def _schedule_blocks(out: Stage, acc: Stage, dtype: str, depth: int, cpu: CpuTarget) -> None:
    """``out[..., i, j]`` in column blocks (its leading axes and the blocks in parallel), and the accumulators
    ``acc[..., i, j]`` of ``depth`` steps of K computed per block in registers, rows in groups."""
    block = int(acc.op.attrs["column_block"])  # type: ignore[union-attr]
    *outer, i, j = out.op.axis  # type: ignore[attr-defined]
    sizes = extents(out.op.axis) or []  # type: ignore[attr-defined]
    rows = sizes[-2] if sizes else 1
    j_block, j_lane = out.split(j, factor=block)
    out.reorder(*outer, j_block, i, j_lane)
    blocks = parallel_fused(out, [*outer, j_block], product(sizes) * depth, cpu.cores)
    out.vectorize(j_lane)
    acc.compute_at(out, blocks)
    *acc_outer, acc_i, acc_j = acc.op.axis  # type: ignore[attr-defined]
    (acc_k,) = acc.op.reduce_axis  # type: ignore[attr-defined]
    group = row_group(rows, block, cpu.lanes(dtype), cpu.vector_registers)
    element_bytes = dt.storage_bytes(dtype)
    i_group, i_inner = acc.split(acc_i, factor=group)
    chunk = k_chunk(depth, block, element_bytes, cpu.l1_bytes)
    if group < rows and chunk < depth:
        k_outer, k_inner = acc.split(acc_k, factor=chunk)
        acc.reorder(*acc_outer, k_outer, i_group, k_inner, i_inner, acc_j)
    else:
        k_inner = acc_k
        acc.reorder(*acc_outer, i_group, acc_k, i_inner, acc_j)
    acc.unroll(i_inner)
    acc.vectorize(acc_j)
    steps = prefetch_steps(block, element_bytes)
    if group < rows and chunk < depth:
        steps = chunk  # the next chunk, while every group works on this one
    if depth > steps:
        acc.pragma(k_inner, "prefetch", steps)


def _schedule_split_k(s: Schedule, tensor: Tensor, host: Stage | None, cpu: CpuTarget, parts: int) -> None:
    """K in ``parts`` parts: the partial products ``partial[p, i, j]`` (rfactor) scheduled as blocks, the parts and
    the blocks in parallel, then their sum per block of the output, fused with the epilogue where there is one."""
    stage = s[tensor]
    op = stage.op
    assert isinstance(op, ComputeOp)
    block = int(op.attrs["column_block"])
    (k,) = op.reduce_axis
    depth = extents(op.reduce_axis)[0]  # type: ignore[index]
    k_part, _ = stage.split(k, nparts=parts)
    partial = s.rfactor(tensor, k_part, factor_axis=0)
    partial_stage = s[partial]
    local = s[s.cache_write(partial, "local")]
    _schedule_blocks(partial_stage, local, tensor.dtype, -(-depth // parts), cpu)
    total = s[tensor]
    out = host if host is not None else total
    *outer, i, j = out.op.axis  # type: ignore[attr-defined]
    (part,) = total.op.reduce_axis  # type: ignore[union-attr]
    j_block, j_lane = out.split(j, factor=block)
    out.reorder(*outer, j_block, i, *([] if host is not None else [part]), j_lane)
    sizes = extents(out.op.axis) or []  # type: ignore[attr-defined]
    blocks = parallel_fused(out, [*outer, j_block], product(sizes) * parts, cpu.cores)
    out.vectorize(j_lane)
    if host is not None:
        total.compute_at(out, blocks)
        total_i, total_j = total.op.axis  # type: ignore[union-attr]
        total.reorder(part, total_i, total_j)
        total.vectorize(total_j)
