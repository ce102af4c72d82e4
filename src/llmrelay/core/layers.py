"""The pluggable layers of the pipeline and what they see of a call.

    cache -> budget -> [for each candidate: capabilities -> breaker -> rate limit ->
                        retry(backend)] -> cost -> record -> cache store -> budget settle

The engine calls each layer that is configured (``Engine(cache=..., budget=..., limiter=...,
catalog=..., recorder=...)``); a layer that is ``None`` costs nothing. Layers never see API keys.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..types import ChatRequest, Response, Usage
from .trace import Attempt

if TYPE_CHECKING:
    from ..catalog.costs import Cost
    from ..providers.backends import Backend
    from ..providers.table import Deployment
    from .engine import CallOptions

__all__ = [
    "Breaker",
    "BreakerSource",
    "BudgetLayer",
    "CacheLayer",
    "CallContext",
    "CallRecord",
    "CatalogLayer",
    "LimiterLayer",
    "Recorder",
    "check_parts",
]


@dataclass(slots=True)
class CallContext:
    """What the layers know about one logical call (no secrets)."""

    opts: CallOptions
    trace_id: str
    start: float
    started_at: float = field(default_factory=time.time)
    deadline_at: float | None = None
    alias: str | None = None
    trace: list[Attempt] = field(default_factory=list)
    #: Usage summed over every provider answer in this call (retries, fallbacks, re-asks).
    usage: Usage = field(default_factory=Usage)
    cost: Cost | None = None
    cache_hit: bool = False
    #: What the budget layer holds for this call (``BudgetLayer.reserve``'s answer), settled once
    #: when the call ends, whatever its outcome.
    reservation: Any = None
    #: The engine's catalog layer (None: none), whose registry prices the budget's estimate.
    catalog: Any = None
    #: The provider registry of the call's engine: the rate limiter applies the limits it
    #: declares (and no other registry's) to the call.
    providers: Any = None

    @property
    def tenant(self) -> str | None:
        return self.opts.tenant

    @property
    def tags(self) -> Mapping[str, str]:
        return self.opts.tags or {}


@dataclass(slots=True)
class CallRecord:
    """One finished logical call, for metrics and the request log."""

    trace_id: str
    started_at: float
    alias: str | None
    provider: str
    model: str
    outcome: str  # "success" | "error" | "cache_hit"
    latency_s: float
    usage: Usage
    cost: Cost | None
    attempts: list[Attempt]
    time_to_first_token_s: float | None = None
    error: str | None = None
    status: int | None = None
    cache_hit: bool = False
    stream: bool = False
    tenant: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    #: The messages and the answer, only when content logging is turned on.
    prompt: Any = None
    response_text: str | None = None


@runtime_checkable
class CacheLayer(Protocol):
    """Exact-match response cache. Must never raise to the caller (fail open)."""

    def key(
        self, req: ChatRequest, dep: Deployment, backend: Backend, ctx: CallContext
    ) -> str | None:
        """The cache key of a request, or None when it must not be cached."""
        ...

    async def get(self, key: str, ctx: CallContext) -> Response | None: ...

    async def put(self, key: str, resp: Response, ctx: CallContext) -> None: ...


@runtime_checkable
class LimiterLayer(Protocol):
    """Rate limits per deployment and per key/user. ``acquire`` raises ``RateLimitedError``
    (with ``retry_after``) when the call may not go now and waiting is not allowed or would
    pass the deadline; the engine then moves to the next candidate."""

    async def acquire(self, dep: Deployment, req: ChatRequest, ctx: CallContext) -> Any: ...

    async def release(
        self,
        permit: Any,
        resp: Response | None,
        headers: Mapping[str, str] | None,
        exc: BaseException | None,
    ) -> None: ...


@runtime_checkable
class BudgetLayer(Protocol):
    """Spending limits: reserve the estimate before the call, settle the actual after.

    ``reserve`` is called before *every* candidate the call reaches (the primary, each fallback,
    each structured re-ask), with ``ctx.reservation`` holding what the call reserved so far
    (None at first); it returns the call's reservation, extended to cover what was spent plus the
    candidate's estimate, or raises ``BudgetExceededError``. ``settle`` runs once, when the call
    ends (success, error, cancellation), with ``ctx.reservation``.
    """

    async def reserve(self, req: ChatRequest, dep: Deployment, ctx: CallContext) -> Any: ...

    async def settle(self, reservation: Any, ctx: CallContext) -> None: ...


@runtime_checkable
class CatalogLayer(Protocol):
    """Model knowledge: capability checks before sending, and prices."""

    def prepare(
        self, req: ChatRequest, dep: Deployment, *, strict_params: bool = False
    ) -> ChatRequest:
        """Check the request against the model's capabilities (raise a typed error), and drop or
        translate parameters it does not support (recording each in the returned request).
        ``strict_params=True`` (passed only when the call sets it): refuse a parameter the
        model rejects instead of dropping it."""
        ...

    def cost(self, dep: Deployment, usage: Usage) -> Cost: ...


@runtime_checkable
class Recorder(Protocol):
    """Metrics and the request log. ``record`` is called on the hot path: it must be cheap
    and must not raise (queue the work, write in batches elsewhere)."""

    def record(self, rec: CallRecord) -> None: ...


#: What each pluggable part of an ``Engine`` must have: the methods the engine calls on it.
_REQUIRED: dict[str, tuple[str, tuple[str, ...]]] = {
    "transport": ("a Transport", ("send", "stream", "aclose")),
    "breakers": ("a BreakerRegistry, True, False or None", ("get", "items")),
    "retry": ("a RetryPolicy or None", ("decide",)),
    "cache": ("a CacheLayer (e.g. ResponseCache) or None", ("key", "get", "put")),
    "limiter": ("a LimiterLayer (e.g. RateLimiter) or None", ("acquire", "release")),
    "budget": ("a BudgetLayer (e.g. Budgets) or None", ("reserve", "settle")),
    "catalog": ("a CatalogLayer (e.g. Catalog) or None", ("prepare", "cost")),
    "recorder": ("a Recorder (e.g. Metrics, RequestLog) or None", ("record",)),
    "engine": ("an llmrelay Engine or None", ("complete", "stream")),
}


def check_parts(**parts: Any) -> None:
    """``ConfigurationError`` naming the argument unless each given part (None and, for
    ``breakers``, a bool are "default"/"off") has the methods the engine calls on it: a wrong
    object fails when it is passed, not with AttributeError on some later call. Once, at
    construction."""
    from ..errors import ConfigurationError

    for name, value in parts.items():
        if value is None or (name == "breakers" and value.__class__ is bool):
            continue
        what, methods = _REQUIRED[name]
        if not all(callable(getattr(value, m, None)) for m in methods):
            raise ConfigurationError(f"{name} must be {what}, not {type(value).__name__}")


class Breaker(Protocol):
    """What the engine needs of a circuit breaker (``reliability.breaker.CircuitBreaker`` and
    the shared ``SharedCircuitBreaker``). When ``asynchronous`` is true the engine uses the
    ``a*`` methods (one store round trip each), else the synchronous ones."""

    asynchronous: bool
    clock: Callable[[], float]

    @property
    def state(self) -> str: ...

    def acquire(self) -> Any: ...

    def release(self, permit: Any) -> None: ...

    def on_success(self, permit: Any) -> None: ...

    def on_failure(self, permit: Any, exc: BaseException) -> None: ...

    async def aacquire(self) -> Any: ...

    async def aon_success(self, permit: Any) -> None: ...

    async def aon_failure(self, permit: Any, exc: BaseException) -> None: ...


class BreakerSource(Protocol):
    """A breaker registry: one breaker per deployment key."""

    def get(self, key: str) -> Breaker: ...
