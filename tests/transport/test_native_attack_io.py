"""Attacks on the native transport's I/O (``native.py``, ``pool.py``) that found real faults:
pooled connections reused when unsafe, the head cache, streams and back-pressure. Each test
names the promise it checks; a contract promise runs over every transport of
``conftest.TRANSPORTS`` (aiohttp is the reference). No sleeps: a timer's expiry is simulated by
moving the exchange's clock marks, never by waiting.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable

import pytest

from llmrelay.errors import APIConnectionError, APITimeoutError, ConfigurationError
from llmrelay.transport import HttpRequest, Timeouts
from llmrelay.transport.native import NativeTransport

from .conftest import SAFETY, TransportFactory, answer, opened, raises, req
from .raw_upstream import (
    WAIT,
    Conn,
    Handler,
    RawRequest,
    in_turn,
    raw_upstream,
    reply,
    respond_each,
)

# --------------------------------------------------------------------------- pool desync


# aiohttp warns about any bytes body over 1 MiB (a ResourceWarning, an error under -W error).
@pytest.mark.filterwarnings("ignore:Sending a large body directly:ResourceWarning")
async def test_connection_answered_before_its_body_was_sent_is_not_reused(
    transport_factory: TransportFactory,
) -> None:
    """A server that answers (keep-alive) before reading the request body leaves the rest of
    the body in the client's write buffer: reusing that connection would put the next request
    behind those bytes (the server reads them as a request, and the next caller gets the
    answer to garbage, or waits forever). The next request goes over a new connection."""
    release = asyncio.Event()

    async def handler(conn: Conn) -> None:
        if conn.index == 0:
            await conn.reader.readuntil(b"\r\n\r\n")  # the head only, never the body
            await conn.send(reply(b"early answer"))
            await release.wait()
            return
        while (request := await conn.read_request()) is not None:
            await conn.send(reply(request.target.split("?")[0].encode()))

    body = b"x" * (16 * 1024 * 1024)  # more than the kernel buffers of both ends can hold
    async with raw_upstream(handler, rcvbuf=4096) as up, opened(transport_factory) as t:
        first = await t.send(req(up.url(), "POST", body), SAFETY)
        assert first.body == b"early answer"
        second = await t.send(req(up.url("/second")), SAFETY)
        release.set()
        assert second.body == b"/second"
        assert up.accepts == 2


# --------------------------------------------------------------------------- request head


async def test_the_head_cache_tells_requests_with_and_without_a_body_apart() -> None:
    """The cached request head depends on whether there is a body (a default Content-Type is
    added only then): a body-less POST must not fix the head of a later POST with a body."""
    seen: list[str | None] = []

    async def respond(conn: Conn, request: RawRequest) -> None:
        seen.append(request.header("content-type"))
        await conn.send(reply(b"ok"))

    async with raw_upstream(respond_each(respond)) as up, opened(NativeTransport) as t:
        await t.send(HttpRequest("POST", up.url(), {}), SAFETY)
        await t.send(HttpRequest("POST", up.url(), {}, b"data"), SAFETY)
        await t.send(HttpRequest("POST", up.url(), {}), SAFETY)
    assert seen == [None, "application/octet-stream", None]


# --------------------------------------------------------------------------- streams


async def test_a_stream_read_after_its_block_ended_raises_instead_of_hanging(
    transport_factory: TransportFactory,
) -> None:
    """Iterating a stream after its ``async with`` block ended (the connection is gone) raises
    APIConnectionError at once, as aiohttp does; it must not wait forever for bytes that can no
    longer come (no timer runs any more)."""
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
    async with raw_upstream(in_turn(head)) as up, opened(transport_factory) as t:
        async with t.stream(req(up.url()), SAFETY) as s:
            pieces = s.aiter_bytes()
            assert await pieces.__anext__() == b"hello"
        await raises(APIConnectionError, asyncio.wait_for(pieces.__anext__(), WAIT))


async def test_a_paused_stream_does_not_count_its_readers_delay_as_server_silence() -> None:
    """Back-pressure stops reading while the caller has 256 KiB unread: the server is then
    waiting on us, so the read timeout (the server's silence) must not fire for that time, as
    with aiohttp (which stops its read timer while paused). The timer's expiry is simulated by
    moving the exchange's last-read mark back past the read timeout."""
    big = b"x" * (1024 * 1024)

    async def respond(conn: Conn, request: RawRequest) -> None:
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(big) + big)

    read = 30.0
    async with raw_upstream(respond_each(respond)) as up, opened(NativeTransport) as t:
        async with t.stream(req(up.url()), Timeouts(connect=WAIT, read=read, total=None)) as s:
            pieces = s.aiter_bytes()
            got = [await pieces.__anext__()]
            ex = s._ex  # type: ignore[attr-defined]
            while not ex.conn.paused:  # the server fills our buffer: reading stops
                assert not ex.parser.done
                ex.waiter = ex.loop.create_future()
                await asyncio.wait_for(ex.waiter, WAIT)
            ex.last -= 2 * read  # the reader took longer than the read timeout
            ex.stop_timer()
            ex._on_timer()
            got += [piece async for piece in pieces]
        assert b"".join(got) == big


