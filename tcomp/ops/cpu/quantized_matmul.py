"""Default CPU schedule of ``quantized_matmul`` (``tcomp/ops/quantized.py``): the packed GEMM of
``packed_matmul.py`` on the integer micro-kernel.

The weight is already in its panels (``pack_int8_panels``, packed at compile time with the shape ``quantized_plan``
gives); the rows of A (uint8) are packed into ``mr``-row micro-panels, zero beyond K, or read in place; every
``mr x nr x kc`` tile is a call of ``tcomp_igemm_u8s8`` (``vpdpbusd`` where the CPU has VNNI: four multiply-adds
per int32 lane and instruction, against one per float32 lane for the float GEMM). The zero-point correction and
whatever follows (the conversion to float, the scales, a bias) run as the product's epilogue, block by block.
The slices of K are deeper than the float GEMM's (up to ``MAX_DEPTH`` steps): a slice of a panel is a quarter of
the bytes.
"""

from __future__ import annotations

from dataclasses import replace

from tcomp import te
from tcomp.ops.cpu.common import CpuTarget, extents, schedule_elementwise
from tcomp.ops.cpu.dense import schedule_elementwise_reduction_fallback
from tcomp.ops.cpu.intrin import igemm_intrin
from tcomp.ops.cpu.packed_matmul import (
    GemmPlan,
    Operand,
    PackedProduct,
    micro_blocking,
    operand,
    pack_a_compute,
    packed_a_value,
    plan_gemm,
    product_computes,
    splice_packed_product,
    tile_rows,
)
from tcomp.ops.quantized import GROUP
from tcomp.schedule.schedule import Schedule
from tcomp.schedule.stage import Stage
from tcomp.te.tensor import ComputeOp, PlaceholderOp, Tensor

# the deepest slice of K a tile runs (an ``nr``-column panel slice of 1024 steps is 32 KiB with 32 columns)
MAX_DEPTH = 1024


def quantized_plan(m: int, n: int, k: int, cpu: CpuTarget, a_in_place: bool = False) -> GemmPlan:
    """The packed GEMM's plan for ``[m, k] x [k, n]`` of bytes, slices of K of at most ``MAX_DEPTH`` steps in
    groups of four. With VNNI the register tile is the float GEMM's for int32 lanes; without, each column takes two
    int32 lanes (pairs of products), so a tile has one vector of columns with 16 registers (two with 32) and
    fewer rows. Its ``Np / nr``, ``Kp`` and ``nr`` give the shape of the packed weight (``pack_int8_panels``)."""
    lanes = cpu.lanes("int32")
    slices = -(-k // MAX_DEPTH)
    depth = -(-k // slices)
    blocking = micro_blocking(m, k, lanes, cpu.vector_registers)
    if not cpu.byte_dots:
        columns = 2 if cpu.vector_registers >= 32 else 1
        # two registers per accumulator and per widened panel row, and the widened broadcast row of A
        rows = tile_rows(m, max(1, (cpu.vector_registers - 2 * columns - 2) // (2 * columns)))
        blocking = replace(blocking, mr=rows, nr=columns * lanes, mc=rows * max(1, 256 // rows))
    blocking = replace(blocking, kc=-(-depth // GROUP) * GROUP)
    return plan_gemm(m, n, k, blocking, lanes, cpu.cores, a_readable_in_place=a_in_place and k % GROUP == 0)


def schedule_quantized_matmul(s: Schedule, tensor: Tensor, host: Stage | None, cpu: CpuTarget) -> None:
    """Schedule the product ``tensor`` (the ``quantized_matmul`` stage) and its epilogue ``host`` (an output that
    reads it elementwise, or None) as the module docstring says; products whose panels were packed for another
    plan keep plain parallel loops."""
    stage = s[tensor]
    op = stage.op
    assert isinstance(op, ComputeOp)
    x = next(t for t in op.input_tensors() if t.dtype == "uint8")
    panels = next(t for t in op.input_tensors() if t.dtype == "int8")
    sizes = extents(op.axis)
    k = getattr(x.shape[1], "value", None)
    plan = None
    if sizes is not None and k is not None:
        plan = quantized_plan(sizes[0], sizes[1], k, cpu, isinstance(x.op, PlaceholderOp))
        expected = (plan.Np // plan.blocking.nr, plan.Kp // GROUP, plan.blocking.nr, GROUP)
        if tuple(getattr(d, "value", None) for d in panels.shape) != expected:
            plan = None
    if plan is None:
        schedule_elementwise_reduction_fallback(stage, cpu)
        if host is not None:
            schedule_elementwise(host, cpu)
        return
    bl = plan.blocking
    a = operand(x, False, False, is_a=True)
    packed_a = pack_a_compute(plan, a, op.name)
    group = te.reduce_axis((0, plan.Kp // GROUP), name="k4")
    step = te.reduce_axis((0, GROUP), name="s")

    def body(i, j):
        a_value = packed_a_value(plan, a, packed_a, None, i, group * GROUP + step)
        b_value = panels[j // bl.nr, group, j % bl.nr, step]
        return te.sum(te.cast(a_value, "int32") * te.cast(b_value, "int32"), axis=[group, step])

    product, output = product_computes(plan, body, op.name, op.tag, op.attrs)
    intrin = igemm_intrin(bl.mr, bl.nr, bl.kc, plan.lanes, cpu.byte_dots)
    stages = PackedProduct(packed_a, panels, product, output, a, Operand(panels, is_b=True), True, intrin)
    if not splice_packed_product(s, stage, stages, host, plan) and host is not None:
        schedule_elementwise(host, cpu)
