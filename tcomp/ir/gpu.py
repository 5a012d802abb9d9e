"""The loop IR's GPU vocabulary: thread tags, the barrier statement, warp shuffles and the error GPU code raises,
shared by the schedule's cross-thread reductions, the GPU passes and the CUDA printer.

A GPU kernel is SPMD: every thread of every block runs the kernel body. A loop bound to ``threadIdx.x`` (a ``For``
of kind ``THREAD_BINDING``) is no loop there: its variable is the thread's index along x, and the loop's extent must
be the block's size along x. Loops bound to ``blockIdx`` likewise name the block's index. Nested loops bound to the
same tag (a consumer's and a cooperative fetch's) name the same index.
"""

from __future__ import annotations

from tcomp.ir.expr import Call, Expr, const
from tcomp.ir.functor import post_order_visit
from tcomp.ir.stmt import Evaluate, For, ForKind, Stmt

BLOCK_TAGS = ("blockIdx.x", "blockIdx.y", "blockIdx.z")
THREAD_TAGS = ("threadIdx.x", "threadIdx.y", "threadIdx.z")
LAUNCH_TAGS = BLOCK_TAGS + THREAD_TAGS
BARRIER_OP = "cuda.syncthreads"
SHUFFLE_XOR_OP = "cuda.shfl_xor"
WARP_SIZE = 32
# loop pragma: the CUDA printer unrolls a loop whose constant extent is at most this pragma's value
UNROLL_MAX_EXTENT = "unroll_max_extent"


class GPUError(ValueError):
    """A schedule or function that cannot run as a GPU kernel: a loop nest left on the host, a thread count over
    the target's limit, a thread axis bound with two extents in one kernel, too much shared memory."""


def is_launch_loop(stmt: Stmt) -> bool:
    """A loop bound to a block or thread index (not a virtual thread)."""
    return isinstance(stmt, For) and stmt.kind is ForKind.THREAD_BINDING and stmt.thread_tag in LAUNCH_TAGS


def is_vthread_loop(stmt: Stmt) -> bool:
    return isinstance(stmt, For) and stmt.kind is ForKind.THREAD_BINDING and stmt.thread_tag.startswith("vthread")


def barrier() -> Stmt:
    """``__syncthreads()``: every thread of the block waits here until all have arrived, and sees the shared-memory
    writes the others made before it."""
    return Evaluate(Call(BARRIER_OP, (), "int32", "intrinsic"))


def is_barrier(stmt: Stmt) -> bool:
    return isinstance(stmt, Evaluate) and isinstance(stmt.value, Call) and stmt.value.op == BARRIER_OP


def shuffle_xor(value: Expr, lane_mask: int, width: int = WARP_SIZE) -> Expr:
    """``__shfl_xor_sync(full mask, value, lane_mask, width)``: the ``value`` of the thread whose lane is this one's
    xor ``lane_mask``, within segments of ``width`` lanes of the warp. Every thread of the warp must execute it
    (and, for the CPU emulation, every thread of the block: tcomp's reductions do)."""
    if width < 1 or width > WARP_SIZE or width & (width - 1):
        raise GPUError(f"warp shuffle: width {width} must be a power of two of at most {WARP_SIZE}")
    if not 0 < lane_mask < width:
        raise GPUError(f"warp shuffle: lane mask {lane_mask} must be in [1, {width})")
    return Call(SHUFFLE_XOR_OP, (value, const(lane_mask), const(width)), value.dtype, "intrinsic")


def is_shuffle(expr: object) -> bool:
    return isinstance(expr, Call) and expr.op == SHUFFLE_XOR_OP


def synchronizes(stmt: Stmt) -> bool:
    """Whether ``stmt`` holds a barrier or a warp shuffle (threads that wait for each other)."""
    found = False

    def visit(node: object) -> None:
        nonlocal found
        found = found or (isinstance(node, Evaluate) and is_barrier(node)) or is_shuffle(node)

    post_order_visit(stmt, visit)
    return found