# --------------------------------------------------------------------------- pool waiters


def _held_first(release: asyncio.Event) -> Handler:
    """Answers every request at once, except the very first one, held until ``release``."""
    first = True

    async def respond(conn: Conn, request: RawRequest) -> None:
        nonlocal first
        if first:
            first = False
            await release.wait()
        await conn.send(reply(request.target.split("?")[0].encode()))

    return respond_each(respond)


async def _until(check: Callable[[], bool]) -> None:
    """Yield to the loop until ``check()`` holds (each turn lets the others run a step)."""
    for _ in range(10_000):
        if check():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened")


async def test_a_released_connection_wakes_a_caller_waiting_for_its_origin() -> None:
    """With a per-host limit, a connection put back in the pool must reach a caller waiting
    for that origin, even when a caller for another (still full) origin waits before it: the
    wake-up went to the first waiter, which could not use it and waited again, and the right
    caller slept until its connect timeout although a connection to its origin sat idle."""
    release_a, release_c = asyncio.Event(), asyncio.Event()
    async with (
        raw_upstream(_held_first(release_a)) as a,
        raw_upstream(_held_first(release_c)) as c,
        opened(NativeTransport, max_connections_per_host=1) as t,
    ):
        held_c = asyncio.ensure_future(t.send(req(c.url("/c1")), SAFETY))
        held_a = asyncio.ensure_future(t.send(req(a.url("/a1")), SAFETY))
        await _until(lambda: a.accepts == 1 and c.accepts == 1)
        pool = t._pools[asyncio.get_running_loop()][0]
        waiting_c = asyncio.ensure_future(t.send(req(c.url("/c2")), SAFETY))
        await _until(lambda: len(pool.waiters) == 1)
        waiting_a = asyncio.ensure_future(t.send(req(a.url("/a2")), SAFETY))
        await _until(lambda: len(pool.waiters) == 2)
        release_a.set()
        assert (await held_a).body == b"/a1"
        assert (await asyncio.wait_for(waiting_a, WAIT)).body == b"/a2"
        assert not waiting_c.done()
        release_c.set()
        assert [(await f).body for f in (held_c, waiting_c)] == [b"/c1", b"/c2"]
        assert (a.accepts, c.accepts) == (1, 1)


async def test_making_room_never_breaks_the_per_host_limit() -> None:
    """When the pool is full, a caller may close another origin's idle connection to make
    room, but only if its own origin is under its per-host limit: otherwise it waits."""
    release = asyncio.Event()
    async with (
        raw_upstream(_held_first(release)) as a,
        raw_upstream(in_turn(reply(b"b"))) as b,
        opened(NativeTransport, max_connections=2, max_connections_per_host=1) as t,
    ):
        await t.send(req(b.url()), SAFETY)  # an idle connection to b: the pool is half full
        held = asyncio.ensure_future(t.send(req(a.url("/a1")), SAFETY))
        await _until(lambda: a.accepts == 1)  # the pool is full: a's one, b's idle one
        second = asyncio.ensure_future(t.send(req(a.url("/a2")), SAFETY))
        pool = t._pools[asyncio.get_running_loop()][0]
        await _until(lambda: len(pool.waiters) == 1 or second.done())
        assert a.max_active == 1
        release.set()
        assert [(await f).body for f in (held, second)] == [b"/a1", b"/a2"]
        assert a.accepts == 1


async def test_a_caller_cancelled_in_line_leaves_the_line() -> None:
    """A caller cancelled (or timed out) while waiting for room leaves the waiters' line at
    once: dead entries must not pile up behind live ones for the pool's lifetime."""
    release = asyncio.Event()
    async with (
        raw_upstream(_held_first(release)) as a,
        opened(NativeTransport, max_connections_per_host=1) as t,
    ):
        held = asyncio.ensure_future(t.send(req(a.url("/a1")), SAFETY))
        await _until(lambda: a.accepts == 1)
        pool = t._pools[asyncio.get_running_loop()][0]
        waiting = [asyncio.ensure_future(t.send(req(a.url(f"/w{i}")), SAFETY)) for i in range(3)]
        await _until(lambda: len(pool.waiters) == 3)
        waiting[1].cancel()
        await asyncio.gather(waiting[1], return_exceptions=True)
        assert len(pool.waiters) == 2
        release.set()
        assert (await held).body == b"/a1"
        assert [(await waiting[i]).body for i in (0, 2)] == [b"/w0", b"/w2"]
        assert not pool.waiters


# --------------------------------------------------------------------------- secrets in URLs

_PASSWORD = "pw-4d1e8c3b9a7f"


