"""The native transport: HTTP/1.1 over asyncio protocols, a keep-alive pool per event loop.

The same contract as :class:`~llmrelay.transport.http.AiohttpTransport` (errors translated here
into ``APIConnectionError``, ``APITimeoutError`` and ``ConfigurationError``; redirects returned,
never followed; bodies capped after decoding; a connection left half-read is closed, not pooled;
``CancelledError`` never caught) for a fraction of the CPU: a request is one cached head plus
one write, and the answer is parsed by :mod:`.h1` from the bytes the protocol is handed, with no
stream reader, no per-request session object and no timer per read.

Timeouts: ``connect`` bounds opening a connection; ``total`` the whole request (connecting
included), for a stream until its block ends (as aiohttp); ``read`` the server's silence between
two pieces of the answer (not counted while a stream is paused because its reader is behind:
then the server waits on us). One timer per request checks them lazily (a read resets nothing;
the timer looks at when data last came). Each loop's pool is closed when the loop shuts down
its async generators (``asyncio.run`` does), or by :meth:`NativeTransport.aclose` on that loop.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import weakref
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager

from ..errors import APIConnectionError, APITimeoutError, ConfigurationError, LLMRelayError
from .base import (
    HttpRequest,
    HttpResponse,
    StreamingResponse,
    Timeouts,
    response_too_large,
    shown_url,
)
from .h1 import BodyTooLarge, ProtocolError, ResponseParser, Target, request_head, split_url
from .pool import Connection, Pool, closer

__all__ = ["NativeTransport", "default_transport"]


class _Failed(Exception):
    """Internal: an I/O failure with a message safe to show (no request data)."""


def _ssl_context() -> ssl.SSLContext:
    global _SSL
    if _SSL is None:
        _SSL = ssl.create_default_context()
    return _SSL


_SSL: ssl.SSLContext | None = None


class _Exchange:
    """One request on one connection: its parser, its waiter and its timer."""

    __slots__ = ("conn", "deadline", "last", "loop", "parser", "read", "stream", "timer", "waiter")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        conn: Connection,
        parser: ResponseParser,
        deadline: float | None,
        read: float | None,
        stream: bool,
    ) -> None:
        self.loop = loop
        self.stream = stream
        self.conn = conn
        self.parser = parser
        self.deadline = deadline
        self.read = read
        self.last = loop.time()
        self.waiter: asyncio.Future[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        when = self.deadline
        if self.read is not None:
            idle = self.last + self.read
            if when is None or idle < when:
                when = idle
        if when is not None:
            self.timer = self.loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        if self.parser.done:  # all read: nothing left to time (a slow reader is not a failure)
            return
        now = self.loop.time()
        if self.conn.paused:  # waiting on our reader, not on the server: no silence
            self.last = now
        deadline = self.deadline
        if (deadline is not None and now >= deadline) or (
            self.read is not None and now - self.last >= self.read
        ):
            self.conn.fail(TimeoutError())
        else:
            self._arm()

    def stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class NativeTransport:
    """Pooled HTTP/1.1 transport. Safe to share across tasks, loops and threads: it keeps one
    pool per event loop."""

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
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Pool, object]] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()
        self._last: tuple[weakref.ref[asyncio.AbstractEventLoop], Pool] | None = None
        #: (method, url, header items) -> (target, head); one entry per distinct request shape.
        self._heads: dict[tuple[object, ...], tuple[Target, bytes]] = {}

    async def _pool(self, loop: asyncio.AbstractEventLoop) -> Pool:
        entry = self._pools.get(loop)
        if entry is not None and not entry[0].closed:
            pool = entry[0]
        else:
            pool = Pool(loop, self._limit, self._limit_per_host, self._keepalive)
            gen = closer(pool, self._forget)
            with self._lock:
                for stale in [lp for lp in self._pools if lp.is_closed()]:
                    del self._pools[stale]
                self._pools[loop] = (pool, gen)
            await gen.__anext__()
        self._last = (weakref.ref(loop), pool)
        return pool

    def _forget(self, pool: Pool) -> None:
        with self._lock:
            entry = self._pools.get(pool.loop)
            if entry is not None and entry[0] is pool:
                del self._pools[pool.loop]
        last = self._last
        if last is not None and last[1] is pool:
            self._last = None

    def _head(self, request: HttpRequest) -> tuple[Target, bytes]:
        headers = request.headers
        key = (request.method, request.url, request.body is not None, *headers.items())
        hit = self._heads.get(key)
        if hit is not None:
            return hit
        target = split_url(request.url)
        try:
            head = request_head(request.method, target, headers, request.body is not None)
        except ValueError as exc:
            raise ConfigurationError(
                f"the request to {target.where} could not be built: {exc}. Check the API key "
                "and headers for stray whitespace or newlines"
            ) from None
        if len(self._heads) >= 256:
            self._heads.clear()
        self._heads[key] = (target, head)
        return target, head

    async def _open(
        self, request: HttpRequest, timeouts: Timeouts, limit: int | None, stream: bool = False
    ) -> tuple[_Exchange, Target]:
        """Send the request; the exchange that reads its answer."""
        loop = asyncio.get_running_loop()
        last = self._last
        if last is not None and last[0]() is loop and not last[1].closed:
            pool = last[1]
        else:
            pool = await self._pool(loop)
        target, head = self._head(request)
        total = timeouts.total
        deadline = None if total is None else loop.time() + total
        conn = pool.take(target.origin)
        if conn is None:
            conn = await self._connect(pool, target, timeouts, deadline)
        body = request.body
        size = 0 if body is None else len(body)
        if size or request.method in ("POST", "PUT", "PATCH"):
            data = head + b"Content-Length: %d\r\n\r\n" % size
        else:
            data = head + b"\r\n"
        parser = ResponseParser(
            limit, expect_body=request.method != "HEAD", stream_cap=request.max_response_bytes
        )
        ex = _Exchange(loop, conn, parser, deadline, timeouts.read, stream)
        conn.begin(ex)
        conn.transport.write(data + body if body and size < 65536 else data)
        if body and size >= 65536:
            conn.transport.write(body)
        return ex, target

    async def _connect(
        self, pool: Pool, target: Target, timeouts: Timeouts, deadline: float | None
    ) -> Connection:
        wait = timeouts.connect
        if deadline is not None:
            left = deadline - pool.loop.time()
            wait = left if wait is None else min(wait, left)
        try:
            return await pool.connect(
                target.origin,
                target.host,
                target.port,
                _ssl_context() if target.ssl else None,
                wait,
            )
        except TimeoutError:
            raise _Failed("timeout") from None
        except OSError as exc:
            # Every address of a name tried and refused: the race's error lists them all (a name
            # of hundreds of addresses, a message of kilobytes); the chained error keeps them.
            detail = str(exc)
            if len(detail) > 300:
                detail = detail[:300] + "..."
            raise APIConnectionError(f"could not connect to {target.where}: {detail}") from exc

    async def send(self, request: HttpRequest, timeouts: Timeouts) -> HttpResponse:
        limit = request.max_response_bytes
        ex: _Exchange | None = None
        try:
            ex, _ = await self._open(request, timeouts, limit)
            parser = ex.parser
            if not parser.done:
                waiter = ex.waiter = ex.loop.create_future()
                await waiter
            body = parser.body
            data = body[0] if len(body) == 1 else b"".join(body)
            ex.stop_timer()
            ex.conn.finish(parser.keep_alive)
            return HttpResponse(parser.status, parser.headers, data)
        except BaseException as exc:
            if ex is not None:
                ex.stop_timer()
                ex.conn.abort()
            if isinstance(exc, asyncio.CancelledError | LLMRelayError):
                raise
            err, cause = self._translate(exc, request, ex, limit), _cause(exc)
        raise err from cause

    @staticmethod
    def _translate(
        exc: BaseException, request: HttpRequest, ex: _Exchange | None, limit: int | None
    ) -> LLMRelayError:
        where = shown_url(request.url)
        if isinstance(exc, BodyTooLarge):
            return response_too_large(where, request.max_response_bytes if limit is None else limit)
        if isinstance(exc, TimeoutError) or (isinstance(exc, _Failed) and str(exc) == "timeout"):
            return APITimeoutError(f"request to {where} timed out")
        if isinstance(exc, ProtocolError):
            parser = ex.parser if ex is not None else None
            if parser is not None and not parser.head_done and not parser._buf:
                return APIConnectionError(f"{where} closed the connection before answering")
            if parser is not None and parser.head_done:
                return APIConnectionError(f"the response body from {where} was cut short: {exc}")
            return APIConnectionError(f"the response from {where} is not valid HTTP: {exc}")
        if isinstance(exc, OSError):
            return APIConnectionError(f"connection to {where} failed: {type(exc).__name__}: {exc}")
        return APIConnectionError(f"request to {where} failed: {type(exc).__name__}")

    def stream(
        self, request: HttpRequest, timeouts: Timeouts
    ) -> AbstractAsyncContextManager[StreamingResponse]:
        return _Opening(self, request, timeouts)

    async def _start(self, request: HttpRequest, timeouts: Timeouts) -> _Stream:
        """Send ``request`` and read up to the end of the answer's head."""
        ex: _Exchange | None = None
        try:
            ex, target = await self._open(request, timeouts, None, stream=True)
            parser = ex.parser
            if not parser.head_done:
                waiter = ex.waiter = ex.loop.create_future()
                try:
                    await waiter
                except Exception:
                    if not parser.head_done:
                        raise
                    # The head is read and the body failed (too large, cut short): reading
                    # the stream raises it, as the body's error.
        except BaseException as exc:
            if ex is not None:
                ex.stop_timer()
                ex.conn.abort()
            if isinstance(exc, asyncio.CancelledError | LLMRelayError):
                raise
            err = self._translate(exc, request, ex, None)
            raise err from _cause(exc)
        return _Stream(ex, target.where, request)

    async def aclose(self) -> None:
        """Close the pool of the running loop (other loops close with their loop)."""
        loop = asyncio.get_running_loop()
        self._last = None
        with self._lock:
            entry = self._pools.pop(loop, None)
        if entry is not None:
            pool, gen = entry
            pool.close()
            await gen.aclose()  # type: ignore[attr-defined]


