"""The packed GEMM of a product whose constant weight is stored in panels of groups of steps of K,
``panels[Np / nr, Kp / g, nr, g]``: the int8 and int16 products of quantized models (``quantized_matmul.py``) and
the bfloat16 ones (``bf16_matmul.py``), each on its micro-kernel.

``schedule_grouped_panels`` reads the product's sizes off its compute, asks the caller's plan for them (a symbolic
number of rows, a prompt's, takes the plan of ``TYPICAL_ROWS`` rows, ``gemm_plan.with_symbolic_rows``), checks that
the panels have that plan's shape, and splices the packed GEMM in: the rows of A packed into ``mr``-row micro-panels
(converted to the micro-kernel's type), a product summed over the groups and the steps within them, every tile a
call of the micro-kernel, the epilogue run block by block. Panels of another plan keep plain parallel loops.
"""

from __future__ import annotations

from collections.abc import Callable

from tcomp import te
from tcomp.ops.cpu.common import CpuTarget, const_extent, extents, schedule_elementwise
from tcomp.ops.cpu.dense import TYPICAL_ROWS, schedule_elementwise_reduction_fallback
from tcomp.ops.cpu.gemm_plan import GemmPlan, with_symbolic_rows
from tcomp.ops.cpu.packed_matmul import (
    Operand,
    PackedProduct,
    operand,
    pack_a_compute,
    packed_a_value,
    product_computes,
    splice_packed_product,
)
from tcomp.schedule.schedule import Schedule
from tcomp.schedule.stage import Stage
from tcomp.te.intrin import TensorIntrin
from tcomp.te.tensor import ComputeOp, Tensor

# plan_of(m, n, k, fixed_rows): the plan of an [m, k] x [k, n] product (fixed_rows: m is the product's own number of
# rows, not TYPICAL_ROWS standing for a symbolic one), or None where the micro-kernel does not take it
PlanOf = Callable[[int, int, int, bool], GemmPlan | None]


def schedule_grouped_panels(s: Schedule, tensor: Tensor, host: Stage | None, cpu: CpuTarget, x: Tensor,
                            panels: Tensor, group: int, plan_of: PlanOf, a_dtype: str | None, sum_dtype: str,
                            intrin_of: Callable[[GemmPlan], TensorIntrin]) -> None:
    """Schedule the product ``tensor`` of rows ``x`` and ``panels`` in groups of ``group`` steps, and its epilogue
    ``host`` (an output that reads it elementwise, or None), as the module docstring says: A packed as
    ``a_dtype`` (None: its own type), products summed in ``sum_dtype``, tiles on ``intrin_of(plan)``."""
    stage = s[tensor]
    op = stage.op
    assert isinstance(op, ComputeOp)
    columns = extents(op.axis[1:])
    rows = const_extent(op.axis[0])  # None: a symbolic number of rows (a prompt's length)
    k = getattr(x.shape[1], "value", None)
    plan = None
    if columns is not None and k is not None:
        plan = plan_of(TYPICAL_ROWS if rows is None else rows, columns[0], k, rows is not None)
    if plan is not None:
        if rows is None:
            plan = with_symbolic_rows(plan, op.axis[0].dom.extent)  # type: ignore[union-attr]
        expected = (plan.Np // plan.blocking.nr, plan.Kp // group, plan.blocking.nr, group)
        if tuple(getattr(d, "value", None) for d in panels.shape) != expected:
            plan = None
    if plan is None:
        schedule_elementwise_reduction_fallback(stage, cpu)
        if host is not None:
            schedule_elementwise(host, cpu)
        return
    bl = plan.blocking
    a = operand(x, False, False, is_a=True)
    packed_a = pack_a_compute(plan, a, op.name, a_dtype)
    steps = te.reduce_axis((0, plan.Kp // group), name="kg")
    step = te.reduce_axis((0, group), name="s")

    def body(i, j):
        a_value = packed_a_value(plan, a, packed_a, None, i, steps * group + step)
        b_value = panels[j // bl.nr, steps, j % bl.nr, step]
        return te.sum(te.cast(a_value, sum_dtype) * te.cast(b_value, sum_dtype), axis=[steps, step])

    product, output = product_computes(plan, body, op.name, op.tag, op.attrs)
    stages = PackedProduct(packed_a, panels, product, output, a, Operand(panels, is_b=True), True, intrin_of(plan))
    if not splice_packed_product(s, stage, stages, host, plan) and host is not None:
        schedule_elementwise(host, cpu)
