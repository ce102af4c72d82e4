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

from ..errors import InvalidRequestError, ResponseTooLargeError, finite, shown

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "HttpRequest",
    "HttpResponse",
    "MockTransport",
    "StreamingResponse",
    "Timeouts",
    "Transport",
    "response_too_large",
    "shown_url",
]


#: The most a response body may hold once decompressed (``max_response_bytes``): 32 MiB.
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
#: The most one Server-Sent Events line or event may hold (``max_event_bytes``): 4 MiB.
DEFAULT_MAX_EVENT_BYTES = 4 * 1024 * 1024


@dataclass(slots=True)
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None = None
    #: Parameters the adapter dropped or renamed for this provider: {param: what happened}.
    adjusted: dict[str, str] = field(default_factory=dict)
    #: The most the response body may hold, decoded (after gzip/deflate/br): a transport stops
    #: reading there and raises ``ResponseTooLargeError``. Streams read by ``aiter_bytes`` are
    #: not counted as a whole (their events are, by the SSE decoder).
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES

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
            if (
                isinstance(v, bool)
                or not isinstance(v, int | float)
                or not v > 0
                or (isinstance(v, int) and not finite(v))
            ):
                raise InvalidRequestError(
                    f"Timeouts({name}=...) must be a positive number of seconds or None (no "
                    f"limit), not {shown(v)}"
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


def shown_url(url: str) -> str:
    """``url`` as an error may show it: without the query (some providers put the key there),
    the fragment, or a ``user:password@`` part."""
    where = url.split("?", 1)[0].split("#", 1)[0]
    scheme, sep, rest = where.partition("://")
    if sep:
        authority, slash, path = rest.partition("/")
        where = f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"
    return where


def response_too_large(where: str, limit: int) -> ResponseTooLargeError:
    """The error for a body found larger than ``limit`` decoded bytes (reading stopped there)."""
    return ResponseTooLargeError(
        f"the response from {where} is larger than the limit of {limit} bytes "
        "(max_response_bytes, counted after decompression); reading stopped there. If such an "
        "answer is expected, raise the limit: Client(max_response_bytes=...) or "
        "max_response_bytes in the configuration file's [defaults]",
        limit=limit,
        setting="max_response_bytes",
    )


Handler = Callable[[HttpRequest], "HttpResponse | Awaitable[HttpResponse]"]


@dataclass(slots=True)
class _MockStream:
    status: int
    headers: Mapping[str, str]
    chunks: Sequence[bytes]
    request: HttpRequest

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        for c in self.chunks:
            yield c

    async def aread(self) -> bytes:
        body = b"".join(self.chunks)
        limit = self.request.max_response_bytes
        if len(body) > limit:
            raise response_too_large(shown_url(self.request.url), limit)
        return body


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
        resp = await self._call(request)
        if len(resp.body) > request.max_response_bytes:
            raise response_too_large(shown_url(request.url), request.max_response_bytes)
        return resp

    def stream(
        self, request: HttpRequest, timeouts: Timeouts
    ) -> AbstractAsyncContextManager[StreamingResponse]:
        @asynccontextmanager
        async def cm() -> AsyncIterator[StreamingResponse]:
            resp = await self._call(request)
            body = resp.body
            size = self._chunk_size or max(len(body), 1)
            chunks = [body[i : i + size] for i in range(0, len(body), size)]
            yield _MockStream(resp.status, resp.headers, chunks, request)

        return cm()

    async def aclose(self) -> None:
        return None
