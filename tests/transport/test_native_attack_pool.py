"""Attacks on the native transport's pool (``pool.py``): closing it, or cancelling the caller,
while a connection is being opened or while callers wait for room; compressed bodies cut short
(the pool reused afterwards) or made of several concatenated streams. Real sockets throughout;
no sleeps (``asyncio.sleep(0)`` only yields a turn of the loop). Leaks are counted as file
descriptors of this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import zlib
from collections.abc import AsyncIterator
from typing import cast

import pytest

from llmrelay.errors import APIConnectionError, APITimeoutError
from llmrelay.transport import HttpRequest, Timeouts
from llmrelay.transport.native import NativeTransport
from llmrelay.transport.pool import Connection, Pool

from .conftest import MODES, SAFETY, TransportFactory, answer, opened, raises, req
from .raw_upstream import WAIT, Conn, RawRequest, in_turn, raw_upstream, reply, respond_each


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def pool_of(t: NativeTransport) -> Pool | None:
    entry = t._pools.get(asyncio.get_running_loop())
    return None if entry is None else entry[0]


async def until(cond: object, what: str) -> None:
    """Yield turns of the loop until ``cond()`` (bounded: a hang fails with ``what``)."""
    for _ in range(100_000):
        if cond():  # type: ignore[operator]
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never: {what}")


def opening(t: NativeTransport) -> Connection | None:
    """The connection being opened in ``t``'s pool of this loop, if any."""
    pool = pool_of(t)
    for conn in () if pool is None else pool.open:
        if conn.connecting is not None:
            return conn
    return None


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[tuple[int, asyncio.Event, list[asyncio.BaseTransport]]]:
    """A TCP server that accepts and never says a word (a TLS handshake to it hangs); it closes
    its end when the client closes (so a client's leaked socket keeps two fds open)."""
    accepted = asyncio.Event()
    held: list[asyncio.BaseTransport] = []

    class Silent(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            held.append(transport)
            accepted.set()

    server = await asyncio.get_running_loop().create_server(Silent, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], accepted, held
    finally:
        server.close()
        for transport in held:
            transport.close()
        await server.wait_closed()
        for _ in range(3):
            await asyncio.sleep(0)  # the closes run their callbacks


# --------------------------------------------------------------------------- connect races


@pytest.mark.parametrize("how", ["cancel", "aclose"])
async def test_a_connect_that_succeeds_as_its_caller_is_cancelled_is_closed(how: str) -> None:
    """The connection is made (the connect task is done) but the caller has not resumed yet
    when it is cancelled, or when the pool closes. The new socket must be closed there and
    then, not left open and forgotten (an fd leak, and a server that never sees the client
    go). A cancelled caller still gets its cancellation; a closed pool, a connection error."""
    async with raw_upstream(respond_each(lambda c, r: c.send(reply(b"ok")))) as up:
        t = NativeTransport()
        task = asyncio.create_task(t.send(req(up.url()), SAFETY))
        conn: Connection | None = None

        def connected() -> bool:
            nonlocal conn
            conn = conn or opening(t)
            return conn is not None and conn.connecting is not None and conn.connecting.done()

        await until(connected, "the connect task is done before its caller resumes")
        assert conn is not None
        assert conn.transport is not None
        if how == "cancel":
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        else:
            await t.aclose()
            await raises(APIConnectionError, task)
        assert conn.transport.is_closing(), "the new connection was left open"
        await asyncio.wait_for(up.conns[0].eof.wait(), WAIT)  # the server sees the client go
        pool = pool_of(t)
        assert pool is None or not pool.open
        await t.aclose()


def others() -> set[asyncio.Task[object]]:
    return {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}


async def test_aclose_during_many_tls_handshakes_leaks_nothing() -> None:
    """Twenty callers in TLS handshakes that never end when the pool closes: each gets
    APIConnectionError, no socket and no task (the connect tasks) is left behind."""
    base = fds()
    async with silent_server() as (port, _, held):
        t = NativeTransport()
        url = f"https://127.0.0.1:{port}/x"
        tasks = [
            asyncio.create_task(t.send(HttpRequest("GET", url, {}), Timeouts(connect=60)))
            for _ in range(20)
        ]
        await until(lambda: len(held) == 20, "all twenty connections accepted")
        pool = pool_of(t)
        assert pool is not None
        await until(
            lambda: sum(c.connecting is not None for c in pool.open) == 20, "all connecting"
        )
        await t.aclose()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, APIConnectionError) for r in results), results
        assert not pool.open
        assert not pool.waiters
        # Only the listening socket is left: the client closed its ends, so the server did too.
        await until(lambda: fds() == base + 1, "the client sockets are closed")
    await until(lambda: fds() == base, "every socket is closed")
    assert not others()


