"""The native transport's own promises over real sockets: one pool per loop, closed with its loop;
idle connections reused, expired or dropped; the head cache bounded; errors typed and clean."""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import Iterator

import orjson
import pytest

from llmrelay.errors import ConfigurationError
from llmrelay.transport import HttpRequest, Timeouts
from llmrelay.transport.native import NativeTransport
from llmrelay.transport.pool import Pool

from ..edge_server import EdgeServer


@pytest.fixture
def edge() -> Iterator[EdgeServer]:
    with EdgeServer.running() as server:
        yield server


def pool_of_closed(t: NativeTransport) -> bool:
    """Whether the running loop still has a pool in ``t`` (False after ``aclose``)."""
    return asyncio.get_running_loop() in t._pools


def pool_of(t: NativeTransport) -> Pool:
    return t._pools[asyncio.get_running_loop()][0]


def test_one_pool_per_loop_closed_when_asyncio_run_ends(edge: EdgeServer) -> None:
    t = NativeTransport()
    req = HttpRequest("GET", edge.url("peer"), {})

    async def two_calls() -> tuple[int, int, Pool]:
        a = await t.send(req, Timeouts())
        b = await t.send(req, Timeouts())
        return orjson.loads(a.body)["port"], orjson.loads(b.body)["port"], pool_of(t)

    async def concurrent() -> set[int]:
        pools: set[int] = set()

        async def one() -> None:
            await t.send(req, Timeouts())
            pools.add(id(pool_of(t)))

        await asyncio.gather(*(one() for _ in range(5)))
        return pools

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        port_a, port_b, first = asyncio.run(two_calls())
        assert port_a == port_b  # the second call reused the pooled connection
        assert first.closed
        assert not first.open
        _, _, second = asyncio.run(two_calls())
        assert second is not first
        assert second.closed
        assert len(asyncio.run(concurrent())) == 1
        assert len(t._pools) == 0  # nothing kept for finished loops
        del first, second
        gc.collect()
    leaks = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == [], [str(w.message) for w in leaks]


def test_an_unclosed_connection_would_be_detected(edge: EdgeServer) -> None:
    """The leak check above can fail: a transport left open at the loop's end does warn."""
    host, port = edge.url("peer").split("//", 1)[1].split("/", 1)[0].split(":")

    async def leak() -> asyncio.BaseTransport:
        transport, _ = await asyncio.get_running_loop().create_connection(
            asyncio.Protocol, host, int(port)
        )
        return transport

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = asyncio.run(leak())
        del s
        gc.collect()
    assert any("unclosed" in str(w.message) for w in caught)


async def test_aclose_closes_this_loops_pool_and_a_new_one_follows(edge: EdgeServer) -> None:
    t = NativeTransport()
    req = HttpRequest("GET", edge.url("peer"), {})
    await t.send(req, Timeouts())
    first = pool_of(t)
    await t.aclose()
    assert first.closed
    assert not first.open
    assert not t._pools
    await t.send(req, Timeouts())
    assert pool_of(t) is not first
    await t.aclose()
    await t.aclose()  # idempotent


async def test_an_expired_idle_connection_is_closed_not_reused(edge: EdgeServer) -> None:
    t = NativeTransport(keepalive_timeout=30)
    req = HttpRequest("GET", edge.url("peer"), {})
    a = orjson.loads((await t.send(req, Timeouts())).body)["port"]
    pool = pool_of(t)
    (conn,) = pool.open
    conn.idle_since -= 31  # as if it had waited past the keep-alive timeout
    b = orjson.loads((await t.send(req, Timeouts())).body)["port"]
    assert a != b
    assert conn.closed
    assert conn not in pool.open
    assert len(pool.open) == 1
    await t.aclose()


async def test_the_sweeper_closes_idle_connections(edge: EdgeServer) -> None:
    loop = asyncio.get_running_loop()
    host, port = edge.url("peer").split("//", 1)[1].split("/", 1)[0].split(":")
    pool = Pool(loop, 10, 0, keepalive=30)
    conn = await pool.connect(("http", host, int(port)), host, int(port), None, 5)
    pool.put(conn)
    assert pool._sweep is not None
    conn.idle_since -= 31
    pool._sweep_idle()
    assert conn.closed
    assert not pool.open
    assert not pool.idle
    assert pool._sweep is None  # nothing left to sweep: no timer kept
    pool.close()


