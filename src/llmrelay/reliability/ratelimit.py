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
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import (
    ConfigurationError,
    RateLimitedError,
    StateStoreError,
    StreamInterruptedError,
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
from ..state.redis_store import process_tag
from ..types import ChatRequest, Response
from ..types.embed_request import EmbedRequest
from .ratelimit_buckets import Buckets, MemoryBuckets, Refusal, Slot
from .ratelimit_headers import DEFAULT_MAX_BLOCK, limit_values
from .ratelimit_limits import _NONE, Limits
from .ratelimit_tokens import checked_text, estimate

if TYPE_CHECKING:
    from ..catalog.provider_registry import ProviderRegistry
    from ..core.layers import CallContext
    from ..providers.table import Deployment

__all__ = ["LimitPermit", "Limits", "RateLimiter"]

log = logging.getLogger("llmrelay.ratelimit")


@dataclass(slots=True)
class LimitPermit:
    """What ``acquire`` handed out; ``release`` settles it."""

    #: The scopes the call is charged to.
    slots: Sequence[Slot]
    permit_id: str
    est_in: int
    est_out: int
    dep_scope: str
    #: False when the store failed and the limiter let the call through unlimited.
    enforced: bool = True
    #: The request, when it was admitted without its token estimate (``ratelimit_tokens``):
    #: the estimate is made when the call settles, if a scope counts tokens by then.
    req: ChatRequest | None = None


_SCOPE_KINDS = ("user:", "tenant:", "key:")
#: A call's costs before its token estimate: one request, no tokens (``ratelimit_tokens``).
_NO_TOKENS = (1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0)
#: Past this many, the limiter's caches of scopes are emptied (they refill from calls).
_MAX_CACHED = 10_000


@dataclass(slots=True, frozen=True)
class _Plan:
    """The scopes of calls to one deployment with one API key and alias (made once): the
    deployment's and the provider's declared ones."""

    slots: tuple[Slot, ...]
    #: The API key's name in shared state (``key_id``).
    kid: str | None
    #: The deployment's scope ("" when it has none), where learned limits go.
    dep_scope: str
    #: Some scope limits concurrency (the permit needs an id).
    needs_id: bool


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
        #: The in-process counters, called without a coroutine (None: in Redis).
        self._memory = self._buckets if isinstance(self._buckets, MemoryBuckets) else None
        self._ids = itertools.count()
        self._pid = f"{os.getpid()}-{id(self):x}"
        self._warn_store = ThrottledWarning(log)
        #: Calls let through unlimited because the store failed (fail-open).
        self.store_errors = 0
        self._dep_cache: dict[tuple[str, str | None], Limits] = {}
        self._plans: dict[tuple[object, ...], _Plan] = {}
        #: Scope name -> (its limits, its slot): user, tenant and per-call scopes.
        self._slots: dict[str, tuple[Limits, Slot]] = {}
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
            self._plans = {}

    def _declared_scopes(self, dep: Deployment, registry: Any = None) -> list[tuple[str, Limits]]:
        """The scopes of the limits a provider registry declares for ``dep`` (cached until a
        registry changes): ``provider:<name>`` and ``provider:<name>/<model>``. ``registry``:
        the one the call's client uses -- only its limits apply (none when it declares none);
        None (a call from outside an engine): the first registry here that knows the provider."""
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
        if len(self._declared) < _MAX_CACHED:
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
        if len(self._dep_cache) < _MAX_CACHED:
            self._dep_cache[ck] = lim
        return lim

    def _slot(self, scope: str, lim: Limits) -> Slot:
        """The slot of ``scope`` with ``lim`` (made once while its limits stay the same)."""
        hit = self._slots.get(scope)
        if hit is not None and hit[0] is lim:
            return hit[1]
        slot = _new_slot(scope, lim)
        if len(self._slots) >= _MAX_CACHED:
            self._slots.clear()
        self._slots[scope] = (lim, slot)
        return slot

    def _plan(self, dep: Deployment, ctx: CallContext) -> _Plan:
        """The scopes of calls to ``dep`` like ``ctx`` that do not depend on their user,
        tenant or tags (made once; remade when a provider registry changes)."""
        regs = self._registries
        if regs:  # a registry changed: its declared limits may have
            versions = (regs[0].version,) if len(regs) == 1 else tuple([r.version for r in regs])
            if versions != self._declared_versions:
                self._declared, self._plans = {}, {}
                self._declared_versions = versions
        kid = key_id(dep.api_key)
        reg = ctx.providers
        ck = (dep.key, kid, ctx.alias, None if reg is None else id(reg), self.learn_from_headers)
        plan = self._plans.get(ck)
        if plan is None:
            head = self._static_scopes(dep, ctx, kid)
            first = head[0].scope if head else ""
            dep_scope = first if first.startswith("dep:") else ""
            plan = _Plan(head, kid, dep_scope, any(sl.concurrent for sl in head))
            if len(self._plans) >= _MAX_CACHED:
                self._plans.clear()
            self._plans[ck] = plan
        return plan

    def _static_scopes(
        self, dep: Deployment, ctx: CallContext, kid: str | None
    ) -> tuple[Slot, ...]:
        """The deployment's and the provider's declared scopes."""
        dep_scope = f"dep:{dep.key}" + (f"#{kid}" if kid else "")
        out = []
        dl = self._deployment_limits(dep, ctx.alias)
        if dl is not _NONE or self.learn_from_headers:
            out.append(_new_slot(dep_scope, dl))
        if self._registries:
            # Providers count per API key. In process, one count per provider, base URL and
            # declared limits for every limiter (SHARED_PREFIX); in Redis, per provider.
            if self._in_process:
                suffix = f"#{kid or ''}@{dep.base_url}"
                for scope, lim in self._declared_scopes(dep, ctx.providers):
                    out.append(_new_slot(f"{scope}{suffix}|{_spec(lim)}", lim))
            else:
                suffix = f"#{kid}" if kid else ""
                for scope, lim in self._declared_scopes(dep, ctx.providers):
                    out.append(_new_slot(scope + suffix, lim))
        return tuple(out)

    def _call_slots(self, dep: Deployment, ctx: CallContext) -> tuple[Sequence[Slot], str, bool]:
        """Every scope of the call, in order (the deployment's, the provider's, the user's,
        the tenant's, the API key's and the call's own, ``call_scopes``); the deployment's
        scope ("" if none); whether a scope limits concurrency."""
        plan = self._plan(dep, ctx)
        if not self._other_scopes and not self.scopes_per_call:
            return plan.slots, plan.dep_scope, plan.needs_id
        out = list(plan.slots)
        if self._other_scopes:
            limits = self.limits
            user = ctx.tags.get("user")
            if user is not None:
                scope = f"user:{user}"
                ul = limits.get(scope) or limits.get("user:*")
                if ul is not None:
                    out.append(self._slot(scope, ul))
            tenant = ctx.tenant
            if tenant is not None:
                scope = f"tenant:{tenant}"
                tl = limits.get(scope) or limits.get("tenant:*")
                if tl is not None:
                    out.append(self._slot(scope, tl))
            kid = plan.kid
            if kid is not None:
                kl = limits.get("key:*")
                if kl is not None:
                    out.append(self._slot(f"key:{kid}", kl))
        if self.scopes_per_call:
            for scope, lim in self.call_scopes(ctx):
                out.append(self._slot(scope, lim))
        needs_id = plan.needs_id
        for sl in out:  # (a loop: cheaper than any() over a generator)
            if sl.concurrent:
                needs_id = True
                break
        if plan.slots or not out:
            return out, plan.dep_scope, needs_id
        first = out[0].scope  # a call's scope named so would be the deployment's, as always
        return out, first if first.startswith("dep:") else "", needs_id

    #: True in a subclass that adds scopes per call (:meth:`call_scopes`).
    scopes_per_call: ClassVar[bool] = False

    def call_scopes(self, ctx: CallContext) -> Sequence[tuple[str, Limits]]:
        """Scopes a call belongs to beyond the configured ones (none here): the gateway adds
        each virtual key's and team's own limits. A scope keeps its counts while its name
        does; its limits are read on each call."""
        return ()

    def _estimate(self, req: ChatRequest) -> tuple[int, int]:
        return estimate(req, self.output_estimate)

    # ------------------------------------------------------------------ acquire

    async def acquire(
        self, dep: Deployment, req: ChatRequest, ctx: CallContext
    ) -> LimitPermit | None:
        slots, dep_scope, needs_id = self._call_slots(dep, ctx)
        if not slots:
            return None
        memory = self._memory
        if memory is not None and req.__class__ is not EmbedRequest:
            # In process, a call no scope counts tokens of is charged without its estimate
            # (``ratelimit_tokens``): its text is only checked.
            text = checked_text(req)
            permit_id = f"{self._pid}-{next(self._ids)}" if needs_id else ""
            no_tokens = (_NO_TOKENS,) * len(slots)
            if memory.take_now(slots, no_tokens, permit_id, self.lease, True) is None:
                return LimitPermit(slots, permit_id, 0, 0, dep_scope, req=req)
            est_in, est_out = estimate(req, self.output_estimate, text)
        else:
            est_in, est_out = self._estimate(req)
            permit_id = f"{process_tag()}{self._pid}-{next(self._ids)}" if needs_id else ""
        tokens = float(est_in + est_out)
        costs = (1.0, tokens, float(est_in), float(est_out), 1.0, 1.0, tokens)
        permit = LimitPermit(slots, permit_id, est_in, est_out, dep_scope)
        wait: bool | None = None
        waited = 0.0
        while True:
            try:
                if memory is not None:
                    costs_of = (costs,) * len(slots)
                    refusal = memory.take_now(slots, costs_of, permit_id, self.lease)
                else:
                    refusal = await self._buckets.take(slots, costs, permit_id, self.lease)
            except StateStoreError as exc:
                return self._store_failed(exc, permit)
            if refusal is None:
                return permit
            if wait is None:
                wait = ctx.opts.wait_for_rate_limit
                if wait is None:
                    wait = self.wait
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
        told = None
        if self.learn_from_headers and headers:
            rate_limited = exc is not None and getattr(exc, "status", None) == 429
            told = limit_values(headers, rate_limited, self.max_block)
        memory, deferred = self._memory, permit.req
        if deferred is not None and memory is not None:
            if memory.counts_tokens(permit.slots, told):  # a limit learned meanwhile
                permit.est_in, permit.est_out = self._estimate(deferred)
            elif told is None and not permit.permit_id:
                return  # no token counted, no lease held, nothing learned: nothing to settle
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
        try:
            if self._memory is not None:
                self._memory.give_now(
                    permit.slots, deltas, permit.permit_id, permit.dep_scope, told
                )
            else:
                await self._buckets.give(
                    permit.slots, deltas, permit.permit_id, permit.dep_scope, told
                )
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


#: ``@`` and the base URL that end a deployment's key (``provider/model@base_url``).
_AT_URL = re.compile(r"@[A-Za-z][A-Za-z0-9+.-]*://.*\Z", re.S)


def _describe(scope: str) -> str:
    """A scope as errors name it: a deployment by ``provider/model``, not its base URL."""
    if scope.startswith("dep:"):
        return "deployment " + _AT_URL.sub("", scope[4:].split("#", 1)[0])
    if scope.startswith("key:"):
        return "the API key"
    if scope.startswith("provider:"):
        return "provider " + scope[9:].split("#", 1)[0] + " (its declared rate limits)"
    kind, _, name = scope.partition(":")
    return f"{kind} {name!r}"


def _new_slot(scope: str, lim: Limits) -> Slot:
    return Slot(scope, lim.vector, lim.concurrent or 0)


def _spec(lim: Limits) -> str:
    """The limits of a scope as text, for the name of a process-wide scope."""
    return ",".join(f"{v:g}" for v in (*lim.vector, lim.concurrent or 0))


def _buckets_for(store: Store | None, clock: Callable[[], float], max_block: float) -> Buckets:
    if store is None or store.kind != "redis":
        return MemoryBuckets(clock, max_block)
    from ..state.redis_store import RedisStore
    from .ratelimit_redis import RedisBuckets

    assert isinstance(store, RedisStore)
    return RedisBuckets(store, max_block)
