"""Shared pieces of the default CPU schedules: factor choice by shape, and the schedules of plain stages.

Factors are chosen from the shape and the target, never fixed: vector widths come from the target's SIMD width and
the dtype, tiles are divisors of the extents where a good divisor exists (so no iteration needs a bounds guard),
and a loop runs in parallel only when the work behind it pays for waking the thread pool.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from tcomp.arith.analyzer import simplify
from tcomp.arith.factors import largest_divisor
from tcomp.ir import dtype as dt
from tcomp.ir.expr import IterKind, IterVar, ProducerLoad, Reduce, Var, const_int_value
from tcomp.ir.functor import free_vars, post_order_visit, substitute
from tcomp.ops.cpu.views import placeholder_reads
from tcomp.ops.nchwc import Layout
from tcomp.ops.utils import OpKind, op_kind
from tcomp.schedule.schedule import Schedule
from tcomp.schedule.stage import Stage
from tcomp.target import Target, TargetKind
from tcomp.te.tensor import ComputeOp

# fewer elements (or multiply-adds) than this run on one thread: waking the pool costs tens of microseconds
PARALLEL_MIN_WORK = 1 << 15
# rows per core the parallel loop of an elementwise stage needs before it leaves its innermost row a serial loop
ROW_LOOP_MIN_ROWS = 8
# a large reduction to one value (``_reduce_in_parts``): parts per core (a few, so that a core that starts late
# leaves some to the other) and vector accumulators per part
PARTS_PER_CORE = 4
ACCUMULATORS = 4


@dataclass(frozen=True)
class CpuTarget:
    """What the schedules need to know about the CPU."""

    vector_bits: int
    vector_registers: int
    cores: int
    l1_bytes: int = 32 << 10  # data cache per core
    l2_bytes: int = 1 << 20
    byte_dots: bool = False  # a 4-byte dot product instruction at the register width (VNNI's ``vpdpbusd``)
    word_dots: bool = False  # an int16 pair dot product instruction at the register width (``pmaddwd``)
    bf16_dots: bool = False  # a bfloat16 pair dot product instruction at the register width (``vdpbf16ps``)

    @staticmethod
    def of(target: Target | None) -> CpuTarget:
        target = target or Target.current_host()
        if target.kind is not TargetKind.LLVM:
            raise ValueError(f"CPU schedules need an llvm target, got {target}")
        l1, l2 = host_cache_bytes() if target.host else (32 << 10, 1 << 20)
        return CpuTarget(target.vector_bits, target.vector_registers, max(1, target.num_cores), l1, l2,
                         target.byte_dots, target.word_dots, target.bf16_dots)

    def lanes(self, dtype: str) -> int:
        """SIMD lanes of one register for elements of ``dtype``."""
        return max(1, self.vector_bits // max(8, dt.bits(dtype)))


@functools.cache
def host_cache_bytes() -> tuple[int, int]:
    """This machine's L1 data and L2 cache sizes per core, from Linux's sysfs (32 KiB and 1 MiB where unknown)."""
    sizes = {1: 32 << 10, 2: 1 << 20}
    root = Path("/sys/devices/system/cpu/cpu0/cache")
    for index in root.glob("index*") if root.is_dir() else []:
        try:
            level = int((index / "level").read_text())
            kind = (index / "type").read_text().strip()
            text = (index / "size").read_text().strip().upper()
        except (OSError, ValueError):
            continue
        if level in sizes and kind in ("Data", "Unified") and text:
            scale = {"K": 1 << 10, "M": 1 << 20}.get(text[-1], 1)
            digits = text.rstrip("KM")
            if digits.isdigit():
                sizes[level] = int(digits) * scale
    return sizes[1], sizes[2]


def const_extent(iv: IterVar) -> int | None:
    return None if iv.dom is None else const_int_value(iv.dom.extent)


def extents(axes: Sequence[IterVar]) -> list[int] | None:
    """Constant extents of ``axes``, or ``None`` when one is symbolic."""
    values = [const_extent(iv) for iv in axes]
    if any(v is None for v in values):
        return None
    return [int(v) for v in values if v is not None]


def batch_extents(axes: Sequence[IterVar], batch_axis: int = 0) -> list[int] | None:
    """``extents`` where axis ``batch_axis`` may also be symbolic, its extent a multiple of a symbolic batch (a model
    compiled once for a symbolic batch: ``batch``, or ``batch * tiles`` of a Winograd convolution): that extent is
    counted at a batch of one, so the schedule tiles the other axes as for one image and the batch's loop runs
    outside them. ``None`` where another axis is symbolic."""
    values = [const_extent(iv) for iv in axes]
    extent = axes[batch_axis].dom.extent if values[batch_axis] is None else None
    if extent is not None:
        one = const_int_value(simplify(substitute(extent, {v: 1 for v in free_vars(extent)})))
        values[batch_axis] = one if one is not None and one > 0 else None
    if any(v is None for v in values):
        return None
    return [int(v) for v in values if v is not None]


def product(values: Sequence[int]) -> int:
    result = 1
    for v in values:
        result *= v
    return result


def vector_factor(extent: int, lanes: int) -> int | None:
    """How many consecutive elements of an axis of ``extent`` to vectorize: ``lanes`` when it divides the extent,
    else a divisor of at least half the lanes, else the whole axis when it is short; ``None`` when only a tail
    guard would do (the axis is then left to LLVM)."""
    if extent % lanes == 0:
        return lanes
    best = largest_divisor(extent, lanes)
    if best * 2 >= lanes and best > 1:
        return best
    if 1 < extent <= lanes:
        return extent
    return None


def dot_lanes(k: int, lanes: int) -> int:
    """The partial sums of a reduction (a dot product) over ``k`` elements: the largest power of two up to ``lanes``
    that divides ``k`` (K = 1000 runs 8-lane vectors on a 16-lane machine rather than plain loops)."""
    width = lanes
    while width > 1 and k % width:
        width //= 2
    return width


def padding_stage(s: Schedule, op: ComputeOp) -> Stage | None:
    """The padding stage a convolution reads, if it has one and it is not inlined."""
    for tensor in op.input_tensors():
        if op_kind(tensor.op) is OpKind.PAD:
            return s[tensor]
    return None


def split_to(stage: Stage, axis: IterVar, factor: int, extent: int) -> tuple[IterVar | None, IterVar]:
    """``axis`` (of ``extent`` iterations) split by ``factor``; no outer loop where the factor covers it all."""
    if factor >= extent:
        return None, axis
    return stage.split(axis, factor=factor)


def parallel_fused(stage: Stage, axes: Sequence[IterVar], work: int | None, cores: int) -> IterVar | None:
    """Fuse the adjacent leaf ``axes`` (outermost first) and run the result in parallel when ``work`` (None:
    unknown, symbolic) is large enough and the machine has several cores. Returns the innermost of the axes then
    (the fused one). Axes over a second symbolic dimension stay loops of their own inside the fused one: a fused
    extent of ``batch*12*seq`` would be 64-bit, and every index would divide it by ``seq``."""
    if not axes:
        return None
    count = _fusable(axes)
    fused = stage.fuse(*axes[:count]) if count > 1 else axes[0]
    if cores > 1 and (work is None or work >= PARALLEL_MIN_WORK):
        stage.parallel(fused)
    return axes[-1] if count < len(axes) else fused


def _fusable(axes: Sequence[IterVar]) -> int:
    """How many of ``axes`` (outermost first) fuse into one loop whose extent depends on one symbolic dimension at
    most (the first axis always)."""
    seen: set[Var] = set()
    for count, axis in enumerate(axes):
        extent = getattr(axis.dom, "extent", None)
        names = set() if extent is None else set(free_vars(extent))
        if count and len(seen | names) > 1:
            return count
        seen |= names
    return len(axes)


def schedule_elementwise(stage: Stage, cpu: CpuTarget) -> None:
    """A root stage without reduction: the innermost axis split by the vector width and vectorized (or, when no
    width divides it, left a loop of its own for LLVM to widen), every outer axis fused into one loop, parallel
    when the stage is large."""
    op = stage.op
    assert isinstance(op, ComputeOp)
    axes = list(stage.leaf_iter_vars)
    if not axes:
        return
    sizes = extents(op.axis)
    work = product(sizes) if sizes is not None else None
    last = axes[-1]
    last_extent = const_extent(last)
    outer = axes[:-1]
    factor = None if last_extent is None else vector_factor(last_extent, cpu.lanes(op.output(0).dtype))
    if factor is not None and last_extent is not None:
        if factor < last_extent:
            last_outer, last_inner = stage.split(last, factor=factor)
            if not outer:
                outer.append(last_outer)
        else:
            last_inner = last
            rows = extents(outer[:-1]) if len(outer) > 1 else None
            if rows is not None and product(rows) >= ROW_LOOP_MIN_ROWS * cpu.cores:
                # one vector per innermost row (a channel block of a blocked layout): the next axis stays a serial
                # loop inside the parallel one, so one division of the fused index serves a row of vectors
                outer = outer[:-1]
        stage.vectorize(last_inner)
    elif not outer:
        outer.append(last)
    # else the innermost axis (no vector width divides it) stays a plain loop of its own, which LLVM's loop
    # vectorizer widens with a scalar tail (fused into the parallel loop, every element would divide its index)
    # the parallel loop fuses the outer axes only: a serial loop over the vectors of a row keeps the index
    # arithmetic (divisions of the fused index) out of the innermost loop
    parallel_fused(stage, outer, work, cpu.cores)


def reduction_reads_contiguously(op: ComputeOp) -> bool:
    """Whether every read of the reduction's source that moves with the reduction indexes its innermost dimension
    by reduction variables alone (a sum over the last axis): consecutive reduction steps read consecutive
    elements."""
    body = op.body[0]
    if not isinstance(body, Reduce):
        return False
    reduce_vars = {id(iv.var) for iv in op.reduce_axis}
    data_vars = {id(iv.var) for iv in op.axis}
    found: list[bool] = []

    def visit(node: object) -> None:
        if not isinstance(node, ProducerLoad) or not node.indices:
            return
        if not any(id(v) in reduce_vars for index in node.indices for v in free_vars(index)):
            return  # the same element in every reduction step
        used = {id(v) for v in free_vars(node.indices[-1]) if isinstance(v, Var)}
        found.append(bool(used & reduce_vars) and not used & data_vars)

    post_order_visit(body.source, visit)
    return bool(found) and all(found)


def schedule_reduction(s: Schedule, stage: Stage, cpu: CpuTarget) -> None:
    """A root reduction. When it reads its input's last dimension contiguously and that reduction has a multiple of
    the vector width, the reduction is factored (rfactor) into a vectorized partial stage computed per output
    element; otherwise the reduction loops go outside the innermost output axis, which is vectorized. Outer output
    axes are fused and run in parallel when the reduction is large."""
    op = stage.op
    assert isinstance(op, ComputeOp)
    out_sizes = extents(op.axis)
    red_sizes = extents(op.reduce_axis)
    work = None if out_sizes is None or red_sizes is None else product(out_sizes) * product(red_sizes)
    lanes = cpu.lanes(op.output(0).dtype)
    inner = op.reduce_axis[-1]
    inner_extent = const_extent(inner)
    # a reduction to one value over a symbolic extent (a prompt's activations) is taken to be large
    if not op.axis and (work is None or work >= PARALLEL_MIN_WORK) and _reduce_in_parts(s, stage, cpu):
        return
    if reduction_reads_contiguously(op) and inner_extent is not None and inner_extent % lanes == 0 and \
            inner_extent >= 2 * lanes:
        _, k_inner = stage.split(inner, factor=lanes)
        rf = s.rfactor(op.output(0), k_inner, factor_axis=len(op.axis))
        rf_stage = s[rf]
        out_axes = list(stage.op.axis)  # type: ignore[attr-defined]
        if out_axes:
            fused = parallel_fused(stage, out_axes, work, cpu.cores)
            assert fused is not None
            rf_stage.compute_at(stage, fused)
        rf_data = [iv for iv in rf_stage.leaf_iter_vars if iv.kind is not IterKind.REDUCE]
        rf_reduce = [iv for iv in rf_stage.leaf_iter_vars if iv.kind is IterKind.REDUCE]
        rf_stage.reorder(*rf_data[:-1], *rf_reduce, rf_data[-1])
        rf_stage.vectorize(rf_data[-1])
        return
    data = [iv for iv in stage.leaf_iter_vars if iv.kind is not IterKind.REDUCE]
    reduce = [iv for iv in stage.leaf_iter_vars if iv.kind is IterKind.REDUCE]
    if not data:
        return
    last = data[-1]
    last_extent = const_extent(last)
    factor = None if last_extent is None or reduction_reads_contiguously(op) else vector_factor(last_extent, lanes)
    outer = data[:-1]
    if factor is not None and last_extent is not None:
        if factor < last_extent:
            last_outer, last_inner = stage.split(last, factor=factor)
            outer.append(last_outer)
        else:
            last_inner = last
        stage.reorder(*outer, *reduce, last_inner)
        stage.vectorize(last_inner)
    else:
        outer.append(last)
    parallel_fused(stage, outer, work, cpu.cores)


def _reduce_in_parts(s: Schedule, stage: Stage, cpu: CpuTarget) -> bool:
    """A large reduction to one value (the range of a tensor that ``DynamicQuantizeLinear`` quantizes, a global
    sum): factored into ``parts x width`` partial results, the parts in parallel, each ``width`` lanes (up to
    ``ACCUMULATORS`` vectors) accumulated over its share of an outer reduction axis and the vectorized innermost
    one; then the partial results reduced. Takes a contiguous innermost axis that the vector width divides and an
    outer axis that ``parts`` (at least ``cores``) divides, or a symbolic one; returns False (scheduling nothing)
    where there is none."""
    op = stage.op
    assert isinstance(op, ComputeOp)
    lanes = cpu.lanes(op.output(0).dtype)
    sizes = [const_extent(iv) for iv in op.reduce_axis]
    if not reduction_reads_contiguously(op) or sizes[-1] is None:
        return False
    # where whole tensors are read, trailing axes fused are contiguous too: fuse them until the vector width divides
    fused, inner_extent = 1, sizes[-1]
    whole = inner_extent % lanes != 0 and _reads_whole_tensors(op)  # read once, not for every axis fused
    while inner_extent % lanes and fused < len(sizes) and sizes[-fused - 1] is not None and whole:
        fused += 1
        inner_extent *= sizes[-fused]  # type: ignore[operator]
    if inner_extent % lanes:
        return False
    # several vectors per part where they divide the axis: independent accumulators, not one chain of latencies
    width = next(lanes * v for v in (ACCUMULATORS, 2, 1) if inner_extent % (lanes * v) == 0)
    outer_sizes = sizes[:-fused] or [inner_extent // width]  # one axis: its runs of ``width`` are the outer axis
    wanted = max(2, cpu.cores) * PARTS_PER_CORE
    # a symbolic axis is cut into ``wanted`` parts, the last ones guarded
    choices = [(wanted if e is None else largest_divisor(e, wanted), position)
               for position, e in enumerate(outer_sizes)]
    parts, position = max(choices, default=(1, -1))
    if position < 0 or parts < max(2, cpu.cores):
        return False
    *outer, inner = op.reduce_axis[:len(sizes) - fused + 1]
    for axis in op.reduce_axis[len(sizes) - fused + 1:]:
        inner = stage.fuse(inner, axis)
    if not outer:
        outer_axis, inner = stage.split(inner, factor=width)
        outer = [outer_axis]
    split_axis = outer[position]
    part, rest = stage.split(split_axis, nparts=parts)
    steps, lane = stage.split(inner, factor=width)
    others = [iv for iv in stage.leaf_iter_vars if iv not in (part, rest, steps, lane)]
    stage.reorder(*others, rest, steps, part, lane)
    partial = s[s.rfactor(op.output(0), stage.fuse(part, lane), factor_axis=0)]
    (fused,) = [iv for iv in partial.leaf_iter_vars if iv.kind is not IterKind.REDUCE]
    reduce = [iv for iv in partial.leaf_iter_vars if iv.kind is IterKind.REDUCE]
    part, lane = partial.split(fused, factor=width)
    partial.reorder(part, *reduce, lane)
    partial.vectorize(lane)
    if cpu.cores > 1:
        partial.parallel(part)
    return True


def _reads_whole_tensors(op: ComputeOp) -> bool:
    """Whether the reduction's moving reads index each source by the reduction variables, in order, over the
    source's whole extents (a reduction of whole tensors, as ``max(x)``)."""
    body = op.body[0]
    variables = [iv.var for iv in op.reduce_axis]
    sizes = [const_extent(iv) for iv in op.reduce_axis]
    loads: list[ProducerLoad] = []

    def visit(node: object) -> None:
        if isinstance(node, ProducerLoad) and any(isinstance(v, Var) and any(v is r for r in variables)
                                                  for index in node.indices for v in free_vars(index)):
            loads.append(node)

    if not isinstance(body, Reduce):
        return False
    post_order_visit(body.source, visit)
    return bool(loads) and all(
        len(load.indices) == len(variables) and all(i is v for i, v in zip(load.indices, variables))
        and [getattr(d, "value", None) for d in load.producer.shape] == sizes
        for load in loads
    )


