"""HTTP/1.1, sans-IO: the request head a client writes and a parser for the response it reads.

Only what an HTTP client of JSON APIs needs, strictly: a status line, header lines ended by CRLF,
then a body framed by ``Content-Length``, ``Transfer-Encoding: chunked`` or the end of the
connection; interim ``1xx`` answers are skipped; gzip and deflate bodies are decoded. Anything
else (a malformed status line or header, obsolete line folding, a bad chunk size, a head over
64 KiB) is :class:`ProtocolError`, whose text never quotes the peer's bytes at length.

:class:`ResponseParser` is fed whatever arrives (``feed``, then ``feed_eof``) and fills
``body`` with decoded pieces. ``limit`` caps the decoded body: past it :class:`BodyTooLarge`.
Without a limit (a stream), ``stream_cap`` caps what one read may expand to when compressed.
``native.py`` drives it over asyncio; the tests drive it with arbitrary splits of the same bytes.
"""

from __future__ import annotations

import re
import zlib
from base64 import b64encode
from collections import deque
from urllib.parse import quote, unquote, urlsplit

from multidict import CIMultiDict, CIMultiDictProxy

from ..errors import ConfigurationError
from .base import shown_url

__all__ = [
    "MAX_HEAD",
    "BodyTooLarge",
    "ProtocolError",
    "ResponseParser",
    "Target",
    "request_head",
    "split_url",
]

#: The most a response head (status line and headers, or trailers) may hold.
MAX_HEAD = 64 * 1024
#: The most one network read may expand to, by default, when a streamed body is compressed (a
#: bound on what a compression bomb can make the parser hold before anybody reads it).
STREAM_EXPANSION = 8 * 1024 * 1024

_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILERS, _TO_CLOSE, _DONE = range(8)
_VERSION = b"HTTP/1."
_HEX = re.compile(rb"[0-9A-Fa-f]{1,15}")
#: Chunk size lines seen (hexadecimal digits alone) and their values: a stream's chunks are
#: mostly of a few sizes. Bounded: a hostile upstream cannot grow it past ``_SIZES_MAX``.
_SIZES: dict[bytes, int] = {}
_SIZES_MAX = 4096


def _chunk_size(line: bytes) -> int:
    """The size a chunk size line gives (extensions after ``;`` ignored), or ProtocolError."""
    size = line.split(b";", 1)[0].strip(b" \t")
    if not _HEX.fullmatch(size):
        raise ProtocolError("a chunk size is not a hexadecimal number")
    value = int(size, 16)
    if size == line and len(_SIZES) < _SIZES_MAX:  # nothing stripped: the line is the number
        _SIZES[line] = value
    return value


_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_DIGITS = re.compile(r"[0-9]{1,18}")


class ProtocolError(Exception):
    """The peer's bytes are not a valid HTTP/1.1 response (the text says what, not the bytes)."""


class BodyTooLarge(Exception):
    """The decoded body passed the parser's ``limit``."""


