"""Deep expression trees: retry an analysis with a larger recursion limit instead of failing.

The analyses recurse over expression trees; trees deeper than a few hundred levels (long unrolled sums) are rare, so
the common path pays nothing and only a ``RecursionError`` triggers the retry.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

DEEP_RECURSION_LIMIT = 50_000

T = TypeVar("T")


def deep(function: Callable[[], T]) -> T:
    """Run ``function``; on ``RecursionError`` run it again with the recursion limit raised to
    ``DEEP_RECURSION_LIMIT`` (restored afterwards)."""
    try:
        return function()
    except RecursionError:
        old = sys.getrecursionlimit()
        if old >= DEEP_RECURSION_LIMIT:
            raise
        sys.setrecursionlimit(DEEP_RECURSION_LIMIT)
        try:
            return function()
        finally:
            sys.setrecursionlimit(old)
