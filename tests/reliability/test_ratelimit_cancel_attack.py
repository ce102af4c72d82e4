"""Attack tests on the Redis rate limiter's give-back of a cancelled acquire (fcfd220): the
other awaits of ``RedisBuckets.acquire`` after Redis admitted a scope."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from llmrelay.reliability.ratelimit_buckets import Charge
from llmrelay.reliability.ratelimit_redis import RedisBuckets
from llmrelay.state import RedisStore

from .. import redis_services

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

    async def rollback_waits(batch: Any) -> Any:
        calls[0] += 1
        if calls[0] == 2:  # the rollback release: not sent yet when the caller leaves
            stuck.set()
            await never.wait()
        return await real(batch)

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
