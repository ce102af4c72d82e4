"""Reliability through the engine, with faults injected over real sockets: retries, the
server's Retry-After, timeouts, cut streams, deadlines, fallback chains, breakers and the
decision trace. A fake clock and a fake sleep drive backoff: nothing here really waits."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from email.utils import formatdate
from pathlib import Path
from typing import Any

import orjson
import pytest

import llmrelay
from llmrelay.core.retry import RetryPolicy
from llmrelay.core.routing import validate_chain
from llmrelay.core.trace import Attempt, format_trace
from llmrelay.errors import (
    AllAttemptsFailedError,
    APIConnectionError,
    APITimeoutError,
    CircuitOpenError,
    ConfigurationError,
    ContentFilteredError,
    ContextWindowExceededError,
    DeadlineExceededError,
    OverloadedError,
    RateLimitedError,
    ServerError,
    StreamInterruptedError,
    UnknownModelError,
)
from llmrelay.providers.resolve import Target
from llmrelay.reliability.breaker import BreakerRegistry
from llmrelay.testing.fake import FakeUpstream, Reply

from ..conftest import CANARY_KEY, FakeClock

MODEL = "openai/gpt-4.1-mini"
OPENAI = "openai/gpt-4.1-mini"
GROQ = "groq/llama-3.1-8b-instant"
MISTRAL = "mistral/mistral-small-latest"
ANTHROPIC = "anthropic/claude-sonnet-4-5"


class Rig:
    """An engine with a fake clock and a sleep that only records (and advances the clock)."""

    def __init__(self, **engine_kw: Any) -> None:
        self.clock = FakeClock()
        self.slept: list[float] = []
        self.engine = llmrelay.Engine(clock=self.clock, sleep=self.sleep, **engine_kw)
        self.client = llmrelay.Client(engine=self.engine)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.advance(seconds)

    async def aclose(self) -> None:
        await self.client.aclose()


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    r = Rig()
    yield r
    await r.aclose()


def direct(fake: FakeUpstream, **kw: Any) -> dict[str, Any]:
    """Call options pointing the primary (openai) at the fake."""
    return {"api_key": CANARY_KEY, "base_url": fake.openai_base_url, **kw}


def no_canary(*objs: object) -> None:
    for o in objs:
        for text in (str(o), repr(o)):
            assert CANARY_KEY not in text


def check_trace_clean(trace: list[Attempt]) -> None:
    no_canary(format_trace(trace), [a.to_dict() for a in trace], trace)


def tick_per_request(fake: FakeUpstream, clock: FakeClock, seconds: float) -> None:
    """Each request the fake answers takes ``seconds`` on the fake clock."""
    original = fake._next_reply

    def next_reply(path: str) -> Reply | None:
        clock.advance(seconds)
        return original(path)

    fake._next_reply = next_reply  # type: ignore[method-assign]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- retries


async def test_500_then_success(fake: FakeUpstream, rig: Rig) -> None:
    fake.push(Reply.error(500, "boom"))
    r = await rig.client.achat(MODEL, "hello", **direct(fake))
    assert r.text == "Echo: hello"
    assert len(fake.requests) == 2
    assert [a.outcome for a in r.trace] == ["error", "success"]
    first, second = r.trace
    assert (first.deployment, first.number, first.error, first.status) == (
        OPENAI,
        1,
        "ServerError",
        500,
    )
    assert first.message
    assert "boom" in first.message
    assert (second.deployment, second.number, second.error) == (OPENAI, 2, None)
    # Default policy: full jitter in [0, 0.5] before the first retry; the trace says how long.
    assert len(rig.slept) == 1
    assert 0.0 <= rig.slept[0] <= 0.5
    assert second.backoff_s == rig.slept[0]
    check_trace_clean(r.trace)


async def test_retries_are_on_by_default_and_give_up_after_two(
    fake: FakeUpstream, rig: Rig
) -> None:
    fake.push(*(Reply.error(503, "unavailable") for _ in range(5)))
    with pytest.raises(ServerError) as info:
        await rig.client.achat(MODEL, "hello", **direct(fake))
    assert len(fake.requests) == 3  # 1 + 2 retries, as the official SDKs
    assert [a.number for a in info.value.trace] == [1, 2, 3]
    assert info.value.trace[-1].reason
    assert "no retries left" in info.value.trace[-1].reason
    assert len(rig.slept) == 2


async def test_retries_zero_disables_retries_per_call(fake: FakeUpstream, rig: Rig) -> None:
    fake.push(Reply.error(500, "boom"))
    with pytest.raises(ServerError):
        await rig.client.achat(MODEL, "hello", **direct(fake, retries=0))
    assert len(fake.requests) == 1
    assert rig.slept == []


async def test_retry_policy_per_call_and_global(fake: FakeUpstream) -> None:
    rig = Rig(retry=RetryPolicy(max_retries=4, base_delay=1, max_delay=8, jitter=False))
    fake.push(*(Reply.error(500) for _ in range(4)))
    r = await rig.client.achat(MODEL, "hi", **direct(fake))
    assert rig.slept == [1.0, 2.0, 4.0, 8.0]  # seed 004's schedule, globally
    assert [a.backoff_s for a in r.trace] == [0.0, 1.0, 2.0, 4.0, 8.0]
    rig.slept.clear()
    fake.push(Reply.error(500), Reply.error(500))
    policy = RetryPolicy(max_retries=1, base_delay=3, max_delay=3, jitter=False)
    with pytest.raises(ServerError):
        await rig.client.achat(MODEL, "hi", **direct(fake, retry=policy))
    assert rig.slept == [3.0]
    await rig.aclose()


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "inf"}, None),  # malformed: the backoff is used
        ({"retry-after": "-10"}, None),
    ],
)
async def test_429_with_retry_after_then_success(
    fake: FakeUpstream, rig: Rig, headers: dict[str, str], expected: float | None
) -> None:
    fake.push(Reply.error(429, "Rate limit reached", headers=headers))
    r = await rig.client.achat(MODEL, "hi", **direct(fake))
    assert r.text == "Echo: hi"
    assert r.trace[0].error == "RateLimitedError"
    assert r.trace[0].status == 429
    assert len(rig.slept) == 1
    if expected is None:
        assert 0 <= rig.slept[0] <= 0.5
    else:
        assert rig.slept == [expected]
    assert r.trace[1].backoff_s == rig.slept[0]


async def test_429_with_retry_after_http_date(fake: FakeUpstream, rig: Rig) -> None:
    when = formatdate(time.time() + 20, usegmt=True)  # whole seconds: 19 < wait <= 20
    fake.push(Reply.error(429, "slow down", headers={"retry-after": when}))
    r = await rig.client.achat(MODEL, "hi", **direct(fake))
    assert r.text == "Echo: hi"
    assert len(rig.slept) == 1
    assert 18.0 < rig.slept[0] <= 20.0


async def test_429_above_the_ceiling_fails_fast(fake: FakeUpstream, rig: Rig) -> None:
    fake.push(Reply.error(429, "come back tomorrow", headers={"retry-after": "3600"}))
    with pytest.raises(RateLimitedError) as info:
        await rig.client.achat(MODEL, "hi", **direct(fake))
    assert len(fake.requests) == 1
    assert rig.slept == []
    assert info.value.retry_after == 3600.0
    reason = info.value.trace[-1].reason
    assert reason is not None
    assert "ceiling" in reason


@pytest.mark.parametrize("header", [{"retry-after": "30"}, {"retry-after-ms": "30000"}])
async def test_429_whose_wait_outlasts_the_deadline_fails_fast(
    fake: FakeUpstream, rig: Rig, header: dict[str, str]
) -> None:
    """Issue 8: retry-after 30 with a 3 s deadline was retried at +2.7, +2.97 and +3.0 s."""
    fake.push(Reply.error(429, "slow down", headers=header), Reply.ok("too early"))
    with pytest.raises(RateLimitedError) as info:
        await rig.client.achat(MODEL, "hi", **direct(fake, deadline=3))
    assert len(fake.requests) == 1  # nothing sent before the server said to come back
    assert rig.slept == []
    e = info.value
    assert e.status == 429
    assert e.retry_after == 30.0
    assert [a.outcome for a in e.trace] == ["error"]
    reason = e.trace[-1].reason
    assert reason is not None
    assert "server asked to retry after 30s" in reason
    assert "deadline" in reason
    check_trace_clean(e.trace)


async def test_429_whose_wait_outlasts_the_deadline_fails_fast_on_the_real_clock(
    fake: FakeUpstream,
) -> None:
    """The same with the default engine (real clock and sleep): no attempt, no wait."""
    client = llmrelay.Client()
    fake.push(Reply.error(429, "slow down", headers={"retry-after": "30"}), Reply.ok("early"))
    with pytest.raises(RateLimitedError) as info:
        await client.achat(MODEL, "hi", **direct(fake, deadline=3))
    assert len(fake.requests) == 1
    assert info.value.retry_after == 30.0
    await client.aclose()


async def test_stream_429_whose_wait_outlasts_the_deadline_fails_fast(
    fake: FakeUpstream, rig: Rig
) -> None:
    fake.push(Reply.error(429, "slow down", headers={"retry-after": "30"}), Reply.ok("early"))
    s = rig.client.astream(MODEL, "hi", **direct(fake, deadline=3))
    deltas, exc = await collect(s)
    assert deltas == []
    assert isinstance(exc, RateLimitedError)
    assert exc.retry_after == 30.0
    assert len(fake.requests) == 1
    assert rig.slept == []


async def test_429_wait_that_fits_the_deadline_is_waited_in_full(
    fake: FakeUpstream, rig: Rig
) -> None:
    """Never earlier than the server said: the wait is not cut to the deadline."""
    tick_per_request(fake, rig.clock, 1.0)
    fake.push(Reply.error(429, "slow down", headers={"retry-after": "5"}))
    r = await rig.client.achat(MODEL, "hi", **direct(fake, deadline=10))
    assert r.text == "Echo: hi"
    assert rig.slept == [5.0]
    # Now 4 s of 10 are left after the first answer: a 5 s wait does not fit (10% kept).
    rig.clock.t = 1000.0
    fake.push(Reply.error(429, "slow down", headers={"retry-after": "5"}))
    with pytest.raises(RateLimitedError):
        await rig.client.achat(MODEL, "hi", **direct(fake, deadline=6))
    assert rig.slept == [5.0]
    assert len(fake.requests) == 3


async def test_429_whose_wait_outlasts_the_deadline_moves_to_the_fallback(
    fake: FakeUpstream, rig: Rig, point_at: Callable[[FakeUpstream], FakeUpstream]
) -> None:
    point_at(fake)
    fake.push(Reply.error(429, "slow down", headers={"retry-after": "30"}))
    r = await rig.client.achat(MODEL, "hi", **direct(fake, deadline=3, fallbacks=[GROQ]))
    assert r.provider == "groq"
    assert [(a.deployment, a.outcome) for a in r.trace] == [(OPENAI, "error"), (GROQ, "success")]
    assert rig.slept == []


async def test_429_insufficient_quota_is_not_retried(fake: FakeUpstream, rig: Rig) -> None:
    fake.push(Reply.error(429, "quota", type="insufficient_quota", code="insufficient_quota"))
    with pytest.raises(llmrelay.QuotaExhaustedError):
        await rig.client.achat(MODEL, "hi", **direct(fake))
    assert len(fake.requests) == 1
    assert rig.slept == []


async def test_x_should_retry_false(fake: FakeUpstream, rig: Rig) -> None:
    fake.push(Reply.error(500, "do not retry", headers={"x-should-retry": "false"}))
    with pytest.raises(ServerError):
        await rig.client.achat(MODEL, "hi", **direct(fake))
    assert len(fake.requests) == 1


async def test_400_is_never_retried(fake: FakeUpstream, rig: Rig) -> None:
    fake.push(Reply.error(400, "bad request"))
    with pytest.raises(llmrelay.BadRequestError):
        await rig.client.achat(MODEL, "hi", **direct(fake))
    assert len(fake.requests) == 1
    assert rig.slept == []


async def test_529_overloaded_anthropic(fake: FakeUpstream, rig: Rig) -> None:
    kw = {"api_key": CANARY_KEY, "base_url": fake.anthropic_base_url}
    fake.push(Reply.error(529, "Overloaded", type="overloaded_error"))
    r = await rig.client.achat(ANTHROPIC, "hi", **kw)
    assert r.text == "Echo: hi"
    assert r.trace[0].error == "OverloadedError"
    assert r.trace[0].status == 529
    assert fake.requests[0].path.endswith("/messages")
    fake.push(*(Reply.error(529, "Overloaded", type="overloaded_error") for _ in range(3)))
    with pytest.raises(OverloadedError) as info:
        await rig.client.achat(ANTHROPIC, "hi", **kw)
    assert info.value.status == 529
    assert len(info.value.trace) == 3
    check_trace_clean(info.value.trace)


async def test_connection_refused(rig: Rig) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(APIConnectionError) as info:
        await rig.client.achat(MODEL, "hi", api_key=CANARY_KEY, base_url=url)
    e = info.value
    assert [a.error for a in e.trace] == ["APIConnectionError"] * 3
    assert len(rig.slept) == 2
    no_canary(e)
    check_trace_clean(e.trace)


async def test_connection_reset_before_the_answer(fake: FakeUpstream, rig: Rig) -> None:
    fake.push(Reply.reset())
    r = await rig.client.achat(MODEL, "hi", **direct(fake))
    assert r.text == "Echo: hi"
    assert r.trace[0].error == "APIConnectionError"


class MidBodyResetServer:
    """Raw HTTP: the first answer promises 400 bytes, sends 20 and resets the connection; the
    next answers are complete chat completions."""

    def __init__(self) -> None:
        self.requests = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> MidBodyResetServer:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await reader.readexactly(length)
        self.requests += 1
        body = orjson.dumps(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1,
                "model": "gpt-4.1-mini",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "whole"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )
        status = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
        if self.requests == 1:
            writer.write(status + b"content-length: 400\r\n\r\n" + body[:20])
            await writer.drain()
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()  # RST in the middle of the body
            return
        writer.write(status + b"content-length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()
        writer.close()


async def test_connection_reset_mid_body(rig: Rig) -> None:
    async with MidBodyResetServer() as server:
        r = await rig.client.achat(MODEL, "hi", api_key=CANARY_KEY, base_url=server.base_url)
    assert r.text == "whole"
    assert server.requests == 2
    assert r.trace[0].error == "APIConnectionError"
    assert r.trace[1].outcome == "success"


async def test_hang_past_the_attempt_timeout(fake: FakeUpstream, rig: Rig) -> None:
    fake.push(Reply.hang(0.2))
    r = await rig.client.achat(MODEL, "hi", **direct(fake, timeout=0.05))
    assert r.text == "Echo: hi"
    assert r.trace[0].error == "APITimeoutError"
    assert r.trace[1].outcome == "success"
    fake.push(Reply.hang(0.2))
    with pytest.raises(APITimeoutError):
        await rig.client.achat(MODEL, "hi", **direct(fake, timeout=0.05, retries=0))


# --------------------------------------------------------------------------- streams


async def collect(stream: llmrelay.ResponseStream) -> tuple[list[str], BaseException | None]:
    deltas: list[str] = []
    try:
        async for c in stream:
            deltas.append(c.delta)
    except Exception as exc:
        return deltas, exc
    return deltas, None


async def test_stream_cut_after_two_chunks_keeps_the_partial_and_does_not_fall_back(
    fake: FakeUpstream, rig: Rig, point_at: Callable[[FakeUpstream], FakeUpstream]
) -> None:
    point_at(fake)
    fake.push(Reply.cut_stream(after_chunks=2, text="one two three four five"))
    s = rig.client.astream(MODEL, "hi", **direct(fake, fallbacks=[GROQ]))
    deltas, exc = await collect(s)
    assert "".join(deltas) == "one two"
    assert isinstance(exc, StreamInterruptedError)
    assert exc.partial is not None
    assert exc.partial.text == "one two"
    assert len(fake.requests) == 1  # no retry, no fallback after output
    assert exc.trace[-1].outcome == "error"
    assert exc.trace[-1].reason == "failed after output was sent"
    assert all(a.deployment == OPENAI for a in exc.trace)
    no_canary(exc)
    check_trace_clean(exc.trace)


async def test_error_event_first_is_retried(fake: FakeUpstream, rig: Rig) -> None:
    fake.push(Reply.stream_error(after_chunks=0, message="Overloaded", type="server_error"))
    s = rig.client.astream(MODEL, "hi", **direct(fake))
    deltas, exc = await collect(s)
    assert exc is None
    assert "".join(deltas) == "Echo: hi"
    assert s.response is not None
    assert [a.outcome for a in s.response.trace] == ["error", "success"]
    assert s.response.trace[0].error == "ServerError"
    assert len(rig.slept) == 1


async def test_error_event_first_falls_back(
    fake: FakeUpstream, rig: Rig, point_at: Callable[[FakeUpstream], FakeUpstream]
) -> None:
    point_at(fake)
    fake.push(Reply.stream_error(after_chunks=0, message="Overloaded", type="server_error"))
    s = rig.client.astream(MODEL, "hi", **direct(fake, retries=0, fallbacks=[GROQ]))
    deltas, exc = await collect(s)
    assert exc is None
    assert "".join(deltas) == "Echo: hi"
    assert s.response is not None
    assert s.response.provider == "groq"
    assert [(a.deployment, a.outcome) for a in s.response.trace] == [
        (OPENAI, "error"),
        (GROQ, "success"),
    ]
    assert len(fake.requests) == 2


async def test_error_event_mid_stream(fake: FakeUpstream, rig: Rig) -> None:
    fake.push(Reply.stream_error(after_chunks=2, message="Overloaded", type="server_error"))
    s = rig.client.astream(MODEL, "one two three", **direct(fake))
    deltas, exc = await collect(s)
    assert isinstance(exc, StreamInterruptedError)
    assert isinstance(exc.__cause__, ServerError)  # the typed error the provider sent
    assert exc.partial is not None
    assert exc.partial.text == "".join(deltas) != ""
    assert len(fake.requests) == 1
    assert exc.trace[-1].error == "ServerError"


async def test_error_event_mid_stream_anthropic(fake: FakeUpstream, rig: Rig) -> None:
    fake.push(Reply.stream_error(after_chunks=1, message="Overloaded", type="overloaded_error"))
    s = rig.client.astream(
        ANTHROPIC, "one two three", api_key=CANARY_KEY, base_url=fake.anthropic_base_url
    )
    deltas, exc = await collect(s)
    assert isinstance(exc, StreamInterruptedError)
    assert isinstance(exc.__cause__, OverloadedError)
    assert exc.partial is not None
    assert exc.partial.text == "".join(deltas) != ""


async def test_first_token_timeout(fake: FakeUpstream, rig: Rig) -> None:
    fake.push(Reply.hang(0.2))
    s = rig.client.astream(MODEL, "hi", **direct(fake, first_token_timeout=0.05))
    deltas, exc = await collect(s)
    assert exc is None
    assert "".join(deltas) == "Echo: hi"
    assert s.response is not None
    first = s.response.trace[0]
    assert first.error == "APITimeoutError"
    assert first.message
    assert "first token" in first.message
    fake.push(Reply.hang(0.2))
    s = rig.client.astream(MODEL, "hi", **direct(fake, first_token_timeout=0.05, retries=0))
    _, exc = await collect(s)
    assert isinstance(exc, APITimeoutError)


async def test_stream_connection_refused_falls_back(
    fake: FakeUpstream, rig: Rig, point_at: Callable[[FakeUpstream], FakeUpstream]
) -> None:
    point_at(fake)
    url = f"http://127.0.0.1:{free_port()}/v1"
    s = rig.client.astream(
        MODEL, "hi", api_key=CANARY_KEY, base_url=url, retries=0, fallbacks=[GROQ]
    )
    deltas, exc = await collect(s)
    assert exc is None
    assert "".join(deltas) == "Echo: hi"
    assert s.response is not None
    assert [a.error for a in s.response.trace] == ["APIConnectionError", None]


# --------------------------------------------------------------------------- deadlines


async def test_deadline_covers_attempts_and_backoff(fake: FakeUpstream) -> None:
    rig = Rig(retry=RetryPolicy(max_retries=5, base_delay=5, max_delay=40, jitter=False))
    tick_per_request(fake, rig.clock, 20.0)  # every attempt takes 20 s of fake time
    fake.push(*(Reply.error(500, "down") for _ in range(6)))
    with pytest.raises(DeadlineExceededError) as info:
        await rig.client.achat(MODEL, "hi", **direct(fake, deadline=50))
    # t=0 attempt, t=20 sleep 5, t=25 attempt, t=45: 5 s left, the 10 s backoff is cut to
    # 4.5 s (leaving 10% for the attempt), t=49.5 attempt, t=69.5: nothing left.
    assert rig.slept == [5.0, 4.5]
    assert len(fake.requests) == 3
    e = info.value
    assert isinstance(e, TimeoutError)
    assert isinstance(e.__cause__, ServerError)
    assert [a.outcome for a in e.trace] == ["error"] * 3
    assert e.trace[-1].reason == "deadline reached"
    await rig.aclose()


async def test_engine_wide_deadline(fake: FakeUpstream) -> None:
    rig = Rig(deadline=10, retry=RetryPolicy(max_retries=9, jitter=False))
    tick_per_request(fake, rig.clock, 4.0)
    fake.push(*(Reply.error(502) for _ in range(10)))
    with pytest.raises(DeadlineExceededError):
        await rig.client.achat(MODEL, "hi", **direct(fake))
    # t=0 attempt, t=4 sleep 0.5, t=4.5 attempt, t=8.5 sleep 1, t=9.5 attempt, t=13.5 done.
    assert rig.slept == [0.5, 1.0]
    assert len(fake.requests) == 3
    await rig.aclose()


async def test_deadline_covers_fallbacks(
    fake: FakeUpstream, point_at: Callable[[FakeUpstream], FakeUpstream]
) -> None:
    point_at(fake)
    rig = Rig()
    tick_per_request(fake, rig.clock, 20.0)
    fake.push(*(Reply.error(500, "down") for _ in range(3)))
    with pytest.raises(DeadlineExceededError) as info:
        await rig.client.achat(
            MODEL, "hi", **direct(fake, deadline=30, retries=0, fallbacks=[GROQ, MISTRAL])
        )
    assert len(fake.requests) == 2  # the third candidate was never tried: no time left
    assert [a.deployment for a in info.value.trace] == [OPENAI, GROQ]
    await rig.aclose()


async def test_deadline_stops_the_chain(
    fake: FakeUpstream, point_at: Callable[[FakeUpstream], FakeUpstream]
) -> None:
    """What the engine does today: the chain stops, the deadline error is among the errors."""
    point_at(fake)
    rig = Rig()
    tick_per_request(fake, rig.clock, 20.0)
    fake.push(*(Reply.error(500, "down") for _ in range(3)))
    with pytest.raises((DeadlineExceededError, AllAttemptsFailedError)) as info:
        await rig.client.achat(
            MODEL, "hi", **direct(fake, deadline=30, retries=0, fallbacks=[GROQ, MISTRAL])
        )
    assert len(fake.requests) == 2
    e = info.value
    if isinstance(e, AllAttemptsFailedError):
        assert isinstance(e.exceptions[-1], DeadlineExceededError)
    await rig.aclose()


@pytest.mark.parametrize("bad", [0, -1, float("nan"), "10", True])
async def test_bad_deadline(fake: FakeUpstream, rig: Rig, bad: Any) -> None:
    with pytest.raises(ConfigurationError):
        await rig.client.achat(MODEL, "hi", **direct(fake, deadline=bad))
    with pytest.raises(ConfigurationError):
        llmrelay.Engine(deadline=bad)
    assert fake.requests == []


# --------------------------------------------------------------------------- fallbacks


async def test_fallback_per_call(
    fake: FakeUpstream, rig: Rig, point_at: Callable[[FakeUpstream], FakeUpstream]
) -> None:
    point_at(fake)
    fake.push(*(Reply.error(500, "primary down") for _ in range(3)))
    r = await rig.client.achat(MODEL, "hi", **direct(fake, fallbacks=[GROQ]))
    assert r.provider == "groq"
    assert r.text == "Echo: hi"
    assert [(a.deployment, a.outcome, a.number) for a in r.trace] == [
        (OPENAI, "error", 1),
        (OPENAI, "error", 2),
        (OPENAI, "error", 3),
        (GROQ, "success", 1),
    ]
    check_trace_clean(r.trace)


async def test_fallback_per_alias_target(
    fake: FakeUpstream, rig: Rig, point_at: Callable[[FakeUpstream], FakeUpstream]
) -> None:
    point_at(fake)
    primary = Target("openai", "gpt-4.1-mini", fallbacks=(GROQ,), policy={"retries": 0})
    fake.push(Reply.error(503, "primary down"))
    r = await rig.client.achat(primary, "hi")
    assert r.provider == "groq"
    assert [a.deployment for a in r.trace] == [OPENAI, GROQ]  # the alias policy: no retries
    # A per-call chain replaces the alias's chain.
    fake.push(Reply.error(503, "primary down"))
    r = await rig.client.achat(primary, "hi", fallbacks=[MISTRAL])
    assert r.provider == "mistral"


async def test_fallback_per_alias_in_toml(
    fake: FakeUpstream,
    rig: Rig,
    point_at: Callable[[FakeUpstream], FakeUpstream],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from ..config_isolation import isolated_config

    point_at(fake)
    path = tmp_path / "llmrelay.toml"
    path.write_text(
        "[models.relay-test-primary]\n"
        'provider = "openai"\nmodel = "gpt-4.1-mini"\n'
        f'fallbacks = ["{GROQ}"]\n'
        "policy = { retries = 0 }\n"
    )
    monkeypatch.setenv("LLMRELAY_CONFIG", str(path))
    with isolated_config():
        fake.push(Reply.error(500, "down"))
        r = await rig.client.achat("relay-test-primary", "hi")
        assert r.provider == "groq"
        assert len(fake.requests) == 2
        assert r.trace[0].deployment == OPENAI
        assert r.trace[0].outcome == "error"


async def test_global_fallbacks(
    fake: FakeUpstream, point_at: Callable[[FakeUpstream], FakeUpstream]
) -> None:
    point_at(fake)
    rig = Rig(fallbacks=[GROQ, MISTRAL])
    fake.push(Reply.error(500), Reply.error(500))
    r = await rig.client.achat(MODEL, "hi", **direct(fake, retries=0))
    assert r.provider == "mistral"
    assert [a.deployment for a in r.trace] == [OPENAI, GROQ, MISTRAL]
    await rig.aclose()


async def test_client_errors_do_not_fall_back(
    fake: FakeUpstream, rig: Rig, point_at: Callable[[FakeUpstream], FakeUpstream]
) -> None:
    point_at(fake)
    fake.push(Reply.error(400, "invalid value for temperature"))
    with pytest.raises(llmrelay.BadRequestError):
        await rig.client.achat(MODEL, "hi", **direct(fake, fallbacks=[GROQ]))
    assert len(fake.requests) == 1


async def test_auth_error_moves_to_the_next_deployment(
    fake: FakeUpstream, rig: Rig, point_at: Callable[[FakeUpstream], FakeUpstream]
) -> None:
    point_at(fake)
    r = await rig.client.achat(
        MODEL, "hi", api_key="sk-wrong", base_url=fake.openai_base_url, fallbacks=[GROQ]
    )
    assert r.provider == "groq"
    assert r.trace[0].error == "AuthenticationError"
    assert len(fake.requests) == 2


async def test_context_window_chain(
    fake: FakeUpstream, rig: Rig, point_at: Callable[[FakeUpstream], FakeUpstream]
) -> None:
    point_at(fake)
    too_long = Reply.error(
        400, "This model's maximum context length is 8192 tokens", code="context_length_exceeded"
    )
    fake.push(too_long)
    r = await rig.client.achat(
        MODEL,
        "hi",
        **direct(fake, fallbacks=[MISTRAL], context_window_fallbacks=[GROQ]),
    )
    assert r.provider == "groq"  # the context-window chain, not the ordinary one
    assert [a.error for a in r.trace] == ["ContextWindowExceededError", None]
    assert rig.slept == []  # never retried
    # Without a context-window chain the error is raised as it is.
    fake.push(too_long)
    with pytest.raises(ContextWindowExceededError):
        await rig.client.achat(MODEL, "hi", **direct(fake, fallbacks=[MISTRAL]))


async def test_content_filter_chain(
    fake: FakeUpstream, point_at: Callable[[FakeUpstream], FakeUpstream]
) -> None:
    point_at(fake)
    rig = Rig(content_filter_fallbacks=[GROQ])
    filtered = Reply.error(400, "flagged by the content filter", code="content_filter")
    fake.push(filtered)
    r = await rig.client.achat(MODEL, "hi", **direct(fake))
    assert r.provider == "groq"
    assert r.trace[0].error == "ContentFilteredError"
    fake.push(filtered)
    with pytest.raises(ContentFilteredError):
        await rig.client.achat(MODEL, "hi", **direct(fake, content_filter_fallbacks=[]))
    await rig.aclose()


async def test_open_breaker_skips_to_the_next_candidate(
    fake: FakeUpstream, point_at: Callable[[FakeUpstream], FakeUpstream]
) -> None:
    point_at(fake)
    rig = Rig()
    rig.engine.breakers = BreakerRegistry(failure_threshold=1, recovery_timeout=30, clock=rig.clock)
    fake.push(Reply.error(500, "down"))
    with pytest.raises(ServerError):
        await rig.client.achat(MODEL, "hi", **direct(fake, retries=0))
    r = await rig.client.achat(MODEL, "hi", **direct(fake, fallbacks=[GROQ]))
    assert r.provider == "groq"
    assert len(fake.requests) == 2
    skipped = r.trace[0]
    assert skipped.deployment == OPENAI
    assert skipped.outcome == "skipped"
    assert skipped.error == "CircuitOpenError"
    assert skipped.reason is not None
    assert skipped.reason.startswith("breaker open")
    assert "skipped" in format_trace(r.trace)
    assert "breaker open" in format_trace(r.trace)
    # Without a fallback the caller gets the typed error with retry_after.
    with pytest.raises(CircuitOpenError) as info:
        await rig.client.achat(MODEL, "hi", **direct(fake))
    assert info.value.retry_after == pytest.approx(30)
    assert info.value.provider == "openai"
    await rig.aclose()


async def test_breaker_opens_after_five_failures_by_default(fake: FakeUpstream, rig: Rig) -> None:
    fake.push(*(Reply.error(500) for _ in range(5)))
    for _ in range(5):
        with pytest.raises(ServerError):
            await rig.client.achat(MODEL, "hi", **direct(fake, retries=0))
    with pytest.raises(CircuitOpenError):
        await rig.client.achat(MODEL, "hi", **direct(fake, retries=0))
    assert len(fake.requests) == 5
    rig.clock.advance(30)  # the engine's default recovery timeout
    r = await rig.client.achat(MODEL, "hi", **direct(fake, retries=0))  # the probe
    assert r.text == "Echo: hi"
    assert len(fake.requests) == 6


async def test_all_candidates_failing(
    fake: FakeUpstream, rig: Rig, point_at: Callable[[FakeUpstream], FakeUpstream]
) -> None:
    point_at(fake)
    fake.push(Reply.error(500, "a down"), Reply.error(503, "b down"), Reply.reset())
    with pytest.raises(AllAttemptsFailedError) as info:
        await rig.client.achat(MODEL, "hi", **direct(fake, retries=0, fallbacks=[GROQ, MISTRAL]))
    e = info.value
    assert isinstance(e, ExceptionGroup)
    assert isinstance(e, llmrelay.LLMRelayError)
    assert [type(x) for x in e.exceptions] == [ServerError, ServerError, APIConnectionError]
    assert [x.status for x in e.exceptions[:2]] == [500, 503]  # type: ignore[attr-defined]
    assert [a.deployment for a in e.trace] == [OPENAI, GROQ, MISTRAL]
    assert "3 attempts" in str(e)
    no_canary(e, *e.exceptions)
    check_trace_clean(e.trace)
    servers, rest = e.split(ServerError)  # what `except* ServerError` does
    assert isinstance(servers, AllAttemptsFailedError)
    assert len(servers.exceptions) == 2
    assert rest is not None
    assert [type(x) for x in rest.exceptions] == [APIConnectionError]


async def test_all_candidates_failing_stream(
    fake: FakeUpstream, rig: Rig, point_at: Callable[[FakeUpstream], FakeUpstream]
) -> None:
    point_at(fake)
    fake.push(Reply.error(500, "a"), Reply.error(502, "b"))
    s = rig.client.astream(MODEL, "hi", **direct(fake, retries=0, fallbacks=[GROQ]))
    _, exc = await collect(s)
    assert isinstance(exc, AllAttemptsFailedError)
    assert len(exc.exceptions) == 2
    assert len(exc.trace) == 2


# --------------------------------------------------------------------------- chains: config


@pytest.mark.parametrize(
    ("chain", "error"),
    [
        ([], ConfigurationError),
        ([GROQ, GROQ], ConfigurationError),
        (["nope/model"], UnknownModelError),
        (["definitely-not-a-model-alias"], UnknownModelError),
        ([""], ConfigurationError),
        (GROQ, ConfigurationError),  # a string, not a list
    ],
)
def test_bad_chains_fail_at_configuration_time(chain: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        validate_chain(chain)
    if chain:
        with pytest.raises(error):
            llmrelay.Engine(fallbacks=chain)
        with pytest.raises(error):
            llmrelay.Engine(context_window_fallbacks=chain)
        with pytest.raises(error):
            llmrelay.Engine(content_filter_fallbacks=chain)


def test_chain_listing_its_primary_is_a_cycle() -> None:
    with pytest.raises(ConfigurationError, match="cycle"):
        validate_chain([GROQ, OPENAI], primary=OPENAI)
    assert validate_chain([GROQ, MISTRAL], primary=OPENAI) == (GROQ, MISTRAL)


async def test_unknown_model_in_a_per_call_chain_fails_before_any_request(
    fake: FakeUpstream, rig: Rig
) -> None:
    with pytest.raises(UnknownModelError):
        await rig.client.achat(MODEL, "hi", **direct(fake, fallbacks=["nope/x"]))
    assert fake.requests == []


async def test_per_call_chain_duplicates_and_primary_are_dropped(
    fake: FakeUpstream, rig: Rig, point_at: Callable[[FakeUpstream], FakeUpstream]
) -> None:
    point_at(fake)
    fake.push(Reply.error(500), Reply.error(500), Reply.error(500))
    with pytest.raises(AllAttemptsFailedError) as info:
        await rig.client.achat(
            MODEL, "hi", **direct(fake, retries=0, fallbacks=[OPENAI, GROQ, GROQ])
        )
    assert [a.deployment for a in info.value.trace] == [OPENAI, GROQ]


# --------------------------------------------------------------------------- the trace


async def test_trace_fields_and_format(
    fake: FakeUpstream, rig: Rig, point_at: Callable[[FakeUpstream], FakeUpstream]
) -> None:
    point_at(fake)
    rig.engine.retry = RetryPolicy(jitter=False)
    fake.push(Reply.error(429, "slow", headers={"retry-after": "2"}), Reply.error(500, "x"))
    fake.push(Reply.error(500, "y"))
    r = await rig.client.achat(MODEL, "hi", **direct(fake, fallbacks=[GROQ]))
    rows = [a.to_dict() for a in r.trace]
    assert [(d["deployment"], d["outcome"], d["error"], d["status"]) for d in rows] == [
        (OPENAI, "error", "RateLimitedError", 429),
        (OPENAI, "error", "ServerError", 500),
        (OPENAI, "error", "ServerError", 500),
        (GROQ, "success", None, None),
    ]
    assert [d["backoff_s"] for d in rows] == [0.0, 2.0, 1.0, 0.0]
    assert all(isinstance(d["latency_s"], float) for d in rows)
    text = format_trace(r.trace)
    lines = text.splitlines()
    assert len(lines) == 4
    assert OPENAI in lines[0]
    assert "RateLimitedError (status 429)" in lines[0]
    assert "after 2000 ms backoff" in lines[1]
    assert "no retries left" in lines[2]
    assert lines[3].startswith(" 4. " + GROQ)
    assert "success" in lines[3]
    check_trace_clean(r.trace)


async def test_trace_on_a_plain_success(fake: FakeUpstream, rig: Rig) -> None:
    r = await rig.client.achat(MODEL, "hi", **direct(fake))
    assert len(r.trace) == 1
    a = r.trace[0]
    assert (a.deployment, a.outcome, a.number, a.backoff_s, a.error) == (
        OPENAI,
        "success",
        1,
        0.0,
        None,
    )
    assert format_trace(r.trace).startswith(" 1. openai/gpt-4.1-mini  #1  success")


def test_format_trace_of_every_kind() -> None:
    trace = [
        Attempt("openai/gpt-4.1-mini", "error", 1, "ServerError", 500, 0.0123, 0.0, None, "boom"),
        Attempt("openai/gpt-4.1-mini", "skipped", 2, "CircuitOpenError", reason="breaker open"),
        Attempt("groq/llama", "success", 1, latency_s=0.5, backoff_s=0.25),
        Attempt("groq/llama", "cache_hit", reason="served from the response cache"),
    ]
    lines = format_trace(trace).splitlines()
    assert lines[0] == " 1. openai/gpt-4.1-mini  #1  error  12.3 ms  ServerError (status 500)"
    assert lines[1] == " 2. openai/gpt-4.1-mini  #2  skipped  CircuitOpenError  - breaker open"
    assert lines[2] == " 3. groq/llama  #1  success  after 250 ms backoff  500.0 ms"
    assert lines[3] == " 4. groq/llama  #1  cache_hit  - served from the response cache"
    assert format_trace([]) == ""
    d = trace[0].to_dict()
    assert d["message"] == "boom"
    assert d["latency_s"] == 0.0123


async def test_canary_key_never_in_errors_or_traces(
    fake: FakeUpstream, rig: Rig, point_at: Callable[[FakeUpstream], FakeUpstream]
) -> None:
    point_at(fake)
    # The provider echoes the key in its error message: it is redacted everywhere.
    fake.push(Reply.error(500, f"bad key {CANARY_KEY} rejected"))
    fake.push(Reply.error(401, f"Incorrect API key provided: {CANARY_KEY}"))
    fake.push(Reply.error(500, f"also {CANARY_KEY}"))
    with pytest.raises(AllAttemptsFailedError) as info:
        await rig.client.achat(MODEL, "hi", **direct(fake, retries=0, fallbacks=[GROQ, MISTRAL]))
    e = info.value
    no_canary(e, *e.exceptions, e.trace, [x.body for x in e.exceptions])  # type: ignore[attr-defined]
    check_trace_clean(e.trace)
    assert any("[REDACTED]" in (a.message or "") for a in e.trace)


# --------------------------------------------------------------------------- more faults


async def test_408_and_409_are_retried(fake: FakeUpstream, rig: Rig) -> None:
    fake.push(Reply.error(408, "timeout"), Reply.error(409, "conflict"))
    r = await rig.client.achat(MODEL, "hi", **direct(fake))
    assert [a.status for a in r.trace] == [408, 409, None]
    assert [a.error for a in r.trace] == ["APIStatusError", "ConflictError", None]


@pytest.mark.parametrize("bad", [-1, 1.5, "2", True])
async def test_bad_retries_option(fake: FakeUpstream, rig: Rig, bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_retries"):
        await rig.client.achat(MODEL, "hi", **direct(fake, retries=bad))
    assert fake.requests == []


async def test_missing_key_on_the_primary_moves_to_the_fallback(
    fake: FakeUpstream, rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GROQ_API_KEY", CANARY_KEY)
    monkeypatch.setenv("GROQ_BASE_URL", fake.openai_base_url)
    r = await rig.client.achat(MODEL, "hi", fallbacks=[GROQ])  # no OPENAI_API_KEY
    assert r.provider == "groq"
    assert r.trace[0].outcome == "skipped"
    assert r.trace[0].error == "MissingAPIKeyError"
    assert r.trace[0].reason is not None
    assert "OPENAI_API_KEY" in r.trace[0].reason
    assert len(fake.requests) == 1


async def test_retry_budget_stops_a_retry_storm(fake: FakeUpstream) -> None:
    """A deployment that fails everything: after a few calls, no more retries (gRPC's retry
    throttling); the provider's error stays reachable."""
    rig = Rig(breakers=None)
    fake.push(*(Reply.error(500, "down") for _ in range(20)))
    with pytest.raises(ServerError):
        await rig.client.achat(MODEL, "hi", **direct(fake))
    assert len(fake.requests) == 3
    with pytest.raises(ServerError) as info:
        await rig.client.achat(MODEL, "hi", **direct(fake))
    assert len(fake.requests) == 5  # one retry, then the budget (10 tokens, half kept) is spent
    assert "retry budget" in (info.value.trace[-1].reason or "")
    assert info.value.status == 500  # the provider's error, not a replacement
    for _ in range(3):
        with pytest.raises(ServerError):
            await rig.client.achat(MODEL, "hi", **direct(fake))
    assert len(fake.requests) == 8  # one attempt per call now
    fake.clear()
    for _ in range(2):  # successes earn tokens back
        await rig.client.achat(MODEL, "hi", **direct(fake))
    await rig.aclose()