@pytest.mark.parametrize("mode", ["send", "aread"])
async def test_an_error_never_shows_the_password_of_a_url(
    transport_factory: TransportFactory, mode: str
) -> None:
    """A base URL may carry ``user:password@`` (a proxy's credentials): an error's text shows
    the URL without it, as it leaves out the query."""
    async with (
        raw_upstream(in_turn(b"SSH-2.0-not-http\r\n\r\n")) as up,
        opened(transport_factory) as t,
    ):
        url = up.url().replace("http://", f"http://user:{_PASSWORD}@")
        bare = HttpRequest("GET", url, {})  # aiohttp refuses URL credentials beside a key
        err = await raises(APIConnectionError, answer(t, bare, mode))
        chain: list[BaseException | None] = [err, err.__cause__, err.__context__]
        for e in chain:
            assert e is None or _PASSWORD not in f"{e} {e!r}", e


async def test_credentials_in_the_url_are_sent_as_basic_auth(
    transport_factory: TransportFactory,
) -> None:
    """``http://user:password@host/`` sends ``Authorization: Basic`` (percent-escapes decoded),
    as aiohttp does; silently dropping them turned a working proxy URL into 401s."""
    seen: list[str | None] = []

    async def respond(conn: Conn, request: RawRequest) -> None:
        seen.append(request.header("authorization"))
        await conn.send(reply(b"ok"))

    async with raw_upstream(respond_each(respond)) as up, opened(transport_factory) as t:
        url = up.url().replace("http://", "http://us%40er:p%3Aw@")
        assert (await t.send(HttpRequest("GET", url, {}), SAFETY)).body == b"ok"
        both = HttpRequest("GET", url, {"authorization": "Bearer x"})
        await raises(ConfigurationError, t.send(both, SAFETY))
    assert seen == ["Basic " + base64.b64encode(b"us@er:p:w").decode()]


# --------------------------------------------------------------------------- timeouts


@pytest.mark.parametrize("mode", ["send", "aiter"])
async def test_a_server_that_never_stops_dripping_is_ended_by_the_total_timeout(
    transport_factory: TransportFactory, mode: str
) -> None:
    """A body that keeps coming (a chunk at every turn of the server's loop, so the read
    timeout never fires) is ended by the total timeout, for a stream too (total covers the
    whole stream, as with aiohttp), and the connection is dropped."""
    stop = asyncio.Event()

    async def respond(conn: Conn, request: RawRequest) -> None:
        await conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        while not stop.is_set():
            await conn.send(b"1\r\na\r\n")
            await asyncio.sleep(0)  # a yield, not a delay

    limits = Timeouts(connect=WAIT, read=WAIT, total=0.2)
    async with raw_upstream(respond_each(respond)) as up, opened(transport_factory) as t:
        try:
            await raises(APITimeoutError, answer(t, req(up.url()), mode, limits))
        finally:
            stop.set()
        await asyncio.wait_for(up.conns[0].eof.wait(), WAIT)


# --------------------------------------------------------------------------- aclose


@pytest.mark.parametrize("mode", ["send", "aiter"])
async def test_aclose_ends_requests_in_flight_with_a_connection_error(
    transport_factory: TransportFactory, mode: str
) -> None:
    """``aclose`` while a request waits for its answer ends that request at once with
    APIConnectionError (the connection is gone): it must not wait forever (the closed
    connection's timer could no longer reach it)."""

    async def handler(conn: Conn) -> None:
        request = await conn.read_request()
        if request is not None and mode == "aiter":
            await conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n")

    t = transport_factory(max_connections=1)
    async with raw_upstream(handler) as up:
        flight = asyncio.ensure_future(answer(t, req(up.url()), mode, SAFETY))
        await _until(lambda: bool(up.conns) and bool(up.conns[0].received))
        if mode == "aiter":  # the head and a first piece are in: the stream waits for more
            await _until(lambda: not up.conns[0].writer.transport.get_write_buffer_size())
        await t.aclose()
        await raises(APIConnectionError, asyncio.wait_for(flight, WAIT))


async def test_aclose_ends_callers_waiting_for_room_with_a_connection_error() -> None:
    """Callers queued for room when ``aclose`` runs get APIConnectionError. (aiohttp raises
    CancelledError into them, though nobody cancelled them.)"""

    async def handler(conn: Conn) -> None:
        await conn.read_request()

    t = NativeTransport(max_connections=1)
    async with raw_upstream(handler) as up:
        flight = asyncio.ensure_future(t.send(req(up.url()), SAFETY))
        await _until(lambda: up.accepts == 1)
        queued = asyncio.ensure_future(t.send(req(up.url()), SAFETY))
        await _until(lambda: bool(t._pools[asyncio.get_running_loop()][0].waiters))
        await t.aclose()
        for f in (flight, queued):
            await raises(APIConnectionError, asyncio.wait_for(f, WAIT))
