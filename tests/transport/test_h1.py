"""The sans-IO HTTP/1.1 parser and request head of the native transport (``transport/h1.py``).

Every framing is fed whole and split at arbitrary points (hypothesis): the answer must not depend
on how the network cut the bytes. Malformed answers are ``ProtocolError``; bodies past the limit
``BodyTooLarge``; nothing holds more than the head limit while waiting for a head's end.
"""

from __future__ import annotations

import gzip
import zlib

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from llmrelay.errors import ConfigurationError
from llmrelay.transport.h1 import (
    MAX_HEAD,
    BodyTooLarge,
    ProtocolError,
    ResponseParser,
    request_head,
    split_url,
)

BODY = b'{"id":"chatcmpl-1","choices":[{"message":{"content":"hi"}}]}'


def feed_all(parser: ResponseParser, data: bytes, cuts: list[int], eof: bool = False) -> None:
    last = 0
    for cut in sorted({c % (len(data) + 1) for c in cuts}):
        parser.feed(data[last:cut])
        last = cut
    parser.feed(data[last:])
    if eof:
        parser.feed_eof()


def chunked(body: bytes, size: int, ext: bytes = b"", trailers: bytes = b"") -> bytes:
    out = b""
    for i in range(0, len(body), size):
        piece = body[i : i + size]
        out += b"%X%s\r\n%s\r\n" % (len(piece), ext, piece)
    return out + b"0\r\n" + trailers + b"\r\n"


FRAMINGS = {
    "length": (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        % len(BODY)
        + BODY,
        True,
    ),
    "chunked": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunked(BODY, 7, b";name=value", b"X-Trailer: 1\r\n"),
        True,
    ),
    # Plain size lines, several chunks per read: the whole-chunk path and its size cache.
    "chunked-plain": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(BODY, 5),
        True,
    ),
    "interim-then-length": (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY)
        + BODY,
        True,
    ),
    "close-delimited": (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + BODY, False),
    "http10": (b"HTTP/1.0 200 OK\r\n\r\n" + BODY, False),
}


@pytest.mark.parametrize("name", list(FRAMINGS))
@given(cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_any_split_gives_the_same_answer(name: str, cuts: list[int]) -> None:
    data, keep_alive = FRAMINGS[name]
    parser = ResponseParser(1 << 20)
    feed_all(parser, data, cuts, eof=not keep_alive)
    assert parser.done
    assert parser.head_done
    assert parser.status == 200
    assert b"".join(parser.body) == BODY
    assert parser.keep_alive is keep_alive


def test_headers_are_case_insensitive_and_repeats_kept() -> None:
    parser = ResponseParser()
    parser.feed(
        b"HTTP/1.1 429 Too Many\r\nRetry-After: 3\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\n"
        b"X-Name: caf\xe9\r\nContent-Length: 0\r\n\r\n"
    )
    assert parser.done
    assert parser.status == 429
    assert parser.headers.get("retry-after") == "3" == parser.headers["RETRY-AFTER"]
    assert parser.headers.getall("set-cookie") == ["a=1", "b=2"]
    assert parser.headers["x-name"] == "caf\xe9"  # latin-1, not an error


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses(status: int) -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 %d X\r\nContent-Length: 10\r\n\r\n" % status)
    assert parser.done
    assert parser.keep_alive
    assert not parser.body


def test_head_request_has_no_body() -> None:
    parser = ResponseParser(expect_body=False)
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
    assert parser.done
    assert parser.keep_alive


def test_bytes_after_the_answer_forbid_reuse() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n")
    assert parser.done
    assert b"".join(parser.body) == b"ok"
    assert not parser.keep_alive


def test_both_framings_chunked_wins_and_the_connection_is_not_reused() -> None:
    parser = ResponseParser()
    parser.feed(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunked(b"hello", 2)
    )
    assert parser.done
    assert b"".join(parser.body) == b"hello"
    assert not parser.keep_alive


@pytest.mark.parametrize(
    "data",
    [
        b"FOO\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.1 099 Low\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1_0\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\rX0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\nX0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\nok\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n+2\r\nok\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-2\r\nok\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 1\r\n\r\nx",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nnope",
    ],
)
def test_malformed_answers_are_protocol_errors(data: bytes) -> None:
    parser = ResponseParser()
    with pytest.raises(ProtocolError):
        parser.feed(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"HTTP/1.1 200 OK\r\nCont",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
    ],
)
def test_an_early_end_is_a_protocol_error(data: bytes) -> None:
    parser = ResponseParser()
    parser.feed(data)
    with pytest.raises(ProtocolError):
        parser.feed_eof()


