"""Constants that the compilations of one model share.

A ``SpecializingExecutor`` compiles its model once per input shape (a decoder once per length of its key/value
cache, an encoder once per sequence length). Each compilation reads the same weights from the model's file and
derives the same constants from them: weights packed for the matrix-vector and GEMM kernels, query, key and value
weights merged, transposes and layout changes folded. Done per compilation, a 500 MB decoder took 500 MB more
memory and a second and a half more for every new length. ``SharedConstants`` holds each of them once:

- ``derive(key, sources, compute)``: the result of ``compute()`` for ``key`` computed from the arrays ``sources``,
  computed the first time and the very same arrays after that. The entry holds its sources, so their identities
  (part of the key) are not reused while it lives: a constant derived from the same objects by the same rule is
  the same constant. Sources of at most ``SMALL_BYTES`` are keyed by their value instead (scalars and zero points,
  which each import makes anew). A key that cannot be hashed is not shared. Results are read-only arrays (a pass
  that wrote into one would change every specialization).
- ``use(user)``: the compilation the following ``derive`` calls serve (a specialization's key); ``release(user)``
  when that compilation is dropped: entries no live compilation used are dropped with it.

Passes take ``constants`` (``SharedConstants | None``) and call ``derive(constants, ...)``; with ``None`` (a model
compiled once) it simply computes.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

T = TypeVar("T", np.ndarray, tuple[np.ndarray, ...])
SMALL_BYTES = 64  # sources up to this size are keyed by value, larger ones by identity


@dataclass
class _Entry:
    sources: tuple[np.ndarray, ...]  # held so that the identities in the key stay theirs
    value: np.ndarray | tuple[np.ndarray, ...]
    users: set[Hashable] = field(default_factory=set)


class SharedConstants:
    """See the module docstring."""

    def __init__(self) -> None:
        self._entries: dict[Hashable, _Entry] = {}
        self._user: Hashable = None
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        """The bytes of the constants held."""
        return sum(_nbytes(entry.value) for entry in self._entries.values())

    @contextmanager
    def use(self, user: Hashable) -> Iterator[None]:
        """The ``derive`` calls inside serve compilation ``user``."""
        previous, self._user = self._user, user
        try:
            yield
        finally:
            self._user = previous

    def release(self, user: Hashable) -> None:
        """Compilation ``user`` is dropped: so are the constants no other compilation used."""
        for key in list(self._entries):
            entry = self._entries[key]
            entry.users.discard(user)
            if not entry.users:
                del self._entries[key]

    def holds(self, key: Hashable, sources: Sequence[np.ndarray]) -> bool:
        """Whether ``derive`` would take a constant computed before instead of computing it."""
        try:
            return (key, tuple(_identity(source) for source in sources)) in self._entries
        except TypeError:
            return False

    def derive(self, key: Hashable, sources: Sequence[np.ndarray], compute: Callable[[], T]) -> T:
        full = (key, tuple(_identity(source) for source in sources))
        try:
            entry = self._entries.get(full)
        except TypeError:  # a key with a value that has no hash (an array attribute): not shared
            return compute()
        if entry is None:
            self.misses += 1
            entry = _Entry(tuple(sources), _read_only(compute()))
            self._entries[full] = entry
        else:
            self.hits += 1
        entry.users.add(self._user)
        return entry.value  # type: ignore[return-value]


def derive(constants: SharedConstants | None, key: Hashable, sources: Sequence[np.ndarray],
           compute: Callable[[], T]) -> T:
    """``compute()``, or the constant ``constants`` holds for ``key`` and ``sources`` (see the module docstring)."""
    if constants is None:
        return compute()
    return constants.derive(key, sources, compute)


def _identity(source: np.ndarray) -> Hashable:
    """What stands for a source in a key: its identity, or for a small array (``SMALL_BYTES``) its value. An import
    makes its small constants anew (a zero point reshaped to a scalar, a constant 0), so a constant derived from one
    would otherwise never be shared."""
    if source.nbytes <= SMALL_BYTES:
        return ("value", source.dtype.str, source.shape, source.tobytes())
    return id(source)


def _read_only(value: T) -> T:
    for array in (value if isinstance(value, tuple) else (value,)):
        array.setflags(write=False)
    return value


def _nbytes(value: np.ndarray | tuple[np.ndarray, ...]) -> int:
    return sum(int(a.nbytes) for a in (value if isinstance(value, tuple) else (value,)))
