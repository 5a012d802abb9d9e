"""Default CPU schedule of ``conv2d_winograd_nchwc`` (``tcomp/ops/winograd.py``): the padding, the input transform
``V``, the batch of products ``M`` and the output transform (with its fused elementwise epilogue).

Two placements, by the number of tiles per image (``TH x TW``):

- **by blocks of tiles** (``_FUSED_MIN_TILES`` or more): the output loop runs over blocks of one row of
  ``_BLOCK_TILES`` tiles in parallel; each block transforms its input patches (``V`` for the block, every input
  channel), multiplies them by the whole transformed kernel (``M`` for the block) and writes its ``m x m`` output
  pixels through the epilogue, so ``V`` and ``M`` stay in cache and only the kernel is streamed again per block::

      for (n, tile row, block) in parallel:
        V[a, a, C, 1, 4, ic]  = B^T d B                        # unrolled over the a x a positions
        for (e, u, k.outer): for tx.outer: <register tile>     # as conv2d_nchwc's 1x1 tiles
        for k, tx, (y, x) unrolled, o vectorized: out = epilogue(A^T M A)

- **stage by stage** (fewer tiles: the 14x14 and 7x7 layers): ``V`` over every tile at the root, then the
  products in parallel over ``(e, u, k.outer, tile row)``, so each block of the transformed kernel (the larger
  operand there) is read once for all tiles, then the output transform.

The products take ``conv2d_nchwc``'s register tile (``register_tile``: tile columns x output-channel blocks, the
reduction over input channels innermost-but-two, accumulators in registers). The transforms' loops over the tile
positions are unrolled (``_unrolled``), so each copy keeps one row of the transform matrices and the constant
factors fold.

Measured on znver1, 2 threads, F(4x4, 3x3), against ``conv2d_nchwc``'s default schedule: 64 -> 64 channels at 56x56
3.24 -> 1.15 ms, 128 at 28x28 3.12 -> 1.07 ms, 256 at 14x14 3.29 -> 1.52 ms, 512 at 7x7 3.66 -> 2.19 ms. The two
placements compared on the same layers (direct -> by blocks / stage by stage, ms): 64 at 56x56 3.19 -> 1.10 / 2.45;
128 at 28x28 2.59 -> 0.79 / 1.04; 256 at 14x14 3.14 -> 1.75 / 1.38; 512 at 7x7 3.72 -> 3.50 / 2.18; 512 at 14x14
12.3 -> 5.9 / 5.0; VGG-19's layers by blocks: 64 at 224x224 52.0 -> 17.8, 128 at 112x112 44.7 -> 13.8, 256 at
56x56 51.3 -> 15.5 (22.0 stage by stage), 512 at 28x28 48.8 -> 15.4 (19.3).
"""

from __future__ import annotations

from tcomp.ir.expr import IterVar
from tcomp.ops.cpu.common import CpuTarget, batch_extents, extents, parallel_fused, product, schedule_elementwise
from tcomp.ops.cpu.conv_tiles import TILE_FREE_REGISTERS, register_tile
from tcomp.ops.utils import OpKind, op_kind
from tcomp.schedule.schedule import Schedule
from tcomp.schedule.stage import Stage
from tcomp.te.tensor import ComputeOp

# tiles per image from which the blocks-of-tiles placement pays (measured: 49 and more did, 16 and fewer did not)
_FUSED_MIN_TILES = 32
# the axis of the transforms and products over the tile rows of every image (``batch * TH``: symbolic with the batch)
_ROWS = 3
# tiles of one row per block (measured at 56x56 and 28x28: 4 tiles ran 1.2-1.4x faster than 7 or 14)
_BLOCK_TILES = 4


def _read_stage(s: Schedule, stage: Stage, kind: OpKind) -> Stage | None:
    return next((s[t] for t in stage.op.input_tensors() if op_kind(t.op) is kind), None)


def winograd_stages(s: Schedule, stage: Stage) -> tuple[Stage, Stage, Stage | None]:
    """``(input transform, its rows stage, padding)`` read by the products ``stage``."""
    transform = _read_stage(s, stage, OpKind.WINOGRAD_INPUT)
    rows = _read_stage(s, transform, OpKind.WINOGRAD_INPUT) if transform is not None else None
    if transform is None or rows is None:
        raise ValueError(f"winograd: the products {stage.name} do not read an input transform")
    return transform, rows, _read_stage(s, rows, OpKind.PAD)


