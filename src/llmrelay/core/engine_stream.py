"""Streamed calls: the engine's pipeline for ``stream=True``.

:class:`StreamingCalls` is the part of the engine that answers streamed calls: cache (a hit is
replayed as chunks), budget, then the candidates of the fallback chain until one starts
streaming. Once output has reached the caller there are no more retries or fallbacks: a
failure becomes ``StreamInterruptedError`` carrying the partial response. It is mixed into
``Engine`` (``engine.py``), which provides resolution, recording and the reliability settings;
the attempts themselves are :class:`~llmrelay.core.attempts.AttemptRunner`'s.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from ..errors import (
    APIError,
    InvalidRequestError,
    LLMRelayError,
    StreamInterruptedError,
    interrupted_by,
)
from ..providers.resolve import Target
from ..providers.table import Deployment
from ..transport.base import Timeouts
from ..types import (
    ChatRequest,
    GenerationParams,
    Message,
    MessagesInput,
    Response,
    StreamChunk,
    Usage,
    normalize_messages,
)
from .attempts import AttemptRunner
from .layers import BudgetLayer, CacheLayer, CallContext, Recorder
from .options import NO_OPTIONS, CallOptions, positive_option
from .retry import RetryPolicy
from .routing import Plan
from .streaming import ResponseStream

if TYPE_CHECKING:
    from .engine import ModelRef

__all__ = ["StreamingCalls", "replay_chunks"]

T = TypeVar("T")


class StreamingCalls(AttemptRunner):
    """Answers streamed calls (mixed into ``Engine``)."""

    cache: CacheLayer | None
    budget: BudgetLayer | None
    recorder: Recorder | None

    if TYPE_CHECKING:
        # Provided by Engine.

        def _plan(self, model: ModelRef, opts: CallOptions) -> Plan: ...

        def _primary(
            self, plan: Plan, opts: CallOptions
        ) -> tuple[Deployment | None, LLMRelayError | None]: ...

        def _context(self, plan: Plan, opts: CallOptions) -> CallContext: ...

        @staticmethod
        def _request(
            t: Target, messages: list[Message], params: GenerationParams, stream: bool
        ) -> ChatRequest: ...

        def _finish(self, resp: Response, t: Target, ctx: CallContext) -> None: ...

        def _cache_key(
            self, dep0: Deployment | None, req0: ChatRequest, ctx: CallContext
        ) -> str | None: ...

        async def _cache_store(self, key: str, resp: Response, ctx: CallContext) -> None: ...

        def _serve_hit(
            self,
            hit: Response,
            dep: Deployment,
            ctx: CallContext,
            *,
            stream: bool,
            req: ChatRequest,
        ) -> Response: ...

        def _record(
            self,
            resp: Response,
            dep: Deployment,
            ctx: CallContext,
            req: ChatRequest,
            *,
            stream: bool,
        ) -> None: ...

        def _record_failure(
            self,
            exc: BaseException,
            plan: Plan,
            ctx: CallContext,
            req: ChatRequest,
            *,
            stream: bool,
        ) -> None: ...

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
        ) -> tuple[T, Deployment, Target, ChatRequest]: ...

    def stream(
        self,
        model: ModelRef,
        messages: MessagesInput,
        params: GenerationParams,
        opts: CallOptions = NO_OPTIONS,
    ) -> ResponseStream:
        """A streamed call. Resolution and validation errors are raised here, before iteration."""
        if opts.response_model is not None:
            raise InvalidRequestError(
                "response_model cannot be streamed; call without stream to get a validated object"
            )
        positive_option("first_token_timeout", opts.first_token_timeout)
        msgs = normalize_messages(messages, opts.system)
        plan = self._plan(model, opts)
        dep0, err0 = self._primary(plan, opts)  # a missing key fails here
        return ResponseStream(self._stream(plan, dep0, err0, msgs, params, opts))

    async def _stream(
        self,
        plan: Plan,
        dep0: Deployment | None,
        err0: LLMRelayError | None,
        msgs: list[Message],
        params: GenerationParams,
        opts: CallOptions,
    ) -> AsyncGenerator[StreamChunk, None]:
        """One logical streamed call: cache -> budget -> candidates; output flows as it comes."""
        ctx = self._context(plan, opts)
        req0 = self._request(plan.primary, msgs, params, True)
        key = self._cache_key(dep0, req0, ctx)
        if key is not None:
            assert self.cache is not None
            assert dep0 is not None
            hit = await self.cache.get(key, ctx)
            if hit is not None:
                resp = self._serve_hit(hit, dep0, ctx, stream=True, req=req0)
                for c in replay_chunks(resp):
                    yield c
                return
        try:
            inner = self._stream_candidates(plan, dep0, err0, msgs, params, ctx, req0)
            async with contextlib.aclosing(inner):
                async for c in inner:
                    if c.done and c.response is not None and key is not None:
                        await self._cache_store(key, c.response, ctx)
                    yield c
        except BaseException as exc:
            self._record_failure(exc, plan, ctx, req0, stream=True)
            raise
        finally:
            if ctx.reservation is not None:
                assert self.budget is not None
                await self.budget.settle(ctx.reservation, ctx)

    async def _stream_candidates(
        self,
        plan: Plan,
        dep0: Deployment | None,
        err0: LLMRelayError | None,
        msgs: list[Message],
        params: GenerationParams,
        ctx: CallContext,
        req0: ChatRequest | None = None,
    ) -> AsyncGenerator[StreamChunk, None]:
        clock = self.clock
        trace = ctx.trace
        (agen, head, t0, lim, permit), dep, t, req = await self._try_candidates(
            plan, dep0, err0, msgs, params, ctx, req0, True, self._open_stream
        )
        # Output reaches the caller from here on: no more retries or fallbacks.
        text: list[str] = []
        usage: Usage | None = None
        ttft = clock() - ctx.start
        final: Response | None = None
        failure: BaseException | None = None
        try:
            for c in head:
                text.append(c.delta)
                usage = c.usage or usage
                if c.done:
                    final = self._finish_stream(c, dep, t, t0, ttft, ctx, req)
                yield c
            if final is None:
                async for c in agen:
                    text.append(c.delta)
                    usage = c.usage or usage
                    if c.done:
                        final = self._finish_stream(c, dep, t, t0, ttft, ctx, req)
                    yield c
            if final is not None and self.recorder is not None:
                self._record(final, dep, ctx, req, stream=True)
        except Exception as exc:
            failure = exc
            ok = trace[-1]
            ok.outcome, ok.error, ok.latency_s = "error", type(exc).__name__, clock() - t0
            ok.status, ok.reason = getattr(exc, "status", None), "failed after output was sent"
            if isinstance(exc, StreamInterruptedError):
                partial = exc.partial
                err = exc
            else:
                partial = Response(
                    text="".join(text),
                    usage=usage or Usage(),
                    provider=dep.provider,
                    model=dep.model,
                    alias=t.alias,
                )
                message = f"the stream failed after output was sent: {type(exc).__name__}: {exc}"
                if isinstance(exc, APIError):
                    # An error the provider sent mid-stream stays that error (an OverloadedError,
                    # a RateLimitedError ...) and is a StreamInterruptedError too.
                    err = interrupted_by(exc, message, partial)
                    err.provider = err.provider or dep.provider
                    err.model = err.model or dep.model
                else:
                    err = StreamInterruptedError(
                        message,
                        provider=dep.provider,
                        model=dep.model,
                        status=getattr(exc, "status", None),
                        partial=partial,
                    )
            if isinstance(partial, Response):
                # Tokens spent on a cut stream still count (counted here when not reported).
                self._account(dep, partial, ctx, ok, req)
            err.trace = trace
            if err is exc:
                raise
            raise err from exc
        except BaseException:
            if final is None:
                # The caller left early, or the call was cancelled: what was streamed so far
                # was still spent (counted here when not reported).
                cut = Response(text="".join(text), usage=usage or Usage())
                self._account(dep, cut, ctx, trace[-1], req)
            raise
        finally:
            await agen.aclose()
            await self._stream_outcome(dep, permit, failure)
            if self.limiter is not None:
                await self.limiter.release(
                    lim, final, final.headers if final is not None else None, failure
                )

    def _finish_stream(
        self,
        c: StreamChunk,
        dep: Deployment,
        t: Target,
        t0: float,
        ttft: float,
        ctx: CallContext,
        req: ChatRequest,
    ) -> Response:
        resp = c.response
        assert resp is not None
        attempt = ctx.trace[-1]  # the success entry _open_stream added
        attempt.latency_s = self.clock() - t0
        self._account(dep, resp, ctx, attempt, req)
        c.usage = resp.usage  # estimated when the stream reported none
        self._finish(resp, t, ctx)
        resp.time_to_first_token_s = ttft
        return resp


def replay_chunks(resp: Response) -> list[StreamChunk]:
    """A finished response as the chunks a stream would have sent (cache hits)."""
    import re

    from ..types import ToolCallDelta, chunk

    out = [chunk(p) for p in re.findall(r"\s*\S+", resp.text)]
    for i, tc in enumerate(resp.tool_calls):
        out.append(chunk(tool_calls=[ToolCallDelta(i, tc.id, tc.name, tc.arguments)]))
    out.append(chunk(done=True, response=resp, finish_reason=resp.finish_reason, usage=resp.usage))
    return out
