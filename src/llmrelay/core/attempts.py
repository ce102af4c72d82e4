"""Attempts on one deployment: circuit breaker, deadline, rate limit, then the retry loop.

:class:`AttemptRunner` is the part of the engine that talks to one deployment; the engine
(``engine.py``) owns one and decides which deployments to try (``call.py``). It reads the
engine's settings (clock, sleep, breakers, limiter, catalog, retry policy, timeouts) through
the :class:`Host` protocol, so settings changed on the engine apply to the next call.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import APITimeoutError, CircuitOpenError, DeadlineExceededError, LLMRelayError
from ..providers.backends import HttpBackend, send_failed
from ..providers.resolve import Target
from ..providers.table import Deployment
from ..transport.base import Timeouts
from ..types import ChatRequest, Response, StreamChunk
from .layers import Breaker, BreakerSource, CallContext, CatalogLayer, LimiterLayer
from .options import CallOptions, caller_limited, timeouts_from
from .retry import RetryBudget, RetryPolicy
from .trace import Attempt

if TYPE_CHECKING:
    from ..providers.backends import Backend

__all__ = ["AttemptRunner", "Breaker", "BreakerSource", "CallState", "Host"]


class Host(Protocol):
    """The engine's settings the attempts read (the engine implements it)."""

    clock: Callable[[], float]
    sleep: Callable[[float], Awaitable[Any]]
    limiter: LimiterLayer | None
    catalog: CatalogLayer | None
    retry: RetryPolicy
    timeouts: Timeouts

    @property
    def breakers(self) -> BreakerSource | None: ...

    def backend_for(self, dep: Deployment) -> Backend: ...


class CallState(Protocol):
    """What the attempts read of the logical call they serve: its context (trace, usage, cost,
    deadline) and its options. A chat call (``core.call.Call``) and an embeddings call
    (``core.embed``) both are one."""

    @property
    def ctx(self) -> CallContext: ...

    @property
    def opts(self) -> CallOptions: ...


class _Try:
    """The attempts on one deployment for one candidate: what every attempt of the retry loop
    shares, built once per candidate (not per attempt)."""

    __slots__ = (
        "breaker",
        "budget",
        "ctx",
        "dep",
        "lim",
        "permit",
        "policy",
        "req",
        "retries",
        "slept",
        "t0",
    )

    def __init__(
        self, dep: Deployment, req: ChatRequest, ctx: CallContext, policy: RetryPolicy
    ) -> None:
        self.dep = dep
        self.req = req
        self.ctx = ctx
        self.policy = policy
        self.breaker: Breaker | None = None
        self.budget: RetryBudget | None = None
        self.retries = 0
        self.slept = 0.0
        self.permit: Any = None
        self.lim: Any = None
        self.t0 = 0.0


