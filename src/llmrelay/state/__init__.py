"""State that scales out: where the response cache, rate limits, circuit breakers and budgets
keep what they know.

Stores (all behind :class:`Store`):

- :class:`MemoryStore` -- in process (the default). Nothing is shared.
- :class:`SQLiteStore` -- one file, shared by the processes of one machine (used for the
  response cache; limits, breakers and budgets stay in process with it).
- :class:`RedisStore` -- one Redis server (``llmrelay[redis]``), shared by every process and
  host. Atomic operations are Lua scripts timed by Redis ``TIME``; keys of one logical object
  share a hash tag, so Redis Cluster works.

Choose one in ``llmrelay.toml`` (``[state] backend = "redis"``, ``url = ...``) or with
``LLMRELAY_REDIS_URL`` alone, which makes every facade share its state through that Redis
(:mod:`llmrelay.settings.state`). ``Client(state="redis://...")`` picks one for one client.

**When the store fails** -- the documented behaviour of each layer:

==================  =========================================================================
response cache      fails open: a miss, the answer is not stored (``stats.errors``)
rate limits         fail open by default (the call goes unlimited, a warning is logged);
                    ``on_store_error="closed"`` refuses calls with ``StateStoreError``
circuit breakers    fall back to each process's own in-process breaker
budgets             fail closed by default (``StateStoreError``); ``on_store_error="open"``
==================  =========================================================================

A Redis error never reaches the caller raw: where one must surface it is a
:class:`~llmrelay.errors.StateStoreError`. After a failure the Redis store waits
``retry_interval`` seconds (answering at once, without the network) and then tries again, so
sharing resumes by itself when Redis is back.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Store": "base",
    "FailMode": "base",
    "MemoryStore": "memory",
    "SQLiteStore": "sqlite",
    "RedisStore": "redis_store",
}

__all__ = [
    "FailMode",
    "MemoryStore",
    "RedisStore",
    "SQLiteStore",
    "Store",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'llmrelay.state' has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover
    from .base import FailMode, Store
    from .memory import MemoryStore
    from .redis_store import RedisStore
    from .sqlite import SQLiteStore
