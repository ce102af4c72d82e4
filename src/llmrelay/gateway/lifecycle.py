"""One gateway worker's life: listen, serve, stop on a signal.

**Stopping.** SIGTERM stops gracefully: the port closes, requests and streams in flight get
``shutdown_grace`` seconds to finish (a request still receiving its body keeps receiving it:
aiohttp alone drops what a stopping connection receives), the application's cleanup (the
request log flushed) runs, and the process exits 0. It is idempotent: a SIGTERM that comes
again while the worker stops changes nothing. That matters because one stop often delivers it
twice -- systemd's default ``KillMode=control-group`` sends it to every process of the service,
so a worker gets it directly and once more from the parent that forwards its own (aiohttp's
``run_app`` took the second one as an exit: streams cut, exit status 1). SIGINT stops the same
way the first time; a second SIGINT (Ctrl-C twice) cuts what is in flight at once -- the
connections are closed, their handlers cancelled (the upstream calls end and only what was
produced is charged) -- and the cleanup still runs. After that, SIGINT is Python's again.

**Request heads.** A client has ``header_timeout`` seconds to send a request's head (the
request line and headers): counted from the connection for its first request, from the first
byte of each later one (an idle kept-alive connection that has sent nothing is aiohttp's
keep-alive timeout's, 75 s). A client that dribbles its headers (slowloris) is closed past it;
aiohttp alone closes it only at the keep-alive timeout. The cost on the hot path: a note of the
time in the connection's ``data_received`` when a new head begins; one timer per worker sweeps
the connections every ``header_timeout / 2`` seconds.
"""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from .config import GatewaySettings

__all__ = ["STOP_SIGNALS", "serve"]

#: The signals that stop a worker.
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})

#: Seconds an idle keep-alive connection is kept (aiohttp's ``run_app`` default).
KEEPALIVE_TIMEOUT = 75.0


class _Connection(web.RequestHandler):
    """aiohttp's connection protocol, noting when the head of the request it waits for began
    (``head_since``; 0 while none is coming or a request is being handled)."""

    __slots__ = ("head_since",)

    def __init__(self, manager: web.Server, *, loop: asyncio.AbstractEventLoop) -> None:
        # access_log=None: no access log (what run_app(access_log=None) passes; typed Logger).
        no_log: Any = None
        super().__init__(manager, loop=loop, keepalive_timeout=KEEPALIVE_TIMEOUT, access_log=no_log)
        self.head_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.head_since = self._loop.time()  # its first head, from now

    def data_received(self, data: bytes) -> None:
        if not self.head_since and self._waiter is not None:  # waiting: a new head begins
            self.head_since = self._loop.time()
        if (
            (self._close or self._force_close)
            and self._request_in_progress
            and self.transport is not None
        ):
            # The worker stops (aiohttp's shutdown marks its connections closing, and a closing
            # one drops what it receives): the request being handled still gets its body.
            stopping = self._close, self._force_close
            self._close = self._force_close = False
            try:
                super().data_received(data)
            finally:
                self._close, self._force_close = stopping
        else:
            super().data_received(data)
        if self._messages:  # the head is whole (its request is queued)
            self.head_since = 0.0


class _HeadWatch:
    """Closes the connections whose request head is older than ``timeout`` seconds."""

    def __init__(self, loop: asyncio.AbstractEventLoop, server: web.Server, timeout: float):
        self._loop = loop
        self._server = server
        self._timeout = timeout
        self._handle = loop.call_later(timeout / 2, self._sweep)

    def _sweep(self) -> None:
        before = self._loop.time() - self._timeout
        for conn in self._server.connections:
            if isinstance(conn, _Connection) and 0 < conn.head_since < before:
                conn.force_close()
        self._handle = self._loop.call_later(self._timeout / 2, self._sweep)

    def cancel(self) -> None:
        self._handle.cancel()


class _Stop:
    """What the stop signals asked for: ``requested`` (set once), then maybe ``forced``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, runner: web.AppRunner) -> None:
        self.requested = asyncio.Event()
        self._loop = loop
        self._runner = runner
        self._interrupts = 0

    def install(self) -> None:
        self._loop.add_signal_handler(signal.SIGTERM, self.requested.set)
        self._loop.add_signal_handler(signal.SIGINT, self._interrupt)
        # A worker of several starts with them blocked (``server.run``): one that came while it
        # started is taken now.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

    def uninstall(self) -> None:
        self._loop.remove_signal_handler(signal.SIGTERM)
        self._loop.remove_signal_handler(signal.SIGINT)

    def _interrupt(self) -> None:
        self._interrupts += 1
        if self._interrupts == 1:
            self.requested.set()
            return
        self._loop.remove_signal_handler(signal.SIGINT)  # a third: Python's KeyboardInterrupt
        server = self._runner.server
        if server is not None:
            for conn in server.connections:
                conn.force_close()  # connection_lost cancels the handler (handler_cancellation)


async def serve(app: web.Application, settings: GatewaySettings, *, reuse_port: bool) -> None:
    """Serve ``app`` on ``settings.host:port`` until SIGTERM or SIGINT, then stop (see the
    module docs)."""
    loop = asyncio.get_running_loop()
    runner = web.AppRunner(
        app,
        handle_signals=False,
        handler_cancellation=True,
        shutdown_timeout=settings.shutdown_grace,
        keepalive_timeout=KEEPALIVE_TIMEOUT,
        access_log=None,
    )
    stop = _Stop(loop, runner)
    stop.install()
    try:
        await runner.setup()
        server = runner.server
        assert server is not None
        watch = _HeadWatch(loop, server, settings.header_timeout)
        listening = None
        try:
            listening = await loop.create_server(
                lambda: _Connection(server, loop=loop),
                settings.host,
                settings.port,
                reuse_port=reuse_port or None,
                backlog=128,
            )
            await stop.requested.wait()
        finally:
            if listening is not None:
                listening.close()  # the port closes; in-flight work gets the grace:
            await runner.cleanup()
            watch.cancel()
    finally:
        stop.uninstall()


def run_worker(
    app: web.Application,
    settings: GatewaySettings,
    *,
    reuse_port: bool,
    loop: asyncio.AbstractEventLoop | None = None,
) -> None:
    """:func:`serve` on ``loop`` (a new asyncio loop by default), closing it afterwards; for a
    process that ends with it: once served, SIGTERM and SIGINT are ignored (a worker that
    finished early, having nothing in flight, still gets the parent's forward of the signal
    that stopped it, or a sibling's second Ctrl-C: it must still exit 0)."""
    loop = loop or asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(serve(app, settings, reuse_port=reuse_port))
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            left = asyncio.all_tasks(loop)
            for task in left:
                task.cancel()
            if left:
                loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
