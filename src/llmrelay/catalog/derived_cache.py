"""The registry's cache of derived data (prices, layer lookups): bounded, and never holding a
value computed across a change.

Its keys include model names callers choose (a gateway client may name any model; unknown
ones are remembered as unknown), so it cannot grow with them: it holds only what can be
computed again, and starts afresh when full. Reads are plain ``dict`` reads.

A change to the registry clears it; a value computed while another thread changed the registry
may describe the old catalog, so a computation reads :attr:`DerivedCache.generation` before it
reads the registry and stores with :meth:`DerivedCache.put`, which drops the value when the
cache was cleared since.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["MAX_ENTRIES", "DerivedCache"]

#: Entries kept at most (a few per model and base URL in use: far above any real catalog).
MAX_ENTRIES = 50_000


class DerivedCache(dict[Any, Any]):
    """A ``dict`` that clears itself before a new key would pass :data:`MAX_ENTRIES`, and
    counts its clearings (:attr:`generation`)."""

    __slots__ = ("_count", "_load", "_lock")

    def __init__(self, load: Callable[[], None] | None = None) -> None:
        super().__init__()
        self._count = 0
        self._load = load
        self._lock = threading.RLock()

    @property
    def generation(self) -> int:
        """Clearings so far, once the registry is loaded (its loading clears the cache too):
        read it before computing a value from the registry, and store with :meth:`put`."""
        if self._load is not None:
            self._load()
        return self._count

    def __setitem__(self, key: Any, value: Any) -> None:
        if len(self) >= MAX_ENTRIES and key not in self:
            self.clear()
        dict.__setitem__(self, key, value)

    def clear(self) -> None:
        with self._lock:
            self._count += 1
            dict.clear(self)

    def put(self, key: Any, value: Any, generation: int) -> None:
        """Remember ``value``, computed from the registry as it was at ``generation``, unless
        the registry changed since (then it is only used by the call that computed it)."""
        with self._lock:
            if self._count == generation:
                self[key] = value
