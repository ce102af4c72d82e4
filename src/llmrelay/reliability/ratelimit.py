"""Client-side rate limits (seed 003's rate limiter): the engine's ``LimiterLayer``.

.. code-block:: python

    limiter = RateLimiter({
        "openai/gpt-4o-mini": {"rpm": 500, "tpm": 200_000},   # one deployment
        "anthropic/*": {"rpm": 50, "itpm": 40_000, "otpm": 8_000, "concurrent": 8},
        "user:*": {"rpm": 20},                               # each user (tags={"user": ...})
        "tenant:acme": {"tpm": 1_000_000},                   # one tenant (tenant="acme")
    })
    client = llmrelay.Client(limits=limiter)                 # or Client(limits={...})

**Dimensions**: requests (``rpm``), tokens (``tpm``, input + output), input tokens (``itpm``),
output tokens (``otpm``) per minute; requests per second (``rps``); requests (``rpd``) and
tokens (``tpd``) per day -- each a GCRA over its own window (a second, a minute, a day), so a
full window's burst is allowed as providers do -- and ``concurrent`` requests in flight. Seed
003's spellings (``requests_per_minute``, ``requests_per_second``, ``requests_per_day``,
``tokens_per_minute``, ``tokens_per_day``, ``max_concurrent`` ...) are accepted.

**Providers' declared limits**: a ``Provider(rate_limits={...})`` registered in the provider
registry a ``Client`` uses (the default one, ``llmrelay.catalog.provider_registry.
default_providers()``, or ``Client(providers=registry)``) is enforced by that client's limiter
(one is made on the client's state store when it had none): the provider's limits are one
scope per provider and API key (``provider:<name>``), shared by all its models; limits a
``Provider(models={...})`` entry declares for one model are a scope of that model. These scopes
are the provider's quota, not one limiter's: in process they are counted once for every limiter
on the same clock (keyed by provider, base URL, API key and the declared limits; see
``ratelimit_buckets.SHARED_PREFIX``), in Redis once for every process.

**Scopes**: a deployment (matched by alias, ``provider/model``, ``provider/*`` or ``provider``,
then ``*``; each API key of a deployment is counted apart, as providers do), a user
(``user:<name>`` or ``user:*``), a tenant (``tenant:<name>`` / ``tenant:*``) and an API key
(``key:*``). A call is admitted only if every scope it belongs to has room (all or nothing).

**Tokens** are reserved before the call from an estimate
(``llmrelay.catalog.tokens.estimate_tokens``
of the messages, plus ``max_tokens`` -- else ``output_estimate``) and reconciled with the usage
the provider reports after it; a call that fails gives its tokens back.

**Learned limits**: after each attempt the deployment's response headers are read --
``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` (OpenAI and compatibles; resets like
``6m0s``), ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,
reset}`` (RFC 3339 resets) and, on a 429, ``retry-after``. A limit the provider announces
applies where none is configured; what it counts as used moves our counters forward; a
dimension at zero remaining, or a 429's ``retry-after``, blocks the deployment until its reset
-- but never longer than the limit's own period (a minute for per-minute limits, a day for
per-day ones) nor ``max_block`` (60 s by default): one answer saying "reset in 160h" does not
take the deployment away for a week. Nonsense values (``inf``, ``nan``, negative, garbage) are
ignored.

**When a call does not fit**: by default the limiter raises :class:`RateLimitedError` at once,
with ``retry_after``, and the engine moves on to the next candidate of the fallback chain
(LiteLLM's router does the same). With ``wait=True`` (or ``wait_for_rate_limit=True`` per call)
the caller waits instead, up to ``max_wait`` and the call's deadline. A request that can never
fit (more tokens than a per-minute limit) fails at once with ``retry_after=None``.

**Store**: in process by default; with a Redis store (``[state] backend = "redis"`` or
``LLMRELAY_REDIS_URL``) every process shares the counters, one round trip per acquire. If the
store fails, limits fail **open** by default (the call goes ahead unlimited, and a warning is
logged at most once a minute); ``on_store_error="closed"`` refuses calls with
``StateStoreError`` instead.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import (
    ConfigurationError,
    InvalidRequestError,
    RateLimitedError,
    StateStoreError,
    StreamInterruptedError,
    finite,
    shown,
)
from ..state.base import (
    FailMode,
    Store,
    ThrottledWarning,
    check_fail_mode,
    check_positive,
    key_id,
    refused,
)
from ..types import ChatRequest, Response
from ..types.embed_request import EmbedRequest
from .ratelimit_buckets import Buckets, Charge, MemoryBuckets, Refusal, Settle
from .ratelimit_headers import DEFAULT_MAX_BLOCK, HeaderInfo, read_limit_headers

if TYPE_CHECKING:
    from ..catalog.provider_registry import ProviderRegistry
    from ..core.layers import CallContext
    from ..providers.table import Deployment

__all__ = ["LimitPermit", "Limits", "RateLimiter"]

log = logging.getLogger("llmrelay.ratelimit")

_ALIASES = {
    "requests_per_minute": "rpm",
    "requests_per_second": "rps",
    "requests_per_day": "rpd",
    "tokens_per_minute": "tpm",
    "tokens_per_day": "tpd",
    "input_tokens_per_minute": "itpm",
    "output_tokens_per_minute": "otpm",
    "max_concurrent": "concurrent",
    "concurrent_requests": "concurrent",
    "max_concurrency": "concurrent",
    "concurrency": "concurrent",
}


@dataclass(frozen=True, slots=True)
class Limits:
    """Limits of one scope; None means "no limit" for that dimension."""

    rpm: float | None = None
    tpm: float | None = None
    itpm: float | None = None
    otpm: float | None = None
    concurrent: int | None = None
    #: Requests per second; requests and tokens (input + output) per day.
    rps: float | None = None
    rpd: float | None = None
    tpd: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None:
                continue
            integer = f.name == "concurrent"
            ok = (isinstance(v, int) if integer else isinstance(v, int | float)) and not isinstance(
                v, bool
            )
            if not ok or not finite(v) or v <= 0:
                kind = "a whole number" if integer else "a number"
                raise ConfigurationError(
                    f"rate limit {f.name}={shown(v)} is invalid: it must be {kind} greater than 0 "
                    "(leave it out for no limit)"
                )

    @classmethod
    def coerce(cls, value: Any, where: str = "limits") -> Limits:
        """A ``Limits`` from itself or a mapping (seed 003's key names accepted)."""
        if isinstance(value, Limits):
            return value
        if not isinstance(value, Mapping):
            raise ConfigurationError(
                f"{where} must be a table of limits like {{'rpm': 60}}, not {type(value).__name__}"
            )
        known = {f.name for f in fields(cls)}
        out: dict[str, Any] = {}
        for k, v in value.items():
            name = _ALIASES.get(k, k)
            if name not in known:
                raise ConfigurationError(
                    f"unknown rate limit {shown(k)} in {where}; use rpm, tpm, itpm, otpm, rps, "
                    "rpd, tpd or concurrent"
                )
            out[name] = v
        try:
            return cls(**out)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{where}: {exc.message}") from None

    @property
    def vector(self) -> tuple[float, ...]:
        """One limit per dimension of ``ratelimit_buckets.DIMS`` (0: none)."""
        return (
            self.rpm or 0.0,
            self.tpm or 0.0,
            self.itpm or 0.0,
            self.otpm or 0.0,
            self.rps or 0.0,
            self.rpd or 0.0,
            self.tpd or 0.0,
        )

    @property
    def has_tokens(self) -> bool:
        return bool(self.tpm or self.itpm or self.otpm or self.tpd)


_NONE = Limits()


@dataclass(slots=True)
class LimitPermit:
    """What ``acquire`` handed out; ``release`` settles it."""

    charges: list[Charge]
    permit_id: str
    est_in: int
    est_out: int
    dep_scope: str
    #: False when the store failed and the limiter let the call through unlimited.
    enforced: bool = True


_SCOPE_KINDS = ("user:", "tenant:", "key:")


class RateLimiter:
    """The rate-limit layer (``Engine(limiter=RateLimiter({...}))``). See the module docs."""

    def __init__(
        self,
        limits: Mapping[str, Limits | Mapping[str, Any]] | None = None,
        *,
        store: Store | None = None,
        wait: bool = False,
        max_wait: float = 60.0,
        learn_from_headers: bool = True,
        max_block: float = DEFAULT_MAX_BLOCK,
        output_estimate: int = 1024,
        lease: float = 900.0,
        on_store_error: FailMode = "open",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        poll_interval: float = 0.05,
    ) -> None:
        if limits is not None and not isinstance(limits, Mapping):
            raise ConfigurationError(
                "limits must be a dict of scope -> limits, e.g. {'openai/gpt-4o': {'rpm': 500}}"
            )
        self.limits: dict[str, Limits] = {}
        for scope, lim in (limits or {}).items():
            if not isinstance(scope, str) or not scope.strip():
                raise ConfigurationError(
                    f"a rate-limit scope must be a non-empty name, not {scope!r}"
                )
            if scope.startswith(_SCOPE_KINDS) and scope.endswith(":"):
                raise ConfigurationError(
                    f"rate-limit scope {scope!r} needs a name or '*' after ':'"
                )
            if scope.startswith("key:") and scope != "key:*":
                raise ConfigurationError("per-key limits are written 'key:*' (each API key apart)")
            self.limits[scope] = Limits.coerce(lim, f"limits[{scope!r}]")
        for name, v in (
            ("max_wait", max_wait),
            ("lease", lease),
            ("poll_interval", poll_interval),
            ("max_block", max_block),
        ):
            check_positive(v, name)
        check_positive(output_estimate, "output_estimate", integer=True)
        self.wait = bool(wait)
        self.max_wait = float(max_wait)
        self.learn_from_headers = learn_from_headers
        #: Seconds a block learned from provider headers lasts at most.
        self.max_block = float(max_block)
        self.output_estimate = output_estimate
        self.lease = float(lease)
        self.on_store_error = check_fail_mode(on_store_error, "on_store_error")
        self.clock = clock
        self.sleep = sleep
        self.poll_interval = float(poll_interval)
        self.store = store
        self._buckets: Buckets = _buckets_for(store, clock, self.max_block)
        self._in_process = store is None or store.kind != "redis"
        self._ids = itertools.count()
        self._pid = f"{os.getpid()}-{id(self):x}"
        self._warn_store = ThrottledWarning(log)
        #: Calls let through unlimited because the store failed (fail-open).
        self.store_errors = 0
        self._dep_cache: dict[tuple[str, str | None], Limits] = {}
        self._other_scopes = any(k.startswith(_SCOPE_KINDS) for k in self.limits)
        #: Provider registries whose declared limits apply (``use_providers``).
        self._registries: tuple[ProviderRegistry, ...] = ()
        self._declared: dict[tuple[str, str, int | None], list[tuple[str, Limits]]] = {}
        self._declared_versions: tuple[int, ...] = ()

    def use_providers(self, registry: ProviderRegistry) -> None:
        """Enforce the rate limits the providers of ``registry`` declare (the engine calls this
        for the registry its client uses). A limiter shared by clients using several registries
        applies to each call the limits of its own client's registry only."""
        if all(r is not registry for r in self._registries):
            self._registries = (*self._registries, registry)
            self._declared = {}

    def _declared_scopes(self, dep: Deployment, registry: Any = None) -> list[tuple[str, Limits]]:
        """The scopes of the limits a provider registry declares for ``dep`` (cached until a
        registry changes): ``provider:<name>`` and ``provider:<name>/<model>``. ``registry``:
        the one the call's client uses -- only its limits apply (none when it declares none);
        None (a call from outside an engine): the first registry here that knows the provider."""
        versions = tuple(r.version for r in self._registries)
        if versions != self._declared_versions:
            self._declared = {}
            self._declared_versions = versions
        if registry is None:
            regs = self._registries
        elif any(r is registry for r in self._registries):
            regs = (registry,)
        else:
            return []  # the client's registry declares no limits
        ck = (dep.provider, dep.model, None if registry is None else id(registry))
        hit = self._declared.get(ck)
        if hit is not None:
            return hit
        out: list[tuple[str, Limits]] = []
        for reg in regs:
            declared = reg.declared_limits(dep.provider, dep.model)
            if declared is None:
                continue
            own, per_model = declared
            where = f"the rate_limits of provider {dep.provider!r}"
            if own:
                out.append((f"provider:{dep.provider}", Limits.coerce(own, where)))
            if per_model:
                out.append(
                    (
                        f"provider:{dep.provider}/{dep.model}",
                        Limits.coerce(per_model, f"{where}, model {dep.model!r}"),
                    )
                )
            break
        if len(self._declared) < 10_000:
            self._declared[ck] = out
        return out

    def __repr__(self) -> str:
        return f"RateLimiter({len(self.limits)} scopes, store={self.store!r})"

    # ------------------------------------------------------------------ scopes

    def _deployment_limits(self, dep: Deployment, alias: str | None) -> Limits:
        ck = (dep.key, alias)
        hit = self._dep_cache.get(ck)
        if hit is not None:
            return hit
        lim = _NONE
        for name in (alias, dep.alias, dep.label, f"{dep.provider}/*", dep.provider, "*"):
            if name and name in self.limits:
                lim = self.limits[name]
                break
        if len(self._dep_cache) < 10_000:
            self._dep_cache[ck] = lim
        return lim

    def _scopes(self, dep: Deployment, ctx: CallContext) -> list[tuple[str, Limits]]:
        limits = self.limits
        kid = key_id(dep.api_key)
        dep_scope = f"dep:{dep.key}" + (f"#{kid}" if kid else "")
        out = []
        dl = self._deployment_limits(dep, ctx.alias)
        if dl is not _NONE or self.learn_from_headers:
            out.append((dep_scope, dl))
        if self._registries:
            # Providers count per API key. In process, one count per provider, base URL and
            # declared limits for every limiter (SHARED_PREFIX); in Redis, per provider.
            if self._in_process:
                suffix = f"#{kid or ''}@{dep.base_url}"
                for scope, lim in self._declared_scopes(dep, ctx.providers):
                    out.append((f"{scope}{suffix}|{_spec(lim)}", lim))
            else:
                suffix = f"#{kid}" if kid else ""
                for scope, lim in self._declared_scopes(dep, ctx.providers):
                    out.append((scope + suffix, lim))
        if self._other_scopes:
            user = ctx.tags.get("user")
            if user is not None:
                ul = limits.get(f"user:{user}") or limits.get("user:*")
                if ul is not None:
                    out.append((f"user:{user}", ul))
            tenant = ctx.tenant
            if tenant is not None:
                tl = limits.get(f"tenant:{tenant}") or limits.get("tenant:*")
                if tl is not None:
                    out.append((f"tenant:{tenant}", tl))
            if kid is not None:
                kl = limits.get("key:*")
                if kl is not None:
                    out.append((f"key:{kid}", kl))
        if self.scopes_per_call:
            out.extend(self.call_scopes(ctx))
        return out

    #: True in a subclass that adds scopes per call (:meth:`call_scopes`).
    scopes_per_call: ClassVar[bool] = False

    def call_scopes(self, ctx: CallContext) -> list[tuple[str, Limits]]:
        """Scopes a call belongs to beyond the configured ones (none here): the gateway adds
        each virtual key's and team's own limits."""
        return []

    def _estimate(self, req: ChatRequest) -> tuple[int, int]:
        if isinstance(req, EmbedRequest):
            return req.tokens, 0  # embeddings: input tokens only
        from ..catalog.tokens import estimate_tokens

        text = " ".join(m.text() for m in req.messages)
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                # Refused before a slot is taken: the request could not be sent anyway.
                raise InvalidRequestError(
                    "a message holds lone surrogates (not valid Unicode): it cannot be sent; "
                    "decode the text with errors='replace'"
                ) from None
        est_in = estimate_tokens(text) + 3 * len(req.messages) + 3
        return est_in, req.params.max_tokens or self.output_estimate

    # ------------------------------------------------------------------ acquire

    async def acquire(
        self, dep: Deployment, req: ChatRequest, ctx: CallContext
    ) -> LimitPermit | None:
        scopes = self._scopes(dep, ctx)
        if not scopes:
            return None
        est_in, est_out = self._estimate(req)
        tokens = float(est_in + est_out)
        costs = (1.0, tokens, float(est_in), float(est_out), 1.0, 1.0, tokens)
        charges = [Charge(s, lim.vector, costs, lim.concurrent or 0) for s, lim in scopes]
        needs_id = any(c.concurrent for c in charges)
        permit_id = f"{self._pid}-{next(self._ids)}" if needs_id else ""
        first = scopes[0][0]  # the deployment's scope when it has one (learned limits go there)
        permit = LimitPermit(
            charges, permit_id, est_in, est_out, first if first.startswith("dep:") else ""
        )
        wait = ctx.opts.wait_for_rate_limit
        if wait is None:
            wait = self.wait
        waited = 0.0
        while True:
            try:
                refusal = await self._buckets.acquire(charges, permit_id, self.lease)
            except StateStoreError as exc:
                return self._store_failed(exc, permit)
            if refusal is None:
                return permit
            delay = self._delay(refusal, dep, wait, waited, ctx)
            await self.sleep(delay)
            waited += delay

    def _delay(
        self, r: Refusal, dep: Deployment, wait: bool, waited: float, ctx: CallContext
    ) -> float:
        """How long to wait before trying again, or raise RateLimitedError."""
        where = _describe(r.scope)
        if r.retry_after is None:
            raise self._error(
                f"this request needs more {_DIM_NAMES[r.dim]} than {where} allows "
                f"{_PERIODS.get(r.dim, 'per minute')} ({r.limit:g}); it can never be admitted. "
                "Lower max_tokens or shorten the prompt",
                dep,
                r,
                None,
            )
        if r.dim == "concurrent":
            ra = self.poll_interval
            what = f"{where} has its maximum of concurrent requests in flight"
        elif r.dim == "blocked":
            ra = r.retry_after
            what = f"the provider asked us to pause {where}"
        else:
            ra = r.retry_after
            what = (
                f"{where} is at its {_DIM_NAMES[r.dim]} "
                f"{_PERIODS.get(r.dim, 'per minute').replace(' ', '-')} limit"
            )
        if not wait:
            raise self._error(f"{what}; retry after {ra:.2f}s", dep, r, ra)
        budget = self.max_wait - waited
        if ctx.deadline_at is not None:
            budget = min(budget, ctx.deadline_at - self.clock())
        if ra > budget:
            raise self._error(
                f"{what}; waiting {ra:.2f}s more would pass the call's deadline or max_wait "
                f"({self.max_wait:g}s)",
                dep,
                r,
                ra,
            )
        return ra

    @staticmethod
    def _error(msg: str, dep: Deployment, r: Refusal, ra: float | None) -> RateLimitedError:
        return RateLimitedError(
            msg,
            provider=dep.provider,
            model=dep.model,
            retry_after=ra,
            body={"source": "llmrelay.ratelimit", "scope": _describe(r.scope), "limit": r.dim},
        )

    def _store_failed(self, exc: StateStoreError, permit: LimitPermit) -> LimitPermit:
        if self.on_store_error == "closed":
            raise refused("rate limits", exc) from exc
        self.store_errors += 1
        self._warn_store(
            "rate limits are not enforced while the state store fails (fail-open): %s",
            exc.message,
        )
        permit.enforced = False
        return permit

    # ------------------------------------------------------------------ release

    async def release(
        self,
        permit: Any,
        resp: Response | None,
        headers: Mapping[str, str] | None,
        exc: BaseException | None,
    ) -> None:
        if not isinstance(permit, LimitPermit) or not permit.enforced:
            return
        usage = resp.usage if resp is not None else None
        if usage is None and isinstance(exc, StreamInterruptedError):
            partial = exc.partial
            if isinstance(partial, Response) and (
                partial.usage.input_tokens or partial.usage.output_tokens
            ):
                usage = partial.usage
        if usage is not None:
            d_in = float(usage.input_tokens - permit.est_in)
            d_out = float(usage.output_tokens - permit.est_out)
        else:  # nothing known to be spent: give the tokens back (the request still counts)
            d_in, d_out = -float(permit.est_in), -float(permit.est_out)
        deltas = (0.0, d_in + d_out, d_in, d_out, 0.0, 0.0, d_in + d_out)
        info: HeaderInfo | None = None
        if self.learn_from_headers and headers:
            info = read_limit_headers(
                headers,
                rate_limited=getattr(exc, "status", None) == 429,
                max_block=self.max_block,
            )
        settles = []
        for c in permit.charges:
            if info is not None and c.scope == permit.dep_scope:
                settles.append(
                    Settle(c.scope, c.limits, deltas, info.block, info.learned, info.used)
                )
            else:
                settles.append(Settle(c.scope, c.limits, deltas))
        try:
            await self._buckets.release(settles, permit.permit_id)
        except StateStoreError as err:
            self.store_errors += 1
            log.debug("rate-limit release failed: %s", err.message)

    async def aclose(self) -> None:
        """Close this event loop's store connections."""
        if self.store is not None:
            await self.store.aclose()


_DIM_NAMES = {
    "rpm": "requests",
    "tpm": "tokens",
    "itpm": "input tokens",
    "otpm": "output tokens",
    "concurrent": "concurrent requests",
    "blocked": "requests",
    "rps": "requests",
    "rpd": "requests",
    "tpd": "tokens",
}
_PERIODS = {"rps": "per second", "rpd": "per day", "tpd": "per day"}


def _describe(scope: str) -> str:
    if scope.startswith("dep:"):
        return "deployment " + scope[4:].split("#", 1)[0]
    if scope.startswith("key:"):
        return "the API key"
    if scope.startswith("provider:"):
        return "provider " + scope[9:].split("#", 1)[0] + " (its declared rate limits)"
    kind, _, name = scope.partition(":")
    return f"{kind} {name!r}"


def _spec(lim: Limits) -> str:
    """The limits of a scope as text, for the name of a process-wide scope."""
    return ",".join(f"{v:g}" for v in (*lim.vector, lim.concurrent or 0))


def _buckets_for(store: Store | None, clock: Callable[[], float], max_block: float) -> Buckets:
    if store is None or store.kind != "redis":
        return MemoryBuckets(clock, max_block)
    from ..state.redis_store import RedisStore
    from .ratelimit_buckets import RedisBuckets

    assert isinstance(store, RedisStore)
    return RedisBuckets(store, max_block)