async def test_no_backoff_after_the_breaker_opened(fake: FakeUpstream) -> None:
    rig = Rig(retry=RetryPolicy(jitter=False))
    rig.engine.breakers = BreakerRegistry(failure_threshold=2, recovery_timeout=30, clock=rig.clock)
    fake.push(*(Reply.error(500, "down") for _ in range(3)))
    with pytest.raises(ServerError):
        await rig.client.achat(MODEL, "hi", **direct(fake))
    assert len(fake.requests) == 2
    assert rig.slept == [0.5]  # no sleep once the breaker is open: the retry cannot run
    await rig.aclose()


async def test_breaker_opened_by_this_call_fails_fast_after_it(fake: FakeUpstream) -> None:
    """No third request reaches the upstream once this call's failures opened the breaker."""
    rig = Rig(retry=RetryPolicy(jitter=False))
    rig.engine.breakers = BreakerRegistry(failure_threshold=2, recovery_timeout=30, clock=rig.clock)
    fake.push(*(Reply.error(500, "down") for _ in range(3)))
    with pytest.raises((ServerError, CircuitOpenError)) as info:
        await rig.client.achat(MODEL, "hi", **direct(fake))
    assert len(fake.requests) == 2
    assert [a.outcome for a in info.value.trace][:2] == ["error", "error"]
    await rig.aclose()


