"""Hostile answers over real sockets: memory stays bounded (issue 8, bounded memory).

A gzip bomb, a huge plain JSON body, an endless SSE line and a huge error body each end in
``ResponseTooLargeError`` after reading about the configured limit, which tracemalloc's peak
(deterministic, unlike RSS) shows: each test would need many times its bound if the whole answer
were read. A long stream of small events is not limited as a whole.
"""

from __future__ import annotations

import functools
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

import llmrelay
from llmrelay.core.engine import Engine
from llmrelay.core.routing import moves_on
from llmrelay.errors import (
    ConfigFileError,
    ConfigurationError,
    InvalidResponseError,
    ResponseTooLargeError,
    ServerError,
    is_retryable,
)
from llmrelay.providers.adapters.base import decode_json, event_json, short_json_error
from llmrelay.providers.table import make_deployment
from llmrelay.reliability.breaker import counts_as_failure
from llmrelay.transport import HttpRequest, HttpResponse, MockTransport, SSEDecoder, Timeouts
from llmrelay.transport.http import AiohttpTransport

from ..config_isolation import isolated_config
from ..conftest import CANARY_KEY

MODEL = "openai/gpt-4.1-mini"
MIB = 1024 * 1024
#: What each hostile answer would decode to in full.
HOSTILE = 64 * MIB
#: The limit the tests configure.
LIMIT = 1 * MIB
#: tracemalloc peak allowed while refusing a HOSTILE answer with a LIMIT limit: a few times the
#: limit (buffers, the join), far below the 64 MiB that reading it whole takes.
PEAK = 8 * MIB


