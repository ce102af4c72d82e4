"""One logical call: what the engine knows about it, built once per call.

A :class:`Call` holds the call's plan, options, messages, parameters, structured-output spec,
context (trace, deadline, usage, the budget's reservation), the primary's deployment (or its
resolution error), the primary's request and the cache key. Its methods are the steps of the
call — walk the candidates of the fallback chain, re-ask for structured output, finish, serve a
cache hit, record — and read the engine's settings (layers, recorder, clock) through
``self.engine``. Nothing here is built per attempt; the attempts are the engine's
:class:`~llmrelay.core.attempts.AttemptRunner`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import (
    AllAttemptsFailedError,
    BudgetExceededError,
    DeadlineExceededError,
    LLMRelayError,
)
from ..providers.api_choice import choose_api
from ..providers.resolve import Target
from ..providers.table import Deployment
from ..types import ChatRequest, GenerationParams, Message, Response, Usage, merge_params
from ..types.params import NO_PARAMS
from .layers import CallContext, CallRecord
from .options import CallOptions
from .routing import Chain, Plan
from .trace import Attempt, sent_attempts

if TYPE_CHECKING:
    from .engine import Engine
    from .structured import StructuredSpec

__all__ = ["Call", "build_request", "traced"]

logger = logging.getLogger("llmrelay.engine")

T = TypeVar("T")

#: One candidate's attempts: ``AttemptRunner.run`` or ``AttemptRunner.open_stream``.
AttemptFn = Callable[["Call", Deployment, ChatRequest, Target], Awaitable[T]]


def build_request(
    t: Target, messages: list[Message], params: GenerationParams, stream: bool
) -> ChatRequest:
    """The request for target ``t``: its system message (unless the call has one) and its
    parameters under the call's."""
    if t.system_message and not any(m.role == "system" for m in messages):
        messages = [Message("system", t.system_message), *messages]
    base = t.params
    return ChatRequest(
        messages, params if base is NO_PARAMS else merge_params(base, params), stream
    )