async def test_stream_deadline_in_the_last_attempt(fake: FakeUpstream, rig: Rig) -> None:
    tick_per_request(fake, rig.clock, 1.0)  # the deadline is gone once the request arrives
    fake.push(Reply.hang(0.2))
    s = rig.client.astream(MODEL, "hi", **direct(fake, deadline=0.05, retries=0))
    _, exc = await collect(s)
    assert isinstance(exc, DeadlineExceededError)


async def test_deadline_in_the_last_attempt(fake: FakeUpstream, rig: Rig) -> None:
    tick_per_request(fake, rig.clock, 1.0)
    fake.push(Reply.hang(0.2))
    with pytest.raises(DeadlineExceededError) as info:
        await rig.client.achat(MODEL, "hi", **direct(fake, deadline=0.05, retries=0))
    assert isinstance(info.value.__cause__, APITimeoutError)


async def test_stream_error_first_without_fallback_is_typed(fake: FakeUpstream, rig: Rig) -> None:
    fake.push(Reply.stream_error(after_chunks=0, message="Overloaded", type="server_error"))
    s = rig.client.astream(MODEL, "hi", **direct(fake, retries=0))
    deltas, exc = await collect(s)
    assert deltas == []
    assert isinstance(exc, ServerError)
    assert exc.trace
    assert exc.trace[0].error == "ServerError"