async def test_aclose_during_tcp_connects_that_get_no_answer_leaks_nothing() -> None:
    """Connects still waiting for the server's SYN-ACK (its accept queue is full, so Linux
    drops their SYNs) when the pool closes: each caller gets APIConnectionError and every
    socket is closed."""
    listener = socket.socket()
    fill: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(3):  # fill the accept queue (never accepted)
            s = socket.socket()
            fill.append(s)
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.connect(("127.0.0.1", port))
        base = fds()
        t = NativeTransport()
        url = f"http://127.0.0.1:{port}/x"
        tasks = [
            asyncio.create_task(t.send(HttpRequest("GET", url, {}), Timeouts(connect=60)))
            for _ in range(5)
        ]
        await until(lambda: fds() == base + 5, "five sockets connecting")
        await t.aclose()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, APIConnectionError) for r in results), results
        await until(lambda: fds() == base, "every socket is closed")
        assert not others()
    finally:
        for s in fill:
            s.close()
        listener.close()


@pytest.mark.parametrize("how", ["cancel", "timeout", "cancel-then-aclose", "aclose-then-cancel"])
async def test_a_caller_cancelled_during_a_tls_handshake_keeps_its_cancellation(how: str) -> None:
    """Cancelling the caller (``task.cancel()``, or its own ``asyncio.timeout``) in the middle
    of a TLS handshake is a cancellation (or that timeout's TimeoutError), never turned into
    "the transport was closed", even when the pool closes in the same turn; the half-open
    socket is closed."""
    base = fds()
    async with silent_server() as (port, accepted, _held):
        t = NativeTransport()
        url = f"https://127.0.0.1:{port}/x"
        timer: list[asyncio.Timeout] = []

        async def call() -> None:
            async with asyncio.timeout(None) as cm:
                timer.append(cm)
                await t.send(HttpRequest("GET", url, {}), Timeouts(connect=60))

        task = asyncio.create_task(call())
        await asyncio.wait_for(accepted.wait(), WAIT)
        await until(lambda: opening(t) is not None, "a connection being opened")
        if how == "timeout":
            timer[0].reschedule(asyncio.get_running_loop().time())  # expires now
            with pytest.raises(TimeoutError) as info:
                await task
            assert not isinstance(info.value, APITimeoutError | APIConnectionError)
        else:
            if how == "aclose-then-cancel":
                closing = asyncio.create_task(t.aclose())
                await asyncio.sleep(0)
            task.cancel()
            if how == "cancel-then-aclose":
                closing = asyncio.create_task(t.aclose())
            with pytest.raises(asyncio.CancelledError):
                await task
            if how != "cancel":
                await closing
        pool = pool_of(t)
        assert pool is None or not pool.open
        # Only the listening socket is left: the client closed its end, so the server did too.
        await until(lambda: fds() == base + 1, "the client socket is closed")
        await t.aclose()
    assert not others()


