"""The response cache (seed 004's caching, seed 001's caching strategies): the engine's
``CacheLayer``.

.. code-block:: python

    client = llmrelay.Client(cache=True)                       # in memory, default TTL
    client = llmrelay.Client(cache=ResponseCache(ttl=600, namespace="search"))
    client.chat("openai/gpt-4o-mini", "hi", cache_ttl=60)       # per call: ttl,
    client.chat("openai/gpt-4o-mini", "hi", use_cache=False)    # skip it,
    client.chat("openai/gpt-4o-mini", "hi", no_store=True)      # read but do not store

**Off unless asked for**, as in LiteLLM: ``Client()`` caches only with ``cache=...`` or
``[cache] enabled = true`` in ``llmrelay.toml``. ``LLMManager`` caches by default (seed 004).

**Exact match.** The key is a SHA-256 of the request exactly as the provider would receive it
-- the adapter builds it: method, URL and body, so the model, every message, every generation
parameter, the tools and the response schema are in it; HTTP headers are not, and the API key
never is -- together with the **scope**: the call's ``tenant``, else a hash of the API key, so
two tenants (or two keys) never share an entry. For backends without HTTP (``TestModel``,
``FunctionModel``, registered functions) the model's identity, messages and parameters are
hashed. A streamed call and a plain call of the same request share their entry: streams are
stored as their final response and replayed as a stream. An answer is stored under the key of
the call's primary model, whichever candidate of the fallback chain produced it.

**Never served**: errors and answers that ended in an error are never stored; partial or cut
streams never reach the cache (the engine stores only complete responses); an entry that fails
to decode is deleted and counted as a miss (``stats.corrupt``).

**Store**: in process (``MemoryStore``, an LRU), a SQLite file, or Redis (shared by every
process: one round trip per hit). The cache **fails open**: if the store fails, the call
behaves as a miss and its answer is not stored; a warning is logged at most once a minute and
``stats.errors`` counts the failures. A hit costs nothing: ``Response.cost`` of a hit is $0,
and what the original answer cost is added to ``stats.saved_cost_usd``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..catalog.costs import Cost
from ..core.codec import dumps, loads, response_from_dict, response_to_dict
from ..errors import ConfigurationError, InvalidRequestError, StateStoreError
from ..state.base import Store, ThrottledWarning, check_ttl, key_digest
from ..types import ChatRequest, Response

if TYPE_CHECKING:
    from ..core.layers import CallContext
    from ..providers.backends import Backend
    from ..providers.table import Deployment

__all__ = [
    "DEFAULT_TTL",
    "CacheStats",
    "ResponseCache",
]

log = logging.getLogger("llmrelay.cache")

#: Seconds an entry lives when neither the cache nor the call says otherwise.
DEFAULT_TTL = 3600.0
_FREE = Cost(0.0, True, 0.0, 0.0)


@dataclass(slots=True)
class CacheStats:
    hits: int = 0
    misses: int = 0
    stores: int = 0
    #: Store failures (the cache failed open).
    errors: int = 0
    #: Entries that failed to decode (deleted, counted as misses).
    corrupt: int = 0
    #: What the answers served from the cache cost when they were first produced.
    saved_cost_usd: float = 0.0
    saved_tokens: int = 0

    @property
    def hit_rate(self) -> float:
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "cache_hits": self.hits,
            "cache_misses": self.misses,
            "cache_hit_rate": self.hit_rate,
            "cache_stores": self.stores,
            "cache_errors": self.errors,
            "cache_corrupt": self.corrupt,
            "saved_cost_usd": self.saved_cost_usd,
            "saved_tokens": self.saved_tokens,
        }


# --------------------------------------------------------------------------- encoding

#: The format of the entries this version writes: ``{"c": 3, "r": <codec record>, "saved":
#: <cost of the original answer or null>, "at": <unix time stored>}``. Entries of format 2 (a
#: compact list, written before the codec) are still read.
_FORMAT = 3
_LEGACY_FORMAT = 2


def _encode(resp: Response, saved: float | None, at: float) -> bytes:
    """The stored entry. What described the call that stored the answer rather than the answer
    (alias, latencies, total usage, cost) is left out: the call served from it sets its own."""
    r = response_to_dict(resp)
    r["alias"] = r["time_to_first_token_s"] = r["total_usage"] = r["cost"] = None
    r["latency_s"] = 0.0
    return dumps({"c": _FORMAT, "r": r, "saved": saved, "at": at})


def _decode(raw: bytes) -> tuple[Response, float | None]:
    """An entry back into a Response and what it cost first; ``InvalidResponseError`` (or
    ``ValueError``) when it is not a valid entry."""
    e = loads(raw)
    if type(e) is dict and e.get("c") == _FORMAT and len(e) == 4:
        resp, saved = response_from_dict(e["r"]), e["saved"]
    elif type(e) is list and len(e) == 13 and e[0] == _LEGACY_FORMAT:
        resp, saved = response_from_dict(_legacy_record(e)), e[11]
    else:
        raise ValueError("not a cache entry of a known format")
    if saved is not None and (type(saved) not in (int, float) or not math.isfinite(saved)):
        raise ValueError("bad cost")
    return resp, saved


def _legacy_record(e: list[Any]) -> dict[str, Any]:
    """A format-2 entry (``[2, text, [[id, name, args]], finish, raw finish, [5 counts],
    provider, model, id, request_id, adjusted, saved, at]``) as a codec record."""
    _, text, calls, finish, raw_finish, u, provider, model, rid, request_id, adjusted, _, _ = e
    if type(u) is not list or len(u) != 5 or type(calls) is not list:
        raise ValueError("bad usage or tool_calls")
    for c in calls:
        if type(c) is not list or len(c) != 3:
            raise ValueError("bad tool call")
    return {
        "v": 1,  # the codec reads version 1 records (no reasoning, no signatures)
        "text": text,
        "tool_calls": [{"id": c[0], "name": c[1], "arguments": c[2]} for c in calls],
        "finish_reason": finish,
        "raw_finish_reason": raw_finish,
        "usage": {
            "input_tokens": u[0],
            "output_tokens": u[1],
            "cached_tokens": u[2],
            "cache_write_tokens": u[3],
            "reasoning_tokens": u[4],
            "estimated": False,
        },
        "total_usage": None,
        "provider": provider,
        "model": model,
        "alias": None,
        "id": rid,
        "request_id": request_id,
        "latency_s": 0.0,
        "time_to_first_token_s": None,
        "cost": None,
        "cache_hit": False,
        "adjusted_params": adjusted,
    }


def _saved_cost(ctx: CallContext) -> float | None:
    """What the stored answer cost: its successful attempt's price, when known."""
    for a in reversed(ctx.trace):
        if a.outcome == "success":
            return a.cost_usd
    return None