def _cause(exc: BaseException) -> BaseException | None:
    """The error to chain: OS and timeout errors hold no request data; our own parse errors
    hold only what they say. Anything else is not chained."""
    if isinstance(exc, OSError | TimeoutError | ProtocolError):
        return exc
    return None


class _Opening:
    """``NativeTransport.stream``'s block: the answer's head is read on entry; on exit the
    connection goes back to the pool when the body was read to its end, and is closed when not
    (never pool a half-read connection). A class, not ``@asynccontextmanager``: that costs a
    generator and its steps on every stream."""

    __slots__ = ("_request", "_stream", "_timeouts", "_transport")

    def __init__(
        self, transport: NativeTransport, request: HttpRequest, timeouts: Timeouts
    ) -> None:
        self._transport = transport
        self._request = request
        self._timeouts = timeouts
        self._stream: _Stream | None = None

    async def __aenter__(self) -> _Stream:
        stream = self._stream = await self._transport._start(self._request, self._timeouts)
        return stream

    async def __aexit__(self, *exc: object) -> None:
        stream = self._stream
        if stream is None:
            return
        self._stream = None
        stream._ended = True
        ex = stream._ex
        ex.stop_timer()
        parser = ex.parser
        if parser.done and not parser.body:
            ex.conn.finish(parser.keep_alive)
        else:
            ex.conn.abort()  # left early: never pool a half-read connection


