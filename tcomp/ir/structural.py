"""Structural equality and hashing of IR, up to a consistent renaming of variables and buffers.

``structural_equal(a, b)`` walks both trees together; the first time a variable (or buffer) of ``a`` meets one of
``b`` they are bound to each other, and every later meeting must agree. ``structural_hash`` numbers variables and
buffers in order of first appearance, so equal trees hash equally. Caches use the hash to find candidates and
``structural_equal`` to confirm them.
"""

from __future__ import annotations

import enum
import hashlib
from typing import Any

from tcomp.ir.buffer import Buffer
from tcomp.ir.expr import CommReducer, IterVar, Range, Var
from tcomp.ir.functor import field_names
from tcomp.ir.stmt import PrimFunc

_IDENTITY_TYPES = (Var, Buffer)
_SCALARS = (int, float, str, bool, type(None))


class _Equal:
    def __init__(self) -> None:
        self.forward: dict[int, Any] = {}
        self.backward: dict[int, Any] = {}

    def bind(self, a: Any, b: Any) -> bool:
        fa = self.forward.get(id(a))
        fb = self.backward.get(id(b))
        if fa is None and fb is None:
            self.forward[id(a)] = b
            self.backward[id(b)] = a
            return self.fields_equal(a, b, skip=("name",))
        return fa is b and fb is a

    def equal(self, a: Any, b: Any) -> bool:
        if a is b:
            return True
        if type(a) is not type(b):
            return False
        if isinstance(a, _IDENTITY_TYPES):
            return self.bind(a, b)
        if isinstance(a, tuple):
            return len(a) == len(b) and all(self.equal(x, y) for x, y in zip(a, b))
        if not isinstance(a, type) and field_names(type(a)) is not None:
            return self.fields_equal(a, b)
        if isinstance(a, float):
            return a == b or (a != a and b != b)
        return bool(a == b)

    def fields_equal(self, a: Any, b: Any, skip: tuple[str, ...] = ()) -> bool:
        for name in field_names(type(a)):  # type: ignore[union-attr]
            if name in skip:
                continue
            if not self.equal(getattr(a, name), getattr(b, name)):
                return False
        return True


def structural_equal(a: Any, b: Any) -> bool:
    """True when ``a`` and ``b`` are the same IR up to renaming of variables and buffers."""
    return _Equal().equal(a, b)


class _Hasher:
    def __init__(self) -> None:
        self.numbers: dict[int, int] = {}

    def key(self, node: Any) -> Any:
        cls = type(node)
        if cls in _SCALARS:
            return node
        if cls is tuple:
            return tuple([self.key(x) for x in node])
        if isinstance(node, _IDENTITY_TYPES):
            number = self.numbers.get(id(node))
            if number is not None:
                return ("ref", number)
            number = len(self.numbers)
            self.numbers[id(node)] = number
            body = tuple([self.key(getattr(node, name)) for name in field_names(cls) if name != "name"])
            return ("def", cls.__name__, number, body)
        if isinstance(node, tuple):
            return tuple([self.key(x) for x in node])
        if isinstance(node, enum.Enum):
            return node.value
        names = field_names(cls) if not isinstance(node, type) else None
        if names is not None:
            return (cls.__name__,) + tuple([self.key(getattr(node, name)) for name in names])
        if isinstance(node, (int, float, str, bool)):
            return node
        return ("opaque", cls.__name__, id(node))


def structural_key(node: Any) -> Any:
    """A hashable canonical form of ``node``; equal for structurally equal trees."""
    return _Hasher().key(node)


def structural_hash(node: Any) -> int:
    """A hash for in-process tables (Python's ``hash``: salted per process)."""
    return hash(structural_key(node))


def structural_digest(node: Any) -> str:
    """A hex digest of ``node``'s structure that every process computes alike (no salted ``hash``): for names that
    outlive the process, such as kernel symbols. Values of types the IR does not define (``opaque`` in
    ``structural_key``) count by identity, so a tree holding one has a digest of this process only."""
    return hashlib.blake2b(repr(structural_key(node)).encode(), digest_size=8).hexdigest()


__all__ = ["structural_digest", "structural_equal", "structural_hash", "structural_key", "PrimFunc", "Range", "IterVar",
           "CommReducer"]
