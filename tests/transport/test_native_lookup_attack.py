"""Attacks on the pool's name lookups (``Pool._addresses``/``_look_up``): a resolver that fails
then succeeds, a lookup shared by callers of whom one gives up or all fail, a name of many dead
addresses, and one transport used from two event loops at once (each loop's pool looks up for
itself: no lookup, task or cached answer crosses loops). Real sockets; only the resolver is
scripted (``loop.getaddrinfo``, as the system's would answer)."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from llmrelay.errors import APIConnectionError
from llmrelay.transport import HttpRequest, Timeouts
from llmrelay.transport.native import NativeTransport

from .raw_upstream import in_turn, raw_upstream, reply


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _info(port: int) -> tuple[Any, ...]:
    return (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", port))


@pytest.fixture
def refused_ports() -> Iterator[Callable[[int], list[int]]]:
    """Ports of 127.0.0.1 that refuse connections: bound, never listening, and held until the
    test ends. (A port freed at once can be taken by another program before the test connects
    to it: seen with two test runs side by side.)"""
    held: list[socket.socket] = []

    def make(n: int) -> list[int]:
        for _ in range(n):
            s = socket.socket()
            held.append(s)
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in held[-n:]]

    yield make
    for s in held:
        s.close()


def _script(
    loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> list[asyncio.Future[Any]]:
    """Each lookup on ``loop`` waits for a future the test settles (in the order asked)."""
    asked: list[asyncio.Future[Any]] = []

    async def getaddrinfo(host: str, port: int, **kwargs: Any) -> Any:
        fut = loop.create_future()
        asked.append(fut)
        return await fut

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    return asked


async def _until(cond: Callable[[], bool]) -> None:
    for _ in range(100_000):
        if cond():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened")


def _get(port: int) -> HttpRequest:
    return HttpRequest("GET", f"http://named.test:{port}/x", {})


async def test_a_failed_lookup_is_not_kept_and_the_next_call_asks_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked = _script(asyncio.get_running_loop(), monkeypatch)
    async with raw_upstream(in_turn(reply(b"ok"))) as up:
        t = NativeTransport()
        try:
            first = asyncio.create_task(t.send(_get(up.port), Timeouts()))
            await _until(lambda: len(asked) == 1)
            asked[0].set_exception(socket.gaierror(socket.EAI_AGAIN, "try again"))
            with pytest.raises(APIConnectionError):
                await first
            second = asyncio.create_task(t.send(_get(up.port), Timeouts()))
            await _until(lambda: len(asked) == 2)
            asked[1].set_result([_info(up.port)])
            assert (await second).body == b"ok"
        finally:
            await t.aclose()


async def test_a_caller_giving_up_leaves_the_shared_lookup_to_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked = _script(asyncio.get_running_loop(), monkeypatch)
    async with raw_upstream(in_turn(reply(b"ok"))) as up:
        t = NativeTransport()
        try:
            quitter = asyncio.create_task(t.send(_get(up.port), Timeouts()))
            stayer = asyncio.create_task(t.send(_get(up.port), Timeouts()))
            await _until(lambda: len(asked) == 1)
            for _ in range(10):  # both wait on the one lookup
                await asyncio.sleep(0)
            assert len(asked) == 1
            quitter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await quitter
            asked[0].set_result([_info(up.port)])
            assert (await stayer).body == b"ok"
            assert len(asked) == 1
        finally:
            await t.aclose()


async def test_a_shared_lookup_that_fails_fails_each_caller_and_poisons_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    asked = _script(loop, monkeypatch)
    seen: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, ctx: seen.append(ctx))
    try:
        async with raw_upstream(in_turn(reply(b"ok"))) as up:
            t = NativeTransport()
            try:
                calls = [asyncio.create_task(t.send(_get(up.port), Timeouts())) for _ in range(3)]
                await _until(lambda: len(asked) == 1)
                for _ in range(10):
                    await asyncio.sleep(0)
                calls[0].cancel()  # one gives up; the lookup then fails for the other two
                asked[0].set_exception(OSError("resolver down"))
                results = await asyncio.gather(*calls, return_exceptions=True)
                assert isinstance(results[0], asyncio.CancelledError)
                assert all(isinstance(r, APIConnectionError) for r in results[1:])
                # Every caller gave up before a lookup that then fails: nobody hears of it,
                # and nothing is logged as an exception never retrieved.
                lone = asyncio.create_task(t.send(_get(up.port), Timeouts()))
                await _until(lambda: len(asked) == 2)
                lone.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await lone
                asked[1].set_exception(OSError("resolver down"))
                for _ in range(10):
                    await asyncio.sleep(0)
                gc.collect()
                again = asyncio.create_task(t.send(_get(up.port), Timeouts()))
                await _until(lambda: len(asked) == 3)
                asked[2].set_result([_info(up.port)])
                assert (await again).body == b"ok"
            finally:
                await t.aclose()
    finally:
        loop.set_exception_handler(None)
    assert seen == []


async def test_a_name_of_many_refused_addresses_then_a_live_one_connects_and_leaks_nothing(
    monkeypatch: pytest.MonkeyPatch, refused_ports: Callable[[int], list[int]]
) -> None:
    loop = asyncio.get_running_loop()
    dead = refused_ports(40)
    before = _fds()
    async with raw_upstream(in_turn(reply(b"ok"))) as up:

        async def getaddrinfo(host: str, port: int, **kwargs: Any) -> Any:
            return [_info(p) for p in [*dead, up.port]]

        monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
        t = NativeTransport()
        try:
            assert (await t.send(_get(up.port), Timeouts())).body == b"ok"
        finally:
            await t.aclose()
    assert _fds() <= before


async def test_a_name_of_only_refused_addresses_is_a_short_connection_error(
    monkeypatch: pytest.MonkeyPatch, refused_ports: Callable[[int], list[int]]
) -> None:
    loop = asyncio.get_running_loop()
    dead = refused_ports(200)

    async def getaddrinfo(host: str, port: int, **kwargs: Any) -> Any:
        return [_info(p) for p in dead]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    t = NativeTransport()
    before = _fds()
    try:
        with pytest.raises(APIConnectionError) as err:
            await t.send(_get(80), Timeouts())
    finally:
        await t.aclose()
    assert _fds() <= before
    assert len(str(err.value)) < 500  # not one line per address
    assert "Connect call failed" in str(err.value)


def test_two_loops_sharing_a_transport_look_up_each_for_itself() -> None:
    """Loop A's lookup hangs; loop B, in another thread, asks for the same name and must get
    its own lookup and its answer (not wait on, or reuse, a task of loop A)."""
    t = NativeTransport()
    a_asked = threading.Event()
    release_a = threading.Event()
    results: dict[str, Any] = {}

    def run_a() -> None:
        async def main() -> None:
            loop = asyncio.get_running_loop()
            async with raw_upstream(in_turn(reply(b"A"))) as up:

                async def getaddrinfo(host: str, port: int, **kwargs: Any) -> Any:
                    a_asked.set()
                    await loop.run_in_executor(None, release_a.wait)
                    return [_info(up.port)]

                loop.getaddrinfo = getaddrinfo  # type: ignore[method-assign]
                try:
                    results["A"] = (await t.send(_get(up.port), Timeouts())).body
                finally:
                    await t.aclose()

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported below
            results["A"] = exc

    def run_b() -> None:
        async def main() -> None:
            loop = asyncio.get_running_loop()
            async with raw_upstream(in_turn(reply(b"B"))) as up:

                async def getaddrinfo(host: str, port: int, **kwargs: Any) -> Any:
                    return [_info(up.port)]

                loop.getaddrinfo = getaddrinfo  # type: ignore[method-assign]
                try:
                    results["B"] = (await t.send(_get(up.port), Timeouts())).body
                finally:
                    await t.aclose()

        try:
            asyncio.run(main())
        except BaseException as exc:
            results["B"] = exc

    ta = threading.Thread(target=run_a)
    ta.start()
    try:
        assert a_asked.wait(5)
        tb = threading.Thread(target=run_b)
        tb.start()
        tb.join(10)
        assert not tb.is_alive()
        assert results.get("B") == b"B"
    finally:
        release_a.set()
        ta.join(10)
    assert results.get("A") == b"A"
