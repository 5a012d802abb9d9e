"""The plane schedule of ``conv2d_nchw``: 1x1 convolutions whose rows do not fill vectors (ShuffleNet's grouped
1x1 convolutions at 28x28 and 14x14), tiled over whole output planes (``schedule_pointwise_plane``).
"""

from __future__ import annotations

from tcomp.arith.factors import largest_divisor
from tcomp.ops.cpu.common import (
    CpuTarget,
    extents,
    padding_stage,
    parallel_fused,
    product,
    schedule_elementwise,
    split_to,
)
from tcomp.schedule.schedule import Schedule
from tcomp.schedule.stage import Stage
from tcomp.te.tensor import ComputeOp, Tensor

# whole tiles of a plane before a tail pays for the plane schedule (see pointwise_plane_tile)
_PLANE_TILES_BEFORE_TAIL = 4


def schedule_pointwise_plane(s: Schedule, tensor: Tensor, host: Stage | None, cpu: CpuTarget, sizes: list[int]) -> bool:
    """A 1x1, stride-1, unpadded ``conv2d_nchw`` (ShuffleNet's grouped 1x1 convolutions) whose rows do not fill
    vectors (``OW % lanes != 0``) but whose output planes split into tiles of one to two vectors
    (``pointwise_plane_tile``): each output plane is one contiguous row of ``OH * OW`` columns, tiled channels of
    one group x consecutive columns, a matrix product per group. The rows and columns are fused, which the register
    tile of the general schedule (a local cache computed at the tile) cannot follow, so the tile accumulates in
    memory: in the output, or with a fused epilogue in a local buffer of a tile of channels' whole planes, computed
    inside the epilogue's parallel loop over those tiles (``_epilogue_per_channel_tile``). Measured on znver1, 136
    -> 136 channels in 4 groups at 28x28, one thread: 0.55 -> 0.24 ms. Returns False (nothing scheduled) for any
    other convolution."""
    op = s[tensor].op
    assert isinstance(op, ComputeOp)
    _, oc_extent, oh_extent, ow_extent = sizes
    lanes = cpu.lanes(tensor.dtype)
    reduce_sizes = extents(op.reduce_axis)
    if reduce_sizes is None or reduce_sizes[1:] != [1, 1] or tuple(op.attrs.get("stride", ())) != (1, 1):
        return False
    if padding_stage(s, op) is not None or ow_extent % lanes == 0:
        return False
    tile = pointwise_plane_tile(oc_extent, int(op.attrs.get("groups", 1)), oh_extent * ow_extent, lanes,
                                cpu.vector_registers)
    if tile is None:
        return False
    channels, width = tile
    work = product(sizes) * reduce_sizes[0]
    stage = s[tensor]
    n, oc, oh, ow = stage.op.axis  # type: ignore[attr-defined]
    rc, ry, rx = stage.op.reduce_axis  # type: ignore[attr-defined]
    columns_outer, columns = stage.split(stage.fuse(oh, ow), factor=width)
    in_host = host is not None and channels < oc_extent
    if in_host and host is not None:  # computed per tile of channels of the epilogue: ``oc`` spans one tile
        _epilogue_per_channel_tile(host, stage, channels, work, cpu)
        outer, oc_inner = [n], oc
    else:
        oc_outer, oc_inner = split_to(stage, oc, channels, oc_extent)
        outer = [n] + ([oc_outer] if oc_outer is not None else [])
    stage.reorder(*outer, columns_outer, rc, ry, rx, oc_inner, columns)
    if not in_host:
        parallel_fused(stage, outer, work, cpu.cores)
    stage.unroll(oc_inner)
    stage.vectorize(columns)
    if host is not None and not in_host:  # the epilogue over whole planes: rows of 28 or 14 pixels fill no vectors
        host.fuse(*host.op.axis[2:])  # type: ignore[attr-defined]
        schedule_elementwise(host, cpu)
    return True


def _epilogue_per_channel_tile(host: Stage, stage: Stage, channels: int, work: int, cpu: CpuTarget) -> None:
    """The plane schedule's epilogue ``host`` by tiles of ``channels`` whole planes, in parallel, with the
    convolution ``stage`` computed at each: a tile's planes go to a local buffer (17 channels of 28x28 are 53 KB,
    in cache) and the epilogue reads them there, in the same parallel loop. (Tiles of single vectors of the fused
    planes cannot host it: bound inference gives such a tile the whole plane.)"""
    n, oc, oh, ow = host.op.axis  # type: ignore[attr-defined]
    oc_outer, oc_inner = host.split(oc, factor=channels)
    plane = host.fuse(oh, ow)
    host.reorder(n, oc_outer, oc_inner, plane)
    tiles = parallel_fused(host, [n, oc_outer], work, cpu.cores)
    assert tiles is not None
    lanes = cpu.lanes(host.op.output(0).dtype)  # type: ignore[attr-defined]
    _, pixels = host.split(plane, factor=lanes)
    host.vectorize(pixels)
    stage.compute_at(host, tiles)


def pointwise_plane_tile(out_channels: int, groups: int, plane: int, lanes: int,
                         registers: int) -> tuple[int, int] | None:
    """``(channels, columns)`` of a register tile of ``schedule_pointwise_plane`` over output planes of ``plane``
    pixels, or ``None`` when no tile fits. ``columns``: one or two vectors, whichever tile holds more accumulators, that
    divide the plane or leave a tail after at least ``_PLANE_TILES_BEFORE_TAIL`` whole tiles (196 pixels on 16
    lanes: 12 vectors and 4 pixels). ``channels``: the largest divisor of a group's output channels whose
    accumulators fit the registers beside the input vectors and a broadcast weight, so that every channel of the
    tile reads the same input columns (one load per input vector for the whole tile; a tile straddling two groups
    loads each input vector once per channel: measured on znver1, one thread, 136 -> 136 channels in 4 groups at
    28x28 with bias and ReLU, 4 channels straddling groups 0.43 ms, 2 channels of one group 0.31 ms). Where a
    group's channels have no such divisor above 1, the largest divisor of all the channels."""
    group_out = out_channels // groups if groups > 0 and out_channels % groups == 0 else out_channels
    best: tuple[int, int] | None = None
    for width in (2 * lanes, lanes):
        if plane % width and plane < _PLANE_TILES_BEFORE_TAIL * width:
            continue
        vectors = width // lanes
        budget = max(1, (registers - vectors - 1) // vectors)
        within = largest_divisor(group_out, budget)
        channels = within if within >= 2 else largest_divisor(out_channels, budget)
        if best is None or channels * vectors > best[0] * best[1] // lanes:
            best = (channels, width)
    return best
