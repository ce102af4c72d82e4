"""A TCP proxy in front of the test Redis that a test controls: it can lose the reply to one
request (the script ran, the connection drops before its answer), hold a request back, or
refuse every connection (Redis gone)."""

from __future__ import annotations

import asyncio
import contextlib


class RedisProxy:
    def __init__(self, host: str = "127.0.0.1", port: int = 6379) -> None:
        self.target = (host, port)
        self.port = 0
        #: The next request containing these bytes reaches Redis; its reply is dropped and the
        #: connection closed (the next ``lose_times`` such requests: a resend's too).
        self.lose_reply_to: bytes | None = None
        self.lose_times = 1
        #: The next request containing these bytes reaches Redis; its reply never comes back
        #: (the connection stays open: the client's read times out).
        self.mute_reply_to: bytes | None = None
        #: The next request containing these bytes is held until ``release`` is set; then it is
        #: sent on -- or, with ``refuse`` set by then, dropped with its connection.
        self.hold: bytes | None = None
        self.held = asyncio.Event()
        #: Set when Redis answered the held request (after ``release``).
        self.held_answered = asyncio.Event()
        self.release = asyncio.Event()
        #: Close every connection at once (Redis unreachable).
        self.refuse = False
        self.lost = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _accept(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(cw)
        try:
            if self.refuse:
                return
            sr, sw = await asyncio.open_connection(*self.target)
            self._writers.add(sw)
            lose = [False, False, False]
            up = asyncio.ensure_future(self._up(cr, sw, lose))
            down = asyncio.ensure_future(self._down(sr, cw, lose))
            await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
            for t in (up, down):
                t.cancel()
            await asyncio.gather(up, down, return_exceptions=True)
            sw.close()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            cw.close()
            self._tasks.discard(task)

    async def _up(
        self, cr: asyncio.StreamReader, sw: asyncio.StreamWriter, lose: list[bool]
    ) -> None:
        while data := await cr.read(65536):
            if self.hold is not None and self.hold in data:
                self.hold = None
                self.held.set()
                await self.release.wait()
                lose[2] = True
            if self.refuse:
                return
            if self.lose_reply_to is not None and self.lose_reply_to in data:
                self.lose_times -= 1
                if self.lose_times <= 0:
                    self.lose_reply_to, self.lose_times = None, 1
                lose[0] = True
            if self.mute_reply_to is not None and self.mute_reply_to in data:
                self.mute_reply_to = None
                lose[1] = True
            sw.write(data)
            await sw.drain()
            if lose[2]:  # the client may be gone: keep the connection to Redis for the answer
                await self.held_answered.wait()

    async def _down(
        self, sr: asyncio.StreamReader, cw: asyncio.StreamWriter, lose: list[bool]
    ) -> None:
        while data := await sr.read(65536):
            if lose[2]:
                self.held_answered.set()
            if lose[0] or self.refuse:
                self.lost += 1
                return
            if lose[1]:
                self.lost += 1
                continue
            cw.write(data)
            await cw.drain()

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in self._writers:
            w.close()
        for t in list(self._tasks):
            t.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
