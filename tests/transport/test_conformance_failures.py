"""Transport conformance, failures: a stalled server is an ``APITimeoutError`` (never a hang),
a cancelled call stays cancelled and drops its connection, and no error shows the request's key
or query string. Run over every transport of ``conftest.TRANSPORTS`` against a raw TCP upstream
(``raw_upstream``). Timeouts here are small (0.2 s) only where a timeout is what is tested.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from llmrelay.errors import APIConnectionError, APITimeoutError, ConfigurationError
from llmrelay.transport import HttpRequest, Timeouts, Transport

from .conftest import (
    MODES,
    SAFETY,
    TransportFactory,
    answer,
    opened,
    raises,
    req,
    xfail_case,
)
from .raw_upstream import (
    SECRET_KEY,
    SECRET_QUERY,
    WAIT,
    Conn,
    Handler,
    in_turn,
    raw_upstream,
    reply,
)

SHORT = 0.2
#: The read timeout alone, or the total one alone: either must end a stall.
LIMITS = {
    "read": Timeouts(connect=WAIT, read=SHORT, total=None),
    "total": Timeouts(connect=WAIT, read=None, total=SHORT),
}
NEXT = reply(b"next answer")
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)
#: What the server sends before it stalls: nothing, or a head and the start of a body.
STALLS = {
    "no-answer": b"",
    "head-then-stall": STREAM_HEAD + b"9\r\ndata: 1\n\n\r\n",
    "half-a-body-then-stall": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 40,
}


def stall_after(data: bytes, reached: asyncio.Event) -> Handler:
    """A handler whose first connection gets ``data`` and then nothing more (``reached`` is set
    then; it waits for the client to close); later connections get NEXT to each request."""

    async def handler(conn: Conn) -> None:
        while (request := await conn.read_request()) is not None:
            assert request.method
            if conn.index > 0:
                await conn.send(NEXT)
                continue
            await conn.send(data)
            reached.set()
            await conn.wait_eof()
            return

    return handler


# --------------------------------------------------------------------------- timeouts


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("limit", list(LIMITS))
@pytest.mark.parametrize("stall", list(STALLS))
async def test_stalled_server_is_a_timeout(
    transport_factory: TransportFactory, mode: str, limit: str, stall: str
) -> None:
    """A server that stops sending (before the head, after it, mid-body) ends the call in
    APITimeoutError under a read timeout alone or a total one alone, for ``send`` and streams;
    the connection is dropped and the transport still works."""
    reached = asyncio.Event()
    async with (
        raw_upstream(stall_after(STALLS[stall], reached)) as up,
        opened(transport_factory) as t,
    ):
        await raises(APITimeoutError, answer(t, req(up.url(), "POST", b"{}"), mode, LIMITS[limit]))
        assert reached.is_set()
        await asyncio.wait_for(up.conns[0].eof.wait(), WAIT)
        assert (await answer(t, req(up.url(), "POST", b"{}"), mode)).body == b"next answer"


# aiohttp warns about any bytes body over 1 MiB (a ResourceWarning, an error under -W error).
@pytest.mark.filterwarnings("ignore:Sending a large body directly:ResourceWarning")
@pytest.mark.parametrize("mode", ["send", "aiter"])
@pytest.mark.parametrize("limit", list(LIMITS))
async def test_server_not_reading_a_large_body_is_a_timeout(
    transport_factory: TransportFactory, mode: str, limit: str
) -> None:
    """A server that reads none of a 2 MB request body (small receive buffer) and never
    answers ends the call in APITimeoutError, not a hang in the write; the connection is
    dropped."""
    release = asyncio.Event()

    async def handler(conn: Conn) -> None:
        await release.wait()  # reads nothing until the test is done
        await conn.wait_eof()

    body = b"x" * (2 * 1024 * 1024)
    async with raw_upstream(handler, rcvbuf=4096) as up, opened(transport_factory) as t:
        await raises(APITimeoutError, answer(t, req(up.url(), "POST", body), mode, LIMITS[limit]))
        release.set()
        await asyncio.wait_for(up.conns[0].eof.wait(), WAIT)


# --------------------------------------------------------------------------- cancellation


@pytest.mark.parametrize("stall", ["no-answer", "half-a-body-then-stall"])
async def test_cancelled_send_stays_cancelled_and_drops_the_connection(
    transport_factory: TransportFactory, stall: str
) -> None:
    """Cancelling a task waiting in ``send`` raises CancelledError to it (not a transport
    error), and the server promptly sees the connection closed; the transport still works."""
    reached = asyncio.Event()
    async with (
        raw_upstream(stall_after(STALLS[stall], reached)) as up,
        opened(transport_factory) as t,
    ):
        task = asyncio.create_task(t.send(req(up.url(), "POST", b"{}"), SAFETY))
        await asyncio.wait_for(reached.wait(), WAIT)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(up.conns[0].eof.wait(), WAIT)
        assert (await t.send(req(up.url(), "POST", b"{}"), SAFETY)).body == b"next answer"


@pytest.mark.parametrize("where", ["waiting-for-the-head", "mid-stream"])
async def test_cancelled_stream_stays_cancelled_and_drops_the_connection(
    transport_factory: TransportFactory, where: str
) -> None:
    """Cancelling a task reading a stream (waiting for its head, or in ``aiter_bytes`` after a
    first piece) raises CancelledError to it, and the server promptly sees the connection
    closed; the transport still works."""
    reached = asyncio.Event()
    got_first = asyncio.Event()
    data = b"" if where == "waiting-for-the-head" else STALLS["head-then-stall"]

    async def consume(t: Transport, url: str) -> None:
        async with t.stream(req(url, "POST", b"{}"), SAFETY) as s:
            async for _ in s.aiter_bytes():
                got_first.set()

    async with raw_upstream(stall_after(data, reached)) as up, opened(transport_factory) as t:
        task = asyncio.create_task(consume(t, up.url()))
        await asyncio.wait_for(reached.wait(), WAIT)
        if where == "mid-stream":
            await asyncio.wait_for(got_first.wait(), WAIT)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(up.conns[0].eof.wait(), WAIT)
        assert (await t.send(req(up.url(), "POST", b"{}"), SAFETY)).body == b"next answer"


# --------------------------------------------------------------------------- secrets


@pytest.mark.parametrize("mode", ["send", "aiter"])
async def test_connection_refused_is_a_connection_error(
    transport_factory: TransportFactory, mode: str
) -> None:
    """Nobody listening: APIConnectionError, showing neither the key nor the query string."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    url = f"http://127.0.0.1:{port}/v1/x?key={SECRET_QUERY}"
    async with opened(transport_factory) as t:
        err = await raises(APIConnectionError, answer(t, req(url, "POST", b"{}"), mode))
        assert f"127.0.0.1:{port}" in str(err)  # says where, without the query