@functools.cache
def gzip_bomb() -> bytes:
    """HOSTILE bytes of zeros, gzip-compressed in 1 MiB pieces (about 64 KiB)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(MIB)
    parts = [comp.compress(zeros) for _ in range(HOSTILE // MIB)]
    parts.append(comp.flush())
    return b"".join(parts)


@dataclass
class Hostile:
    """An aiohttp server in the test's loop with one hostile answer per route."""

    port: int = 0
    hits: dict[str, int] = field(default_factory=dict)

    def base_url(self, route: str) -> str:
        return f"http://127.0.0.1:{self.port}/{route}/v1"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        route = request.path.strip("/").split("/", 1)[0]
        await request.read()
        self.hits[route] = self.hits.get(route, 0) + 1
        status = 500 if route.endswith("-500") else 200
        kind = route.removesuffix("-500")
        if kind == "bomb":
            body = gzip_bomb()
            resp = web.StreamResponse(
                status=status,
                headers={"content-type": "application/json", "content-encoding": "gzip"},
            )
            resp.content_length = len(body)
            await resp.prepare(request)
            await resp.write(body)
            return resp
        if kind in ("bigjson", "bigjson-length"):
            resp = web.StreamResponse(status=status, headers={"content-type": "application/json"})
            if kind == "bigjson-length":
                resp.content_length = HOSTILE + 11  # {"pad": "...."}
            await resp.prepare(request)
            await resp.write(b'{"pad": "')
            await _pour(resp, b"x" * (256 * 1024), HOSTILE)
            await resp.write(b'"}')
            return resp
        if kind == "longline":
            resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await resp.prepare(request)
            await resp.write(b"data: ")
            await _pour(resp, b"x" * (256 * 1024), HOSTILE)
            return resp
        if kind == "manyevents":
            # 4 MiB of small events in all, four times the response limit: a stream is limited
            # per event, not as a whole.
            resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await resp.prepare(request)
            piece = "y" * 1000
            frame = _frame({"content": piece})
            for _ in range(4 * MIB // len(frame)):
                await resp.write(frame)
            await resp.write(_frame({}, finish="stop") + b"data: [DONE]\n\n")
            return resp
        return web.json_response({"error": {"message": f"no route {route}"}}, status=404)


def _frame(delta: dict[str, str], finish: str | None = None) -> bytes:
    obj = {
        "id": "chatcmpl-hostile",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "hostile",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(obj) + b"\n\n"


async def _pour(resp: web.StreamResponse, piece: bytes, total: int) -> None:
    """Write ``total`` bytes of ``piece``; stop quietly when the client has gone."""
    sent = 0
    try:
        while sent < total:
            await resp.write(piece)
            sent += len(piece)
    except (ConnectionError, RuntimeError):
        pass  # the client hung up, as it should


@pytest.fixture
async def hostile() -> AsyncIterator[Hostile]:
    gzip_bomb()  # built before any measurement
    server = Hostile()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.port = runner.addresses[0][1]
    yield server
    await runner.cleanup()


async def peak_of(action: Callable[[], Awaitable[Any]]) -> tuple[BaseException | None, int]:
    """Run ``action``; return what it raised and the peak of traced memory meanwhile."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        try:
            await action()
        except Exception as exc:
            err: BaseException | None = exc
        else:
            err = None
        return err, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def client(**kw: Any) -> llmrelay.Client:
    return llmrelay.Client(max_response_bytes=LIMIT, max_event_bytes=LIMIT, **kw)


# --------------------------------------------------------------------------- whole bodies


@pytest.mark.parametrize("route", ["bomb", "bigjson", "bigjson-length", "bomb-500"])
async def test_large_or_bomb_body_stops_at_the_limit(hostile: Hostile, route: str) -> None:
    c = client()
    err, peak = await peak_of(
        lambda: c.achat(
            MODEL, "hi", api_key=CANARY_KEY, base_url=hostile.base_url(route), retries=2
        )
    )
    assert isinstance(err, ResponseTooLargeError), err
    assert peak < PEAK, f"peak {peak / MIB:.1f} MiB while refusing a {HOSTILE // MIB} MiB answer"
    assert err.limit == LIMIT
    assert err.setting == "max_response_bytes"
    assert str(LIMIT) in str(err)
    assert "max_response_bytes" in str(err)
    assert "Client(max_response_bytes=" in str(err)
    assert "[defaults]" in str(err)
    assert (err.provider, err.model) == ("openai", "gpt-4.1-mini")
    # Provider-side: not retried (the same deployment answers the same), but the breaker counts it.
    assert hostile.hits[route] == 1
    assert not is_retryable(err)
    assert counts_as_failure(err)
    assert not isinstance(err, ConfigurationError)
    assert isinstance(err, InvalidResponseError)
    assert moves_on(err)  # a fallback chain tries the next deployment
    assert CANARY_KEY not in repr(err)
    await c.aclose()


@pytest.mark.parametrize("route", ["bomb", "bigjson", "bomb-500"])
async def test_json_answer_to_a_stream_request_is_limited_too(hostile: Hostile, route: str) -> None:
    c = client()

    async def consume() -> None:
        async for _ in c.astream(
            MODEL, "hi", api_key=CANARY_KEY, base_url=hostile.base_url(route), retries=0
        ):
            pass

    err, peak = await peak_of(consume)
    assert isinstance(err, ResponseTooLargeError), err
    assert peak < PEAK
    assert err.provider == "openai"
    await c.aclose()


async def test_the_breaker_opens_on_repeated_oversized_answers(hostile: Hostile) -> None:
    c = client()
    url = hostile.base_url("bigjson")
    for _ in range(5):  # the default breaker opens after 5 failures
        with pytest.raises(ResponseTooLargeError):
            await c.achat(MODEL, "hi", api_key=CANARY_KEY, base_url=url, retries=0)
    with pytest.raises(llmrelay.CircuitOpenError):
        await c.achat(MODEL, "hi", api_key=CANARY_KEY, base_url=url, retries=0)
    assert hostile.hits["bigjson"] == 5
    await c.aclose()


async def test_a_body_exactly_at_the_limit_passes_and_one_byte_over_does_not(
    hostile: Hostile,
) -> None:
    t = AiohttpTransport()
    url = hostile.base_url("bomb") + "/chat/completions"
    req = HttpRequest("POST", url, {}, b"{}", max_response_bytes=HOSTILE)
    resp = await t.send(req, Timeouts())
    assert len(resp.body) == HOSTILE  # exactly at the limit is allowed
    req = HttpRequest("POST", url, {}, b"{}", max_response_bytes=HOSTILE - 1)
    with pytest.raises(ResponseTooLargeError):
        await t.send(req, Timeouts())
    await t.aclose()


async def test_a_refused_connection_is_not_reused(hostile: Hostile) -> None:
    """Reading stopped mid-body: the connection is closed, so the next call gets a clean one."""
    t = AiohttpTransport()
    url = hostile.base_url("bigjson") + "/chat/completions"
    for _ in range(3):
        with pytest.raises(ResponseTooLargeError):
            await t.send(HttpRequest("POST", url, {}, b"{}", max_response_bytes=LIMIT), Timeouts())
    assert hostile.hits["bigjson"] == 3
    await t.aclose()


# --------------------------------------------------------------------------- streams


async def test_endless_sse_line_stops_at_the_event_limit(hostile: Hostile) -> None:
    c = client()
    seen: list[str] = []

    async def consume() -> None:
        async for ch in c.astream(
            MODEL, "hi", api_key=CANARY_KEY, base_url=hostile.base_url("longline"), retries=2
        ):
            seen.append(ch.delta)

    err, peak = await peak_of(consume)
    assert isinstance(err, ResponseTooLargeError), err
    assert peak < PEAK, f"peak {peak / MIB:.1f} MiB for a {HOSTILE // MIB} MiB line"
    assert err.setting == "max_event_bytes"
    assert err.limit == LIMIT
    assert "max_event_bytes" in str(err)
    assert "Client(max_event_bytes=" in str(err)
    assert err.provider == "openai"
    assert hostile.hits["longline"] == 1  # not retried
    assert seen == []
    await c.aclose()


async def test_many_small_events_beyond_the_response_limit_pass(hostile: Hostile) -> None:
    c = client()
    text = []
    last = None
    async for ch in c.astream(
        MODEL, "hi", api_key=CANARY_KEY, base_url=hostile.base_url("manyevents"), retries=0
    ):
        text.append(ch.delta)
        last = ch
    total = sum(len(t) for t in text)
    assert total > 3 * LIMIT  # far more than max_response_bytes, in events under max_event_bytes
    assert last is not None
    assert last.done
    assert last.response is not None
    assert len(last.response.text) == total
    await c.aclose()


def test_sse_decoder_limits_lines_and_events_at_any_chunking() -> None:
    limit = 100
    # One line too long, fed whole or byte by byte.
    for size in (1, 7, 1000):
        d = SSEDecoder(limit)
        body = b"data: " + b"x" * 200
        pieces = [body[i : i + size] for i in range(0, len(body), size)]
        with pytest.raises(ResponseTooLargeError) as info:
            [d.feed(p) for p in pieces]
        assert info.value.limit == limit
        assert info.value.setting == "max_event_bytes"
    # Many short data lines adding up past the limit in one event.
    d = SSEDecoder(limit)
    with pytest.raises(ResponseTooLargeError):
        d.feed(b"data: 0123456789\n" * 20)
    # A long non-data field line (never kept, but the line still is buffered).
    d = SSEDecoder(limit)
    with pytest.raises(ResponseTooLargeError):
        d.feed(b"event: " + b"e" * 200 + b"\n")
    # Right at the limit is fine, and the size counts per event, not per stream.
    d = SSEDecoder(limit)
    events = []
    for _ in range(50):
        events += d.feed(b"data: " + b"z" * 90 + b"\n\n")
    assert len(events) == 50
    assert all(len(e.data) == 90 for e in events)
    line = b"x" * limit
    assert SSEDecoder(limit).feed(line + b"\n\n") == []  # a field named xxx..., ignored
    with pytest.raises(ResponseTooLargeError):
        SSEDecoder(limit).feed(line + b"x\n\n")


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize("bad", [0, -1, 1.5, "32MB", True])
def test_bad_limits_are_configuration_errors(bad: object) -> None:
    for name in ("max_response_bytes", "max_event_bytes"):
        with pytest.raises(ConfigurationError, match=name):
            llmrelay.Client(**{name: bad})
        with pytest.raises(ConfigurationError, match=name):
            Engine(**{name: bad})


def test_limits_with_an_engine_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="Engine"):
        llmrelay.Client(engine=Engine(), max_response_bytes=LIMIT)


def test_limits_from_defaults_config() -> None:
    path = Path.cwd() / "llmrelay.toml"
    with isolated_config():
        path.write_text("[defaults]\nmax_response_bytes = 1234\nmax_event_bytes = 567\n")
        c = llmrelay.Client()
        assert (c.engine.max_response_bytes, c.engine.max_event_bytes) == (1234, 567)
        c = llmrelay.Client(max_event_bytes=890)  # code wins
        assert (c.engine.max_response_bytes, c.engine.max_event_bytes) == (1234, 890)
    with isolated_config():
        path.write_text("[defaults]\nmax_event_bytes = 0\n")
        with pytest.raises(ConfigFileError, match="max_event_bytes"):
            llmrelay.Client()
    with isolated_config():
        path.write_text('[defaults]\nmax_response_bytes = "32MB"\n')
        with pytest.raises(ConfigFileError, match="max_response_bytes"):
            llmrelay.Client()
    path.unlink()
    with isolated_config():
        c = llmrelay.Client()
        assert (c.engine.max_response_bytes, c.engine.max_event_bytes) == (32 * MIB, 4 * MIB)


async def test_mock_transport_enforces_the_limit() -> None:
    t = MockTransport(lambda r: HttpResponse(200, {}, b"x" * 11))
    req = HttpRequest("POST", "http://mock/v1?key=secret", {}, b"{}", max_response_bytes=10)
    with pytest.raises(ResponseTooLargeError) as info:
        await t.send(req, Timeouts())
    assert "secret" not in str(info.value)
    with pytest.raises(ResponseTooLargeError):
        async with t.stream(req, Timeouts()) as s:
            await s.aread()


# --------------------------------------------------------------------------- exception causes


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and e not in out:
        out.append(e)
        e = e.__cause__ or e.__context__
    return out


def _held_text(exc: BaseException) -> int:
    """The most text any exception of the chain holds in its attributes or args."""
    most = 0
    for e in _chain(exc):
        for v in [*vars(e).values(), *e.args]:
            if isinstance(v, str | bytes):
                most = max(most, len(v))
    return most


def test_json_decode_error_keeps_only_a_redacted_excerpt() -> None:
    dep = make_deployment("openai", "gpt-4.1-mini", api_key=CANARY_KEY, base_url="http://x/v1")
    # 8 MiB of invalid JSON with the key right where the error is and at an excerpt's edge.
    body = b'{"a": [' + b"1," * (4 * MIB) + CANARY_KEY.encode() + b" nonsense]}"
    with pytest.raises(InvalidResponseError) as info:
        decode_json(body, dep)
    err = info.value
    assert isinstance(err.__cause__, ValueError)
    assert _held_text(err) <= 4096, "an exception of the chain keeps the body"
    for e in _chain(err):
        assert CANARY_KEY not in repr(e)
        assert CANARY_KEY not in str(vars(e))
        assert all(CANARY_KEY[:12] not in str(a) for a in e.args)
    # Stream events too.
    data = "x" * (2 * MIB) + CANARY_KEY
    with pytest.raises(InvalidResponseError) as info:
        event_json(data, dep)
    assert _held_text(info.value) <= 4096
    assert all(CANARY_KEY not in repr(e) for e in _chain(info.value))


def test_short_json_error_cuts_a_key_split_by_the_window() -> None:
    """Keys straddling either edge of the excerpt window leave no piece of themselves."""
    dep = make_deployment("openai", "gpt-4.1-mini", api_key=CANARY_KEY, base_url="http://x/v1")
    k = len(CANARY_KEY)
    for shift in range(k + 1):
        # The error (the "?") is at pos = 3005; the window is [pos - 1024, pos + 1024).
        left = "a" * (1979 - shift) + CANARY_KEY
        head = '["' + left + "a" * (3000 - len(left)) + '", '
        assert len(head) == 3005
        doc = head + "?" + "b" * (1023 - shift) + CANARY_KEY + "b" * 100
        try:
            orjson.loads(doc)
        except orjson.JSONDecodeError as exc:
            short = short_json_error(exc, dep)
        text: str = short.doc  # type: ignore[attr-defined]
        assert 2048 - 2 * k <= len(text) <= 2048
        for n in range(4, k + 1):
            for i in range(k - n + 1):
                assert CANARY_KEY[i : i + n] not in text, (shift, n, i)
        assert "?" in text  # the error position is kept


def test_huge_error_body_is_not_kept_on_the_error() -> None:
    from llmrelay.providers.backends import get_adapter

    dep = make_deployment("openai", "gpt-4.1-mini", api_key=CANARY_KEY, base_url="http://x/v1")
    body = orjson.dumps({"error": {"message": "m" * (4 * MIB), "type": "server_error"}})
    err = get_adapter("openai_chat").map_error(500, {}, body, dep)
    assert isinstance(err, ServerError)
    assert err.body is None
    assert len(err.message) < 1000
    # A small one keeps its body and message, cut to a short excerpt when long.
    body = orjson.dumps({"error": {"message": "m" * 10_000, "type": "server_error"}})
    err = get_adapter("openai_chat").map_error(500, {}, body, dep)
    assert isinstance(err.body, dict)
    assert 2000 <= len(err.message) <= 2100
