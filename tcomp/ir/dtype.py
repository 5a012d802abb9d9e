"""Data types as strings: ``"float32"``, ``"int64"``, ``"bool"``, and vector types ``"float32x8"``.

Strings keep IR readable and records JSON-friendly; the helpers here are the only place that parses them.
``bfloat16`` (8 exponent bits, 7 mantissa bits: the upper half of a float32), the 8-bit floats (``float8_e4m3fn``,
``float8_e4m3fnuz``, ``float8_e5m2``, ``float8_e5m2fnuz``) and the 4- and 2-bit integers (``int4``, ``uint4``,
``int2``, ``uint2``: one per byte) are storage types: their arrays are ``ml_dtypes`` arrays, and programs compute on
them in float32, int8 or uint8 (``tcomp.transform.storage_types``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import ml_dtypes
import numpy as np

SCALAR_DTYPES = (
    "bool",
    "int2",
    "int4",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint2",
    "uint4",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "bfloat16",
    "float8_e4m3fn",
    "float8_e4m3fnuz",
    "float8_e5m2",
    "float8_e5m2fnuz",
    "float32",
    "float64",
    "handle",
)

_VECTOR_RE = re.compile(r"^([a-z0-9_]+?)x([0-9]+)$")
_SPLIT: dict[str, tuple[str, int]] = {}


class DTypeError(TypeError):
    """An unknown or unsupported data type."""


def split_lanes(dtype: str) -> tuple[str, int]:
    """``"float32x8"`` -> ``("float32", 8)``; ``"int32"`` -> ``("int32", 1)``."""
    known = _SPLIT.get(dtype)
    if known is not None:
        return known
    match = _VECTOR_RE.match(dtype)
    if match and match.group(1) in SCALAR_DTYPES:
        known = match.group(1), int(match.group(2))
    elif dtype in SCALAR_DTYPES:
        known = dtype, 1
    if known is not None:
        if len(_SPLIT) < 4096:  # vector widths are few; a bound keeps odd callers from growing it without end
            _SPLIT[dtype] = known
        return known
    raise DTypeError(f"unknown dtype {dtype!r}; expected one of {', '.join(SCALAR_DTYPES)}")


def normalize(dtype: object) -> str:
    """Accept a dtype string, a numpy dtype or a numpy scalar type and return the canonical string."""
    if isinstance(dtype, str):
        split_lanes(dtype)
        return dtype
    try:
        name = np.dtype(dtype).name  # type: ignore[call-overload]
    except TypeError as exc:
        raise DTypeError(f"unknown dtype {dtype!r}") from exc
    if name not in SCALAR_DTYPES:
        raise DTypeError(f"unsupported dtype {name!r}")
    return name


def element(dtype: str) -> str:
    return split_lanes(dtype)[0]


def lanes(dtype: str) -> int:
    return split_lanes(dtype)[1]


def with_lanes(dtype: str, count: int) -> str:
    base = element(dtype)
    return base if count == 1 else f"{base}x{count}"


def is_float(dtype: str) -> bool:
    return element(dtype).startswith(("float", "bfloat"))


def is_int(dtype: str) -> bool:
    """Signed or unsigned integer (bool excluded)."""
    return element(dtype).startswith(("int", "uint"))


def is_signed(dtype: str) -> bool:
    return element(dtype).startswith("int")


def is_handle(dtype: str) -> bool:
    """An opaque pointer (the address of a buffer element), passed to extern and tensor-intrinsic calls."""
    return element(dtype) == "handle"


def is_bool(dtype: str) -> bool:
    return element(dtype) == "bool"


def bits(dtype: str) -> int:
    base = element(dtype)
    if base == "bool":
        return 1
    if base == "handle":
        return 64
    if base.startswith("float8_"):
        return 8
    return int(re.sub(r"^[a-z]+", "", base))


def storage_bytes(dtype: str) -> int:
    """Bytes one element occupies in memory (bool and the 4- and 2-bit integers take one byte, as numpy and
    ``ml_dtypes`` store them)."""
    return (bits(dtype) + 7) // 8


@dataclass(frozen=True)
class Float8Format:
    """An 8-bit float: ``exponent`` and ``mantissa`` bits, the exponent's ``bias``, and which codes are special:
    ``"ieee"`` (``e5m2``: infinities and NaNs at the top exponent), ``"fn"`` (``e4m3fn``: no infinity, NaN at
    ``S.1111.111``) or ``"fnuz"`` (no infinity, no negative zero: NaN is ``0x80``). ``largest`` is the code of its
    largest finite magnitude."""

    exponent: int
    mantissa: int
    bias: int
    kind: str
    largest: int


FLOAT8_FORMATS = {"float8_e4m3fn": Float8Format(4, 3, 7, "fn", 0x7E),
                  "float8_e4m3fnuz": Float8Format(4, 3, 8, "fnuz", 0x7F),
                  "float8_e5m2": Float8Format(5, 2, 15, "ieee", 0x7B),
                  "float8_e5m2fnuz": Float8Format(5, 2, 16, "fnuz", 0x7F)}


def float8_largest(dtype: str) -> float:
    """The largest finite value of the 8-bit float ``dtype`` (448 for ``float8_e4m3fn``)."""
    code = np.array([FLOAT8_FORMATS[element(dtype)].largest], np.uint8)
    return float(code.view(to_numpy(dtype))[0])


# the 4- and 2-bit integers: name -> (bits, signed)
SMALL_INTEGERS = {"int4": (4, True), "uint4": (4, False), "int2": (2, True), "uint2": (2, False)}


_ML_DTYPES = {"bfloat16": ml_dtypes.bfloat16, "int4": ml_dtypes.int4, "uint4": ml_dtypes.uint4,
              "int2": ml_dtypes.int2, "uint2": ml_dtypes.uint2, "float8_e4m3fn": ml_dtypes.float8_e4m3fn,
              "float8_e4m3fnuz": ml_dtypes.float8_e4m3fnuz, "float8_e5m2": ml_dtypes.float8_e5m2,
              "float8_e5m2fnuz": ml_dtypes.float8_e5m2fnuz}


def to_numpy(dtype: str) -> np.dtype:
    base = element(dtype)
    return np.dtype(_ML_DTYPES.get(base, base))


def exact_numpy(dtype: str) -> np.dtype:
    """A numpy type that holds every value of ``dtype`` exactly and that any numpy reads and writes: ``to_numpy``'s,
    except float32 for bfloat16 and int8 or uint8 for the 4- and 2-bit integers (``ml_dtypes`` types, which ``.npy``
    files cannot name)."""
    base = element(dtype)
    if base not in _ML_DTYPES:
        return to_numpy(base)
    return np.dtype(np.float32 if is_float(base) else np.int8 if is_signed(base) else np.uint8)


def promote(a: str, b: str) -> str:
    """The dtype of a binary operation on scalars of dtypes ``a`` and ``b`` (lanes must agree)."""
    if a == b:
        return a
    (ea, la), (eb, lb) = split_lanes(a), split_lanes(b)
    if la != lb:
        raise DTypeError(f"cannot combine {a} and {b}: lane counts differ")
    if is_float(ea) != is_float(eb):
        result = ea if is_float(ea) else eb
    elif is_bool(ea) or is_bool(eb):
        result = eb if is_bool(ea) else ea
    else:
        result = ea if bits(ea) >= bits(eb) else eb
        if bits(ea) == bits(eb) and is_signed(ea) != is_signed(eb):
            result = ea if is_signed(ea) else eb
    return with_lanes(result, la)


def min_value(dtype: str) -> int | float:
    base = to_numpy(dtype)
    if is_float(dtype):
        return float("-inf")
    if base.kind == "b":
        return 0
    return int(ml_dtypes.iinfo(base).min)


def max_value(dtype: str) -> int | float:
    base = to_numpy(dtype)
    if is_float(dtype):
        return float("inf")
    if base.kind == "b":
        return 1
    return int(ml_dtypes.iinfo(base).max)


def known_dtype(value: object) -> str:
    """``value`` if it names an element type a tensor can have (read from a file), else a ``ValueError``."""
    if not isinstance(value, str) or value not in SCALAR_DTYPES or value == "handle":
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise ValueError(f"unknown tensor dtype {shown}")
    return value