class AttemptRunner:
    """Runs attempts on one deployment; owned by the engine (``engine.attempts``)."""

    __slots__ = ("_budgets", "host")

    def __init__(self, host: Host, *, retry_budget: bool = True) -> None:
        self.host = host
        self._budgets: dict[str, RetryBudget] | None = {} if retry_budget else None

    # ------------------------------------------------------------------ per deployment

    def breaker_for(self, dep: Deployment) -> Breaker | None:
        breakers = self.host.breakers
        return breakers.get(dep.key) if breakers is not None else None

    def budget_for(self, key: str) -> RetryBudget | None:
        """The retry budget of a deployment key (None when retry budgets are off)."""
        if self._budgets is None:
            return None
        b = self._budgets.get(key)
        if b is None:
            b = self._budgets[key] = RetryBudget()
        return b

    def timeouts(self, t: Target, opts: CallOptions) -> Timeouts:
        """Per attempt: the call's ``timeout``, else the alias policy's, else the engine's."""
        value = opts.timeout if opts.timeout is not None else t.policy.get("timeout")
        if value is None:
            return self.host.timeouts
        return timeouts_from(value, self.host.timeouts)

    def policy(self, t: Target, opts: CallOptions) -> RetryPolicy:
        """The retry policy of a call on ``t``: the call's, else the alias policy's retries."""
        if opts.retry is not None:
            return opts.retry
        retry = self.host.retry
        n = opts.retries if opts.retries is not None else t.policy.get("retries")
        if n is not None and n != retry.max_retries:
            return dataclasses.replace(retry, max_retries=n)
        return retry

    def _start(self, call: CallState, dep: Deployment, req: ChatRequest, t: Target) -> _Try:
        tr = _Try(dep, req, call.ctx, self.policy(t, call.opts))
        breakers = self.host.breakers
        if breakers is not None:
            tr.breaker = breakers.get(dep.key)
        tr.budget = self.budget_for(dep.key)
        return tr

    # ------------------------------------------------------------------ the retry loop

    def _remaining(self, deadline_at: float | None) -> float | None:
        return None if deadline_at is None else deadline_at - self.host.clock()

    @staticmethod
    def _attempt_timeouts(timeouts: Timeouts, remaining: float | None) -> Timeouts:
        if remaining is None or (timeouts.total is not None and timeouts.total <= remaining):
            return timeouts
        # The clock may pass the deadline between the check and here: time out at once.
        remaining = max(remaining, 1e-3)
        return Timeouts(
            connect=min(timeouts.connect or remaining, remaining),
            read=timeouts.read,
            total=remaining,
        )

    async def _backoff(self, tr: _Try, exc: BaseException) -> float | None:
        """Seconds slept before the next retry, or None when this deployment is done."""
        trace = tr.ctx.trace
        remaining = self._remaining(tr.ctx.deadline_at)
        # Time the next attempt may still start in: a share of what is left is kept for it.
        window = None if remaining is None else remaining - min(1.0, 0.1 * remaining)
        # A server-requested wait that does not fit in ``window`` is not retried (the decision
        # says so): the provider's error, with its retry_after, ends this deployment at once.
        decision = tr.policy.decide(exc, tr.retries, window)
        if not decision.retry:
            if trace and trace[-1].reason is None:
                trace[-1].reason = decision.reason
            return None
        if tr.budget is not None and not tr.budget.can_retry():
            # Keep the provider's error (as gRPC's retry throttling keeps the status): the call
            # moves to its next candidate, and the trace says why it was not retried here.
            trace[-1].reason = f"retry budget of {tr.dep.label} spent: too many recent failures"
            return None
        delay = decision.delay
        if window is not None:
            if window <= 0:
                trace[-1].reason = "deadline reached"
                raise _deadline_error(tr.dep, exc)
            delay = min(delay, window)  # a backoff is cut to fit; a server's wait already fits
        if delay > 0:
            await self.host.sleep(delay)
        return delay

    def refuse_open(self, call: CallState, dep: Deployment) -> None:
        """Raise ``CircuitOpenError`` (booked in the trace) when the in-process breaker of
        ``dep`` is open: asked before the request is checked against the catalog, so a refused
        call costs little. A breaker that admits (closed, or a probe when half-open) is left as
        it was; the attempt asks it again."""
        breakers = self.host.breakers
        if breakers is None:
            return
        breaker = breakers.get(dep.key)
        if breaker.asynchronous or breaker.state != "open":
            return
        try:
            permit = breaker.acquire()
        except CircuitOpenError as exc:
            _book_refusal(call.ctx, dep, exc)
            raise
        breaker.release(permit)  # opened long enough ago: the attempt takes the probe

    def _admit_now(self, tr: _Try) -> None:
        """``_admit`` without awaiting: an in-process breaker (or none) and no rate limiter."""
        breaker = tr.breaker
        permit = None
        if breaker is not None:
            try:
                permit = breaker.acquire()
            except CircuitOpenError as exc:
                _refused(tr, exc)
                raise
        deadline_at = tr.ctx.deadline_at
        if deadline_at is not None and deadline_at - self.host.clock() <= 0:
            if breaker is not None and permit is not None:
                breaker.release(permit)
            raise _deadline_error(tr.dep, None)
        tr.permit, tr.lim = permit, None

    async def _admit(self, tr: _Try) -> None:
        """Breaker, deadline and rate limit, before one attempt: sets the attempt's permits;
        raises (recording a skip in the trace) when the attempt may not run."""
        dep, ctx, breaker = tr.dep, tr.ctx, tr.breaker
        limiter = self.host.limiter
        if limiter is None and (breaker is None or not breaker.asynchronous):
            self._admit_now(tr)
            return
        permit = None
        if breaker is not None:
            try:
                # Shared (Redis) breakers decide with one round trip; in-process ones at once.
                permit = await breaker.aacquire() if breaker.asynchronous else breaker.acquire()
            except CircuitOpenError as exc:
                _refused(tr, exc)
                raise
        if ctx.deadline_at is not None and ctx.deadline_at - self.host.clock() <= 0:
            if breaker is not None and permit is not None:
                breaker.release(permit)
            raise _deadline_error(dep, None)
        lim = None
        if limiter is not None:
            try:
                lim = await limiter.acquire(dep, tr.req, ctx)
            except BaseException as exc:
                if breaker is not None and permit is not None:
                    breaker.release(permit)
                if isinstance(exc, LLMRelayError):
                    ctx.trace.append(
                        Attempt(
                            dep.label,
                            "skipped",
                            tr.retries + 1,
                            type(exc).__name__,
                            backoff_s=tr.slept,
                            reason=f"rate limit: {exc.message}",
                        )
                    )
                raise
        tr.permit, tr.lim = permit, lim

    async def _failed(self, tr: _Try, exc: Exception, caught: Exception) -> None:
        """Book a failed attempt (breaker, rate limit, retry budget, trace), then back off.

        ``exc`` is the attempt's error, ``caught`` what was raised (``exc`` or its cause).
        Sets the seconds slept before the next attempt; raises ``exc`` (or a deadline error)
        when there is no next attempt.
        """
        breaker, dep = tr.breaker, tr.dep
        limiter = self.host.limiter
        try:
            if breaker is not None and tr.permit is not None:
                await _on_failure(breaker, tr.permit, exc)
        finally:  # (a cancel during the breaker's round trip still releases the slot)
            if limiter is not None:
                await limiter.release(tr.lim, None, getattr(exc, "headers", None), exc)
        if tr.budget is not None and tr.policy.is_retryable(exc):
            tr.budget.on_failure()
        trace = tr.ctx.trace
        trace.append(_error_attempt(tr, exc, self.host.clock() - tr.t0))
        rem = self._remaining(tr.ctx.deadline_at)
        if isinstance(exc, APITimeoutError) and rem is not None and rem <= 0:
            raise _deadline_error(dep, exc) from caught
        d: float | None = None
        if breaker is not None and breaker.state == "open":
            trace[-1].reason = "the breaker opened: not retrying"
        else:
            d = await self._backoff(tr, exc)
        if d is None:
            if exc is caught:
                raise exc
            raise exc from caught
        tr.slept = d
        tr.retries += 1

    async def _abandoned(self, tr: _Try) -> None:
        """Give back the permits of an attempt that was cancelled: it has no outcome to count."""
        if tr.breaker is not None and tr.permit is not None:
            tr.breaker.release(tr.permit)
        limiter = self.host.limiter
        if limiter is not None:
            await limiter.release(tr.lim, None, None, None)

    async def run(self, call: CallState, dep: Deployment, req: ChatRequest, t: Target) -> Response:
        """Attempts on one deployment: breaker and rate limit, then the retry loop."""
        host = self.host
        backend = host.backend_for(dep)
        clock = host.clock
        ctx = call.ctx
        breakers = host.breakers
        breaker = breakers.get(dep.key) if breakers is not None else None
        at_once = host.limiter is None and (breaker is None or not breaker.asynchronous)
        if at_once:
            # The loop's first pass on locals (an in-process breaker or none, no rate limiter):
            # its state (``_Try``) is built only when the attempt fails.
            budgets = self._budgets
            budget = None if budgets is None else budgets.get(dep.key) or self.budget_for(dep.key)
            opts = call.opts
            plain = opts.retry is None and opts.retries is None and opts.timeout is None
            if plain and not t.policy:
                policy, timeouts = host.retry, host.timeouts  # ``policy()`` and ``timeouts()``
            else:
                policy, timeouts = self.policy(t, opts), self.timeouts(t, opts)
            permit = None
            if breaker is not None:
                try:
                    permit = breaker.acquire()
                except CircuitOpenError as exc:
                    _book_refusal(ctx, dep, exc)
                    raise
            deadline_at = ctx.deadline_at
            to = timeouts
            if deadline_at is not None:
                if deadline_at - clock() <= 0:
                    if breaker is not None and permit is not None:
                        breaker.release(permit)
                    raise _deadline_error(dep, None)
                to = self._attempt_timeouts(timeouts, deadline_at - clock())
            t0 = clock()
            try:
                if backend.__class__ is HttpBackend:  # its ``complete``, inline
                    http_req = backend.request(req, dep)
                    try:
                        sent = await backend.transport.send(http_req, to)
                    except Exception as exc:
                        send_failed(exc, dep)
                    resp = backend.answer(sent, req, http_req, dep)
                else:
                    resp = await backend.complete(req, dep, to)
            except Exception as exc:
                if isinstance(exc, APITimeoutError):
                    exc.caller_limited = caller_limited(ctx.opts, timeouts, to, host.timeouts)
                tr = _Try(dep, req, ctx, policy)
                tr.breaker, tr.budget, tr.permit, tr.t0 = breaker, budget, permit, t0
                await self._failed(tr, exc, exc)  # raises when there is no next attempt
            except BaseException:
                if breaker is not None and permit is not None:
                    breaker.release(permit)  # ``_abandoned``: there is no rate limiter
                raise
            else:
                if breaker is not None and permit is not None:
                    breaker.on_success(permit)
                if budget is not None:
                    budget.on_success()
                # (deployment, outcome, number, error, status, latency_s, backoff_s)
                attempt = Attempt(dep.label, "success", 1, None, None, clock() - t0, 0.0)
                ctx.trace.append(attempt)
                self.account(dep, resp, ctx, attempt, req)
                return resp
        else:
            tr = self._start(call, dep, req, t)
            timeouts = self.timeouts(t, call.opts)
        while True:
            if at_once:
                self._admit_now(tr)  # no coroutine for an in-process breaker without a limiter
            else:
                await self._admit(tr)
            deadline_at = ctx.deadline_at
            to = timeouts
            if deadline_at is not None:
                to = self._attempt_timeouts(timeouts, deadline_at - clock())
            tr.t0 = clock()
            try:
                if backend.__class__ is HttpBackend:  # its ``complete``, inline
                    http_req = backend.request(req, dep)
                    try:
                        sent = await backend.transport.send(http_req, to)
                    except Exception as exc:
                        send_failed(exc, dep)
                    resp = backend.answer(sent, req, http_req, dep)
                else:
                    resp = await backend.complete(req, dep, to)
            except Exception as exc:
                if isinstance(exc, APITimeoutError):
                    exc.caller_limited = caller_limited(ctx.opts, timeouts, to, host.timeouts)
                await self._failed(tr, exc, exc)
                continue
            except BaseException:
                await self._abandoned(tr)
                raise
            permit = tr.permit
            if tr.budget is not None:
                tr.budget.on_success()
            limiter = host.limiter
            try:
                if breaker is not None and permit is not None:
                    if breaker.asynchronous:
                        await breaker.aon_success(permit)  # shared (Redis) breakers
                    else:
                        breaker.on_success(permit)  # no coroutine for an in-process one
            finally:  # (a cancel during the breaker's round trip still releases the slot)
                if limiter is not None:
                    await limiter.release(tr.lim, resp, resp.headers, None)
            # (deployment, outcome, number, error, status, latency_s, backoff_s)
            attempt = Attempt(
                dep.label, "success", tr.retries + 1, None, None, clock() - tr.t0, tr.slept
            )
            ctx.trace.append(attempt)
            self.account(dep, resp, ctx, attempt, req)
            return resp

    async def open_stream(
        self, call: CallState, dep: Deployment, req: ChatRequest, t: Target
    ) -> tuple[AsyncGenerator[StreamChunk, None], list[StreamChunk], float, Any, Any]:
        """Start a stream on ``dep`` and read up to its first content chunk, with retries.
        Returns the live generator, the chunks read so far, the attempt's start time, the rate
        limiter's permit (released when the stream ends) and the breaker's permit: the stream's
        outcome for the breaker is only known when it ends (``stream_outcome``), so a stream
        cut after its first chunks counts as the failure it is."""
        backend = self.host.backend_for(dep)
        tr = self._start(call, dep, req, t)
        timeouts = self.timeouts(t, call.opts)
        clock = self.host.clock
        ctx = tr.ctx
        first_token_timeout = call.opts.first_token_timeout
        while True:
            await self._admit(tr)
            remaining = self._remaining(ctx.deadline_at)
            tr.t0 = clock()
            sent = self._attempt_timeouts(timeouts, remaining)
            agen: AsyncGenerator[StreamChunk, None] = backend.stream(req, dep, sent)  # type: ignore[assignment]
            head: list[StreamChunk] = []
            limit = first_token_timeout
            if remaining is not None:
                limit = remaining if limit is None else min(limit, remaining)
            try:
                if limit is None:  # (``asyncio.timeout(None)`` still costs ~2 µs a stream)
                    await _read_head(agen, head)
                else:
                    async with asyncio.timeout(limit):
                        await _read_head(agen, head)
            except Exception as caught:
                await agen.aclose()
                exc: Exception = caught
                if isinstance(caught, TimeoutError) and not isinstance(caught, LLMRelayError):
                    exc = APITimeoutError(
                        f"no first token within {limit:g}s", provider=dep.provider, model=dep.model
                    )
                    exc.__cause__ = caught
                    exc.caller_limited = True  # first_token_timeout and deadline: the caller's
                elif isinstance(exc, APITimeoutError):
                    exc.caller_limited = caller_limited(
                        ctx.opts, timeouts, sent, self.host.timeouts
                    )
                await self._failed(tr, exc, caught)
                continue
            except BaseException:
                await agen.aclose()
                await self._abandoned(tr)
                raise
            if tr.budget is not None:
                tr.budget.on_success()
            permit = tr.permit
            if permit is not None:
                permit.first_output = tr.breaker.clock() if tr.breaker is not None else None
            ctx.trace.append(Attempt(dep.label, "success", tr.retries + 1, backoff_s=tr.slept))
            return agen, head, tr.t0, tr.lim, permit

    async def stream_outcome(
        self, dep: Deployment, permit: Any, failure: BaseException | None
    ) -> None:
        """Book a stream that started (see ``open_stream``) with its breaker when it ends: a
        failure after output counts as ``counts_as_failure`` says; a stream that finished, or
        that its caller left, was served."""
        breaker = self.breaker_for(dep)
        if breaker is None or permit is None:
            return
        if isinstance(failure, Exception):
            await _on_failure(breaker, permit, failure)
        else:
            await _succeeded(breaker, permit, None)

    def account(
        self,
        dep: Deployment,
        resp: Response,
        ctx: CallContext,
        attempt: Attempt,
        req: ChatRequest | None = None,
    ) -> None:
        """Add one provider answer's usage (and cost) to the call. An answer without usage (no
        usage chunk in the stream, no ``usage`` in the body) is counted from ``req`` and its
        text, marked estimated: an answer is never a silent $0."""
        usage = resp.usage
        catalog = self.host.catalog
        if req is not None and usage.input_tokens == 0 and usage.output_tokens == 0:
            from ..catalog.costs import estimate_usage

            usage = resp.usage = estimate_usage(
                req, dep, resp, registry=getattr(catalog, "registry", None)
            )
        attempt.usage = usage
        prev = ctx.usage  # a first answer's usage is the total (a sum of the same values)
        fresh = not (prev.input_tokens or prev.output_tokens or prev.cached_tokens)
        if fresh and not (prev.cache_write_tokens or prev.reasoning_tokens or prev.estimated):
            ctx.usage = usage
        else:
            ctx.usage = prev + usage
        if catalog is not None:
            cost_at = getattr(catalog, "cost_at", None)  # the price when the call started
            if cost_at is not None:
                c = cost_at(dep, usage, attempt.latency_s)
            else:
                c = catalog.cost(dep, usage)
            if usage.estimated and not c.estimated:
                c = dataclasses.replace(c, estimated=True)
            attempt.cost_usd = c.usd
            ctx.cost = c if ctx.cost is None else ctx.cost + c


