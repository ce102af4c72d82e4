"""Choosing the store and building the layers from configuration.

.. code-block:: toml

    [state]
    backend = "redis"                  # "memory" (default), "sqlite" or "redis"
    url = "redis://127.0.0.1:6379/0"   # redis; LLMRELAY_REDIS_URL overrides it
    path = "~/.cache/llmrelay/state.sqlite3"   # sqlite
    prefix = "llmrelay:"               # put in front of every key
    connect_now = false                # true: an unreachable Redis is an error at start
    timeout = 1.0                      # seconds per Redis operation
    retry_interval = 1.0               # after a failure, seconds before trying Redis again

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

``LLMRELAY_REDIS_URL`` alone selects Redis: every facade built afterwards (``llmrelay.Client()``
and the module-level functions, ``ModelHandler``, ``LLMClient``, ``LLMManager``, the CLI) then
shares its response cache (when caching is on), rate limits (when configured), circuit breakers
and budgets through that server. Without it and without a ``[state]`` table, state lives in
each process. An unreachable Redis is not an error at start unless ``connect_now = true``:
the layers fail open (cache, limits, breakers fall back to in-process) or closed (budgets) as
documented in ``llmrelay.state``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigFileError, ConfigurationError, StateStoreError
from ..state.base import Store, check_positive
from .file import error_at, file_settings

if TYPE_CHECKING:
    from ..reliability.breaker import BreakerRegistry
    from ..reliability.budgets import Budgets, Ledger
    from ..reliability.cache import ResponseCache
    from ..reliability.ratelimit import RateLimiter

__all__ = [
    "Layers",
    "StateSettings",
    "build_layers",
    "default_ledger",
    "from_config",
    "from_env",
    "open_store",
    "parse_state",
    "settings_from_config",
]

ENV_REDIS_URL = "LLMRELAY_REDIS_URL"
_BACKENDS = ("memory", "sqlite", "redis")
_STATE_KEYS = {"backend", "url", "path", "prefix", "connect_now", "timeout", "retry_interval"}
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


@dataclass(frozen=True, slots=True)
class StateSettings:
    """Where shared state lives (see the module docs for each field)."""

    backend: str = "memory"
    url: str | None = None
    path: str | None = None
    prefix: str = "llmrelay:"
    connect_now: bool = False
    timeout: float = 1.0
    retry_interval: float = 1.0

    def __post_init__(self) -> None:
        if self.backend not in _BACKENDS:
            raise ConfigurationError(
                f"state backend must be one of {', '.join(_BACKENDS)}, not {self.backend!r}"
            )
        if self.backend == "redis" and not self.url:
            raise ConfigurationError(
                "the redis state backend needs a url (redis://host:6379/0), in [state] url or "
                f"{ENV_REDIS_URL}"
            )
        if not isinstance(self.prefix, str):
            raise ConfigurationError(f"state prefix must be a string, not {self.prefix!r}")
        check_positive(self.timeout, "state timeout")
        check_positive(self.retry_interval, "state retry_interval", zero=True)


# --------------------------------------------------------------------------- reading config


def _file_table(section: str, known: set[str] | None) -> dict[str, Any]:
    table = file_settings(section)
    if known is not None:
        unknown = set(table) - known
        if unknown:
            raise _file_error(
                section,
                sorted(unknown)[0],
                f"unknown key(s) {', '.join(sorted(unknown))} in [{section}]; known keys: "
                f"{', '.join(sorted(known))}",
            )
    return table


def _file_error(section: str, key: str, message: str) -> ConfigFileError:
    return error_at(section, key, message)


def _typed(section: str, table: Mapping[str, Any], key: str, types: tuple[type, ...]) -> Any:
    v = table.get(key)
    if v is not None and (not isinstance(v, types) or (bool not in types and isinstance(v, bool))):
        want = " or ".join(t.__name__ for t in types)
        raise _file_error(section, key, f"{key} must be {want}, not {v!r}")
    return v


def settings_from_env() -> StateSettings | None:
    url = os.environ.get(ENV_REDIS_URL, "").strip()
    return StateSettings("redis", url=url) if url else None


def settings_from_config() -> StateSettings | None:
    """``[state]`` of the configuration file, with ``LLMRELAY_REDIS_URL`` winning; None when
    neither says anything."""
    table = _file_table("state", _STATE_KEYS)
    env = os.environ.get(ENV_REDIS_URL, "").strip()
    if not table and not env:
        return None
    kw: dict[str, Any] = {}
    for key, types in (
        ("backend", (str,)),
        ("url", (str,)),
        ("path", (str,)),
        ("prefix", (str,)),
        ("connect_now", (bool,)),
        ("timeout", (int, float)),
        ("retry_interval", (int, float)),
    ):
        v = _typed("state", table, key, types)
        if v is not None:
            kw[key] = v
    if env:
        kw["backend"], kw["url"] = "redis", env
    try:
        return StateSettings(**kw)
    except ConfigurationError as exc:
        if env:
            raise
        raise _file_error("state", "backend", exc.message) from None


def parse_state(value: str) -> StateSettings:
    """``"memory"``, a SQLite URL or a Redis URL as settings. SQLite URLs follow SQLAlchemy:
    ``sqlite:///state.db`` is relative to the working directory, ``sqlite:////abs/state.db``
    absolute."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"state must be a store URL or a Store, not {value!r}")
    v = value.strip()
    if v in ("memory", "memory://"):
        return StateSettings("memory")
    if v.startswith("sqlite://"):
        path = v[len("sqlite:///") :] if v.startswith("sqlite:///") else ""
        if not path:
            raise ConfigurationError(
                "a SQLite state URL needs a file: sqlite:///state.db (relative) or "
                "sqlite:////abs/path/state.db"
            )
        return StateSettings("sqlite", path=path)
    if v.startswith(("redis://", "rediss://", "unix://")):
        return StateSettings("redis", url=v)
    from ..state.base import redact_url

    raise ConfigurationError(
        f"unknown state {redact_url(v)!r}: use 'memory', 'sqlite:////path/to/state.db' or a Redis "
        "URL (redis://host:6379/0)"
    )


