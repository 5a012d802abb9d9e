"""A bounded, thread-safe cache that drops its least recently used entries: the one rule for every cache of
compiled code in a long-lived process (``build_cache``, the graph compiler's kernels)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRUCache(Generic[K, V]):
    """At most ``capacity()`` entries (read at every insertion, so a changed setting applies at once); ``get``
    marks an entry used, ``put`` drops the least recently used entries beyond the capacity."""

    def __init__(self, capacity: Callable[[], int]) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        self.evictions = 0

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            limit = max(0, self.capacity())
            while len(self._entries) > limit:
                self._entries.popitem(last=False)
                self.evictions += 1

    def remove_if(self, predicate: Callable[[K], bool]) -> None:
        with self._lock:
            for key in [k for k in self._entries if predicate(k)]:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
