"""What every state store offers, and the helpers the stores share.

A store is a key-value map with expiry (the response cache uses only that) plus, for the shared
backend, atomic scripts (the rate limiter, breakers and budget ledger use those; see
``redis_store.py``). Stores raise only :class:`~llmrelay.errors.StateStoreError` (or
``ConfigurationError`` for bad settings): the layers above decide whether a failing store fails
open or closed.
"""

from __future__ import annotations

import math
from typing import Literal, Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigurationError

__all__ = [
    "FailMode",
    "Store",
    "check_fail_mode",
    "check_ttl",
    "hash_tag",
    "redact_url",
]

#: What a layer does when its store fails: ``"open"`` carries on without the store (the cache
#: misses, limits admit), ``"closed"`` refuses the call with ``StateStoreError``.
FailMode = Literal["open", "closed"]


@runtime_checkable
class Store(Protocol):
    """A key-value store with expiry. Keys are strings, values bytes."""

    #: ``"memory"``, ``"sqlite"`` or ``"redis"``.
    kind: str
    #: True when other processes see the same data (Redis; SQLite on one machine).
    shared: bool
    #: Prepended to every key the layers build (``"llmrelay:"`` by default).
    prefix: str

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        """Store ``value``; it expires after ``ttl`` seconds (never when None)."""
        ...

    async def delete(self, key: str) -> None: ...

    async def clear(self, prefix: str) -> int:
        """Delete every key starting with ``prefix``; return how many were deleted."""
        ...

    async def aclose(self) -> None:
        """Release this event loop's connections (the store stays usable)."""
        ...


def check_ttl(ttl: object, what: str = "ttl") -> float | None:
    """A TTL in seconds: a positive finite number, or None for "never expires"."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not math.isfinite(ttl):
        raise ConfigurationError(
            f"{what} must be a positive number of seconds or None (no expiry), not {ttl!r}"
        )
    if ttl <= 0:
        raise ConfigurationError(
            f"{what} must be a positive number of seconds, not {ttl!r}: a ttl of {ttl!r} would "
            "store nothing. Use None for entries that never expire, or use_cache=False / "
            "no_store=True to skip the cache"
        )
    return float(ttl)


def check_fail_mode(value: object, what: str) -> FailMode:
    if value not in ("open", "closed"):
        raise ConfigurationError(
            f"{what} must be 'open' (carry on without the store) or 'closed' (refuse the call), "
            f"not {value!r}"
        )
    return value


def hash_tag(text: str) -> str:
    """``text`` made safe inside a Redis Cluster hash tag (``{...}``): braces are replaced, so
    every key of one logical object hashes to the same slot."""
    return text.replace("{", "(").replace("}", ")")


def redact_url(url: str) -> str:
    """A store URL without its password (``redis://user:***@host:6379/0``)."""
    try:
        parts = urlsplit(url)
        if parts.password is None and "@" not in parts.netloc:
            return url
        host = parts.netloc.rpartition("@")[2]
    except ValueError:
        return "<unparseable URL>"
    user = parts.username or ""
    netloc = f"{user}:***@{host}" if parts.password is not None else f"{user}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
