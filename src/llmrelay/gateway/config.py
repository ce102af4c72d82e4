"""The gateway's ``[server]`` settings, the bind check, and the worker's garbage-collector tuning.

Why the collector is tuned: Python collects its youngest objects every 700 net allocations of
containers, and every object it holds (imports, the catalog, the app: ~45,000 in a started
worker) on every tenth of the next generation's runs. A streamed request allocates a few dozen
containers that live until it ends, so a worker under load ran a young collection every ~20
requests and a full one (~15 ms, a stall every request in flight waits out) every ~2,500:
~14 µs of CPU per streamed request, 4% of it (``benchmarks/RESULTS.md``, 2026-12-04 night).
Frozen at start (``gc.freeze``) the start-up objects are never traversed again; with a young
collection every :data:`GC_THRESHOLD` objects, the objects of finished requests are mostly
freed by reference counting before a collection sees them. Reference cycles are still
collected, only in larger batches.
"""

from __future__ import annotations

import gc
import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigurationError, shown
from ..settings.state import ENV_REDIS_URL, StateSettings
from .access import loopback_host as _loopback_host
from .policy import TeamBudget

__all__ = [
    "GC_MODES",
    "GC_THRESHOLD",
    "GatewaySettings",
    "check_bind",
    "check_workers",
    "team_budgets",
    "tune_gc",
]

#: Net new container objects between two young collections in a tuned worker (Python: 700).
GC_THRESHOLD = 10_000
GC_MODES = ("tuned", "python")


@dataclass(slots=True)
class GatewaySettings:
    """The ``[server]`` table."""

    host: str = "127.0.0.1"
    port: int = 4000
    #: Largest request body accepted, in bytes (413 past it).
    max_body_bytes: int = 4 * 1024 * 1024
    #: Where virtual keys live: a SQLite path or a ``postgresql://`` DSN (None: no keys).
    key_store: str | None = None
    #: ``LLMRELAY_ADMIN_KEY``: the key that may call anything (and is required to bind beyond
    #: loopback).
    admin_key: str | None = field(default=None, repr=False)
    #: Whose answers the response cache shares: ``"team"`` (the key's team, else the key),
    #: ``"key"`` or ``"shared"``.
    cache_scope: str = "team"
    #: Seconds in-flight requests get to finish after SIGTERM.
    shutdown_grace: float = 30.0
    #: Models listed by ``GET /v1/models`` (default: every known alias).
    models: tuple[str, ...] = ()
    #: Seconds a worker trusts what it read of a key: revocations and policy changes made
    #: anywhere take effect on every instance within this time.
    key_cache_ttl: float = 1.0
    #: Seconds a PostgreSQL key store may take to connect, run a query or give a pooled
    #: connection; past it the request is a 503 ``key_store_unavailable``, and for the next
    #: second requests get it at once (no new connection each).
    key_store_timeout: float = 5.0
    #: Seconds a client has to send its whole body once its headers arrived (408 past it).
    read_timeout: float = 30.0
    #: Seconds a client has to send a request's head (request line and headers), from the
    #: connection (its first request) or the head's first byte (later ones); closed past it.
    header_timeout: float = 15.0
    #: Serve ``GET /metrics`` without the admin key (it names keys, teams and models: by
    #: default, with an admin key set, only the admin key may read it).
    metrics_public: bool = False
    #: The event loop: ``"asyncio"`` or ``"uvloop"`` (installed by ``llmrelay[gateway]``).
    loop: str = "asyncio"
    #: Image/file URLs forwarded to the upstream: ``https`` | ``none`` | ``any`` (``media``).
    media_urls: str = "https"
    #: ``LLMRELAY_SIGNING_SECRET``: signs reasoning items (else the admin key; ``sealing``).
    signing_secret: str | None = field(default=None, repr=False)
    #: Python's cyclic garbage collector: ``"tuned"`` (what the worker holds at start is frozen
    #: out of collections, and a collection waits for :data:`GC_THRESHOLD` new objects) or
    #: ``"python"`` (the interpreter's defaults). See :func:`tune_gc`.
    gc: str = "tuned"
    #: Team budgets (``[server.teams.NAME]``): what every key of the team spends together.
    teams: dict[str, TeamBudget] = field(default_factory=dict)


_TEAM_KEYS = ("budget_period", "budget_usd")


def team_budgets(table: Any) -> dict[str, TeamBudget]:
    """The ``[server.teams]`` tables: ``[server.teams.NAME] budget_usd = 25.0`` (and
    ``budget_period = "day" | "month" | "total"``, a month by default) for the keys whose team
    is NAME (``llmrelay keys create --team NAME``)."""
    if not isinstance(table, dict):
        raise ConfigurationError(
            "[server.teams] must be a table of teams: [server.teams.NAME] budget_usd = ..."
        )
    out = {}
    for name, entry in table.items():
        where = f"[server.teams.{name}]"
        if not name.strip():
            raise ConfigurationError("[server.teams]: team names must be non-empty")
        if not isinstance(entry, dict):
            raise ConfigurationError(f"{where} must be a table with budget_usd (and budget_period)")
        unknown = sorted(set(entry) - set(_TEAM_KEYS))
        if unknown:
            raise ConfigurationError(
                f"{where} has unknown key {unknown[0]!r}; known keys: {', '.join(_TEAM_KEYS)}"
            )
        usd = entry.get("budget_usd")
        if usd is None:
            raise ConfigurationError(f"{where} budget_usd is missing: the team's budget in USD")
        if isinstance(usd, bool) or not isinstance(usd, int | float) or not 0 < usd < math.inf:
            raise ConfigurationError(
                f"{where} budget_usd must be a positive number of dollars, not {shown(usd)}"
            )
        period = entry.get("budget_period", "month")
        if period not in ("day", "month", "total"):
            raise ConfigurationError(
                f"{where} budget_period must be day, month or total, not {shown(period)}"
            )
        out[name] = TeamBudget(name, float(usd), period)
    return out


def check_bind(settings: GatewaySettings) -> None:
    """Refuse to listen beyond loopback without an admin key."""
    if settings.admin_key:
        return
    host = settings.host
    if not _loopback_host(host):
        raise ConfigurationError(
            f"refusing to listen on {host} without an admin key: set LLMRELAY_ADMIN_KEY (and "
            "create virtual keys with `llmrelay keys create`), or bind to 127.0.0.1"
        )


def check_workers(workers: int, state: StateSettings | None) -> None:
    """Refuse several workers without Redis for their state (``state``: ``[state]`` and
    ``LLMRELAY_REDIS_URL`` as read): each would keep its own rate-limit counters, budget
    ledger and circuit breakers, and a key would get ``workers`` times its limits and budget.
    (Keys and the request log in SQLite are fine on one host: WAL, several processes.)"""
    if workers <= 1 or (state is not None and state.backend == "redis"):
        return
    kept = ""
    if state is not None and state.backend == "sqlite":
        kept = ' ([state] backend = "sqlite" shares only the response cache)'
    raise ConfigurationError(
        f"--workers {workers} needs shared state{kept}: each worker would keep its own "
        "rate-limit counters, budget ledger and circuit breakers, so a key would get "
        f"{workers} times its rpm, tpm and budget. Set {ENV_REDIS_URL}=redis://host:6379/0 (or "
        '[state] backend = "redis" in llmrelay.toml), or serve with --workers 1'
    )


def tune_gc(mode: str) -> None:
    """Apply ``[server] gc`` to this process: for ``"tuned"``, collect once, freeze what
    survives (start-up state is never traversed again) and raise the young threshold."""
    if mode != "tuned":
        return
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, older, oldest)
