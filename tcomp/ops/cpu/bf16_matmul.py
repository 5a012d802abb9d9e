"""Default CPU schedule of a ``panel_matmul`` whose weight is in bfloat16 panels (``Precision.BF16``): the packed GEMM
of ``packed_matmul.py`` on the bfloat16 micro-kernel.

The weight is in its panels already, rounded to bfloat16 and stored in pairs of steps of K
(``tcomp.ops.panels.pack_grouped_panels``, in the shape ``bf16_plan`` gives). The rows of A are rounded to bfloat16
as they are packed into ``mr``-row micro-panels (never read in place: they are float32), and every ``mr x nr x kc``
tile is a call of ``tcomp_bgemm_dp`` where the CPU has AVX512-BF16 (``CpuTarget.bf16_dots``): ``vdpbf16ps`` adds
two products per float32 lane and instruction, twice the float32 GEMM's multiply-adds, from half the bytes of
weight. Elsewhere it is ``tcomp_bgemm_fma``, the same sums by float32 multiply-adds (the same results, at about the
float32 GEMM's speed). The slices of K are deeper than the float32 GEMM's (up to ``MAX_DEPTH`` steps). Whatever
reads the product elementwise runs as its epilogue, block by block; a symbolic number of rows (a prompt's) takes
the plan of ``TYPICAL_ROWS`` rows (``gemm_plan.with_symbolic_rows``).
"""

from __future__ import annotations

from dataclasses import replace

from tcomp import te
from tcomp.ops.cpu.common import CpuTarget, const_extent, extents, schedule_elementwise
from tcomp.ops.cpu.dense import TYPICAL_ROWS, schedule_elementwise_reduction_fallback
from tcomp.ops.cpu.gemm_plan import GemmPlan, micro_blocking, plan_gemm, with_symbolic_rows
from tcomp.ops.cpu.intrin import bgemm_intrin
from tcomp.ops.cpu.packed_matmul import (
    Operand,
    PackedProduct,
    operand,
    pack_a_compute,
    packed_a_value,
    product_computes,
    splice_packed_product,
)
from tcomp.ops.panels import PAIRS, PANELS
from tcomp.schedule.schedule import Schedule
from tcomp.schedule.stage import Stage
from tcomp.te.tensor import ComputeOp, Tensor

# the deepest slice of K a tile runs: a 32-column panel slice of 1024 bfloat16 steps is 64 KiB, in L2. Measured on 2
# Zen 4 cores, slices of at most 256 / 512 / 1024 steps: 128 x 3072 x 768 1.49 / 1.41 / 1.33 ms, 128 x 768 x 3072
# 1.38 / 1.37 / 1.35, 197 x 2304 x 768 1.60 / 1.60 / 1.58
MAX_DEPTH = 1024


def bf16_plan(m: int, n: int, k: int, cpu: CpuTarget) -> GemmPlan:
    """The packed GEMM's plan for ``[m, k] x [k, n]`` on bfloat16 operands: the float32 GEMM's register tile (float32
    accumulators), slices of K of at most ``MAX_DEPTH`` steps in whole pairs, A always packed. Its ``Np / nr``,
    ``Kp`` and ``nr`` give the shape of the packed weight, whatever ``m``."""
    lanes = cpu.lanes("float32")
    depth = -(-k // -(-k // MAX_DEPTH))
    blocking = replace(micro_blocking(m, k, lanes, cpu.vector_registers), kc=-(-depth // PAIRS) * PAIRS)
    return plan_gemm(m, n, k, blocking, lanes, cpu.cores, a_readable_in_place=False)


def reads_bf16_panels(op: ComputeOp) -> bool:
    """Whether ``op`` is a ``panel_matmul`` of a weight in bfloat16 panels."""
    return bool(op.attrs.get(PANELS)) and any(t.dtype == "bfloat16" for t in op.input_tensors())


def schedule_bf16_panel_matmul(s: Schedule, tensor: Tensor, host: Stage | None, cpu: CpuTarget) -> None:
    """Schedule the ``panel_matmul`` ``tensor`` of bfloat16 panels and its epilogue ``host`` (an output that reads
    it elementwise, or None) as the module docstring says; panels packed for another plan keep plain parallel
    loops."""
    stage = s[tensor]
    op = stage.op
    assert isinstance(op, ComputeOp)
    x, panels = op.input_tensors()
    columns = extents(op.axis[1:])
    rows = const_extent(op.axis[0])  # None: a symbolic number of rows (a prompt's length)
    k = getattr(x.shape[1], "value", None)
    plan = None
    if columns is not None and k is not None:
        plan = bf16_plan(TYPICAL_ROWS if rows is None else rows, columns[0], k, cpu)
        if rows is None:
            plan = with_symbolic_rows(plan, op.axis[0].dom.extent)  # type: ignore[union-attr]
        expected = (plan.Np // plan.blocking.nr, plan.Kp // PAIRS, plan.blocking.nr, PAIRS)
        if tuple(getattr(d, "value", None) for d in panels.shape) != expected:
            plan = None
    if plan is None:
        schedule_elementwise_reduction_fallback(stage, cpu)
        if host is not None:
            schedule_elementwise(host, cpu)
        return
    bl = plan.blocking
    a = operand(x, False, False, is_a=True)
    packed_a = pack_a_compute(plan, a, op.name, "bfloat16")
    steps = te.reduce_axis((0, plan.Kp // PAIRS), name="kg")
    step = te.reduce_axis((0, PAIRS), name="s")

    def body(i, j):
        a_value = packed_a_value(plan, a, packed_a, None, i, steps * PAIRS + step)
        b_value = panels[j // bl.nr, steps, j % bl.nr, step]
        return te.sum(te.cast(a_value, "float32") * te.cast(b_value, "float32"), axis=[steps, step])

    product, output = product_computes(plan, body, op.name, op.tag, op.attrs)
    intrin = bgemm_intrin(bl.mr, bl.nr, bl.kc, plan.lanes, cpu.bf16_dots, plan.symbolic_rows)
    stages = PackedProduct(packed_a, panels, product, output, a, Operand(panels, is_b=True), True, intrin)
    if not splice_packed_product(s, stage, stages, host, plan) and host is not None:
        schedule_elementwise(host, cpu)