def schedule_winograd(s: Schedule, stage: Stage, cpu: CpuTarget) -> set[Stage]:
    """Schedule the products ``stage`` of a Winograd convolution with its transforms (see the module docstring);
    returns the stages placed."""
    op = stage.op
    assert isinstance(op, ComputeOp)
    transform, rows_in, padding = winograd_stages(s, stage)
    readers = s.readers(stage)
    sizes = batch_extents(op.axis, _ROWS)
    if len(readers) != 1 or op_kind(readers[0].op) is not OpKind.WINOGRAD_OUTPUT or sizes is None:
        raise ValueError(f"winograd: the products {stage.name} are not read by their output transform")
    rows_out = readers[0]
    outs = s.readers(rows_out)
    if len(outs) != 1:
        raise ValueError(f"winograd: the output transform {rows_out.name} has {len(outs)} readers")
    out = outs[0]
    tile = int(op.attrs["tile"])
    _, _, k_chunks, rows, tiles_w, oc_block = sizes
    out_sizes = batch_extents(out.op.axis)  # type: ignore[attr-defined]
    batch = out_sizes[0] if out_sizes else 1
    placed = {stage, transform, rows_in, rows_out}
    if padding is not None and not padding.is_output:
        schedule_elementwise(padding, cpu)
        placed.add(padding)
    blocked_output = out_sizes is not None and len(out_sizes) == 5 and out_sizes[1] == k_chunks \
        and out_sizes[4] == oc_block
    if blocked_output and rows // max(1, batch) * tiles_w >= _FUSED_MIN_TILES:
        _by_blocks(s, stage, transform, out, cpu, tile)
    else:
        _by_stages(s, stage, transform, out, cpu, tile, blocked_output)
    _input_rows(rows_in, transform)
    _output_rows(rows_out, out, blocked_output, cpu)
    if blocked_output:
        placed.add(out)  # else the output (a layout transform back to NCHW ...) gets the schedule of its kind
    return placed


def _unrolled(stage: Stage, selecting: IterVar, indexing: IterVar, lane: IterVar) -> None:
    """The innermost loops of a transform stage, over tile positions: ``selecting`` (the one whose value picks a
    row of the transform matrix) unrolled in the IR, so each copy keeps its row; ``indexing`` (which only moves
    the reads) left to LLVM's unroller, so the IR holds a sixth of the copies (a Winograd kernel then lowers and
    compiles in a fraction of the time); the channel block vectorized."""
    stage.pragma(selecting, "unroll_explicit")
    stage.unroll(indexing)
    stage.vectorize(lane)


def _transform_loops(stage: Stage, outer: list) -> None:
    """The input transform's loops: ``outer`` (its channel, tile row and column loops), then the ``a x a``
    positions and the channel block (``_unrolled``)."""
    e, u, _, _, _, lane = stage.op.axis  # type: ignore[attr-defined]
    stage.reorder(*outer, e, u, lane)
    _unrolled(stage, u, e, lane)


def _input_rows(rows: Stage, transform: Stage) -> None:
    """The rows of a tile's input transform, computed for each tile inside the transform's loop over tiles."""
    tile_column = transform.op.axis[4]  # type: ignore[attr-defined]
    rows.compute_at(transform, tile_column)
    e, _, _, _, x, lane = rows.op.axis  # type: ignore[attr-defined]
    _unrolled(rows, e, x, lane)


def _output_rows(rows: Stage, out: Stage, blocked_output: bool, cpu: CpuTarget) -> None:
    """The rows of a tile's output transform, computed for each tile inside the output's loop over tiles (at
    the root, when the output is not in the blocked layout)."""
    r, u, _, _, _, lane = rows.op.axis  # type: ignore[attr-defined]
    if blocked_output:
        rows.compute_at(out, out.leaf_iter_vars[-4])  # the loop over tile columns, outside a tile's pixels
        _unrolled(rows, r, u, lane)
    else:
        schedule_elementwise(rows, cpu)