def schedule_layout_transform(stage: Stage, cpu: CpuTarget) -> None:
    """A root ``layout_transform`` that unblocks an axis (``NCHW16c`` -> ``NCHW``): each output axis whose primal is
    blocked in the source is split by the block, and the block's loop moved just outside the vectorized innermost
    axis, so a tile of ``block x vector`` outputs reads one contiguous region of the source (a few cache lines per
    gathered vector instead of one line per lane). Other transforms (into a blocked layout, or from one block to
    another) get ``_schedule_blocked_transform``; symbolic shapes but a batch the elementwise schedule."""
    op = stage.op
    assert isinstance(op, ComputeOp)
    src = Layout.parse(str(op.attrs["src_layout"]))
    dst = Layout.parse(str(op.attrs["dst_layout"]))
    sizes = batch_extents(op.axis)  # a symbolic batch's loop runs outside
    blocked = [
        d for d, letter in enumerate(dst.axes[:-1])
        if letter.isupper() and dst.block(letter) is None and src.block(letter) is not None
    ]
    if sizes is None:
        schedule_elementwise(stage, cpu)
        return
    if not blocked:
        _schedule_blocked_transform(stage, cpu, src, dst, sizes)
        return
    axes = list(op.axis)
    last = axes[-1]
    factor = vector_factor(sizes[-1], cpu.lanes(op.output(0).dtype))
    outer: list[IterVar] = []
    inners: list[IterVar] = []
    for d, axis in enumerate(axes[:-1]):
        block = src.block(dst.axes[d]) if d in blocked else None
        if block is not None and sizes[d] % block == 0 and sizes[d] > block:
            axis_outer, axis_inner = stage.split(axis, factor=block)
            outer.append(axis_outer)
            inners.append(axis_inner)
        else:
            outer.append(axis)
    columns: list[IterVar] = []
    if factor is not None and factor < sizes[-1]:
        last_outer, last = stage.split(last, factor=factor)
        columns.append(last_outer)
    stage.reorder(*outer, *columns, *inners, last)
    if factor is not None:
        stage.vectorize(last)
    parallel_fused(stage, outer, product(sizes), cpu.cores)


