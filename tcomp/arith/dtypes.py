"""Memoized dtype queries: the simplifier asks them for every node, and ``tcomp.ir.dtype`` parses strings."""

from __future__ import annotations

from functools import cache

from tcomp.ir import dtype as _dt


@cache
def split_lanes(dtype: str) -> tuple[str, int]:
    return _dt.split_lanes(dtype)


@cache
def element(dtype: str) -> str:
    return _dt.element(dtype)


@cache
def lanes(dtype: str) -> int:
    return _dt.lanes(dtype)


@cache
def with_lanes(dtype: str, count: int) -> str:
    return _dt.with_lanes(dtype, count)


@cache
def is_float(dtype: str) -> bool:
    return _dt.is_float(dtype)


@cache
def is_int(dtype: str) -> bool:
    return _dt.is_int(dtype)


@cache
def is_bool(dtype: str) -> bool:
    return _dt.is_bool(dtype)


@cache
def is_signed(dtype: str) -> bool:
    return _dt.is_signed(dtype)


@cache
def bits(dtype: str) -> int:
    return _dt.bits(dtype)


@cache
def min_value(dtype: str) -> int | float:
    return _dt.min_value(dtype)


@cache
def max_value(dtype: str) -> int | float:
    return _dt.max_value(dtype)


@cache
def is_scalar_int(dtype: str) -> bool:
    """A one-lane signed or unsigned integer (not bool)."""
    return _dt.is_int(dtype) and _dt.lanes(dtype) == 1


@cache
def is_index(dtype: str) -> bool:
    """A one-lane signed integer of at least 32 bits: index arithmetic, where overflow is assumed not to happen.

    Narrower and unsigned integers wrap in practice, so only ring rules (``+ - *`` in the linear form) and decisions
    from sound (wrap-aware) bounds apply to them.
    """
    return _dt.is_signed(dtype) and _dt.bits(dtype) >= 32 and _dt.lanes(dtype) == 1


@cache
def wraps(dtype: str) -> bool:
    """Integer arithmetic in ``dtype`` may wrap around (unsigned or narrower than 32 bits)."""
    return _dt.is_int(dtype) and (not _dt.is_signed(dtype) or _dt.bits(dtype) < 32)


@cache
def widens(source: str, target: str) -> bool:
    """Whether every value of the integer (or bool) dtype ``source`` is one of the integer dtype ``target``'s: a
    cast from one to the other commutes with ``min``, ``max``, ``+`` and ``*`` of values that fit ``source``."""
    return not _dt.is_float(source) and _dt.is_int(target) and _dt.min_value(target) <= _dt.min_value(source) and \
        _dt.max_value(source) <= _dt.max_value(target)
