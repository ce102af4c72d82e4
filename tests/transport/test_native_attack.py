"""Attacks on the native transport's HTTP/1.1 layer (``transport/h1.py``) that found real faults:
the request line, interim answers and compressed bodies. Each test names the promise it checks;
a request-side promise runs over every transport of ``conftest.TRANSPORTS`` (aiohttp is the
reference), a parser-only one on :class:`ResponseParser` alone.
"""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmrelay.errors import ConfigurationError
from llmrelay.transport import HttpRequest
from llmrelay.transport.h1 import MAX_HEAD, ProtocolError, ResponseParser

from .conftest import SAFETY, TransportFactory, answer, opened, raises, xfail_case
from .raw_upstream import SECRET_KEY, in_turn, raw_upstream, reply

# --------------------------------------------------------------------------- request head


METHODS = {
    "request-line-injection": "GET / HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET",
    "space": "GET /x",
    "nul": "PO\x00ST",
    "non-ascii": "GÉT",
    "empty": "",
}


@pytest.mark.parametrize("case", list(METHODS))
async def test_a_method_that_is_not_a_token_is_a_configuration_error(
    transport_factory: TransportFactory, case: str, request: pytest.FixtureRequest
) -> None:
    """The method goes into the request line as it is: one with a space, CR/LF or NUL would
    inject a request line or headers. It is refused before anything is sent."""
    xfail_case(request, case, {("aiohttp", "empty"): "aiohttp sends an empty method"})
    method = METHODS[case]
    async with raw_upstream(in_turn(reply(b"ok"))) as up, opened(transport_factory) as t:
        bad = HttpRequest(method, up.url(), {"authorization": "Bearer sk-secret-XYZ"})
        await raises(ConfigurationError, t.send(bad, SAFETY))
        assert up.accepts == 0 or all(not c.received for c in up.conns)


def test_a_switching_protocols_answer_is_never_pooled() -> None:
    """After ``101`` the connection speaks another protocol: it is not kept alive for HTTP."""
    parser = ResponseParser(1000)
    parser.feed(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n")
    assert parser.done
    assert not parser.keep_alive


# --------------------------------------------------------------------------- decoding


def _head(coding: bytes, length: int) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nContent-Length: %d\r\n\r\n" % (
        coding,
        length,
    )


@given(st.lists(st.integers(min_value=0, max_value=200), max_size=8), st.booleans())
def test_a_deflate_body_decodes_however_the_network_splits_it(cuts: list[int], raw: bool) -> None:
    """Which deflate flavour a body is (zlib-wrapped or raw) is told by its first two bytes:
    a first piece of one byte (a 1-byte chunk, a split read) must not make it corrupt."""
    data = b'{"choices":[{"text":"' + b"hello " * 30 + b'"}]}'
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
    body = packer.compress(data) + packer.flush()
    wire = _head(b"deflate", len(body)) + body
    start = len(wire) - len(body)
    parser = ResponseParser(10_000)
    parser.feed(wire[: start + 1])  # the body's first byte alone
    last = start + 1
    for cut in sorted({start + 1 + c % len(body) for c in cuts}):
        parser.feed(wire[last:cut])
        last = cut
    parser.feed(wire[last:])
    assert parser.done
    assert b"".join(parser.body) == data


