"""Factors of extents: the divisors, powers of two and roundings that schedules, templates and tuning spaces choose
tiles from. One home for each, so that a schedule and the template tuning it agree on what a tile may be."""

from __future__ import annotations

import math


def divisors(n: int) -> list[int]:
    """The positive divisors of ``n``, ascending."""
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def largest_divisor(n: int, limit: int) -> int:
    """The largest divisor of ``n`` that is at most ``limit`` (at least 1)."""
    return max(d for d in divisors(n) if d <= max(1, limit))


def pow2_divisor(n: int, limit: int) -> int:
    """The largest power of two that divides ``n`` and is at most ``limit`` (at least 1)."""
    result = 1
    while result * 2 <= limit and n % (result * 2) == 0:
        result *= 2
    return result


def powers_of_two(low: int, high: int) -> list[int]:
    """The powers of two from ``low`` to ``high``, ascending."""
    return [1 << p for p in range(high.bit_length()) if low <= (1 << p) <= high]


def ceil_power_of_two(value: int) -> int:
    """The smallest power of two at least ``value`` (1 for values up to 1)."""
    return 1 << max(0, (max(1, value) - 1).bit_length())
