"""A raw asyncio TCP upstream for the transport conformance suite: it writes the exact bytes a
test scripts, so tests can answer what hostile or broken servers answer.

A test gives a handler ``async def handler(conn: Conn) -> None`` run once per accepted connection
(``respond_each`` turns a per-request function into one). When the handler returns with the
connection still open, the server reads until the client closes it, so ``Conn.eof`` tells a test
that the client dropped a connection. The server counts accepted connections and the most that
were open at once. Handler errors other than the client going away are re-raised when the
upstream closes, so a broken script fails its test instead of passing silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

#: Upper bound for a server-side event; tests normally see it in milliseconds.
WAIT = 5.0

#: Secrets every conformance request carries; no error may show them.
SECRET_KEY = "sk-secret-XYZ-4f9a1c7e2b8d"
SECRET_QUERY = "secret-query-9e2d4b7a1f3c"

_GONE = (ConnectionError, asyncio.IncompleteReadError)


@dataclass
class RawRequest:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


@dataclass
class Conn:
    """One accepted connection."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    index: int
    #: Set once the client closed its side (a read gave EOF or the connection was reset).
    eof: asyncio.Event = field(default_factory=asyncio.Event)
    #: Set once the server closed the connection itself (``close``).
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    received: bytearray = field(default_factory=bytearray)

    async def read_request(self) -> RawRequest | None:
        """The next request (Content-Length bodies only), or None when the client closed."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (*_GONE, asyncio.LimitOverrunError):
            self.eof.set()
            return None
        self.received += head
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = [
            (k.strip(), v.strip()) for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)
        ]
        req = RawRequest(method, target, headers, b"")
        length = int(req.header("content-length") or 0)
        if length:
            try:
                req.body = await self.reader.readexactly(length)
            except _GONE:
                self.eof.set()
                return None
            self.received += req.body
        return req

    async def send(self, data: bytes, *, bytewise: bool = False) -> None:
        """Write ``data`` (one byte per write, each drained, when ``bytewise``)."""
        if not bytewise:
            self.writer.write(data)
            await self.writer.drain()
            return
        for i in range(len(data)):
            self.writer.write(data[i : i + 1])
            await self.writer.drain()
            await asyncio.sleep(0)  # a yield (not a delay): the client may read this byte alone

    async def wait_eof(self) -> None:
        """Read and drop everything until the client closes the connection."""
        try:
            while data := await self.reader.read(65536):
                self.received += data
        except ConnectionError:
            pass
        self.eof.set()

    async def close(self) -> None:
        """Close the connection from the server side (a FIN, no reset) and wait until closed."""
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()
        self.closed.set()


Handler = Callable[[Conn], Awaitable[None]]
Responder = Callable[[Conn, RawRequest], Awaitable[None]]


def respond_each(respond: Responder) -> Handler:
    """A handler answering every request of a connection with ``respond(conn, request)``."""

    async def handler(conn: Conn) -> None:
        while not conn.closed.is_set():
            req = await conn.read_request()
            if req is None:
                return
            await respond(conn, req)

    return handler


def reply(body: bytes = b"", *, status: str = "200 OK", headers: str = "") -> bytes:
    """An HTTP/1.1 answer with a Content-Length; ``headers`` are extra lines with CRLFs."""
    return (
        f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{headers}\r\n".encode("latin-1")
        + body
    )


def chunked(*pieces: bytes) -> bytes:
    """``pieces`` as chunks, ended by the last chunk (no trailers)."""
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p) + b"0\r\n\r\n"


@dataclass
class RawUpstream:
    handler: Handler
    host: str = "127.0.0.1"
    #: SO_RCVBUF of accepted sockets (small: a client's large body fills the buffers sooner).
    rcvbuf: int | None = None
    port: int = 0
    accepts: int = 0
    active: int = 0
    max_active: int = 0
    conns: list[Conn] = field(default_factory=list)
    #: Set at each accept (tests clear it to wait for the next one).
    accepted: asyncio.Event = field(default_factory=asyncio.Event)
    errors: list[BaseException] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def url(self, path: str = "/v1/x") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}?key={SECRET_QUERY}"

    async def _on_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = Conn(reader, writer, len(self.conns))
        self.conns.append(conn)
        self.accepts += 1
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        self.accepted.set()
        try:
            await self.handler(conn)
            if not conn.closed.is_set():
                await conn.wait_eof()
        except _GONE:
            conn.eof.set()
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # a broken test script: reported when the upstream closes
            self.errors.append(exc)
        finally:
            self.active -= 1
            writer.close()
            self._tasks.discard(task)

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.rcvbuf is not None:  # inherited by accepted sockets
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        try:
            sock.bind((self.host, 0))
        except OSError:
            sock.close()
            raise
        self._server = await asyncio.start_server(self._on_conn, sock=sock)
        self.port = sock.getsockname()[1]

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for conn in self.conns:
            conn.writer.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        if self.errors:
            raise AssertionError(f"the raw upstream's script failed: {self.errors[0]!r}")


@contextlib.asynccontextmanager
async def raw_upstream(
    handler: Handler, *, host: str = "127.0.0.1", rcvbuf: int | None = None
) -> AsyncIterator[RawUpstream]:
    up = RawUpstream(handler, host, rcvbuf)
    await up.start()
    try:
        yield up
    finally:
        await up.aclose()


def in_turn(*answers: bytes, bytewise: bool = False, close: bool = False) -> Handler:
    """A handler answering the n-th request the upstream gets (over all its connections) with
    ``answers[n]``, the last one repeating; closing the connection after each, when ``close``."""
    count = 0

    async def respond(conn: Conn, req: RawRequest) -> None:
        nonlocal count
        data = answers[min(count, len(answers) - 1)]
        count += 1
        await conn.send(data, bytewise=bytewise)
        if close:
            await conn.close()

    return respond_each(respond)
