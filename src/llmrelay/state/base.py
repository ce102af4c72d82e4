"""What every state store offers, and the helpers the stores share.

A store is a key-value map with expiry (the response cache uses only that) plus, for the shared
backend, atomic scripts (the rate limiter, breakers and budget ledger use those; see
``redis_store.py``). Stores raise only :class:`~llmrelay.errors.StateStoreError` (or
``ConfigurationError`` for bad settings): the layers above decide whether a failing store fails
open or closed.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigurationError, StateStoreError, finite, shown

if TYPE_CHECKING:
    from ..providers.table import Secret

__all__ = [
    "FailMode",
    "Store",
    "ThrottledWarning",
    "check_fail_mode",
    "check_positive",
    "check_ttl",
    "hash_tag",
    "key_digest",
    "key_id",
    "redact_url",
    "refused",
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
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not finite(ttl):
        raise ConfigurationError(
            f"{what} must be a positive number of seconds or None (no expiry), not {shown(ttl)}"
        )
    if ttl <= 0:
        raise ConfigurationError(
            f"{what} must be a positive number of seconds, not {ttl!r}: a ttl of {ttl!r} would "
            "store nothing. Use None for entries that never expire, or use_cache=False / "
            "no_store=True to skip the cache"
        )
    return float(ttl)


def check_positive(value: object, what: str, *, integer: bool = False, zero: bool = False) -> None:
    """A ConfigurationError naming ``what`` unless ``value`` is a finite number of seconds
    greater than 0 (``zero``: or equal to 0), or with ``integer`` a whole number."""
    ok = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and ((isinstance(value, int) and integer) or (not integer and finite(value)))
        and (value >= 0 if zero else value > 0)
    )
    if not ok:
        kind = "a whole number" if integer else "a number of seconds"
        raise ConfigurationError(
            f"{what} must be {kind} {'>=' if zero else '>'} 0, not {shown(value)}"
        )


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


#: API key -> (SHA-256, its first 16 hex digits); bounded, so odd use cannot grow it forever.
_KEY_HASHES: dict[str, tuple[bytes, str]] = {}


def _key_hashes(api_key: Secret | None) -> tuple[bytes, str] | None:
    key = api_key.get() if api_key is not None else ""
    if not key:
        return None
    hashes = _KEY_HASHES.get(key)
    if hashes is None:  # hashing costs about a microsecond: once per key, not once per call
        digest = hashlib.sha256(key.encode()).digest()
        hashes = (digest, digest[:8].hex())
        if len(_KEY_HASHES) < 1024:
            _KEY_HASHES[key] = hashes
    return hashes


def key_digest(api_key: Secret | None) -> bytes | None:
    """The SHA-256 of an API key (None without one): how the layers tell keys apart -- cache
    entries, rate-limit scopes, budgets -- without ever storing a key."""
    hashes = _key_hashes(api_key)
    return None if hashes is None else hashes[0]


def key_id(api_key: Secret | None) -> str | None:
    """An API key's name in shared state: the first 16 hex digits of its SHA-256."""
    hashes = _key_hashes(api_key)
    return None if hashes is None else hashes[1]


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


def refused(what: str, exc: StateStoreError) -> StateStoreError:
    """The error of a layer that fails closed: ``what`` (e.g. ``"rate limits"``) cannot be
    checked while the store fails, so the call is refused. Raise it ``from exc``."""
    return StateStoreError(
        f"{what} cannot be checked, so the call is refused (on_store_error='closed'): {exc.message}"
    )


class ThrottledWarning:
    """Logs a warning at most once a minute: a layer that fails open warns that its store
    fails without flooding the log with one line per call."""

    __slots__ = ("_at", "_log")

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._at = -math.inf

    def __call__(self, msg: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._at >= 60.0:
            self._at = now
            self._log.warning(msg, *args)
