"""``legalize_storage_types``: types no target computes on are stored as their bits and computed on in a wider type.

No code generator computes on ``bfloat16`` (a CPU without AVX512-BF16 has no bfloat16 arithmetic, and LLVM's
``bfloat`` type would call runtime helpers a JIT cannot resolve), on the 8-bit floats (``float8_e4m3fn``,
``float8_e4m3fnuz``, ``float8_e5m2``, ``float8_e5m2fnuz``) nor on the 4- and 2-bit integers ``int4``, ``uint4``,
``int2`` and ``uint2`` (``ml_dtypes`` arrays: one element per byte, in its low bits). So, as TVM's bfloat16
legalization does, every such value a program computes with becomes a value of its compute type, and the storage
type is left only where it is stored (``STORAGE_TYPES``):

- a read of a buffer of a storage type is widened, exactly: bfloat16 as ``float32(bits << 16)``, an 8-bit float by
  its exponent and mantissa fields (the intrinsic ``<type>_value``: subnormals, infinities and NaNs as its format has
  them), a 4- or 2-bit integer as ``int8`` (sign-extended) or ``uint8``;
- a write is narrowed: a float32 value rounded to the nearest bfloat16 or 8-bit float, ties to even (a NaN stays a
  NaN), as ``ml_dtypes`` and PyTorch round (the intrinsics ``bfloat16_bits`` and ``<type>_bits``); an integer's low
  bits;
- ``cast(x, T)`` to a storage type gives ``x`` as that type would hold it: a bfloat16 rounding (overflow gives
  infinity); an 8-bit float's rounding of ``x`` clamped to its largest value, as ONNX's ``Cast`` saturates by
  default; for the small integers, as ``ml_dtypes`` converts, a float truncated toward zero, 0 where that lies
  outside the type's range (or for a NaN: the intrinsic ``<type>_from_float``), and an integer's low bits (two's
  complement); casts from a storage type cast its compute value;
- arithmetic, selects, math calls and constants compute in the compute type;
- ``reinterpret`` from or to a storage type reads or makes its bits;
- the address of an element (``address_of``, a micro-kernel's operand) reads nothing and stays as it is.

Between two narrowings (an explicit cast, a store) values keep their compute type's precision: an operator's
result rounds once, where it is written. Buffers keep their types (the code generators store bfloat16 as 16-bit
integers, the others as bytes), so the function's parameters and the arrays passed to it are unchanged.

Assumes a lowered function (before flattening; any later works too). Guarantees no expression of a storage type but
the ``reinterpret`` calls a store writes and the buffer reads they widen. Returns the same function when it has
none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import ml_dtypes
import numpy as np

from tcomp.ir import dtype as dt
from tcomp.ir import expr as E
from tcomp.ir.functor import Mutator
from tcomp.ir.stmt import BufferStore, PrimFunc, Stmt


def _as(dtype: str, element: str) -> str:
    return dt.with_lanes(element, dt.lanes(dtype))


def _const(lanes_of: str, element: str, value: int | float) -> E.Expr:
    return E.make_const(value, _as(lanes_of, element))


def _call(op: str, dtype: str, *args: E.Expr) -> E.Expr:
    return E.Call(op, args, dtype)


@dataclass(frozen=True)
class StorageType:
    """How a storage type ``name`` is held: ``bits``, the unsigned type of its container; ``compute``, the type its
    values are computed in; ``widen`` (bits to value), ``narrow`` (value to bits), ``convert`` (any value to a
    value this type holds: a cast's meaning) and ``constant`` (a Python number as this type holds it)."""

    name: str
    bits: str
    compute: str
    widen: Callable[[E.Expr], E.Expr]
    narrow: Callable[[E.Expr], E.Expr]
    convert: Callable[[E.Expr], E.Expr]
    constant: Callable[[int | float], int | float]


# bfloat16
def widen_bfloat16(bits16: E.Expr) -> E.Expr:
    """The float32 value of bfloat16 bits (``uint16``, any lanes): the bits as a float32's upper half."""
    wide = E.Cast(bits16, _as(bits16.dtype, "uint32"))
    shifted = _call("shift_left", wide.dtype, wide, _const(bits16.dtype, "uint32", 16))
    return _call("reinterpret", _as(bits16.dtype, "float32"), shifted)


def narrow_bfloat16(value: E.Expr) -> E.Expr:
    """The bits (``uint16``) of float32 ``value`` rounded to the nearest bfloat16, ties to even; a NaN keeps its top
    16 bits (made quiet where its payload lies only in the bits dropped), so a bfloat16 NaN widened and narrowed again
    keeps every bit (the ``bfloat16_bits`` intrinsic: each code generator reads ``value`` once)."""
    return _call("bfloat16_bits", _as(value.dtype, "uint16"), value)


def round_to_bfloat16(value: float) -> float:
    """``value`` rounded to the nearest bfloat16, as a Python float."""
    with np.errstate(over="ignore"):
        return float(np.float32(value).astype(ml_dtypes.bfloat16))


BFLOAT16 = StorageType("bfloat16", "uint16", "float32", widen_bfloat16, narrow_bfloat16,
                       lambda x: widen_bfloat16(narrow_bfloat16(E.cast(x, _as(x.dtype, "float32")))),
                       round_to_bfloat16)


# 4- and 2-bit integers
def _small_integer(name: str, width: int, signed: bool) -> StorageType:
    compute, mask, sign = ("int8" if signed else "uint8"), (1 << width) - 1, 1 << (width - 1)

    def wrap(value: E.Expr) -> E.Expr:
        """The low ``width`` bits of an integer value, as a value of ``compute`` (sign-extended when signed)."""
        wide = E.cast(value, _as(value.dtype, "int32"))
        bits = _call("bitwise_and", wide.dtype, wide, _const(wide.dtype, "int32", mask))
        if signed:
            flipped = _call("bitwise_xor", wide.dtype, bits, _const(wide.dtype, "int32", sign))
            bits = E.Sub(flipped, _const(wide.dtype, "int32", sign), wide.dtype)
        return E.cast(bits, _as(value.dtype, compute))

    def narrow(value: E.Expr) -> E.Expr:
        as_bits = E.cast(value, _as(value.dtype, "uint8"))
        return _call("bitwise_and", as_bits.dtype, as_bits, _const(value.dtype, "uint8", mask))

    def convert(value: E.Expr) -> E.Expr:
        if not dt.is_float(value.dtype):
            return wrap(value)
        wide = E.cast(value, _as(value.dtype, "float32")) if dt.element(value.dtype) == "float16" else value
        return _call(f"{name}_from_float", _as(value.dtype, compute), wide)  # reads ``wide`` once

    def constant(value: int | float) -> int:
        bits = int(value) & mask
        return bits - (bits & sign) * 2 if signed else bits

    return StorageType(name, "uint8", compute, wrap, narrow, convert, constant)


# 8-bit floats
def _float8(name: str) -> StorageType:
    def widen(bits8: E.Expr) -> E.Expr:  # exact: every code's value, its infinities and NaNs as the format has them
        return _call(f"{name}_value", _as(bits8.dtype, "float32"), bits8)

    def narrow(value: E.Expr) -> E.Expr:  # exact for the values the type holds, infinities included
        return _call(f"{name}_bits", _as(value.dtype, "uint8"), value)

    def constant(value: int | float) -> float:
        with np.errstate(over="ignore", invalid="ignore"):
            return float(saturated(np.float32(value), name).astype(dt.to_numpy(name)).astype(np.float32))

    def convert(value: E.Expr) -> E.Expr:  # saturating, as ONNX's Cast by default: infinities too
        wide = E.cast(value, _as(value.dtype, "float32"))
        largest = dt.float8_largest(name)
        clamped = E.Max(E.Min(wide, _const(wide.dtype, "float32", largest), wide.dtype),
                        _const(wide.dtype, "float32", -largest), wide.dtype)  # NaN stays NaN
        return widen(narrow(clamped))

    return StorageType(name, "uint8", "float32", widen, narrow, convert, constant)


def saturated(values: np.ndarray, dtype: str) -> np.ndarray:
    """``values`` clipped to the largest finite magnitude of the 8-bit float ``dtype`` (NaN kept): a cast to it
    saturates, as ONNX's ``Cast`` does by default."""
    largest = dt.float8_largest(dtype)
    return np.clip(values, -largest, largest)


STORAGE_TYPES = {t.name: t for t in (BFLOAT16, *(_small_integer(name, *kind) for name, kind in
                                                   dt.SMALL_INTEGERS.items()),
                                     *(_float8(name) for name in dt.FLOAT8_FORMATS))}


def _storage(dtype: str) -> StorageType | None:
    return STORAGE_TYPES.get(dt.element(dtype))


class _Legalize(Mutator):
    def __init__(self) -> None:
        self.vars: dict[E.Var, E.Var] = {}

    def _computed(self, node: E.Expr) -> E.Expr:
        """``node`` (its children already legalized) with a storage type made its compute type."""
        storage = _storage(node.dtype)
        return node if storage is None else replace(node, dtype=_as(node.dtype, storage.compute))

    def visit_BufferLoad(self, node: E.BufferLoad) -> E.Expr:
        node = self.generic_visit(node)
        storage = _storage(node.dtype)
        if storage is None:
            return node
        return storage.widen(_call("reinterpret", _as(node.dtype, storage.bits), node))

    def visit_BufferStore(self, node: BufferStore) -> Stmt:
        node = self.generic_visit(node)
        storage = _storage(node.buffer.dtype)
        if storage is None:
            return node
        value = node.value
        if _storage(value.dtype) is not None:  # pragma: no cover - every such expression was widened below
            raise TypeError(f"legalize_storage_types: a {value.dtype} value was left in {node}")
        value = E.cast(value, _as(value.dtype, storage.compute))
        return replace(node, value=_call("reinterpret", _as(value.dtype, storage.name), storage.narrow(value)))

    def _constant(self, node: E.IntImm | E.FloatImm) -> E.Expr:
        storage = _storage(node.dtype)
        if storage is None:
            return node
        return E.make_const(storage.constant(node.value), _as(node.dtype, storage.compute))

    visit_FloatImm = _constant
    visit_IntImm = _constant

    def visit_Var(self, node: E.Var) -> E.Expr:
        storage = _storage(node.dtype)
        if storage is None:
            return node
        if node not in self.vars:
            self.vars[node] = E.Var(node.name, _as(node.dtype, storage.compute), node.max_value, node.min_value)
        return self.vars[node]

    def visit_Cast(self, node: E.Cast) -> E.Expr:
        value = self.visit(node.value)
        storage = _storage(node.dtype)
        if storage is None:
            return E.cast(value, node.dtype) if value is not node.value else node
        return storage.convert(value)

    def visit_Call(self, node: E.Call) -> E.Expr:
        if node.op == "address_of" and len(node.args) == 1 and isinstance(node.args[0], E.BufferLoad):
            return replace(node, args=(self.generic_visit(node.args[0]),))  # an element's address: nothing read
        source, target = _storage(node.args[0].dtype) if node.args else None, _storage(node.dtype)
        if node.op != "reinterpret" or (source is None and target is None):
            return self._computed(self.generic_visit(node))
        value = self.visit(node.args[0])
        if source is not None:  # its compute value is one the type holds: narrowing gives back its bits
            value = source.narrow(value)
        if target is None:
            return _call("reinterpret", node.dtype, value) if value.dtype != node.dtype else value
        bits = _as(node.dtype, target.bits)
        return target.widen(_call("reinterpret", bits, value) if value.dtype != bits else value)

    def visit_Expr(self, node: E.Expr) -> E.Expr:
        return self._computed(self.generic_visit(node))


def legalize_storage_types(func: PrimFunc) -> PrimFunc:
    """See the module docstring."""
    body = _Legalize().visit(func.body)
    return func if body is func.body else replace(func, body=body)


__all__ = ["STORAGE_TYPES", "StorageType", "legalize_storage_types", "narrow_bfloat16", "round_to_bfloat16",
           "saturated", "widen_bfloat16"]