async def test_stream_consumer_leaving_early(fake: FakeUpstream, rig: Rig) -> None:
    s = rig.client.astream(MODEL, "one two three four", **direct(fake))
    async for c in s:
        assert c.delta
        break
    await s.aclose()
    r = await rig.client.achat(MODEL, "after", **direct(fake))  # the client still works
    assert r.text == "Echo: after"


def test_sync_client_retries(fake_thread: FakeUpstream) -> None:
    clock = FakeClock()
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    client = llmrelay.Client(engine=llmrelay.Engine(clock=clock, sleep=sleep))
    fake_thread.push(Reply.error(502, "bad gateway"))
    r = client.chat(MODEL, "hi", **direct(fake_thread))
    assert r.text == "Echo: hi"
    assert len(slept) == 1
    assert [a.outcome for a in r.trace] == ["error", "success"]


async def test_stream_cut_before_any_output_is_retried(fake: FakeUpstream, rig: Rig) -> None:
    fake.push(Reply.cut_stream(after_chunks=0))
    s = rig.client.astream(MODEL, "hi", **direct(fake))
    deltas, exc = await collect(s)
    assert exc is None
    assert "".join(deltas) == "Echo: hi"
    assert s.response is not None
    assert s.response.trace[0].error == "StreamInterruptedError"
    assert len(fake.requests) == 2


async def test_a_cancelled_probe_gives_its_permit_back_through_the_engine(
    fake: FakeUpstream,
) -> None:
    rig = Rig()
    breakers = BreakerRegistry(failure_threshold=1, recovery_timeout=10, clock=rig.clock)
    rig.engine.breakers = breakers
    fake.push(Reply.error(500))
    with pytest.raises(ServerError):
        await rig.client.achat(MODEL, "hi", **direct(fake, retries=0))
    rig.clock.advance(10)
    fake.push(Reply.hang(0.2))
    probe = asyncio.create_task(rig.client.achat(MODEL, "probe", **direct(fake, retries=0)))
    while len(fake.requests) < 2:  # the probe reached the upstream
        await asyncio.sleep(0.001)
    with pytest.raises(CircuitOpenError):  # its slot is taken
        await rig.client.achat(MODEL, "hi", **direct(fake, retries=0))
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    r = await rig.client.achat(MODEL, "after", **direct(fake, retries=0))  # a new probe
    assert r.text == "Echo: after"
    assert breakers.get(next(k for k, _ in breakers.items())).state == "closed"
    await rig.aclose()
