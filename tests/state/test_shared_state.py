"""State shared through Redis: several OS processes, breakers, budgets, and Redis restarting."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

import llmrelay
from llmrelay.core.engine import CallOptions, Engine
from llmrelay.core.layers import CallContext
from llmrelay.core.retry import RetryPolicy
from llmrelay.errors import (
    BudgetExceededError,
    CircuitOpenError,
    ConfigurationError,
    ServerError,
    StateStoreError,
)
from llmrelay.providers.doubles import TestModel
from llmrelay.providers.table import make_deployment
from llmrelay.reliability.breaker_shared import SharedBreakerRegistry, SharedCircuitBreaker
from llmrelay.reliability.budgets import BudgetLimit, Budgets
from llmrelay.reliability.budgets_ledger import MemoryLedger, RedisLedger
from llmrelay.reliability.cache import ResponseCache
from llmrelay.reliability.ratelimit import RateLimiter
from llmrelay.state import RedisStore
from llmrelay.state.scripts import CB_READ
from llmrelay.testing.fake import FakeUpstream
from llmrelay.types import ChatRequest, Message, build_params

from .. import redis_services
from ..config_isolation import isolated_config
from ..conftest import CANARY_KEY
from ..redis_services import OwnRedis, count_prefix

pytestmark = pytest.mark.services

WORKER = str(Path(__file__).parent.parent.joinpath("state_worker.py"))

# pytest fixtures
own_redis = redis_services.own_redis
redis_prefix = redis_services.redis_prefix
redis_store = redis_services.redis_store
redis_url = redis_services.redis_url


def run_workers(*commands: list[str]) -> list[dict[str, Any]]:
    """Start one OS process per command, release them together, return what each printed."""
    procs = [
        subprocess.Popen(
            [sys.executable, WORKER, *map(str, cmd)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for cmd in commands
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline()
            if line.strip() != "ready":
                _, err = p.communicate(timeout=30)
                pytest.fail(f"worker did not start: {line!r} {err}")
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        out = []
        for p in procs:
            stdout, stderr = p.communicate(timeout=120)
            assert p.returncode == 0, stderr
            out.append(orjson.loads(stdout.strip().splitlines()[-1]))
        return out
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


# --------------------------------------------------------------------------- several processes


def test_processes_together_admit_no_more_than_the_limit(redis_url: str, redis_prefix: str) -> None:
    """1,000 concurrent acquires from two processes against 137 requests a minute."""
    a, b = run_workers(
        ["limiter", redis_url, redis_prefix, 500, 137, 0],
        ["limiter", redis_url, redis_prefix, 500, 137, 0],
    )
    assert a["store_errors"] == b["store_errors"] == 0
    # GCRA: a minute's burst at once, then 137/60 a second -- the workers ran for `elapsed`
    elapsed = max(a["end"], b["end"]) - min(a["start"], b["start"])
    refill = math.floor(elapsed * 137 / 60) + 1
    assert 137 <= a["admitted"] + b["admitted"] <= 137 + refill
    assert refill < 137  # without atomic scripts each process alone would admit ~137


def test_a_providers_declared_limits_hold_across_processes(
    redis_url: str, redis_prefix: str, fake_thread: FakeUpstream
) -> None:
    """Seed 003's ``Provider(rate_limits=...)`` in two processes on one Redis: three requests a
    minute for both together, not three each."""
    base = fake_thread.openai_base_url
    a, b = run_workers(
        ["provider_limits", redis_url, redis_prefix, base, CANARY_KEY, 3, 4],
        ["provider_limits", redis_url, redis_prefix, base, CANARY_KEY, 3, 4],
    )
    elapsed = max(a["end"], b["end"]) - min(a["start"], b["start"])
    refill = math.floor(elapsed * 3 / 60)  # GCRA: one more every 20 s
    assert 3 <= a["ok"] + b["ok"] <= 3 + refill
    assert a["ok"] + a["refused"] == b["ok"] + b["refused"] == 4
    assert len(fake_thread.requests) == a["ok"] + b["ok"]


def test_processes_together_hold_no_more_than_the_concurrency_limit(
    redis_url: str, redis_prefix: str
) -> None:
    results = run_workers(
        *[["limiter", redis_url, redis_prefix, 250, 0, 25] for _ in range(4)],
    )
    assert sum(r["admitted"] for r in results) == 25


def test_processes_together_never_spend_past_a_budget(redis_url: str, redis_prefix: str) -> None:
    a, b = run_workers(
        ["ledger", redis_url, redis_prefix, 300, 10.0, 0.25],
        ["ledger", redis_url, redis_prefix, 300, 10.0, 0.25],
    )
    assert a["reserved"] + b["reserved"] == 40  # $10 / $0.25


def test_four_processes_racing_through_a_pricier_fallback_never_overspend(
    redis_url: str, redis_prefix: str
) -> None:
    """200 concurrent calls in 4 processes; each primary fails, each fallback costs $0.10
    (100,000x the primary) and is reserved for before it is sent: $2 pays 20 of them at most."""
    dead = f"http://127.0.0.1:{redis_services.free_port()}/v1"
    with FakeUpstream.running(api_key="sk-worker") as fake:
        results = run_workers(
            *[
                ["budget_fallback", redis_url, redis_prefix, 50, fake.openai_base_url, dead, 2.0]
                for _ in range(4)
            ]
        )
        sent = len(fake.requests)
    ok = sum(r["ok"] for r in results)
    assert ok + sum(r["refused"] for r in results) == 200
    assert 1 <= ok <= 20
    assert sent == ok  # a refused fallback is never sent

    async def read() -> tuple[float, float]:
        store = RedisStore(redis_url, prefix=redis_prefix, retry_interval=0, timeout=10)
        try:
            return await RedisLedger(store).spent("global|*|total|total")
        finally:
            await store.aclose()

    spent, reserved = asyncio.run(read())
    assert spent <= 2.0 + 1e-9
    assert spent == pytest.approx(0.1 * ok)
    assert reserved == pytest.approx(0.0)  # nothing left held by any process


async def test_a_breaker_one_process_opens_is_open_in_another(
    redis_url: str, redis_prefix: str, redis_store: RedisStore
) -> None:
    (opened,) = run_workers(["breaker", redis_url, redis_prefix, "flaky"])
    assert opened == {"state": "open", "calls": 3}
    # this process: a fresh registry on the same Redis
    breakers = SharedBreakerRegistry(redis_store, failure_threshold=3, recovery_timeout=600)
    b = breakers.get("test/flaky@local://test")
    with pytest.raises(CircuitOpenError, match="shared") as ei:
        await b.aacquire()  # authoritative, one round trip
    assert ei.value.retry_after is not None
    assert 500 < ei.value.retry_after <= 600
    assert b.state == "open"
    model = TestModel(name="flaky")
    client = llmrelay.Client(engine=Engine(breakers=breakers))
    with pytest.raises(CircuitOpenError):
        await client.achat(model, "hi")
    assert model.calls == []  # refused before anything was sent
    await b.areset()
    assert (await client.achat(model, "hi")).text == "Echo: hi"
    await client.aclose()


async def test_the_sync_view_catches_up_within_its_interval(redis_store: RedisStore) -> None:
    """Without the async hooks the engine sees another process's decision after one refresh."""
    a = SharedBreakerRegistry(redis_store, failure_threshold=2, recovery_timeout=600).get("d")
    b = SharedBreakerRegistry(redis_store, failure_threshold=2, recovery_timeout=600).get("d")
    for _ in range(2):
        a.on_failure(a.acquire(), ServerError("x", status=500))
    await a.flush()
    assert a.state == "open"
    b.acquire()  # b's first look: stale (closed), starts a refresh
    await b.flush()
    with pytest.raises(CircuitOpenError):
        b.acquire()