class ResponseParser:
    """One response, fed in pieces. ``head_done`` once the final head is read (``status``,
    ``headers``); ``done`` once the body is complete; ``keep_alive`` whether the connection may
    carry another request afterwards. Decoded body pieces collect in ``body``, ``buffered``
    counts the bytes in it and ``received`` all decoded bytes so far."""

    __slots__ = (
        "_buf",
        "_compressed",
        "_decoder",
        "_expect_body",
        "_remaining",
        "_scanned",
        "_state",
        "body",
        "buffered",
        "done",
        "head_done",
        "headers",
        "keep_alive",
        "limit",
        "received",
        "status",
        "stream_cap",
    )

    def __init__(
        self,
        limit: int | None = None,
        *,
        expect_body: bool = True,
        stream_cap: int = STREAM_EXPANSION,
    ) -> None:
        self._buf = b""
        self._state = _HEAD
        self._remaining = 0
        self._scanned = 0
        self._decoder: zlib._Decompress | None = None
        self._compressed = False  # compressed body bytes were fed to the decoder
        self._expect_body = expect_body
        self.limit = limit
        self.stream_cap = stream_cap
        self.status = 0
        self.headers: CIMultiDictProxy[str] = _EMPTY
        self.head_done = False
        self.done = False
        self.keep_alive = False
        self.body: deque[bytes] = deque()
        self.buffered = 0
        self.received = 0

    def feed(self, data: bytes) -> None:
        """Take the next bytes read from the connection."""
        if not data:
            return
        if self._state == _HEAD:
            buf = self._buf + data if self._buf else data
            while True:
                end = buf.find(b"\r\n\r\n", self._scanned)
                if end < 0:
                    if len(buf) > MAX_HEAD:
                        raise ProtocolError(f"the response head is over {MAX_HEAD} bytes")
                    if not _VERSION.startswith(buf[:7]):  # not HTTP: no need to wait for more
                        raise ProtocolError("the answer does not start with an HTTP status line")
                    self._buf = buf
                    self._scanned = max(0, len(buf) - 3)
                    return
                if end > MAX_HEAD:
                    raise ProtocolError(f"the response head is over {MAX_HEAD} bytes")
                self._scanned = 0
                self._parse_head(buf[:end])
                buf = buf[end + 4 :]
                if self._state != _HEAD:  # a final answer (not an interim 1xx)
                    break
            self._buf = b""
            if not buf:
                return
            data = buf
        state = self._state
        if state == _LENGTH:
            n = self._remaining
            if len(data) < n:
                self._remaining = n - len(data)
                self._emit(data)
                return
            if len(data) > n:  # bytes after the answer: the connection is out of step
                self.keep_alive = False
                data = data[:n]
            self._emit(data)
            self._finish()
        elif state == _TO_CLOSE:
            self._emit(data)
        elif state == _DONE:
            self.keep_alive = False
        else:
            self._chunked(self._buf + data if self._buf else data)

    def feed_eof(self) -> None:
        """The peer closed its side: a body read to the end of the connection is complete; any
        other unfinished answer is cut short."""
        if self._state == _TO_CLOSE:
            self._finish()
            return
        if self.done:
            return
        if not self.head_done:
            if self._buf:
                raise ProtocolError("the connection closed in the middle of the response head")
            raise ProtocolError("the connection closed before any response")
        raise ProtocolError("the connection closed before the response body was complete")

    # -- internals ---------------------------------------------------------------------------

    def _parse_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        # Every CR before an LF and every LF after a CR (split took those), no NUL.
        crlf = len(lines) - 1
        if head.count(b"\r") != crlf or head.count(b"\n") != crlf or head.find(b"\0") >= 0:
            raise ProtocolError("a response header holds a bare CR, LF or NUL")
        parts = lines[0].split(b" ", 2)
        version = parts[0]
        if len(parts) < 2 or version not in (b"HTTP/1.1", b"HTTP/1.0"):
            raise ProtocolError("the status line is not HTTP/1.1")
        code = parts[1]
        if len(code) != 3 or not code.isdigit():
            raise ProtocolError("the status code is not three digits")
        status = int(code)
        if status < 100:
            raise ProtocolError(f"the status code {status} is not valid")
        pairs: list[tuple[str, str]] = []
        length: str | None = None
        chunked = False
        coding = ""
        close = version == b"HTTP/1.0"
        names = _NAMES
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise ProtocolError("a response header line is malformed")
            kind = names.get(name)
            if kind is None:
                kind = _header_kind(name)
            value = value.strip(" \t")
            if kind:
                if kind == _CONTENT_LENGTH:
                    if not _DIGITS.fullmatch(value) or (length is not None and length != value):
                        raise ProtocolError("the Content-Length header is not a single number")
                    length = value
                elif kind == _TRANSFER_ENCODING:
                    chunked = value.lower().rsplit(",", 1)[-1].strip() == "chunked"
                    if not chunked:
                        close = True  # a body framed by the connection's end
                elif kind == _CONNECTION:
                    tokens = value.lower()
                    if "close" in tokens:
                        close = True
                    elif "keep-alive" in tokens and version == b"HTTP/1.0":
                        close = False
                else:
                    coding = value.lower()
            pairs.append((name, value))
        if status < 200 and status != 101:
            return  # interim answer: the final one follows
        self.status = status
        self.headers = CIMultiDictProxy(CIMultiDict(pairs))
        self.head_done = True
        if coding and coding != "identity":
            self._decoder = _decoder(coding)
        if not self._expect_body or status in (204, 304) or status < 200:
            self.keep_alive = not close and status != 101  # after 101 it is not HTTP any more
            self._finish()
            return
        if chunked:
            self.keep_alive = not close and length is None  # both framings: do not reuse
            self._state = _CHUNK_SIZE
        elif length is not None:
            n = int(length)
            if self.limit is not None and n > self.limit and self._decoder is None:
                raise BodyTooLarge
            self.keep_alive = not close
            self._remaining = n
            self._state = _LENGTH
            if n == 0:
                self._finish()
        else:
            self.keep_alive = False
            self._state = _TO_CLOSE

    def _chunked(self, buf: bytes) -> None:
        # The data of all chunks in ``buf`` is handed on as one piece (``_emit`` once): tiny
        # chunks must not become one object each (~35 bytes of overhead per object).
        out: list[bytes] = []
        try:
            pos = self._chunks(buf, out)
        except ProtocolError:
            self._emit(b"".join(out))  # what came before the fault is still delivered
            raise
        self._buf = buf[pos:] if pos < len(buf) else b""
        self._emit(out[0] if len(out) == 1 else b"".join(out))
        if self._state == _DONE and not self.done:
            self._finish()

    def _chunks(self, buf: bytes, out: list[bytes]) -> int:
        """Walk ``buf``: chunk data goes to ``out``; the position reached is returned."""
        pos = 0
        n = len(buf)
        state = self._state
        while pos < n:
            if state == _CHUNK_DATA:
                take = self._remaining
                if n - pos < take:
                    take = n - pos
                out.append(buf[pos : pos + take])
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    state = _CHUNK_END
            elif state == _CHUNK_SIZE:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    if n - pos > 4096:
                        raise ProtocolError("a chunk size line is over 4096 bytes")
                    break
                line = buf[pos:eol]
                size = _SIZES.get(line)
                if size is None:
                    size = _chunk_size(line)
                pos = eol + 2
                end = pos + size
                if size and end + 2 <= n and buf[end] == 13 and buf[end + 1] == 10:
                    # The whole chunk and its CRLF are here (the common case): taken at once.
                    out.append(buf[pos:end])
                    pos = end + 2
                    continue
                self._remaining = size  # the last chunk: trailer bytes count from 0
                state = _CHUNK_DATA if size else _TRAILERS
            elif state == _CHUNK_END:
                if n - pos < 2:
                    break
                if buf[pos : pos + 2] != b"\r\n":
                    raise ProtocolError("a chunk does not end with CRLF")
                pos += 2
                state = _CHUNK_SIZE
            elif state == _TRAILERS:
                eol = buf.find(b"\r\n", pos)
                if (eol - pos if eol >= 0 else n - pos) + self._remaining > MAX_HEAD:
                    raise ProtocolError(f"the trailers are over {MAX_HEAD} bytes")
                if eol < 0:
                    break
                if eol == pos:
                    pos += 2
                    state = _DONE
                else:
                    self._remaining += eol + 2 - pos
                    pos = eol + 2
            else:  # _DONE: bytes after the answer
                self.keep_alive = False
                break
        self._state = state
        return pos

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        decoder = self._decoder
        if decoder is not None:
            self._compressed = True
            limit = self.limit
            room = (self.stream_cap if limit is None else limit - self.received) + 1
            try:
                data = decoder.decompress(data, room)
                # Bytes after the end of one compressed stream start another (a server may
                # compress each flush apart; aiohttp decodes them all): anything else there
                # fails as corrupt, never dropped unread.
                while decoder.eof and decoder.unused_data and len(data) < room:
                    rest = decoder.unused_data
                    decoder = self._decoder = _next_member(decoder)
                    data += decoder.decompress(rest, room - len(data))
            except zlib.error:
                raise ProtocolError("the compressed response body is corrupt") from None
            if len(data) >= room:
                raise BodyTooLarge
            if not data:
                return
        self.received += len(data)
        if self.limit is not None and self.received > self.limit:
            raise BodyTooLarge
        self.body.append(data)
        self.buffered += len(data)

    def _finish(self) -> None:
        self._state = _DONE
        self.done = True
        decoder = self._decoder
        if decoder is not None and self._compressed and not decoder.eof:
            # Bytes were fed but the compressed stream never ended (its last block or the gzip
            # trailer is missing): data was lost, the answer is not complete.
            raise ProtocolError("the compressed response body is incomplete")


