"""Attacks on ``Script(once=True)`` (a call Redis runs twice counts once), on real Redis:
answers a second run gives back, resends after a timeout, scripts flushed between or within a
pipeline, forked workers, and what the once keys leave behind."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest

from llmrelay.core.engine import CallOptions
from llmrelay.core.layers import CallContext
from llmrelay.errors import RateLimitedError, StateStoreError
from llmrelay.providers.table import make_deployment
from llmrelay.reliability.breaker_shared import SharedCircuitBreaker
from llmrelay.reliability.budgets_ledger import RedisLedger
from llmrelay.reliability.ratelimit import RateLimiter
from llmrelay.state import RedisStore
from llmrelay.state import redis_store as rs
from llmrelay.state.redis_store import Script
from llmrelay.state.scripts import LEDGER_RESERVE, LEDGER_SETTLE, RL_ACQUIRE, RL_RELEASE
from llmrelay.types import ChatRequest, Message, build_params

from .. import redis_services
from .redis_proxy import RedisProxy

# pytest fixtures
redis_prefix = redis_services.redis_prefix
redis_store = redis_services.redis_store
redis_url = redis_services.redis_url

_NONE = [0, 0] * 7
_DEP = make_deployment("openai", "gpt-4o-mini", api_key="sk-test", base_url="http://x/v1")
_REQ = ChatRequest([Message("user", "hi")], build_params({"max_tokens": 10}))
_CTX = CallContext(CallOptions(wait_for_rate_limit=False), "t", 0.0)


def _acquire_args(pairs: Sequence[float], *, permit: str = "p", cl: int = 0) -> list[Any]:
    """RL_ACQUIRE's ARGV: (limit, cost) pairs for the first dimensions, none for the rest."""
    return [permit, 60_000, cl, *pairs, *_NONE[len(pairs) :], 60_000, 60_000]


async def _twice(
    store: RedisStore,
    monkeypatch: pytest.MonkeyPatch,
    script: Script,
    keys: list[str],
    args: list[Any],
) -> tuple[Any, Any]:
    """The same call run twice (one id), as a resend after a lost answer runs it."""
    monkeypatch.setattr(rs, "_calls", itertools.repeat(10**9 + next(_serial)))
    try:
        return await store.eval(script, keys, args), await store.eval(script, keys, args)
    finally:
        monkeypatch.setattr(rs, "_calls", itertools.count(2 * 10**9 + 10**6 * next(_serial)))


_serial = itertools.count()


