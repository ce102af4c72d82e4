"""The layers a facade plugs into its engine, built from its arguments and the configuration.

.. code-block:: toml

    [cache]
    enabled = true                     # off by default, as in LiteLLM
    ttl = 3600                         # seconds; per call: cache_ttl=
    namespace = "default"
    max_entries = 10000                # in-memory cache only

    [limits]
    wait = false                       # true: wait for room (up to max_wait / the deadline)
    max_wait = 60
    max_block = 60                     # longest pause a provider's rate-limit headers impose
    on_store_error = "open"
    [limits."openai/gpt-4o-mini"]
    rpm = 500
    tpm = 200000
    [limits."user:*"]
    rpm = 20

    [budgets]
    on_store_error = "closed"
    [[budgets.limit]]
    limit_usd = 5.0
    period = "day"
    scope = "user"

Where they keep their state is ``[state]`` (:mod:`llmrelay.settings.state`); this module opens
that store (:mod:`llmrelay.state.open`) and builds the response cache, rate limiter, circuit
breakers and budgets on it. It is loaded only by the facades that assemble an engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError
from ..reliability.breaker import BreakerRegistry
from ..reliability.breaker_shared import SharedBreakerRegistry
from ..reliability.budgets import BudgetLimit, Budgets
from ..reliability.budgets_ledger import ledger_for
from ..reliability.cache import DEFAULT_TTL, ResponseCache
from ..reliability.ratelimit import Limits, RateLimiter
from ..state.base import Store
from ..state.memory import MemoryStore
from ..state.open import open_store
from ..state.redis_store import RedisStore
from .state import (
    StateSettings,
    _file_error,
    _file_table,
    _typed,
    parse_state,
    settings_from_config,
    settings_from_env,
)

__all__ = ["Layers", "build_layers", "from_config", "from_env"]

_CACHE_KEYS = {"enabled", "ttl", "namespace", "max_entries"}
_LIMIT_OPTIONS = {
    "wait",
    "max_wait",
    "learn_from_headers",
    "max_block",
    "output_estimate",
    "on_store_error",
}
_BUDGET_OPTIONS = {"on_store_error", "unknown_cost", "limit"}


@dataclass(slots=True)
class Layers:
    """What a facade plugs into its engine."""

    store: Store | None = None
    cache: ResponseCache | None = None
    limiter: RateLimiter | None = None
    #: ``True`` means the engine's own in-process breakers.
    breakers: BreakerRegistry | bool = True
    budgets: Budgets | None = None
    #: ``[limits]``' options (wait, max_wait, ...), for a limiter made later.
    limit_options: Mapping[str, Any] | None = None

    def provider_limiter(self) -> RateLimiter:
        """A limiter for the rate limits providers declare (``Engine(limiter_factory=...)``):
        on this facade's store, with ``[limits]``' options."""
        return RateLimiter({}, store=self.store, **(self.limit_options or {}))

    def engine_kwargs(self) -> dict[str, Any]:
        return {
            "cache": self.cache,
            "limiter": self.limiter,
            "breakers": self.breakers,
            "budget": self.budgets,
        }

    async def aclose(self) -> None:
        """Close this event loop's store connections."""
        if self.store is not None:
            await self.store.aclose()


def _cache_layer(
    cache: Any, store: Store | None, table: Mapping[str, Any], max_entries: int | None = None
) -> ResponseCache | None:
    if cache is False:
        return None
    if isinstance(cache, ResponseCache):
        return cache
    if cache is None:
        enabled = _typed("cache", table, "enabled", (bool,))
        if not enabled:
            return None
    elif cache is not True:
        raise ConfigurationError(
            f"cache must be True, False or a ResponseCache, not {type(cache).__name__}"
        )
    ttl = table.get("ttl", DEFAULT_TTL)
    if "ttl" in table:
        _typed("cache", table, "ttl", (int, float))
    namespace = _typed("cache", table, "namespace", (str,)) or "default"
    if store is None:  # nothing configured: this facade's own in-memory LRU
        entries = max_entries or _typed("cache", table, "max_entries", (int,)) or 10_000
        store = MemoryStore(entries)
    try:
        return ResponseCache(store, ttl=ttl, namespace=namespace)
    except ConfigurationError as exc:
        if cache is None or "ttl" in table:
            raise _file_error("cache", "ttl", exc.message) from None
        raise


