"""Attack: clients that leave, through two gateway processes sharing real Redis (budgets, rate
limits) and PostgreSQL (keys). Sixty clients of one key start streamed chat completions against
a slow upstream and hang up -- after the first bytes, or right after sending the request (while
the gateway authenticates, reserves, acquires or connects) -- on a model without and on one with
a provider concurrency limit. Afterwards the key's budget holds no reservation, spent is no more
than what the upstream produced, no concurrency slot is held in Redis, and the key's next
requests are admitted: two concurrent streams on the capped model (a third is refused) and a
large request on the other."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis

from llmrelay.reliability.budgets import BudgetLimit, Budgets
from llmrelay.reliability.budgets_ledger import RedisLedger
from llmrelay.state.redis_store import RedisStore
from llmrelay.testing.fake import FakeUpstream, Reply

from ..redis_services import redis_prefix, redis_url  # noqa: F401
from ..services import postgres_dsn  # noqa: F401
from .test_gateway_workers import _create_key, gateways

# ruff: noqa: F811  (pytest fixtures imported above are parameters below)

FREE = "openai/gpt-4.1-mini"  # $0.40 / $1.60 per million tokens
CAPPED = "openai/gpt-4o-mini"  # at most two calls at once, across both processes
BUDGET = 0.35
Gateways = tuple[list[str], FakeUpstream, str]


@pytest.fixture
def capped_gateways(
    tmp_path: Path, redis_url: str, redis_prefix: str, postgres_dsn: str
) -> Iterator[Gateways]:
    extra = f'[limits."{CAPPED}"]\nconcurrent = 2\n'
    with gateways(tmp_path, redis_url, redis_prefix, postgres_dsn, extra) as running:
        yield running


def _body(model: str, max_tokens: int = 4000, stream: bool = True) -> bytes:
    msgs = [{"role": "user", "content": "hi"}]
    return orjson.dumps(
        {"model": model, "messages": msgs, "stream": stream, "max_tokens": max_tokens}
    )


def _headers(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}", "content-type": "application/json"}


async def _leave_after_first_bytes(url: str, key: str, model: str) -> int:
    async with (
        aiohttp.ClientSession() as s,
        s.post(url + "/v1/chat/completions", data=_body(model), headers=_headers(key)) as r,
    ):
        if r.status != 200:
            await r.read()
            return r.status
        assert await r.content.readany()  # the first bytes of the stream ...
        r.close()  # ... and the client hangs up
        return r.status


async def _leave_at_once(url: str, key: str, model: str, after: float, reset: bool) -> int:
    """Send the whole request over a raw socket, then hang up ``after`` seconds later, before
    any byte of the answer (a FIN, or an abort)."""
    host, port = url.removeprefix("http://").split(":")
    _reader, writer = await asyncio.open_connection(host, int(port))
    body = _body(model)
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: {host}\r\n"
        f"authorization: Bearer {key}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode()
    writer.write(head + body)
    await writer.drain()
    if after:
        await asyncio.sleep(after)
    if reset:
        writer.transport.abort()
    else:
        writer.close()
    try:
        await writer.wait_closed()
    except ConnectionError:
        pass
    return 0


async def _held(url: str, prefix: str) -> int:
    """Concurrency slots held in Redis, over every rate-limit scope under ``prefix``."""
    r = aioredis.Redis.from_url(url)
    try:
        total = 0
        async for k in r.scan_iter(match=f"{prefix}rl:*:c", count=1000):
            total += int(await r.zcard(k))
        return total
    finally:
        await r.aclose()


async def test_clients_that_leave_leave_nothing_held(
    capped_gateways: Gateways, redis_url: str, redis_prefix: str
) -> None:
    urls, fake, dsn = capped_gateways
    key, key_id = await _create_key(dsn, budget_usd=BUDGET, budget_period="total", rpm=200)
    # Slow answers: a word every 0.5 s, none finishes while the test runs.
    fake.push(*[Reply.ok("word " * 400, pace=0.5) for _ in range(80)])
    rng = random.Random(7)
    clients, kinds = [], []
    for i in range(60):
        url, model = urls[i % 2], (FREE, CAPPED)[i // 2 % 2]
        if i % 3 == 0:
            clients.append(_leave_at_once(url, key, model, rng.uniform(0, 0.08), i % 2 == 0))
            kinds.append("gone")
        else:
            clients.append(_leave_after_first_bytes(url, key, model))
            kinds.append(model)
    statuses = await asyncio.gather(*clients)
    by_kind = {
        k: sorted(st for st, kk in zip(statuses, kinds, strict=True) if kk == k)
        for k in ("gone", FREE, CAPPED)
    }
    assert set(by_kind["gone"]) == {0}
    assert set(by_kind[FREE]) == {200}, by_kind  # the budget and the rpm admit them all
    assert 200 in by_kind[CAPPED], by_kind
    assert set(by_kind[CAPPED]) <= {200, 429}, by_kind
    # Then only callers that hang up within a few milliseconds, on the capped model with both
    # of its slots free: some leave while Redis admits them (the slot taken, the answer lost).
    await asyncio.gather(
        *[
            _leave_at_once(urls[i % 2], key, CAPPED, rng.uniform(0, 0.015), i % 4 == 0)
            for i in range(40)
        ]
    )

    store = RedisStore(redis_url, prefix=redis_prefix)
    limit = BudgetLimit(BUDGET, "total", scope="tag:vkey", match=key_id)
    budgets = Budgets([limit], ledger=RedisLedger(store))
    try:
        deadline = time.monotonic() + 5.0
        while True:  # settled in the background of each process: poll
            status = await budgets.status(limit, key_id)
            held = await _held(redis_url, redis_prefix)
            if status["reserved_usd"] == 0 and held == 0 and fake.streaming == 0:
                break
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert status["reserved_usd"] == 0, status
        assert held == 0, f"{held} concurrency slots still held"
        assert fake.streaming == 0, f"{fake.streaming} upstream streams still open"
        # Charged: what was produced (each call's prompt, at most a couple of tokens per word
        # streamed), never the reservation (4,000 tokens) of a call that was cut.
        produced = len(fake.requests) * 50 * 0.40e-6 + fake.frames_sent * 2 * 1.60e-6
        assert 0 < status["spent_usd"] <= produced, (status, produced)

        # The key's next calls are admitted: two concurrent streams on the capped model ...
        fake.clear()
        fake.push(*[Reply.ok("word " * 400, pace=0.5) for _ in range(3)])
        async with aiohttp.ClientSession() as s:
            opened = [
                await s.post(
                    urls[i] + "/v1/chat/completions", data=_body(CAPPED), headers=_headers(key)
                )
                for i in range(2)
            ]
            try:
                assert [r.status for r in opened] == [200, 200]
                # ... a third is refused while they stream (the cap is in force) ...
                async with s.post(
                    urls[0] + "/v1/chat/completions", data=_body(CAPPED), headers=_headers(key)
                ) as third:
                    assert third.status == 429, await third.read()
            finally:
                for r in opened:
                    r.close()
            # ... and a large call on the other model.
            big = _body(FREE, max_tokens=30_000, stream=False)
            async with s.post(
                urls[1] + "/v1/chat/completions", data=big, headers=_headers(key)
            ) as r:
                assert r.status == 200, await r.read()
        while fake.streaming:  # the two streams closed above end upstream too
            assert time.monotonic() < deadline + 10, "an upstream stream outlived its client"
            await asyncio.sleep(0.05)
    finally:
        await store.aclose()
