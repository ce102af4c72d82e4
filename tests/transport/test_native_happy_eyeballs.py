"""Connecting to a host of several addresses (``pool._open``): they are raced as RFC 8305 says,
so an address that never answers (an IPv6 route that drops packets, a dead replica in DNS)
costs a quarter second, not the connect timeout; a name is looked up; every address refused is
a connection error; a caller cancelled during the race leaves no socket open. Real sockets: an
address "that never answers" is a listener whose accept queue is full (Linux drops the SYNs)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from llmrelay.errors import APIConnectionError, APITimeoutError
from llmrelay.transport import HttpRequest, Timeouts
from llmrelay.transport import pool as pool_module
from llmrelay.transport.native import NativeTransport

from .raw_upstream import in_turn, raw_upstream, reply, respond_each


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@contextlib.contextmanager
def _unanswering() -> Iterator[int]:
    """A port on 127.0.0.1 whose connects get no SYN-ACK (its accept queue is full)."""
    listener = socket.socket()
    fill: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(3):
            s = socket.socket()
            fill.append(s)
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.connect(("127.0.0.1", port))
        yield port
    finally:
        for s in fill:
            s.close()
        listener.close()


def _refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


def _addresses(monkeypatch: pytest.MonkeyPatch, ports: list[int]) -> list[str]:
    """Make the host ``multi.test`` resolve to 127.0.0.1 at each of ``ports`` in turn (the
    port each address carries is the one connected to)."""
    asked: list[str] = []

    async def resolve(loop: Any, host: str, port: int) -> Sequence[Any]:
        asked.append(host)
        await asyncio.sleep(0)  # as a lookup does: others may ask meanwhile
        return [
            (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", p))
            for p in ports
        ]

    monkeypatch.setattr(pool_module, "resolve", resolve)
    return asked


async def test_an_address_that_never_answers_costs_the_race_delay_not_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with raw_upstream(in_turn(reply(b"ok"))) as up:
        with _unanswering() as dead:
            asked = _addresses(monkeypatch, [dead, up.port])
            t = NativeTransport()
            try:
                # One address at a time, the first connect would wait out the 60 s timeout
                # (the test's own bound fails it long before).
                async with asyncio.timeout(20):
                    r = await t.send(
                        HttpRequest("GET", f"http://multi.test:{up.port}/x", {}),
                        Timeouts(connect=60),
                    )
            finally:
                await t.aclose()
    assert (r.status, r.body) == (200, b"ok")
    assert asked == ["multi.test"]


async def test_every_address_refused_is_a_connection_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _addresses(monkeypatch, [_refused_port(), _refused_port()])
    t = NativeTransport()
    try:
        with pytest.raises(APIConnectionError):
            await t.send(HttpRequest("GET", "http://multi.test:1/x", {}), Timeouts(connect=10))
    finally:
        await t.aclose()


async def test_a_name_is_looked_up_and_its_addresses_tried() -> None:
    # "localhost" may resolve to ::1 first; the upstream listens on 127.0.0.1 alone.
    async with raw_upstream(in_turn(reply(b"hi"))) as up:
        t = NativeTransport()
        try:
            r = await t.send(
                HttpRequest("GET", f"http://localhost:{up.port}/x", {}), Timeouts(connect=10)
            )
        finally:
            await t.aclose()
    assert r.body == b"hi"


async def test_an_ip_literal_is_not_looked_up(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_lookup(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an IP literal went to the resolver")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", no_lookup)
    infos = await pool_module.resolve(asyncio.get_running_loop(), "127.0.0.1", 80)
    assert [i[4] for i in infos] == [("127.0.0.1", 80)]
    infos = await pool_module.resolve(asyncio.get_running_loop(), "::1", 80)
    assert [i[4][:2] for i in infos] == [("::1", 80)]


async def test_a_caller_cancelled_during_the_race_leaves_no_socket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with _unanswering() as dead, _unanswering() as dead2:
        _addresses(monkeypatch, [dead, dead2])
        base = _fds()
        t = NativeTransport()
        task = asyncio.create_task(
            t.send(HttpRequest("GET", "http://multi.test:1/x", {}), Timeouts(connect=60))
        )
        for _ in range(100_000):  # until a socket is connecting
            if _fds() > base:
                break
            await asyncio.sleep(0)
        assert _fds() > base
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await t.aclose()
        for _ in range(100):
            if _fds() == base:
                break
            await asyncio.sleep(0)
        assert _fds() == base


def _ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6(), reason="no IPv6 loopback")
async def test_an_ipv6_literal_url_connects_without_a_lookup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def no_lookup(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an IP literal went to the resolver")

    async with raw_upstream(in_turn(reply(b"v6")), host="::1") as up:
        monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", no_lookup)
        t = NativeTransport()
        try:
            r = await t.send(
                HttpRequest("GET", f"http://[::1]:{up.port}/x", {}), Timeouts(connect=10)
            )
        finally:
            await t.aclose()
    assert r.body == b"v6"


async def test_a_name_of_no_address_is_a_connection_error_naming_no_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A resolver that answers nothing, or fails: a typed connection error that names the
    host, not the URL's password or query."""

    async def nothing(*args: Any, **kwargs: Any) -> list[Any]:
        return []

    async def fails(*args: Any, **kwargs: Any) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    for lookup in (nothing, fails):
        monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", lookup)
        t = NativeTransport()
        try:
            with pytest.raises(APIConnectionError) as e:
                await t.send(
                    HttpRequest("GET", "http://u:pw-s3cret@nowhere.test:81/x?key=q-s3cret", {}),
                    Timeouts(connect=10),
                )
        finally:
            await t.aclose()
        assert "nowhere.test" in str(e.value)
        assert "s3cret" not in str(e.value)


