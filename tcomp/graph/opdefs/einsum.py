"""The ``einsum(equation)`` graph operator (any number of inputs of one dtype) over ``tcomp.ops.einsum``."""

from __future__ import annotations

from tcomp.graph.ir import TensorType
from tcomp.graph.op import InferContext, LowerContext, OpPattern, register_op
from tcomp.graph.opdefs.common import same_dtype
from tcomp.ir import dtype as dt
from tcomp.ops.einsum import einsum, parse_einsum
from tcomp.ops.utils import OpError
from tcomp.te.tensor import Tensor


def _infer_einsum(ctx: InferContext) -> list[TensorType]:
    types = [ctx.type(i) for i in range(len(ctx.types))]
    if not types:
        raise ctx.error("needs at least one input")
    dtype = same_dtype(ctx, types)
    if dt.is_bool(dtype):
        raise ctx.error("inputs must be numeric, got bool")
    equation = ctx.attr("equation")
    if not isinstance(equation, str):
        raise ctx.error(f"attribute equation must be a string, got {equation!r}")
    try:
        plan = parse_einsum(equation, [t.shape for t in types])
    except OpError as exc:
        raise ctx.error(str(exc)) from None
    return [TensorType(tuple(plan.extents[label] for label in plan.output), dtype)]


def _lower_einsum(ctx: LowerContext) -> list[Tensor]:
    operands = [ctx.tensor(i) for i in range(len(ctx.tensors))]
    return [einsum(str(ctx.attr("equation")), *operands, name=ctx.name)]


register_op("einsum", OpPattern.OPAQUE, _infer_einsum, _lower_einsum)