@pytest.mark.parametrize("coding", [b"gzip", b"deflate"])
def test_a_compressed_body_cut_short_is_a_protocol_error(coding: bytes) -> None:
    """A compressed body whose framing is complete but whose compressed stream is not (the
    gzip trailer or the last deflate block missing) has lost data: ProtocolError, never a
    silently shortened answer."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31 if coding == b"gzip" else zlib.MAX_WBITS)
    body = (packer.compress(b"abc" * 1000) + packer.flush())[:-10]
    parser = ResponseParser(100_000)
    with pytest.raises(ProtocolError, match="incomplete"):
        parser.feed(_head(coding, len(body)) + body)


@pytest.mark.parametrize("coding", [b"gzip", b"deflate"])
def test_an_empty_body_labelled_compressed_is_empty(coding: bytes) -> None:
    """``Content-Length: 0`` with a Content-Encoding is an empty answer, not a broken one."""
    parser = ResponseParser(1000)
    parser.feed(_head(coding, 0))
    assert parser.done
    assert b"".join(parser.body) == b""


# --------------------------------------------------------------------------- secrets

#: Headers a caller may get wrong, each with the key where a careless error text would show it.
_SECRET_HEADERS = {
    # A lone surrogate cannot be encoded: the encoder's error holds the whole head, key included.
    "surrogate-in-the-key": {"authorization": f"Bearer {SECRET_KEY}\ud800"},
    "surrogate-in-another-header": {"authorization": f"Bearer {SECRET_KEY}", "x-a": "a\udcffb"},
    # A whole header line passed as a name: the part after the colon is the key.
    "header-line-as-name": {f"Authorization: Bearer {SECRET_KEY}": ""},
    "key-as-name": {f"{SECRET_KEY} x": "v"},
}


@pytest.mark.parametrize("case", list(_SECRET_HEADERS))
@pytest.mark.parametrize("mode", ["send", "aread"])
async def test_a_header_that_cannot_be_written_is_refused_without_showing_the_key(
    transport_factory: TransportFactory, case: str, mode: str, request: pytest.FixtureRequest
) -> None:
    """A header value that is not encodable text (a lone surrogate) or a name that is not a
    token is a ConfigurationError naming the header, nothing is sent, and no exception of the
    chain (``__context__`` included) shows the key or the query."""
    xfail_case(
        request,
        case,
        {("aiohttp", c): "aiohttp sends it as given" for c in _SECRET_HEADERS},
    )
    async with raw_upstream(in_turn(reply(b"sent"))) as up, opened(transport_factory) as t:
        bad = HttpRequest("POST", up.url(), _SECRET_HEADERS[case], b"{}")
        await raises(ConfigurationError, answer(t, bad, mode))
        assert not any(c.received for c in up.conns), "the request was sent"


# --------------------------------------------------------------------------- bounded memory


def test_tiny_chunks_do_not_multiply_the_memory_a_body_holds() -> None:
    """A body sent as 2-byte chunks must not become one object per chunk: each bytes object
    costs ~35 bytes of overhead, so 32 MiB (the default limit) of 2-byte chunks held ~20x the
    limit in memory. What one read brings is handed on as one piece."""
    parser = ResponseParser(10_000_000)
    parser.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(10):
        parser.feed(b"2\r\nab\r\n" * 5000)
    parser.feed(b"0\r\n\r\n")
    assert parser.done
    assert parser.buffered == 100_000
    assert len(parser.body) <= 11


@pytest.mark.parametrize("split", [False, True])
def test_the_trailers_are_capped_as_a_whole(split: bool) -> None:
    """Trailers are skipped, but only up to the head limit in all (as the head itself): a
    server must not keep the client parsing an endless trailer section line by line."""
    parser = ResponseParser(1000)
    parser.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n")
    line = b"X-T: " + b"v" * 1000 + b"\r\n"
    pieces = [line[:500], line[500:]] if split else [line]

    def feed_trailers() -> None:
        for _ in range(MAX_HEAD // len(line) + 2):
            for piece in pieces:
                parser.feed(piece)

    with pytest.raises(ProtocolError, match="trailers"):
        feed_trailers()


def test_trailers_within_the_limit_are_read_past() -> None:
    """Many short trailer lines under the limit are fine (the cap is on bytes, not lines)."""
    parser = ResponseParser(1000)
    parser.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n")
    parser.feed(b"T: v\r\n" * 1000 + b"\r\n")
    assert parser.done
    assert b"".join(parser.body) == b"a"
