"""The one-method transport interface, its request/response types and an in-memory mock.

All I/O sits behind :class:`Transport`; adapters are sans-IO and only build
:class:`HttpRequest` and read :class:`HttpResponse`. :class:`MockTransport` takes a handler
function (like httpx's), so users can test their own code against scripted answers.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import InvalidRequestError

__all__ = [
    "HttpRequest",
    "HttpResponse",
    "MockTransport",
    "StreamingResponse",
    "Timeouts",
    "Transport",
]


@dataclass(slots=True)
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None = None
    #: Parameters the adapter dropped or renamed for this provider: {param: what happened}.
    adjusted: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        # Headers may hold keys: never print them.
        return f"HttpRequest({self.method} {self.url}, {len(self.body or b'')} bytes)"


@dataclass(slots=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


_INF = float("inf")


@dataclass(slots=True, frozen=True)
class Timeouts:
    """Seconds; None means no limit. ``read`` applies to each read of the body or stream."""

    connect: float | None = 10.0
    read: float | None = 600.0
    total: float | None = 600.0

    def __post_init__(self) -> None:
        for name in ("connect", "read", "total"):
            v = getattr(self, name)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
                raise InvalidRequestError(
                    f"Timeouts({name}=...) must be a positive number of seconds or None (no "
                    f"limit), not {v!r}"
                )
            if v == _INF:  # infinity is "no limit"; the event loop cannot schedule it
                object.__setattr__(self, name, None)


class StreamingResponse(Protocol):
    status: int
    headers: Mapping[str, str]

    def aiter_bytes(self) -> AsyncIterator[bytes]: ...

    async def aread(self) -> bytes: ...


class Transport(Protocol):
    """Sends one HTTP request. Raises APIConnectionError / APITimeoutError, never raw I/O errors."""

    async def send(self, request: HttpRequest, timeouts: Timeouts) -> HttpResponse: ...

    def stream(
        self, request: HttpRequest, timeouts: Timeouts
    ) -> AbstractAsyncContextManager[StreamingResponse]: ...

    async def aclose(self) -> None: ...


Handler = Callable[[HttpRequest], "HttpResponse | Awaitable[HttpResponse]"]


@dataclass(slots=True)
class _MockStream:
    status: int
    headers: Mapping[str, str]
    chunks: Sequence[bytes]

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        for c in self.chunks:
            yield c

    async def aread(self) -> bytes:
        return b"".join(self.chunks)


class MockTransport:
    """A transport that answers from ``handler(request) -> HttpResponse`` (sync or async).

    For streams, the response body is delivered in ``chunk_size`` pieces (default: whole).
    ``requests`` records every request seen.
    """

    def __init__(self, handler: Handler, *, chunk_size: int | None = None) -> None:
        self._handler = handler
        self._chunk_size = chunk_size
        self.requests: list[HttpRequest] = []

    async def _call(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        result: Any = self._handler(request)
        if inspect.isawaitable(result):
            result = await result
        if not isinstance(result, HttpResponse):
            raise TypeError("MockTransport handler must return an HttpResponse")
        return result

    async def send(self, request: HttpRequest, timeouts: Timeouts) -> HttpResponse:
        return await self._call(request)

    def stream(
        self, request: HttpRequest, timeouts: Timeouts
    ) -> AbstractAsyncContextManager[StreamingResponse]:
        @asynccontextmanager
        async def cm() -> AsyncIterator[StreamingResponse]:
            resp = await self._call(request)
            body = resp.body
            size = self._chunk_size or max(len(body), 1)
            chunks = [body[i : i + size] for i in range(0, len(body), size)]
            yield _MockStream(resp.status, resp.headers, chunks)

        return cm()

    async def aclose(self) -> None:
        return None
