"""Transport conformance, connections and streams: kept-alive connections are reused and only
when safe (not after ``Connection: close``, a server's silent close or a stream left half-read);
the pool limit holds under load; a stream hands out data as it arrives and in order; an IPv6
literal host works. Run over every transport of ``conftest.TRANSPORTS`` against a raw TCP
upstream (``raw_upstream``) that counts the connections it accepts.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from llmrelay.errors import APIConnectionError
from llmrelay.transport import Timeouts

from .conftest import SAFETY, TransportFactory, answer, opened, raises, req
from .raw_upstream import WAIT, Conn, RawRequest, in_turn, raw_upstream, reply, respond_each

FIRST = reply(b"first answer")
NEXT = reply(b"next answer")
CHUNKED_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


# --------------------------------------------------------------------------- reuse


@pytest.mark.parametrize("mode", ["send", "aiter", "aread"])
async def test_sequential_requests_reuse_one_connection(
    transport_factory: TransportFactory, mode: str
) -> None:
    """Two requests one after the other, each answer read whole, go over one TCP connection."""
    async with raw_upstream(in_turn(FIRST, NEXT)) as up, opened(transport_factory) as t:
        assert (await answer(t, req(up.url(), "POST", b"{}"), mode)).body == b"first answer"
        assert (await answer(t, req(up.url(), "POST", b"{}"), mode)).body == b"next answer"
        assert up.accepts == 1


async def test_connection_close_answer_is_not_reused(transport_factory: TransportFactory) -> None:
    """After an answer saying ``Connection: close`` the next request opens a new connection
    (here the server leaves the old one open, so reusing it would be seen)."""
    first = reply(b"first answer", headers="Connection: close\r\n")
    async with raw_upstream(in_turn(first, NEXT)) as up, opened(transport_factory) as t:
        assert (await t.send(req(up.url(), "POST", b"{}"), SAFETY)).body == b"first answer"
        assert (await t.send(req(up.url(), "POST", b"{}"), SAFETY)).body == b"next answer"
        assert up.accepts == 2
        assert up.conns[0].received.count(b"POST ") == 1


async def test_idle_connection_closed_by_the_server_is_not_used(
    transport_factory: TransportFactory,
) -> None:
    """A server that closes an idle kept-alive connection without saying so: once the client
    had a chance to see the FIN, the next POST (which no transport may resend) still succeeds,
    on a new connection."""

    async def handler(conn: Conn) -> None:
        if await conn.read_request() is None:
            return
        if conn.index == 0:
            await conn.send(FIRST)  # kept alive, as far as the client knows
            await conn.close()
            return
        await conn.send(NEXT)
        await conn.wait_eof()

    async with raw_upstream(handler) as up, opened(transport_factory) as t:
        assert (await t.send(req(up.url(), "POST", b"{}"), SAFETY)).body == b"first answer"
        await asyncio.wait_for(up.conns[0].closed.wait(), WAIT)
        for _ in range(3):
            await asyncio.sleep(0)  # a yield: the client's loop reads the FIN
        assert (await t.send(req(up.url(), "POST", b"{}"), SAFETY)).body == b"next answer"
        assert up.accepts == 2


async def test_post_on_a_reused_connection_closed_unanswered_is_not_resent(
    transport_factory: TransportFactory,
) -> None:
    """A kept-alive connection whose server reads the next POST and closes without answering:
    APIConnectionError, and the POST is not sent again on a new connection (the server may
    have acted on it: an LLM call would be paid twice)."""
    requests = 0

    async def handler(conn: Conn) -> None:
        nonlocal requests
        while await conn.read_request() is not None:
            requests += 1
            if requests > 1:
                await conn.close()
                return
            await conn.send(FIRST)

    async with raw_upstream(handler) as up, opened(transport_factory) as t:
        assert (await t.send(req(up.url(), "POST", b"{}"), SAFETY)).body == b"first answer"
        await raises(APIConnectionError, t.send(req(up.url(), "POST", b"{}"), SAFETY))
        assert requests == 2
        assert up.accepts == 1


async def test_pool_limit_holds_under_concurrent_requests(
    transport_factory: TransportFactory,
) -> None:
    """50 concurrent requests with max_connections=5 all succeed and the server never has more
    than 5 connections open at once. The server holds every answer until 5 requests wait at
    once, so the transport must really use its 5 connections in parallel."""
    waiting = 0
    five = asyncio.Event()

    async def respond(conn: Conn, request: RawRequest) -> None:
        nonlocal waiting
        waiting += 1
        if waiting >= 5:
            five.set()
        await five.wait()
        await conn.send(reply(request.body))

    async with (
        raw_upstream(respond_each(respond)) as up,
        opened(transport_factory, max_connections=5) as t,
    ):
        bodies = [b'{"n": %d}' % i for i in range(50)]
        results = await asyncio.gather(
            *(t.send(req(up.url(), "POST", body), SAFETY) for body in bodies)
        )
        assert [r.body for r in results] == bodies
        assert up.max_active <= 5
        assert up.accepts >= 5


@pytest.mark.parametrize("how", ["break", "unread"])
async def test_stream_left_early_is_not_reused(
    transport_factory: TransportFactory, how: str
) -> None:
    """A stream the caller leaves before its end (breaking out of ``aiter_bytes``, or not
    reading it at all) closes its connection (the server sees EOF) instead of pooling it."""

    async def handler(conn: Conn) -> None:
        if await conn.read_request() is None:
            return
        if conn.index == 0:
            await conn.send(CHUNKED_HEAD + chunk(b"data: 1\n\n"))
            await conn.wait_eof()  # the rest never comes
            return
        await conn.send(NEXT)
        await conn.wait_eof()

    async with raw_upstream(handler) as up, opened(transport_factory) as t:
        async with t.stream(req(up.url(), "POST", b"{}"), SAFETY) as s:
            assert s.status == 200
            if how == "break":
                async for piece in s.aiter_bytes():
                    assert piece
                    break
        await asyncio.wait_for(up.conns[0].eof.wait(), WAIT)
        assert (await t.send(req(up.url(), "POST", b"{}"), SAFETY)).body == b"next answer"
        assert up.accepts == 2


# --------------------------------------------------------------------------- streaming


@pytest.mark.parametrize("framing", ["chunked", "content-length", "close-delimited"])
async def test_first_piece_arrives_before_the_second_is_sent(
    transport_factory: TransportFactory, framing: str
) -> None:
    """``aiter_bytes`` hands out what has arrived without waiting for more: the server sends
    its second piece only after the test has received the first."""
    one, two = b"data: first\n\n", b"data: second\n\n"
    go = asyncio.Event()
    heads = {
        "chunked": CHUNKED_HEAD,
        "content-length": b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(one + two),
        "close-delimited": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
    }

    def framed(data: bytes) -> bytes:
        return chunk(data) if framing == "chunked" else data

    async def handler(conn: Conn) -> None:
        if await conn.read_request() is None:
            return
        await conn.send(heads[framing] + framed(one))
        await go.wait()
        await conn.send(framed(two) + (b"0\r\n\r\n" if framing == "chunked" else b""))
        if framing == "close-delimited":
            await conn.close()

    async with raw_upstream(handler) as up, opened(transport_factory) as t:
        got = b""
        async with t.stream(req(up.url(), "POST", b"{}"), SAFETY) as s:
            async for piece in s.aiter_bytes():
                got += piece
                if len(got) >= len(one) and not go.is_set():
                    assert got == one
                    go.set()
        assert got == one + two


@pytest.mark.parametrize("mode", ["aiter", "aread"])
async def test_long_stream_of_small_events_arrives_whole_and_in_order(
    transport_factory: TransportFactory, mode: str
) -> None:
    """10,000 small events, one chunk each, come out complete and in order."""
    events = [b'data: {"n": %d}\n\n' % i for i in range(10_000)]

    async def handler(conn: Conn) -> None:
        if await conn.read_request() is None:
            return
        await conn.send(CHUNKED_HEAD)
        for i in range(0, len(events), 100):
            await conn.send(b"".join(chunk(e) for e in events[i : i + 100]))
        await conn.send(b"0\r\n\r\n")
        await conn.wait_eof()

    async with raw_upstream(handler) as up, opened(transport_factory) as t:
        r = await answer(t, req(up.url(), "POST", b"{}"), mode)
        assert r.body == b"".join(events)


# --------------------------------------------------------------------------- IPv6


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


async def test_ipv6_literal_host(transport_factory: TransportFactory) -> None:
    """``http://[::1]:PORT/`` reaches a server on the IPv6 loopback. On a machine without one,
    the request is an APIConnectionError instead (this test never skips)."""
    async with opened(transport_factory) as t:
        if not _ipv6_loopback():
            url = "http://[::1]:9/v1/x?key=secret-query-9e2d4b7a1f3c"
            await raises(APIConnectionError, t.send(req(url), Timeouts(connect=WAIT)))
            return
        async with raw_upstream(in_turn(FIRST), host="::1") as up:
            assert up.url().startswith("http://[::1]:")
            r = await t.send(req(up.url(), "POST", b"{}"), SAFETY)
            assert (r.status, r.body) == (200, b"first answer")
            assert up.conns[0].received.startswith(b"POST /v1/x?key=")