async def test_a_lookup_that_never_answers_is_a_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    never: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def hangs(*args: Any, **kwargs: Any) -> Any:
        return await never

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", hangs)
    t = NativeTransport()
    try:
        with pytest.raises(APITimeoutError):
            await t.send(HttpRequest("GET", "http://slow.test/x", {}), Timeouts(connect=0.05))
        assert not t._pools or all(not p.open for p, *_ in t._pools.values())
    finally:
        await t.aclose()


async def test_aclose_during_a_lookup_ends_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    started = asyncio.Event()
    never: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def hangs(*args: Any, **kwargs: Any) -> Any:
        started.set()
        return await never

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", hangs)
    t = NativeTransport()
    task = asyncio.create_task(
        t.send(HttpRequest("GET", "http://slow.test/x", {}), Timeouts(connect=60))
    )
    await started.wait()
    await t.aclose()
    with pytest.raises(APIConnectionError):
        await task


async def test_a_burst_of_connections_to_one_name_looks_it_up_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Three requests at once open three connections: they wait for one lookup, not three.
    gate = asyncio.Event()

    async def respond(conn: Any, req: Any) -> None:
        await gate.wait()  # every request holds its connection until all three are open
        await conn.send(reply(b"ok"))

    async with raw_upstream(respond_each(respond)) as up:
        asked = _addresses(monkeypatch, [up.port])
        t = NativeTransport()
        try:
            tasks = [
                asyncio.create_task(
                    t.send(HttpRequest("GET", f"http://multi.test:{up.port}/x", {}), Timeouts())
                )
                for _ in range(3)
            ]
            for _ in range(100_000):
                if len(up.conns) == 3:
                    break
                await asyncio.sleep(0)
            gate.set()
            answers = await asyncio.gather(*tasks)
        finally:
            await t.aclose()
    assert [a.body for a in answers] == [b"ok"] * 3
    assert len(up.conns) == 3
    assert asked == ["multi.test"]


@pytest.mark.parametrize("ttl", [10.0, 0.0])
async def test_a_name_is_kept_for_its_time_then_asked_again(
    monkeypatch: pytest.MonkeyPatch, ttl: float
) -> None:
    # Each answer closes its connection, so every request opens a new one.
    monkeypatch.setattr(pool_module, "NAMES_TTL", ttl)
    async with raw_upstream(in_turn(reply(b"ok", headers="Connection: close\r\n"))) as up:
        asked = _addresses(monkeypatch, [up.port])
        t = NativeTransport()
        try:
            for _ in range(2):
                r = await t.send(
                    HttpRequest("GET", f"http://multi.test:{up.port}/x", {}), Timeouts()
                )
                assert r.body == b"ok"
        finally:
            await t.aclose()
    assert len(up.conns) == 2
    assert len(asked) == (1 if ttl else 2)