_EMPTY: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())

_CONTENT_LENGTH, _TRANSFER_ENCODING, _CONNECTION, _CONTENT_ENCODING = 1, 2, 3, 4
_KINDS = {
    "content-length": _CONTENT_LENGTH,
    "transfer-encoding": _TRANSFER_ENCODING,
    "connection": _CONNECTION,
    "content-encoding": _CONTENT_ENCODING,
}
#: Header names seen, as they were spelled, and what the parser does with each (0: nothing).
#: Servers send the same few dozen names; each is checked once. Bounded.
_NAMES: dict[str, int] = {}
_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _header_kind(name: str) -> int:
    """A header name checked (an HTTP token) and classified, remembered for the next answer."""
    if not _NAME.fullmatch(name):
        raise ProtocolError("a response header line is malformed")
    kind = _KINDS.get(name.lower(), 0)
    if len(_NAMES) < 4096:
        _NAMES[name] = kind
    return kind


def _decoder(coding: str) -> zlib._Decompress:
    if coding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if coding == "deflate":
        return _Deflate()  # type: ignore[return-value]
    raise ProtocolError(
        f"the response body is encoded as {coding[:20]!r}, which this client "
        "does not decode (it asks for gzip or deflate)"
    )


def _next_member(decoder: object) -> zlib._Decompress:
    """A decoder for the compressed stream that follows the one ``decoder`` has ended."""
    if isinstance(decoder, _Deflate):  # (typed as zlib's, so ``object`` here: see _decoder)
        return _Deflate(decoder.wbits)  # type: ignore[return-value]
    return zlib.decompressobj(16 + zlib.MAX_WBITS)


