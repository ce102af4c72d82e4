"""Build and run the gateway: the ``[server]`` table, the engine with per-key layers, workers.

``llmrelay serve`` reads ``llmrelay.toml`` (aliases, ``[defaults]``, providers, ``[limits]``,
``[budgets]``, ``[cache]``, ``[state]``, ``[log]``) plus its ``[server]`` table:

.. code-block:: toml

    [server]
    host = "127.0.0.1"
    port = 4000
    key_store = "keys.db"          # or "postgresql://..." for several hosts
    key_cache_ttl = 1.0            # revocations reach every instance within this time
    key_store_timeout = 5.0        # PostgreSQL: connect/query bound (503 past it)
    max_body_bytes = 4194304
    cache_scope = "team"           # team | key | shared
    shutdown_grace = 30
    read_timeout = 30              # seconds to send the body (408 past it)
    header_timeout = 15            # seconds to send a request's headers (closed past it)
    log = true                     # the request log, as [log] configures it
    metrics_public = false         # true: GET /metrics without the admin key
    loop = "asyncio"               # or "uvloop" (pip install 'llmrelay[gateway]')
    media_urls = "https"           # image/file URLs forwarded: https (public) | none | any
    gc = "tuned"                   # or "python": the interpreter's garbage-collector defaults

    [server.teams.research]        # what every key of team "research" spends together
    budget_usd = 250.0
    budget_period = "month"        # day | month | total

``LLMRELAY_SIGNING_SECRET`` (else ``LLMRELAY_ADMIN_KEY``) signs the reasoning items
``/v1/responses`` hands out (``sealing``): give every worker and host the same one.

``--workers N`` starts N processes on one port (``SO_REUSEPORT``); they share budgets, limits,
breakers and the cache through ``LLMRELAY_REDIS_URL`` (or a ``[state]`` Redis: with N > 1 the
gateway refuses to start without one) and keys (and the request log) through PostgreSQL -- or
SQLite on one host.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import multiprocessing
import os
import secrets
import signal
import sys
from collections.abc import Mapping
from multiprocessing import resource_tracker
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from .app import Gateway
from .config import GC_MODES, GatewaySettings, check_bind, check_workers, team_budgets, tune_gc
from .lifecycle import STOP_SIGNALS, run_worker
from .media import MEDIA_POLICIES
from .policy import KeyBudgets, KeyRateLimiter

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["build_gateway", "run", "settings_from", "worker_app"]

#: prctl(2): the signal a process gets when its parent dies.
_PR_SET_PDEATHSIG = 1

_SERVER_KEYS = {
    "host",
    "port",
    "key_store",
    "max_body_bytes",
    "cache_scope",
    "shutdown_grace",
    "models",
    "log",
    "key_cache_ttl",
    "key_store_timeout",
    "read_timeout",
    "header_timeout",
    "metrics_public",
    "loop",
    "media_urls",
    "gc",
    "teams",
}


def settings_from(table: Mapping[str, Any], **overrides: Any) -> tuple[GatewaySettings, bool]:
    """The gateway settings from a ``[server]`` table (and ``LLMRELAY_ADMIN_KEY``), with
    command-line overrides; also whether the request log is on."""
    unknown = sorted(set(table) - _SERVER_KEYS)
    if unknown:
        raise ConfigurationError(
            f"[server] has unknown key {unknown[0]!r}; known keys: "
            f"{', '.join(sorted(_SERVER_KEYS))}"
        )
    values = {k: v for k, v in table.items() if k not in ("log", "teams")}
    values.update({k: v for k, v in overrides.items() if v is not None})
    s = GatewaySettings(**values)
    if "teams" in table:
        s.teams = team_budgets(table["teams"])
    s.admin_key = os.environ.get("LLMRELAY_ADMIN_KEY") or None
    s.signing_secret = os.environ.get("LLMRELAY_SIGNING_SECRET") or None
    if not isinstance(s.port, int) or not 0 <= s.port < 65536:
        raise ConfigurationError(f"[server] port must be 0-65535, not {s.port!r}")
    if not isinstance(s.max_body_bytes, int) or s.max_body_bytes < 1024:
        raise ConfigurationError("[server] max_body_bytes must be an integer >= 1024")
    ttl = s.key_cache_ttl
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 <= ttl <= 60:
        raise ConfigurationError("[server] key_cache_ttl must be 0-60 seconds")
    kt = s.key_store_timeout
    if isinstance(kt, bool) or not isinstance(kt, int | float) or not 0 < kt <= 60:
        raise ConfigurationError("[server] key_store_timeout must be 0-60 seconds")
    rt = s.read_timeout
    if isinstance(rt, bool) or not isinstance(rt, int | float) or not 0 < rt <= 3600:
        raise ConfigurationError("[server] read_timeout must be 0-3600 seconds")
    ht = s.header_timeout
    if isinstance(ht, bool) or not isinstance(ht, int | float) or not 0 < ht <= 3600:
        raise ConfigurationError("[server] header_timeout must be 0-3600 seconds")
    if not isinstance(s.metrics_public, bool):
        raise ConfigurationError("[server] metrics_public must be true or false")
    if s.loop not in ("asyncio", "uvloop"):
        raise ConfigurationError('[server] loop must be "asyncio" or "uvloop"')
    if s.loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        raise ConfigurationError(
            "[server] loop = \"uvloop\" needs uvloop: pip install 'llmrelay[gateway]'"
        )
    if s.media_urls not in MEDIA_POLICIES:
        raise ConfigurationError(
            '[server] media_urls must be "https" (public https and data: URLs), "none" '
            '(data: URLs only) or "any"'
        )
    if s.gc not in GC_MODES:
        raise ConfigurationError(
            '[server] gc must be "tuned" (start-up objects frozen, fewer collections) or '
            '"python" (the interpreter\'s defaults)'
        )
    if s.cache_scope not in ("team", "key", "shared"):
        raise ConfigurationError("[server] cache_scope must be team, key or shared")
    if isinstance(s.models, list):
        s.models = tuple(s.models)
    return s, bool(table.get("log", False))


def build_gateway(
    settings: GatewaySettings, *, log: bool = False, transport: Any = None
) -> Gateway:
    """A gateway whose engine carries the per-key budget and rate-limit layers."""
    from ..catalog.layer import Catalog
    from ..client import Client
    from ..core.engine import Engine
    from ..reliability.budgets_ledger import ledger_for
    from ..settings.defaults import engine_defaults
    from ..settings.layers import build_layers
    from .keys import open_key_store

    kwargs = engine_defaults()
    layers = build_layers(breaker_settings=kwargs.pop("breaker_settings", None))
    configured = layers.limiter
    limiter = KeyRateLimiter(  # with [limits]' options (wait, learn_from_headers, ...)
        configured.limits if configured is not None else None,
        store=layers.store,
        **(layers.limit_options or {}),
    )
    static = layers.budgets
    budgets = KeyBudgets(
        static=static.limits if static is not None else (),
        ledger=static.ledger if static is not None else ledger_for(layers.store),
        unknown_cost=static.unknown_cost if static is not None else "deny",
        teams=settings.teams,
    )
    recorder = None
    request_log = None
    if log:
        from ..settings.recorders import client_recorders

        rec = client_recorders(False, True)
        recorder, request_log = rec.recorder, rec.log
    engine = Engine(
        transport,
        catalog=Catalog(),
        recorder=recorder,
        cache=layers.cache,
        breakers=layers.breakers,
        limiter=limiter,
        budget=budgets,
        **kwargs,
    )
    keys = (
        open_key_store(settings.key_store, timeout=settings.key_store_timeout)
        if settings.key_store
        else None
    )
    return Gateway(
        Client(engine=engine),
        settings,
        keys=keys,
        budgets=budgets,
        limiter=limiter,
        request_log=request_log,
    )


def worker_app(settings: GatewaySettings, log: bool) -> web.Application:
    """One worker's application: the gateway, and ``[server] gc`` applied once it has started
    (what start-up built is then frozen out of collections)."""
    app = build_gateway(settings, log=log).app()

    async def tuned(_: web.Application) -> None:
        tune_gc(settings.gc)

    app.on_startup.append(tuned)
    return app


def _worker(
    settings: GatewaySettings, log: bool, reuse_port: bool, parent: int | None = None
) -> None:
    """Serve one worker (``lifecycle``); ``parent``: the pid of the process that started this
    one of several."""
    if parent is not None and not _follow(parent):
        return
    loop = None
    if settings.loop == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    run_worker(worker_app(settings, log), settings, reuse_port=reuse_port, loop=loop)


def _follow(parent: int) -> bool:
    """One worker of several: in a process group of its own, so a terminal's Ctrl-C reaches
    only the parent, which forwards it once (a worker counts SIGINTs: the second cuts); on
    Linux, SIGTERM when the parent dies. False when the parent is already gone."""
    os.setpgid(0, 0)
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    return os.getppid() == parent


def run(settings: GatewaySettings, *, workers: int = 1, log: bool = False) -> int:
    """Serve until SIGTERM/SIGINT (each worker finishes in-flight requests within the grace;
    ``lifecycle``). With several workers this process only starts them and forwards the
    signals it gets; they need Redis for their state (``check_workers``)."""
    from ..settings.state import settings_from_config

    check_workers(workers, settings_from_config())
    check_bind(settings)
    where = f"http://{settings.host}:{settings.port}"
    note = "" if settings.admin_key else " (no LLMRELAY_ADMIN_KEY: loopback only)"
    sys.stderr.write(f"llmrelay gateway on {where} with {workers} worker(s){note}\n")
    if workers > 1 and not (settings.signing_secret or settings.admin_key):
        # One secret for this run's workers (they share a port: a follow-up turn reaches any
        # of them); drawn here, it still ends with the run, as a single process's does.
        settings = dataclasses.replace(settings, signing_secret=secrets.token_urlsafe(32))
    if workers <= 1:
        _worker(settings, log, False)
        return 0
    ctx = multiprocessing.get_context("spawn")
    procs: list[Any] = []

    def forward(signum: int, _: Any) -> None:
        for p in procs:
            if p.pid is not None and p.is_alive():
                os.kill(p.pid, signum)

    me = os.getpid()
    procs.extend(
        ctx.Process(target=_worker, args=(settings, log, True, me), daemon=False)
        for _ in range(workers)
    )
    # A stop that comes while the workers start waits (blocked, pending) until every one is
    # started: forwarded earlier, it missed the later ones. The workers inherit the block and
    # lift it once their loop handles the signals (lifecycle): before, it killed them (exit 1).
    # multiprocessing's resource tracker is started first (its start lifts the block), and the
    # handlers installed once blocked (one taken before would forward to no worker).
    resource_tracker.ensure_running()
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        for p in procs:
            p.start()
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    for p in procs:
        p.join()
    return 0 if all(p.exitcode == 0 for p in procs) else 1
