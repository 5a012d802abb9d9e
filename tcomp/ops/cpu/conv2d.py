"""Default CPU schedules of the 2-D convolutions: ``conv2d_nchwc`` (blocked layout), ``conv2d_nchw`` (direct) and
``depthwise_conv2d_nchw``.

All three follow one pattern (TVM's x86 conv2d schedules): the output is tiled so that a register tile of
accumulators stays in vector registers for the whole reduction; the tile is computed in a local buffer (the
convolution stage itself, computed at the tile loop of the stage that writes the output: a ``cache_write`` copy, or
the fused elementwise consumer such as bias + relu) and written once; the padding stage is computed at the root in
parallel, so the inner loops read without bounds tests.

``conv2d_nchwc`` (output ``[N, O/oc, OH, OW, oc]``)::

    for (n, o.tile, oh) in parallel:           # or (n, oh, o.tile): the loop order that moves fewer bytes
      for ow.outer:                            # tile: reg_n output columns x oc_chunks blocks of oc channels
        for ic.chunk, ry, icb, rx (unrolled):  # reduction; 1x1 kernels drop the rx/ry loops
          for ow.inner in unrolled(reg_n): for o.chunk in unrolled(oc_chunks): for b in vectorized(oc):
            acc[ow, o, b] += data[.., ow, ..] * kernel[o, .., b]
        out[.., ow, b] = epilogue(acc[ow, b])

``reg_n x oc_chunks`` is the tile whose accumulators fit the register file with room to spare and do the most
multiply-adds per load (``conv_tiles.py``). A tuned tile can replace that choice: inside ``with nchwc_tiles(choose):``
the schedule asks ``choose(op, workload)`` first (``nchwc_workload``: the convolution's sizes, as the
``conv2d_nchwc_blocked`` tuning template takes them); the graph compiler does this with its tuning records.

``conv2d_nchw`` tiles ``oc_t`` output channels x ``vw`` consecutive output columns (one vector, a contiguous load of
the input row per reduction step, broadcast weights), or for a 1x1 convolution whose rows do not fill vectors, whole
output planes (``conv_plane.py``); the depthwise schedule tiles one vector of columns.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from tcomp.arith.factors import largest_divisor, pow2_divisor
from tcomp.ir.expr import IterKind, const_int_value
from tcomp.ops.cpu.common import (
    CpuTarget,
    TileChoice,
    TileChooser,
    batch_extents,
    extents,
    padding_stage,
    parallel_fused,
    product,
    schedule_elementwise,
    split_to,
    vector_factor,
)
from tcomp.ops.cpu.conv_plane import schedule_pointwise_plane
from tcomp.ops.cpu.conv_tiles import NCHWcTile, conv2d_nchwc_tile
from tcomp.ops.utils import OpKind
from tcomp.schedule.schedule import Schedule
from tcomp.schedule.stage import Stage
from tcomp.te.tensor import ComputeOp, Tensor

# accumulators a register tile may use, out of 32 (AVX-512) or 16 vector registers: the rest hold weights and
# broadcasts
_SPARE_REGISTERS = 4
# the widest channel block a depthwise tile keeps in registers, in vectors
MAX_BLOCK_VECTORS = 4


def schedule_padding(s: Schedule, op: ComputeOp, cpu: CpuTarget) -> None:
    """The convolution's padding stage computed at the root as a parallel, vectorized copy."""
    stage = padding_stage(s, op)
    if stage is not None and not stage.is_output:
        schedule_elementwise(stage, cpu)


def _output_stage(s: Schedule, tensor: Tensor, host: Stage | None) -> tuple[Stage, Stage]:
    """``(out, acc)``: the stage that writes the result (the fused consumer ``host``, or a copy made by
    ``cache_write``) and the stage that accumulates (the convolution, to be computed at a tile loop of ``out``)."""
    if host is not None:
        return host, s[tensor]
    cache = s.cache_write(tensor, "local")
    return s[tensor], s[cache]


Workload = tuple[Any, ...]
_TILES: TileChoice[NCHWcTile] = TileChoice("tcomp_nchwc_tiles")


