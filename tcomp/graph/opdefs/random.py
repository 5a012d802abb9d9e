"""``random(state; shape, dtype, distribution, a, b, stream, seed)``: a tensor of random numbers
(``tcomp.ops.random``), new ones at every run.

Its one input is the graph's random state: a uint64 parameter of two elements, a key and a run counter, that the
executor owns and advances before each run (``ExecutorProgram.random_states``). The node is stateful: no pass
computes it ahead of time. ``distribution`` is ``uniform`` (from ``a`` to ``b``) or ``normal`` (mean ``a``, standard
deviation ``b``); ``stream`` is an integer that differs between the random nodes of a graph; ``seed`` (a float, or
absent) fixes the key, so the node's draws repeat from one executor to the next.
"""

from __future__ import annotations

import math

from tcomp.graph.ir import TensorType
from tcomp.graph.op import InferContext, LowerContext, OpPattern, register_op
from tcomp.graph.opdefs.common import int_attr, ints_attr
from tcomp.ir import dtype as dt
from tcomp.ops import random as random_ops
from tcomp.te.tensor import Tensor

STATE_TYPE = TensorType((2,), "uint64")


def _infer_random(ctx: InferContext) -> list[TensorType]:
    if ctx.type(0) != STATE_TYPE:
        raise ctx.error(f"input 0 must be the random state, a {STATE_TYPE}, got {ctx.type(0)}")
    shape = ints_attr(ctx, "shape")
    if min(shape, default=0) < 0:
        raise ctx.error(f"shape {shape} must have non-negative dimensions")
    dtype = dt.normalize(ctx.attr("dtype", "float32"))
    if not dt.is_float(dtype):
        raise ctx.error(f"draws float tensors, not {dtype}")
    if ctx.attr("distribution") not in random_ops.DISTRIBUTIONS:
        raise ctx.error(f"distribution must be one of {random_ops.DISTRIBUTIONS}, got {ctx.attr('distribution')!r}")
    for key in ("a", "b"):
        value = ctx.attr(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ctx.error(f"attribute {key} must be a finite number, got {value!r}")
    int_attr(ctx, "stream")
    seed = ctx.attr("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, float))):
        raise ctx.error(f"attribute seed must be a number, got {seed!r}")
    return [TensorType(shape, dtype)]


def _lower_random(ctx: LowerContext) -> list[Tensor]:
    out = ctx.out_types[0]
    seed = ctx.attr("seed")
    return [random_ops.random(ctx.tensor(0), out.shape, out.dtype, ctx.attr("distribution"), float(ctx.attr("a")),
                              float(ctx.attr("b")), int(ctx.attr("stream")), None if seed is None else float(seed),
                              name=ctx.name)]


register_op("random", OpPattern.OPAQUE, _infer_random, _lower_random, stateful=True)
