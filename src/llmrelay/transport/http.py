"""The aiohttp transport: one pooled ``ClientSession`` per event loop.

Low-level I/O errors are translated here, in one place, into ``APIConnectionError`` and
``APITimeoutError`` (chained ``from`` the cause); adapters never see aiohttp exceptions.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import aiohttp

from ..errors import APIConnectionError, APITimeoutError, ConfigurationError, LLMRelayError
from .base import HttpRequest, HttpResponse, StreamingResponse, Timeouts

__all__ = ["AiohttpTransport", "default_transport", "translate_io_error"]


def translate_io_error(exc: BaseException, request: HttpRequest) -> LLMRelayError:
    """Map an aiohttp/OS error to the llmrelay hierarchy (the transport's one mapping point)."""
    where = request.url.split("?", 1)[0]
    if isinstance(exc, LLMRelayError):
        return exc
    if isinstance(exc, aiohttp.InvalidURL):
        return ConfigurationError(f"invalid base URL {where!r}: {exc}. Check the base_url setting")
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return APITimeoutError(f"request to {where} timed out")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return APIConnectionError(f"could not connect to {where}: {exc.os_error or exc}")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return APIConnectionError(f"{where} closed the connection before answering")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return APIConnectionError(f"the response body from {where} was cut short: {exc}")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return APIConnectionError(f"connection to {where} failed: {type(exc).__name__}: {exc}")
    return APIConnectionError(f"request to {where} failed: {type(exc).__name__}: {exc}")


_IO_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)


async def _closer(
    session: aiohttp.ClientSession,
    sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any],
    loop: asyncio.AbstractEventLoop,
) -> AsyncIterator[None]:
    """Parked async generator: ``asyncio.run`` finalises it at shutdown, closing the session."""
    try:
        yield
    finally:
        entry = sessions.get(loop)
        if entry is not None and entry[0] is session:
            del sessions[loop]
        if not session.closed:
            await session.close()


class _AiohttpStream:
    __slots__ = ("_resp", "headers", "status")

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self.status = resp.status
        self.headers = resp.headers

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        req = self._resp.request_info
        try:
            async for data in self._resp.content.iter_any():
                yield data
        except _IO_ERRORS as exc:
            raise translate_io_error(exc, HttpRequest("GET", str(req.url), {})) from exc

    async def aread(self) -> bytes:
        try:
            return await self._resp.read()
        except _IO_ERRORS as exc:
            url = str(self._resp.request_info.url)
            raise translate_io_error(exc, HttpRequest("GET", url, {})) from exc


class AiohttpTransport:
    """Pooled HTTP/1.1 transport. Safe to share; it keeps one session per running loop."""

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
        self._sessions: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[aiohttp.ClientSession, Any]
        ] = weakref.WeakKeyDictionary()
        self._timeouts: dict[Timeouts, aiohttp.ClientTimeout] = {}

    async def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        entry = self._sessions.get(loop)
        if entry is not None and not entry[0].closed:
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
        closer = _closer(session, self._sessions, loop)
        self._sessions[loop] = (session, closer)
        await closer.__anext__()
        return session

    def _timeout(self, t: Timeouts) -> aiohttp.ClientTimeout:
        ct = self._timeouts.get(t)
        if ct is None:
            ct = aiohttp.ClientTimeout(total=t.total, sock_connect=t.connect, sock_read=t.read)
            self._timeouts[t] = ct
        return ct

    async def send(self, request: HttpRequest, timeouts: Timeouts) -> HttpResponse:
        session = await self._session()
        try:
            async with session.request(
                request.method,
                request.url,
                data=request.body,
                headers=request.headers,
                timeout=self._timeout(timeouts),
            ) as resp:
                body = await resp.read()
                return HttpResponse(resp.status, resp.headers, body)
        except _IO_ERRORS as exc:
            raise translate_io_error(exc, request) from exc

    def stream(
        self, request: HttpRequest, timeouts: Timeouts
    ) -> AbstractAsyncContextManager[StreamingResponse]:
        return self._stream(request, timeouts)

    @asynccontextmanager
    async def _stream(
        self, request: HttpRequest, timeouts: Timeouts
    ) -> AsyncIterator[StreamingResponse]:
        session = await self._session()
        try:
            resp = await session.request(
                request.method,
                request.url,
                data=request.body,
                headers=request.headers,
                timeout=self._timeout(timeouts),
            )
        except _IO_ERRORS as exc:
            raise translate_io_error(exc, request) from exc
        completed = False
        try:
            yield _AiohttpStream(resp)
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
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - called outside a loop
            return
        entry = self._sessions.pop(loop, None)
        if entry is not None:
            session, closer = entry
            await closer.aclose()
            if not session.closed:
                await session.close()


_default: AiohttpTransport | None = None


def default_transport() -> AiohttpTransport:
    """The process-wide shared transport."""
    global _default
    if _default is None:
        _default = AiohttpTransport()
    return _default