async def test_pool_limit_queues_callers_and_frees_slots(edge: EdgeServer) -> None:
    t = NativeTransport(max_connections=2)
    req = HttpRequest("GET", edge.url("peer"), {})
    answers = await asyncio.gather(*(t.send(req, Timeouts()) for _ in range(20)))
    ports = {orjson.loads(a.body)["port"] for a in answers}
    assert len(ports) <= 2
    assert len(pool_of(t).open) <= 2
    assert not pool_of(t).waiters
    await t.aclose()


async def test_the_head_cache_is_bounded(edge: EdgeServer) -> None:
    t = NativeTransport()
    for i in range(300):
        await t.send(HttpRequest("GET", edge.url("peer"), {"x-n": str(i)}), Timeouts())
    assert 0 < len(t._heads) <= 256
    await t.aclose()


async def test_a_bad_header_is_a_configuration_error_and_nothing_is_sent(edge: EdgeServer) -> None:
    t = NativeTransport()
    with pytest.raises(ConfigurationError) as info:
        await t.send(
            HttpRequest("GET", edge.url("peer"), {"authorization": "Bearer sk-abc\n"}), Timeouts()
        )
    assert "sk-abc" not in str(info.value)
    assert info.value.__cause__ is None
    assert t._pools == {} or not pool_of(t).open
    await t.aclose()


async def test_aclose_while_a_connection_is_being_opened() -> None:
    """A connect still in progress (here: a TLS handshake the server never answers) when the
    pool closes: closing works, and the connect ends in a connection error, not a closed
    connection handed out of a closed pool."""
    from llmrelay.errors import APIConnectionError

    accepted = asyncio.Event()
    held: list[asyncio.BaseTransport] = []

    class Silent(asyncio.Protocol):  # accepts, never answers the handshake
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            held.append(transport)
            accepted.set()

    server = await asyncio.get_running_loop().create_server(Silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    t = NativeTransport()
    task = asyncio.create_task(
        t.send(HttpRequest("GET", f"https://127.0.0.1:{port}/", {}), Timeouts(connect=30))
    )
    await asyncio.wait_for(accepted.wait(), 5)
    (conn,) = pool_of(t).open
    assert conn.transport is None  # the handshake is under way
    await t.aclose()
    with pytest.raises(APIConnectionError, match="closed"):
        await asyncio.wait_for(task, 5)
    assert not pool_of_closed(t)
    for transport in held:
        transport.close()
    server.close()
    await server.wait_closed()
    for _ in range(3):
        await asyncio.sleep(0)  # the closes run their callbacks
    await server.wait_closed()


@pytest.mark.parametrize("mode", ["send", "aiter", "aread"])
async def test_a_compressed_body_cut_short_is_an_error_in_every_mode(mode: str) -> None:
    """The framing is complete but the gzip stream is not: never a silently shorter answer."""
    import zlib

    from llmrelay.errors import APIConnectionError

    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    body = (packer.compress(b"abc" * 1000) + packer.flush())[:-10]  # the trailer cut off
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body)
    done = asyncio.Event()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(head + body)
        await writer.drain()
        await reader.read()  # until the client closes
        writer.close()
        done.set()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/x"
    t = NativeTransport()

    async def read() -> None:
        if mode == "send":
            await t.send(HttpRequest("GET", url, {}), Timeouts(total=10))
            return
        async with t.stream(HttpRequest("GET", url, {}), Timeouts(total=10)) as s:
            if mode == "aread":
                await s.aread()
            else:
                async for _ in s.aiter_bytes():
                    pass

    with pytest.raises(APIConnectionError):
        await read()
    await t.aclose()
    await asyncio.wait_for(done.wait(), 5)
    server.close()
    await server.wait_closed()