def test_a_head_without_end_is_refused_at_the_limit() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\n")
    line = b"X-A: " + b"a" * 995 + b"\r\n"
    for _ in range(MAX_HEAD // 1000 - 1):
        parser.feed(line)  # under the limit: held
    with pytest.raises(ProtocolError, match="head is over"):
        parser.feed(line * 3)


def test_a_head_fed_a_byte_at_a_time_is_not_rescanned() -> None:
    data = FRAMINGS["chunked"][0]
    parser = ResponseParser()
    for i in range(len(data)):
        parser.feed(data[i : i + 1])
    assert parser.done
    assert b"".join(parser.body) == BODY


def test_content_length_over_the_limit_is_refused_before_the_body() -> None:
    parser = ResponseParser(100)
    with pytest.raises(BodyTooLarge):
        parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n")


def test_chunked_body_over_the_limit() -> None:
    parser = ResponseParser(100)
    parser.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    with pytest.raises(BodyTooLarge):
        parser.feed(chunked(b"x" * 101, 50))


@pytest.mark.parametrize("coding", ["gzip", "deflate-zlib", "deflate-raw"])
def test_compressed_bodies_are_decoded(coding: str) -> None:
    if coding == "gzip":
        packed, name = gzip.compress(BODY), b"gzip"
    elif coding == "deflate-zlib":
        packed, name = zlib.compress(BODY), b"deflate"
    else:
        c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        packed, name = c.compress(BODY) + c.flush(), b"deflate"
    parser = ResponseParser(1000)
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nContent-Length: %d\r\n\r\n"
    parser.feed(head % (name, len(packed)) + packed)
    assert parser.done
    assert b"".join(parser.body) == BODY


def test_a_compression_bomb_stops_at_the_limit_without_expanding_it_all() -> None:
    bomb = gzip.compress(bytes(50 * 1024 * 1024))
    parser = ResponseParser(1024 * 1024)
    parser.feed(
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(bomb)
    )
    with pytest.raises(BodyTooLarge):
        parser.feed(bomb)
    assert parser.received <= 1024 * 1024
    # A stream has no whole-body limit, but one read may not expand past its cap.
    stream = ResponseParser(stream_cap=1024 * 1024)
    stream.feed(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n")
    with pytest.raises(BodyTooLarge):
        stream.feed(chunked(bomb, len(bomb)))


# -- requests ----------------------------------------------------------------------------------


def test_request_head_adds_host_and_defaults_and_drops_framing() -> None:
    target = split_url("http://example.com:8080/v1/chat/completions?key=abc")
    head = request_head(
        "POST",
        target,
        {"Authorization": "Bearer k", "Content-Length": "999", "Host": "evil", "Accept": "x"},
        True,
    ).decode()
    lines = head.split("\r\n")
    assert lines[0] == "POST /v1/chat/completions?key=abc HTTP/1.1"
    assert lines[1] == "Host: example.com:8080"
    assert "Authorization: Bearer k" in lines
    assert "Accept: x" in lines
    assert "accept-encoding: gzip, deflate" in lines
    assert "Content-Type: application/octet-stream" in lines
    assert not any(x.lower().startswith(("content-length", "host: evil")) for x in lines)
    assert target.where == "http://example.com:8080/v1/chat/completions"  # no query


@pytest.mark.parametrize("value", ["sk-key\n", "sk\r\nX-Injected: 1", "a\x00b"])
def test_header_values_that_would_break_the_head_are_refused_without_echo(value: str) -> None:
    with pytest.raises(ValueError) as info:
        request_head("POST", split_url("http://h/"), {"authorization": value}, True)
    assert value.strip() not in str(info.value)


@pytest.mark.parametrize(
    ("url", "host", "port", "target", "host_header"),
    [
        ("https://api.openai.com/v1/x", "api.openai.com", 443, "/v1/x", "api.openai.com"),
        ("http://[::1]:9000/a b", "::1", 9000, "/a%20b", "[::1]:9000"),
        ("http://bücher.example/", "xn--bcher-kva.example", 80, "/", "xn--bcher-kva.example"),
        ("HTTP://H:80", "h", 80, "/", "h"),
        ("http://h/m/gemini:generate?key=a b", "h", 80, "/m/gemini:generate?key=a%20b", "h"),
    ],
)
def test_split_url(url: str, host: str, port: int, target: str, host_header: str) -> None:
    t = split_url(url)
    assert (t.host, t.port, t.target, t.host_header) == (host, port, target, host_header)


@pytest.mark.parametrize(
    "url", ["ftp://h/x", "http://", "http://h:99999/", "http://h:x/", "unix:///tmp/s", "h/x?key=s"]
)
def test_unusable_urls_are_configuration_errors_without_the_query(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        split_url(url + "?key=secret-q")
    assert "secret-q" not in str(info.value)


def test_a_size_line_seen_before_does_not_make_a_malformed_one_pass() -> None:
    # The parser keeps the values of size lines it has read: only exact hexadecimal lines.
    ok = ResponseParser()
    ok.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
    assert b"".join(ok.body) == b"ok"
    for line in (b"0x2", b"2 x", b"\xd9\xa2"):
        parser = ResponseParser()
        with pytest.raises(ProtocolError):
            parser.feed(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                + line
                + b"\r\nok\r\n0\r\n\r\n"
            )


def _reference_chunked(data: bytes) -> tuple[bytes, bool, bool] | None:
    """RFC 9112 §7.1 read plainly, one chunk at a time (extensions after ``;`` ignored):
    (body, complete, bytes after the end) or None when malformed."""
    body, pos = b"", 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return body, False, False
        line = data[pos:eol].split(b";", 1)[0]
        if not line or len(line) > 15 or any(c not in b"0123456789abcdefABCDEF" for c in line):
            return None
        size, pos = int(line, 16), eol + 2
        if size == 0:
            while True:  # trailer lines up to an empty one
                eol = data.find(b"\r\n", pos)
                if eol < 0:
                    return body, False, False
                if eol == pos:
                    return body, True, eol + 2 < len(data)
                pos = eol + 2
        if len(data) < pos + size + 2:
            return body + data[pos : pos + size], False, False
        if data[pos + size : pos + size + 2] != b"\r\n":
            return None
        body += data[pos : pos + size]
        pos += size + 2


_PIECE = st.binary(max_size=40) | st.sampled_from([b"\r\n", b"a\r\nb", b"\r", b"\n", b"0\r\n"])


@given(
    pieces=st.lists(_PIECE.filter(bool), max_size=8),
    trailers=st.just(b"") | st.just(b"X-T: 1\r\n"),
    end=st.booleans(),
    after=st.just(b"") | st.sampled_from([b"5\r\nhello\r\n", b"0\r\n\r\n", b"x"]),
    spoil=st.none() | st.sampled_from([b"3\r\n", b"zz\r\n", b"\r\n", b"1;x\r\n", b"0\r\n\r\n"]),
    where=st.integers(min_value=0, max_value=8),
)
@example(pieces=[b"a", b"bc"], trailers=b"", end=True, after=b"", spoil=None, where=0)
@example(pieces=[b"a"], trailers=b"", end=True, after=b"5\r\nhello\r\n", spoil=None, where=0)
@example(pieces=[b"a", b"b"], trailers=b"", end=False, after=b"", spoil=b"0\r\n\r\n", where=1)
@example(pieces=[b"a"], trailers=b"", end=True, after=b"x", spoil=None, where=0)
@example(
    pieces=[b"x", b"1\r\n1", b"1\r\n1"], trailers=b"", end=False, after=b"", spoil=None, where=0
)
def test_chunks_read_in_one_piece_match_a_plain_reading(
    pieces: list[bytes],
    trailers: bytes,
    end: bool,
    after: bytes,
    spoil: bytes | None,
    where: int,
) -> None:
    # Many chunks in one read: the parser reads exactly what a plain chunk-at-a-time reading
    # does, whatever the data holds (CRLF, a lone CR or LF, what looks like a size line), with
    # a wrong size, a malformed line, trailers, an early last chunk or bytes after the end.
    # The body is read twice: the second time, the parser knows the size lines (its cache).
    chunks = [b"%x\r\n%s\r\n" % (len(p), p) for p in pieces]
    if spoil is not None:
        chunks.insert(where % (len(chunks) + 1), spoil)
    data = b"".join(chunks) + ((b"0\r\n" + trailers + b"\r\n" + after) if end else b"")
    want = _reference_chunked(data)
    for _ in range(2):
        parser = ResponseParser(1 << 20)
        parser.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        if want is None:
            with pytest.raises(ProtocolError):
                parser.feed(data)
            continue
        body, complete, extra = want
        parser.feed(data)
        assert b"".join(parser.body) == body
        assert parser.done is complete
        if complete:
            assert parser.keep_alive is not extra
