"""The aiohttp transport: one pooled ``ClientSession`` per event loop.

Low-level I/O errors are translated here, in one place, into ``APIConnectionError`` and
``APITimeoutError``; adapters never see aiohttp exceptions. The aiohttp error is chained as the
cause only when it cannot hold request data (``safe_cause``): ``ClientResponseError`` and its kin
carry the request's headers, the API key among them, so they are never chained (not even as
``__context__``).

Redirects are never followed (``allow_redirects=False``): a 3xx answer is returned as it is and
the backend turns it into ``RedirectError``, so the key only goes to the configured origin.
``asyncio.CancelledError`` is never caught: a cancelled call stays cancelled.

Each loop's session is closed when the loop shuts down its async generators (``asyncio.run`` and
``asyncio.Runner`` do), or by :meth:`AiohttpTransport.aclose` on that loop.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import aiohttp

from ..errors import APIConnectionError, APITimeoutError, ConfigurationError, LLMRelayError
from .base import (
    HttpRequest,
    HttpResponse,
    StreamingResponse,
    Timeouts,
    response_too_large,
    shown_url,
)

__all__ = ["AiohttpTransport", "default_transport", "safe_cause", "translate_io_error"]

_NON_HTTP_URL: type[Exception] = getattr(aiohttp, "NonHttpUrlClientError", aiohttp.InvalidURL)


def _where(url: str) -> str:
    # Never echo a query string: some providers (Gemini) may carry a key there.
    return shown_url(url)


def translate_io_error(exc: BaseException, request: HttpRequest) -> LLMRelayError:
    """Map an aiohttp/OS error to the llmrelay hierarchy (the transport's one mapping point)."""
    return _translate(exc, _where(request.url), request.headers.values())


def _scrub(text: str, secrets: Iterable[str]) -> str:
    """Remove header values (keys among them) from an error text."""
    for value in secrets:
        for part in value.split():
            if len(part) >= 8 and part in text:
                text = text.replace(part, "***")
    return text


def _translate(exc: BaseException, where: str, secrets: Iterable[str] = ()) -> LLMRelayError:
    if isinstance(exc, LLMRelayError):
        return exc
    if isinstance(exc, _NON_HTTP_URL):
        return ConfigurationError(
            f"invalid base URL {where!r}: only http:// and https:// URLs are supported. "
            "Check the base_url setting"
        )
    if isinstance(exc, aiohttp.InvalidURL):
        return ConfigurationError(f"invalid base URL {where!r}. Check the base_url setting")
    if isinstance(exc, TimeoutError):  # aiohttp's ServerTimeoutError is a TimeoutError
        detail = f": {exc}" if str(exc) else ""
        return APITimeoutError(f"request to {where} timed out{detail}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return APIConnectionError(f"could not connect to {where}: {exc.os_error or exc}")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return APIConnectionError(f"{where} closed the connection before answering")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return APIConnectionError(f"the response body from {where} was cut short: {exc}")
    if isinstance(exc, aiohttp.ClientResponseError):
        # Its text holds the URL (query included) and the server's reason phrase: not echoed.
        return APIConnectionError(f"request to {where} failed: {type(exc).__name__}")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return APIConnectionError(f"connection to {where} failed: {type(exc).__name__}: {exc}")
    if isinstance(exc, ValueError):
        # aiohttp refuses header values with control characters; the usual cause is an API key
        # read from a file with its trailing newline. The value itself is never echoed.
        return ConfigurationError(
            f"the request to {where} could not be built: {_scrub(str(exc), secrets)}. Check the "
            "API key and headers for stray whitespace or newlines"
        )
    return APIConnectionError(f"request to {where} failed: {type(exc).__name__}: {exc}")


def safe_cause(exc: BaseException) -> BaseException | None:
    """``exc`` when it may be chained to a translated error, else None. Connection, timeout and
    payload errors hold no request data; others may (``ClientResponseError.request_info`` holds
    the request headers, ``InvalidURL`` the URL with its query, a ``ValueError`` a header)."""
    if isinstance(exc, aiohttp.ClientResponseError | aiohttp.InvalidURL | ValueError):
        return None
    if isinstance(exc, OSError | TimeoutError | aiohttp.ClientPayloadError):
        return exc
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return exc
    return None


_IO_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)
#: Opening a request may also fail with ValueError (bad header values).
_OPEN_ERRORS = (*_IO_ERRORS, ValueError)

_Sessions = weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[aiohttp.ClientSession, Any]]


