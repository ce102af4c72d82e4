"""The engine: one implementation of a chat call that every facade uses.

    resolve (alias / provider/model / backend object) -> request -> pipeline -> response

    pipeline:  for each candidate of the fallback chain (routing.py):
                   circuit breaker (breaker.py) -> retry loop (retry.py) -> backend
                   (an adapter + the transport, or a network-free backend)

Every response and every final error carries the decision trace (``trace.py``): one entry per
attempt or skipped candidate. Clock and sleep are injectable so tests never sleep.

The engine is composed, not mixed: each logical call is a :class:`~llmrelay.core.call.Call`
(``call.py``: built once per call, it walks the candidates and records the outcome), the
attempts on one deployment are the engine's own :class:`~llmrelay.core.attempts.AttemptRunner`
(``engine.attempts``), streamed calls are functions over a ``Call`` (``streamed.py``), and the
per-call options are ``options.py``'s (re-exported here).
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..catalog.provider_registry import ProviderRegistry, default_providers
from ..errors import InvalidRequestError, LLMRelayError, UnknownModelError
from ..providers.backends import Backend, HttpBackend, get_adapter, size_limit
from ..providers.resolve import Target, resolve_target, to_deployment
from ..providers.table import PROVIDERS, Deployment, env_reads, env_values
from ..reliability.breaker import BreakerRegistry
from ..transport.base import (
    DEFAULT_MAX_EVENT_BYTES,
    DEFAULT_MAX_RESPONSE_BYTES,
    Timeouts,
    Transport,
)
from ..types import (
    GenerationParams,
    Message,
    MessagesInput,
    Response,
    Usage,
    normalize_messages,
)
from .attempts import AttemptRunner, Breaker
from .call import Call, traced
from .layers import (
    BudgetLayer,
    CacheLayer,
    CallContext,
    CallRecord,
    CatalogLayer,
    LimiterLayer,
    Recorder,
    check_parts,
)
from .options import DEFAULT_TIMEOUTS, NO_OPTIONS, CallOptions, positive_option
from .options import OPTION_NAMES as OPTION_NAMES  # re-exported
from .options import timeouts_from as timeouts_from  # re-exported
from .retry import RetryPolicy
from .routing import Plan, validate_chain
from .streamed import replay_chunks as replay_chunks  # re-exported
from .streamed import stream_call, stream_candidates
from .streaming import ResponseStream

__all__ = ["DEFAULT_TIMEOUTS", "CallOptions", "Engine", "ModelRef"]

logger = logging.getLogger("llmrelay.engine")

_randbits = random.getrandbits
_new = object.__new__
_now = time.time
_MS48 = (1 << 48) - 1

#: What a caller may name as the model: an alias or "provider/model", a Target, or a backend.
ModelRef = str | Target | Backend


class Engine:
    """Holds the transport and the reliability settings; answers calls.

    Safe to share across tasks and threads. ``breakers=None`` turns circuit breakers off;
    ``retry=RetryPolicy(max_retries=0)`` turns retries off. ``providers``: the provider registry
    whose base URLs and declared rate limits apply (default: ``default_providers()``); when a
    provider there declares limits and the engine has no limiter, ``limiter_factory()`` (else
    an in-process ``RateLimiter``) makes one. ``max_response_bytes`` (default
    32 MiB) bounds a response body once decompressed and ``max_event_bytes`` (default 4 MiB) one
    stream event: past either, reading stops with ``ResponseTooLargeError``.
    """

    def __init__(
        self,
        transport: Transport | None = None,
        *,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        retry: RetryPolicy | None = None,
        breakers: BreakerRegistry | bool | None = True,
        retry_budget: bool = True,
        fallbacks: Sequence[str] = (),
        context_window_fallbacks: Sequence[str] = (),
        content_filter_fallbacks: Sequence[str] = (),
        deadline: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        cache: CacheLayer | None = None,
        limiter: LimiterLayer | None = None,
        budget: BudgetLayer | None = None,
        catalog: CatalogLayer | None = None,
        recorder: Recorder | None = None,
        log_content: bool = False,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        providers: ProviderRegistry | None = None,
        limiter_factory: Callable[[], LimiterLayer] | None = None,
    ) -> None:
        #: Bounds on what one answer may hold (decoded body, one stream event), in bytes.
        self.max_response_bytes = size_limit("max_response_bytes", max_response_bytes)
        self.max_event_bytes = size_limit("max_event_bytes", max_event_bytes)
        if transport is None:
            from ..transport.native import default_transport

            transport = default_transport()
        positive_option("deadline", deadline)
        check_parts(transport=transport, breakers=breakers, retry=retry, cache=cache)
        check_parts(limiter=limiter, budget=budget, catalog=catalog, recorder=recorder)
        self.transport = transport
        self.timeouts = timeouts
        self.retry = retry or RetryPolicy()
        if breakers is True:
            breakers = BreakerRegistry(failure_threshold=5, recovery_timeout=30.0, clock=clock)
        self.breakers: BreakerRegistry | None = breakers or None
        self.fallbacks = validate_chain(fallbacks) if fallbacks else ()
        self.context_window_fallbacks = (
            validate_chain(context_window_fallbacks, what="context-window chain")
            if context_window_fallbacks
            else ()
        )
        self.content_filter_fallbacks = (
            validate_chain(content_filter_fallbacks, what="content-filter chain")
            if content_filter_fallbacks
            else ()
        )
        self.deadline = deadline
        self.clock = clock
        self.sleep = sleep
        self.cache = cache
        self.limiter = limiter
        self.budget = budget
        self.catalog = catalog
        self.recorder = recorder
        #: Store prompts and answers in the request log (off by default).
        self.log_content = log_content
        self._http_backends: dict[str, HttpBackend] = {}
        #: (id(target), api_key, base_url) -> (target, deployment), see ``deployment``.
        self._deployments: dict[tuple[int, Any, Any], tuple[Target, Deployment]] = {}
        #: id(target) -> (target, deployment, the variables it read, their values), see
        #: ``_env_deployment``.
        self._env_deployments: dict[int, tuple[Target, Deployment, tuple[Any, ...], Any]] = {}
        #: (target, api_key, base_url, deployment) of the last ``deployment`` found above.
        self._last_deployment: tuple[Target, Any, Any, Deployment] | None = None
        #: id(target) -> the plan of a call with no fallbacks on it, see ``plan``.
        self._single_plans: dict[int, Plan] = {}
        self._recorder_failed = False
        #: The attempts on one deployment (breaker, deadline, rate limit, retries); owned.
        self.attempts = AttemptRunner(self, retry_budget=retry_budget)
        if providers is not None and not isinstance(providers, ProviderRegistry):
            raise InvalidRequestError(
                f"providers must be a ProviderRegistry, not {type(providers).__name__}"
            )
        #: The provider registry this engine uses (base URLs, declared rate limits).
        self.providers = providers if providers is not None else default_providers()
        self._own_specs = not self.providers.is_default
        self._limiter_factory = limiter_factory
        self._limiter_lock = threading.Lock()
        self.providers.watch(self)

    def use_provider_limits(self, registry: ProviderRegistry) -> None:
        """Enforce the rate limits ``registry``'s providers declare (called by the registry):
        through this engine's limiter, made now if it has none."""
        with self._limiter_lock:
            lim = self.limiter
            if lim is None:
                if self._limiter_factory is not None:
                    lim = self._limiter_factory()
                else:
                    from ..reliability.ratelimit import RateLimiter

                    lim = RateLimiter(clock=self.clock, sleep=self.sleep)
                check_parts(limiter=lim)
                self.limiter = lim
        attach = getattr(lim, "use_providers", None)
        if attach is not None:
            attach(registry)

    # ------------------------------------------------------------------ resolution

    def backend_for(self, dep: Deployment) -> Backend:
        obj = dep.options.get("backend")
        if obj is not None:
            return obj  # type: ignore[no-any-return]
        b = self._http_backends.get(dep.wire)
        if b is None:
            if dep.wire == "test":
                from ..providers.doubles import backend_for_test_model

                return backend_for_test_model(dep.model)
            b = self._http_backends[dep.wire] = HttpBackend(
                get_adapter(dep.wire),
                self.transport,
                max_response_bytes=self.max_response_bytes,
                max_event_bytes=self.max_event_bytes,
            )
        return b

    def breaker_for(self, dep: Deployment) -> Breaker | None:
        """The circuit breaker of a deployment (None when breakers are off)."""
        return self.attempts.breaker_for(dep)

    # ------------------------------------------------------------------ resolution

    def plan(self, model: ModelRef, opts: CallOptions = NO_OPTIONS) -> Plan:
        """The call's primary target and fallback chains (raises on an unknown model)."""
        if model.__class__ is str:
            try:
                primary = self.resolve(model) if self._own_specs else resolve_target(model)
            except UnknownModelError:
                if self._own_specs:
                    raise
                primary = self.resolve(model)  # a bare catalog name (text-embedding-3-small)
        elif isinstance(model, Target):
            primary = model
        elif isinstance(model, str):
            primary = self.resolve(model)
        elif isinstance(model, Backend):
            name = getattr(model, "name", type(model).__name__)
            primary = Target("test", str(name), options={"backend": model})
        else:
            raise InvalidRequestError(
                f"model must be an alias, 'provider/model', a Target or a backend, not "
                f"{type(model).__name__}"
            )
        fallbacks = opts.fallbacks
        if fallbacks is None and not primary.fallbacks and self.fallbacks:
            fallbacks = self.fallbacks
        if not (
            fallbacks
            or (fallbacks is None and primary.fallbacks)
            or opts.context_window_fallbacks
            or opts.content_filter_fallbacks
            or (opts.context_window_fallbacks is None and self.context_window_fallbacks)
            or (opts.content_filter_fallbacks is None and self.content_filter_fallbacks)
        ):
            # One candidate (most calls): nothing to resolve. Its plan is kept per target (a
            # plan of empty chains is never changed: ``Chain`` only empties non-empty ones).
            plan = self._single_plans.get(id(primary))
            if plan is None or plan.primary is not primary:
                if len(self._single_plans) >= 256:
                    self._single_plans.clear()
                plan = self._single_plans[id(primary)] = Plan(primary, [], [], [])
            return plan
        return Plan.build(
            primary,
            fallbacks,
            opts.context_window_fallbacks
            if opts.context_window_fallbacks is not None
            else self.context_window_fallbacks,
            opts.content_filter_fallbacks
            if opts.content_filter_fallbacks is not None
            else self.content_filter_fallbacks,
        )

    def resolve(self, name: str) -> Target:
        """``resolve_target``, plus ``provider/model`` for a provider only this engine's own
        registry knows, plus a bare embedding model name the embeddings table knows
        (``text-embedding-3-small`` -> ``openai``; chat models' bare names resolve through the
        built-in aliases)."""
        try:
            return resolve_target(name)
        except UnknownModelError:
            provider, sep, model = name.partition("/")
            if self._own_specs and sep and model and self.providers.spec_for(provider):
                return Target(provider, model)
            from ..catalog.embeddings import provider_of

            found = provider_of(name)
            if found is not None:
                return Target(found, name)
            raise

    def preflight(self, model: ModelRef, opts: CallOptions = NO_OPTIONS) -> Deployment | None:
        """Resolve a call's primary deployment without calling it: raises its resolution error
        (unknown model, missing key) unless the call has fallbacks (then None)."""
        return self.primary(self.plan(model, opts), opts)[0]

    def primary(
        self, plan: Plan, opts: CallOptions
    ) -> tuple[Deployment | None, LLMRelayError | None]:
        """The primary deployment; its resolution error is raised unless fallbacks exist."""
        try:
            return self.deployment(plan.primary, opts, True), None
        except LLMRelayError as exc:
            if not plan.fallbacks:
                raise
            return None, exc

    def deployment(self, t: Target, opts: CallOptions, primary: bool) -> Deployment:
        """The deployment of target ``t`` for a call."""
        # Call-level key/base URL apply to the primary only: fallbacks are other deployments.
        spec = self.providers.spec_for(t.provider) if self._own_specs else None
        if not primary:
            return to_deployment(t, headers=opts.headers, spec=spec)
        api_key, base_url = opts.api_key, opts.base_url
        if (
            spec is not None
            or opts.headers
            or not (api_key or t.api_key)
            or not (base_url or t.base_url)
        ):
            # The environment (or the client's own provider registry) may supply the key or
            # URL: read it on every call.
            if spec is None and api_key is None and base_url is None and not opts.headers:
                return self._env_deployment(t)
            return to_deployment(
                t, api_key=api_key, base_url=base_url, headers=opts.headers, spec=spec
            )
        # Key and URL given: nothing comes from the environment, so the same target, key and
        # URL give the same deployment (while the provider's row is the same).
        last = self._last_deployment  # most calls repeat the previous one's: no key tuple
        if last is not None and last[0] is t and last[1] == api_key and last[2] == base_url:
            dep = last[3]
            if PROVIDERS.get(t.provider) is dep.spec:
                return dep
        ck = (id(t), api_key, base_url)
        hit = self._deployments.get(ck)
        if hit is not None and hit[0] is t and PROVIDERS.get(t.provider) is hit[1].spec:
            dep = hit[1]
        else:
            dep = to_deployment(t, api_key=api_key, base_url=base_url)
            if len(self._deployments) >= 256:
                self._deployments.clear()
            self._deployments[ck] = (t, dep)
        self._last_deployment = (t, api_key, base_url, dep)
        return dep

    def _env_deployment(self, t: Target) -> Deployment:
        """``to_deployment(t)`` for a target whose key or URL comes from the environment: the
        same while the variables it reads hold the same values (compared on every call) and
        the provider's row is the same."""
        held = self._env_deployments.get(id(t))
        if held is not None and held[0] is t:
            kept = held[1]
            if PROVIDERS.get(t.provider) is kept.spec and env_values(held[2]) == held[3]:
                return kept
        spec = PROVIDERS.get(t.provider)
        reads: tuple[Any, ...] | None = None
        if spec is not None:  # (read before: a variable set meanwhile is read next time)
            reads = env_reads(spec, t.api_key_env, bool(t.api_key), bool(t.base_url))
        values = env_values(reads) if reads is not None else None
        dep = to_deployment(t)
        if reads is not None and dep.spec is spec:
            if len(self._env_deployments) >= 256:
                self._env_deployments.clear()
            self._env_deployments[id(t)] = (t, dep, reads, values)
        return dep

    def context(self, plan: Plan, opts: CallOptions) -> CallContext:
        """A new call's context: its trace id, start time and deadline."""
        start = self.clock()
        deadline = opts.deadline
        if deadline is None:
            policy = plan.primary.policy
            deadline = policy.get("deadline", self.deadline) if policy else self.deadline
        if deadline is not None:
            positive_option("deadline", deadline)
        # ``CallContext(opts, trace_id, start, deadline_at=..., alias=..., catalog=...,
        # providers=...)``, built without the dataclass ``__init__`` (keyword matching and
        # default factories), every field set.
        c: CallContext = _new(CallContext)
        c.opts = opts
        c.started_at = now = _now()
        # 32 hex digits: 48 bits of Unix milliseconds, then 80 random bits (random.getrandbits:
        # uuid4 costs a syscall). Time first, as AWS X-Ray's trace ids in W3C form: the request
        # log's trace_id index then grows at its end instead of at a random page per call (a
        # third of the log's write cost at 60,000 rows, and more as it grows); the right-most 56
        # bits stay random, as W3C Trace Context Level 2 asks of a random trace id.
        c.trace_id = opts.trace_id or f"{int(now * 1000) & _MS48:012x}{_randbits(80):020x}"
        c.start = start
        c.deadline_at = start + deadline if deadline is not None else None
        c.alias = plan.primary.alias
        c.trace = []
        c.usage = Usage()
        c.cost = None
        c.cache_hit = False
        c.reservation = None
        c.catalog = self.catalog
        c.providers = self.providers
        return c

    # ------------------------------------------------------------------ calls

    async def complete(
        self,
        model: ModelRef,
        messages: MessagesInput,
        params: GenerationParams,
        opts: CallOptions = NO_OPTIONS,
    ) -> Response:
        """One logical, non-streamed call (structured output when ``opts.response_model``)."""
        msgs = normalize_messages(messages, opts.system)
        return await self.complete_messages(model, msgs, params, opts)

    async def complete_messages(
        self,
        model: ModelRef,
        msgs: list[Message],
        params: GenerationParams,
        opts: CallOptions = NO_OPTIONS,
    ) -> Response:
        """``complete`` with the messages already normalised (``normalize_messages``): cache ->
        budget -> candidates (-> structured re-asks) -> cost -> record -> cache store."""
        spec = None
        if opts.response_model is not None:
            from .structured import prepare, validates

            spec, params = prepare(opts.response_model, params, opts.max_reasks)
        call = Call(self, self.plan(model, opts), msgs, params, opts, spec=spec)
        call.begin()
        ctx = call.ctx
        key = call.cache_key
        if key is not None:
            assert self.cache is not None
            hit = await self.cache.get(key, ctx)
            if hit is not None and (spec is None or validates(spec, hit)):
                return call.serve_hit(hit)
        try:
            one = call.single()
            if one is not None:  # one candidate: its attempts, without the candidates' walk
                dep, req, t = one
                try:
                    resp = await self.attempts.run(call, dep, req, t)
                except Exception as exc:
                    traced(exc, ctx.trace)
                    raise
            else:
                resp, dep, t, _ = await call.candidates(self.attempts.run)
            if spec is not None:
                resp, dep, t = await call.structured(resp, dep, t)
            call.finish(resp, t)
        except BaseException as exc:
            call.record_failure(exc)
            raise
        finally:
            if ctx.reservation is not None:
                await call.settle()
        if key is not None:
            await call.cache_store(resp)
        if self.recorder is not None:
            call.record(resp, dep)
        return resp

    def stream(
        self,
        model: ModelRef,
        messages: MessagesInput,
        params: GenerationParams,
        opts: CallOptions = NO_OPTIONS,
    ) -> ResponseStream:
        """A streamed call. Resolution and validation errors are raised here, before iteration.

        With ``opts.response_model`` the text streams as it comes and the final chunk's
        ``response.object`` is the validated object (a re-ask re-streams: see ``streamed.py``).
        """
        spec = None
        if opts.response_model is not None:
            from .structured import prepare

            spec, params = prepare(opts.response_model, params, opts.max_reasks)
        positive_option("first_token_timeout", opts.first_token_timeout)
        msgs = normalize_messages(messages, opts.system)
        call = Call(self, self.plan(model, opts), msgs, params, opts, stream=True, spec=spec)
        # A missing key failed in Call(). Without a cache or a response model the candidates'
        # generator is the whole call (one generator fewer for every chunk).
        if self.cache is None and spec is None:
            return ResponseStream(stream_candidates(call, top=True), call)
        return ResponseStream(stream_call(call), call)

    # ------------------------------------------------------------------ recording

    def emit(self, rec: CallRecord) -> None:
        """Hand a record to the recorder; a failing recorder never fails the call."""
        assert self.recorder is not None
        try:
            self.recorder.record(rec)
        except Exception:
            if not self._recorder_failed:
                self._recorder_failed = True
                logger.exception("the recorder %r failed; calls go on unrecorded", self.recorder)