def _products(s: Schedule, stage: Stage, cpu: CpuTarget, columns: int, parallel: bool) -> None:
    """The products as register tiles of ``conv2d_nchwc``'s kind over ``columns`` tile columns."""
    op = stage.op
    assert isinstance(op, ComputeOp)
    sizes = batch_extents(op.axis, _ROWS)
    assert sizes is not None
    _, _, k_chunks, _, _, oc_block = sizes
    vectors = max(1, -(-oc_block // cpu.lanes(op.output(0).dtype)))
    reg_n, chunks = register_tile(columns, k_chunks, vectors, cpu.vector_registers - TILE_FREE_REGISTERS)
    acc = s[s.cache_write(op.output(0), "local")]
    e, u, k, t, tx, o = stage.op.axis  # type: ignore[attr-defined]
    tx_outer, tx_inner = stage.split(tx, factor=reg_n)
    k_outer, k_inner = stage.split(k, factor=chunks)
    stage.reorder(e, u, k_outer, t, tx_outer, k_inner, tx_inner, o)
    if parallel:
        reduce_sizes = extents(acc.op.reduce_axis) or [1]
        parallel_fused(stage, [e, u, k_outer, t], product(sizes) * product(reduce_sizes), cpu.cores)
    stage.vectorize(o)
    acc.compute_at(stage, tx_outer)
    _, _, a_k, _, a_tx, a_o = acc.op.axis  # type: ignore[attr-defined]
    rc, ri = acc.op.reduce_axis  # type: ignore[attr-defined]
    acc.reorder(rc, ri, a_tx, a_k, a_o)
    acc.unroll(a_tx)
    acc.unroll(a_k)
    acc.vectorize(a_o)


def _output_loops(out: Stage, tile: int, block: int | None) -> tuple[list, list]:
    """Split the output's rows and columns into tiles of ``tile`` pixels (and the tile columns into blocks of
    ``block``); returns ``(outer loops, inner loops)`` with the pixels of a tile unrolled and the channel block
    vectorized."""
    n, k, y, x, o = out.op.axis  # type: ignore[attr-defined]
    y_outer, y_inner = out.split(y, factor=tile)
    x_outer, x_inner = out.split(x, factor=tile)
    if block is None:
        outer, inner = [n, k, y_outer], [x_outer, y_inner, x_inner, o]
    else:
        x_block, x_outer = out.split(x_outer, factor=block)
        outer, inner = [n, y_outer, x_block], [k, x_outer, y_inner, x_inner, o]
    out.reorder(*outer, *inner)
    _unrolled(out, x_inner, y_inner, o)
    return outer, inner


def _by_blocks(s: Schedule, stage: Stage, transform: Stage, out: Stage, cpu: CpuTarget, tile: int) -> None:
    outer, _ = _output_loops(out, tile, _BLOCK_TILES)
    work = product(batch_extents(stage.op.axis, _ROWS) or [1]) * product(extents(stage.op.reduce_axis) or [1])
    fused = parallel_fused(out, outer, work, cpu.cores)
    assert fused is not None
    transform.compute_at(out, fused)
    _, _, c, t, tx, _ = transform.op.axis  # type: ignore[attr-defined]
    _transform_loops(transform, [c, t, tx])
    stage.compute_at(out, fused)
    _products(s, stage, cpu, _BLOCK_TILES, parallel=False)


def _by_stages(s: Schedule, stage: Stage, transform: Stage, out: Stage, cpu: CpuTarget, tile: int,
               blocked_output: bool) -> None:
    sizes = batch_extents(transform.op.axis, _ROWS)
    _, _, c, t, tx, _ = transform.op.axis  # type: ignore[attr-defined]
    _transform_loops(transform, [c, t, tx])
    parallel_fused(transform, [c, t], product(sizes) if sizes else None, cpu.cores)
    columns = (batch_extents(stage.op.axis, _ROWS) or [1] * 5)[4]
    _products(s, stage, cpu, columns, parallel=True)
    if blocked_output:
        outer, _ = _output_loops(out, tile, None)
        parallel_fused(out, outer, product(batch_extents(out.op.axis) or [1]), cpu.cores)