async def test_a_snapshot_taken_before_the_first_write_cannot_close_the_view(
    redis_store: RedisStore,
) -> None:
    """A background refresh read before any failure was recorded, its answer arriving after
    the failures' answers (they travel on other connections), must not undo them."""
    b = SharedBreakerRegistry(redis_store, failure_threshold=2, recovery_timeout=600).get("late")
    early = await redis_store.eval(CB_READ, b._keys, b._args)  # read first ...
    for _ in range(2):
        await b.aon_failure(await b.aacquire(), ServerError("x", status=500))
    assert b.state == "open"
    b._apply(early, b.clock())  # ... answered last
    assert b.state == "open"


async def test_two_tenants_in_two_processes_never_see_each_others_entries(
    redis_url: str, redis_prefix: str, redis_store: RedisStore
) -> None:
    a, b = run_workers(
        ["cache", redis_url, redis_prefix, "tenant-a", "secret of a"],
        ["cache", redis_url, redis_prefix, "tenant-b", "secret of b"],
    )
    assert a == {"text": "secret of a", "hit": False, "stores": 1}
    assert b == {"text": "secret of b", "hit": False, "stores": 1}
    client = llmrelay.Client(cache=ResponseCache(redis_store))
    model = TestModel(["fresh for c"], name="shared-model")
    for tenant, expected in (("tenant-a", "secret of a"), ("tenant-b", "secret of b")):
        r = await client.achat(model, "what is the secret?", tenant=tenant)
        assert r.cache_hit
        assert r.text == expected
    c = await client.achat(model, "what is the secret?", tenant="tenant-c")
    assert not c.cache_hit
    assert c.text == "fresh for c"
    await client.aclose()


