"""How the gateway writes a server-sent-events answer: frames that one upstream read delivered
together leave in one socket write, and the headers leave with the first frames.

A streamed answer is ~30 events; one write each cost a system call per frame (the bare
pass-through proxy forwards what one read holds in one write). :class:`Frames` writes once per
turn of the event loop instead: no frame waits for a later one, since the write is made as soon
as the handler waits for the upstream.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from aiohttp import web

from ..types import Response, StreamChunk, text_chunk
from .wire import HttpError

__all__ = ["EventStream", "Frames", "StreamWriter", "each_text"]


class StreamWriter(Protocol):
    """Renders a stream in one wire shape (``openai_wire``, ``anthropic_wire``,
    ``responses_stream``): the frames of its start, of each chunk, of its end or error."""

    def start(self) -> bytes: ...

    def chunk(self, c: StreamChunk) -> bytes: ...

    def text_run(self, pieces: list[str]) -> bytes:
        """The frames of a ``TextRun``: one event per piece, as ``chunk`` renders each."""
        ...

    def finish(self, resp: Response | None, *, refusal: str | None = None) -> bytes: ...

    def error(self, err: HttpError) -> bytes: ...


def each_text(writer: StreamWriter, pieces: list[str]) -> bytes:
    """``text_run`` as any writer can: ``chunk`` for a text chunk of each piece."""
    return b"".join([writer.chunk(text_chunk(p)) for p in pieces])


class EventStream(web.StreamResponse):
    """An SSE response whose headers leave with its first frames, in one write (aiohttp's
    ``web.Response`` does the same with its body). The stream starts when the first chunk is
    there, so nothing waits for it."""

    _send_headers_immediately = False


class Frames:
    """An SSE response's frames, written once per turn of the event loop: the frames of events
    that one upstream read delivered together leave in one write (one system call, not one per
    frame), and no frame waits for a later one -- the write is made as soon as the handler
    waits for the upstream. The first frame is written at once, with the headers (the time to
    first byte does not wait for the rest of its burst). At most ``_HOLD`` bytes are held for a
    slow client; past that the handler waits for the client (backpressure). What a write
    raises (the client left) is raised in the handler by the next ``add`` or by ``close``."""

    __slots__ = ("_buf", "_closed", "_due", "_held", "_loop", "_started", "_task", "out")

    def __init__(self, out: web.StreamResponse) -> None:
        self.out = out
        self._buf: list[bytes] = []
        self._held = 0
        self._task: asyncio.Task[None] | None = None
        self._due = False
        self._closed = False
        self._started = False
        self._loop = asyncio.get_running_loop()

    async def add(self, frame: bytes) -> None:
        if not self._started:
            self._started = True
            await self.out.write(frame)
            return
        self._buf.append(frame)
        self._held += len(frame)
        task = self._task
        if task is not None and task.done():
            task.result()  # a write failed: raise it here
        if self._held > _HOLD:
            self._kick()
            if self._task is not None:
                await self._task  # the client reads slowly: wait for it
        elif not self._due and (task is None or task.done()):
            self._due = True
            self._loop.call_soon(self._kick)

    def add_nowait(self, frame: bytes) -> bool:
        """``add`` without a coroutine, for the common frame: queued for the next write, True.
        False (nothing queued) when the frame needs ``add``: the first one (written at once),
        one that fills the buffer past ``_HOLD`` (the handler waits for the client), or after
        a failed write (``add`` raises it)."""
        held = self._held + len(frame)
        if held > _HOLD or not self._started:
            return False
        task = self._task
        if task is not None:
            if not task.done():  # a write is under way: it takes this frame too
                self._buf.append(frame)
                self._held = held
                return True
            if task.cancelled() or task.exception() is not None:
                return False
            self._task = None
        self._buf.append(frame)
        self._held = held
        if not self._due:
            self._due = True
            self._loop.call_soon(self._kick)
        return True

    def _kick(self) -> None:
        """Start the write task unless one is running (it takes what is added meanwhile)."""
        self._due = False
        task = self._task
        if self._buf and not self._closed and (task is None or task.done()):
            self._task = self._loop.create_task(self._drain())
            self._task.add_done_callback(_seen)

    async def _drain(self) -> None:
        while self._buf:
            data = b"".join(self._buf)
            self._buf.clear()
            self._held = 0
            await self.out.write(data)

    async def close(self, last: bytes) -> None:
        """Write what is held and ``last``, and end the response."""
        self._closed = True
        if self._task is not None:
            await self._task
        data = b"".join(self._buf) + last
        self._buf.clear()
        await self.out.write_eof(data)

    def cancel(self) -> None:
        self._closed = True
        if self._task is not None and not self._task.done():
            self._task.cancel()


#: Bytes of frames held for a client before the stream waits for it.
_HOLD = 64 * 1024


def _seen(task: asyncio.Task[None]) -> None:
    """Mark a write task's failure as seen (the handler raises it, or has ended already)."""
    if not task.cancelled():
        task.exception()
