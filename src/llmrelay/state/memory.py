"""The in-process store: a bounded LRU map with expiry. Nothing is shared with other processes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .base import check_positive

__all__ = ["MemoryStore"]


class MemoryStore:
    """A thread-safe LRU of at most ``max_entries`` values, each with an optional expiry.

    Expired entries are dropped when read and, in bulk, when the map is full. ``clock`` is
    monotonic and injectable (tests).
    """

    kind = "memory"
    shared = False

    def __init__(
        self,
        max_entries: int = 10_000,
        *,
        prefix: str = "llmrelay:",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_positive(max_entries, "max_entries", integer=True)
        self.max_entries = max_entries
        self.prefix = prefix
        self.clock = clock
        # key -> (expires_at or None, value); insertion order is recency order.
        self._data: dict[str, tuple[float | None, bytes]] = {}
        self._lock = threading.Lock()

    def get_now(self, key: str) -> bytes | None:
        """``get`` without a coroutine (the cache's fast path)."""
        with self._lock:
            entry = self._data.pop(key, None)
            if entry is None:
                return None
            expires = entry[0]
            if expires is not None and expires <= self.clock():
                return None
            self._data[key] = entry  # most recently used goes last
            return entry[1]

    async def get(self, key: str) -> bytes | None:
        return self.get_now(key)

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        expires = None if ttl is None else self.clock() + ttl
        with self._lock:
            data = self._data
            data.pop(key, None)
            data[key] = (expires, value)
            if len(data) > self.max_entries:
                self._evict()

    def _evict(self) -> None:
        data = self._data
        now = self.clock()
        expired = [k for k, (exp, _) in data.items() if exp is not None and exp <= now]
        for k in expired:
            del data[k]
        while len(data) > self.max_entries:
            del data[next(iter(data))]  # least recently used

    async def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    async def clear(self, prefix: str) -> int:
        with self._lock:
            keys = [k for k in self._data if k.startswith(prefix)]
            for k in keys:
                del self._data[k]
            return len(keys)

    async def aclose(self) -> None:
        return None

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._data)}/{self.max_entries} entries)"
