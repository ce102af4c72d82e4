"""Transport conformance, message framing: every way a real server may delimit an answer comes
out right, and every broken framing is an ``APIConnectionError`` (never a raw exception, never a
hang). Each test runs over every transport of ``conftest.TRANSPORTS``, against a raw TCP upstream
writing exact bytes (``raw_upstream``); most run once per way of reading an answer (``MODES``).
"""

from __future__ import annotations

import asyncio

import pytest

from llmrelay.errors import APIConnectionError

from .conftest import (
    MODES,
    TransportFactory,
    answer,
    opened,
    raises,
    req,
    xfail_case,
)
from .raw_upstream import WAIT, Conn, chunked, in_turn, raw_upstream, reply

modes = pytest.mark.parametrize("mode", MODES)

NEXT = reply(b"next answer")


# --------------------------------------------------------------------------- framings that work


@modes
async def test_content_length_body(transport_factory: TransportFactory, mode: str) -> None:
    """A Content-Length body comes out whole, with its status and headers."""
    body = b'{"hello": "world"}' * 100
    ans = reply(body, status="201 Created", headers="Content-Type: application/json\r\n")
    async with raw_upstream(in_turn(ans)) as up, opened(transport_factory) as t:
        r = await answer(t, req(up.url()), mode)
        assert (r.status, r.body) == (201, body)
        assert r.headers.get("content-type") == "application/json"


@modes
async def test_chunked_with_extensions_uppercase_hex_and_trailers(
    transport_factory: TransportFactory, mode: str
) -> None:
    """Chunk extensions are ignored, sizes may be upper-case hex, trailers are read past: the
    body is the chunks' data and the next answer on the transport is its own."""
    data = bytes(range(65, 65 + 26))
    ans = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;foo=bar\r\nhello\r\n"
        b'1A;name="quoted value"\r\n' + data + b"\r\n"
        b"0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n"
    )
    async with raw_upstream(in_turn(ans, NEXT)) as up, opened(transport_factory) as t:
        r = await answer(t, req(up.url()), mode)
        assert (r.status, r.body) == (200, b"hello" + data)
        r = await answer(t, req(up.url()), mode)
        assert r.body == b"next answer"


@modes
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_one_byte_per_write(
    transport_factory: TransportFactory, mode: str, framing: str
) -> None:
    """An answer delivered one byte per TCP write (head and body) is parsed as if whole."""
    body = b"byte by byte, a body split everywhere"
    if framing == "chunked":
        ans = b"HTTP/1.1 200 OK\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(
            body[:10], body[10:]
        )
    else:
        ans = reply(body, headers="X-A: 1\r\n")
    async with (
        raw_upstream(in_turn(ans, NEXT, bytewise=True)) as up,
        opened(transport_factory) as t,
    ):
        r = await answer(t, req(up.url()), mode)
        assert (r.status, r.body, r.headers.get("x-a")) == (200, body, "1")
        assert (await answer(t, req(up.url()), mode)).body == b"next answer"


@modes
@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
        b"HTTP/1.0 200 OK\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n",
    ],
    ids=["http11-connection-close", "http10-bare", "http10-headers"],
)
async def test_close_delimited_body(
    transport_factory: TransportFactory, mode: str, head: bytes
) -> None:
    """With no length, the body runs to the server's close; the closed connection is not
    reused (the next request opens a new one and gets its own answer)."""
    parts = [b"first part, ", b"second part, ", b"last part"]
    served = 0

    async def handler(conn: Conn) -> None:
        nonlocal served
        if await conn.read_request() is None:
            return
        served += 1
        if served > 1:
            await conn.send(NEXT)
            return
        await conn.send(head)
        for p in parts:
            await conn.send(p)
        await conn.close()

    async with raw_upstream(handler) as up, opened(transport_factory) as t:
        r = await answer(t, req(up.url()), mode)
        assert (r.status, r.body) == (200, b"".join(parts))
        assert (await answer(t, req(up.url()), mode)).body == b"next answer"
        assert up.accepts == 2