def _refused(tr: _Try, exc: CircuitOpenError) -> None:
    _book_refusal(tr.ctx, tr.dep, exc, tr)


def _book_refusal(
    ctx: CallContext, dep: Deployment, exc: CircuitOpenError, tr: _Try | None = None
) -> None:
    """Book a breaker's refusal: the error names the deployment; the trace says why (``tr``:
    the attempts so far on ``dep``; None before the first)."""
    number, slept = (tr.retries + 1, tr.slept) if tr is not None else (1, 0.0)
    exc.provider, exc.model = dep.provider, dep.model
    # (deployment, outcome, number, error, status, latency_s, backoff_s, reason)
    reason = f"breaker open, retry after {exc.retry_after or 0:.1f}s"
    ctx.trace.append(
        Attempt(dep.label, "skipped", number, "CircuitOpenError", None, 0.0, slept, reason)
    )


def _deadline_error(dep: Deployment, last: BaseException | None) -> DeadlineExceededError:
    err = DeadlineExceededError(
        "the call's deadline ran out" + (f" (last error: {type(last).__name__})" if last else ""),
        provider=dep.provider,
        model=dep.model,
    )
    if last is not None:
        err.__cause__ = last
    return err


def _error_attempt(tr: _Try, exc: BaseException, latency: float) -> Attempt:
    return Attempt(
        tr.dep.label,
        "error",
        tr.retries + 1,
        type(exc).__name__,
        getattr(exc, "status", None),
        latency,
        tr.slept,
        None,
        getattr(exc, "message", None) or str(exc)[:300],
    )


async def _succeeded(breaker: Breaker | None, permit: Any, budget: RetryBudget | None) -> None:
    if breaker is not None and permit is not None:
        if breaker.asynchronous:
            await breaker.aon_success(permit)  # shared (Redis) breakers
        else:
            breaker.on_success(permit)
    if budget is not None:
        budget.on_success()


async def _on_failure(breaker: Breaker, permit: Any, exc: BaseException) -> None:
    if breaker.asynchronous:
        await breaker.aon_failure(permit, exc)
    else:
        breaker.on_failure(permit, exc)


async def _read_head(agen: AsyncGenerator[StreamChunk, None], head: list[StreamChunk]) -> None:
    """Read ``agen`` into ``head`` up to its first output or its end (a stream has started)."""
    async for c in agen:
        head.append(c)
        if c.delta or c.tool_calls or c.reasoning or c.done:
            break