class _Deflate:
    """``deflate`` as servers send it: zlib-wrapped (the standard) or raw (common in practice);
    which one is told by the first two bytes (or by ``wbits``, for a stream after the first)."""

    __slots__ = ("_first", "_inner", "wbits")

    def __init__(self, wbits: int = 0) -> None:
        self.wbits = wbits
        self._inner: zlib._Decompress | None = zlib.decompressobj(wbits) if wbits else None
        self._first = b""

    def decompress(self, data: bytes, max_length: int = 0) -> bytes:
        inner = self._inner
        if inner is None:
            data = self._first + data
            if len(data) < 2:  # the flavour is told by two bytes: wait for the second
                self._first = data
                return b""
            wrapped = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self.wbits = zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS
            inner = self._inner = zlib.decompressobj(self.wbits)
        return inner.decompress(data, max_length)

    @property
    def eof(self) -> bool:
        return not self._first if self._inner is None else self._inner.eof

    @property
    def unused_data(self) -> bytes:
        return b"" if self._inner is None else self._inner.unused_data


# -- requests ----------------------------------------------------------------------------------


class Target:
    """Where a URL's request goes: the origin (``scheme``, ``host``, ``port``), the bytes of the
    request line's target and the ``Host`` header."""

    __slots__ = ("auth", "host", "host_header", "origin", "port", "ssl", "target", "where")

    def __init__(
        self,
        scheme: str,
        host: str,
        port: int,
        target: str,
        host_header: str,
        auth: str | None = None,
    ) -> None:
        #: ``Authorization`` value from the URL's ``user:password@``, if any (never shown).
        self.auth = auth
        self.ssl = scheme == "https"
        self.host = host
        self.port = port
        self.origin = (scheme, host, port)
        self.target = target
        self.host_header = host_header
        self.where = f"{scheme}://{host_header}{target.split('?', 1)[0]}"


_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
_QUERY_SAFE = _PATH_SAFE + "?"