@modes
@pytest.mark.parametrize(
    ("method", "head"),
    [
        ("GET", b"HTTP/1.1 204 No Content\r\n\r\n"),
        ("GET", b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\n\r\n'),
        # A 304 may carry the Content-Length of the representation it stands for.
        ("GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\n\r\n"),
        # So does the answer to HEAD.
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"),
    ],
    ids=["204", "304", "304-with-length", "head-with-length"],
)
async def test_answers_without_a_body(
    transport_factory: TransportFactory, mode: str, method: str, head: bytes
) -> None:
    """204, 304 and answers to HEAD have no body whatever their headers say: the transport does
    not wait for one, and the next answer on the connection is read right."""
    async with raw_upstream(in_turn(head, NEXT)) as up, opened(transport_factory) as t:
        r = await answer(t, req(up.url(), method), mode)
        assert r.body == b""
        assert r.status == int(head.split()[1])
        assert (await answer(t, req(up.url()), mode)).body == b"next answer"


@modes
@pytest.mark.parametrize(
    "interim",
    [b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"],
    ids=["100", "103"],
)
async def test_interim_answer_before_the_final_one(
    transport_factory: TransportFactory, mode: str, interim: bytes
) -> None:
    """A 1xx interim answer is skipped: the caller sees the final answer."""
    ans = interim + reply(b"final", headers="X-Final: yes\r\n")
    async with raw_upstream(in_turn(ans, NEXT)) as up, opened(transport_factory) as t:
        r = await answer(t, req(up.url(), "POST", b"{}"), mode)
        assert (r.status, r.body, r.headers.get("x-final")) == (200, b"final", "yes")
        assert (await answer(t, req(up.url()), mode)).body == b"next answer"


@modes
async def test_content_length_and_chunked_both_present_cause_no_desync(
    transport_factory: TransportFactory, mode: str
) -> None:
    """An answer with both Content-Length and chunked gives its chunked body (RFC 9112 6.3) or
    an APIConnectionError; either way the next request gets the server's own answer, not bytes
    left over from the first (here, a complete answer smuggled inside the chunk data)."""
    smuggled = reply(b"smuggled")
    size_line = b"%X\r\n" % len(smuggled)
    ans = (
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n"
        % len(size_line)
        + size_line
        + smuggled
        + b"\r\n0\r\n\r\n"
    )
    async with raw_upstream(in_turn(ans, NEXT)) as up, opened(transport_factory) as t:
        try:
            r = await answer(t, req(up.url()), mode)
        except APIConnectionError:
            pass
        else:
            assert r.body == smuggled
        assert (await answer(t, req(up.url()), mode)).body == b"next answer"


# --------------------------------------------------------------------------- broken framing

_BROKEN: dict[str, tuple[bytes, bool]] = {
    # id: (what the server sends after reading the request, whether it then closes)
    "body-shorter-than-length": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this much",
        True,
    ),
    "chunk-cut-short": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nshort",
        True,
    ),
    "chunked-without-last-chunk": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        True,
    ),
    "malformed-chunk-size": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        False,
    ),
    "negative-content-length": (b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nhello", False),
    "non-numeric-content-length": (
        b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nhello",
        False,
    ),
    "conflicting-content-lengths": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello, ",
        False,
    ),
    "garbage-status-line": (b"FOO\r\n\r\n", False),
    "non-numeric-status": (b"HTTP/1.1 abc OK\r\n\r\n", False),
    "status-out-of-range": (b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", False),
    "binary-junk": (bytes(range(256)) * 4, False),
    "half-a-head-then-close": (b"HTTP/1.1 200 OK\r\nContent-Ty", True),
    "nothing-then-close": (b"", True),
}

#: (transport, case) pairs a transport is known to get wrong.
_BROKEN_KNOWN: dict[tuple[str, str], str] = {}


@modes
@pytest.mark.parametrize("case", list(_BROKEN))
async def test_broken_framing_is_a_connection_error(
    transport_factory: TransportFactory, mode: str, case: str, request: pytest.FixtureRequest
) -> None:
    """Each broken answer to a POST ends in APIConnectionError (not a raw error, not a hang, no
    secret shown, and the POST is not sent again); then the transport still works."""
    xfail_case(request, case, _BROKEN_KNOWN)
    data, close = _BROKEN[case]
    served = 0

    async def handler(conn: Conn) -> None:
        nonlocal served
        if await conn.read_request() is None:
            return
        served += 1
        if served > 1:
            await conn.send(NEXT)
            return
        await conn.send(data)
        if close:
            await conn.close()

    async with raw_upstream(handler) as up, opened(transport_factory) as t:
        await raises(APIConnectionError, answer(t, req(up.url(), "POST", b"{}"), mode))
        assert served == 1, "the POST was sent again"
        assert (await answer(t, req(up.url(), "POST", b"{}"), mode)).body == b"next answer"


@pytest.mark.parametrize("mode", ["send", "aiter"])
async def test_close_right_after_accepting(transport_factory: TransportFactory, mode: str) -> None:
    """A server that accepts and closes at once (before reading anything) gives
    APIConnectionError."""

    async def handler(conn: Conn) -> None:
        await conn.close()

    async with raw_upstream(handler) as up, opened(transport_factory) as t:
        await raises(APIConnectionError, answer(t, req(up.url(), "POST", b"{}"), mode))
        assert up.accepts == 1, "the POST was sent again"


@pytest.mark.parametrize("mode", ["send", "aiter"])
@pytest.mark.parametrize("shape", ["one-long-line", "many-short-lines"])
async def test_endless_header_block_is_refused(
    transport_factory: TransportFactory, mode: str, shape: str
) -> None:
    """A header block that never ends is refused with APIConnectionError within the first MiB:
    the server sends 1 MiB of headers and then stalls, so a transport that buffered on would
    time out (and fail this test) instead."""

    async def handler(conn: Conn) -> None:
        if await conn.read_request() is None:
            return
        if shape == "one-long-line":
            await conn.send(b"HTTP/1.1 200 OK\r\nX-Long: ")
            piece = b"a" * 65536
        else:
            await conn.send(b"HTTP/1.1 200 OK\r\n")
            piece = b"".join(b"X-H%05d: v\r\n" % i for i in range(5000))
        total = 0
        try:
            while total < 1024 * 1024:
                await conn.send(piece)
                total += len(piece)
        except ConnectionError:
            return  # the client has gone
        await conn.wait_eof()

    async with raw_upstream(handler) as up, opened(transport_factory) as t:
        await raises(APIConnectionError, answer(t, req(up.url(), "POST", b"{}"), mode))
        await asyncio.wait_for(up.conns[0].eof.wait(), WAIT)  # and the connection is dropped