async def _closer(
    session: aiohttp.ClientSession,
    sessions: _Sessions,
    lock: threading.Lock,
    loop: asyncio.AbstractEventLoop,
) -> AsyncIterator[None]:
    """Parked async generator: ``asyncio.run`` finalises it at shutdown, closing the session."""
    try:
        yield
    finally:
        with lock:
            entry = sessions.get(loop)
            if entry is not None and entry[0] is session:
                del sessions[loop]
        if not session.closed:
            await session.close()


async def _read_limited(resp: aiohttp.ClientResponse, limit: int, url: str) -> bytes:
    """The whole body, decoded, or ``ResponseTooLargeError`` once it passes ``limit`` bytes.

    aiohttp decompresses as it reads, in bounded pieces, so counting what ``readany`` hands out
    counts decoded bytes and stops a compression bomb after about ``limit`` of them. The
    connection is closed, not pooled, when reading stops early.
    """
    length = resp.content_length
    if length is not None and length > limit and "content-encoding" not in resp.headers:
        resp.close()
        raise response_too_large(_where(url), limit)
    content = resp.content
    chunks: list[bytes] = []
    total = 0
    while True:
        data = await content.readany()
        if not data:
            break
        total += len(data)
        if total > limit:
            chunks.clear()
            resp.close()
            raise response_too_large(_where(url), limit)
        chunks.append(data)
        if content.at_eof():  # all read: no further readany to learn it
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class _ByteIterator:
    """Network chunks of a response body, with I/O errors translated.

    A plain async iterator rather than an async generator, so leaving it half-read needs no
    finalisation on the event loop.
    """

    __slots__ = ("_content", "_where")

    def __init__(self, resp: aiohttp.ClientResponse, where: str) -> None:
        self._content = resp.content
        self._where = where

    def __aiter__(self) -> _ByteIterator:
        return self

    async def __anext__(self) -> bytes:
        try:
            data = await self._content.readany()
        except _IO_ERRORS as exc:
            err, cause = _translate(exc, self._where), safe_cause(exc)
        else:
            if not data:
                raise StopAsyncIteration
            return data
        raise err from cause  # outside the handler: an unsafe error is not even the context


class _AiohttpStream:
    __slots__ = ("_limit", "_resp", "_where", "headers", "status")

    def __init__(self, resp: aiohttp.ClientResponse, where: str, limit: int) -> None:
        self._resp = resp
        self._where = where
        self._limit = limit
        self.status: int = resp.status
        self.headers: Mapping[str, str] = resp.headers

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        return _ByteIterator(self._resp, self._where)

    async def aread(self) -> bytes:
        try:
            return await _read_limited(self._resp, self._limit, self._where)
        except _IO_ERRORS as exc:
            err, cause = _translate(exc, self._where), safe_cause(exc)
        raise err from cause