def _schedule_blocked_transform(stage: Stage, cpu: CpuTarget, src: Layout, dst: Layout, sizes: list[int]) -> None:
    """A ``layout_transform`` into a blocked layout (``NCHW`` -> ``NCHW8c``, ``NCHW8c`` -> ``NCHW4c``): loops in
    the output's order, no fused index below the rows, so no division or remainder per element (the elementwise
    schedule fuses every axis and divides the fused index for every element, and gathers each vector lane by lane).

    Changing a block from ``s`` to ``d`` channels splits loops so that each source index is an affine function of
    the loops: the output's channel-block loop by ``k = lcm(s, d) / d`` blocks, which fill whole source blocks
    (``C = co * k + ci``, ``ci`` unrolled: channel ``C * d + c`` lies in source block ``co * lcm / s + (ci * d + c)
    // s``, a constant offset); where ``s`` divides ``d`` the output's block loop by ``s`` (``c = bi * s + bj``:
    source block ``C * d/s + bi`` at ``bj``). The innermost loop is then vectorized
    when it walks the source contiguously (its source is read in place, through elementwise stages at most), else
    unrolled. Measured on znver1, one thread: ``NCHW8c`` -> ``NCHW4c`` of ``[1, 34, 14, 14, 8]`` 145 -> 11 us,
    ``NCHW`` -> ``NCHW4c`` of ``[1, 272, 14, 14]`` 211 -> 40 us."""
    op = stage.op
    assert isinstance(op, ComputeOp)
    axes = list(op.axis)
    primal_loops: list[IterVar] = []
    block_loops: list[IterVar] = []
    contiguous = False
    for position, letter in enumerate(dst.axes):
        axis = axes[position]
        if letter.isupper():
            primal_loops.append(axis)
            continue
        d = dst.factors[position]
        s = src.block(letter.upper())
        upper = dst.axes.index(letter.upper())
        assert d is not None
        same_innermost = position == len(dst.axes) - 1 and src.axes[-1] == letter
        contiguous = same_innermost and s == d
        if s is None or s == d:
            block_loops.append(axis)
            continue
        blocks = math.lcm(s, d) // d  # output blocks that fill whole source blocks
        if blocks > 1 and sizes[upper] % blocks == 0:
            chunk_outer, chunk_inner = stage.split(axes[upper], factor=blocks)
            primal_loops[primal_loops.index(axes[upper])] = chunk_outer
            block_loops.append(chunk_inner)
            stage.unroll(chunk_inner)
            contiguous = same_innermost and s % d == 0
        if d % s == 0:
            block_outer, block_inner = stage.split(axis, factor=s)
            block_loops += [block_outer, block_inner]
            stage.unroll(block_outer)
            contiguous = same_innermost
        else:
            block_loops.append(axis)
    stage.reorder(*primal_loops, *block_loops)
    innermost = block_loops[-1] if block_loops else None
    if innermost is not None:
        if contiguous and _reads_in_place(op) and const_extent(innermost) is not None:
            stage.vectorize(innermost)
        else:
            stage.unroll(innermost)
    rows = primal_loops[:-1] if len(primal_loops) > 1 else primal_loops
    parallel_fused(stage, rows, product(sizes), cpu.cores)