# --------------------------------------------------------------------------- stores

_stores: dict[StateSettings, Store] = {}
_stores_lock = threading.Lock()


def _default_sqlite_path() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "llmrelay" / "state.sqlite3")


def open_store(settings: StateSettings) -> Store:
    """The store for these settings, one per process (every facade shares it)."""
    store = _stores.get(settings)
    if store is not None:
        return store
    with _stores_lock:
        store = _stores.get(settings)
        if store is None:
            store = _new_store(settings)
            _stores[settings] = store
    return store


def _new_store(s: StateSettings) -> Store:
    if s.backend == "memory":
        from ..state.memory import MemoryStore

        return MemoryStore(prefix=s.prefix)
    if s.backend == "sqlite":
        from ..state.sqlite import SQLiteStore

        path = Path(s.path or _default_sqlite_path()).expanduser()
        if s.path is None:
            path.parent.mkdir(parents=True, exist_ok=True)
        return SQLiteStore(path, prefix=s.prefix)
    from ..state.redis_store import RedisStore

    assert s.url is not None
    store = RedisStore(s.url, prefix=s.prefix, timeout=s.timeout, retry_interval=s.retry_interval)
    if s.connect_now:
        from .._sync import run_sync

        try:
            run_sync(store.ping())
        except StateStoreError as exc:
            raise StateStoreError(
                f"cannot reach the Redis state store at start (connect_now is on): {exc.message}"
            ) from exc
    return store


def default_ledger(settings: StateSettings | None = None, **kw: Any) -> Ledger:
    """The budget ledger of the configured state: Redis when configured, else in memory."""
    if settings is None:
        settings = settings_from_config()
    if settings is None or settings.backend != "redis":
        return _ledger_for(None)
    return _ledger_for(open_store(settings), **kw)


def _ledger_for(store: Store | None, **kw: Any) -> Ledger:
    """A ledger in ``store`` when it is Redis (``kw`` are ``RedisLedger`` options), else one
    in this process (budgets in a SQLite or memory store stay in process)."""
    if store is not None and store.kind == "redis":
        from ..reliability.budgets_ledger import RedisLedger
        from ..state.redis_store import RedisStore

        assert isinstance(store, RedisStore)
        return RedisLedger(store, **kw)
    from ..reliability.budgets import MemoryLedger

    return MemoryLedger()


# --------------------------------------------------------------------------- layers


@dataclass(slots=True)
class Layers:
    """What a facade plugs into its engine."""

    store: Store | None = None
    cache: ResponseCache | None = None
    limiter: RateLimiter | None = None
    #: ``True`` means the engine's own in-process breakers.
    breakers: BreakerRegistry | bool = True
    budgets: Budgets | None = None

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
    from ..reliability.cache import DEFAULT_TTL, ResponseCache

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
        from ..state.memory import MemoryStore

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
    from ..reliability.ratelimit import RateLimiter

    if limits is False:
        return None
    if isinstance(limits, RateLimiter):
        return limits
    options = {k: v for k, v in table.items() if k in _LIMIT_OPTIONS}
    scopes = {k: v for k, v in table.items() if k not in _LIMIT_OPTIONS}
    if limits is None:
        if not table:
            return None
        from ..reliability.ratelimit import Limits

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
    from ..reliability.budgets import BudgetLimit, Budgets

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
        ledger = _ledger_for(store, on_store_error=table.get("on_store_error", "closed"))
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
    layers.cache = _cache_layer(cache, store, cache_table, cache_max_entries)
    layers.limiter = _limiter_layer(limits, store, limits_table)
    layers.budgets = _budgets_layer(store, budgets_table)
    if store is not None and store.kind == "redis":
        from ..reliability.breaker_shared import SharedBreakerRegistry
        from ..state.redis_store import RedisStore

        assert isinstance(store, RedisStore)
        bs = dict(breaker_settings or {"failure_threshold": 5, "recovery_timeout": 30.0})
        layers.breakers = SharedBreakerRegistry(store, **bs)
    elif breaker_settings is not None:
        from ..reliability.breaker import BreakerRegistry

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