class _Stream:
    __slots__ = ("_ended", "_ex", "_request", "_where", "headers", "status")

    def __init__(self, ex: _Exchange, where: str, request: HttpRequest) -> None:
        self._ended = False  # its ``async with`` block is over: the connection is gone
        self._ex = ex
        self._where = where
        self._request = request
        self.status: int = ex.parser.status
        self.headers: Mapping[str, str] = ex.parser.headers

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        return self

    def __aiter__(self) -> _Stream:
        return self

    async def __anext__(self) -> bytes:
        ex = self._ex
        parser = ex.parser
        body = parser.body
        while not body:
            conn = ex.conn
            # The error first: a compressed body found incomplete at its end is done and failed.
            if conn.error is not None:
                raise self._error(conn.error) from _cause(conn.error)
            if parser.done:
                raise StopAsyncIteration
            if self._ended:  # nothing can come any more (and no timer would end the wait)
                raise APIConnectionError(
                    f"the stream from {self._where} was read after its block ended: "
                    "the connection is closed"
                )
            conn.resume()
            waiter = ex.waiter = ex.loop.create_future()
            try:
                await waiter
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                err, cause = self._error(exc), _cause(exc)
                raise err from cause
        data = body.popleft()
        parser.buffered -= len(data)
        return data

    def _error(self, exc: BaseException) -> LLMRelayError:
        return NativeTransport._translate(exc, self._request, self._ex, self._ex.parser.limit)

    async def aread(self) -> bytes:
        limit = self._request.max_response_bytes
        parser = self._ex.parser
        parser.limit = limit
        length = self.headers.get("content-length")
        if length is not None and int(length) > limit and "content-encoding" not in self.headers:
            raise response_too_large(self._where, limit)
        if parser.received > limit:
            raise response_too_large(self._where, limit)
        chunks: list[bytes] = []
        async for data in self:
            chunks.append(data)
        return b"".join(chunks)


_default: NativeTransport | None = None
_default_lock = threading.Lock()


def default_transport() -> NativeTransport:
    """The process-wide shared transport."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = NativeTransport()
    return _default
