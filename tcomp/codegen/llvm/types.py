"""Mapping of tcomp dtypes to LLVM types, in registers and in memory.

In registers ``bool`` is ``i1``; in memory it is one byte (``i8``), as numpy stores it. ``float16`` is ``half``;
``bfloat16`` is its bits, ``i16``, and a 4- or 2-bit integer its byte, ``i8`` (``tcomp.transform.storage_types``
leaves no arithmetic on them).
A vector dtype ``float32x8`` is ``<8 x float>``.
"""

from __future__ import annotations

import llvmlite.ir as ir
import numpy as np

from tcomp.ir import dtype as dt
from tcomp.runtime.llvm_types import I1, I8, I8_PTR, I32, I64, VOID

__all__ = ["F32", "I1", "I8", "I8_PTR", "I32", "I64", "VOID", "constant", "intrinsic_suffix", "llvm_type",
           "scalar_type", "storage_type", "with_lanes_type", "wrap_signed"]

F32 = ir.FloatType()

_FLOATS: dict[str, ir.Type] = {"float16": ir.HalfType(), "float32": ir.FloatType(), "float64": ir.DoubleType()}


def scalar_type(elem: str) -> ir.Type:
    """The register type of a scalar dtype (``handle`` is an opaque ``i8*``)."""
    if elem == "handle":
        return I8_PTR
    if elem in _FLOATS:
        return _FLOATS[elem]
    return ir.IntType(1 if elem == "bool" else 8 * dt.storage_bytes(elem))  # a 4- or 2-bit integer is its byte


def llvm_type(dtype: str) -> ir.Type:
    """The register type of ``dtype`` (vectors become LLVM vectors)."""
    elem, count = dt.split_lanes(dtype)
    base = scalar_type(elem)
    return base if count == 1 else ir.VectorType(base, count)


def storage_type(dtype: str) -> ir.Type:
    """The in-memory type of one element of ``dtype`` (``bool`` is ``i8``)."""
    elem, count = dt.split_lanes(dtype)
    base = I8 if elem == "bool" else scalar_type(elem)
    return base if count == 1 else ir.VectorType(base, count)


def with_lanes_type(base: ir.Type, count: int) -> ir.Type:
    return base if count == 1 else ir.VectorType(base, count)


def intrinsic_suffix(ty: ir.Type) -> str:
    """The overload suffix LLVM uses in intrinsic names: ``f32``, ``v8f32``, ``i64``."""
    if isinstance(ty, ir.VectorType):
        return f"v{ty.count}{intrinsic_suffix(ty.element)}"
    if isinstance(ty, ir.HalfType):
        return "f16"
    if isinstance(ty, ir.FloatType):
        return "f32"
    if isinstance(ty, ir.DoubleType):
        return "f64"
    if isinstance(ty, ir.IntType):
        return f"i{ty.width}"
    raise TypeError(f"no intrinsic suffix for LLVM type {ty}")


def constant(value: int | float | bool, dtype: str) -> ir.Constant:
    """An LLVM constant of the register type of ``dtype`` (splatted for vectors)."""
    elem, count = dt.split_lanes(dtype)
    base = scalar_type(elem)
    if elem == "float16":
        with np.errstate(over="ignore"):
            scalar = ir.Constant(base, float(np.float16(value)))
    elif elem == "bfloat16":
        scalar = ir.Constant(base, wrap_signed(int(np.array(value, dt.to_numpy(elem)).view(np.uint16)), 16))
    elif dt.is_float(elem):
        scalar = ir.Constant(base, float(value))
    elif elem == "bool":
        scalar = ir.Constant(base, int(bool(value)))
    else:
        scalar = ir.Constant(base, wrap_signed(int(value), dt.bits(elem)))
    if count == 1:
        return scalar
    return ir.Constant(ir.VectorType(base, count), [scalar] * count)


def wrap_signed(value: int, width: int) -> int:
    """``value`` modulo ``2**width``, written in the signed range LLVM's parser accepts for ``iN`` constants."""
    value &= (1 << width) - 1
    if value >= 1 << (width - 1):
        value -= 1 << width
    return value
