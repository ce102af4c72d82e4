"""The native transport's connections and their keep-alive pool (one pool per event loop).

A :class:`Connection` is the asyncio protocol of one TCP (or TLS) connection: it feeds what it
reads to the current exchange's parser and wakes whoever waits. The :class:`Pool` keeps idle
connections per origin (last in, first out), opens new ones within ``max_connections`` (and
``max_connections_per_host`` when set), queues callers past the limit, and closes connections
idle longer than ``keepalive_timeout``, or closed by the server, instead of reusing them.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Protocol, cast

import aiohappyeyeballs

from .h1 import BodyTooLarge, ProtocolError

if TYPE_CHECKING:
    from .h1 import ResponseParser

__all__ = ["Connection", "Pool", "closer"]

Origin = tuple[str, str, int]

#: Bytes a stream may hold unread before the connection stops reading (back-pressure).
HIGH_WATER = 256 * 1024
#: How long a connection attempt to one address runs alone before the next address is tried
#: too (RFC 8305's recommended 250 ms, as aiohttp).
HAPPY_EYEBALLS_DELAY = 0.25


Addresses = Sequence[aiohappyeyeballs.AddrInfoType]
#: How long a looked-up name's addresses are reused (aiohttp's default), and for how many
#: names at most.
NAMES_TTL = 10.0
NAMES_MAX = 1024


async def resolve(loop: asyncio.AbstractEventLoop, host: str, port: int) -> Addresses:
    """The addresses to try for ``host``: an IP literal as it is (no lookup, no thread), a
    name through the resolver (``getaddrinfo`` in the loop's executor)."""
    with contextlib.suppress(socket.gaierror):
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not infos:
        raise OSError(f"{host} has no address")
    return infos


def _heard(task: asyncio.Task[Addresses]) -> None:
    if not task.cancelled():
        task.exception()


class Exchange(Protocol):
    """What a connection needs of the request it carries (``native._Exchange``)."""

    parser: ResponseParser
    waiter: asyncio.Future[None] | None
    read: float | None
    last: float
    stream: bool


class Connection(asyncio.Protocol):
    __slots__ = (
        "closed",
        "connecting",
        "error",
        "exchange",
        "idle_since",
        "origin",
        "paused",
        "pool",
        "transport",
    )

    def __init__(self, pool: Pool, origin: Origin) -> None:
        self.pool = pool
        self.origin = origin
        self.transport: asyncio.Transport = cast("asyncio.Transport", None)
        self.exchange: Exchange | None = None
        self.error: BaseException | None = None
        self.closed = False
        #: The task opening the connection (TCP, TLS handshake), so closing the pool ends it.
        self.connecting: asyncio.Task[object] | None = None
        self.paused = False
        self.idle_since = 0.0

    # -- asyncio protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        ex = self.exchange
        if ex is None:  # bytes nobody asked for: this connection is out of step
            self.transport.close()
            return
        parser = ex.parser
        try:
            parser.feed(data)
        except (ProtocolError, BodyTooLarge) as exc:
            self.fail(exc)
            return
        if ex.read is not None:
            ex.last = self.pool.loop.time()
        if parser.done or (ex.stream and parser.head_done):
            waiter = ex.waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            if ex.stream and parser.buffered > HIGH_WATER and not parser.done:
                self.paused = True
                self.transport.pause_reading()

    def eof_received(self) -> bool:
        ex = self.exchange
        if ex is not None:
            parser = ex.parser
            try:
                parser.feed_eof()
            except ProtocolError as exc:
                self.fail(exc)
                return False
            waiter = ex.waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        ex = self.exchange
        if ex is None:
            self.pool.forget(self)
            return
        if not ex.parser.done and self.error is None:
            if exc is None:
                try:
                    ex.parser.feed_eof()
                except ProtocolError as err:
                    self.fail(err)
                    return
            else:
                self.fail(exc)
                return
        waiter = ex.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- used by the transport ---------------------------------------------------------------

    def begin(self, exchange: Exchange) -> None:
        self.exchange = exchange
        self.error = None

    def fail(self, exc: BaseException) -> None:
        """End the exchange with ``exc`` (kept in ``error``) and close the connection."""
        if self.error is None:
            self.error = exc
        ex = self.exchange
        if ex is not None:
            waiter = ex.waiter
            if waiter is not None and not waiter.done():
                waiter.set_exception(self.error)
        if self.transport is not None:  # None while still connecting
            self.transport.close()

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            ex = self.exchange
            if ex is not None:  # the server's silence counts from now, not from the pause
                ex.last = self.pool.loop.time()
            self.transport.resume_reading()

    def finish(self, keep_alive: bool) -> None:
        """The answer is read: pool the connection, or close it."""
        self.exchange = None
        # Part of the request body still unsent means the server answered before reading it:
        # the next request would be read behind those bytes (as garbage), so never reuse.
        if (
            keep_alive
            and not self.closed
            and self.error is None
            and not self.transport.get_write_buffer_size()
        ):
            self.pool.put(self)
        else:
            self.abort()

    def abort(self) -> None:
        """Close and forget: the answer was not read to its end (or cannot be trusted)."""
        self.exchange = None
        self.closed = True
        if self.transport is not None:  # None while still connecting: the connect checks
            self.transport.close()
        self.pool.forget(self)


class Pool:
    """Connections of one event loop."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, limit: int, per_host: int, keepalive: float
    ) -> None:
        self.loop = loop
        self.limit = limit if limit > 0 else 1 << 62
        self.per_host = per_host
        self.keepalive = keepalive
        self.closed = False
        self.idle: dict[Origin, list[Connection]] = {}
        self.open: set[Connection] = set()
        self.per_origin: dict[Origin, int] = {}
        #: Callers waiting for room, in turn, with the origin each one wants.
        self.waiters: deque[tuple[Origin, asyncio.Future[None]]] = deque()
        self._sweep: asyncio.TimerHandle | None = None
        #: Names looked up: (host, port) -> (until when, addresses), as aiohttp keeps them.
        self._names: dict[tuple[str, int], tuple[float, Addresses]] = {}
        #: Lookups under way: the callers who want the same name wait for the same one.
        self._looking: dict[tuple[str, int], asyncio.Task[Addresses]] = {}

    def take(self, origin: Origin) -> Connection | None:
        """An idle connection to ``origin`` still fit for use, or None."""
        conns = self.idle.get(origin)
        if not conns:
            return None
        oldest = self.loop.time() - self.keepalive
        while conns:
            conn = conns.pop()
            if conn.closed or conn.transport.is_closing() or conn.idle_since < oldest:
                conn.abort()
                continue
            return conn
        return None

    def put(self, conn: Connection) -> None:
        conn.idle_since = self.loop.time()
        conns = self.idle.get(conn.origin)
        if conns is None:
            conns = self.idle[conn.origin] = []
        conns.append(conn)
        if self._sweep is None:
            self._sweep = self.loop.call_later(self.keepalive, self._sweep_idle)
        self._wake()

    def forget(self, conn: Connection) -> None:
        if conn in self.open:
            self.open.discard(conn)
            left = self.per_origin[conn.origin] - 1
            if left:
                self.per_origin[conn.origin] = left
            else:
                del self.per_origin[conn.origin]
            self._wake()
        conns = self.idle.get(conn.origin)
        if conns and conn in conns:
            conns.remove(conn)

    def _wake(self) -> None:
        """Wake the first waiting caller that can go on now: one with an idle connection to
        its origin or room to open one. (Waking the first in line whatever its origin lost the
        turn when that caller's own origin was still at its per-host limit.)"""
        waiters = self.waiters
        for i, (origin, waiter) in enumerate(waiters):
            if not waiter.done() and (self.idle.get(origin) or self._could_open(origin)):
                del waiters[i]
                waiter.set_result(None)
                return
        while waiters and waiters[0][1].done():
            waiters.popleft()

    def _could_open(self, origin: Origin) -> bool:
        if self.per_host and self.per_origin.get(origin, 0) >= self.per_host:
            return False
        return len(self.open) < self.limit or any(
            conns for other, conns in self.idle.items() if other != origin
        )

    def _room(self, origin: Origin) -> bool:
        if self.per_host and self.per_origin.get(origin, 0) >= self.per_host:
            return False  # never close another origin's connection for a caller that must wait
        if len(self.open) >= self.limit:
            # Full: close an idle connection to another origin to make room, if there is one.
            for other, conns in self.idle.items():
                if other != origin and conns:
                    conns.pop(0).abort()
                    return len(self.open) < self.limit
            return False
        return True

    async def connect(
        self,
        origin: Origin,
        host: str,
        port: int,
        context: ssl.SSLContext | None,
        wait: float | None,
    ) -> Connection:
        """An idle connection or a new one, waiting at most ``wait`` seconds (TimeoutError)."""
        async with asyncio.timeout(wait):
            while True:
                if self.closed:
                    raise ConnectionError("the transport was closed")
                conn = self.take(origin)
                if conn is not None:
                    return conn
                if self._room(origin):
                    break
                waiter = self.loop.create_future()
                self.waiters.append((origin, waiter))
                try:
                    await waiter
                except BaseException:
                    if waiter.done() and not waiter.cancelled():
                        self._wake()  # pass the turn on
                    elif (origin, waiter) in self.waiters:  # timed out or cancelled in line
                        self.waiters.remove((origin, waiter))
                    raise
            conn = Connection(self, origin)
            self.open.add(conn)
            self.per_origin[origin] = self.per_origin.get(origin, 0) + 1
            opening = conn.connecting = self.loop.create_task(self._open(conn, host, port, context))
            task = asyncio.current_task()
            # Cancellations asked of the caller before now (one it caught and went on from)
            # are not its answer to this connect: only those asked while it runs.
            cancels = 0 if task is None else task.cancelling()
            try:
                await opening
            except BaseException as exc:
                # Cancelled just after the connection was made (the task done, this caller not
                # yet resumed): the new socket is ours to close, or it is left open, forgotten.
                conn.abort()
                if (
                    isinstance(exc, asyncio.CancelledError)
                    and self.closed
                    and (task is None or task.cancelling() <= cancels)
                ):  # cancelled by close(), not by our caller
                    raise ConnectionError("the transport was closed") from None
                raise
            finally:
                conn.connecting = None
            if self.closed or conn.closed:  # the pool was closed while this one connected
                conn.abort()
                raise ConnectionError("the transport was closed")
            return conn

    async def _open(
        self, conn: Connection, host: str, port: int, context: ssl.SSLContext | None
    ) -> None:
        """Connect ``conn`` to ``host``: its addresses raced as RFC 8305 says (a host whose first
        address never answers, an IPv6 route that drops packets, costs a quarter second, not
        the connect timeout), then TLS when ``context`` is given."""
        infos = await self._addresses(host, port)
        sock = await aiohappyeyeballs.start_connection(
            infos, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY, interleave=1
        )
        try:
            await self.loop.create_connection(
                lambda: conn,
                sock=sock,
                ssl=context,
                server_hostname=host if context is not None else None,
            )
        except BaseException:
            sock.close()
            raise

    async def _addresses(self, host: str, port: int) -> Addresses:
        """``resolve``, its answer kept ``NAMES_TTL`` seconds: the connections a burst opens
        to one host do not each ask the resolver (a thread each)."""
        key = (host, port)
        kept = self._names.get(key)
        if kept is not None and kept[0] > self.loop.time():
            return kept[1]
        looking = self._looking.get(key)
        if looking is None:
            looking = self._looking[key] = self.loop.create_task(self._look_up(host, port))
            # Its error is heard by the callers still waiting; when every one gave up (a connect
            # timeout shorter than the resolver's), shield no longer asks for it, and each
            # failed lookup would be logged as "Task exception was never retrieved".
            looking.add_done_callback(_heard)
        # Shielded: a caller that gives up (cancelled, timed out) leaves the lookup to the others.
        return await asyncio.shield(looking)

    async def _look_up(self, host: str, port: int) -> Addresses:
        key = (host, port)
        try:
            infos = await resolve(self.loop, host, port)
        finally:
            self._looking.pop(key, None)
        names = self._names
        if len(names) >= NAMES_MAX:  # many hosts: start again rather than grow
            names.clear()
        names[key] = (self.loop.time() + NAMES_TTL, infos)
        return infos

    def _sweep_idle(self) -> None:
        self._sweep = None
        oldest = self.loop.time() - self.keepalive
        left = False
        for conns in self.idle.values():
            for conn in [c for c in conns if c.idle_since <= oldest]:
                conn.abort()
            left = left or bool(conns)
        self.idle = {origin: conns for origin, conns in self.idle.items() if conns}
        if left:
            self._sweep = self.loop.call_later(self.keepalive, self._sweep_idle)

    def close(self) -> None:
        self.closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for looking in list(self._looking.values()):
            looking.cancel()  # its callers' connects are cancelled below
        for conn in list(self.open):
            if conn.connecting is not None:
                conn.connecting.cancel()
            ex = conn.exchange
            # In flight: its caller must hear of it (no timer will). An answer already read in
            # full is not failed: its stream still gives the rest, as send would return it.
            if ex is not None and not ex.parser.done:
                conn.fail(ConnectionError("the transport was closed"))
            if conn.transport is not None:  # at once: no TLS shutdown waiting on the peer (as
                conn.transport.abort()  # aiohttp's connector), the socket gone when this returns
            conn.abort()
        self.idle.clear()
        for _, waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.waiters.clear()


async def closer(pool: Pool, forget: Callable[[Pool], None]) -> AsyncIterator[None]:
    """Parked async generator: ``asyncio.run`` finalises it at shutdown, closing the pool and
    calling ``forget(pool)`` (the transport drops its entry for the loop)."""
    try:
        yield
    finally:
        pool.close()
        forget(pool)