@pytest.mark.parametrize("mode", ["send", "aiter"])
@pytest.mark.parametrize("bad", ["\n", "\r\n", "\r", "\0"], ids=["lf", "crlf", "cr", "nul"])
async def test_header_value_with_a_line_break_is_a_configuration_error(
    transport_factory: TransportFactory, mode: str, bad: str
) -> None:
    """A request header value holding CR, LF or NUL (an API key read with its newline, or a
    header injection) is a ConfigurationError that echoes no part of the value, and nothing
    of it reaches the server."""
    value = f"Bearer {SECRET_KEY}{bad}X-Injected: yes"
    async with raw_upstream(in_turn(reply(b"sent"))) as up, opened(transport_factory) as t:
        bad_request = HttpRequest("POST", up.url(), {"authorization": value}, b"{}")
        err = await raises(ConfigurationError, answer(t, bad_request, mode))
        assert "Injected" not in str(err)
        assert "Injected" not in repr(err)
        assert not any(c.received for c in up.conns), "the request was sent"


_BAD_NAMES = {"colon": "x-a:b", "space": "bad name", "line-break": "x-a\r\nx-b"}
_BAD_NAMES_KNOWN = {
    ("aiohttp", case): "aiohttp writes a header name as given: {'x-a:b': 'v'} goes out as "
    "'x-a:b: v', a forged x-a header, and {'bad name': 'v'} as an invalid line"
    for case in ("colon", "space")
}


@pytest.mark.parametrize("case", list(_BAD_NAMES))
async def test_invalid_header_name_is_a_configuration_error(
    transport_factory: TransportFactory, case: str, request: pytest.FixtureRequest
) -> None:
    """A request header name that is not an RFC 9110 token (a colon, a space, a line break) is
    a ConfigurationError, and nothing is sent: written as given it would forge or split
    headers. (The Client checks names before a transport sees them; this is the transport's own
    line of defence, for callers of the transport.)"""
    xfail_case(request, case, _BAD_NAMES_KNOWN)
    name = _BAD_NAMES[case]
    async with raw_upstream(in_turn(reply(b"sent"))) as up, opened(transport_factory) as t:
        headers = {name: "v", "authorization": f"Bearer {SECRET_KEY}"}
        await raises(
            ConfigurationError, t.send(HttpRequest("POST", up.url(), headers, b"{}"), SAFETY)
        )
        assert not any(c.received for c in up.conns), "the request was sent"
