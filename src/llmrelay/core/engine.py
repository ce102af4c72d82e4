"""The engine: one implementation of a chat call that every facade uses.

    resolve (alias / provider/model / backend object) -> request -> pipeline -> response

    pipeline:  for each candidate of the fallback chain (routing.py):
                   circuit breaker (breaker.py) -> retry loop (retry.py) -> backend
                   (an adapter + the transport, or a network-free backend)

Every response and every final error carries the decision trace (``trace.py``): one entry per
attempt or skipped candidate. Clock and sleep are injectable so tests never sleep.

The engine is split by concern: the attempts on one deployment are ``attempts.py``'s
``AttemptRunner``, streamed calls are ``engine_stream.py``'s ``StreamingCalls`` (both mixed into
:class:`Engine`), and the per-call options are ``call_options.py``'s (re-exported here).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from ..errors import (
    AllAttemptsFailedError,
    BudgetExceededError,
    DeadlineExceededError,
    InvalidRequestError,
    LLMRelayError,
)
from ..providers.backends import Backend, HttpBackend, get_adapter, size_limit
from ..providers.resolve import Target, resolve_target, to_deployment
from ..providers.table import Deployment
from ..reliability.breaker import BreakerRegistry
from ..transport.base import (
    DEFAULT_MAX_EVENT_BYTES,
    DEFAULT_MAX_RESPONSE_BYTES,
    Timeouts,
    Transport,
)
from ..types import (
    ChatRequest,
    GenerationParams,
    Message,
    MessagesInput,
    Response,
    Usage,
    merge_params,
    normalize_messages,
)
from .engine_stream import StreamingCalls
from .engine_stream import replay_chunks as replay_chunks  # re-exported
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
from .retry import RetryBudget, RetryPolicy
from .routing import Chain, Plan, validate_chain
from .trace import Attempt

__all__ = ["DEFAULT_TIMEOUTS", "CallOptions", "Engine", "ModelRef"]

logger = logging.getLogger("llmrelay.engine")

T = TypeVar("T")

#: What a caller may name as the model: an alias or "provider/model", a Target, or a backend.
ModelRef = str | Target | Backend


class Engine(StreamingCalls):
    """Holds the transport and the reliability settings; answers calls.

    Safe to share across tasks and threads. ``breakers=None`` turns circuit breakers off;
    ``retry=RetryPolicy(max_retries=0)`` turns retries off. ``max_response_bytes`` (default
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
    ) -> None:
        #: Bounds on what one answer may hold (decoded body, one stream event), in bytes.
        self.max_response_bytes = size_limit("max_response_bytes", max_response_bytes)
        self.max_event_bytes = size_limit("max_event_bytes", max_event_bytes)
        if transport is None:
            from ..transport.http import default_transport

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
        self._budgets: dict[str, RetryBudget] | None = {} if retry_budget else None
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
        self._recorder_failed = False

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

    def plan(self, model: ModelRef, opts: CallOptions = NO_OPTIONS) -> Plan:
        """Where a call to ``model`` goes: its primary target and fallback chains."""
        return self._plan(model, opts)

    def preflight(self, model: ModelRef, opts: CallOptions = NO_OPTIONS) -> Deployment | None:
        """Resolve the primary deployment now (keys, base URL), before any call is sent.

        Raises its resolution error (unknown model, missing key) unless the call has fallbacks,
        in which case an unresolvable primary is ``None`` (a fallback may still answer)."""
        return self._primary(self._plan(model, opts), opts)[0]

    def _plan(self, model: ModelRef, opts: CallOptions) -> Plan:
        if isinstance(model, Target):
            primary = model
        elif isinstance(model, str):
            primary = resolve_target(model)
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

    def _deployment(self, t: Target, opts: CallOptions, primary: bool) -> Deployment:
        # Call-level key/base URL apply to the primary only: fallbacks are other deployments.
        if primary:
            return to_deployment(
                t, api_key=opts.api_key, base_url=opts.base_url, headers=opts.headers
            )
        return to_deployment(t, headers=opts.headers)

    @staticmethod
    def _request(
        t: Target, messages: list[Message], params: GenerationParams, stream: bool
    ) -> ChatRequest:
        if t.system_message and not any(m.role == "system" for m in messages):
            messages = [Message("system", t.system_message), *messages]
        return ChatRequest(messages, merge_params(t.params, params), stream)

    def _timeouts(self, t: Target, opts: CallOptions) -> Timeouts:
        """Per attempt: the call's ``timeout``, else the alias policy's, else the engine's."""
        value = opts.timeout if opts.timeout is not None else t.policy.get("timeout")
        return timeouts_from(value, self.timeouts)

    def _policy(self, t: Target, opts: CallOptions) -> RetryPolicy:
        if opts.retry is not None:
            return opts.retry
        n = opts.retries if opts.retries is not None else t.policy.get("retries")
        if n is not None and n != self.retry.max_retries:
            return dataclasses.replace(self.retry, max_retries=n)
        return self.retry

    # ------------------------------------------------------------------ non-streamed calls

    async def complete(
        self,
        model: ModelRef,
        messages: MessagesInput,
        params: GenerationParams,
        opts: CallOptions = NO_OPTIONS,
    ) -> Response:
        """One logical, non-streamed call (structured output when ``opts.response_model``)."""
        return await self._complete(model, normalize_messages(messages, opts.system), params, opts)

    def _context(self, plan: Plan, opts: CallOptions) -> CallContext:
        start = self.clock()
        deadline = opts.deadline
        if deadline is None:
            deadline = plan.primary.policy.get("deadline", self.deadline)
        if deadline is not None:
            positive_option("deadline", deadline)
        return CallContext(
            opts,
            opts.trace_id or f"{random.getrandbits(128):032x}",  # uuid4 costs a syscall
            start,
            deadline_at=start + deadline if deadline is not None else None,
            alias=plan.primary.alias,
        )

    def _primary(
        self, plan: Plan, opts: CallOptions
    ) -> tuple[Deployment | None, LLMRelayError | None]:
        """The primary deployment; its resolution error is raised unless fallbacks exist."""
        try:
            return self._deployment(plan.primary, opts, True), None
        except LLMRelayError as exc:
            if not plan.fallbacks:
                raise
            return None, exc

    async def _complete(
        self, model: ModelRef, msgs: list[Message], params: GenerationParams, opts: CallOptions
    ) -> Response:
        """One logical call: cache -> budget -> candidates (-> structured re-asks) -> cost ->
        record -> cache store."""
        spec = None
        if opts.response_model is not None:
            from .structured import prepare

            spec, params = prepare(opts.response_model, params, opts.max_reasks)
        plan = self._plan(model, opts)
        dep0, err0 = self._primary(plan, opts)
        ctx = self._context(plan, opts)
        req0 = self._request(plan.primary, msgs, params, False)
        key = self._cache_key(dep0, req0, ctx)
        if key is not None:
            assert self.cache is not None
            assert dep0 is not None
            hit = await self.cache.get(key, ctx)
            if hit is not None and (spec is None or _validates(spec, hit)):
                return self._serve_hit(hit, dep0, ctx, stream=False, req=req0)
        try:
            resp, dep, t, _ = await self._try_candidates(
                plan, dep0, err0, msgs, params, ctx, req0, False, self._run
            )
            if spec is not None:
                resp, dep, t = await self._structured(spec, resp, dep, t, msgs, params, ctx)
            self._finish(resp, t, ctx)
        except BaseException as exc:
            self._record_failure(exc, plan, ctx, req0, stream=False)
            raise
        finally:
            if ctx.reservation is not None:
                assert self.budget is not None
                await self.budget.settle(ctx.reservation, ctx)
        if key is not None:
            await self._cache_store(key, resp, ctx)
        if self.recorder is not None:
            self._record(resp, dep, ctx, req0, stream=False)
        return resp

    def _cache_key(
        self, dep0: Deployment | None, req0: ChatRequest, ctx: CallContext
    ) -> str | None:
        """The response cache's key for the call; None when the call is not cached (no cache,
        ``use_cache=False``, an unresolved primary, or a request the cache will not take)."""
        cache = self.cache
        if cache is None or dep0 is None or ctx.opts.use_cache is False:
            return None
        return cache.key(req0, dep0, self.backend_for(dep0), ctx)

    async def _cache_store(self, key: str, resp: Response, ctx: CallContext) -> None:
        """Store a fresh answer under ``key``, unless the call said ``no_store`` or it is an
        error."""
        if not ctx.opts.no_store and resp.finish_reason != "error":
            assert self.cache is not None
            await self.cache.put(key, resp, ctx)

    async def _try_candidates(
        self,
        plan: Plan,
        dep0: Deployment | None,
        err0: LLMRelayError | None,
        msgs: list[Message],
        params: GenerationParams,
        ctx: CallContext,
        req0: ChatRequest | None,
        stream: bool,
        attempt: Callable[
            [Deployment, ChatRequest, RetryPolicy, Timeouts, CallContext], Awaitable[T]
        ],
    ) -> tuple[T, Deployment, Target, ChatRequest]:
        """Walk the fallback chain until ``attempt`` (the attempts on one deployment: ``_run``
        or ``_open_stream``) succeeds; returns what it returned, with the deployment, target
        and request it succeeded on. Raises the call's failure when no candidate succeeds."""
        opts = ctx.opts
        chain = Chain(plan)
        for t in chain:
            try:
                dep, req = self._prepare(t, plan, dep0, err0, msgs, params, ctx, req0, stream)
            except LLMRelayError as exc:
                if not chain.failed(exc):
                    break
                continue
            if self.budget is not None:
                # Before every candidate, not once per call: a fallback (or a re-ask) may cost
                # far more than the primary the call was first admitted for.
                try:
                    ctx.reservation = await self.budget.reserve(req, dep, ctx)
                except BudgetExceededError as exc:
                    ctx.trace.append(
                        Attempt(t.label, "skipped", error=type(exc).__name__, reason=exc.message)
                    )
                    chain.errors.append(exc)  # the budget ends the call: no further candidates
                    break
            try:
                out = await attempt(dep, req, self._policy(t, opts), self._timeouts(t, opts), ctx)
            except Exception as exc:
                if not chain.failed(exc):
                    break
                continue
            return out, dep, t, req
        failure = self._failure(chain.errors, ctx.trace)
        chain.errors.clear()  # the traceback keeps this frame: do not keep the error from it too
        raise failure

    def _prepare(
        self,
        t: Target,
        plan: Plan,
        dep0: Deployment | None,
        err0: LLMRelayError | None,
        msgs: list[Message],
        params: GenerationParams,
        ctx: CallContext,
        req0: ChatRequest | None,
        stream: bool,
    ) -> tuple[Deployment, ChatRequest]:
        """The deployment and request for candidate ``t`` (``dep0``/``err0``/``req0`` are the
        primary's). A candidate that cannot be called (a missing key, an unknown model, a
        capability the catalog says it lacks) is recorded as skipped and its error raised."""
        try:
            if t is plan.primary:
                if err0 is not None:
                    raise err0
                assert dep0 is not None
                dep = dep0
            else:
                dep = self._deployment(t, ctx.opts, False)
            if t is plan.primary and req0 is not None:
                req = req0
            else:
                req = self._request(t, msgs, params, stream)
            if self.catalog is not None:
                req = self.catalog.prepare(req, dep)
        except LLMRelayError as exc:
            ctx.trace.append(
                Attempt(t.label, "skipped", error=type(exc).__name__, reason=exc.message)
            )
            raise
        return dep, req

    async def _structured(
        self,
        spec: Any,
        resp: Response,
        dep: Deployment,
        t: Target,
        msgs: list[Message],
        params: GenerationParams,
        ctx: CallContext,
    ) -> tuple[Response, Deployment, Target]:
        """Validate the answer into the response model; re-ask the same deployment with the
        validation errors (``max_reasks`` times) while it does not validate."""
        from pydantic import ValidationError

        from .structured import failure, parse_structured, reask_message

        max_reasks = ctx.opts.max_reasks
        for n in range(max_reasks + 1):
            try:
                resp.object = parse_structured(spec.model, resp.text)
                return resp, dep, t
            except ValidationError as exc:
                left = n < max_reasks
                ctx.trace[-1].reason = (
                    f"output did not validate into {spec.model.__name__} ({exc.error_count()} "
                    f"errors); {'re-asking' if left else 'no re-asks left'}"
                )
                if not left:
                    err = failure(spec, resp, exc, n + 1, ctx.usage)
                    err.trace = ctx.trace
                    raise err from None
                msgs = [
                    *msgs,
                    Message("assistant", resp.text or "(no output)"),
                    reask_message(spec, exc, truncated=resp.finish_reason == "length"),
                ]
                resp, dep, t, _ = await self._try_candidates(
                    Plan(t, [], [], []), dep, None, msgs, params, ctx, None, False, self._run
                )
        raise AssertionError("unreachable")  # pragma: no cover

    def _finish(self, resp: Response, t: Target, ctx: CallContext) -> None:
        resp.latency_s = self.clock() - ctx.start
        resp.alias = t.alias
        resp.trace = ctx.trace
        resp.total_usage = ctx.usage
        resp.cost = ctx.cost

    def _serve_hit(
        self, hit: Response, dep: Deployment, ctx: CallContext, *, stream: bool, req: ChatRequest
    ) -> Response:
        hit.cache_hit = True
        ctx.cache_hit = True
        ctx.trace.append(Attempt(dep.label, "cache_hit", reason="served from the response cache"))
        hit.trace = ctx.trace
        hit.latency_s = self.clock() - ctx.start
        hit.total_usage = Usage()  # nothing was spent
        if self.recorder is not None:
            self._record(hit, dep, ctx, req, stream=stream)
        return hit

    def _record(
        self, resp: Response, dep: Deployment, ctx: CallContext, req: ChatRequest, *, stream: bool
    ) -> None:
        if self.recorder is None:
            return
        self._emit(
            CallRecord(
                trace_id=ctx.trace_id,
                started_at=ctx.started_at,
                alias=ctx.alias,
                provider=dep.provider,
                model=resp.model or dep.model,
                outcome="cache_hit" if ctx.cache_hit else "success",
                latency_s=resp.latency_s,
                usage=ctx.usage if not ctx.cache_hit else resp.usage,
                cost=ctx.cost,
                attempts=list(ctx.trace),
                time_to_first_token_s=resp.time_to_first_token_s,
                cache_hit=ctx.cache_hit,
                stream=stream,
                tenant=ctx.tenant,
                tags=dict(ctx.tags),
                prompt=[m.to_dict() for m in req.messages] if self.log_content else None,
                response_text=resp.text if self.log_content else None,
            )
        )

    def _record_failure(
        self, exc: BaseException, plan: Plan, ctx: CallContext, req: ChatRequest, *, stream: bool
    ) -> None:
        if self.recorder is None:
            return
        last = next((a for a in reversed(ctx.trace) if a.outcome != "skipped"), None)
        provider, _, model = (last.deployment if last else plan.primary.label).partition("/")
        # A cancelled call, or a stream the caller left early, may still have spent tokens.
        outcome = "error" if isinstance(exc, Exception) else "cancelled"
        self._emit(
            CallRecord(
                trace_id=ctx.trace_id,
                started_at=ctx.started_at,
                alias=ctx.alias,
                provider=provider if model else plan.primary.provider,
                model=model or plan.primary.model,
                outcome=outcome,
                latency_s=self.clock() - ctx.start,
                usage=ctx.usage,
                cost=ctx.cost,
                attempts=list(ctx.trace),
                error=type(exc).__name__,
                status=getattr(exc, "status", None),
                stream=stream,
                tenant=ctx.tenant,
                tags=dict(ctx.tags),
                prompt=[m.to_dict() for m in req.messages] if self.log_content else None,
            )
        )

    def _emit(self, rec: CallRecord) -> None:
        """Hand a record to the recorder; a failing recorder never fails the call."""
        assert self.recorder is not None
        try:
            self.recorder.record(rec)
        except Exception:
            if not self._recorder_failed:
                self._recorder_failed = True
                logger.exception("the recorder %r failed; calls go on unrecorded", self.recorder)

    @staticmethod
    def _failure(errors: list[BaseException], trace: list[Attempt]) -> BaseException:
        last = errors[-1]
        if len(errors) == 1:
            err = last
        elif isinstance(last, DeadlineExceededError | BudgetExceededError):
            # The deadline or the budget stopped the chain (not every candidate failed): say
            # so, with the candidates that did fail as the cause.
            err = last
            if err.__cause__ is None:
                what = "the deadline" if isinstance(last, DeadlineExceededError) else "the budget"
                err.__cause__ = AllAttemptsFailedError(
                    f"{len(errors) - 1} candidates failed before {what}",
                    [e for e in errors[:-1] if isinstance(e, Exception)],
                )
        else:
            err = AllAttemptsFailedError(
                f"all {len(errors)} candidates failed",
                [e for e in errors if isinstance(e, Exception)],
            )
        if isinstance(err, LLMRelayError):
            err.trace = trace
        else:
            err.llmrelay_trace = trace  # type: ignore[attr-defined]
        return err


def _validates(spec: Any, resp: Response) -> bool:
    """Does a cached answer still validate into the response model? (Sets ``resp.object``.)"""
    from pydantic import ValidationError

    from .structured import parse_structured

    try:
        resp.object = parse_structured(spec.model, resp.text)
    except ValidationError:
        return False
    return True
