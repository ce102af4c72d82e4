"""Breakers judge the deployment, not the caller; mid-stream errors keep their class.

Over real sockets (the fake upstreams) and real Redis: a caller's bad input never opens a breaker
for everyone else (in one process or shared through Redis), streams cut after output do, a
process killed while holding the half-open probe cannot wedge a shared breaker, and an error a
provider sends mid-stream is both ``StreamInterruptedError`` and the class it maps to.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import llmrelay
from llmrelay.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    BadRequestError,
    BudgetExceededError,
    CircuitOpenError,
    ConfigurationError,
    DeadlineExceededError,
    InvalidRequestError,
    OverloadedError,
    RateLimitedError,
    ServerError,
    StateStoreError,
    StreamInterruptedError,
    interrupted_by,
    interrupted_class,
)
from llmrelay.providers.doubles import FunctionModel
from llmrelay.reliability.breaker import BreakerRegistry, CircuitBreaker, counts_as_failure
from llmrelay.reliability.breaker_shared import SharedBreakerRegistry
from llmrelay.state import RedisStore
from llmrelay.testing.fake import FakeUpstream, Reply
from llmrelay.types import Response, Usage

from .. import redis_services
from ..conftest import CANARY_KEY, FakeClock

WORKER = str(Path(__file__).parent.parent.joinpath("state_worker.py"))

redis_prefix = redis_services.redis_prefix
redis_store = redis_services.redis_store
redis_url = redis_services.redis_url

WIRES = {
    "openai": "openai/gpt-4.1-mini",
    "anthropic": "anthropic/claude-sonnet-4-5",
    "gemini": "gemini/gemini-2.5-flash",
}

#: What hostile callers send: a lone surrogate, an extra field with a non-string key, a key that
#: is not a string. Each fails while the provider request is being built.
BAD_CALLS: list[tuple[Any, dict[str, Any]]] = [
    ("hi \ud800 there", {}),
    ("hi", {"extra": {1: 2}}),
    ("hi", {"api_key": 123}),
    ("\udfff", {}),
    ("hi", {"extra": {("a",): "b"}}),
]


async def collect(stream: llmrelay.ResponseStream) -> tuple[list[str], BaseException | None]:
    deltas: list[str] = []
    try:
        async for c in stream:
            deltas.append(c.delta)
    except Exception as exc:
        return deltas, exc
    return deltas, None


def base_url(fake: FakeUpstream, wire: str) -> str:
    return fake.base_url_for(wire)


# --------------------------------------------------------------------------- the declared rule


@pytest.mark.parametrize(
    ("exc", "counts"),
    [
        (InvalidRequestError("bad input"), False),
        (ConfigurationError("bad config"), False),
        (CircuitOpenError("open"), False),
        (BudgetExceededError("spent"), False),
        (DeadlineExceededError("late"), False),
        (StateStoreError("redis down"), False),
        (BadRequestError("400", status=400), False),
        (ServerError("500", status=500), True),
        (APIConnectionError("reset"), True),
        (APITimeoutError("slow"), True),
        (StreamInterruptedError("cut"), True),
        (interrupted_by(OverloadedError("o", status=529), "cut", None), True),
        (interrupted_by(BadRequestError("b", status=400), "cut", None), False),
        (RuntimeError("the guarded function failed"), True),
    ],
    ids=lambda v: type(v).__qualname__ if isinstance(v, BaseException) else str(v),
)
def test_what_counts_is_declared_by_the_error_class(exc: Exception, counts: bool) -> None:
    assert counts_as_failure(exc) is counts
    if isinstance(exc, llmrelay.LLMRelayError):
        assert type(exc).breaker_failure is counts
    b = CircuitBreaker(failure_threshold=2, clock=FakeClock())
    for _ in range(2 if counts else 20):
        b.on_failure(b.acquire(), exc)
    assert b.state == ("open" if counts else "closed")


# --------------------------------------------------------------------------- caller errors


async def _bad_calls_then_a_good_one(
    client: llmrelay.Client, fake: FakeUpstream, wire: str
) -> Response:
    model, url = WIRES[wire], base_url(fake, wire)
    for prompt, kw in BAD_CALLS:  # five bad calls: the default failure threshold
        kw = {"api_key": CANARY_KEY, **kw}
        with pytest.raises(ConfigurationError) as info:
            await client.achat(model, prompt, base_url=url, retries=0, **kw)
        assert "123" not in str(info.value)  # a key of the wrong type is not echoed either
    assert fake.requests == []  # nothing reached the provider
    return await client.achat(model, "hello", base_url=url, api_key=CANARY_KEY, retries=0)


@pytest.mark.parametrize("wire", sorted(WIRES))
async def test_caller_errors_never_open_the_breaker(fake: FakeUpstream, wire: str) -> None:
    client = llmrelay.Client(engine=llmrelay.Engine())  # breakers on: 5 failures open them
    try:
        r = await _bad_calls_then_a_good_one(client, fake, wire)
        assert r.text == "Echo: hello"
        breakers = client.engine.breakers
        assert breakers is not None
        assert [b.state for _, b in breakers.items()] == ["closed"]
    finally:
        await client.aclose()


@pytest.mark.parametrize("wire", sorted(WIRES))
async def test_caller_errors_in_streams_never_open_the_breaker(
    fake: FakeUpstream, wire: str
) -> None:
    client = llmrelay.Client(engine=llmrelay.Engine())
    url = base_url(fake, wire)
    try:
        for prompt, kw in BAD_CALLS:
            kw = {"api_key": CANARY_KEY, **kw}
            # Bad input is refused when the stream is asked for or when it is read: either way
            # with a typed error and nothing sent.
            try:
                _, exc = await collect(client.astream(WIRES[wire], prompt, base_url=url, **kw))
            except InvalidRequestError as early:
                exc = early
            assert isinstance(exc, InvalidRequestError)
            assert CANARY_KEY not in str(exc)
        assert fake.requests == []
        r = await client.astream(WIRES[wire], "hello", base_url=url, api_key=CANARY_KEY).collect()
        assert r.text == "Echo: hello"
    finally:
        await client.aclose()


@pytest.mark.services
@pytest.mark.parametrize("wire", sorted(WIRES))
async def test_caller_errors_never_open_a_shared_breaker(
    fake: FakeUpstream, redis_store: RedisStore, wire: str
) -> None:
    shared = SharedBreakerRegistry(redis_store, failure_threshold=5, recovery_timeout=30)
    client = llmrelay.Client(engine=llmrelay.Engine(breakers=shared))
    # Another process: its own registry on the same Redis.
    other = SharedBreakerRegistry(redis_store, failure_threshold=5, recovery_timeout=30)
    other_client = llmrelay.Client(engine=llmrelay.Engine(breakers=other))
    try:
        for prompt, kw in BAD_CALLS:
            kw = {"api_key": CANARY_KEY, **kw}
            with pytest.raises(ConfigurationError):
                await client.achat(WIRES[wire], prompt, base_url=base_url(fake, wire), **kw)
        await shared.flush()
        r = await other_client.achat(
            WIRES[wire], "from someone else", base_url=base_url(fake, wire), api_key=CANARY_KEY
        )
        assert r.text == "Echo: from someone else"
        assert len(fake.requests) == 1
        [(key, b)] = other.items()
        assert await b.refresh() == "closed"
        assert await shared.get(key).refresh() == "closed"
    finally:
        await client.aclose()
        await other_client.aclose()


async def test_a_failing_user_function_still_opens_its_breaker() -> None:
    """The rule's other half: a function guarded by the breaker is the deployment, so what it
    raises counts (seed 004's inference functions)."""

    def down(messages: Any, params: Any) -> str:
        raise ConnectionError("the model server is down")

    model = FunctionModel(down, name="down")
    client = llmrelay.Client(engine=llmrelay.Engine(breakers=BreakerRegistry(failure_threshold=2)))
    try:
        for _ in range(2):
            with pytest.raises(ConnectionError):
                await client.achat(model, "hi", retries=0)
        with pytest.raises(CircuitOpenError):
            await client.achat(model, "hi", retries=0)
        assert len(model.calls) == 2
    finally:
        await client.aclose()


# --------------------------------------------------------------------------- cut streams


async def _cut_streams(client: llmrelay.Client, fake: FakeUpstream) -> list[BaseException | None]:
    """Ten streams, each cut (the connection dropped) after two chunks of output."""
    errors: list[BaseException | None] = []
    for _ in range(10):
        fake.push(Reply.cut_stream(after_chunks=2, text="one two three four five"))
    for _ in range(10):
        s = client.astream(
            WIRES["openai"],
            "hi",
            base_url=fake.openai_base_url,
            api_key=CANARY_KEY,
            retries=0,
        )
        deltas, exc = await collect(s)
        if isinstance(exc, StreamInterruptedError):
            assert isinstance(exc, APIConnectionError)  # what cut it, and a ConnectionError
            assert "".join(deltas) == "one two"
            assert exc.partial is not None
            assert exc.partial.text == "one two"
        errors.append(exc)
    return errors


async def test_streams_cut_after_output_open_the_breaker(fake: FakeUpstream) -> None:
    breakers = BreakerRegistry(failure_threshold=5, recovery_timeout=30)
    client = llmrelay.Client(engine=llmrelay.Engine(breakers=breakers))
    try:
        errors = await _cut_streams(client, fake)
        assert all(isinstance(e, StreamInterruptedError) for e in errors[:5])
        assert all(isinstance(e, CircuitOpenError) for e in errors[5:])
        assert len(fake.requests) == 5  # the open breaker kept the rest from the deployment
        [(_, b)] = breakers.items()
        assert b.state == "open"
    finally:
        await client.aclose()


@pytest.mark.services
async def test_streams_cut_after_output_open_a_shared_breaker(
    fake: FakeUpstream, redis_store: RedisStore
) -> None:
    shared = SharedBreakerRegistry(redis_store, failure_threshold=5, recovery_timeout=30)
    client = llmrelay.Client(engine=llmrelay.Engine(breakers=shared))
    other = SharedBreakerRegistry(redis_store, failure_threshold=5, recovery_timeout=30)
    try:
        errors = await _cut_streams(client, fake)
        assert all(isinstance(e, StreamInterruptedError) for e in errors[:5])
        assert all(isinstance(e, CircuitOpenError) for e in errors[5:])
        assert len(fake.requests) == 5
        [(key, _)] = shared.items()
        assert await other.get(key).refresh() == "open"  # every process sees it
    finally:
        await client.aclose()


async def test_finished_and_abandoned_streams_count_as_served(fake: FakeUpstream) -> None:
    """A stream that ends normally, or that its caller leaves after output, is a success: it
    resets the consecutive failures, so cut streams in between never add up to five."""
    breakers = BreakerRegistry(failure_threshold=2, recovery_timeout=30)
    client = llmrelay.Client(engine=llmrelay.Engine(breakers=breakers))
    kw: dict[str, Any] = {"base_url": fake.openai_base_url, "api_key": CANARY_KEY, "retries": 0}
    try:
        for i in range(6):
            fake.push(Reply.cut_stream(after_chunks=2, text="one two three four"))
            _, exc = await collect(client.astream(WIRES["openai"], "hi", **kw))
            assert isinstance(exc, StreamInterruptedError)
            if i % 2:
                r = await client.astream(WIRES["openai"], "all of it", **kw).collect()
                assert r.text == "Echo: all of it"
            else:
                async with client.astream(WIRES["openai"], "a b c d e f", **kw) as s:
                    async for _ in s:
                        break  # the caller leaves after the first chunk
        [(_, b)] = breakers.items()
        assert b.state == "closed"
        assert len(fake.requests) == 12
    finally:
        await client.aclose()


async def test_a_probe_stream_cut_after_output_reopens_the_breaker(fake: FakeUpstream) -> None:
    clock = FakeClock()
    breakers = BreakerRegistry(failure_threshold=1, recovery_timeout=10, clock=clock)
    client = llmrelay.Client(engine=llmrelay.Engine(breakers=breakers, clock=clock))
    kw: dict[str, Any] = {"base_url": fake.openai_base_url, "api_key": CANARY_KEY, "retries": 0}
    try:
        fake.push(Reply.error(500))
        with pytest.raises(ServerError):
            await client.achat(WIRES["openai"], "hi", **kw)
        clock.advance(10)
        fake.push(Reply.cut_stream(after_chunks=2, text="one two three"))
        s = client.astream(WIRES["openai"], "probe", **kw)
        first = await s.__anext__()
        assert first.delta
        [(_, b)] = breakers.items()
        # The probe is still running: nobody else is let through meanwhile.
        with pytest.raises(CircuitOpenError, match="probe"):
            await client.achat(WIRES["openai"], "hi", **kw)
        _, exc = await collect(s)
        assert isinstance(exc, StreamInterruptedError)
        assert b.state == "open"
        with pytest.raises(CircuitOpenError):
            await client.achat(WIRES["openai"], "hi", **kw)
    finally:
        await client.aclose()


# --------------------------------------------------------------------------- mid-stream errors


@pytest.mark.parametrize(
    ("wire", "error_type", "expected", "status"),
    [
        ("anthropic", "overloaded_error", OverloadedError, 529),
        ("anthropic", "rate_limit_error", RateLimitedError, 429),
        ("anthropic", "api_error", ServerError, 500),
        ("openai", "server_error", ServerError, 500),
        ("gemini", "overloaded_error", ServerError, 503),
        ("gemini", "rate_limit_error", RateLimitedError, 429),
    ],
)
async def test_an_error_sent_mid_stream_keeps_its_class(
    fake: FakeUpstream, wire: str, error_type: str, expected: type[APIError], status: int
) -> None:
    fake.push(Reply.stream_error(after_chunks=2, message="went wrong", type=error_type))
    client = llmrelay.Client(engine=llmrelay.Engine())
    try:
        s = client.astream(
            WIRES[wire],
            "one two three four",
            base_url=base_url(fake, wire),
            api_key=CANARY_KEY,
            fallbacks=[WIRES["openai"]],
        )
        deltas, exc = await collect(s)
    finally:
        await client.aclose()
    assert isinstance(exc, StreamInterruptedError)
    assert isinstance(exc, expected), type(exc).__mro__
    assert isinstance(exc.__cause__, expected)
    assert exc.status == status
    assert exc.provider == wire
    assert exc.model == WIRES[wire].split("/", 1)[1]
    assert exc.partial is not None
    assert exc.partial.text == "".join(deltas) != ""
    assert len(fake.requests) == 1  # output was sent: no retry, no fallback
    assert type(exc).__name__ == "StreamInterruptedError"  # what traces and metrics name
    assert exc.trace
    assert exc.trace[-1].error == expected.__name__
    # It travels between processes whole: both classes, the fields and the partial answer.
    data = pickle.dumps(exc)
    assert CANARY_KEY.encode() not in data
    back = pickle.loads(data)
    assert type(back) is type(exc)
    assert isinstance(back, StreamInterruptedError)
    assert isinstance(back, expected)
    assert (back.status, back.provider, str(back)) == (exc.status, exc.provider, str(exc))
    assert back.partial.text == exc.partial.text


async def test_a_rate_limit_sent_mid_stream_by_an_openai_compatible_server(
    fake: FakeUpstream,
) -> None:
    """An in-band error object whose code is a status (as OpenAI-compatible servers send)."""
    body = (
        'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
        '"choices":[{"index":0,"delta":{"content":"partial "},"finish_reason":null}]}\n\n'
        'data: {"error":{"message":"slow down","type":"requests","code":429}}\n\n'
    )
    fake.push(Reply.raw(body, content_type="text/event-stream"))
    client = llmrelay.Client(engine=llmrelay.Engine())
    try:
        s = client.astream(WIRES["openai"], "hi", base_url=fake.openai_base_url, api_key=CANARY_KEY)
        deltas, exc = await collect(s)
    finally:
        await client.aclose()
    assert deltas == ["partial "]
    assert isinstance(exc, StreamInterruptedError)
    assert isinstance(exc, RateLimitedError)
    assert exc.partial is not None
    assert exc.partial.text == "partial "


def test_interrupted_classes_are_made_once_and_pickle() -> None:
    for cls in (OverloadedError, RateLimitedError, APIConnectionError, APITimeoutError):
        made = interrupted_class(cls)
        assert made is interrupted_class(cls)
        assert issubclass(made, StreamInterruptedError)
        assert issubclass(made, cls)
        assert made.breaker_failure is cls.breaker_failure
        partial = Response(text="so far", usage=Usage(3, 2), provider="p", model="m")
        err = interrupted_by(
            cls("cut", provider="p", model="m", status=503, retry_after=2.0), "cut", partial
        )
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is made
        assert (back.retry_after, back.status, back.partial.usage) == (2.0, 503, Usage(3, 2))
    assert interrupted_class(StreamInterruptedError) is StreamInterruptedError
    assert isinstance(interrupted_by(APITimeoutError("t"), "cut", None), TimeoutError)


# --------------------------------------------------------------------------- a dead probe holder


@pytest.mark.services
async def test_a_killed_probe_holder_cannot_wedge_a_shared_breaker(
    redis_url: str, redis_prefix: str, redis_store: RedisStore
) -> None:
    """Another OS process takes the half-open probe and is SIGKILLed while holding it: while it
    lives its lease is renewed (nobody else probes); once it is dead the lease ends within
    ``probe_lease`` and a healthy process gets the probe."""
    lease = 0.2
    proc = subprocess.Popen(
        [sys.executable, WORKER, "hold_probe", redis_url, redis_prefix, "wedge", str(lease)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # The worker runs the llmrelay under test, wherever the test runs from.
        env={**os.environ, "PYTHONPATH": str(Path(llmrelay.__file__).parents[1])},
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.to_thread(proc.stdout.readline)
        assert line.strip() == "holding", proc.stderr.read() if proc.stderr else ""
        reg = SharedBreakerRegistry(
            redis_store, failure_threshold=1, recovery_timeout=0.001, probe_lease=lease
        )
        b = reg.get("wedge")
        alive_until = time.monotonic() + 4 * lease
        while time.monotonic() < alive_until:  # several leases long: the live holder renews
            with pytest.raises(CircuitOpenError, match="probe"):
                await b.aacquire()
            await asyncio.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait)
        give_up = time.monotonic() + 30  # the old 300 s lease would still hold here
        while True:
            try:
                probe = await b.aacquire()
                break
            except CircuitOpenError:
                assert time.monotonic() < give_up, "a dead process still holds the probe"
                await asyncio.sleep(0.005)
        assert probe.probe
        await b.aon_success(probe)
        assert await b.refresh() == "closed"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for f in (proc.stdout, proc.stderr):
            if f is not None:
                f.close()


@pytest.mark.services
async def test_a_probe_stops_renewing_once_it_has_its_outcome(redis_store: RedisStore) -> None:
    reg = SharedBreakerRegistry(
        redis_store, failure_threshold=1, recovery_timeout=0.001, probe_lease=0.05
    )
    b = reg.get("renew")
    await b.aon_failure(await b.aacquire(), ServerError("down", status=503))
    while await b.refresh() == "open":
        pass
    probe = await b.aacquire()
    renewer = probe.renewer  # type: ignore[attr-defined]
    assert renewer is not None
    assert not renewer.done()
    await b.arelease(probe)  # a cancelled probe: its slot is free at once, its renewal stops
    await asyncio.sleep(0)
    assert renewer.done()
    again = await b.aacquire()
    assert again.probe
    await b.aon_failure(again, ServerError("still down", status=503))
    assert b.state == "open"
    assert not b._renewals


# --------------------------------------------------------------------------- caller time limits


async def _slow_calls(client: llmrelay.Client, fake: FakeUpstream, how: str) -> None:
    kw: dict[str, Any] = {"base_url": fake.openai_base_url, "api_key": CANARY_KEY, "retries": 0}
    for _ in range(4):  # twice the failure threshold
        fake.push(Reply.hang(0.3))
        if how == "first_token_timeout":
            _, exc = await collect(
                client.astream(WIRES["openai"], "hi", first_token_timeout=0.01, **kw)
            )
            assert isinstance(exc, APITimeoutError)
            continue
        with pytest.raises((APITimeoutError, DeadlineExceededError)) as info:
            await client.achat(WIRES["openai"], "hi", **{how: 0.01}, **kw)
        if how == "deadline":
            assert isinstance(info.value, DeadlineExceededError)


@pytest.mark.parametrize("how", ["timeout", "deadline", "first_token_timeout"])
async def test_a_callers_short_time_limit_never_opens_the_breaker(
    fake: FakeUpstream, how: str
) -> None:
    """A healthy but slow deployment and one caller asking for 10 ms: its own timeouts, deadline
    or first-token limit fail its calls, never the deployment for everyone else."""
    breakers = BreakerRegistry(failure_threshold=2, recovery_timeout=30)
    client = llmrelay.Client(engine=llmrelay.Engine(breakers=breakers))
    try:
        await _slow_calls(client, fake, how)
        [(_, b)] = breakers.items()
        assert b.state == "closed"
        kw = {"base_url": fake.openai_base_url, "api_key": CANARY_KEY}
        r = await client.achat(WIRES["openai"], "still there", **kw)
        assert r.text == "Echo: still there"
    finally:
        await client.aclose()


@pytest.mark.parametrize("caller_timeout", [None, 0.05])
async def test_the_deployments_own_timeout_still_opens_the_breaker(
    fake: FakeUpstream, caller_timeout: float | None
) -> None:
    """The engine's own timeouts (and a caller's timeout no shorter than them) time out a hung
    deployment: that counts, and the breaker opens."""
    breakers = BreakerRegistry(failure_threshold=2, recovery_timeout=30)
    own = llmrelay.Timeouts(connect=1.0, read=0.02, total=0.02)
    client = llmrelay.Client(engine=llmrelay.Engine(breakers=breakers, timeouts=own))
    kw: dict[str, Any] = {"base_url": fake.openai_base_url, "api_key": CANARY_KEY, "retries": 0}
    if caller_timeout is not None:
        kw["timeout"] = caller_timeout
    try:
        for _ in range(2):
            fake.push(Reply.hang(0.3))
            with pytest.raises(APITimeoutError) as info:
                await client.achat(WIRES["openai"], "hi", **kw)
            assert info.value.caller_limited is False
        with pytest.raises(CircuitOpenError):
            await client.achat(WIRES["openai"], "hi", **kw)
    finally:
        await client.aclose()


def test_only_a_caller_limited_timeout_is_excused() -> None:
    from llmrelay.core.options import CallOptions, caller_limited
    from llmrelay.transport import Timeouts

    own = Timeouts(connect=10.0, read=600.0, total=600.0)
    assert caller_limited(CallOptions(), own, own, own) is False
    assert caller_limited(CallOptions(), own, Timeouts(total=0.5), own) is True  # deadline cut
    shorter = Timeouts(connect=10.0, read=5.0, total=5.0)
    assert caller_limited(CallOptions(timeout=5.0), shorter, shorter, own) is True
    longer = Timeouts(connect=10.0, read=900.0, total=900.0)
    assert caller_limited(CallOptions(timeout=900.0), longer, longer, own) is False
    exc = APITimeoutError("slow")
    exc.caller_limited = True
    assert counts_as_failure(exc) is False
    assert counts_as_failure(pickle.loads(pickle.dumps(exc))) is False
    assert counts_as_failure(APITimeoutError("slow")) is True