# --------------------------------------------------------------------------- breakers


async def test_shared_breaker_half_open_probes_are_bounded_and_leased(
    redis_store: RedisStore,
) -> None:
    reg = SharedBreakerRegistry(
        redis_store, failure_threshold=1, recovery_timeout=0.001, half_open_max_calls=1
    )
    b = reg.get("probe-dep")
    await b.aon_failure(await b.aacquire(), ServerError("x", status=502))
    while b.shared_state == "open":  # the recovery timeout is one millisecond
        await b.refresh()
    probe = await b.aacquire()
    assert probe.probe
    with pytest.raises(CircuitOpenError, match="probe"):
        await b.aacquire()  # only one probe, across every process
    await b.arelease(probe)  # a cancelled probe gives its slot back
    probe2 = await b.aacquire()
    await b.aon_success(probe2)
    assert b.state == "closed"
    late = await b.aacquire()
    await b.aon_failure(probe, ServerError("late", status=500))  # from an old generation
    assert b.state == "closed"
    await b.aon_success(late)


async def test_client_errors_do_not_count_and_successes_reset(redis_store: RedisStore) -> None:
    b = SharedBreakerRegistry(redis_store, failure_threshold=2, recovery_timeout=60).get("c")
    await b.aon_failure(await b.aacquire(), llmrelay.BadRequestError("bad", status=400))
    await b.aon_failure(await b.aacquire(), ServerError("x", status=500))
    await b.aon_success(await b.aacquire())  # consecutive failures start over
    await b.aon_failure(await b.aacquire(), ServerError("x", status=500))
    assert b.state == "closed"
    await b.aon_failure(await b.aacquire(), ServerError("x", status=500))
    assert b.state == "open"


def test_shared_breaker_settings_are_checked(redis_url: str) -> None:
    store = RedisStore(redis_url)
    with pytest.raises(ConfigurationError, match="window_type"):
        SharedBreakerRegistry(store, window_type="time")
    with pytest.raises(ConfigurationError, match="failure_threshold"):
        SharedBreakerRegistry(store, failure_threshold=0)
    with pytest.raises(ConfigurationError, match="Redis store"):
        SharedBreakerRegistry(llmrelay.state.MemoryStore())  # type: ignore[arg-type]


async def test_manager_reset_circuit_breaker_resets_the_shared_state(
    redis_store: RedisStore,
) -> None:
    manager = llmrelay.LLMManager(max_retries=1, failure_threshold=1)
    manager._engine.breakers = SharedBreakerRegistry(
        redis_store, failure_threshold=1, recovery_timeout=600
    )
    manager.register_model("m", lambda prompt, kw: (_ for _ in ()).throw(RuntimeError("down")))
    manager.set_active_model("m")
    with pytest.raises(RuntimeError):
        await manager.agenerate("hi", use_cache=False)
    breaker = manager.engine.breakers.get(manager._models["m"].key)  # type: ignore[union-attr]
    assert isinstance(breaker, SharedCircuitBreaker)
    await breaker.flush()
    assert manager.get_model_info("m")["circuit_breaker_state"] == "open"
    manager.reset_circuit_breaker("m")
    await breaker.flush()
    assert await breaker.refresh() == "closed"


# --------------------------------------------------------------------------- budgets


def _ctx(**kw: Any) -> CallContext:
    return CallContext(CallOptions(**kw), "t", 0.0)