def nchwc_tiles(choose: TileChooser) -> contextlib.AbstractContextManager[None]:
    """Within the block, ``conv2d_nchwc`` schedules take ``choose(op, nchwc_workload(op))`` as their tile when it
    returns one (else the default tile)."""
    return _TILES.using(choose)


def blocked_conv_workload(data: Sequence[int | None], kernel: Sequence[int | None], strides: Sequence[int],
                          pads: Sequence[int], dilations: Sequence[int], dtype: str) -> Workload | None:
    """``(N, C, H, W, O, KH, KW, stride, padding, ic_block, oc_block, dtype)`` of a blocked convolution of
    ``data[N, C/ic, H, W, ic]`` and ``kernel[O/oc, C/ic, KH, KW, ic, oc]`` with one stride, one padding on every
    side and no dilation; None for any other (or for unknown sizes)."""
    if len(data) != 5 or len(kernel) != 6 or None in (*data, *kernel):
        return None
    if len(set(strides)) != 1 or len(set(pads)) != 1 or set(dilations) != {1}:
        return None
    n, chunks, h, w, ic = data
    o_chunks, _, kh, kw, _, oc = kernel
    return (n, chunks * ic, h, w, o_chunks * oc, kh, kw, strides[0], pads[0], ic, oc, dtype)


def nchwc_workload(op: ComputeOp) -> Workload | None:
    """``blocked_conv_workload`` of a ``conv2d_nchwc`` compute; None for a grouped one (no template covers it)."""
    if op.attrs.get("groups", 1) != 1:
        return None
    padded, kernel = op.input_tensors()
    data = padded.op.input_tensors()[0] if isinstance(padded.op, ComputeOp) else padded
    return blocked_conv_workload([const_int_value(d) for d in data.shape], [const_int_value(d) for d in kernel.shape],
                                 *(tuple(op.attrs.get(k, ())) for k in ("stride", "padding", "dilation")), data.dtype)


def schedule_conv2d_nchwc_stage(s: Schedule, tensor: Tensor, host: Stage | None, cpu: CpuTarget,
                                tile: NCHWcTile | None = None) -> None:
    known = _constant_extents(s, tensor, host, cpu, with_reduction=True)
    if known is None:
        return
    op, sizes, reduce_sizes = known
    stride = max(tuple(op.attrs.get("stride", (1,))))
    groups = int(op.attrs.get("groups", 1))
    if tile is None:
        default = conv2d_nchwc_tile(sizes, reduce_sizes, cpu, cpu.lanes(tensor.dtype), stride, groups)
        chosen = _TILES.get(op, nchwc_workload(op)) if _TILES.active else None
        # a chosen tile keeps the default's loop order (not a knob of the tuning template)
        tile = replace(chosen, rows_outer=default.rows_outer) if chosen is not None else default
    schedule_padding(s, op, cpu)
    if tile.ic_chunks:
        _nchwc_blocked_reduction(s, tensor, host, cpu, tile, sizes, reduce_sizes)
        return
    _, oc_chunks, _, ow_extent, oc_block = sizes
    out, acc = _output_stage(s, tensor, host)
    if len(out.op.axis) == 4:  # type: ignore[attr-defined]
        # the host is the layout transform back to NCHW: the channel axis splits into (chunk, block)
        n, channel, oh, ow = out.op.axis  # type: ignore[attr-defined]
        oc_chunk, oc_inner = out.split(channel, factor=oc_block)
        vector_axis = "ow"
    else:
        n, oc_chunk, oh, ow, oc_inner = out.op.axis  # type: ignore[attr-defined]
        vector_axis = "oc"
    ow_outer, ow_inner = split_to(out, ow, tile.reg_n, ow_extent)
    oc_outer, oc_tile = split_to(out, oc_chunk, tile.oc_chunks, oc_chunks)
    rows, row_tile_loop = _row_loops(out, oh, tile.reg_h, sizes[2])
    channel_tiles = [oc_outer] if oc_outer is not None else []
    outer = [n, *rows, *channel_tiles] if tile.rows_outer else [n, *channel_tiles, *rows]
    tile_loops = [ow_outer] if ow_outer is not None else []
    if vector_axis == "oc":
        out.reorder(*outer, *tile_loops, oc_tile, *row_tile_loop, ow_inner, oc_inner)
        out.vectorize(oc_inner)
    else:  # contiguous stores along the output row, gathered from the tile
        out.reorder(*outer, *tile_loops, oc_tile, oc_inner, *row_tile_loop, ow_inner)
        out.vectorize(ow_inner)
    fused = parallel_fused(out, outer, product(sizes) * product(reduce_sizes), cpu.cores)
    assert fused is not None
    acc.compute_at(out, tile_loops[0] if tile_loops else fused)
    a_n, a_oc, a_oh, a_ow, a_b = acc.op.axis  # type: ignore[attr-defined]
    ic, ry, rx, icb = acc.op.reduce_axis  # type: ignore[attr-defined]
    if tile.reg_h > 1:  # whole rows in the tile: the rows innermost with the columns
        inner_rows, outer_rows = [a_oh], []
        acc.unroll(a_oh)
    else:
        inner_rows, outer_rows = [], [a_oh]
    if tile.unroll_kw:
        acc.reorder(a_n, *outer_rows, ic, ry, icb, rx, *inner_rows, a_ow, a_oc, a_b)
        acc.unroll(rx)
    else:
        acc.reorder(a_n, *outer_rows, ic, ry, rx, icb, *inner_rows, a_ow, a_oc, a_b)
    acc.unroll(a_ow)
    acc.unroll(a_oc)
    acc.vectorize(a_b)