async def test_callers_waiting_for_room_when_the_pool_closes_hear_of_it() -> None:
    """One connection allowed, its request unanswered, five callers queued for it: closing the
    pool ends all six with APIConnectionError (none hangs, none gets another error), and a
    caller cancelled in the queue just before keeps its cancellation."""
    got = asyncio.Event()

    async def respond(conn: Conn, request: RawRequest) -> None:
        got.set()
        await conn.wait_eof()  # never answers

    base = fds()
    async with raw_upstream(respond_each(respond)) as up:
        t = NativeTransport(max_connections=1)
        first = asyncio.create_task(t.send(req(up.url()), SAFETY))
        await asyncio.wait_for(got.wait(), WAIT)
        queued = [asyncio.create_task(t.send(req(up.url()), SAFETY)) for _ in range(5)]
        pool = pool_of(t)
        assert pool is not None
        await until(lambda: len(pool.waiters) == 5, "five callers waiting for room")
        queued[2].cancel()
        await asyncio.sleep(0)
        await t.aclose()
        results = await asyncio.gather(first, *queued, return_exceptions=True)
        assert isinstance(results[3], asyncio.CancelledError), results
        del results[3]
        assert all(isinstance(r, APIConnectionError) for r in results), results
        assert not pool.open
        assert not pool.waiters
        await asyncio.wait_for(up.conns[0].eof.wait(), WAIT)
        assert up.accepts == 1
    await until(lambda: fds() == base, "every socket is closed")


