"""Exact keys for expressions: hash-consing with variables and buffers compared by identity.

``structural_equal`` treats variables up to renaming, which is the wrong notion inside the simplifier (``x - y`` is
not zero). ``ExprKeys`` gives every expression a small integer such that two expressions get the same number exactly
when they are the same tree over the same ``Var``/``Buffer``/tensor objects. Keys are interned bottom-up, so a key
costs O(1) once the children have theirs. The table keeps every keyed node alive, so ``id`` values cannot be reused
while it lives.

``order_key`` gives a deterministic sort key (names, not ids) used to print sums and products in a stable order.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import fields
from typing import Any

from tcomp.ir import expr as E

OrderKey = tuple[Any, ...]


class ExprKeys:
    """Interning table from expressions to integer keys (identity-aware structural equality)."""

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[E.Expr, int]] = {}
        self._intern: dict[Hashable, int] = {}
        self._order: dict[int, tuple[E.Expr, OrderKey]] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def key(self, e: E.Expr) -> int:
        hit = self._by_id.get(id(e))
        if hit is not None:
            return hit[1]
        signature = self._signature(e)
        number = self._intern.get(signature)
        if number is None:
            number = len(self._intern)
            self._intern[signature] = number
        self._by_id[id(e)] = (e, number)
        return number

    def equal(self, a: E.Expr, b: E.Expr) -> bool:
        return a is b or self.key(a) == self.key(b)

    def _signature(self, e: E.Expr) -> Hashable:
        if isinstance(e, E.Var):
            return ("var", id(e))
        if isinstance(e, E.IntImm):
            return ("int", e.value, e.dtype)
        if isinstance(e, E.FloatImm):
            return ("float", repr(e.value), e.dtype)
        if isinstance(e, E.BinaryOp):
            return (type(e).__name__, e.dtype, self.key(e.a), self.key(e.b))
        if isinstance(e, E.Not):
            return ("not", e.dtype, self.key(e.a))
        if isinstance(e, E.Cast):
            return ("cast", e.dtype, self.key(e.value))
        if isinstance(e, E.Select):
            return ("select", e.dtype, self.key(e.condition), self.key(e.true_value), self.key(e.false_value))
        if isinstance(e, E.Ramp):
            return ("ramp", e.dtype, e.lanes, self.key(e.base), self.key(e.stride))
        if isinstance(e, E.Broadcast):
            return ("broadcast", e.dtype, e.lanes, self.key(e.value))
        if isinstance(e, E.Call):
            return ("call", e.op, e.kind, e.dtype, tuple(self.key(a) for a in e.args))
        if isinstance(e, E.BufferLoad):
            return ("bload", id(e.buffer), e.dtype, tuple(self.key(i) for i in e.indices))
        if isinstance(e, E.ProducerLoad):
            return ("pload", id(e.producer), e.dtype, tuple(self.key(i) for i in e.indices))
        if isinstance(e, E.Let):
            return ("let", id(e.var), e.dtype, self.key(e.value), self.key(e.body))
        return ("opaque", id(e))

    def order_key(self, e: E.Expr) -> OrderKey:
        """A deterministic, name-based sort key: ``(rank, label, children)``."""
        hit = self._order.get(id(e))
        if hit is not None:
            return hit[1]
        result = self._compute_order(e)
        self._order[id(e)] = (e, result)
        return result

    def _compute_order(self, e: E.Expr) -> OrderKey:
        if isinstance(e, E.IntImm):
            return (0, f"{e.value:+021d}", ())
        if isinstance(e, E.FloatImm):
            return (0, repr(e.value), ())
        if isinstance(e, E.Var):
            return (1, e.name, ())
        if isinstance(e, E.BufferLoad):
            return (2, "load:" + e.buffer.name, tuple(self.order_key(i) for i in e.indices))
        if isinstance(e, E.ProducerLoad):
            return (2, "load:" + str(getattr(e.producer, "name", "")), tuple(self.order_key(i) for i in e.indices))
        if isinstance(e, E.Call):
            return (3, "call:" + e.op, tuple(self.order_key(a) for a in e.args))
        children: list[OrderKey] = []
        for f in fields(e):
            value = getattr(e, f.name)
            if isinstance(value, E.Expr):
                children.append(self.order_key(value))
        return (4, type(e).__name__, tuple(children))


def same_tree(a: E.Expr, b: E.Expr) -> bool:
    """Exact equality of two arithmetic trees (variables by identity), without building keys.

    Handles constants, variables and the arithmetic/logic nodes; any other node is equal only to itself.
    Iterative, so deep sums compare without recursion.
    """
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if x is y:
            continue
        if type(x) is not type(y) or x.dtype != y.dtype:
            return False
        if isinstance(x, E.BinaryOp):
            assert isinstance(y, E.BinaryOp)
            stack.append((x.b, y.b))
            stack.append((x.a, y.a))
        elif isinstance(x, (E.IntImm, E.FloatImm)):
            assert isinstance(y, (E.IntImm, E.FloatImm))
            if x.value != y.value:
                return False
        elif isinstance(x, E.Select):
            assert isinstance(y, E.Select)
            stack.append((x.condition, y.condition))
            stack.append((x.true_value, y.true_value))
            stack.append((x.false_value, y.false_value))
        elif isinstance(x, E.Not):
            assert isinstance(y, E.Not)
            stack.append((x.a, y.a))
        elif isinstance(x, E.Cast):
            assert isinstance(y, E.Cast)
            stack.append((x.value, y.value))
        else:
            return False
    return True