def _row_loops(stage: Stage, oh: Any, reg_h: int, extent: int) -> tuple[list[Any], list[Any]]:
    """The output-row loops outside the register tile and inside it: ``([oh], [])`` for a tile of one row, else
    ``oh`` split by ``reg_h`` (no outer loop when the tile takes every row)."""
    if reg_h <= 1:
        return [oh], []
    outer, inner = split_to(stage, oh, reg_h, extent)
    return ([outer] if outer is not None else []), [inner]


def _nchwc_blocked_reduction(s: Schedule, tensor: Tensor, host: Stage | None, cpu: CpuTarget, tile: NCHWcTile,
                             sizes: list[int], reduce_sizes: list[int]) -> None:
    """``ic_chunks > 0``: ``for (n, o.outer) parallel: for ic.outer: for oh, ow.outer: <reduction block> tile``."""
    stage = s[tensor]
    _, oc_chunks, _, ow_extent, _ = sizes
    n, oc_chunk, oh, ow, oc_inner = stage.op.axis  # type: ignore[attr-defined]
    ic, ry, rx, icb = stage.op.reduce_axis  # type: ignore[attr-defined]
    oc_outer, oc_tile = split_to(stage, oc_chunk, tile.oc_chunks, oc_chunks)
    ow_outer, ow_inner = split_to(stage, ow, tile.reg_n, ow_extent)
    ic_outer, ic_inner = split_to(stage, ic, tile.ic_chunks, reduce_sizes[0])
    rows, row_tile_loop = _row_loops(stage, oh, tile.reg_h, sizes[2])
    outer = [n] + ([oc_outer] if oc_outer is not None else [])
    blocks = [ic_outer] if ic_outer is not None else []
    columns = [ow_outer] if ow_outer is not None else []
    if tile.unroll_kw:
        inner = [ic_inner, ry, icb, rx]
        stage.unroll(rx)
    else:
        inner = [ic_inner, ry, rx, icb]
    stage.reorder(*outer, *blocks, *rows, *columns, *inner, *row_tile_loop, ow_inner, oc_tile, oc_inner)
    parallel_fused(stage, outer, product(sizes) * product(reduce_sizes), cpu.cores)
    for loop in row_tile_loop:
        stage.unroll(loop)
    stage.unroll(ow_inner)
    stage.unroll(oc_tile)
    stage.vectorize(oc_inner)
    if host is not None:
        schedule_elementwise(host, cpu)


@dataclass(frozen=True)
class NCHWTile:
    """A register tile of ``conv2d_nchw``: ``oc_t`` output channels x ``rows`` output rows x ``vw`` consecutive
    output columns (one vector). Each reduction step loads ``rows`` input vectors and broadcasts ``oc_t`` weights
    for ``oc_t * rows`` multiply-adds."""

    oc_t: int
    rows: int
    vw: int


