"""Attack tests on the Redis rate limiter's give-back of a cancelled acquire (fcfd220): the
other awaits of ``RedisBuckets.acquire`` after Redis admitted a scope."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from llmrelay.core.engine import CallOptions
from llmrelay.core.layers import CallContext
from llmrelay.errors import StateStoreError
from llmrelay.providers.table import make_deployment
from llmrelay.reliability.ratelimit import RateLimiter
from llmrelay.reliability.ratelimit_buckets import Charge
from llmrelay.reliability.ratelimit_redis import RedisBuckets
from llmrelay.state import RedisStore
from llmrelay.types import ChatRequest, Message, build_params

from .. import redis_services
from .slot_again import slot_free_again

# pytest fixtures
redis_prefix = redis_services.redis_prefix
redis_store = redis_services.redis_store
redis_url = redis_services.redis_url

_NONE = (0.0,) * 7
_ONE = (1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0)


@pytest.mark.services
async def test_an_acquire_cancelled_during_its_all_or_nothing_rollback_frees_its_slot(
    redis_store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Scope A admits the call (a slot taken, 900 s lease), scope B refuses it (its only slot
    # is held): the acquire gives A back with a second round trip. A caller that leaves
    # while that round trip waits (for a pooled connection, say) must not leave A's slot
    # held for the lease -- the same leak fcfd220 fixed for the first round trip.
    buckets = RedisBuckets(redis_store)
    a = Charge("dep:attack-a", _NONE, _ONE, 1)
    b = Charge("dep:attack-b", _NONE, _ONE, 1)
    assert await buckets.acquire([b], "holder", 900.0) is None  # B's only slot is taken

    real = redis_store.eval_many
    calls = [0]
    stuck, never = asyncio.Event(), asyncio.Event()

    async def rollback_waits(batch: Any, **kw: Any) -> Any:
        calls[0] += 1
        if calls[0] == 2:  # the rollback release: not sent yet when the caller leaves
            stuck.set()
            await never.wait()
        return await real(batch, **kw)

    monkeypatch.setattr(redis_store, "eval_many", rollback_waits)
    task = asyncio.ensure_future(buckets.acquire([a, b], "leaver", 900.0))
    await asyncio.wait_for(stuck.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    monkeypatch.setattr(redis_store, "eval_many", real)
    for _ in range(100):  # a give-back in the background is allowed its round trip
        refusal = await buckets.acquire([a], "next", 900.0)
        if refusal is None:
            break
        await asyncio.sleep(0.01)
    assert refusal is None, f"A's only slot is still held by the cancelled acquire: {refusal}"


@pytest.mark.services
async def test_an_acquire_whose_answer_was_lost_after_redis_admitted_it_frees_its_slot(
    redis_store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Redis ran the admitting script, then the answer was lost (the socket timeout passed on
    # a slow server, the connection broke): the limiter fails open -- the call goes ahead
    # unenforced and its release does nothing -- but the slot Redis took stays held for the
    # 900 s lease. Once Redis answers again, a deployment of one concurrent slot is refused
    # for 15 minutes by a call that finished long ago.
    dep = make_deployment("openai", "gpt-4o-mini", api_key="sk-test", base_url="http://x/v1")
    limiter = RateLimiter({"openai/gpt-4o-mini": {"concurrent": 1}}, store=redis_store)

    def req() -> ChatRequest:
        return ChatRequest([Message("user", "hi")], build_params({"max_tokens": 10}))

    def ctx() -> CallContext:
        return CallContext(CallOptions(wait_for_rate_limit=False), "t", 0.0)

    real = redis_store.eval_many

    async def answer_lost(calls: Any, **kw: Any) -> Any:
        await real(calls, **kw)
        raise StateStoreError("Redis at 127.0.0.1:6379 failed: Timeout reading from socket")

    monkeypatch.setattr(redis_store, "eval_many", answer_lost)
    permit = await limiter.acquire(dep, req(), ctx())  # fail-open: unenforced
    monkeypatch.setattr(redis_store, "eval_many", real)
    await limiter.release(permit, None, None, None)  # the call is over
    await slot_free_again(
        limiter, dep, req, ctx, "a call whose admission answer was lost still holds the only slot"
    )


@pytest.mark.services
async def test_a_timeout_after_redis_admitted_frees_the_slot_once_the_store_is_back(
    redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As above through the real store: the socket timeout comes after the scripts ran, the
    # store marks itself down for retry_interval (refusing at once until then), the limiter
    # fails open. The give-back waits out the pause and frees the slot.
    from redis.exceptions import TimeoutError as RedisTimeout

    store = RedisStore(redis_url, prefix=redis_prefix, retry_interval=0.05)
    try:
        dep = make_deployment("openai", "gpt-4o-mini", api_key="sk-test", base_url="http://x/v1")
        limiter = RateLimiter({"openai/gpt-4o-mini": {"concurrent": 1}}, store=store)
        req = ChatRequest([Message("user", "hi")], build_params({"max_tokens": 10}))
        real = store._pipeline
        lost = [True]

        async def timed_out(client: Any, calls: Any) -> Any:
            out = await real(client, calls)
            if lost[0]:
                lost[0] = False
                raise RedisTimeout("Timeout reading from socket")
            return out

        monkeypatch.setattr(store, "_pipeline", timed_out)
        permit = await limiter.acquire(dep, req, CallContext(CallOptions(), "t", 0.0))
        assert limiter.store_errors == 1  # fail-open: the call went ahead unenforced
        assert not store.available
        await limiter.release(permit, None, None, None)
        ctx = CallContext(CallOptions(wait_for_rate_limit=False), "t", 0.0)
        while not store.available:  # (while it is down, calls go ahead unenforced)
            await asyncio.sleep(0.01)
        await slot_free_again(
            limiter,
            dep,
            lambda: req,
            lambda: ctx,
            "the slot a lost answer took is still held after the store came back",
            enforced=True,
        )
        assert limiter.store_errors == 1
    finally:
        await store.aclose()
