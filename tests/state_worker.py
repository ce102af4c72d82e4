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
    from llmrelay.core.engine import CallOptions
    from llmrelay.core.layers import CallContext
    from llmrelay.errors import RateLimitedError
    from llmrelay.providers.table import make_deployment
    from llmrelay.reliability.ratelimit import RateLimiter
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
    from llmrelay.reliability.budgets_ledger import RedisLedger
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
    from llmrelay.core.engine import Engine
    from llmrelay.core.retry import RetryPolicy
    from llmrelay.errors import ServerError
    from llmrelay.providers.doubles import TestModel
    from llmrelay.reliability.breaker_shared import SharedBreakerRegistry
    from llmrelay.state.redis_store import RedisStore

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
    from llmrelay.providers.doubles import TestModel
    from llmrelay.reliability.cache import ResponseCache
    from llmrelay.state.redis_store import RedisStore

    cache = ResponseCache(RedisStore(url, prefix=prefix, retry_interval=0, timeout=10))
    client = Client(cache=cache)
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    model = TestModel([answer], name="shared-model")
    r = await client.achat(model, "what is the secret?", tenant=tenant)
    await client.aclose()
    return {"text": r.text, "hit": r.cache_hit, "stores": cache.stats.stores}


async def learned_block(
    url: str, prefix: str, base_url: str, api_key: str, max_block: float, calls: int
) -> dict[str, object]:
    """``calls`` calls to the fake at ``base_url`` through a Redis-shared limiter; what each did
    (``"ok"``, or the ``retry_after`` of the limiter's refusal)."""
    import llmrelay
    from llmrelay.core.retry import RetryPolicy
    from llmrelay.errors import RateLimitedError
    from llmrelay.reliability.ratelimit import RateLimiter
    from llmrelay.state.redis_store import RedisStore

    store = RedisStore(url, prefix=prefix, retry_interval=0, timeout=10)
    limiter = RateLimiter({}, store=store, max_block=max_block)
    engine = llmrelay.Engine(limiter=limiter, retry=RetryPolicy(max_retries=0))
    client = llmrelay.Client(engine=engine)
    await store.ping()
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    seen: list[object] = []
    for _ in range(calls):
        try:
            await client.achat("openai/gpt-4o-mini", "hi", api_key=api_key, base_url=base_url)
            seen.append("ok")
        except RateLimitedError as exc:
            seen.append(exc.retry_after)
    await client.aclose()
    await store.aclose()
    return {"seen": seen, "store_errors": limiter.store_errors}


async def provider_limits(
    url: str, prefix: str, base_url: str, api_key: str, rpm: int, calls: int
) -> dict[str, object]:
    """``calls`` calls to the fake at ``base_url`` by a client whose registry declares
    ``Provider(rate_limits={"requests_per_minute": rpm})`` for openai, its state in Redis."""
    import llmrelay
    from llmrelay.catalog.provider_registry import Provider, ProviderRegistry
    from llmrelay.errors import RateLimitedError
    from llmrelay.state.redis_store import RedisStore

    store = RedisStore(url, prefix=prefix, retry_interval=0, timeout=10)
    providers = ProviderRegistry()
    providers.register_provider("openai", Provider(rate_limits={"requests_per_minute": rpm}))
    client = llmrelay.Client(providers=providers, state=store)
    await store.ping()
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    start = time.time()
    ok = refused = 0
    for _ in range(calls):
        try:
            await client.achat("openai/gpt-4.1-mini", "hi", api_key=api_key, base_url=base_url)
            ok += 1
        except RateLimitedError:
            refused += 1
    end = time.time()
    await client.aclose()
    await store.aclose()
    return {"ok": ok, "refused": refused, "start": start, "end": end}


async def budget_fallback_burst(
    url: str, prefix: str, n: int, fake_url: str, dead_url: str, limit: float
) -> dict[str, int]:
    """``n`` concurrent calls whose primary always fails (nothing listens at ``dead_url``) and
    whose fallback, on the fake at ``fake_url``, costs $0.10 an answer (100,000x the primary),
    all against one total budget of ``limit`` dollars kept in Redis."""
    import os

    os.environ["GROQ_API_KEY"] = "sk-worker"
    os.environ["GROQ_BASE_URL"] = fake_url
    from llmrelay import Client
    from llmrelay.catalog.costs import Cost
    from llmrelay.core.engine import Engine
    from llmrelay.errors import BudgetExceededError
    from llmrelay.providers.table import Deployment
    from llmrelay.reliability.budgets import BudgetLimit, Budgets
    from llmrelay.reliability.budgets_ledger import RedisLedger
    from llmrelay.state.redis_store import RedisStore
    from llmrelay.types import ChatRequest, Usage

    prices = {"openai/gpt-4.1-mini": 0.000001, "groq/llama-3.1-8b-instant": 0.1}

    class Prices:
        def prepare(self, req: ChatRequest, dep: Deployment) -> ChatRequest:
            return req

        def cost(self, dep: Deployment, usage: Usage) -> Cost:
            return Cost(prices[dep.label], True)

    store = RedisStore(url, prefix=prefix, retry_interval=0, timeout=10)
    budgets = Budgets(
        [BudgetLimit(limit, period="total")],
        ledger=RedisLedger(store),
        estimator=lambda r, d: prices[d.label] * 1.5,
    )
    client = Client(engine=Engine(budget=budgets, catalog=Prices()))
    await store.ping()
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)

    async def one() -> str:
        try:
            await client.achat(
                "openai/gpt-4.1-mini",
                "hi",
                api_key="sk-worker",
                base_url=dead_url,
                retries=0,
                fallbacks=["groq/llama-3.1-8b-instant"],
            )
        except BudgetExceededError:
            return "refused"
        return "ok"

    results = await asyncio.gather(*(one() for _ in range(n)))
    await client.aclose()
    await store.aclose()
    return {"ok": results.count("ok"), "refused": results.count("refused")}


async def hold_probe(url: str, prefix: str, key: str, lease: float) -> dict[str, object]:
    """Open a shared breaker, take its half-open probe, say ``holding`` and keep it until
    killed (the test SIGKILLs this process)."""
    from llmrelay.errors import ServerError
    from llmrelay.reliability.breaker_shared import SharedBreakerRegistry
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
    "learned_block": learned_block,
    "provider_limits": provider_limits,
    "limiter": limiter_burst,
    "ledger": ledger_burst,
    "breaker": open_breaker,
    "cache": cache_put,
    "budget_fallback": budget_fallback_burst,
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
