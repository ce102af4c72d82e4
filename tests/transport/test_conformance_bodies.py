"""Transport conformance, headers, bodies and redirects: header lookup is case-insensitive and
survives repeated or non-ASCII headers; compressed bodies are decoded; ``max_response_bytes``
stops a compression bomb, an announced oversize body and an endless chunked body, in bounded
memory; a redirect is returned, never followed. Run over every transport of
``conftest.TRANSPORTS`` against a raw TCP upstream writing exact bytes (``raw_upstream``).
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import tracemalloc
import zlib

import pytest

from llmrelay.errors import ResponseTooLargeError

from .conftest import MODES, TransportFactory, answer, opened, raises, req
from .raw_upstream import WAIT, Conn, chunked, in_turn, raw_upstream, reply

MIB = 1024 * 1024
LIMIT = 1_000_000
#: tracemalloc peak allowed while refusing a 200 MB bomb with a LIMIT limit: a few times the
#: limit (buffers, a join), far below what decoding the whole answer takes.
PEAK = 8 * MIB


# --------------------------------------------------------------------------- headers


@pytest.mark.parametrize("mode", ["send", "aiter"])
async def test_header_lookup_is_case_insensitive(
    transport_factory: TransportFactory, mode: str
) -> None:
    """Response headers are found whatever the case of the name asked or sent."""
    ans = reply(b"{}", headers="Retry-After: 7\r\nx-REQUEST-id: req-1\r\n")
    async with raw_upstream(in_turn(ans)) as up, opened(transport_factory) as t:
        h = (await answer(t, req(up.url()), mode)).headers
        for name in ("Retry-After", "retry-after", "RETRY-AFTER"):
            assert h.get(name) == "7", name
            assert h[name] == "7", name
            assert name in h
        assert h.get("X-Request-Id") == h.get("x-request-id") == "req-1"
        assert h.get("x-absent") is None
        assert "x-absent" not in h


@pytest.mark.parametrize("mode", ["send", "aiter"])
async def test_repeated_headers_stay_readable(
    transport_factory: TransportFactory, mode: str
) -> None:
    """A header sent several times reads as its first value or all of them comma-joined (RFC
    9110 5.3), and the headers around it are intact."""
    ans = reply(
        b"ok",
        headers=(
            "Set-Cookie: a=1\r\nX-Multi: 1\r\nSet-Cookie: b=2\r\nx-multi: 2\r\nX-After: fine\r\n"
        ),
    )
    async with raw_upstream(in_turn(ans)) as up, opened(transport_factory) as t:
        r = await answer(t, req(up.url()), mode)
        assert r.body == b"ok"
        assert r.headers.get("x-multi") in ("1", "1, 2", "1,2")
        assert r.headers.get("set-cookie") in ("a=1", "a=1, b=2", "a=1,b=2")
        assert r.headers.get("x-after") == "fine"


@pytest.mark.parametrize("mode", ["send", "aiter"])
async def test_non_ascii_header_bytes_do_not_crash(
    transport_factory: TransportFactory, mode: str
) -> None:
    """Header values with bytes outside ASCII (latin-1 text, invalid UTF-8) are read as some
    string without an error, and the rest of the answer is right."""
    ans = (
        b"HTTP/1.1 200 OK\r\nX-Name: caf\xe9\r\nX-Junk: \xff\xfe\x80\r\n"
        b"X-Plain: ascii\r\nContent-Length: 2\r\n\r\nok"
    )
    async with raw_upstream(in_turn(ans)) as up, opened(transport_factory) as t:
        r = await answer(t, req(up.url()), mode)
        assert (r.status, r.body) == (200, b"ok")
        name = r.headers.get("x-name")
        assert isinstance(name, str)
        assert name.startswith("caf")
        assert isinstance(r.headers.get("x-junk"), str)
        assert r.headers.get("x-plain") == "ascii"


# --------------------------------------------------------------------------- compressed bodies

TEXT = b"".join(b'{"index": %d, "text": "some compressible words"}\n' % i for i in range(500))


def _deflate_raw(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


_ENCODED = {
    "gzip": ("gzip", gzip.compress(TEXT)),
    "deflate": ("deflate", zlib.compress(TEXT)),
    # Some servers send raw deflate (no zlib wrapper) under "deflate".
    "deflate-raw": ("deflate", _deflate_raw(TEXT)),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("case", list(_ENCODED))
async def test_compressed_body_is_decoded(
    transport_factory: TransportFactory, mode: str, framing: str, case: str
) -> None:
    """gzip and deflate Content-Encodings are decoded, with either framing."""
    encoding, data = _ENCODED[case]
    if framing == "chunked":
        ans = (
            f"HTTP/1.1 200 OK\r\nContent-Encoding: {encoding}\r\nTransfer-Encoding: chunked\r\n\r\n"
        ).encode() + chunked(data[:100], data[100:])
    else:
        ans = reply(data, headers=f"Content-Encoding: {encoding}\r\n")
    async with raw_upstream(in_turn(ans)) as up, opened(transport_factory) as t:
        r = await answer(t, req(up.url()), mode)
        assert r.body == TEXT


# --------------------------------------------------------------------------- size limit


@functools.cache
def gzip_bomb() -> bytes:
    """200 MiB of zeros, gzip-compressed (about 200 KiB)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(MIB)
    return b"".join([comp.compress(zeros) for _ in range(200)] + [comp.flush()])