# --------------------------------------------------------------------------- keys


def _scope(dep: Deployment, ctx: CallContext) -> bytes:
    """The tenant, else a hash of the API key."""
    tenant = ctx.tenant
    if tenant is not None:
        return b"t:" + tenant.encode()
    digest = key_digest(dep.api_key)
    return b"-" if digest is None else b"k:" + digest[:16]


def _identity(backend: Any, dep: Deployment) -> str:
    """What names a network-free backend: the deployment, its class, its name, its function."""
    cls = type(backend)
    parts = [dep.label, f"{cls.__module__}.{cls.__qualname__}", str(getattr(backend, "name", ""))]
    fn = getattr(backend, "fn", None) or getattr(backend, "_fn", None)
    if fn is not None:
        parts.append(
            f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"
        )
    return "|".join(parts)


class ResponseCache:
    """Exact-match response cache over a :class:`~llmrelay.state.Store` (see module docs).

    ``ttl``: seconds an entry lives (``None``: until evicted or cleared; 0 or less is a
    ConfigurationError). ``namespace`` separates caches sharing one store (``clear()`` empties
    only its own namespace). Without a store, entries live in process (``max_entries`` LRU).
    """

    def __init__(
        self,
        store: Store | None = None,
        *,
        ttl: float | None = DEFAULT_TTL,
        namespace: str = "default",
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ttl = check_ttl(ttl)
        if not isinstance(namespace, str) or not namespace.strip():
            raise ConfigurationError(f"namespace must be a non-empty string, not {namespace!r}")
        if store is None:
            from ..state.memory import MemoryStore

            store = MemoryStore(max_entries)
        elif not isinstance(store, Store):
            raise ConfigurationError(
                f"store must be a llmrelay.state store (memory, SQLite or Redis), not "
                f"{type(store).__name__}"
            )
        self.store = store
        self.namespace = namespace
        self.clock = clock
        self._prefix = f"{store.prefix}cache:{namespace}:"
        self._get_now: Callable[[str], bytes | None] | None = getattr(store, "get_now", None)
        self.stats = CacheStats()
        self._warn_store = ThrottledWarning(log)

    def __repr__(self) -> str:
        return f"ResponseCache(namespace={self.namespace!r}, ttl={self.ttl}, store={self.store!r})"

    # ------------------------------------------------------------------ the layer

    def key(
        self, req: ChatRequest, dep: Deployment, backend: Backend, ctx: CallContext
    ) -> str | None:
        ttl = ctx.opts.cache_ttl
        if ttl is not None:
            try:
                check_ttl(ttl, "cache_ttl")
            except ConfigurationError as exc:
                raise InvalidRequestError(exc.message) from None
        h = hashlib.sha256(_scope(dep, ctx))
        h.update(b"\0")
        adapter = getattr(backend, "adapter", None)
        try:
            if adapter is not None:
                if req.stream:  # a stream and a plain call share the entry
                    req = ChatRequest(req.messages, req.params, False, req.adjusted, req.reasoning)
                http = adapter.build_request(req, dep)
                url = http.url
                if dep.api_key is not None and dep.api_key.get():
                    url = url.replace(dep.api_key.get(), "")
                h.update(f"{http.method} {url}\0".encode())
                h.update(http.body or b"")
            else:
                h.update(_identity(backend, dep).encode())
                h.update(b"\0")
                h.update(dumps([req.messages, req.params], sort_keys=True))
        except Exception:
            return None  # the request cannot be built; the call itself reports why
        return self._prefix + h.hexdigest()

    async def get(self, key: str, ctx: CallContext) -> Response | None:
        stats = self.stats
        try:
            get_now = self._get_now
            raw = get_now(key) if get_now is not None else await self.store.get(key)
        except StateStoreError as exc:
            stats.errors += 1
            stats.misses += 1
            self._warn(exc)
            return None
        if raw is None:
            stats.misses += 1
            return None
        try:
            resp, saved = _decode(raw)
        except Exception:
            stats.corrupt += 1
            stats.misses += 1
            try:
                await self.store.delete(key)
            except StateStoreError as exc:
                self._warn(exc)
            return None
        stats.hits += 1
        stats.saved_tokens += resp.usage.total_tokens
        if saved is not None:
            stats.saved_cost_usd += saved
        resp.cost = _FREE
        return resp

    async def put(self, key: str, resp: Response, ctx: CallContext) -> None:
        if resp.finish_reason == "error" or resp.cache_hit:
            return
        ttl = ctx.opts.cache_ttl if ctx.opts.cache_ttl is not None else self.ttl
        try:
            data = _encode(resp, _saved_cost(ctx), self.clock())
        except TypeError:
            self.stats.errors += 1
            return
        try:
            await self.store.set(key, data, ttl)
        except StateStoreError as exc:
            self.stats.errors += 1
            self._warn(exc)
            return
        self.stats.stores += 1

    # ------------------------------------------------------------------ management

    async def clear(self) -> int:
        """Delete every entry of this cache's namespace; returns how many were deleted.
        Raises StateStoreError if the store cannot be reached."""
        return await self.store.clear(self._prefix)

    async def aclose(self) -> None:
        """Close this event loop's store connections."""
        await self.store.aclose()

    def _warn(self, exc: StateStoreError) -> None:
        self._warn_store("the response cache is bypassed while its store fails: %s", exc.message)
