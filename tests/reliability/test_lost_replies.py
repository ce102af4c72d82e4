"""A script's answer lost after Redis ran it: redis-py sends the command again on a fresh
connection (its one retry, kept for pooled connections a restart broke), and Redis runs it a
second time. Budget and rate-limit scripts must count once all the same (real Redis, behind a
proxy that drops the answer)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from llmrelay.core.engine import CallOptions
from llmrelay.core.layers import CallContext
from llmrelay.errors import RateLimitedError, StateStoreError
from llmrelay.providers.table import make_deployment
from llmrelay.reliability import budgets_ledger
from llmrelay.reliability.budgets_ledger import RedisLedger
from llmrelay.reliability.ratelimit import RateLimiter
from llmrelay.state import RedisStore
from llmrelay.state.scripts import LEDGER_RESERVE, LEDGER_SETTLE, RL_ACQUIRE, RL_RELEASE
from llmrelay.types import ChatRequest, Message, Response, Usage, build_params

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
async def test_a_reservation_whose_answer_is_lost_is_reserved_once(
    proxied: RedisStore, redis_store: RedisStore, proxy: RedisProxy
) -> None:
    # Reserved twice, settled once: the second dollar stays reserved for good (a "total"
    # budget's keys never expire), refusing the budget's later calls.
    seen, ledger = RedisLedger(redis_store), RedisLedger(proxied)
    proxy.lose_reply_to = LEDGER_RESERVE.sha.encode()
    assert await ledger.reserve([("k", 10.0)], 1.0) is None
    assert proxy.lost == 1  # the answer was lost, and the call still got its result
    assert await seen.spent("k") == (0.0, 1.0)
    await ledger.settle(["k"], 1.0, 1.0)
    assert await seen.spent("k") == (1.0, 0.0)


@pytest.mark.services
async def test_a_settle_whose_answer_is_lost_charges_once(
    proxied: RedisStore, redis_store: RedisStore, proxy: RedisProxy
) -> None:
    seen, ledger = RedisLedger(redis_store), RedisLedger(proxied)
    assert await ledger.reserve([("k", 10.0)], 2.0) is None
    proxy.lose_reply_to = LEDGER_SETTLE.sha.encode()
    await ledger.settle(["k"], 2.0, 1.5)
    assert proxy.lost == 1
    assert await seen.spent("k") == (1.5, 0.0)


@pytest.mark.services
async def test_a_refused_reservation_whose_answer_is_lost_is_still_refused(
    proxied: RedisStore, proxy: RedisProxy
) -> None:
    # The answer of the run that counted is the one the caller gets (not a second run's).
    ledger = RedisLedger(proxied)
    assert await ledger.reserve([("a", 10.0), ("b", 1.0)], 0.5) is None
    proxy.lose_reply_to = LEDGER_RESERVE.sha.encode()
    assert await ledger.reserve([("a", 10.0), ("b", 1.0)], 0.75) == 1
    assert proxy.lost == 1


def _rpm_limiter(store: RedisStore) -> RateLimiter:
    return RateLimiter({"openai/gpt-4o-mini": {"rpm": 2, "concurrent": 5}}, store=store)


_DEP = make_deployment("openai", "gpt-4o-mini", api_key="sk-test", base_url="http://x/v1")


def _req() -> ChatRequest:
    return ChatRequest([Message("user", "hi")], build_params({"max_tokens": 10}))


def _ctx() -> CallContext:
    return CallContext(CallOptions(wait_for_rate_limit=False), "t", 0.0)


@pytest.mark.services
async def test_an_admission_whose_answer_is_lost_counts_one_request(
    proxied: RedisStore, proxy: RedisProxy
) -> None:
    # Counted twice, a limit of 2 per minute refuses the second call of the minute.
    limiter = _rpm_limiter(proxied)
    proxy.lose_reply_to = RL_ACQUIRE.sha.encode()
    first = await limiter.acquire(_DEP, _req(), _ctx())
    assert proxy.lost == 1
    assert first is not None
    assert first.enforced
    second = await limiter.acquire(_DEP, _req(), _ctx())
    assert second is not None
    assert second.enforced
    with pytest.raises(RateLimitedError):
        await limiter.acquire(_DEP, _req(), _ctx())


@pytest.mark.services
async def test_a_release_whose_answer_is_lost_gives_back_once(
    proxied: RedisStore, proxy: RedisProxy
) -> None:
    # A release hands back the units an estimate took beyond what was used: run twice, it
    # hands them back twice and the scope admits more than its limit.
    limiter = RateLimiter({"openai/gpt-4o-mini": {"tpm": 1000}}, store=proxied)
    used = Response(text="x", usage=Usage(input_tokens=449, output_tokens=1))
    ctx = _ctx()
    big = ChatRequest([Message("user", "hi")], build_params({"max_tokens": 600}))
    permit = await limiter.acquire(_DEP, big, ctx)
    assert permit is not None
    proxy.lose_reply_to = RL_RELEASE.sha.encode()
    await limiter.release(permit, used, None, None)  # ~150 of its ~600 tokens come back
    assert proxy.lost == 1
    admitted = 0
    for _ in range(4):
        try:
            p = await limiter.acquire(_DEP, big, ctx)
        except RateLimitedError:
            break
        assert p is not None
        admitted += 1
    # 450 used: another ~600 does not fit in the minute's 1,000 (given back twice, it did).
    assert admitted == 0, f"{admitted} more calls of ~600 tokens admitted after 450 of 1,000"


@pytest.mark.services
async def test_a_reservation_whose_answer_and_resend_are_both_lost_is_released(
    proxied: RedisStore, redis_store: RedisStore, proxy: RedisProxy
) -> None:
    # Both the call and redis-py's one resend lose their answer: the caller is refused with
    # StateStoreError, yet Redis reserved the dollar -- which nobody settles (a "total"
    # budget's keys never expire). The ledger asks again under the same call id in the
    # background and releases what that call reserved.
    seen = RedisLedger(redis_store)
    ledger = RedisLedger(proxied)
    proxy.lose_reply_to, proxy.lose_times = LEDGER_RESERVE.sha.encode(), 2
    with pytest.raises(StateStoreError):
        await ledger.reserve([("k", 10.0)], 1.0)
    assert proxy.lost == 2
    await _background_done()
    assert await seen.spent("k") == (0.0, 0.0), "a reservation nobody will settle stayed held"


async def _background_done() -> None:
    """Wait for the ledger's background work on lost reservations (it raises what failed)."""
    await asyncio.gather(*list(budgets_ledger._releasing))