def _reads_in_place(op: ComputeOp) -> bool:
    """Whether the transform's input is a placeholder, or a stage reading placeholders at its own indices (or
    constants broadcast along some of them): its innermost index moves the reads one element at a time."""
    (source,) = op.input_tensors()
    if not isinstance(source.op, ComputeOp):
        return True
    if source.op.is_reduction:
        return False
    variables = [iv.var for iv in source.op.axis]
    reads = placeholder_reads(source, variables)
    if reads is None:
        return False
    last = variables[-1]
    for _, indices in reads:
        if not any(v is last for index in indices for v in free_vars(index)):
            continue  # a constant or a broadcast along the innermost axis
        if not indices or indices[-1] is not last:
            return False
    return True


TileT = TypeVar("TileT")
TileChooser = Callable[[ComputeOp, tuple[Any, ...]], Any]


class TileChoice(Generic[TileT]):
    """Where a schedule asks for a tuned tile: ``with choice.using(choose):`` makes ``choice.get(op, workload)``
    return ``choose(op, workload)`` (None: the schedule's default tile) in this thread or asyncio task; outside
    any ``using`` block ``get`` returns None and ``active`` is False (so a schedule need not build the workload)."""

    def __init__(self, name: str) -> None:
        self._choose: contextvars.ContextVar[TileChooser | None] = contextvars.ContextVar(name, default=None)

    @contextlib.contextmanager
    def using(self, choose: TileChooser) -> Iterator[None]:
        token = self._choose.set(choose)
        try:
            yield
        finally:
            self._choose.reset(token)

    @property
    def active(self) -> bool:
        return self._choose.get() is not None

    def get(self, op: ComputeOp, workload: tuple[Any, ...] | None) -> TileT | None:
        choose = self._choose.get()
        return choose(op, workload) if choose is not None and workload is not None else None
