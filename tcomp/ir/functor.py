"""Visitors and mutators over expressions and statements, dispatching on the node class.

A subclass handles a node kind by defining ``visit_<ClassName>``; every other node gets the generic treatment,
which walks the node's ``Expr``/``Stmt`` children (fields holding a node or a tuple of nodes). ``Mutator`` returns
the very same object when no child changed, so passes can tell cheaply whether they did anything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields, is_dataclass, replace
from typing import Any

from tcomp.ir import expr as E
from tcomp.ir.expr import CommReducer, Expr, IterVar, Reduce, Var, convert
from tcomp.ir.stmt import Stmt

Node = Expr | Stmt
_NODE_TYPES = (Expr, Stmt)

_FIELD_NAMES: dict[type, tuple[str, ...] | None] = {}
_CHILD_FIELDS: dict[type, tuple[str, ...]] = {}
_SKIP_FIELDS = {"dtype", "name", "op", "kind", "lanes", "value_index", "message", "thread_tag", "annotations"}


def field_names(cls: type) -> tuple[str, ...] | None:
    """The field names of dataclass ``cls`` (None for any other class), looked up once per class."""
    if cls not in _FIELD_NAMES:
        _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls)) if is_dataclass(cls) else None
    return _FIELD_NAMES[cls]


def child_fields(cls: type) -> tuple[str, ...]:
    """Names of the fields of ``cls`` that may hold child nodes."""
    names = _CHILD_FIELDS.get(cls)
    if names is None:
        every = field_names(cls)
        if every is None:
            raise TypeError(f"{cls.__name__} is not an IR node (a dataclass)")
        names = tuple(name for name in every if name not in _SKIP_FIELDS)
        _CHILD_FIELDS[cls] = names
    return names


def children(node: Node) -> list[Node]:
    """The ``Expr``/``Stmt`` children of ``node``, in field order."""
    found: list[Node] = []
    for name in child_fields(type(node)):
        value = getattr(node, name)
        if isinstance(value, _NODE_TYPES):
            found.append(value)
        elif isinstance(value, tuple):
            found.extend(item for item in value if isinstance(item, _NODE_TYPES))
    return found


class Visitor:
    """Read-only traversal. Override ``visit_<ClassName>`` and call ``self.generic_visit(node)`` to recurse."""

    _dispatch: dict[type, Callable[..., Any]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._dispatch = {}

    def visit(self, node: Node) -> None:
        try:
            method = self._dispatch[type(node)]
        except (KeyError, AttributeError):
            method = self._method(type(node))
        if method is not None:
            method(self, node)
        else:
            self.generic_visit(node)

    @classmethod
    def _method(cls, node_cls: type) -> Callable[..., Any] | None:
        table = cls.__dict__.get("_dispatch")
        if table is None:
            table = {}
            cls._dispatch = table
        if node_cls not in table:
            table[node_cls] = _find_method(cls, node_cls)
        return table[node_cls]

    def generic_visit(self, node: Node) -> None:
        visit = self.visit
        for child in children(node):
            visit(child)


class Mutator:
    """Rewriting traversal. ``visit_<ClassName>`` returns the replacement node."""

    _dispatch: dict[type, Callable[..., Any]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._dispatch = {}

    def visit(self, node: Any) -> Any:
        try:
            method = self._dispatch[type(node)]
        except (KeyError, AttributeError):
            method = self._method(type(node))
        if method is not None:
            return method(self, node)
        return self.generic_visit(node)

    _method = classmethod(Visitor._method.__func__)  # type: ignore[attr-defined]

    def generic_visit(self, node: Any) -> Any:
        changes: dict[str, Any] = {}
        for name in child_fields(type(node)):
            old = getattr(node, name)
            if isinstance(old, _NODE_TYPES):
                new = self.visit(old)
            elif isinstance(old, tuple) and any(isinstance(x, _NODE_TYPES) for x in old):
                items = tuple(self.visit(x) if isinstance(x, _NODE_TYPES) else x for x in old)
                new = old if all(a is b for a, b in zip(items, old)) else items
            else:
                continue
            if new is not old:
                changes[name] = new
        if not changes:
            return node
        return replace(node, **changes)


def _find_method(cls: type, node_cls: type) -> Callable[..., Any] | None:
    for klass in node_cls.__mro__:
        method = getattr(cls, "visit_" + klass.__name__, None)
        if method is not None:
            return method
    return None


def post_order_visit(node: Node, callback: Callable[[Node], None]) -> None:
    """Call ``callback`` on every node below and including ``node``, children first."""
    stack: list[tuple[Node, bool]] = [(node, False)]
    while stack:
        current, expanded = stack.pop()
        if expanded:
            callback(current)
            continue
        stack.append((current, True))
        below = children(current)
        if isinstance(current, Reduce):
            below.extend(iv.var for iv in current.axis)
        for child in reversed(below):
            stack.append((child, False))


class _Substituter(Mutator):
    def __init__(self, mapping: Mapping[Var, Expr]) -> None:
        self.mapping = mapping

    def visit_Var(self, node: Var) -> Expr:
        return self.mapping.get(node, node)


def substitute(node: Any, mapping: Mapping[Var, Any]) -> Any:
    """Replace variables (keyed by identity) by expressions in an expression or statement."""
    if not mapping:
        return node

    converted = {var: convert(value) for var, value in mapping.items()}
    return _Substituter(converted).visit(node)


def combine_with(reducer: CommReducer, x: Expr, y: Expr) -> Expr:
    """``reducer``'s combination of ``x`` and ``y``: its result with ``lhs`` and ``rhs`` replaced by them."""
    return substitute(reducer.result, {reducer.lhs: x, reducer.rhs: y})


def free_vars(node: Node) -> list[Var]:
    """Variables used in ``node``, in order of first use, without duplicates."""
    seen: dict[int, Var] = {}

    def collect(n: Node) -> None:
        if isinstance(n, Var) and id(n) not in seen:
            seen[id(n)] = n

    post_order_visit(node, collect)
    return list(seen.values())


def uses_var(node: Node, variables: Any) -> bool:
    ids = {id(v.var if isinstance(v, IterVar) else v) for v in variables}
    found = False

    def check(n: Node) -> None:
        nonlocal found
        if isinstance(n, Var) and id(n) in ids:
            found = True

    post_order_visit(node, check)
    return found


def any_below(node: Node, predicate: Callable[[Node], bool]) -> bool:
    """Whether ``predicate`` holds for ``node`` or any node below it."""
    stack: list[Node] = [node]
    while stack:
        current = stack.pop()
        if predicate(current):
            return True
        stack.extend(children(current))
    return False


def may_fail(node: Node) -> bool:
    """Whether evaluating ``node`` may fail at run time: it reads memory (an index may be out of range) or divides
    integers by a divisor that may be zero. A select must evaluate only the branch it takes of such an expression
    (``if_then_else(b != 0, a // b, 0)``)."""
    return any_below(node, lambda n: isinstance(n, E.BufferLoad) or E.divides_by_maybe_zero(n))


def may_divide_by_zero(node: Node) -> bool:
    """Whether ``node`` holds an integer division or remainder whose divisor may be zero (``may_fail`` less the
    reads: a vector select can guard reads lane by lane with masked loads, not divisions)."""
    return any_below(node, E.divides_by_maybe_zero)


def contains(node: Node, node_type: type) -> bool:
    """Whether ``node`` or any node below it is an instance of ``node_type``."""
    return any_below(node, lambda n: isinstance(n, node_type))