async def test_redis_ledger_budgets_are_shared_and_atomic(redis_store: RedisStore) -> None:
    limits = [BudgetLimit(1.0, "day", "user"), BudgetLimit(100.0, "total")]
    a = Budgets(limits, ledger=RedisLedger(redis_store), estimator=lambda r, d: 0.4)
    b = Budgets(limits, ledger=RedisLedger(redis_store), estimator=lambda r, d: 0.4)
    dep = make_deployment("openai", "gpt-4o-mini", api_key="sk-x")
    req = ChatRequest([Message("user", "hi")], build_params({}))
    r1 = await a.reserve(req, dep, _ctx(tags={"user": "u"}))
    r2 = await b.reserve(req, dep, _ctx(tags={"user": "u"}))
    with pytest.raises(BudgetExceededError, match=r"\$0.800000 reserved"):
        await a.reserve(req, dep, _ctx(tags={"user": "u"}))
    ctx = _ctx(tags={"user": "u"})
    await a.settle(r1, ctx)  # no usage: nothing spent, the reservation is released
    await b.reserve(req, dep, _ctx(tags={"user": "u"}))
    status = await a.status(limits[1])
    assert status["reserved_usd"] == pytest.approx(0.8)
    assert status["spent_usd"] == 0.0
    assert r2 is not None


async def test_budgets_without_a_ledger_share_the_configured_redis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str, redis_prefix: str
) -> None:
    """``Budgets(ledger=None)`` takes the configured state: two of them, built apart from any
    client, enforce one limit together through Redis (and an unconfigured one stays local)."""
    limits = [BudgetLimit(1.0, "total")]
    dep = make_deployment("openai", "gpt-4o-mini", api_key="sk-x")
    req = ChatRequest([Message("user", "hi")], build_params({}))
    with isolated_config():
        local = Budgets(limits, estimator=lambda r, d: 0.6)
    path = tmp_path / "llmrelay.toml"
    path.write_text(f'[state]\nbackend = "redis"\nurl = "{redis_url}"\nprefix = "{redis_prefix}"\n')
    monkeypatch.setenv("LLMRELAY_CONFIG", str(path))
    with isolated_config():
        a = Budgets(limits, estimator=lambda r, d: 0.6)
        b = Budgets(limits, estimator=lambda r, d: 0.6)
    await a.reserve(req, dep, _ctx())
    with pytest.raises(BudgetExceededError, match=r"\$0.600000 reserved"):
        await b.reserve(req, dep, _ctx())
    assert isinstance(local.ledger, MemoryLedger)  # nothing configured: in this process
    await local.reserve(req, dep, _ctx())  # nothing reserved there by a or b
    assert count_prefix(redis_url, redis_prefix) > 0


# --------------------------------------------------------------------------- Redis restarting


async def test_redis_stopped_and_restarted_mid_test(own_redis: OwnRedis) -> None:
    store = RedisStore(own_redis.url, retry_interval=0, timeout=1)
    cache = ResponseCache(store)
    limiter = RateLimiter({"test/m": {"rpm": 2}}, store=store)
    breakers = SharedBreakerRegistry(store, failure_threshold=2, recovery_timeout=600)
    ledger_budgets = Budgets(
        [BudgetLimit(1.0, "total")], ledger=RedisLedger(store), estimator=lambda r, d: 0.1
    )
    engine = Engine(
        cache=cache,
        limiter=limiter,
        breakers=breakers,
        budget=ledger_budgets,
        retry=RetryPolicy(max_retries=0),
    )
    client = llmrelay.Client(engine=engine)
    model = TestModel(name="m")
    assert (await client.achat(model, "before")).text == "Echo: before"
    assert (await client.achat(model, "before")).cache_hit

    own_redis.stop()
    # cache and limits fail open, breakers fall back to this process, budgets fail closed
    with pytest.raises(StateStoreError, match="budget cannot be checked"):
        await client.achat(model, "while down")
    open_engine = Engine(cache=cache, limiter=limiter, breakers=breakers)
    down = llmrelay.Client(engine=open_engine)
    for _ in range(3):  # more than rpm=2: limits are not enforced while Redis is down
        r = await down.achat(model, "while down")
        assert not r.cache_hit
    assert cache.stats.errors > 0
    assert limiter.store_errors > 0
    b = breakers.get("test/m@local://test")
    for _ in range(2):
        await b.aon_failure(await b.aacquire(), ServerError("x", status=500))
    assert b.state == "open"  # the local fallback protects this process meanwhile

    own_redis.start()  # empty: no data, no scripts loaded
    await b.areset()
    assert b.state == "closed"
    assert (await client.achat(model, "after")).text == "Echo: after"
    assert (await client.achat(model, "after")).cache_hit  # shared caching resumed
    await client.achat(model, "after 2")
    with pytest.raises(llmrelay.RateLimitedError):  # limits are shared and enforced again
        await client.achat(model, "after 3")
    assert count_prefix(own_redis.url, store.prefix) > 0
    await client.aclose()
    await down.aclose()
