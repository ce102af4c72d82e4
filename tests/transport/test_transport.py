"""The aiohttp transport over real sockets: error translation, timeouts, sessions, cancellation."""

from __future__ import annotations

import asyncio
import gc
import socket
import warnings
from collections.abc import Callable, Iterator

import aiohttp
import orjson
import pytest

import llmrelay
from llmrelay.errors import (
    APIConnectionError,
    APITimeoutError,
    ConfigurationError,
    InvalidResponseError,
    StreamInterruptedError,
)
from llmrelay.testing.fake import FakeUpstream, Reply
from llmrelay.testing.fake_openai import OpenAIDialect
from llmrelay.transport import HttpRequest, HttpResponse, MockTransport, Timeouts
from llmrelay.transport.http import AiohttpTransport, translate_io_error

from ..conftest import CANARY_KEY
from ..edge_server import EdgeServer, completion

MODEL = "openai/gpt-4.1-mini"
WAIT = 5.0  # upper bound for a server-side event; tests normally see it in milliseconds


@pytest.fixture
def edge() -> Iterator[EdgeServer]:
    with EdgeServer.running() as server:
        yield server


@pytest.fixture
def refused_port() -> int:
    """A port nobody listens on: bound, then closed."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


def post(url: str) -> HttpRequest:
    return HttpRequest("POST", url, {"content-type": "application/json"}, b"{}")


async def wait_for(event_wait: Callable[[float], bool], what: str) -> None:
    """Wait (off the loop) for a server-side threading.Event."""
    assert await asyncio.to_thread(event_wait, WAIT), what


# --------------------------------------------------------------------------- errors


async def test_connection_refused_is_api_connection_error(refused_port: int) -> None:
    t = AiohttpTransport()
    url = f"http://127.0.0.1:{refused_port}/v1/chat/completions?key=secret"
    with pytest.raises(APIConnectionError) as info:
        await t.send(post(url), Timeouts())
    assert isinstance(info.value, ConnectionError)
    assert isinstance(info.value.__cause__, OSError)  # refused: the OS error is the cause
    assert f"127.0.0.1:{refused_port}/v1/chat/completions" in str(info.value)
    assert "secret" not in str(info.value)  # never the query string
    with pytest.raises(APIConnectionError):  # the streaming path too
        async with t.stream(post(url), Timeouts()):
            pass
    await t.aclose()


async def test_connection_refused_through_the_client(refused_port: int) -> None:
    client = llmrelay.Client()
    with pytest.raises(APIConnectionError) as info:
        await client.achat(
            MODEL,
            "hi",
            api_key=CANARY_KEY,
            base_url=f"http://127.0.0.1:{refused_port}/v1",
            retries=0,
        )
    assert isinstance(info.value.__cause__, OSError)  # refused: the OS error is the cause
    assert CANARY_KEY not in str(info.value)
    assert CANARY_KEY not in repr(info.value)
    await client.aclose()


async def test_connection_reset_before_the_answer(fake: FakeUpstream) -> None:
    t = AiohttpTransport()
    url = fake.openai_base_url + "/chat/completions"
    fake.push(Reply.reset())
    with pytest.raises(APIConnectionError) as info:
        await t.send(post(url), Timeouts())
    assert isinstance(info.value.__cause__, aiohttp.ClientError)
    fake.push(Reply.reset())
    with pytest.raises(APIConnectionError):
        async with t.stream(post(url), Timeouts()):
            pass
    await t.aclose()


async def test_read_timeout(edge: EdgeServer) -> None:
    t = AiohttpTransport()
    with pytest.raises(APITimeoutError) as info:
        await t.send(post(edge.url("stall")), Timeouts(connect=5, read=0.05, total=None))
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value.__cause__, TimeoutError)
    # The timed-out connection is dropped, not left open.
    await wait_for(edge.disconnected["stall"].wait, "the server never saw the client leave")
    await t.aclose()


async def test_read_timeout_mid_stream(edge: EdgeServer) -> None:
    client = llmrelay.Client()
    s = client.astream(
        MODEL,
        "hi",
        api_key=CANARY_KEY,
        base_url=edge.base_url("sse"),
        # Generous enough for the first chunks to arrive on a loaded machine.
        timeout=Timeouts(connect=5, read=0.2, total=None),
        retries=0,
    )
    seen: list[str] = []

    async def read() -> None:
        async for c in s:
            seen.append(c.delta)

    with pytest.raises(StreamInterruptedError) as info:
        await read()
    assert "".join(seen) == "Hello"
    assert info.value.partial.text == "Hello"
    cause = info.value.__cause__
    assert isinstance(cause, APITimeoutError), repr(cause)
    await wait_for(edge.disconnected["sse"].wait, "the stream's connection was not closed")
    await client.aclose()


@pytest.mark.parametrize(
    "timeout", [0.05, Timeouts(connect=None, read=None, total=0.05)], ids=["float", "total-only"]
)
async def test_total_timeout_via_call_option(edge: EdgeServer, timeout: object) -> None:
    client = llmrelay.Client()
    # The headers and part of the body arrive; the total timeout covers reading the body too.
    with pytest.raises(APITimeoutError):
        await client.achat(
            MODEL,
            "hi",
            api_key=CANARY_KEY,
            base_url=edge.base_url("bodystall"),
            timeout=timeout,
            retries=0,
        )
    await wait_for(edge.disconnected["bodystall"].wait, "the connection was not dropped")
    await client.aclose()


async def test_total_timeout_mid_stream(edge: EdgeServer) -> None:
    client = llmrelay.Client()
    s = client.astream(
        MODEL,
        "hi",
        api_key=CANARY_KEY,
        base_url=edge.base_url("sse"),
        timeout=Timeouts(connect=None, read=None, total=0.2),
        retries=0,
    )
    with pytest.raises(StreamInterruptedError) as info:
        await s.collect()
    assert info.value.partial.text == "Hello"
    assert isinstance(info.value.__cause__, APITimeoutError)
    await wait_for(edge.disconnected["sse"].wait, "the stream's connection was not closed")
    await client.aclose()


async def test_body_cut_midway(edge: EdgeServer, fake: FakeUpstream) -> None:
    t = AiohttpTransport()
    with pytest.raises(APIConnectionError) as info:
        await t.send(post(edge.url("cut")), Timeouts())
    assert isinstance(info.value.__cause__, aiohttp.ClientPayloadError)
    assert "cut short" in str(info.value)
    await t.aclose()
    # A complete HTTP body holding truncated JSON is the adapter's InvalidResponseError.
    client = llmrelay.Client()
    fake.push(Reply.cut_stream())
    with pytest.raises(InvalidResponseError):
        await client.achat(MODEL, "hi", api_key=CANARY_KEY, base_url=fake.openai_base_url)
    await client.aclose()


@pytest.mark.parametrize("key", [CANARY_KEY + "\n", CANARY_KEY[:8] + "\r\n" + CANARY_KEY[8:]])
async def test_header_with_newline_is_a_configuration_error(fake: FakeUpstream, key: str) -> None:
    client = llmrelay.Client()
    with pytest.raises(ConfigurationError) as info:
        await client.achat(MODEL, "hi", api_key=key, base_url=fake.openai_base_url, retries=0)
    assert "API key" in str(info.value)
    assert CANARY_KEY[8:] not in str(info.value)
    assert CANARY_KEY[8:] not in repr(info.value)
    assert fake.requests == []
    await client.aclose()


def test_translated_value_error_never_echoes_a_header_value() -> None:
    req = HttpRequest("POST", "http://h/v1?key=q", {"authorization": f"Bearer {CANARY_KEY}"})
    err = translate_io_error(ValueError(f"bad header: Bearer {CANARY_KEY}"), req)
    assert isinstance(err, ConfigurationError)
    assert CANARY_KEY not in str(err)
    assert "key=q" not in str(err)


@pytest.mark.parametrize("base_url", ["ftp://127.0.0.1/v1", "http://127.0.0.1:99999/v1"])
async def test_unusable_base_url_is_a_configuration_error(base_url: str) -> None:
    client = llmrelay.Client()
    with pytest.raises(ConfigurationError, match="base_url"):
        await client.achat(MODEL, "hi", api_key=CANARY_KEY, base_url=base_url, retries=0)
    await client.aclose()


# --------------------------------------------------------------------------- sessions


def test_one_session_per_loop_closed_when_asyncio_run_ends(edge: EdgeServer) -> None:
    t = AiohttpTransport()
    req = HttpRequest("GET", edge.url("peer"), {})

    async def two_calls() -> tuple[int, int, aiohttp.ClientSession]:
        a = await t.send(req, Timeouts())
        b = await t.send(req, Timeouts())
        session = t._sessions[asyncio.get_running_loop()][0]
        return orjson.loads(a.body)["port"], orjson.loads(b.body)["port"], session

    async def concurrent() -> set[aiohttp.ClientSession]:
        sessions = set()

        async def one() -> None:
            await t.send(req, Timeouts())
            sessions.add(t._sessions[asyncio.get_running_loop()][0])

        await asyncio.gather(*(one() for _ in range(5)))
        return sessions

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        port_a, port_b, first = asyncio.run(two_calls())
        assert port_a == port_b  # the second call reused the pooled connection
        assert first.closed  # asyncio.run's shutdown closed the loop's session
        _, _, second = asyncio.run(two_calls())
        assert second is not first
        assert second.closed
        assert len(asyncio.run(concurrent())) == 1
        assert len(t._sessions) == 0  # nothing kept for finished loops
        del first, second
        gc.collect()
    leaks = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == [], [str(w.message) for w in leaks]


def test_unclosed_session_would_be_detected() -> None:
    """The leak check above can fail: an aiohttp session left open does warn."""

    async def leak() -> aiohttp.ClientSession:
        return aiohttp.ClientSession()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = asyncio.run(leak())
        del s
        gc.collect()
    assert any("Unclosed client session" in str(w.message) for w in caught)


async def test_aclose_closes_this_loops_session_and_a_new_one_follows(edge: EdgeServer) -> None:
    t = AiohttpTransport()
    req = HttpRequest("GET", edge.url("peer"), {})
    await t.send(req, Timeouts())
    first = t._sessions[asyncio.get_running_loop()][0]
    await t.aclose()
    assert first.closed
    assert not t._sessions
    await t.send(req, Timeouts())
    assert t._sessions[asyncio.get_running_loop()][0] is not first
    await t.aclose()
    await t.aclose()  # idempotent


# --------------------------------------------------------------------------- MockTransport


async def test_mock_transport_end_to_end() -> None:
    def handler(request: HttpRequest) -> HttpResponse:
        body = orjson.loads(request.body or b"{}")
        text = "mocked: " + body["messages"][-1]["content"]
        return HttpResponse(
            200, {"content-type": "application/json"}, orjson.dumps(completion(text))
        )

    mock = MockTransport(handler)
    client = llmrelay.Client(transport=mock)
    r = await client.achat(MODEL, "hello", api_key=CANARY_KEY)
    assert r.text == "mocked: hello"
    assert r.usage.input_tokens == 3
    assert r.usage.output_tokens == 2
    sent = mock.requests[0]
    assert sent.url == "https://api.openai.com/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {CANARY_KEY}"
    assert CANARY_KEY not in repr(sent)
    await client.aclose()


async def test_mock_transport_async_handler_and_errors() -> None:
    async def handler(request: HttpRequest) -> HttpResponse:
        await asyncio.sleep(0)
        err = {"error": {"message": "slow down", "type": "rate_limit_error", "code": None}}
        return HttpResponse(429, {"retry-after": "2"}, orjson.dumps(err))

    client = llmrelay.Client(transport=MockTransport(handler))
    with pytest.raises(llmrelay.RateLimitedError) as info:
        await client.achat(MODEL, "hi", api_key=CANARY_KEY, retries=0)
    assert info.value.retry_after == 2.0
    await client.aclose()


@pytest.mark.parametrize("chunk_size", [None, 1, 7])
async def test_mock_transport_stream(chunk_size: int | None) -> None:
    from llmrelay.testing.fake_base import FakeRequest, FakeUsage

    dialect = OpenAIDialect()
    req = FakeRequest("gpt-4.1-mini", "hi", "hi", stream=True)
    sse = b"".join(
        dialect.stream_events(req, ["Héllo", " wörld", " 😀"], None, FakeUsage(3, 3), "stop")
    )

    def handler(request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, {"content-type": "text/event-stream"}, sse)

    client = llmrelay.Client(transport=MockTransport(handler, chunk_size=chunk_size))
    s = client.astream(MODEL, "hi", api_key=CANARY_KEY)
    deltas = [c.delta async for c in s if c.delta]
    assert deltas == ["Héllo", " wörld", " 😀"]
    assert s.response is not None
    assert s.response.text == "Héllo wörld 😀"
    assert s.response.usage.output_tokens == 3
    await client.aclose()


# --------------------------------------------------------------------------- cancellation


async def test_aclose_mid_stream_closes_the_connection(edge: EdgeServer) -> None:
    client = llmrelay.Client()
    s = client.astream(MODEL, "hi", api_key=CANARY_KEY, base_url=edge.base_url("sse"))
    first = await s.__anext__()
    assert first.delta == "Hel"
    assert not edge.disconnected["sse"].is_set()
    await s.aclose()
    assert s.closed
    await wait_for(edge.disconnected["sse"].wait, "the server never saw the connection close")
    await client.aclose()


async def test_break_in_async_with_closes_the_connection(edge: EdgeServer) -> None:
    client = llmrelay.Client()
    async with client.astream(MODEL, "hi", api_key=CANARY_KEY, base_url=edge.base_url("sse")) as s:
        async for c in s:
            assert c.delta == "Hel"
            break
    await wait_for(edge.disconnected["sse"].wait, "the server never saw the connection close")
    await client.aclose()


def test_sync_stream_break_in_with_closes_the_connection(edge: EdgeServer) -> None:
    client = llmrelay.Client()
    with client.stream(MODEL, "hi", api_key=CANARY_KEY, base_url=edge.base_url("sse")) as s:
        for c in s:
            assert c.delta == "Hel"
            break
        assert not s.closed
    assert s.closed
    assert edge.disconnected["sse"].wait(WAIT), "the server never saw the connection close"


def test_abandoned_sync_stream_closes_the_connection(edge: EdgeServer) -> None:
    client = llmrelay.Client()
    for c in client.stream(MODEL, "hi", api_key=CANARY_KEY, base_url=edge.base_url("sse")):
        assert c.delta == "Hel"
        break
    # No with block, no close(): dropping the stream object closes it.
    gc.collect()
    assert edge.disconnected["sse"].wait(WAIT), "the server never saw the connection close"


async def test_cancelled_request_propagates_cancelled_error(edge: EdgeServer) -> None:
    client = llmrelay.Client()
    task = asyncio.create_task(
        client.achat(MODEL, "hi", api_key=CANARY_KEY, base_url=edge.base_url("stall"))
    )
    await wait_for(edge.started["stall"].wait, "the request never reached the server")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_for(edge.disconnected["stall"].wait, "the cancelled request left its connection")
    await client.aclose()


async def test_cancelled_stream_consumer_propagates_cancelled_error(edge: EdgeServer) -> None:
    client = llmrelay.Client()
    got_first = asyncio.Event()

    async def consume() -> None:
        async for _ in client.astream(
            MODEL, "hi", api_key=CANARY_KEY, base_url=edge.base_url("sse")
        ):
            got_first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_first.wait(), WAIT)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_for(edge.disconnected["sse"].wait, "the cancelled stream left its connection")
    await client.aclose()
