"""A call cancelled between the limiter's acquire and its release (CancelledError while the
upstream is slow, a stream its caller stops reading): its concurrency slot is free again for
the next call and its estimated tokens are given back -- in process (the prepared ``Slot``
path, no coroutine) and on Redis (shared by every process)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import llmrelay
from llmrelay.core.engine import CallOptions, Engine
from llmrelay.core.layers import CallContext
from llmrelay.core.retry import RetryPolicy
from llmrelay.errors import RateLimitedError
from llmrelay.providers.table import make_deployment
from llmrelay.reliability.ratelimit import RateLimiter
from llmrelay.state import RedisStore
from llmrelay.testing.fake import FakeUpstream, Reply
from llmrelay.types import ChatRequest, Message, build_params

from .. import redis_services
from ..conftest import CANARY_KEY
from .slot_again import slot_free_again

# pytest fixtures
redis_prefix = redis_services.redis_prefix
redis_store = redis_services.redis_store
redis_url = redis_services.redis_url

LIMITS = {"openai/gpt-4o-mini": {"concurrent": 1, "tpm": 10_000}, "user:*": {"concurrent": 1}}


def _client(limiter: RateLimiter) -> llmrelay.Client:
    return llmrelay.Client(engine=Engine(limiter=limiter, retry=RetryPolicy(max_retries=0)))


async def _cancelled_calls(client: llmrelay.Client, fake: FakeUpstream) -> None:
    kw: dict[str, Any] = {
        "api_key": CANARY_KEY,
        "base_url": fake.openai_base_url,
        "tags": {"user": "u"},
        "max_tokens": 4000,
    }
    # A plain call cancelled while the upstream has not answered.
    fake.push(Reply.ok("slow", delay=30.0))
    task = asyncio.ensure_future(client.achat("openai/gpt-4o-mini", "x", **kw))
    for _ in range(200):
        if fake.requests:
            break
        await asyncio.sleep(0.01)
    assert fake.requests  # in flight: it holds the deployment's and the user's one slot
    with pytest.raises(RateLimitedError, match="concurrent"):
        await client.achat("openai/gpt-4o-mini", "y", **kw)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # A stream whose caller stops after the first chunk.
    fake.push(Reply.ok("word " * 500))
    stream = client.astream("openai/gpt-4o-mini", "z", **kw)
    async for _ in stream:
        break
    await stream.aclose()
    # Both slots are free, and neither dead call still holds its ~4,000 estimated tokens
    # of the 10,000 a minute: two more calls of that size fit.
    for _ in range(2):
        fake.push(Reply.ok("ok"))
        r = await client.achat("openai/gpt-4o-mini", "w", **kw)
        assert r.text == "ok"


async def test_a_cancelled_call_frees_its_slots_in_process(fake: FakeUpstream) -> None:
    limiter = RateLimiter(LIMITS)
    await _cancelled_calls(_client(limiter), fake)
    assert limiter._memory is not None
    for scope in limiter._memory._scopes.values():
        assert scope.holders == {}


@pytest.mark.services
async def test_a_cancelled_call_frees_its_slots_on_redis(
    fake: FakeUpstream, redis_store: RedisStore
) -> None:
    await _cancelled_calls(_client(RateLimiter(LIMITS, store=redis_store)), fake)


@pytest.mark.services
async def test_an_acquire_cancelled_after_redis_admitted_it_frees_its_slot(
    redis_store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Redis ran the admitting script (the slot is taken, with a 900 s lease) but its answer
    # came after the caller gave up -- a client that disconnects at that moment. The slot must
    # be free again at once, not after the lease: else every such client holds one for 15
    # minutes, and a handful of them stop a deployment of few concurrent slots.
    dep = make_deployment("openai", "gpt-4o-mini", api_key="sk-test", base_url="http://x/v1")
    limiter = RateLimiter({"openai/gpt-4o-mini": {"concurrent": 1}}, store=redis_store)

    def req() -> ChatRequest:
        return ChatRequest([Message("user", "hi")], build_params({"max_tokens": 10}))

    def ctx() -> CallContext:
        return CallContext(CallOptions(), "t", 0.0)

    real = redis_store.eval_many
    ran, never = asyncio.Event(), asyncio.Event()
    late = [True]

    async def answer_late(calls: Any, **kw: Any) -> Any:
        out = await real(calls, **kw)
        if late[0]:
            late[0] = False
            ran.set()
            await never.wait()
        return out

    monkeypatch.setattr(redis_store, "eval_many", answer_late)
    task = asyncio.ensure_future(limiter.acquire(dep, req(), ctx()))
    await asyncio.wait_for(ran.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await slot_free_again(
        limiter, dep, req, ctx, "the cancelled acquire still holds the deployment's only slot"
    )