def conv2d_nchw_tile(oc: int, oh: int, ow: int, cpu: CpuTarget, lanes: int) -> NCHWTile:
    """``vw``: the vector factor of ``ow``; ``rows``: the largest divisor of ``oh`` up to 4; ``oc_t``: the largest
    divisor of ``oc`` whose accumulators fit the register file (at most 8)."""
    vw = vector_factor(ow, lanes) or lanes
    vectors = max(1, -(-vw // lanes))
    rows = largest_divisor(oh, 4)
    oc_t = largest_divisor(oc, min(8, (cpu.vector_registers - _SPARE_REGISTERS) // (vectors * rows)))
    return NCHWTile(oc_t, rows, vw)


def schedule_conv2d_nchw_stage(s: Schedule, tensor: Tensor, host: Stage | None, cpu: CpuTarget,
                               tile: NCHWTile | None = None) -> None:
    known = _constant_extents(s, tensor, host, cpu)
    if known is None:
        return
    op, sizes, _ = known
    _, oc_extent, oh_extent, ow_extent = sizes
    if tile is None and schedule_pointwise_plane(s, tensor, host, cpu, sizes):
        return
    tile = tile or conv2d_nchw_tile(oc_extent, oh_extent, ow_extent, cpu, cpu.lanes(tensor.dtype))
    schedule_padding(s, op, cpu)
    out, acc = _output_stage(s, tensor, host)
    n, oc, oh, ow = out.op.axis  # type: ignore[attr-defined]
    oc_outer, oc_inner = split_to(out, oc, tile.oc_t, oc_extent)
    oh_outer, oh_inner = split_to(out, oh, tile.rows, oh_extent)
    ow_outer, ow_inner = split_to(out, ow, tile.vw, ow_extent)
    outer = [n] + ([oc_outer] if oc_outer is not None else []) + ([oh_outer] if oh_outer is not None else [])
    tile_loops = [ow_outer] if ow_outer is not None else []
    out.reorder(*outer, *tile_loops, oc_inner, oh_inner, ow_inner)
    reduce_sizes = extents(op.reduce_axis) or [1]
    fused = parallel_fused(out, outer, product(sizes) * product(reduce_sizes), cpu.cores)
    assert fused is not None
    out.vectorize(ow_inner)
    acc.compute_at(out, tile_loops[0] if tile_loops else fused)
    a_n, a_oc, a_oh, a_ow = acc.op.axis  # type: ignore[attr-defined]
    rc, ry, rx = acc.op.reduce_axis  # type: ignore[attr-defined]
    acc.reorder(a_n, rc, ry, rx, a_oc, a_oh, a_ow)
    acc.unroll(a_oc)
    acc.unroll(a_oh)
    acc.vectorize(a_ow)


def strided(op: ComputeOp) -> bool:
    """Whether a convolution has a stride above 1."""
    return max(tuple(op.attrs.get("stride", (1,)))) > 1


def depthwise_vector_width(ow: int, lanes: int) -> int:
    """The columns of one vector of ``depthwise_conv2d_nchw``: the largest power of two dividing ``OW`` when it is
    at least half the lanes, else ``vector_factor``. A vector of 7 or 14 floats is split by LLVM into loads and
    stores of 4, 2 and 1 (measured on znver1, one thread, 136 channels at 28x28, 3x3, stride 1: 7 columns 241 us,
    4 columns 206 us)."""
    width = lanes
    while width > 1 and ow % width:
        width //= 2
    if width * 2 >= lanes:
        return width
    return vector_factor(ow, lanes) or lanes


def schedule_depthwise_conv2d_nchw_stage(s: Schedule, tensor: Tensor, host: Stage | None, cpu: CpuTarget) -> None:
    """``depthwise_conv2d_nchw``: a tile of up to 4 output rows x one vector of columns (``depthwise_vector_width``)
    accumulated over the unrolled window in a local cache, ``(n, c, row tile)`` in parallel. With a stride the
    padding is inlined into the window's reads (the strided reads gather anyway, and a padded copy moves the stride
    squared times the output's elements: measured on znver1, one thread, 136 channels at 28x28, 3x3, stride 2, bias:
    318 us with a padded copy, 162 us inlined; at stride 1 the copy pays, 241 us against 578 us inlined)."""
    _window_nchw(s, tensor, host, cpu, place_padding=True)


def schedule_pool_window_stage(s: Schedule, tensor: Tensor, host: Stage | None, cpu: CpuTarget) -> None:
    """A pooling window's reduction (``POOL_WINDOW``: max, or the sum of an average; in NCHW or ``NCHW{b}c``) with its
    elementwise epilogue (the division of an average, an activation) as ``host``: the depthwise convolution's tiles,
    so the window accumulates in registers and the epilogue runs on the tile (the generic reduction schedule
    accumulated in memory, each vector a gather, and ran the epilogue as a pass of its own). The padding stays
    inlined (a window's bounds tests cost less than a padded copy). Measured on znver1, one thread, 3x3 stride-2
    pooling + ReLU, against the generic schedule: average of 136 channels at 28x28 181 -> 141 us, of 24 channels
    at 56x56 133 -> 101 us; max of 24 channels at 112x112 623 -> 329 us."""
    if len(tensor.shape) == 5:
        schedule_depthwise_conv2d_nchwc_stage(s, tensor, host, cpu)
    else:
        _window_nchw(s, tensor, host, cpu, place_padding=False)


def _window_nchw(s: Schedule, tensor: Tensor, host: Stage | None, cpu: CpuTarget, place_padding: bool) -> None:
    known = _constant_extents(s, tensor, host, cpu)
    if known is None:
        return
    op, sizes, _ = known
    _, _, oh_extent, ow_extent = sizes
    lanes = cpu.lanes(tensor.dtype)
    vw = depthwise_vector_width(ow_extent, lanes)
    rows = largest_divisor(oh_extent, 4)
    padding = padding_stage(s, op)
    if place_padding and padding is not None and not padding.is_output:
        if strided(op):
            padding.compute_inline()
        else:
            schedule_padding(s, op, cpu)
    out, acc = _output_stage(s, tensor, host)
    n, c, oh, ow = out.op.axis  # type: ignore[attr-defined]
    oh_outer, oh_inner = split_to(out, oh, rows, oh_extent)
    ow_outer, ow_inner = split_to(out, ow, vw, ow_extent)
    outer = [n, c] + ([oh_outer] if oh_outer is not None else [])
    tile = [ow_outer] if ow_outer is not None else []
    out.reorder(*outer, *tile, oh_inner, ow_inner)
    fused = parallel_fused(out, outer, product(sizes) * 9, cpu.cores)
    assert fused is not None
    out.vectorize(ow_inner)
    acc.compute_at(out, tile[0] if tile else fused)
    a_n, a_c, a_oh, a_ow = acc.op.axis  # type: ignore[attr-defined]
    ry, rx = acc.op.reduce_axis  # type: ignore[attr-defined]
    acc.reorder(a_n, a_c, ry, rx, a_oh, a_ow)
    acc.unroll(rx)
    acc.unroll(a_oh)
    acc.vectorize(a_ow)


def schedule_depthwise_conv2d_nchwc_stage(s: Schedule, tensor: Tensor, host: Stage | None, cpu: CpuTarget) -> None:
    """``depthwise_conv2d_nchwc`` (output ``[N, C/b, OH, OW, b]``): like ``conv2d_nchwc``, a register tile of
    ``reg_n`` output columns x the vector of ``b`` channels, accumulated over the unrolled kernel window in a local
    cache and written once through the fused epilogue; ``(n, c, oh)`` in parallel. ``reg_n`` is the largest divisor
    of ``OW`` up to 8; a block of more than ``MAX_BLOCK_VECTORS`` vectors (one block of all channels: rows viewed as
    ``NCHW{C}c``) is tiled in chunks of them. The padding is inlined: a depthwise window does too little work per
    input for a padded copy of the input to pay (measured on znver1, 136 channels at 28x28, 3x3, bias, one thread:
    0.25 ms with the padding a stage of its own, 0.13 ms inlined; the generic schedule, accumulating in memory per
    output pixel, 0.45 ms)."""
    known = _constant_extents(s, tensor, host, cpu, with_reduction=True)
    if known is None:
        return
    op, sizes, reduce_sizes = known
    _, _, _, ow_extent, block = sizes
    lanes = cpu.lanes(tensor.dtype)
    # a block wider than MAX_BLOCK_VECTORS vectors (all the channels of channels-last rows) runs in chunks of a power
    # of two vectors (LLVM widens a vector of 3 to 4 with masks: 144 channels at 56x56 in chunks of 48, 0.60 ms); one
    # of a whole number of half vectors but not of vectors (rows of 72 or 120 channels) in half vectors, whose loads
    # stay within cache lines (72 channels at 56x56, 3x3, on znver4: 0.22 ms as one chunk, 0.04 in chunks of 8)
    half = max(1, lanes // 2)
    if block % lanes == 0:
        chunk = block if block <= MAX_BLOCK_VECTORS * lanes else \
            lanes * pow2_divisor(block // lanes, MAX_BLOCK_VECTORS)
    elif block > lanes and block % half == 0:
        chunk = half * pow2_divisor(block // half, 2 * MAX_BLOCK_VECTORS)
    else:
        chunk = block
    vectors = max(1, -(-chunk // lanes))
    reg_n = largest_divisor(ow_extent, max(1, min(8, (cpu.vector_registers - _SPARE_REGISTERS) // vectors)))
    padding = padding_stage(s, op)
    if padding is not None and not padding.is_output:
        padding.compute_inline()  # bounds tests in the window cost less than a padded copy of the input
    out, acc = _output_stage(s, tensor, host)
    n, c, oh, ow, b = out.op.axis  # type: ignore[attr-defined]
    ow_outer, ow_inner = split_to(out, ow, reg_n, ow_extent)
    tile_loops = [ow_outer] if ow_outer is not None else []
    chunks: list[Any] = []
    if chunk != block:
        b_outer, b = out.split(b, factor=chunk)
        chunks = [b_outer]
    out.reorder(n, c, oh, *tile_loops, *chunks, ow_inner, b)  # the chunks of a tile read the same lines of input
    tile_loops = chunks or tile_loops
    fused = parallel_fused(out, [n, c, oh], product(sizes) * product(reduce_sizes), cpu.cores)
    assert fused is not None
    out.vectorize(b)
    acc.compute_at(out, tile_loops[0] if tile_loops else fused)
    a_n, a_c, a_oh, a_ow, a_b = acc.op.axis  # type: ignore[attr-defined]
    ry, rx = acc.op.reduce_axis  # type: ignore[attr-defined]
    acc.reorder(a_n, a_c, a_oh, ry, rx, a_ow, a_b)
    acc.unroll(rx)
    acc.unroll(a_ow)
    acc.vectorize(a_b)


def _constant_extents(s: Schedule, tensor: Tensor, host: Stage | None, cpu: CpuTarget,
                      with_reduction: bool = False) -> tuple[ComputeOp, list[int], list[int]] | None:
    """The convolution's op and its constant output extents (and reduction extents, ``with_reduction``), a symbolic
    batch counted as one (``batch_extents``); ``None`` where another is symbolic, after giving the stage the
    symbolic-shape schedule (``_fallback``)."""
    op = s[tensor].op
    assert isinstance(op, ComputeOp)
    sizes = batch_extents(op.axis)
    reduce_sizes = extents(op.reduce_axis) if with_reduction else []
    if sizes is None or reduce_sizes is None:
        _fallback(s, tensor, host, cpu)
        return None
    return op, sizes, reduce_sizes


def _fallback(s: Schedule, tensor: Tensor, host: Stage | None, cpu: CpuTarget) -> None:
    """Symbolic shapes: outputs in parallel, reductions as plain loops, the epilogue its own pass."""
    stage = s[tensor]
    data = [iv for iv in stage.leaf_iter_vars if iv.kind is not IterKind.REDUCE]
    parallel_fused(stage, data[:2], None, cpu.cores)
    if host is not None:
        schedule_elementwise(host, cpu)


SCHEDULES = {
    OpKind.CONV2D_NCHWC: schedule_conv2d_nchwc_stage,
    OpKind.CONV2D_NCHW: schedule_conv2d_nchw_stage,
    OpKind.DEPTHWISE_CONV2D_NCHW: schedule_depthwise_conv2d_nchw_stage,
    OpKind.DEPTHWISE_CONV2D_NCHWC: schedule_depthwise_conv2d_nchwc_stage,
}
