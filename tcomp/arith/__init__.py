"""Arithmetic analysis: simplification, constant bounds, symbolic intervals.

``simplify(e, bounds)`` rewrites an expression into a canonical, simpler equivalent; ``const_int_bound`` gives
constant bounds; ``can_prove`` decides conditions; ``eval_interval`` computes symbolic ranges; an ``Analyzer`` holds
variable bounds across calls. ``bounds`` always maps a ``Var`` (by identity) to an inclusive ``(lo, hi)``.
"""

from tcomp.arith.analyzer import Analyzer, can_prove, const_int_bound, declared_bounds, declared_upper_bound, simplify
from tcomp.arith.evaluate import evaluate
from tcomp.arith.int_bound import Bounds
from tcomp.arith.interval import IntervalSet, eval_interval

__all__ = [
    "Analyzer",
    "Bounds",
    "IntervalSet",
    "can_prove",
    "const_int_bound",
    "declared_bounds",
    "declared_upper_bound",
    "eval_interval",
    "evaluate",
    "simplify",
]