def split_url(url: str) -> Target:
    """The parts of an ``http://`` or ``https://`` URL a request needs; ``ConfigurationError``
    for anything else. The text of errors leaves out the query (it may hold a key)."""
    where = shown_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname
    except ValueError:
        raise ConfigurationError(
            f"invalid base URL {where!r}. Check the base_url setting"
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ConfigurationError(
            f"invalid base URL {where!r}: only http:// and https:// URLs are supported. "
            "Check the base_url setting"
        )
    if not host or any(c in host for c in " \t\r\n\x00/\\"):
        raise ConfigurationError(f"invalid base URL {where!r}. Check the base_url setting")
    if ":" in host:  # an IPv6 literal (zone ids are not sent in Host)
        host_header = f"[{host.split('%', 1)[0]}]"
    else:
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise ConfigurationError(
                f"invalid base URL {where!r}: the host name is not valid. Check the base_url "
                "setting"
            ) from None
        host_header = host
    default = 443 if scheme == "https" else 80
    if port is None:
        port = default
    elif port != default:
        host_header = f"{host_header}:{port}"
    target = quote(parts.path or "/", safe=_PATH_SAFE)
    if parts.query:
        target = f"{target}?{quote(parts.query, safe=_QUERY_SAFE)}"
    auth = None
    if parts.username is not None or parts.password is not None:  # as aiohttp: Basic auth
        pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
        auth = "Basic " + b64encode(pair.encode("utf-8")).decode("ascii")
    return Target(scheme, host, port, target, host_header, auth)


#: Headers a client adds when the caller did not: what aiohttp sends (User-Agent left out).
_DEFAULTS = (("accept", "*/*"), ("accept-encoding", "gzip, deflate"))


def request_head(method: str, target: Target, headers: dict[str, str], has_body: bool) -> bytes:
    """The request line and headers, without ``Content-Length`` and the final CRLF (added per
    request); ``ValueError`` for a header name or value that would break the head (a newline,
    a carriage return or a NUL: the usual cause is a key read with its trailing newline). The
    error never holds the value. A method that is not a token (a space, a line break: it would
    rewrite the request line) is a ``ValueError`` too."""
    if not _TOKEN.fullmatch(method.encode("utf-8", "replace")):
        raise ValueError(f"the method {method[:20]!r} is not a valid HTTP token")
    lines = [f"{method} {target.target} HTTP/1.1", f"Host: {target.host_header}"]
    seen = {"host", "content-length"}
    for name, value in headers.items():
        low = name.lower()
        if low in ("host", "content-length", "transfer-encoding", "connection"):
            continue  # framing and origin are the transport's, never the caller's
        if not _TOKEN.fullmatch(name.encode("utf-8", "replace")):
            raise ValueError(f"the header name {_name(name)} is not a valid HTTP token")
        if "\r" in value or "\n" in value or "\x00" in value:
            raise ValueError(f"the value of the {_name(name)} header holds a newline or NUL")
        if not value.isascii() and not _encodable(value):
            raise ValueError(
                f"the value of the {_name(name)} header is not valid text (a lone surrogate)"
            )
        seen.add(low)
        lines.append(f"{name}: {value}")
    if target.auth is not None:
        if "authorization" in seen:
            raise ValueError(
                "the URL holds credentials (user:password@) and the request an Authorization "
                "header: only one may be given"
            )
        lines.append(f"Authorization: {target.auth}")
    for name, value in _DEFAULTS:
        if name not in seen:
            lines.append(f"{name}: {value}")
    if has_body and "content-type" not in seen:
        lines.append("Content-Type: application/octet-stream")
    lines.append("")
    return "\r\n".join(lines).encode("utf-8")


def _name(name: str) -> str:
    """A header name as an error may show it: a long "name" may be a key pasted in the wrong
    place (or a whole ``Authorization: Bearer ...`` line), so only its start."""
    return repr(name) if len(name) <= 20 else f"{name[:8]!r}... ({len(name)} characters)"


def _encodable(value: str) -> bool:
    # The encoder's error would hold the whole text (a key among it): report only a bool.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
