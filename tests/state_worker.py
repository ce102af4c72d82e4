"""A separate OS process for the shared-state tests: ``python state_worker.py <command> ...``.

It connects, prints ``ready``, waits for a line on stdin (so several workers start together),
does its part against the shared Redis and prints one JSON line with what it saw.
"""

from __future__ import annotations

import asyncio
import sys
import time

import orjson


async def limiter_burst(
    url: str, prefix: str, n: int, rpm: int, concurrent: int
) -> dict[str, float]:
    """``n`` concurrent acquires on one deployment limited to ``rpm`` requests a minute."""
    from llmrelay.engine import CallOptions
    from llmrelay.errors import RateLimitedError
    from llmrelay.layers import CallContext
    from llmrelay.providers import make_deployment
    from llmrelay.ratelimit import RateLimiter
    from llmrelay.state.redis_store import RedisStore
    from llmrelay.types import ChatRequest, GenerationParams, Message

    store = RedisStore(url, prefix=prefix, retry_interval=0, timeout=10)
    limits = {"rpm": rpm} if not concurrent else {"concurrent": concurrent}
    limiter = RateLimiter({"openai/gpt-4o-mini": limits}, store=store, lease=60)
    dep = make_deployment("openai", "gpt-4o-mini", api_key="sk-worker", base_url="http://x/v1")
    req = ChatRequest([Message("user", "hi")], GenerationParams(max_tokens=5))
    await store.ping()
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)

    async def one() -> int:
        ctx = CallContext(CallOptions(), "t", 0.0)
        try:
            await limiter.acquire(dep, req, ctx)
        except RateLimitedError:
            return 0
        return 1

    start = time.time()
    results = await asyncio.gather(*(one() for _ in range(n)))
    out = {
        "admitted": sum(results),
        "store_errors": limiter.store_errors,
        "start": start,
        "end": time.time(),
    }
    await store.aclose()
    return out


async def ledger_burst(
    url: str, prefix: str, n: int, limit: float, amount: float
) -> dict[str, int]:
    from llmrelay.state.ledger import RedisLedger
    from llmrelay.state.redis_store import RedisStore

    store = RedisStore(url, prefix=prefix, retry_interval=0, timeout=10)
    ledger = RedisLedger(store)
    await store.ping()
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    entries = [("global|*|total|total", limit), ("user|u1|day|2030-01-01", limit)]
    results = await asyncio.gather(*(ledger.reserve(entries, amount) for _ in range(n)))
    await store.aclose()
    return {"reserved": sum(1 for r in results if r is None)}


async def open_breaker(url: str, prefix: str, key: str) -> dict[str, object]:
    """Fail calls through an engine with shared breakers until the breaker opens."""
    from llmrelay import Client
    from llmrelay.engine import Engine
    from llmrelay.errors import ServerError
    from llmrelay.retry import RetryPolicy
    from llmrelay.state.breaker import SharedBreakerRegistry
    from llmrelay.state.redis_store import RedisStore
    from llmrelay.testing.models import TestModel

    store = RedisStore(url, prefix=prefix, retry_interval=0, timeout=10)
    breakers = SharedBreakerRegistry(store, failure_threshold=3, recovery_timeout=600)
    engine = Engine(breakers=breakers, retry=RetryPolicy(max_retries=0))
    client = Client(engine=engine)
    model = TestModel([ServerError("down", status=503) for _ in range(3)], name=key)
    await store.ping()
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    for _ in range(3):
        try:
            await client.achat(model, "hi")
        except ServerError:
            pass
    await breakers.flush()
    b = breakers.get(f"test/{key}@local://test")
    state = await b.refresh()
    await client.aclose()
    return {"state": state, "calls": len(model.calls)}


async def cache_put(url: str, prefix: str, tenant: str, answer: str) -> dict[str, object]:
    """Answer one call for ``tenant`` through a Redis-backed cache (it stores the answer)."""
    from llmrelay import Client
    from llmrelay.cache import ResponseCache
    from llmrelay.state.redis_store import RedisStore
    from llmrelay.testing.models import TestModel

    cache = ResponseCache(RedisStore(url, prefix=prefix, retry_interval=0, timeout=10))
    client = Client(cache=cache)
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    model = TestModel([answer], name="shared-model")
    r = await client.achat(model, "what is the secret?", tenant=tenant)
    await client.aclose()
    return {"text": r.text, "hit": r.cache_hit, "stores": cache.stats.stores}


async def hold_probe(url: str, prefix: str, key: str, lease: float) -> dict[str, object]:
    """Open a shared breaker, take its half-open probe, say ``holding`` and keep it until
    killed (the test SIGKILLs this process)."""
    from llmrelay.errors import ServerError
    from llmrelay.state.breaker import SharedBreakerRegistry
    from llmrelay.state.redis_store import RedisStore

    store = RedisStore(url, prefix=prefix, retry_interval=0, timeout=10)
    reg = SharedBreakerRegistry(
        store, failure_threshold=1, recovery_timeout=0.001, probe_lease=lease
    )
    b = reg.get(key)
    await b.aon_failure(await b.aacquire(), ServerError("down", status=503))
    while await b.refresh() == "open":  # the recovery timeout is one millisecond
        pass
    probe = await b.aacquire()
    assert probe.probe
    print("holding", flush=True)
    await asyncio.Event().wait()  # the probe runs until the process dies
    return {}


COMMANDS = {
    "limiter": limiter_burst,
    "ledger": ledger_burst,
    "breaker": open_breaker,
    "cache": cache_put,
    "hold_probe": hold_probe,
}


def main() -> None:
    cmd, *args = sys.argv[1:]
    fn = COMMANDS[cmd]
    typed: list[object] = []
    for a in args:
        try:
            typed.append(int(a))
        except ValueError:
            try:
                typed.append(float(a))
            except ValueError:
                typed.append(a)
    out = asyncio.run(fn(*typed))  # type: ignore[operator]
    print(orjson.dumps(out).decode(), flush=True)


if __name__ == "__main__":
    main()