@pytest.mark.services
async def test_a_second_run_answers_exactly_what_the_first_did(
    redis_store: RedisStore, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every shape each once script returns, decoded by redis-py (ints, strings of fractional
    # and huge numbers as Lua's tostring wrote them, empty strings).
    tag = "{" + redis_prefix + "rl}"
    h, z = tag + ":h", tag + ":z"
    got: dict[str, tuple[Any, Any]] = {}
    got["admitted"] = await _twice(
        redis_store, monkeypatch, RL_ACQUIRE, [h, z], _acquire_args([2, 1])
    )
    await redis_store.eval(RL_ACQUIRE, [h, z], _acquire_args([2, 1]))
    got["refused"] = await _twice(
        redis_store, monkeypatch, RL_ACQUIRE, [h, z], _acquire_args([2, 1])
    )
    day = [*[0, 0] * 6, 1, 1]
    await redis_store.eval(RL_ACQUIRE, [h + "d", z], _acquire_args(day))
    got["refused a day"] = await _twice(
        redis_store, monkeypatch, RL_ACQUIRE, [h + "d", z], _acquire_args(day)
    )
    huge = [0, 0, 123456789012345678, 10**18]
    got["never fits"] = await _twice(
        redis_store, monkeypatch, RL_ACQUIRE, [h, z], _acquire_args(huge)
    )
    tenth = [0, 0, 0.1, 0.30000000000000004]
    got["never fits 0.1"] = await _twice(
        redis_store, monkeypatch, RL_ACQUIRE, [h, z], _acquire_args(tenth)
    )
    await redis_store.call("hset", h + "b", "blk", "1e300")
    blocked = [*_acquire_args([2, 1])[:-1], 1e14 + 0.125]
    got["blocked"] = await _twice(redis_store, monkeypatch, RL_ACQUIRE, [h + "b", z], blocked)
    await redis_store.eval(RL_ACQUIRE, [h + "c", z + "c"], _acquire_args([], permit="a", cl=1))
    got["concurrent"] = await _twice(
        redis_store,
        monkeypatch,
        RL_ACQUIRE,
        [h + "c", z + "c"],
        _acquire_args([], permit="b", cl=1),
    )
    release = ["p", *[0, 0] * 7, 0, 0, 0, 0, 0, -1, -1, -1, -1, 60_000, 60_000]
    got["release"] = await _twice(redis_store, monkeypatch, RL_RELEASE, [h, z], release)
    a, b = "{" + redis_prefix + "budget}:a", "{" + redis_prefix + "budget}:b"
    got["reserved"] = await _twice(
        redis_store, monkeypatch, LEDGER_RESERVE, [a, b], [0.1, 10, 0, 1, 0]
    )
    got["over"] = await _twice(
        redis_store, monkeypatch, LEDGER_RESERVE, [a, b], [0.95, 10, 0, 1, 0]
    )
    got["settled"] = await _twice(redis_store, monkeypatch, LEDGER_SETTLE, [a, b], [0.1, 0.1, 0, 0])
    for name, (first, second) in got.items():
        assert second == first, name
        assert (
            [type(x) for x in second] == [type(x) for x in first]
            if isinstance(first, list)
            else type(second) is type(first)
        ), name
    assert got["admitted"][0] == [1, b"0", b""]
    assert got["refused"][0][::2] == [0, b"rpm"]
    assert float(got["refused a day"][0][1]) > 86_000_000
    assert got["never fits"][0] == [-1, b"1.2345678901235e+17", b"tpm"]
    assert got["never fits 0.1"][0] == [-1, b"0.1", b"tpm"]
    assert got["blocked"][0] == [0, b"1e+14", b"blocked"]
    assert got["concurrent"][0] == [0, b"0", b"concurrent"]
    assert [got[k][0] for k in ("release", "reserved", "over", "settled")] == [1, -1, 1, 1]
    assert await redis_store.call("hgetall", a) == {b"r": b"0", b"s": b"0.1"}  # counted once


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[RedisProxy]:
    p = RedisProxy()
    await p.start()
    try:
        yield p
    finally:
        await p.aclose()


@pytest.mark.services
async def test_an_answer_that_never_comes_counts_once_however_long_the_timeout(
    proxy: RedisProxy, redis_store: RedisStore, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The answer is not lost but never arrives: redis-py resends after the store's ``timeout``.
    # A store may be given a timeout longer than the answers are kept (ONCE_TTL_MS, 10 s):
    # then the resend found no answer and ran again. (To scale: answers kept 50 ms, timeout
    # 0.3 s -- a real-time test, bounded by the timeout.)
    monkeypatch.setattr(rs, "ONCE_TTL_MS", 50)
    store = RedisStore(proxy.url, prefix=redis_prefix, timeout=0.3, retry_interval=0)
    try:
        proxy.mute_reply_to = LEDGER_RESERVE.sha.encode()
        assert await RedisLedger(store).reserve([("k", 10.0)], 1.0) is None
        assert proxy.lost == 1
    finally:
        await store.aclose()
    assert await RedisLedger(redis_store).spent("k") == (0.0, 1.0)


@pytest.mark.services
async def test_a_request_held_past_the_timeout_then_delivered_counts_once(
    proxy: RedisProxy, redis_store: RedisStore, redis_prefix: str
) -> None:
    # The first send is held on the way (not run yet); the resend runs; then the first arrives.
    store = RedisStore(proxy.url, prefix=redis_prefix, timeout=0.3, retry_interval=0)
    try:
        proxy.hold = LEDGER_RESERVE.sha.encode()
        assert await RedisLedger(store).reserve([("k", 10.0)], 1.0) is None
        assert proxy.held.is_set()
        proxy.release.set()
        # The held request reaches Redis, which answers it from its id.
        await asyncio.wait_for(proxy.held_answered.wait(), 5)
    finally:
        await store.aclose()
    assert await RedisLedger(redis_store).spent("k") == (0.0, 1.0)


@pytest.mark.services
async def test_scripts_flushed_mid_pipeline_and_before_a_resend_rerun_with_the_same_ids(
    proxy: RedisProxy, redis_store: RedisStore, redis_prefix: str
) -> None:
    # One pipeline: two admissions whose script Redis knows around a reservation whose script
    # it lost (SCRIPT FLUSH): the admissions run, the reservation answers NOSCRIPT. That answer
    # never comes; while redis-py waits for it, the scripts are flushed again, so its resend
    # answers NOSCRIPT three times and the store loads both scripts and reruns all three: the
    # admissions must be recognised by their ids (they ran), the reservation runs once.
    client = await redis_store._client()
    await client.script_flush()
    await client.script_load(RL_ACQUIRE.source)
    tag = "{" + redis_prefix + "rl}"
    budget = "{" + redis_prefix + "budget}:k"
    calls: list[tuple[Script, Sequence[str], Sequence[Any]]] = [
        (RL_ACQUIRE, [tag + ":a", tag + ":z"], _acquire_args([1, 1])),
        (LEDGER_RESERVE, [budget], [1, 10, 0]),
        (RL_ACQUIRE, [tag + ":b", tag + ":z"], _acquire_args([1, 1])),
    ]
    store = RedisStore(proxy.url, prefix=redis_prefix, timeout=0.3, retry_interval=0)
    try:
        proxy.mute_reply_to = RL_ACQUIRE.sha.encode()
        first = asyncio.ensure_future(store.eval_many(calls))
        for _ in range(200):
            await asyncio.sleep(0.005)
            if proxy.lost:
                break
        assert proxy.lost == 1
        await client.script_flush()
        assert await first == [[1, b"0", b""], -1, [1, b"0", b""]]
        again = await store.eval_many(calls)  # new ids: each limit of 1 is spent now
    finally:
        await store.aclose()
    assert [r[0] for r in (again[0], again[2])] == [0, 0]
    assert again[1] == -1
    assert await redis_store.call("hget", budget, "r") == b"2"


async def _keys(store: RedisStore, prefix: str) -> list[bytes]:
    client = await store._client()
    return [k async for k in client.scan_iter(match="*" + prefix + "*", count=500)]


@pytest.mark.services
async def test_once_keys_expire_and_a_failing_script_leaves_none(
    redis_store: RedisStore, redis_prefix: str
) -> None:
    ledger = RedisLedger(redis_store)
    assert await ledger.reserve([("k", 10.0)], 1.0) is None
    await ledger.settle(["k"], 1.0, 0.5)
    budget = "{" + redis_prefix + "budget}:bad"
    await redis_store.call("set", budget, "a string")
    with pytest.raises(StateStoreError, match="WRONGTYPE"):
        await redis_store.eval(LEDGER_RESERVE, [budget], [1, 10, 0])
    with pytest.raises(StateStoreError):
        await redis_store.eval(LEDGER_SETTLE, [budget + "2"], ["x", 0, 0])
    once = [k for k in await _keys(redis_store, redis_prefix) if b":once:" in k]
    assert len(once) == 2, once  # the reserve and the settle; the failed calls stored nothing
    for key in once:
        assert 0 < await redis_store.call("pttl", key) <= rs.ONCE_TTL_MS


async def _reserve_in_child(url: str, prefix: str, n: int) -> int:
    store = RedisStore(url, prefix=prefix, retry_interval=0)
    try:
        ledger = RedisLedger(store)
        return sum([await ledger.reserve([("k", 100.0)], 1.0) is None for _ in range(n)])
    finally:
        await store.aclose()


def _forked(work: Callable[[], int]) -> int:
    """``work()`` (a count up to 100) run in a forked child; 255 if it raised."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 255
        try:
            code = work()
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


@pytest.mark.services
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_workers_each_count_their_own_reservations(
    redis_url: str, redis_prefix: str
) -> None:
    # Workers forked after llmrelay was imported (gunicorn --preload, multiprocessing's fork,
    # Celery's prefork) drew the same call ids: the second worker's reservations got the
    # first's answers (-1, reserved) and reserved nothing -- a budget overspent.
    for _ in range(2):
        assert _forked(lambda: asyncio.run(_reserve_in_child(redis_url, redis_prefix, 10))) == 10

    async def seen() -> tuple[float, float]:
        store = RedisStore(redis_url, prefix=redis_prefix)
        try:
            return await RedisLedger(store).spent("k")
        finally:
            await store.aclose()

    assert asyncio.run(seen()) == (0.0, 20.0)


@pytest.mark.services
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_workers_hold_their_own_concurrency_slots(redis_url: str, redis_prefix: str) -> None:
    # A limiter made before the fork: both workers named their permits alike (the parent's pid
    # and the limiter's address, then the same count), so the second worker's permit took the
    # first's slot (one member of the slot set) and let a call too many through.
    store = RedisStore(redis_url, prefix=redis_prefix, retry_interval=0)
    limiter = RateLimiter({"openai/gpt-4o-mini": {"concurrent": 2}}, store=store)

    async def take(n: int) -> int:
        admitted = 0
        for _ in range(n):
            try:
                admitted += await limiter.acquire(_DEP, _REQ, _CTX) is not None
            except RateLimitedError:
                pass
        await store.aclose()
        return admitted  # the permits stay held: the worker ends without releasing them

    assert _forked(lambda: asyncio.run(take(1))) == 1
    assert _forked(lambda: asyncio.run(take(2))) == 1  # one slot of two is the first worker's


@pytest.mark.services
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_workers_each_count_their_breaker_failures(
    redis_url: str, redis_prefix: str
) -> None:
    # A breaker made before the fork: both workers' first outcomes carried one id, so the
    # second worker's failure was taken for the first's, sent again, and not counted.
    store = RedisStore(redis_url, prefix=redis_prefix, retry_interval=0)
    breaker = SharedCircuitBreaker("dep:forked", store, failure_threshold=2, recovery_timeout=30)

    async def fail() -> int:
        await breaker.aon_failure(await breaker.aacquire(), RuntimeError("boom"))
        await store.aclose()
        return 1

    assert [_forked(lambda: asyncio.run(fail())) for _ in range(2)] == [1, 1]

    async def state() -> str:
        try:
            return await breaker.refresh()
        finally:
            await store.aclose()

    assert asyncio.run(state()) == "open", "two failures of two workers counted as one"
