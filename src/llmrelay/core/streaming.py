"""Stream objects handed to callers: async and sync iterators of chunks.

Iterating yields :class:`StreamChunk` items; the last one has ``done=True`` and carries the
complete :class:`Response` (also at ``stream.response`` afterwards). Leaving early -- ``break``,
an exception, ``close()``/``aclose()`` or the ``with`` block ending -- closes the HTTP connection.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from types import TracebackType
from typing import TYPE_CHECKING

from .._sync import Runner, runner
from ..types import Response, StreamChunk, TextRun, text_chunk

if TYPE_CHECKING:
    from .call import Call
    from .trace import Attempt

__all__ = ["ResponseStream", "SyncResponseStream"]


class ResponseStream:
    """An async iterator of chunks (``async for chunk in stream``)."""

    __slots__ = ("_agen", "_call", "_closed", "_pieces", "response")

    def __init__(self, agen: AsyncGenerator[StreamChunk, None], call: Call | None = None) -> None:
        self._agen = agen
        self._call = call
        self._closed = False
        #: The chunks still to give of a ``TextRun`` (last first): one per event, as sent.
        self._pieces: list[StreamChunk] = []
        self.response: Response | None = None

    @property
    def trace(self) -> list[Attempt]:
        """The call's attempts so far: none before it is first iterated; at its first chunk,
        the attempts that failed and the one streaming; at its end, every one."""
        return self._call.trace if self._call is not None else []

    def __aiter__(self) -> AsyncIterator[StreamChunk]:
        return self

    @property
    def closed(self) -> bool:
        """True once the stream has ended, failed or been closed."""
        return self._closed

    async def __anext__(self) -> StreamChunk:
        pieces = self._pieces
        if pieces:
            return pieces.pop()
        if self._closed:
            raise StopAsyncIteration
        try:
            c = await self._agen.__anext__()
        except BaseException:
            self._closed = True
            raise
        if c.__class__ is TextRun:
            pieces.extend([text_chunk(p) for p in reversed(c.pieces)])
            return pieces.pop()
        if c.done:
            # Now, so the connection is released even if the caller stops here instead of
            # asking for the (nonexistent) next chunk.
            await self.finish(c)
        return c

    async def finish(self, final: StreamChunk) -> None:
        """The final chunk (``done``) came: let the call finish -- recorded, settled, its
        connection released -- and set ``response``. Iterating the stream does this itself; a
        reader of ``chunks()`` calls it when the final chunk comes (until then the call is
        still open: its budget reserved, its connection held)."""
        self.response = final.response
        self._closed = True
        self._pieces.clear()
        try:
            await self._agen.__anext__()
        except StopAsyncIteration:
            return
        await self._agen.aclose()  # pragma: no cover - the engine never yields after it

    def chunks(self) -> AsyncGenerator[StreamChunk, None]:
        """The pipeline's own generator, for a relay that passes every chunk on (the gateway):
        no wrapper to go through per chunk. Unlike iterating the stream, nothing is done at the
        final chunk: call ``finish(final)`` then, as iterating does. Text events that one read
        delivered may come as one :class:`~llmrelay.types.TextRun` (its ``pieces`` are the
        events' texts). ``aclose()`` still stops it."""
        return self._agen

    async def aclose(self) -> None:
        """Stop the stream and close its connection."""
        self._pieces.clear()
        if not self._closed:
            self._closed = True
            await self._agen.aclose()

    async def collect(self) -> Response:
        """Read the rest of the stream and return the complete response."""
        async for _ in self:
            pass
        if self.response is None:  # pragma: no cover - the engine always ends with a response
            raise RuntimeError("the stream ended without a final response")
        return self.response

    async def text_deltas(self) -> AsyncIterator[str]:
        """Only the text pieces."""
        async for c in self:
            if c.delta:
                yield c.delta

    async def __aenter__(self) -> ResponseStream:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class SyncResponseStream:
    """The same stream for sync code (``for chunk in stream``), driven on one private loop."""

    __slots__ = ("_runner", "_stream")

    def __init__(self, stream: ResponseStream, run: Runner | None = None) -> None:
        self._stream = stream
        self._runner = run or runner()

    @property
    def response(self) -> Response | None:
        return self._stream.response

    def __iter__(self) -> Iterator[StreamChunk]:
        return self

    def __next__(self) -> StreamChunk:
        try:
            return self._runner.run(self._stream.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    @property
    def closed(self) -> bool:
        return self._stream.closed

    def close(self) -> None:
        """Stop the stream and close its connection."""
        if not self._stream.closed:
            self._runner.run(self._stream.aclose())

    def collect(self) -> Response:
        return self._runner.run(self._stream.collect())

    def text_deltas(self) -> Iterator[str]:
        for c in self:
            if c.delta:
                yield c.delta

    def __enter__(self) -> SyncResponseStream:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        # A sync stream abandoned mid-way: close it on its loop so the connection is freed. A
        # finaliser may run on any thread, even inside the loop: never block a loop on itself.
        try:
            if not self._stream.closed:
                self._runner.close_soon(self._stream.aclose)
        except Exception:
            pass