@pytest.mark.parametrize("mode", ["send", "aread"])
async def test_gzip_bomb_stops_at_the_limit_in_bounded_memory(
    transport_factory: TransportFactory, mode: str
) -> None:
    """A 200 MiB gzip bomb (200 KiB on the wire) with max_response_bytes=1_000_000 ends in
    ResponseTooLargeError, and traced memory never grows by more than a few times the limit."""
    bomb = gzip_bomb()
    ans = reply(bomb, headers="Content-Encoding: gzip\r\nContent-Type: application/json\r\n")
    async with raw_upstream(in_turn(ans)) as up, opened(transport_factory) as t:
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            err = await raises(
                ResponseTooLargeError,
                answer(t, req(up.url(), "POST", b"{}", max_response_bytes=LIMIT), mode),
            )
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
        assert peak < PEAK, f"traced memory grew by {peak / MIB:.1f} MiB"
        assert err.limit == LIMIT
        await asyncio.wait_for(up.conns[0].eof.wait(), WAIT)  # the connection was dropped


@pytest.mark.parametrize("mode", ["send", "aread"])
async def test_announced_length_over_the_limit_raises_before_the_body(
    transport_factory: TransportFactory, mode: str
) -> None:
    """A Content-Length above max_response_bytes raises ResponseTooLargeError from the head
    alone: the server sends no body byte (and stalls), so reading any would time out."""

    async def handler(conn: Conn) -> None:
        if await conn.read_request() is None:
            return
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (LIMIT + 1))
        await conn.wait_eof()

    async with raw_upstream(handler) as up, opened(transport_factory) as t:
        await raises(
            ResponseTooLargeError,
            answer(t, req(up.url(), "POST", b"{}", max_response_bytes=LIMIT), mode),
        )
        await asyncio.wait_for(up.conns[0].eof.wait(), WAIT)  # not pooled half-read


@pytest.mark.parametrize("mode", ["send", "aread"])
async def test_endless_chunked_body_over_the_limit_raises(
    transport_factory: TransportFactory, mode: str
) -> None:
    """A chunked body that goes past max_response_bytes raises ResponseTooLargeError (the
    server would send 64 MiB) and the connection is dropped."""

    async def handler(conn: Conn) -> None:
        if await conn.read_request() is None:
            return
        await conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        piece = b"%x\r\n%s\r\n" % (64 * 1024, b"x" * 64 * 1024)
        try:
            for _ in range(1024):
                await conn.send(piece)
        except ConnectionError:
            return  # the client hung up, as it should
        await conn.send(b"0\r\n\r\n")

    async with raw_upstream(handler) as up, opened(transport_factory) as t:
        await raises(
            ResponseTooLargeError,
            answer(t, req(up.url(), "POST", b"{}", max_response_bytes=LIMIT), mode),
        )
        await asyncio.wait_for(up.conns[0].eof.wait(), WAIT)


# --------------------------------------------------------------------------- redirects


@pytest.mark.parametrize("mode", ["send", "aiter"])
@pytest.mark.parametrize("status", ["302 Found", "307 Temporary Redirect"])
async def test_redirect_is_returned_not_followed(
    transport_factory: TransportFactory, mode: str, status: str
) -> None:
    """A 3xx answer is the response (its Location readable); the server it points at gets no
    connection at all, so the key never leaves the configured origin."""
    async with raw_upstream(in_turn(reply(b"stolen"))) as elsewhere:
        moved = reply(b"", status=status, headers=f"Location: {elsewhere.url('/stolen')}\r\n")
        async with raw_upstream(in_turn(moved)) as up, opened(transport_factory) as t:
            r = await answer(t, req(up.url(), "POST", b"{}"), mode)
            assert r.status == int(status.split()[0])
            assert r.headers.get("location") == elsewhere.url("/stolen")
        assert elsewhere.accepts == 0
