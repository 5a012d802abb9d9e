"""``schedule_cuda``: the default CUDA schedule of any graph of library operators (one fused group), by operator kind.

The graph compiler calls it for ``target="cuda"`` with the outputs of a fused group (inputs are placeholders):

1. Every injective stage that is not an output is inlined into its readers (but the padding that a convolution on the
   GEMM tile kernel reads, which stays a kernel of its own).
2. Anchors get their CUDA schedules, picked by ``op.attrs["op_kind"]``: matrix products and convolutions that
   ``gemm_dispatch`` plans for the GEMM tile kernel (tensor cores in the target's precision; float32 matmuls
   the shared-memory schedule cannot tile), a softmax output over the last axis (``schedule_softmax``), any other
   ``matmul`` or ``batch_matmul`` of at least 8 rows (``gemm_schedule``: operands read through the group's
   reshapes and transposes, an elementwise epilogue in the same kernel), a ``conv2d_nchw`` with ``groups=1``
   (``schedule_conv2d_nchw``'s tiling, knobs sized to the shape and the target by ``conv_knobs``) or a depthwise
   convolution (``depthwise``), each reading a placeholder (or its padding) and a placeholder kernel, with its
   elementwise epilogue (bias, batch norm, activation, residual) in the same kernel when the group's output reads
   it at its own indices (``epilogue``). Otherwise an anchor that is not an output of the group writes a global
   intermediate and its epilogue is a second kernel.
3. Every other root stage gets a generic schedule: a reduction whose reduced axes are innermost reduces across the
   threads of a block (``schedule_reduce_stage_cross_thread``), any other reduction one output per thread; an
   elementwise stage has its axes fused and bound to ``blockIdx.x`` / ``threadIdx.x``.

Each root stage becomes its own kernel; the kernels of a group run in order in one module. The steps and their
order are those of every target (``ops/steps.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

from tcomp.arith.factors import largest_divisor, pow2_divisor
from tcomp.ir.expr import const_int_value
from tcomp.ops.cuda.common import bind_blocks_threads
from tcomp.ops.cuda.conv2d import Conv2dKnobs, ConvGeometry, tile_conv2d_nchw
from tcomp.ops.cuda.depthwise import depthwise_knobs, schedule_depthwise_conv2d_nchw
from tcomp.ops.cuda.epilogue import same_index_epilogue
from tcomp.ops.cuda.gemm_dispatch import conv_plan, matmul_plan
from tcomp.ops.cuda.gemm_intrin import schedule_conv2d_tile, schedule_matmul_tile
from tcomp.ops.cuda.gemm_schedule import MIN_ROWS, element_bytes, epilogue_of, gemm_knobs, gemm_problem, schedule_gemm
from tcomp.ops.cuda.limits import first_fitting, power_of_two_at_most
from tcomp.ops.cuda.matmul import MatmulKnobs
from tcomp.ops.cuda.reduce import _reduces_innermost, schedule_reduce_stage_cross_thread
from tcomp.ops.cuda.softmax import schedule_softmax
from tcomp.ops.steps import schedule_in_steps
from tcomp.ops.utils import OpError, OpKind, op_kind
from tcomp.schedule.relation import AttachType
from tcomp.schedule.schedule import Schedule
from tcomp.schedule.stage import Stage
from tcomp.target import Target
from tcomp.te.tensor import ComputeOp, PlaceholderOp, Tensor

__all__ = ["conv_knobs", "schedule_cuda"]

ELEMWISE_THREADS = 64
REDUCE_THREADS = 32


def _extent(value: object) -> int | None:
    return const_int_value(value)  # type: ignore[arg-type]


def _placeholder(t: Tensor) -> bool:
    return isinstance(t.op, PlaceholderOp)


def _inline_injective(s: Schedule, keep: set[Stage]) -> None:
    for stage in list(s.stages):
        op = stage.op
        if (isinstance(op, ComputeOp) and not op.is_reduction and not stage.is_output and op.num_outputs == 1
                and stage.attach_type is AttachType.ROOT and stage.scan_parent is None and stage not in keep):
            stage.compute_inline()


def _tile_conv_inputs(s: Schedule, target: Target | None) -> set[Stage]:
    """The padding stages read by convolutions the GEMM tile kernel computes (it reads them padded, so they stay
    kernels of their own)."""
    keep: set[Stage] = set()
    for stage in s.stages:
        op = stage.op
        if isinstance(op, ComputeOp) and op_kind(op) is OpKind.CONV2D_NCHW:
            inputs = _conv_inputs(op)
            if inputs is not None and not _placeholder(inputs[0]) and conv_plan(op, *inputs, target) is not None:
                keep.add(s[inputs[0]])
    return keep


def _matmul_ok(op: ComputeOp) -> bool:
    shape = [_extent(d) for d in op.output(0).shape]
    return (len(shape) == 2 and None not in shape and not op.attrs.get("transpose_a", False)
            and not op.attrs.get("transpose_b", False)
            and len(op.input_tensors()) == 2 and all(_placeholder(t) for t in op.input_tensors()))


# (rows or columns per block, per thread) of the default matmul schedule, in order of preference: 16 threads along
# each axis with 4 outputs each, then smaller blocks and fewer threads (each pair a fallback of the one before)
MATMUL_TILES = ((64, 4), (32, 2), (16, 2), (16, 1), (8, 1), (4, 1), (2, 1), (1, 1))


def _matmul_knobs(m: int, n: int, k: int, target: Target | None) -> MatmulKnobs | None:
    """Tiles that divide the shape (64 or 16 rows and columns per block, 4 or 2 per thread) and fit ``target``
    (else shallower slices of ``K``, then the smaller tiles of ``MATMUL_TILES``), or ``None``."""
    start = {64: 0, 16: 2}
    first_m, first_n = (start[64 if size % 64 == 0 else 16] for size in (m, n))
    if m % MATMUL_TILES[first_m][0] or n % MATMUL_TILES[first_n][0]:
        return None

    def candidates() -> Iterator[MatmulKnobs]:
        for step in range(len(MATMUL_TILES)):
            (block_m, thread_m), (block_n, thread_n) = (MATMUL_TILES[min(first + step, len(MATMUL_TILES) - 1)]
                                                        for first in (first_m, first_n))
            if m % block_m or n % block_n:
                continue
            depth = pow2_divisor(k, 8)
            while True:
                yield MatmulKnobs(block_m, block_n, depth, thread_m, thread_n)
                if depth == 1:
                    break
                depth //= 2

    return first_fitting(candidates(), MatmulKnobs.resources, target, f"matmul {m}x{n}x{k}")


def _conv_inputs(op: ComputeOp) -> tuple[Tensor, Tensor] | None:
    """The (padded) data and the weights of a convolution (one group, or depthwise) reading inputs of the group."""
    inputs = op.input_tensors()
    if len(inputs) != 2 or op.attrs.get("groups", 1) != 1:
        return None
    data, kernel = inputs
    if not _placeholder(kernel):
        return None
    if not _placeholder(data):
        if op_kind(data.op) is not OpKind.PAD or not all(_placeholder(t) for t in data.op.input_tensors()):
            return None
    if any(_extent(d) is None for d in op.output(0).shape):
        return None
    if _extent(op.output(0).shape[2]) == _extent(op.output(0).shape[3]) == 1:
        return None  # one pixel (a squeeze-and-excitation layer): a reduction per output, spread across threads
    return data, kernel


def _spatial_tile(limit: int, extent: int) -> int:
    """A tile of at most ``limit`` along an output axis: the largest divisor of the extent, unless that is 1 or 2
    (a prime such as 13), then the size from ``limit // 2`` to ``limit`` that overhangs the extent least (the last
    tile is guarded): 13 rows get tiles of 7."""
    divisor = largest_divisor(extent, limit)
    if divisor >= 3 or divisor == extent:
        return divisor
    return min(range(max(1, limit // 2), limit + 1), key=lambda t: (-(-extent // t) * t - extent, -t))


# The GPU the default conv schedules are sized for runs about 132 blocks at once (one per multiprocessor of an
# H100); a layer with fewer blocks than that leaves multiprocessors idle, so it gets narrower channel tiles.
CONV_MIN_BLOCKS = 132
CONV_MAX_THREADS = 256


def _preferred_conv_knobs(out: Tensor, in_channels: int, kernel_size: int) -> Conv2dKnobs:
    _, channels, height, width = (_extent(d) or 1 for d in out.shape)
    tile_y, tile_x = _spatial_tile(8, height), _spatial_tile(8, width)
    spatial_blocks = -(-height // tile_y) * -(-width // tile_x)
    thread_f = pow2_divisor(channels, 4)
    if spatial_blocks * channels // thread_f < CONV_MIN_BLOCKS:
        thread_f = pow2_divisor(channels, 2)
    groups = 1
    while (channels % (2 * groups * thread_f) == 0 and 2 * groups * tile_y * tile_x <= CONV_MAX_THREADS
           and spatial_blocks * channels // (2 * groups * thread_f) >= CONV_MIN_BLOCKS):
        groups *= 2
    return Conv2dKnobs(tile_f=groups * thread_f, thread_f=thread_f, tile_y=tile_y, tile_x=tile_x,
                       tile_rc=pow2_divisor(in_channels, 16 if kernel_size == 1 else 8))


def _smaller_conv_knobs(knobs: Conv2dKnobs, in_channels: int, height: int, width: int) -> Conv2dKnobs | None:
    """The next smaller block: fewer input channels per chunk, then fewer channel groups, fewer channels per
    thread, fewer output rows or columns; ``None`` after one thread of one channel and pixel."""
    groups = knobs.tile_f // knobs.thread_f
    if knobs.tile_rc > 1:
        return replace(knobs, tile_rc=largest_divisor(in_channels, knobs.tile_rc // 2))
    if groups > 1:
        return replace(knobs, tile_f=(groups // 2) * knobs.thread_f)
    if knobs.thread_f > 1:
        return replace(knobs, tile_f=knobs.thread_f // 2, thread_f=knobs.thread_f // 2)
    if knobs.tile_y >= knobs.tile_x and knobs.tile_y > 1:
        return replace(knobs, tile_y=largest_divisor(height, knobs.tile_y // 2))
    if knobs.tile_x > 1:
        return replace(knobs, tile_x=largest_divisor(width, knobs.tile_x // 2))
    return None


def conv_knobs(conv: Tensor, target: Target | None = None) -> Conv2dKnobs:
    """Knobs of ``schedule_conv2d_nchw`` for the convolution ``conv`` that fit ``target``: up to 8x8 output pixels
    per block (one per thread; tiles that divide the image, or that overhang it least), 2 or 4 channels per thread,
    as many channel groups along ``threadIdx.z`` as keep the block within 256 threads and the grid at about 132
    blocks or more, input channels in chunks of 16 (1x1 kernels) or 8; then, while the block needs more shared
    memory, threads or registers than ``target`` has, smaller chunks, fewer channels, fewer pixels."""
    kernel = conv.op.input_tensors()[1]
    _, in_channels, kernel_h, kernel_w = (_extent(d) or 1 for d in kernel.shape)
    _, _, height, width = (_extent(d) or 1 for d in conv.shape)
    geometry = ConvGeometry.of(conv)

    def candidates() -> Iterator[Conv2dKnobs]:
        knobs: Conv2dKnobs | None = _preferred_conv_knobs(conv, in_channels, max(kernel_h, kernel_w))
        while knobs is not None:
            yield knobs
            knobs = _smaller_conv_knobs(knobs, in_channels, height, width)

    return first_fitting(candidates(), geometry.resources, target, f"conv2d {conv.name}")


def _schedule_conv(s: Schedule, conv: Tensor, padded: Tensor, kernel: Tensor, target: Target | None) -> list[Stage]:
    """``schedule_conv2d_nchw``'s tiling (or the depthwise one) for a convolution that may be an intermediate of
    the group, with its elementwise epilogue in the same kernel when it has one; the stages scheduled."""
    out = same_index_epilogue(s, conv)
    if not _placeholder(padded):
        s[padded].compute_inline()
    if op_kind(conv.op) is OpKind.DEPTHWISE_CONV2D_NCHW:
        schedule_depthwise_conv2d_nchw(s, conv, depthwise_knobs(conv, target), out)
    else:
        tile_conv2d_nchw(s, conv, conv_knobs(conv, target), out)
    return [s[t] for t in (conv, padded, out) if t is not None and not _placeholder(t)]


def _softmax_ok(s: Schedule, stage: Stage) -> bool:
    op = stage.op
    axis = op.attrs.get("axis")
    return stage.is_output and axis == len(op.output(0).shape) - 1 and len(op.input_tensors()) == 2


# a product whose epilogue re-shapes it into rows of fewer than this many (a 7x7 image's pixels) while the product
# has more is tiled as the product's own (flattened) rows, the epilogue in a kernel of its own: bigger tiles
MIN_FUSED_ROWS = 32


def _schedule_product(s: Schedule, op: ComputeOp, target: Target | None) -> list[Stage]:
    """A matmul or batched matmul the tile kernel did not take: ``gemm_schedule``'s tiles (the shared-memory
    schedule's own knobs where they apply), with its elementwise epilogue when ``epilogue_of`` finds one; the
    stages scheduled (none for a matrix-vector product, which the generic reduction spreads wider)."""
    C = op.output(0)
    if any(_extent(d) is None for d in C.shape) or len(op.input_tensors()) != 2:
        return []
    out = epilogue_of(s, C)
    if out is not None and gemm_problem(C, out)[0] < min(MIN_FUSED_ROWS, gemm_problem(C, None)[0]):
        out = None
    rows, columns, depth = gemm_problem(C, out)
    if rows < MIN_ROWS:
        return []
    knobs = None
    if out is None and _matmul_ok(op):
        knobs = _matmul_knobs(rows, columns, depth, target)
    if knobs is None:
        knobs = gemm_knobs(rows, columns, depth, target, element_bytes(C))
    tiled = schedule_gemm(s, C, knobs, out)
    return [s[C], tiled]


def _tile_kernel(s: Schedule, op: ComputeOp, target: Target | None) -> list[Stage]:
    """Schedule ``op`` with the GEMM tile kernel when ``gemm_dispatch`` plans it; the stages it scheduled."""
    if op_kind(op) in (OpKind.MATMUL, OpKind.BATCH_MATMUL):
        dims = [_extent(d) or 1 for d in op.output(0).shape]
        depth = _extent(op.reduce_axis[0].dom.extent) or 1
        fits = _matmul_ok(op) and _matmul_knobs(dims[0], dims[1], depth, target)
        plan = matmul_plan(op, target, bool(fits))
        if plan is None:
            return []
        schedule_matmul_tile(s, op.output(0), plan.tile, plan.precision, target)
        return [s[op.output(0)]]
    inputs = _conv_inputs(op) if op_kind(op) is OpKind.CONV2D_NCHW else None
    conv = conv_plan(op, *inputs, target) if inputs is not None else None
    if conv is None:
        return []
    schedule_conv2d_tile(s, op.output(0), conv.conv.tile, conv.conv.tile_y, conv.conv.tile_x, conv.precision, target)
    return [s[t] for t in (op.output(0), op.input_tensors()[0]) if not _placeholder(t)]


def _schedule_anchors(s: Schedule, target: Target | None = None) -> set[Stage]:
    """Step 2; returns the stages it scheduled."""
    done: set[Stage] = set()
    for stage in reversed(list(s.stages)):
        op = stage.op
        if not isinstance(op, ComputeOp) or stage.attach_type is not AttachType.ROOT or stage in done:
            continue
        kind = op_kind(op)
        tiled = _tile_kernel(s, op, target)
        if tiled:
            done.update(tiled)
        elif kind is OpKind.SOFTMAX and _softmax_ok(s, stage):
            expo, expsum = op.input_tensors()
            if expsum.op.name.endswith("_exp"):
                expo, expsum = expsum, expo
            members = [op, expo.op, expsum.op, *(t.op for t in expo.op.input_tensors() if not _placeholder(t))]
            done.update(s[m.output(0)] for m in members)
            schedule_softmax(op.output(0), thread_count(REDUCE_THREADS, target), s)
        elif kind in (OpKind.MATMUL, OpKind.BATCH_MATMUL):
            done.update(_schedule_product(s, op, target))
        elif kind in (OpKind.CONV2D_NCHW, OpKind.DEPTHWISE_CONV2D_NCHW):
            inputs = _conv_inputs(op)
            if inputs is not None:
                done.update(_schedule_conv(s, op.output(0), *inputs, target))
    return done


def thread_count(preferred: int, target: Target | None) -> int:
    """``preferred`` threads per block, or the largest power of two the target allows when it allows fewer."""
    return preferred if target is None else power_of_two_at_most(target.max_threads_per_block, preferred)


def schedule_stage_generic(stage: Stage, target: Target | None = None) -> None:
    """Step 3 for one root stage (see the module docstring)."""
    op = stage.op
    assert isinstance(op, ComputeOp)
    if op.is_reduction:
        if _reduces_innermost(op) or not stage.axis:
            schedule_reduce_stage_cross_thread(stage, thread_count(REDUCE_THREADS, target))
        else:
            bind_blocks_threads(stage, stage.fuse(*stage.axis), thread_count(ELEMWISE_THREADS, target))
        return
    axes = list(stage.axis)
    fused = stage.fuse(*axes) if len(axes) > 1 else axes[0]
    bind_blocks_threads(stage, fused, thread_count(ELEMWISE_THREADS, target))


def schedule_cuda(outs: Tensor | Sequence[Tensor], target: Target | None = None) -> Schedule:
    """The default CUDA schedule of the graph that computes ``outs`` (see the module docstring)."""

    def inline(s: Schedule) -> None:
        _inline_injective(s, _tile_conv_inputs(s, target))

    def anchors(s: Schedule) -> set[Stage]:
        return _schedule_anchors(s, target)

    def generic(s: Schedule, stage: Stage) -> None:
        op = stage.op
        assert isinstance(op, ComputeOp)
        if not op.output(0).shape and not op.is_reduction:
            raise OpError(f"schedule_cuda: scalar elementwise stage {op.name} has no axis to bind to threads")
        schedule_stage_generic(stage, target)

    return schedule_in_steps("schedule_cuda", outs, inline, anchors, generic)
