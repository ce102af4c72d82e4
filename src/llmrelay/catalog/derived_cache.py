"""What guards the registry's cache of derived data (prices, layer lookups): a bound, and no
value computed across a change.

Its keys include model names callers choose (a gateway client may name any model; unknown
ones are remembered as unknown), so it cannot grow with them: it holds only what can be
computed again, and starts afresh when full.

A change to the registry clears it; a value computed while another thread changed the registry
may describe the old catalog, so a computation reads :attr:`CacheGuard.generation` before it
reads the registry and stores with :meth:`CacheGuard.put`, which drops the value when the
cache was cleared since. Reads stay plain ``dict`` reads of ``registry.cache``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["MAX_ENTRIES", "CacheGuard"]

#: Entries kept at most (a few per model and base URL in use: far above any real catalog).
MAX_ENTRIES = 50_000


class CacheGuard:
    """Clears and stores into one registry's ``cache``, counting the clearings."""

    __slots__ = ("_cache", "_count", "_load", "_lock")

    def __init__(self, cache: dict[Any, Any], load: Callable[[], None]) -> None:
        self._cache = cache
        self._count = 0
        self._load = load
        self._lock = threading.Lock()

    @property
    def generation(self) -> int:
        """Clearings so far, once the registry is loaded (its loading clears the cache too):
        read it before computing a value from the registry, and store with :meth:`put`."""
        self._load()
        return self._count

    def clear(self) -> None:
        """Forget everything (the registry changed)."""
        with self._lock:
            self._count += 1
            self._cache.clear()

    def put(self, key: Any, value: Any, generation: int) -> None:
        """Remember ``value``, computed from the registry as it was at ``generation``, unless
        it changed since (then only the call that computed it uses it). A full cache starts
        afresh."""
        cache = self._cache
        with self._lock:
            if self._count != generation:
                return
            if len(cache) >= MAX_ENTRIES and key not in cache:
                self._count += 1
                cache.clear()
            cache[key] = value
