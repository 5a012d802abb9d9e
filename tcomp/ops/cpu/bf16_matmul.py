"""Default CPU schedule of a ``panel_matmul`` whose weight is in bfloat16 panels (``Precision.BF16``): the packed GEMM
of ``packed_matmul.py`` on the bfloat16 micro-kernel.

The weight is in its panels already, rounded to bfloat16 and stored in pairs of steps of K
(``tcomp.ops.panels.pack_grouped_panels``, in the shape ``bf16_plan`` gives). The rows of A are rounded to bfloat16
as they are packed into ``mr``-row micro-panels (never read in place: they are float32), and every ``mr x nr x kc``
tile is a call of ``tcomp_bgemm_dp`` where the CPU has AVX512-BF16 (``CpuTarget.bf16_dots``): ``vdpbf16ps`` adds
two products per float32 lane and instruction, twice the float32 GEMM's multiply-adds, from half the bytes of
weight. Elsewhere it is ``tcomp_bgemm_fma``, the same sums by float32 multiply-adds (the same results but where
a subnormal operand or sum occurs, which ``vdpbf16ps`` takes as zero; at about the float32 GEMM's speed). The
slices of K are deeper than the float32 GEMM's (up to ``MAX_DEPTH`` steps). Whatever reads the product elementwise
runs as its epilogue, block by block; a symbolic number of rows (a prompt's) takes the plan of ``TYPICAL_ROWS``
rows (``gemm_plan.with_symbolic_rows``).
"""

from __future__ import annotations

from dataclasses import replace

from tcomp.ops.cpu.common import CpuTarget
from tcomp.ops.cpu.gemm_plan import GemmPlan, micro_blocking, plan_gemm
from tcomp.ops.cpu.grouped_panels import schedule_grouped_panels
from tcomp.ops.cpu.intrin import bgemm_intrin
from tcomp.ops.panels import PAIRS, PANELS
from tcomp.schedule.schedule import Schedule
from tcomp.schedule.stage import Stage
from tcomp.te.intrin import TensorIntrin
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
    it elementwise, or None) as the module docstring says (``grouped_panels.schedule_grouped_panels``); panels
    packed for another plan keep plain parallel loops."""
    op = s[tensor].op
    assert isinstance(op, ComputeOp)
    x = next(t for t in op.input_tensors() if t.dtype != "bfloat16")
    panels = next(t for t in op.input_tensors() if t.dtype == "bfloat16")

    def plan_of(m: int, n: int, k: int, fixed_rows: bool) -> GemmPlan:
        return bf16_plan(m, n, k, cpu)

    def intrin_of(plan: GemmPlan) -> TensorIntrin:
        bl = plan.blocking
        return bgemm_intrin(bl.mr, bl.nr, bl.kc, plan.lanes, cpu.bf16_dots, plan.symbolic_rows)

    schedule_grouped_panels(s, tensor, host, cpu, x, panels, PAIRS, plan_of, "bfloat16", "float32", intrin_of)
