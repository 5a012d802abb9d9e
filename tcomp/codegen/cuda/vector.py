"""Vector loads and stores (``float4``, ``float2``, ``int4`` ...) for vectorized copy loops.

A loop marked vectorized with 2 or 4 iterations whose body copies one element, ``dst[d + v] = src[s + v]`` (maybe
under a condition that does not depend on ``v``), where both ``d`` and ``s`` are provably multiples of the lane count,
prints as one vector access::

    *(float4*)(dst + d) = *(const float4*)(src + s);

Assumes the arrays start on 16-byte boundaries: shared arrays are declared ``__align__(16)``; device allocations
are (CUDA aligns them to 256 bytes). Any other loop prints as an unrolled scalar loop.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcomp.arith import simplify
from tcomp.arith.keys import same_tree
from tcomp.ir import dtype as dt
from tcomp.ir import expr as E
from tcomp.ir import stmt as S
from tcomp.ir.functor import substitute, uses_var

VECTOR_TYPES = {"float32": "float", "int32": "int"}


@dataclass(frozen=True)
class VectorCopy:
    """``dst[dst_base : dst_base + lanes] = src[src_base : src_base + lanes]``, under ``condition`` if any."""

    dst: S.BufferStore
    src: E.BufferLoad
    dst_base: E.Expr
    src_base: E.Expr
    lanes: int
    condition: E.Expr | None

    @property
    def vector_type(self) -> str:
        return f"{VECTOR_TYPES[self.dst.buffer.dtype]}{self.lanes}"


def _base(index: E.Expr, var: E.Var, lanes: int, bounds: dict[E.Var, tuple[int, int]]) -> E.Expr | None:
    """``index`` at ``var = 0`` when ``index`` is that plus ``var`` and a multiple of ``lanes``, else None."""
    base = simplify(substitute(index, {var: E.const(0, var.dtype)}), bounds)
    if not same_tree(simplify(index - base, bounds), var):
        return None
    if E.const_int_value(simplify(E.floormod(base, lanes), bounds)) != 0:
        return None
    return base


def match_vector_copy(loop: S.For, bounds: dict[E.Var, tuple[int, int]]) -> VectorCopy | None:
    """The vector copy ``loop`` performs, if it is one (see the module docstring)."""
    lanes = E.const_int_value(loop.extent)
    if loop.kind is not S.ForKind.VECTORIZED or lanes not in (2, 4) or not E.is_const_int(loop.min, 0):
        return None
    body, condition = loop.body, None
    if isinstance(body, S.IfThenElse) and body.else_case is None and not uses_var(body.condition, [loop.loop_var]):
        body, condition = body.then_case, body.condition
    if not isinstance(body, S.BufferStore) or not isinstance(body.value, E.BufferLoad):
        return None
    src = body.value
    if body.buffer.dtype not in VECTOR_TYPES or src.dtype != body.buffer.dtype or dt.lanes(src.dtype) != 1:
        return None
    if body.buffer.scope == "local" or src.buffer.scope == "local":
        return None
    inner = {**bounds, loop.loop_var: (0, lanes - 1)}
    dst_base = _base(body.indices[0], loop.loop_var, lanes, inner)
    src_base = _base(src.indices[0], loop.loop_var, lanes, inner)
    if dst_base is None or src_base is None:
        return None
    return VectorCopy(body, src, dst_base, src_base, lanes, condition)
