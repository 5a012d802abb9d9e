"""``legalize_bfloat16``: bfloat16 is stored as its 16 bits and computed on in float32.

No target computes on bfloat16 directly here: a CPU without AVX512-BF16 has no bfloat16 arithmetic, and LLVM's
``bfloat`` type would call runtime helpers a JIT cannot resolve. So, as TVM's bfloat16 legalization does, every
bfloat16 value a program computes with becomes a float32 value, and bfloat16 is left only where it is stored:

- a read of a bfloat16 buffer is widened: ``float32(bits << 16)``, exact;
- a write to a bfloat16 buffer is narrowed: the float32 value rounded to the nearest bfloat16, ties to even
  (a NaN stays a NaN, overflow gives infinity), as ``ml_dtypes`` and PyTorch round (the ``bfloat16_bits``
  intrinsic);
- ``cast(x, bfloat16)`` rounds ``x`` to a bfloat16 value, held in a float32; casts from bfloat16 cast from float32;
- arithmetic, selects, math calls and constants of bfloat16 compute in float32;
- ``reinterpret`` from or to bfloat16 reads or makes the 16 bits.

Between two roundings (an explicit cast, a store) values keep float32's precision: an operator's result rounds
once, where it is written. The buffers keep their bfloat16 type (the code generators store it as 16-bit integers),
so the function's parameters and the arrays passed to it are unchanged. Bits move by the ``reinterpret`` intrinsic
(the same bits as another type of the same width).

Assumes a lowered function (before flattening; any later works too). Guarantees no expression of a bfloat16 type
but the ``reinterpret`` calls a store writes. Returns the same function when it has no bfloat16.
"""

from __future__ import annotations

from dataclasses import replace

import ml_dtypes
import numpy as np

from tcomp.ir import dtype as dt
from tcomp.ir import expr as E
from tcomp.ir.functor import Mutator
from tcomp.ir.stmt import BufferStore, PrimFunc, Stmt

BFLOAT16 = "bfloat16"


def _is_bf16(dtype: str) -> bool:
    return dt.element(dtype) == BFLOAT16


def _as(dtype: str, element: str) -> str:
    return dt.with_lanes(element, dt.lanes(dtype))


def _bits(lanes_of: str, value: int) -> E.Expr:
    return E.make_const(value, _as(lanes_of, "uint32"))


def widen(bits16: E.Expr) -> E.Expr:
    """The float32 value of bfloat16 bits (``uint16``, any lanes): the bits as a float32's upper half."""
    wide = E.Cast(bits16, _as(bits16.dtype, "uint32"))
    shifted = E.Call("shift_left", (wide, _bits(bits16.dtype, 16)), wide.dtype)
    return E.Call("reinterpret", (shifted,), _as(bits16.dtype, "float32"))


def narrow(value: E.Expr) -> E.Expr:
    """The bits (``uint16``) of float32 ``value`` rounded to the nearest bfloat16, ties to even; a NaN keeps its top
    16 bits (made quiet where its payload lies only in the bits dropped), so a bfloat16 NaN widened and narrowed again
    keeps every bit (the ``bfloat16_bits`` intrinsic: each code generator reads ``value`` once)."""
    return E.Call("bfloat16_bits", (value,), _as(value.dtype, "uint16"))


def round_to_bfloat16(value: float) -> float:
    """``value`` rounded to the nearest bfloat16, as a Python float."""
    with np.errstate(over="ignore"):
        return float(np.float32(value).astype(ml_dtypes.bfloat16))


class _Legalize(Mutator):
    def __init__(self) -> None:
        self.vars: dict[E.Var, E.Var] = {}

    def _float32(self, node: E.Expr) -> E.Expr:
        """``node`` (its children already legalized) with its bfloat16 type made float32."""
        return replace(node, dtype=_as(node.dtype, "float32")) if _is_bf16(node.dtype) else node

    def visit_BufferLoad(self, node: E.BufferLoad) -> E.Expr:
        node = self.generic_visit(node)
        if not _is_bf16(node.dtype):
            return node
        return widen(E.Call("reinterpret", (node,), _as(node.dtype, "uint16")))

    def visit_BufferStore(self, node: BufferStore) -> Stmt:
        node = self.generic_visit(node)
        if not _is_bf16(node.buffer.dtype):
            return node
        value = node.value
        if _is_bf16(value.dtype):  # pragma: no cover - every bfloat16 expression was widened below
            raise TypeError(f"legalize_bfloat16: a bfloat16 value was left in {node}")
        value = E.cast(value, _as(value.dtype, "float32"))
        return replace(node, value=E.Call("reinterpret", (narrow(value),), _as(value.dtype, BFLOAT16)))

    def visit_FloatImm(self, node: E.FloatImm) -> E.Expr:
        return E.FloatImm(round_to_bfloat16(node.value), "float32") if _is_bf16(node.dtype) else node

    def visit_Var(self, node: E.Var) -> E.Expr:
        if not _is_bf16(node.dtype):
            return node
        if node not in self.vars:
            self.vars[node] = E.Var(node.name, _as(node.dtype, "float32"), node.max_value)
        return self.vars[node]

    def visit_Cast(self, node: E.Cast) -> E.Expr:
        value = self.visit(node.value)
        if not _is_bf16(node.dtype):
            return E.cast(value, node.dtype) if value is not node.value else node
        wide = E.cast(value, _as(node.dtype, "float32"))
        return widen(narrow(wide))

    def visit_Call(self, node: E.Call) -> E.Expr:
        if node.op != "reinterpret" or not (_is_bf16(node.dtype) or _is_bf16(node.args[0].dtype)):
            return self._float32(self.generic_visit(node))
        value = self.visit(node.args[0])
        if _is_bf16(node.args[0].dtype):  # its float32 value is a bfloat16's: narrowing gives back its bits
            value = narrow(value)
        if not _is_bf16(node.dtype):
            return E.Call("reinterpret", (value,), node.dtype) if value.dtype != node.dtype else value
        u16 = _as(node.dtype, "uint16")
        bits = E.Call("reinterpret", (value,), u16) if value.dtype != u16 else value
        return widen(bits)

    def visit_Expr(self, node: E.Expr) -> E.Expr:
        return self._float32(self.generic_visit(node))


def legalize_bfloat16(func: PrimFunc) -> PrimFunc:
    """See the module docstring."""
    body = _Legalize().visit(func.body)
    return func if body is func.body else replace(func, body=body)


__all__ = ["legalize_bfloat16", "narrow", "round_to_bfloat16", "widen"]