def refused_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_refused_connects_with_callers_waiting_for_room() -> None:
    """One connection allowed, ten callers, the port refuses: each caller in turn gets
    APIConnectionError (the turn passes on after a failed connect), and the pool is left empty
    and usable."""
    base = fds()
    t = NativeTransport(max_connections=1)
    url = f"http://127.0.0.1:{refused_port()}/x"
    results = await asyncio.gather(
        *(t.send(HttpRequest("GET", url, {}), SAFETY) for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(r, APIConnectionError) for r in results), results
    pool = pool_of(t)
    assert pool is not None
    assert not pool.open
    assert not pool.waiters
    assert not pool.per_origin
    async with raw_upstream(respond_each(lambda c, r: c.send(reply(b"ok")))) as up:
        assert (await t.send(req(up.url()), SAFETY)).body == b"ok"
        await t.aclose()
    await until(lambda: fds() == base, "every socket is closed")


# --------------------------------------------------------------------------- compressed bodies

TEXT = b'{"id": "x", "choices": [{"text": "hello world"}]}' * 3


def _packed(coding: str) -> tuple[str, bytes]:
    wbits = {"gzip": 31, "deflate": 15, "raw-deflate": -15}[coding]
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    return ("gzip" if coding == "gzip" else "deflate"), packer.compress(TEXT) + packer.flush()


def _framed(coding: str, body: bytes, framing: str) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\n" % coding.encode()
    if framing == "length":
        return head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    if framing == "chunked":
        return head + b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    return head + b"Connection: close\r\n\r\n" + body


@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw-deflate"])
@pytest.mark.parametrize("mode", MODES)
async def test_a_compressed_body_cut_at_any_byte_fails_and_the_pool_stays_clean(
    mode: str, coding: str, framing: str
) -> None:
    """A compressed body whose framing is complete but whose compressed stream is cut after
    any number of bytes is an APIConnectionError in every mode (never a shorter answer), the
    whole body is the whole text, and the request after each one, on the same transport, gets
    its own answer (no leftover bytes, no failed connection reused)."""
    name, packed = _packed(coding)
    cuts = [*range(1, len(packed)), len(packed)]
    turn = 0

    async def respond(conn: Conn, request: RawRequest) -> None:
        nonlocal turn
        if request.target.startswith("/next"):
            await conn.send(reply(request.target.split("?")[0].encode()))
            return
        await conn.send(_framed(name, packed[: cuts[turn]], framing))
        turn += 1
        if framing == "close":
            await conn.close()

    async with raw_upstream(respond_each(respond)) as up, opened(NativeTransport) as t:
        for i, cut in enumerate(cuts):
            if cut < len(packed):
                await raises(APIConnectionError, answer(t, req(up.url()), mode))
            else:
                assert (await answer(t, req(up.url()), mode)).body == TEXT
            nxt = await answer(t, req(up.url(f"/next{i}")), mode)
            assert nxt.body == f"/next{i}".encode(), cut


# --------------------------------------------------------------------------- after completion


def _exchange(t: NativeTransport) -> object:
    pool = pool_of(t)
    for conn in () if pool is None else pool.open:
        if conn.exchange is not None:
            return conn.exchange
    return None


@pytest.mark.parametrize("mode", MODES)
async def test_a_timer_firing_as_the_answer_completes_is_ignored(mode: str) -> None:
    """The request's timer fires when the whole answer is in but its caller has not resumed
    yet (``send``), or is still reading it (a stream): the answer is complete, so it is neither
    an error nor a reason to drop the connection, which serves the next request. (The expiry
    is simulated: the deadline is moved into the past and the timer run.)"""
    async with (
        raw_upstream(respond_each(lambda c, r: c.send(reply(b"complete answer")))) as up,
        opened(NativeTransport) as t,
    ):
        fired = False

        async def fire_at_completion() -> None:
            nonlocal fired
            while True:
                ex = _exchange(t)
                if ex is not None and ex.parser.done:  # type: ignore[attr-defined]
                    ex.deadline = ex.loop.time() - 1  # type: ignore[attr-defined]
                    ex.stop_timer()  # type: ignore[attr-defined]
                    ex._on_timer()  # type: ignore[attr-defined]
                    fired = True
                    return
                await asyncio.sleep(0)

        firing = asyncio.create_task(fire_at_completion())
        timeouts = Timeouts(connect=WAIT, total=WAIT)
        if mode == "send":
            body = (await t.send(req(up.url()), timeouts)).body
        else:
            async with t.stream(req(up.url()), timeouts) as s:
                await asyncio.wait_for(firing, WAIT)
                body = await s.aread() if mode == "aread" else b"".join([p async for p in s])
        await asyncio.wait_for(firing, WAIT)
        assert fired
        assert body == b"complete answer"
        assert (await answer(t, req(up.url()), mode)).body == b"complete answer"
        assert up.accepts == 1  # the connection was kept


@pytest.mark.parametrize("mode", ["aiter", "aread"])
async def test_a_stream_read_in_full_before_aclose_still_reads_to_its_end(mode: str) -> None:
    """The whole answer is in (and checked: it is gzip, complete) when the transport is
    closed while its caller still reads the stream: ``send`` in the same spot returns the
    answer, so the stream gives the rest of the body too, not 'the transport was closed'."""
    name, packed = _packed("gzip")

    async def respond(conn: Conn, request: RawRequest) -> None:
        await conn.send(_framed(name, packed, "length"))

    async with raw_upstream(respond_each(respond)) as up, opened(NativeTransport) as t:
        async with t.stream(req(up.url()), SAFETY) as s:
            ex = s._ex  # type: ignore[attr-defined]
            while not ex.parser.done:
                ex.waiter = ex.loop.create_future()
                await asyncio.wait_for(ex.waiter, WAIT)
            await t.aclose()
            body = await s.aread() if mode == "aread" else b"".join([p async for p in s])
        assert body == TEXT


# --------------------------------------------------------------------------- churn


@pytest.mark.parametrize("seed", range(8))
async def test_cancellations_at_random_turns_keep_the_pool_consistent(seed: int) -> None:
    """Forty callers over two origins through a pool of three connections (two per origin),
    some cancelled at random turns of the loop (waiting for room, connecting, reading), then
    the pool closed in the middle of it all: every caller gets its own answer, its
    cancellation or APIConnectionError; the pool's counts agree with its connections at every
    step; nothing is left open or pending at the end."""
    import random

    rng = random.Random(seed)

    async def respond(conn: Conn, request: RawRequest) -> None:
        for _ in range(rng.randrange(3)):
            await asyncio.sleep(0)
        await conn.send(reply(request.target.split("?")[0].encode()))

    base = fds()
    async with raw_upstream(respond_each(respond)) as a, raw_upstream(respond_each(respond)) as b:
        t = NativeTransport(max_connections=3, max_connections_per_host=2)
        ups = [a, b]
        tasks = [
            asyncio.create_task(t.send(req(ups[i % 2].url(f"/r{i}")), SAFETY)) for i in range(40)
        ]
        close_at = rng.randrange(5, 60)
        for turn in range(200):
            pool = pool_of(t)
            if pool is not None:
                assert len(pool.open) == sum(pool.per_origin.values()) <= 3
                assert all(c in pool.open for conns in pool.idle.values() for c in conns)
            if turn == close_at:
                await t.aclose()
            for task in tasks:
                if not task.done() and rng.random() < 0.03:
                    task.cancel()
            await asyncio.sleep(0)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for i, r in enumerate(results):
            if isinstance(r, BaseException):
                assert isinstance(r, asyncio.CancelledError | APIConnectionError), repr(r)
            else:
                assert r.body == f"/r{i}".encode()
        await t.aclose()
    await until(lambda: fds() == base, "every socket is closed")
    assert not others()


# --------------------------------------------------------------------------- TLS

#: A self-signed certificate for 127.0.0.1 (valid to 2126) and its key: test data only.
TLS = os.path.join(os.path.dirname(__file__), "tls")


class _MuteAfterAnswer(asyncio.Protocol):
    """A TLS server (over ``ssl.MemoryBIO``) that answers one request, then reads nothing more:
    it never answers the client's close_notify, as a hung or hostile server would not."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.request = b""
        self.mute = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.mute:
            return
        self.incoming.write(data)
        with contextlib.suppress(ssl.SSLWantReadError):
            self.tls.do_handshake()
            while b"\r\n\r\n" not in self.request:
                self.request += self.tls.read(65536)
            self.tls.write(reply(b"ok"))
            self.mute = True
        self.transport.write(self.outgoing.read())


async def test_aclose_does_not_wait_on_a_tls_peer_that_never_answers_close_notify() -> None:
    """Closing the pool ends its TLS connections at once (as aiohttp's connector does by
    default), instead of a polite TLS shutdown that waits up to 30 s for the peer's
    close_notify with the socket open, past the end of ``aclose``."""
    import llmrelay.transport.native as native

    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(os.path.join(TLS, "cert.pem"), os.path.join(TLS, "key.pem"))
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _MuteAfterAnswer(server_side), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    trusting = ssl.create_default_context(cafile=os.path.join(TLS, "cert.pem"))
    base = fds()
    saved, native._SSL = native._SSL, trusting
    try:
        t = NativeTransport()
        got = await t.send(HttpRequest("GET", f"https://127.0.0.1:{port}/x", {}), SAFETY)
        assert got.body == b"ok"
        assert fds() == base + 2  # the client's socket and the server's
        await t.aclose()
        # The client's socket closed, the server saw it go and closed its own.
        await until(lambda: fds() == base, "the TLS connection is closed")
    finally:
        native._SSL = saved
        server.close()
        await server.wait_closed()


async def test_aclose_during_a_connect_of_a_task_that_once_swallowed_a_cancellation() -> None:
    """A task that was cancelled once and went on (it caught the CancelledError without
    ``uncancel``: cleanup after a client went away, say) keeps a non-zero ``cancelling()``
    count. A connect of its that the pool's closing ends is still "the transport was closed"
    (APIConnectionError), not a CancelledError nobody asked for now: only a cancellation
    requested during the connect is the caller's (as ``asyncio.timeout`` tells them apart)."""
    async with silent_server() as (port, accepted, _):
        t = NativeTransport()
        url = f"https://127.0.0.1:{port}/x"
        started = asyncio.Event()

        async def cleanup_after_cancel() -> object:
            try:
                started.set()
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                pass  # went on regardless
            try:
                return await t.send(HttpRequest("GET", url, {}), Timeouts(connect=60))
            except BaseException as exc:
                return exc

        task = asyncio.create_task(cleanup_after_cancel())
        await started.wait()
        task.cancel()
        await asyncio.wait_for(accepted.wait(), WAIT)
        await until(lambda: opening(t) is not None, "a connection being opened")
        await t.aclose()
        assert isinstance(await task, APIConnectionError)


# --------------------------------------------------------------------------- concatenated members


def _member(wbits: int, data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    return packer.compress(data) + packer.flush()


#: Bodies of compressed members one after another (RFC 1952 allows several gzip members; a
#: server that compresses each flush separately sends them): the answer is all of them.
MEMBERS = {
    "gzip-two": ("gzip", _member(31, b"first ") + _member(31, b"second"), b"first second"),
    "gzip-three-one-empty": (
        "gzip",
        _member(31, b"a") + _member(31, b"") + _member(31, b"b"),
        b"ab",
    ),
    "deflate-two": ("deflate", _member(15, b"first ") + _member(15, b"second"), b"first second"),
    "raw-deflate-two": (
        "deflate",
        _member(-15, b"first ") + _member(-15, b"second"),
        b"first second",
    ),
}
#: Bytes after the end of the compressed data that start no member: corrupt, not ignored.
TRAILING = {
    "gzip-garbage": ("gzip", _member(31, b"whole") + b"garbage!!"),
    "gzip-zeros": ("gzip", _member(31, b"whole") + bytes(8)),
    "deflate-garbage": ("deflate", _member(15, b"whole") + b"garbage!!"),
    "raw-deflate-garbage": ("deflate", _member(-15, b"whole") + b"garbage!!"),
}


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
@pytest.mark.parametrize("case", list(MEMBERS))
@pytest.mark.parametrize("mode", MODES)
async def test_concatenated_compressed_members_are_all_decoded(
    transport_factory: TransportFactory, mode: str, case: str, bytewise: bool
) -> None:
    """Only the first member was decoded: the rest of the answer silently dropped."""
    coding, packed, expected = MEMBERS[case]
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nContent-Length: %d\r\n\r\n"
    answer_bytes = head % (coding.encode(), len(packed)) + packed
    async with (
        raw_upstream(in_turn(answer_bytes, bytewise=bytewise)) as up,
        opened(transport_factory) as t,
    ):
        assert (await answer(t, req(up.url()), mode)).body == expected


@pytest.mark.parametrize("case", list(TRAILING))
@pytest.mark.parametrize("mode", MODES)
async def test_bytes_after_the_compressed_data_are_an_error(
    transport_factory: TransportFactory, mode: str, case: str
) -> None:
    """They were dropped without a word: an answer with trailing bytes the client did not
    read is not the answer the server meant."""
    coding, packed = TRAILING[case]
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nContent-Length: %d\r\n\r\n"
    async with (
        raw_upstream(in_turn(head % (coding.encode(), len(packed)) + packed)) as up,
        opened(transport_factory) as t,
    ):
        await raises(APIConnectionError, answer(t, req(up.url()), mode))


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
@pytest.mark.parametrize("mode", MODES)
async def test_a_compressed_body_of_exactly_max_response_bytes_is_read(
    transport_factory: TransportFactory, mode: str, coding: str
) -> None:
    """The limit is the most a body may hold: a streamed compressed body that decodes to
    exactly ``max_response_bytes`` in one read failed as too large (what one read may expand
    to, in a stream, was capped one byte short of the limit), where ``send`` returned it."""
    text = b"x" * 1000
    packed = _member(31 if coding == "gzip" else 15, text)
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nContent-Length: %d\r\n\r\n"
    async with (
        raw_upstream(in_turn(head % (coding.encode(), len(packed)) + packed)) as up,
        opened(transport_factory) as t,
    ):
        got = await answer(t, req(up.url(), max_response_bytes=len(text)), mode)
        assert got.body == text
