"""Reject integer division or modulo by the constant zero.

No rewrite: raises ``DivisionByZeroError`` naming the first offending expression. Run before and after simplification
(simplification never folds a division by zero, but it can expose one, as in ``x // (n - n)``).
"""

from __future__ import annotations

from tcomp.ir import dtype as dt
from tcomp.ir import expr as E
from tcomp.ir.functor import Visitor
from tcomp.ir.stmt import PrimFunc


class DivisionByZeroError(ValueError):
    """Integer division or modulo by the constant zero in the program."""


class _Finder(Visitor):
    def visit_BinaryOp(self, node: E.BinaryOp) -> None:
        self.generic_visit(node)
        if isinstance(node, (E.Div, E.Mod, E.FloorDiv, E.FloorMod)) and not dt.is_float(node.dtype):
            if E.is_const_int(node.b, 0):
                raise DivisionByZeroError(f"integer division by the constant zero in {node}")


def check_division(func: PrimFunc) -> PrimFunc:
    """Raise if ``func`` divides an integer by the constant zero; return ``func`` unchanged otherwise."""
    _Finder().visit(func.body)
    return func