@pytest.mark.services
@pytest.mark.parametrize("job_first", [False, True], ids=["settle-first", "job-first"])
async def test_failing_open_a_reservation_whose_answers_are_lost_is_settled_once(
    proxied: RedisStore, redis_store: RedisStore, proxy: RedisProxy, job_first: bool
) -> None:
    # Failing open, the call goes on, holding (as far as it knows) what it reserved, and its
    # settle releases that. The background job must not release it too: released twice, the
    # second release takes the $2 another call in flight holds, and the budget lets $2 more
    # through than its limit. Whichever comes first, the call's dollar is settled once.
    seen = RedisLedger(redis_store)
    assert await seen.reserve([("k", 10.0)], 2.0) is None  # another call in flight
    ledger = RedisLedger(proxied, on_store_error="open")
    proxy.lose_reply_to, proxy.lose_times = LEDGER_RESERVE.sha.encode(), 2
    assert await ledger.reserve([("k", 10.0)], 1.0) is None
    assert proxy.lost == 2
    if job_first:
        await _background_done()
        assert await seen.spent("k") == (0.0, 3.0)  # held until the call settles
    await ledger.settle(["k"], 1.0, 0.75)
    await _background_done()
    assert await seen.spent("k") == (0.75, 2.0)
    await seen.settle(["k"], 2.0, 2.0)
    assert await seen.spent("k") == (2.75, 0.0)


@pytest.mark.services
async def test_failing_open_a_refusal_whose_answers_are_lost_is_held_until_settled(
    proxied: RedisStore, redis_store: RedisStore, proxy: RedisProxy
) -> None:
    # Redis refused the reservation (the budget was full) but both answers were lost: failing
    # open, the call went on all the same and its settle releases the $1 it believes held. The
    # background job makes that dollar held, so the release takes nothing another call holds.
    seen = RedisLedger(redis_store)
    assert await seen.reserve([("k", 10.0)], 9.5) is None
    ledger = RedisLedger(proxied, on_store_error="open")
    proxy.lose_reply_to, proxy.lose_times = LEDGER_RESERVE.sha.encode(), 2
    assert await ledger.reserve([("k", 10.0)], 1.0) is None
    assert proxy.lost == 2
    await ledger.settle(["k"], 1.0, 0.5)
    await _background_done()
    assert await seen.spent("k") == (0.5, 9.5)
    # Still refused: $10 of $10 (0.5 spent, 9.5 held) leaves no room for another cent.
    assert await seen.reserve([("k", 10.0)], 0.01) == 0


@pytest.mark.services
async def test_failing_open_a_reservation_redis_never_saw_is_held_once_it_is_back(
    proxied: RedisStore, redis_store: RedisStore, proxy: RedisProxy
) -> None:
    # Redis unreachable: the reserve never ran and the call goes on. Once Redis is back, the
    # background job runs it (same call id), and the call's settle releases it: once.
    seen = RedisLedger(redis_store)
    assert await seen.reserve([("k", 10.0)], 2.0) is None
    ledger = RedisLedger(proxied, on_store_error="open")
    proxy.refuse = True
    assert await ledger.reserve([("k", 10.0)], 1.0) is None
    proxy.refuse = False  # before the job's first try
    await _background_done()
    assert await seen.spent("k") == (0.0, 3.0)
    await ledger.settle(["k"], 1.0, 0.25)
    assert await seen.spent("k") == (0.25, 2.0)


@pytest.mark.services
async def test_failing_open_a_lost_reservation_the_job_could_not_confirm_is_settled_once(
    proxied: RedisStore, redis_store: RedisStore, proxy: RedisProxy
) -> None:
    # Redis refuses the reservation (full budget), both answers are lost, and Redis stays
    # unreachable through the background job's tries. Back before the answer's lifetime ends,
    # the call's settle asks once more under the same ids, so what it releases is held.
    seen = RedisLedger(redis_store)
    assert await seen.reserve([("k", 10.0)], 9.5) is None
    ledger = RedisLedger(proxied, on_store_error="open")
    proxy.lose_reply_to, proxy.lose_times = LEDGER_RESERVE.sha.encode(), 2
    assert await ledger.reserve([("k", 10.0)], 1.0) is None
    proxy.refuse = True
    (failed,) = await asyncio.gather(*list(budgets_ledger._releasing), return_exceptions=True)
    assert isinstance(failed, StateStoreError)
    proxy.refuse = False
    await ledger.settle(["k"], 1.0, 0.5)
    assert await seen.spent("k") == (0.5, 9.5)
