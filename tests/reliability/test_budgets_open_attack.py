"""ATTACK (adversarial tests of RedisLedger failing open, budgets_ledger._hold_lost): real Redis
behind the proxy that drops answers or connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from llmrelay.reliability import budgets_ledger
from llmrelay.reliability.budgets_ledger import RedisLedger
from llmrelay.state import RedisStore

from .. import redis_services
from .redis_proxy import RedisProxy

# pytest fixtures
redis_prefix = redis_services.redis_prefix
redis_store = redis_services.redis_store
redis_url = redis_services.redis_url


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[RedisProxy]:
    p = RedisProxy()
    await p.start()
    try:
        yield p
    finally:
        await p.aclose()


@pytest.fixture
async def proxied(proxy: RedisProxy, redis_prefix: str) -> AsyncIterator[RedisStore]:
    store = RedisStore(proxy.url, prefix=redis_prefix, retry_interval=0)
    try:
        yield store
    finally:
        await store.aclose()


@pytest.mark.services
async def test_a_call_whose_settle_failed_in_an_outage_is_not_held_by_a_later_settle(
    proxied: RedisStore, redis_store: RedisStore, proxy: RedisProxy
) -> None:
    """ATTACK: Redis unreachable for a moment. Failing open, calls A and B go on (their reserves
    never ran), the background jobs' tries fail, and A's settle fails too (logged: what A spent
    is not recorded, and nothing of A's is held). Redis back, B's settle makes held every lost
    reservation on its keys -- A's included, running A's reserve for the first time -- and
    releases only B's: A's dollar stays reserved with no call left to release it (for good on
    a "total" budget), and every call of the outage whose settle failed adds its own."""
    seen = RedisLedger(redis_store)
    ledger = RedisLedger(proxied, on_store_error="open")
    proxy.refuse = True
    assert await ledger.reserve([("k", 10.0)], 1.0) is None  # A
    assert await ledger.reserve([("k", 10.0)], 1.0) is None  # B
    jobs = await asyncio.gather(*list(budgets_ledger._releasing), return_exceptions=True)
    assert len(jobs) == 2
    await ledger.settle(["k"], 1.0, 0.5)  # A's: Redis still unreachable
    proxy.refuse = False
    await ledger.settle(["k"], 1.0, 0.25)  # B's
    spent, reserved = await seen.spent("k")
    assert reserved == 0.0, f"${reserved} held by no call in flight"
    assert spent == 0.25
