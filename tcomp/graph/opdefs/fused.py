"""``fused``: a group of operators compiled as one kernel; its ``body`` attribute is the group's subgraph."""

from __future__ import annotations

from tcomp.graph.ir import Graph, TensorType
from tcomp.graph.op import InferContext, LowerContext, OpPattern, register_op
from tcomp.te.tensor import Tensor


def _infer_fused(ctx: InferContext) -> list[TensorType]:
    body = ctx.attr("body")
    if not isinstance(body, Graph):
        raise ctx.error("has no body graph")
    for name, t in zip(body.inputs, ctx.types):
        if t is None or body.type_of(name) != t:
            raise ctx.error(f"input {name!r} has type {t}, the body expects {body.type_of(name)}")
    return [body.type_of(o) for o in body.outputs]


def _lower_fused(ctx: LowerContext) -> list[Tensor]:
    raise NotImplementedError("fused nodes are lowered by tcomp.graph.kernels.node_tensors")


register_op("fused", OpPattern.OPAQUE, _infer_fused, _lower_fused)
