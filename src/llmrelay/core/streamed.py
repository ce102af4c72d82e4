"""Streamed calls: the engine's pipeline for ``stream=True``, as functions over a :class:`Call`.

Cache (a hit is replayed as chunks), budget, then the candidates of the fallback chain until
one starts streaming. Once output has reached the caller there are no more retries or
fallbacks: a failure becomes ``StreamInterruptedError`` carrying the partial response -- except
a refusal (``ContentFilteredError``), which is the provider's answer, not a broken stream: it is
raised as it is, after the text streamed so far, with that text in ``partial_text``. The
attempts themselves are the engine's :class:`~llmrelay.core.attempts.AttemptRunner`'s.

Structured output (``response_model=``, :func:`stream_structured`): the text chunks stream as
they come; the final chunk (``done=True``) is held back until its text validates, then sent
with ``response.object`` set. Output that does not validate is re-asked on the same deployment
(``max_reasks``, as for a non-streamed call) and the re-ask streams too: its chunks follow, and
only the last answer's final chunk is sent. A refusal is never re-asked.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator

from ..errors import (
    APIError,
    ContentFilteredError,
    LLMRelayError,
    StreamInterruptedError,
    interrupted_by,
)
from ..providers.resolve import Target
from ..providers.table import Deployment
from ..types import ChatRequest, Response, StreamChunk, Usage
from .call import Call

__all__ = ["replay_chunks", "stream_call", "stream_structured"]


async def stream_call(call: Call) -> AsyncGenerator[StreamChunk, None]:
    """One logical streamed call: cache -> budget -> candidates; output flows as it comes."""
    call.begin()
    engine = call.engine
    key = call.cache_key
    if key is not None:
        assert engine.cache is not None
        hit = await engine.cache.get(key, call.ctx)
        if hit is not None and (call.spec is None or _validates(call, hit)):
            for c in replay_chunks(call.serve_hit(hit)):
                yield c
            return
    try:
        inner = stream_candidates(call) if call.spec is None else stream_structured(call)
        async with contextlib.aclosing(inner):
            async for c in inner:
                if c.done and c.response is not None and key is not None:
                    await call.cache_store(c.response)
                yield c
    except BaseException as exc:
        call.record_failure(exc)
        raise
    finally:
        await call.settle()


class _Streamed:
    """The stream that started on one deployment: what ``finish_stream`` needs."""

    __slots__ = ("dep", "req", "t", "t0", "ttft")

    def __init__(
        self, dep: Deployment, req: ChatRequest, t: Target, t0: float, ttft: float
    ) -> None:
        self.dep, self.req, self.t, self.t0, self.ttft = dep, req, t, t0, ttft


def _validates(call: Call, resp: Response) -> bool:
    from .structured import validates

    assert call.spec is not None
    return validates(call.spec, resp)


async def stream_structured(call: Call) -> AsyncGenerator[StreamChunk, None]:
    """A streamed call with a response model: stream, validate the answer once at its end,
    re-ask (re-streaming) while it does not validate; the final chunk carries the object."""
    from pydantic import ValidationError

    from .structured import next_reask, parse_structured

    spec, ctx = call.spec, call.ctx
    assert spec is not None
    max_reasks = call.opts.max_reasks
    cur, msgs = call, call.msgs
    for n in range(max_reasks + 1):
        started: list[_Streamed] = []
        final: StreamChunk | None = None
        inner = stream_candidates(cur, started, record=False)
        async with contextlib.aclosing(inner):
            async for c in inner:
                if c.done:
                    final = c  # held back until it validates
                else:
                    yield c
        assert final is not None
        assert final.response is not None
        assert started
        resp, s = final.response, started[0]
        try:
            resp.object = parse_structured(spec.model, resp.text)
        except ValidationError as exc:
            msgs = next_reask(spec, resp, exc, n, max_reasks, ctx.trace, ctx.usage, msgs)
            cur = call._reask(s.t, s.dep, msgs)
            cur.stream = True
            continue
        if call.engine.recorder is not None:
            call.record(resp, s.dep, s.req)
        yield final
        return


async def stream_candidates(
    call: Call,
    started: list[_Streamed] | None = None,
    *,
    record: bool = True,
    top: bool = False,
) -> AsyncGenerator[StreamChunk, None]:
    """The candidates until one starts streaming, then its output (``started`` receives what
    started; ``record=False`` leaves recording the call to the caller). ``top``: the whole
    call, for one without a cache or a response model (``Engine.stream``): what
    ``stream_call`` does around it is done here (begin, record a failure, settle), so each
    chunk passes one generator fewer."""
    if top:
        call.begin()
    try:
        engine = call.engine
        attempts = engine.attempts
        clock = engine.clock
        ctx = call.ctx
        trace = ctx.trace
        (agen, head, t0, lim, permit), dep, t, req = await call.candidates(attempts.open_stream)
        # Output reaches the caller from here on: no more retries or fallbacks.
        s = _Streamed(dep, req, t, t0, clock() - ctx.start)
        if started is not None:
            started.append(s)
        text: list[str] = []
        usage: Usage | None = None
        final: Response | None = None
        failure: BaseException | None = None
        try:
            for c in head:
                text.append(c.delta)
                usage = c.usage or usage
                if c.done:
                    final = finish_stream(call, c, s)
                yield c
            if final is None:
                async for c in agen:
                    text.append(c.delta)
                    usage = c.usage or usage
                    if c.done:
                        final = finish_stream(call, c, s)
                    yield c
            if final is not None and record and engine.recorder is not None:
                call.record(final, dep, req)
        except Exception as exc:
            failure = exc
            ok = trace[-1]
            ok.outcome, ok.error, ok.latency_s = "error", type(exc).__name__, clock() - t0
            ok.status, ok.reason = getattr(exc, "status", None), "failed after output was sent"
            err: LLMRelayError
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
                if isinstance(exc, ContentFilteredError):
                    # A refusal ends the answer: raised as it is, after the text already streamed.
                    ok.reason = "refused after output was sent"
                    exc.partial_text = exc.partial_text or partial.text
                    exc.provider = exc.provider or dep.provider
                    exc.model = exc.model or dep.model
                    err = exc
                elif isinstance(exc, APIError):
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
                attempts.account(dep, partial, ctx, ok, req)
            err.trace = trace
            if err is exc:
                raise
            raise err from exc
        except BaseException:
            if final is None:
                # The caller left early, or the call was cancelled: what was streamed so far
                # was still spent (counted here when not reported).
                cut = Response(text="".join(text), usage=usage or Usage())
                attempts.account(dep, cut, ctx, trace[-1], req)
            raise
        finally:
            # Each step runs even when the caller is cancelled during the one before.
            try:
                await agen.aclose()
            finally:
                try:
                    await attempts.stream_outcome(dep, permit, failure)
                finally:
                    limiter = engine.limiter
                    if limiter is not None:
                        await limiter.release(
                            lim, final, final.headers if final is not None else None, failure
                        )
    except BaseException as exc:
        if top:
            call.record_failure(exc)
        raise
    finally:
        if top:
            await call.settle()


def finish_stream(call: Call, c: StreamChunk, s: _Streamed) -> Response:
    """The last chunk of a stream: account its usage, finish its response."""
    resp = c.response
    assert resp is not None
    attempt = call.ctx.trace[-1]  # the success entry open_stream added
    attempt.latency_s = call.engine.clock() - s.t0
    call.engine.attempts.account(s.dep, resp, call.ctx, attempt, s.req)
    c.usage = resp.usage  # estimated when the stream reported none
    call.finish(resp, s.t)
    resp.time_to_first_token_s = s.ttft
    return resp


def replay_chunks(resp: Response) -> list[StreamChunk]:
    """A finished response as the chunks a stream would have sent (cache hits)."""
    import re

    from ..types import ToolCallDelta, chunk

    out = [chunk(p) for p in re.findall(r"\s*\S+", resp.text)]
    for i, tc in enumerate(resp.tool_calls):
        out.append(chunk(tool_calls=[ToolCallDelta(i, tc.id, tc.name, tc.arguments, tc.signature)]))
    out.append(chunk(done=True, response=resp, finish_reason=resp.finish_reason, usage=resp.usage))
    return out
