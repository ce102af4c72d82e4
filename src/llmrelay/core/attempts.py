"""Attempts on one deployment: circuit breaker, deadline, rate limit, then the retry loop.

:class:`AttemptRunner` is the part of the engine that talks to one deployment; the engine
(``engine.py``) decides which deployments to try. It expects its host to provide ``clock``,
``sleep``, ``breakers``, ``limiter``, ``catalog`` and ``backend_for``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..errors import APITimeoutError, CircuitOpenError, DeadlineExceededError, LLMRelayError
from ..providers.table import Deployment
from ..transport.base import Timeouts
from ..types import ChatRequest, Response, StreamChunk
from .layers import CallContext, CatalogLayer, LimiterLayer
from .options import caller_limited
from .retry import RetryBudget, RetryPolicy
from .trace import Attempt

if TYPE_CHECKING:
    from ..providers.backends import Backend
    from ..reliability.breaker import BreakerRegistry, CircuitBreaker

__all__ = ["AttemptRunner"]


class AttemptRunner:
    """Runs attempts on one deployment (mixed into ``Engine``)."""

    clock: Callable[[], float]
    sleep: Callable[[float], Awaitable[Any]]
    breakers: BreakerRegistry | None
    limiter: LimiterLayer | None
    catalog: CatalogLayer | None
    _budgets: dict[str, RetryBudget] | None
    timeouts: Timeouts

    if TYPE_CHECKING:

        def backend_for(self, dep: Deployment) -> Backend: ...

    def breaker_for(self, dep: Deployment) -> CircuitBreaker | None:
        return self.breakers.get(dep.key) if self.breakers is not None else None

    def _budget(self, key: str) -> RetryBudget | None:
        if self._budgets is None:
            return None
        b = self._budgets.get(key)
        if b is None:
            b = self._budgets[key] = RetryBudget()
        return b

    def _remaining(self, deadline_at: float | None) -> float | None:
        return None if deadline_at is None else deadline_at - self.clock()

    def _attempt_timeouts(self, timeouts: Timeouts, remaining: float | None) -> Timeouts:
        if remaining is None or (timeouts.total is not None and timeouts.total <= remaining):
            return timeouts
        # The clock may pass the deadline between the check and here: time out at once.
        remaining = max(remaining, 1e-3)
        return Timeouts(
            connect=min(timeouts.connect or remaining, remaining),
            read=timeouts.read,
            total=remaining,
        )

    def _deadline_error(self, dep: Deployment, last: BaseException | None) -> DeadlineExceededError:
        err = DeadlineExceededError(
            "the call's deadline ran out"
            + (f" (last error: {type(last).__name__})" if last else ""),
            provider=dep.provider,
            model=dep.model,
        )
        if last is not None:
            err.__cause__ = last
        return err

    async def _backoff(
        self,
        exc: BaseException,
        policy: RetryPolicy,
        retries_done: int,
        dep: Deployment,
        budget: RetryBudget | None,
        deadline_at: float | None,
        trace: list[Attempt],
    ) -> float | None:
        """Seconds slept before the next retry, or None when this deployment is done."""
        remaining = self._remaining(deadline_at)
        # Time the next attempt may still start in: a share of what is left is kept for it.
        window = None if remaining is None else remaining - min(1.0, 0.1 * remaining)
        # A server-requested wait that does not fit in ``window`` is not retried (the decision
        # says so): the provider's error, with its retry_after, ends this deployment at once.
        decision = policy.decide(exc, retries_done, window)
        if not decision.retry:
            if trace and trace[-1].reason is None:
                trace[-1].reason = decision.reason
            return None
        if budget is not None and not budget.can_retry():
            # Keep the provider's error (as gRPC's retry throttling keeps the status): the call
            # moves to its next candidate, and the trace says why it was not retried here.
            trace[-1].reason = f"retry budget of {dep.label} spent: too many recent failures"
            return None
        delay = decision.delay
        if window is not None:
            if window <= 0:
                trace[-1].reason = "deadline reached"
                raise self._deadline_error(dep, exc)
            delay = min(delay, window)  # a backoff is cut to fit; a server's wait already fits
        if delay > 0:
            await self.sleep(delay)
        return delay

    async def _admit(
        self,
        dep: Deployment,
        req: ChatRequest,
        ctx: CallContext,
        breaker: CircuitBreaker | None,
        number: int,
        slept: float,
    ) -> tuple[Any, Any]:
        """Breaker, deadline and rate limit, before one attempt. Returns (breaker permit,
        limiter permit); raises (recording a skip in the trace) when the attempt may not run."""
        permit = None
        if breaker is not None:
            try:
                # Shared (Redis) breakers decide with one round trip; in-process ones at once.
                aacquire = getattr(breaker, "aacquire", None)
                permit = await aacquire() if aacquire is not None else breaker.acquire()
            except CircuitOpenError as exc:
                exc.provider, exc.model = dep.provider, dep.model
                ctx.trace.append(
                    Attempt(
                        dep.label,
                        "skipped",
                        number,
                        "CircuitOpenError",
                        backoff_s=slept,
                        reason=f"breaker open, retry after {exc.retry_after or 0:.1f}s",
                    )
                )
                raise
        remaining = self._remaining(ctx.deadline_at)
        if remaining is not None and remaining <= 0:
            if breaker is not None and permit is not None:
                breaker.release(permit)
            raise self._deadline_error(dep, None)
        lim = None
        if self.limiter is not None:
            try:
                lim = await self.limiter.acquire(dep, req, ctx)
            except BaseException as exc:
                if breaker is not None and permit is not None:
                    breaker.release(permit)
                if isinstance(exc, LLMRelayError):
                    ctx.trace.append(
                        Attempt(
                            dep.label,
                            "skipped",
                            number,
                            type(exc).__name__,
                            backoff_s=slept,
                            reason=f"rate limit: {exc.message}",
                        )
                    )
                raise
        return permit, lim

    async def _failed(
        self,
        exc: Exception,
        caught: Exception,
        dep: Deployment,
        ctx: CallContext,
        policy: RetryPolicy,
        breaker: CircuitBreaker | None,
        permit: Any,
        lim: Any,
        budget: RetryBudget | None,
        retries: int,
        t0: float,
        slept: float,
    ) -> float:
        """Book a failed attempt (breaker, rate limit, retry budget, trace), then back off.

        ``exc`` is the attempt's error, ``caught`` what was raised (``exc`` or its cause).
        Returns the seconds slept before the next attempt; raises ``exc`` (or a deadline error)
        when there is no next attempt.
        """
        if breaker is not None and permit is not None:
            await _on_failure(breaker, permit, exc)
        if self.limiter is not None:
            await self.limiter.release(lim, None, getattr(exc, "headers", None), exc)
        if budget is not None and policy.is_retryable(exc):
            budget.on_failure()
        trace = ctx.trace
        trace.append(_error_attempt(dep, retries + 1, exc, self.clock() - t0, slept))
        rem = self._remaining(ctx.deadline_at)
        if isinstance(exc, APITimeoutError) and rem is not None and rem <= 0:
            raise self._deadline_error(dep, exc) from caught
        d: float | None = None
        if breaker is not None and breaker.state == "open":
            trace[-1].reason = "the breaker opened: not retrying"
        else:
            d = await self._backoff(exc, policy, retries, dep, budget, ctx.deadline_at, trace)
        if d is None:
            if exc is caught:
                raise exc
            raise exc from caught
        return d

    async def _abandoned(self, breaker: CircuitBreaker | None, permit: Any, lim: Any) -> None:
        """Give back the permits of an attempt that was cancelled: it has no outcome to count."""
        if breaker is not None and permit is not None:
            breaker.release(permit)
        if self.limiter is not None:
            await self.limiter.release(lim, None, None, None)

    async def _run(
        self,
        dep: Deployment,
        req: ChatRequest,
        policy: RetryPolicy,
        timeouts: Timeouts,
        ctx: CallContext,
    ) -> Response:
        """Attempts on one deployment: breaker and rate limit, then the retry loop."""
        backend = self.backend_for(dep)
        breaker = self.breaker_for(dep)
        budget = self._budget(dep.key)
        limiter = self.limiter
        clock = self.clock
        trace = ctx.trace
        retries = 0
        slept = 0.0
        while True:
            permit, lim = await self._admit(dep, req, ctx, breaker, retries + 1, slept)
            remaining = self._remaining(ctx.deadline_at)
            t0 = clock()
            sent = self._attempt_timeouts(timeouts, remaining)
            try:
                resp = await backend.complete(req, dep, sent)
            except Exception as exc:
                if isinstance(exc, APITimeoutError):
                    exc.caller_limited = caller_limited(ctx.opts, timeouts, sent, self.timeouts)
                slept = await self._failed(
                    exc, exc, dep, ctx, policy, breaker, permit, lim, budget, retries, t0, slept
                )
                retries += 1
                continue
            except BaseException:
                await self._abandoned(breaker, permit, lim)
                raise
            await _succeeded(breaker, permit, budget)
            if limiter is not None:
                await limiter.release(lim, resp, resp.headers, None)
            attempt = Attempt(
                dep.label, "success", retries + 1, latency_s=clock() - t0, backoff_s=slept
            )
            trace.append(attempt)
            self._account(dep, resp, ctx, attempt, req)
            return resp

    async def _open_stream(
        self,
        dep: Deployment,
        req: ChatRequest,
        policy: RetryPolicy,
        timeouts: Timeouts,
        ctx: CallContext,
    ) -> tuple[AsyncGenerator[StreamChunk, None], list[StreamChunk], float, Any, Any]:
        """Start a stream on ``dep`` and read up to its first content chunk, with retries.

        Returns the live generator, the chunks read so far, the attempt's start time, the rate
        limiter's permit (released when the stream ends) and the breaker's permit: the stream's
        outcome for the breaker is only known when it ends (``_stream_outcome``), so a stream
        cut after its first chunks counts as the failure it is.
        """
        backend = self.backend_for(dep)
        breaker = self.breaker_for(dep)
        budget = self._budget(dep.key)
        clock = self.clock
        trace = ctx.trace
        first_token_timeout = ctx.opts.first_token_timeout
        retries = 0
        slept = 0.0
        while True:
            permit, lim = await self._admit(dep, req, ctx, breaker, retries + 1, slept)
            remaining = self._remaining(ctx.deadline_at)
            t0 = clock()
            sent = self._attempt_timeouts(timeouts, remaining)
            agen: AsyncGenerator[StreamChunk, None] = backend.stream(  # type: ignore[assignment]
                req, dep, sent
            )
            head: list[StreamChunk] = []
            limit = first_token_timeout
            if remaining is not None:
                limit = remaining if limit is None else min(limit, remaining)
            try:
                async with asyncio.timeout(limit):
                    async for c in agen:
                        head.append(c)
                        if c.delta or c.tool_calls or c.reasoning or c.done:
                            break
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
                    exc.caller_limited = caller_limited(ctx.opts, timeouts, sent, self.timeouts)
                slept = await self._failed(
                    exc, caught, dep, ctx, policy, breaker, permit, lim, budget, retries, t0, slept
                )
                retries += 1
                continue
            except BaseException:
                await agen.aclose()
                await self._abandoned(breaker, permit, lim)
                raise
            if budget is not None:
                budget.on_success()
            if permit is not None:
                permit.first_output = breaker.clock() if breaker is not None else None
            trace.append(Attempt(dep.label, "success", retries + 1, backoff_s=slept))
            return agen, head, t0, lim, permit

    async def _stream_outcome(
        self, dep: Deployment, permit: Any, failure: BaseException | None
    ) -> None:
        """Book a stream that started (see ``_open_stream``) with its breaker when it ends: a
        failure after output counts as ``counts_as_failure`` says; a stream that finished, or
        that its caller left, was served."""
        breaker = self.breaker_for(dep)
        if breaker is None or permit is None:
            return
        if isinstance(failure, Exception):
            await _on_failure(breaker, permit, failure)
        else:
            await _succeeded(breaker, permit, None)

    def _account(
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
        if req is not None and usage.input_tokens == 0 and usage.output_tokens == 0:
            from ..catalog.costs import estimate_usage

            usage = resp.usage = estimate_usage(
                req, dep, resp, registry=getattr(self.catalog, "registry", None)
            )
        attempt.usage = usage
        ctx.usage = ctx.usage + usage
        if self.catalog is not None:
            c = self.catalog.cost(dep, usage)
            if usage.estimated and not c.estimated:
                c = dataclasses.replace(c, estimated=True)
            attempt.cost_usd = c.usd
            ctx.cost = c if ctx.cost is None else ctx.cost + c


def _error_attempt(
    dep: Deployment, number: int, exc: BaseException, latency: float, slept: float
) -> Attempt:
    return Attempt(
        dep.label,
        "error",
        number,
        type(exc).__name__,
        getattr(exc, "status", None),
        latency,
        slept,
        None,
        getattr(exc, "message", None) or str(exc)[:300],
    )


async def _succeeded(
    breaker: CircuitBreaker | None, permit: Any, budget: RetryBudget | None
) -> None:
    if breaker is not None and permit is not None:
        hook = getattr(breaker, "aon_success", None)  # shared (Redis) breakers
        if hook is not None:
            await hook(permit)
        else:
            breaker.on_success(permit)
    if budget is not None:
        budget.on_success()


async def _on_failure(breaker: CircuitBreaker, permit: Any, exc: BaseException) -> None:
    hook = getattr(breaker, "aon_failure", None)
    if hook is not None:
        await hook(permit, exc)
    else:
        breaker.on_failure(permit, exc)
