"""Default CPU schedules of the operator library, chosen by shape and target (TOPI's x86 schedules).

``schedule_cpu(outs, target)`` schedules any graph of library operators (one fused group) and is what a graph
compiler calls; the per-operator functions below are the same with a check that the operator is present, taking
the outputs as TVM's ``topi.x86.schedule_*`` do. Each returns a ``Schedule`` ready for ``tcomp.build(s, args)``.
"""

from __future__ import annotations

from collections.abc import Sequence

from tcomp.ops.cpu.common import CpuTarget, schedule_elementwise, schedule_reduction
from tcomp.ops.cpu.conv2d import NCHWTile, conv2d_nchw_tile, schedule_conv2d_nchwc_stage
from tcomp.ops.cpu.conv_tiles import NCHWcTile, conv2d_nchwc_tile, register_tile
from tcomp.ops.cpu.dense import gemm_blocking
from tcomp.ops.cpu.dispatch import schedule_cpu, schedule_with_kind
from tcomp.ops.utils import OpError, OpKind
from tcomp.schedule.schedule import Schedule
from tcomp.target import Target
from tcomp.te.tensor import ComputeOp, Tensor

__all__ = [
    "CpuTarget", "NCHWTile", "NCHWcTile", "conv2d_nchw_tile", "conv2d_nchwc_tile", "gemm_blocking", "register_tile",
    "schedule_batch_matmul", "schedule_conv2d_nchw", "schedule_conv2d_nchwc", "schedule_conv2d_nchwc_stage",
    "schedule_cpu", "schedule_dense", "schedule_depthwise_conv2d_nchw", "schedule_elementwise", "schedule_injective",
    "schedule_layer_norm", "schedule_matmul", "schedule_pool", "schedule_reduce", "schedule_reduction",
    "schedule_softmax"
]

Outs = Tensor | Sequence[Tensor]


def schedule_injective(outs: Outs, target: Target | None = None) -> Schedule:
    """Elementwise, broadcast and injective graphs (no reduction): intermediate stages inlined, each output
    vectorized along its innermost axis and run in parallel over the rest."""
    s = schedule_cpu(outs, target)
    for stage in s.stages:
        if isinstance(stage.op, ComputeOp) and stage.op.is_reduction:
            raise OpError(f"schedule_injective: stage {stage.name} is a reduction; use schedule_reduce or schedule_cpu")
    return s


def schedule_reduce(outs: Outs, target: Target | None = None) -> Schedule:
    """Reductions (sum, max, mean ...) with their elementwise producers inlined and consumers scheduled after."""
    s = schedule_cpu(outs, target)
    if not any(isinstance(st.origin_op, ComputeOp) and st.origin_op.is_reduction for st in s.stages):
        raise OpError("schedule_reduce: the graph has no reduction")
    return s


def schedule_softmax(outs: Outs, target: Target | None = None) -> Schedule:
    """softmax / log_softmax: the max and sum reductions vectorized (partial sums along a contiguous axis), the
    elementwise stages vectorized; the exponentials computed once."""
    return schedule_with_kind(outs, target, (OpKind.SOFTMAX, OpKind.LOG_SOFTMAX), "schedule_softmax")


def schedule_layer_norm(outs: Outs, target: Target | None = None) -> Schedule:
    """layer_norm: the two reductions (sum, sum of squared deviations) and the normalization."""
    return schedule_with_kind(outs, target, (OpKind.LAYER_NORM,), "schedule_layer_norm")


def schedule_pool(outs: Outs, target: Target | None = None) -> Schedule:
    """pool2d (max / average) and global_pool: the padding at the root, window reductions vectorized along the
    output columns, averages as an elementwise pass."""
    return schedule_with_kind(outs, target, (OpKind.POOL2D, OpKind.GLOBAL_POOL), "schedule_pool")


def schedule_matmul(outs: Outs, target: Target | None = None) -> Schedule:
    """matmul: blocked, register-tiled, vectorized (``dense.py``)."""
    return schedule_with_kind(outs, target, (OpKind.MATMUL,), "schedule_matmul")


schedule_dense = schedule_matmul  # dense is matmul with transpose_b (plus a bias stage)


def schedule_batch_matmul(outs: Outs, target: Target | None = None) -> Schedule:
    """batch_matmul: the matmul schedule with the batch fused into the parallel loop."""
    return schedule_with_kind(outs, target, (OpKind.BATCH_MATMUL,), "schedule_batch_matmul")


def schedule_conv2d_nchw(outs: Outs, target: Target | None = None) -> Schedule:
    """conv2d_nchw: register tiles of output channels x one vector of output columns (``conv2d.py``)."""
    return schedule_with_kind(outs, target, (OpKind.CONV2D_NCHW,), "schedule_conv2d_nchw")


def schedule_conv2d_nchwc(outs: Outs, target: Target | None = None) -> Schedule:
    """conv2d_nchwc: register tiles of output columns x the vectorized output-channel block (``conv2d.py``)."""
    return schedule_with_kind(outs, target, (OpKind.CONV2D_NCHWC,), "schedule_conv2d_nchwc")


def schedule_depthwise_conv2d_nchw(outs: Outs, target: Target | None = None) -> Schedule:
    """depthwise_conv2d_nchw: register tiles of a few rows x one vector of output columns."""
    return schedule_with_kind(outs, target, (OpKind.DEPTHWISE_CONV2D_NCHW,), "schedule_depthwise_conv2d_nchw")