class AiohttpTransport:
    """Pooled HTTP/1.1 transport. Safe to share across tasks, loops and threads: it keeps one
    session per event loop."""

    def __init__(
        self,
        *,
        max_connections: int = 1000,
        max_connections_per_host: int = 0,
        keepalive_timeout: float = 30.0,
    ) -> None:
        self._limit = max_connections
        self._limit_per_host = max_connections_per_host
        self._keepalive = keepalive_timeout
        # loop -> (session, parked closer generator); the closer must stay referenced.
        self._sessions: _Sessions = weakref.WeakKeyDictionary()
        # Loops of several threads (the sync bridge) may add and drop sessions concurrently.
        self._lock = threading.Lock()
        self._timeouts: dict[tuple[Timeouts, bool], aiohttp.ClientTimeout] = {}
        #: The loop and session of the last call (most calls come from the same loop): the
        #: loop by weak reference, so a finished loop is not kept.
        self._last: tuple[weakref.ref[asyncio.AbstractEventLoop], aiohttp.ClientSession] | None = (
            None
        )
        #: The non-streamed timeouts of the last call and their aiohttp form.
        self._last_timeout: tuple[Timeouts, aiohttp.ClientTimeout] | None = None

    async def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        last = self._last
        if last is not None and last[0]() is loop and not last[1].closed:
            return last[1]  # the loop of the previous call (no weak-dictionary look-up)
        entry = self._sessions.get(loop)
        if entry is not None and not entry[0].closed:
            self._last = (weakref.ref(loop), entry[0])
            return entry[0]
        connector = aiohttp.TCPConnector(
            limit=self._limit,
            limit_per_host=self._limit_per_host,
            keepalive_timeout=self._keepalive,
            ttl_dns_cache=300,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None),
            auto_decompress=True,
            raise_for_status=False,
            trust_env=False,
            skip_auto_headers=("User-Agent",),
        )
        closer = _closer(session, self._sessions, self._lock, loop)
        with self._lock:
            # A loop closed without shutting down its async generators keeps its entry (the
            # session references the loop): drop those so they do not pile up.
            for stale in [lp for lp in self._sessions if lp.is_closed()]:
                del self._sessions[stale]
            self._sessions[loop] = (session, closer)
        await closer.__anext__()
        self._last = (weakref.ref(loop), session)
        return session

    def _timeout(self, t: Timeouts, stream: bool = False) -> aiohttp.ClientTimeout:
        """aiohttp's timeout for ``t``. A read timeout that cannot fire before the total one is
        left out of non-streamed requests: each read timeout costs aiohttp a timer per read."""
        last = self._last_timeout
        if not stream and last is not None and last[0] is t:
            return last[1]
        key = (t, stream)
        ct = self._timeouts.get(key)
        if ct is None:
            read = t.read
            if not stream and read is not None and t.total is not None and read >= t.total:
                read = None
            ct = aiohttp.ClientTimeout(total=t.total, sock_connect=t.connect, sock_read=read)
            if len(self._timeouts) >= 64:  # deadlines make one-off values: keep this bounded
                self._timeouts.clear()
            self._timeouts[key] = ct
        if not stream:
            self._last_timeout = (t, ct)
        return ct

    async def send(self, request: HttpRequest, timeouts: Timeouts) -> HttpResponse:
        # The first checks of ``_session()`` and ``_timeout()``, inline (most calls: the same
        # loop and timeouts as the previous call; no coroutine, no call).
        last = self._last
        if last is not None and last[0]() is asyncio.get_running_loop() and not last[1].closed:
            session = last[1]
        else:
            session = await self._session()
        try:
            prev = self._last_timeout
            hit = prev is not None and prev[0] is timeouts
            timeout = prev[1] if hit else self._timeout(timeouts)  # type: ignore[index]
            async with session.request(
                request.method,
                request.url,
                data=request.body,
                headers=request.headers,
                timeout=timeout,
                allow_redirects=False,
            ) as resp:
                body = await _read_limited(resp, request.max_response_bytes, request.url)
                return HttpResponse(resp.status, resp.headers, body)
        except _OPEN_ERRORS as exc:
            err, cause = translate_io_error(exc, request), safe_cause(exc)
        raise err from cause

    def stream(
        self, request: HttpRequest, timeouts: Timeouts
    ) -> AbstractAsyncContextManager[StreamingResponse]:
        return self._stream(request, timeouts)

    @asynccontextmanager
    async def _stream(
        self, request: HttpRequest, timeouts: Timeouts
    ) -> AsyncIterator[StreamingResponse]:
        session = await self._session()
        resp: aiohttp.ClientResponse | None = None
        try:
            resp = await session.request(
                request.method,
                request.url,
                data=request.body,
                headers=request.headers,
                timeout=self._timeout(timeouts, stream=True),
                allow_redirects=False,
            )
        except _OPEN_ERRORS as exc:
            err, cause = translate_io_error(exc, request), safe_cause(exc)
        if resp is None:
            raise err from cause
        completed = False
        try:
            yield _AiohttpStream(resp, _where(request.url), request.max_response_bytes)
            completed = resp.content.at_eof()
        finally:
            if completed:
                resp.release()
            else:
                # Stopped early (cancelled, error, or the caller broke out): drop the
                # connection instead of returning a half-read one to the pool.
                resp.close()

    async def aclose(self) -> None:
        """Close the session of the running loop (other loops close with their loop)."""
        loop = asyncio.get_running_loop()
        self._last = None
        with self._lock:
            entry = self._sessions.pop(loop, None)
        if entry is not None:
            session, closer = entry
            await closer.aclose()
            if not session.closed:
                await session.close()


def default_transport() -> Any:
    """The process-wide shared transport: since the native transport became the default, this
    is :func:`llmrelay.transport.native.default_transport` (kept here for old imports)."""
    from .native import default_transport as native_default

    return native_default()