def _limiter_layer(
    limits: Any, store: Store | None, table: Mapping[str, Any]
) -> RateLimiter | None:
    if limits is False:
        return None
    if isinstance(limits, RateLimiter):
        return limits
    options = {k: v for k, v in table.items() if k in _LIMIT_OPTIONS}
    scopes = {k: v for k, v in table.items() if k not in _LIMIT_OPTIONS}
    if limits is None:
        if not table:
            return None
        for scope, value in scopes.items():  # locate a bad table before building
            try:
                Limits.coerce(value, f"[limits.{scope!r}]")
            except ConfigurationError as exc:
                raise _file_error("limits", scope, exc.message) from None
        try:
            return RateLimiter(scopes, store=store, **options)
        except (ConfigurationError, TypeError) as exc:
            raise _file_error(
                "limits", next(iter(table)), getattr(exc, "message", str(exc))
            ) from None
    if not isinstance(limits, Mapping):
        raise ConfigurationError(
            "limits must be a dict of scope -> limits, a RateLimiter or False, not "
            f"{type(limits).__name__}"
        )
    return RateLimiter(limits, store=store, **options)


def _budgets_layer(store: Store | None, table: Mapping[str, Any]) -> Budgets | None:
    if not table:
        return None
    entries = table.get("limit")
    if not isinstance(entries, list) or not entries:
        raise _file_error(
            "budgets", "limit", "[budgets] needs at least one [[budgets.limit]] table"
        )
    try:
        limits = []
        for e in entries:
            if not isinstance(e, Mapping):
                raise ConfigurationError("each [[budgets.limit]] must be a table")
            limits.append(BudgetLimit(**e))
        ledger = ledger_for(store, on_store_error=table.get("on_store_error", "closed"))
        return Budgets(limits, ledger=ledger, unknown_cost=table.get("unknown_cost", "deny"))
    except (ConfigurationError, TypeError) as exc:
        raise _file_error("budgets", "limit", getattr(exc, "message", str(exc))) from None


def build_layers(
    *,
    state: str | Store | StateSettings | None = None,
    cache: Any = None,
    limits: Any = None,
    breaker_settings: Mapping[str, Any] | None = None,
    cache_max_entries: int | None = None,
    settings_source: Callable[[], StateSettings | None] = settings_from_config,
    use_files: bool = True,
) -> Layers:
    """The layers of a facade: ``state``/``cache``/``limits`` as given, else as configured.

    ``cache``: ``True``, ``False``, a ``ResponseCache`` or None (``[cache] enabled``).
    ``limits``: a dict of scopes, a ``RateLimiter``, ``False`` or None (``[limits]``).
    """
    if isinstance(state, Store):
        store: Store | None = state
    else:
        if isinstance(state, str):
            settings: StateSettings | None = parse_state(state)
        elif isinstance(state, StateSettings) or state is None:
            settings = state if state is not None else settings_source()
        else:
            raise ConfigurationError(
                f"state must be a URL, a StateSettings or a Store, not {type(state).__name__}"
            )
        store = open_store(settings) if settings is not None else None
    cache_table = _file_table("cache", _CACHE_KEYS) if use_files else {}
    limits_table = _file_table("limits", None) if use_files else {}
    budgets_table = _file_table("budgets", _BUDGET_OPTIONS) if use_files else {}
    layers = Layers(store=store)
    layers.limit_options = {k: v for k, v in limits_table.items() if k in _LIMIT_OPTIONS}
    layers.cache = _cache_layer(cache, store, cache_table, cache_max_entries)
    layers.limiter = _limiter_layer(limits, store, limits_table)
    layers.budgets = _budgets_layer(store, budgets_table)
    if store is not None and store.kind == "redis":
        assert isinstance(store, RedisStore)
        bs = dict(breaker_settings or {"failure_threshold": 5, "recovery_timeout": 30.0})
        layers.breakers = SharedBreakerRegistry(store, **bs)
    elif breaker_settings is not None:
        layers.breakers = BreakerRegistry(**breaker_settings)
    return layers


def from_config(**kw: Any) -> Layers:
    """The layers as ``llmrelay.toml`` / ``LLMRELAY_CONFIG`` and ``LLMRELAY_REDIS_URL`` say."""
    return build_layers(**kw)


def from_env(**kw: Any) -> Layers:
    """The layers as the environment alone says (``LLMRELAY_REDIS_URL``; no file is read)."""
    kw.setdefault("settings_source", settings_from_env)
    kw.setdefault("use_files", False)
    return build_layers(**kw)