class Call:
    """One logical call (see the module docstring)."""

    __slots__ = (
        "cache_key",
        "ctx",
        "dep0",
        "engine",
        "err0",
        "msgs",
        "opts",
        "params",
        "plan",
        "req0",
        "spec",
        "stream",
    )

    def __init__(
        self,
        engine: Engine,
        plan: Plan,
        msgs: list[Message],
        params: GenerationParams,
        opts: CallOptions,
        *,
        stream: bool = False,
        spec: StructuredSpec | None = None,
    ) -> None:
        self.engine = engine
        self.plan = plan
        self.opts = opts
        self.msgs = msgs
        self.params = params
        self.spec = spec
        self.stream = stream
        self.dep0: Deployment | None
        self.err0: LLMRelayError | None
        try:  # ``engine.primary(plan, opts)``, inline: raises unless fallbacks exist
            self.dep0, self.err0 = engine.deployment(plan.primary, opts, True), None
        except LLMRelayError as exc:
            if not plan.fallbacks:
                raise
            self.dep0, self.err0 = None, exc
        self.ctx: CallContext
        self.req0: ChatRequest | None = None
        self.cache_key: str | None = None

    def begin(self) -> None:
        """Start the call's clock and build its context, primary request and cache key (a
        streamed call begins when it is first iterated)."""
        self.ctx = self.engine.context(self.plan, self.opts)
        if self.engine.cache is not None:  # else built when first needed (``primary_request``)
            self.req0 = build_request(self.plan.primary, self.msgs, self.params, self.stream)
            self.cache_key = self._key()

    def primary_request(self) -> ChatRequest:
        """The primary's request (built once)."""
        req = self.req0
        if req is None:
            req = self.req0 = build_request(self.plan.primary, self.msgs, self.params, self.stream)
        return req

    @property
    def trace(self) -> list[Attempt]:
        """The attempts so far (none before the call began)."""
        try:
            return self.ctx.trace
        except AttributeError:  # not begun: no context yet
            return []

    @property
    def reservation(self) -> Any:
        """What the budget holds for the call (kept on the context: the budget layer sets it
        before any await, so a cancelled call still settles it)."""
        return self.ctx.reservation

    def _key(self) -> str | None:
        """The response cache's key; None when the call is not cached (no cache,
        ``use_cache=False``, an unresolved primary, or a request the cache will not take)."""
        engine = self.engine
        cache, dep0 = engine.cache, self.dep0
        if cache is None or dep0 is None or self.opts.use_cache is False:
            return None
        assert self.req0 is not None
        return cache.key(self.req0, dep0, engine.backend_for(dep0), self.ctx)

    # ------------------------------------------------------------------ the candidates

    def prepare(self, t: Target) -> tuple[Deployment, ChatRequest]:
        """The deployment and request for candidate ``t``. A candidate that cannot be called
        (a missing key, an unknown model, a capability the catalog says it lacks) is recorded
        as skipped and its error raised."""
        engine = self.engine
        try:
            primary = t is self.plan.primary
            if primary:
                if self.err0 is not None:
                    raise self.err0
                assert self.dep0 is not None
                dep = self.dep0
            else:
                dep = engine.deployment(t, self.opts, False)
            if primary:
                req = self.primary_request()
            else:
                req = build_request(t, self.msgs, self.params, self.stream)
            catalog = engine.catalog
            if catalog is not None:
                if self.opts.strict_params:
                    req = catalog.prepare(req, dep, strict_params=True)
                else:
                    req = catalog.prepare(req, dep)
            dep = choose_api(dep, req, self.opts.api, primary, tools_api(catalog, dep, req))
        except LLMRelayError as exc:
            self._skipped(t, exc)
            raise
        return dep, req

    def _skipped(self, t: Target, exc: LLMRelayError) -> None:
        self.ctx.trace.append(
            Attempt(t.label, "skipped", error=type(exc).__name__, reason=exc.message)
        )

    def single(self) -> tuple[Deployment, ChatRequest, Target] | None:
        """The deployment, request and target of the only candidate of a call without
        fallbacks or budget, prepared (a failure carries the trace); None for other calls."""
        plan = self.plan
        engine = self.engine
        if engine.budget is not None or plan.fallbacks or plan.context_window:
            return None
        if plan.content_filter:
            return None
        t = plan.primary
        try:
            dep = self.dep0
            if dep is None:
                return (*self.prepare(t), t)  # raises the primary's resolution error
            # An open breaker answers first: before the request is built and checked.
            engine.attempts.refuse_open(self, dep)
            req = self.req0
            if req is None:  # ``primary_request()``, inline
                req = self.req0 = build_request(plan.primary, self.msgs, self.params, self.stream)
            catalog = engine.catalog
            try:  # ``prepare`` of the primary, inline
                if catalog is not None:
                    if self.opts.strict_params:
                        req = catalog.prepare(req, dep, strict_params=True)
                    else:
                        req = catalog.prepare(req, dep)
                dep = choose_api(dep, req, self.opts.api, True, tools_api(catalog, dep, req))
            except LLMRelayError as exc:
                self._skipped(t, exc)
                raise
        except Exception as exc:
            traced(exc, self.ctx.trace)
            raise
        return dep, req, t

    async def candidates(self, attempt: AttemptFn[T]) -> tuple[T, Deployment, Target, ChatRequest]:
        """Walk the fallback chain until ``attempt`` succeeds; returns what it returned, with
        the deployment, target and request it succeeded on. Raises the call's failure when no
        candidate succeeds."""
        ctx = self.ctx
        one = self.single()
        if one is not None:
            # One candidate and no budget (most calls): the chain below, without its
            # bookkeeping. Its failure is the candidate's error, carrying the trace.
            dep, req, t = one
            try:
                out = await attempt(self, dep, req, t)
            except Exception as exc:
                traced(exc, ctx.trace)
                raise
            return out, dep, t, req
        budget = self.engine.budget
        plan = self.plan
        chain = Chain(plan)
        for t in chain:
            try:
                dep, req = self.prepare(t)
            except LLMRelayError as exc:
                if not chain.failed(exc):
                    break
                continue
            if budget is not None:
                # Before every candidate, not once per call: a fallback (or a re-ask) may cost
                # far more than the primary the call was first admitted for.
                try:
                    ctx.reservation = await budget.reserve(req, dep, ctx)
                except BudgetExceededError as exc:
                    ctx.trace.append(
                        Attempt(t.label, "skipped", error=type(exc).__name__, reason=exc.message)
                    )
                    chain.errors.append(exc)  # the budget ends the call: no further candidates
                    break
            try:
                out = await attempt(self, dep, req, t)
            except Exception as exc:
                if not chain.failed(exc):
                    break
                continue
            return out, dep, t, req
        failure = _failure(chain.errors, ctx.trace)
        chain.errors.clear()  # the traceback keeps this frame: do not keep the error from it too
        raise failure

    async def structured(
        self, resp: Response, dep: Deployment, t: Target
    ) -> tuple[Response, Deployment, Target]:
        """Validate the answer into the response model; re-ask the same deployment with the
        validation errors (``max_reasks`` times) while it does not validate."""
        from pydantic import ValidationError

        from .structured import next_reask, parse_structured

        spec, ctx = self.spec, self.ctx
        assert spec is not None
        max_reasks = self.opts.max_reasks
        msgs = self.msgs
        for n in range(max_reasks + 1):
            try:
                resp.object = parse_structured(spec.model, resp.text)
                return resp, dep, t
            except ValidationError as exc:
                msgs = next_reask(spec, resp, exc, n, max_reasks, ctx.trace, ctx.usage, msgs)
                reask = self._reask(t, dep, msgs)
                resp, dep, t, _ = await reask.candidates(self.engine.attempts.run)
        raise AssertionError("unreachable")  # pragma: no cover

    def _reask(self, t: Target, dep: Deployment, msgs: list[Message]) -> Call:
        """A call on the one deployment that answered, with the re-ask messages, sharing this
        call's context (trace, usage, reservation)."""
        reask = Call.__new__(Call)
        reask.engine, reask.opts, reask.params, reask.spec = (
            self.engine,
            self.opts,
            self.params,
            None,
        )
        reask.plan = Plan(t, [], [], [])
        reask.msgs, reask.stream, reask.ctx = msgs, False, self.ctx
        reask.dep0, reask.err0, reask.req0, reask.cache_key = dep, None, None, None
        return reask

    # ------------------------------------------------------------------ the outcome

    def finish(self, resp: Response, t: Target) -> None:
        ctx = self.ctx
        resp.latency_s = self.engine.clock() - ctx.start
        resp.alias = t.alias
        resp.trace = ctx.trace
        resp.total_usage = ctx.usage
        resp.cost = ctx.cost

    def serve_hit(self, hit: Response) -> Response:
        """A cached answer, as this call's answer (recorded as a cache hit)."""
        ctx = self.ctx
        dep = self.dep0
        assert dep is not None
        hit.cache_hit = True
        ctx.cache_hit = True
        ctx.trace.append(Attempt(dep.label, "cache_hit", reason="served from the response cache"))
        hit.trace = ctx.trace
        hit.latency_s = self.engine.clock() - ctx.start
        hit.total_usage = Usage()  # nothing was spent
        if self.engine.recorder is not None:
            self.record(hit, dep)
        return hit

    async def cache_store(self, resp: Response) -> None:
        """Store a fresh answer under the call's key, unless the call said ``no_store`` or it
        is an error."""
        if self.cache_key is not None and not self.opts.no_store and resp.finish_reason != "error":
            cache = self.engine.cache
            assert cache is not None
            await cache.put(self.cache_key, resp, self.ctx)

    async def settle(self) -> None:
        """Settle the budget's reservation (once, whatever the outcome)."""
        ctx = self.ctx
        if ctx.reservation is not None:
            budget = self.engine.budget
            assert budget is not None
            await budget.settle(ctx.reservation, ctx)

    def _prompt(self, req: ChatRequest | None = None) -> list[dict[str, Any]] | None:
        if not self.engine.log_content:
            return None
        req = req or self.primary_request()
        return [m.to_dict() for m in req.messages]

    def record(self, resp: Response, dep: Deployment, req: ChatRequest | None = None) -> None:
        """Record a successful call (``req``: the request that was answered; the primary's
        when not given)."""
        engine = self.engine
        if engine.recorder is None:
            return
        ctx = self.ctx
        engine.emit(
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
                stream=self.stream,
                tenant=ctx.tenant,
                tags=dict(ctx.tags),
                prompt=self._prompt(req),
                response_text=resp.text if engine.log_content else None,
            )
        )

    def record_failure(self, exc: BaseException) -> None:
        engine = self.engine
        if engine.recorder is None:
            return
        ctx, primary = self.ctx, self.plan.primary
        last = next((a for a in reversed(ctx.trace) if a.outcome != "skipped"), None)
        provider, _, model = (last.deployment if last else primary.label).partition("/")
        # A cancelled call, or a stream the caller left early, may still have spent tokens.
        outcome = "error" if isinstance(exc, Exception) else "cancelled"
        engine.emit(
            CallRecord(
                trace_id=ctx.trace_id,
                started_at=ctx.started_at,
                alias=ctx.alias,
                provider=provider if model else primary.provider,
                model=model or primary.model,
                outcome=outcome,
                latency_s=engine.clock() - ctx.start,
                usage=ctx.usage,
                cost=ctx.cost,
                attempts=list(ctx.trace),
                error=type(exc).__name__,
                status=getattr(exc, "status", None),
                stream=self.stream,
                tenant=ctx.tenant,
                tags=dict(ctx.tags),
                prompt=self._prompt(),
            )
        )


def _failure(errors: list[BaseException], trace: list[Attempt]) -> BaseException:
    last = errors[-1]
    sent = sent_attempts(trace)
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
                attempts=sent,
            )
    else:
        err = AllAttemptsFailedError(
            f"all {len(errors)} candidates failed",
            [e for e in errors if isinstance(e, Exception)],
            attempts=sent,
        )
    traced(err, trace)
    return err


def traced(err: BaseException, trace: list[Attempt]) -> None:
    """Attach the call's decision trace to its failure."""
    if isinstance(err, LLMRelayError):
        err.trace = trace
    else:
        err.llmrelay_trace = trace  # type: ignore[attr-defined]


def tools_api(catalog: Any, dep: Deployment, req: ChatRequest) -> str | None:
    """The catalog row's ``tools_api`` (``"responses"``: the model calls tools only through
    OpenAI's Responses API) for a call with tools to an OpenAI-API deployment; None for every
    other call (no lookup on their path)."""
    if catalog is None or not req.params.tools or dep.wire != "openai_chat":
        return None
    profile = getattr(catalog, "profile", None)
    p = profile(dep) if profile is not None else None
    value = getattr(p, "tools_api", None)
    return value if isinstance(value, str) else None
