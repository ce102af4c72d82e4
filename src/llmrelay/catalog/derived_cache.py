"""The registry's cache of derived data (prices, layer lookups), bounded.

Its keys include model names callers choose (a gateway client may name any model; unknown
ones are remembered as unknown), so it cannot grow with them: it holds only what can be
computed again, and starts afresh when full. Reads are plain ``dict`` reads; only a store
(a miss) runs :meth:`DerivedCache.__setitem__`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_ENTRIES", "DerivedCache"]

#: Entries kept at most (a few per model and base URL in use: far above any real catalog).
MAX_ENTRIES = 50_000


class DerivedCache(dict[Any, Any]):
    """A ``dict`` that clears itself before a new key would pass :data:`MAX_ENTRIES`."""

    __slots__ = ()

    def __setitem__(self, key: Any, value: Any) -> None:
        if len(self) >= MAX_ENTRIES and key not in self:
            self.clear()
        dict.__setitem__(self, key, value)
