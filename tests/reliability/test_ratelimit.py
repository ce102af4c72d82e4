"""The rate limiter: limits, scopes, tokens, waiting, routing, learned headers, store failure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import llmrelay
from llmrelay.core.engine import CallOptions, Engine
from llmrelay.core.layers import CallContext
from llmrelay.core.retry import RetryPolicy
from llmrelay.errors import (
    ConfigurationError,
    RateLimitedError,
    StateStoreError,
    StreamInterruptedError,
)
from llmrelay.providers.doubles import TestModel
from llmrelay.providers.table import make_deployment
from llmrelay.reliability.ratelimit import Limits, RateLimiter
from llmrelay.reliability.ratelimit_headers import parse_duration, parse_reset, read_limit_headers
from llmrelay.state import RedisStore
from llmrelay.testing.fake import FakeUpstream, Reply
from llmrelay.types import ChatRequest, Message, Response, Usage, build_params

from .. import redis_services
from ..conftest import CANARY_KEY, FakeClock
from ..redis_services import free_port

# pytest fixtures
redis_prefix = redis_services.redis_prefix
redis_store = redis_services.redis_store
redis_url = redis_services.redis_url


class Clock(FakeClock):
    """A fake clock whose ``sleep`` records the delay and moves the clock on."""

    def __init__(self, t: float = 1000.0) -> None:
        super().__init__(t)
        self.slept: list[float] = []

    async def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += s


def _client(limiter: RateLimiter, clock: Clock) -> llmrelay.Client:
    engine = Engine(
        limiter=limiter, clock=clock, sleep=clock.sleep, retry=RetryPolicy(max_retries=0)
    )
    return llmrelay.Client(engine=engine)


DEP = make_deployment("openai", "gpt-4o-mini", api_key="sk-test", base_url="http://x/v1")


def _ctx(**kw: object) -> CallContext:
    return CallContext(CallOptions(**kw), "t", 0.0)  # type: ignore[arg-type]


def _req(text: str = "hi", max_tokens: int | None = 10) -> ChatRequest:
    return ChatRequest([Message("user", text)], build_params({"max_tokens": max_tokens}))


# --------------------------------------------------------------------------- configuration


def test_limits_are_validated_at_configuration_time() -> None:
    for bad in ({"rpm": 0}, {"rpm": -1}, {"tpm": float("nan")}, {"rpm": True}, {"concurrent": 1.5}):
        with pytest.raises(ConfigurationError, match="greater than 0"):
            Limits.coerce(bad)
    with pytest.raises(ConfigurationError, match="unknown rate limit 'rph'"):
        Limits.coerce({"rph": 1})
    with pytest.raises(ConfigurationError, match=r"limits\['openai/x'\]: rate limit rpm=0"):
        RateLimiter({"openai/x": {"rpm": 0}})
    with pytest.raises(ConfigurationError, match="rpm=-3"):
        llmrelay.Client(limits={"openai/x": {"requests_per_minute": -3}})
    with pytest.raises(ConfigurationError, match="needs a name"):
        RateLimiter({"user:": {"rpm": 1}})
    with pytest.raises(ConfigurationError, match="max_wait"):
        RateLimiter({}, max_wait=0)
    with pytest.raises(ConfigurationError, match="on_store_error"):
        RateLimiter({}, on_store_error="maybe")  # type: ignore[arg-type]
    # seed 003's spelling (ProviderRegistry rate_limits) is accepted
    assert Limits.coerce({"requests_per_minute": 60, "max_concurrent": 2}) == Limits(
        rpm=60, concurrent=2
    )
    # ... every key seed 003 names, per second and per day included
    assert Limits.coerce(
        {"requests_per_second": 1, "requests_per_day": 1000, "tokens_per_day": 10**6}
    ) == Limits(rps=1, rpd=1000, tpd=10**6)


# --------------------------------------------------------------------------- requests


async def test_requests_per_minute_fail_fast_with_retry_after() -> None:
    clock = Clock()
    client = _client(RateLimiter({"test/m": {"rpm": 2}}, clock=clock, sleep=clock.sleep), clock)
    model = TestModel(name="m")
    await client.achat(model, "1")
    await client.achat(model, "2")
    with pytest.raises(RateLimitedError) as ei:
        await client.achat(model, "3")
    assert ei.value.retry_after == pytest.approx(30.0)  # GCRA: one request every 30 s
    assert "requests per-minute limit" in str(ei.value)
    assert ei.value.body["source"] == "llmrelay.ratelimit"
    assert len(model.calls) == 2
    assert clock.slept == []
    clock.t += 30
    await client.achat(model, "4")


async def test_a_limited_deployment_is_skipped_for_the_next_candidate() -> None:
    clock = Clock()
    client = _client(
        RateLimiter({"test/primary": {"rpm": 1}}, clock=clock, sleep=clock.sleep), clock
    )
    primary, backup = TestModel(name="primary"), TestModel(["from backup"], name="backup")
    await client.achat(primary, "first")
    r = await client.achat(
        primary,
        "second",
        fallbacks=[llmrelay.Target("test", "backup", options={"backend": backup})],
    )
    assert r.text == "from backup"
    assert [a.outcome for a in r.trace] == ["skipped", "success"]
    assert "rate limit" in (r.trace[0].reason or "")


async def test_waiting_up_to_the_deadline() -> None:
    clock = Clock()
    limiter = RateLimiter({"test/m": {"rpm": 6}}, clock=clock, sleep=clock.sleep, wait=True)
    client = _client(limiter, clock)
    model = TestModel(name="m")
    for _ in range(6):
        await client.achat(model, "x")
    await client.achat(model, "x")  # waits one emission interval
    assert clock.slept == [pytest.approx(10.0)]
    with pytest.raises(RateLimitedError, match="deadline"):
        await client.achat(model, "x", deadline=5)  # 10 s wait would pass a 5 s deadline
    assert len(clock.slept) == 1
    with pytest.raises(RateLimitedError):
        await client.achat(model, "x", wait_for_rate_limit=False)
    await client.achat(model, "x", deadline=30)
    assert len(clock.slept) == 2


# --------------------------------------------------------------------------- tokens


async def test_tokens_are_reserved_from_the_estimate_and_reconciled() -> None:
    clock = Clock()
    limiter = RateLimiter({"test/m": {"otpm": 1000}}, clock=clock, sleep=clock.sleep)
    client = _client(limiter, clock)
    model = TestModel(name="m")  # answers with a few output tokens
    for _ in range(5):  # 600 reserved each time, ~5 used: reconciled, so they all fit
        await client.achat(model, "hello", max_tokens=600)
    failing = TestModel([RuntimeError("boom")], name="m2")
    limiter2 = RateLimiter({"test/m2": {"otpm": 1000}}, clock=clock, sleep=clock.sleep)
    client2 = _client(limiter2, clock)
    with pytest.raises(RuntimeError):
        await client2.achat(failing, "x", max_tokens=900)
    await client2.achat(failing, "x", max_tokens=900)  # the failed call gave its tokens back


async def test_a_request_that_can_never_fit_fails_at_once() -> None:
    clock = Clock()
    client = _client(
        RateLimiter({"test/m": {"itpm": 50}}, clock=clock, sleep=clock.sleep, wait=True), clock
    )
    with pytest.raises(RateLimitedError, match="can never be admitted") as ei:
        await client.achat(TestModel(name="m"), "word " * 200)
    assert ei.value.retry_after is None
    assert clock.slept == []


async def test_actual_usage_above_the_estimate_is_charged() -> None:
    clock = Clock()
    limiter = RateLimiter({"test/m": {"itpm": 1000}}, clock=clock, sleep=clock.sleep)
    client = _client(limiter, clock)
    big = Response(text="ok", usage=Usage(900, 1))  # the provider counted far more
    model = TestModel([big], name="m")
    await client.achat(model, "short")
    with pytest.raises(RateLimitedError, match="input tokens"):
        await client.achat(model, "short prompt again " * 20)


async def test_cut_streams_count_their_partial_usage() -> None:
    clock = Clock()
    limiter = RateLimiter({"openai/gpt-4o-mini": {"tpm": 10_000}}, clock=clock, sleep=clock.sleep)
    permit = await limiter.acquire(DEP, _req(max_tokens=100), _ctx())
    assert permit is not None
    partial = Response(text="par", usage=Usage(4000, 4000))
    await limiter.release(permit, None, None, StreamInterruptedError("cut", partial=partial))
    with pytest.raises(RateLimitedError, match="tokens"):
        await limiter.acquire(DEP, _req("x" * 8000, max_tokens=100), _ctx())


# --------------------------------------------------------------------------- concurrency and scopes


async def test_concurrent_requests_are_limited_and_released() -> None:
    clock = Clock()
    limiter = RateLimiter(
        {"openai/gpt-4o-mini": {"concurrent": 2}}, clock=clock, sleep=clock.sleep, wait=True
    )
    p1 = await limiter.acquire(DEP, _req(), _ctx())
    p2 = await limiter.acquire(DEP, _req(), _ctx())
    with pytest.raises(RateLimitedError, match="concurrent"):
        await limiter.acquire(DEP, _req(), _ctx(wait_for_rate_limit=False))

    async def release_during_wait(s: float) -> None:
        clock.slept.append(s)
        await limiter.release(p1, None, None, None)

    limiter.sleep = release_during_wait
    p3 = await limiter.acquire(DEP, _req(), _ctx())
    assert p3 is not None
    assert clock.slept == [limiter.poll_interval]
    await limiter.release(p2, None, None, None)
    await limiter.release(p3, None, None, None)


async def test_users_tenants_and_keys_have_their_own_limits() -> None:
    clock = Clock()
    limiter = RateLimiter(
        {"user:*": {"rpm": 1}, "tenant:acme": {"rpm": 2}, "key:*": {"rpm": 100}}, clock=clock
    )
    await limiter.acquire(DEP, _req(), _ctx(tags={"user": "alice"}))
    with pytest.raises(RateLimitedError, match="user 'alice'"):
        await limiter.acquire(DEP, _req(), _ctx(tags={"user": "alice"}))
    await limiter.acquire(DEP, _req(), _ctx(tags={"user": "bob"}))
    await limiter.acquire(DEP, _req(), _ctx(tenant="acme"))
    await limiter.acquire(DEP, _req(), _ctx(tenant="acme"))
    with pytest.raises(RateLimitedError, match="tenant 'acme'") as ei:
        await limiter.acquire(DEP, _req(), _ctx(tenant="acme"))
    assert "sk-test" not in str(ei.value)
    await limiter.acquire(DEP, _req(), _ctx(tenant="other"))  # no limit for other tenants


async def test_all_or_nothing_across_scopes() -> None:
    clock = Clock()
    limiter = RateLimiter(
        {"openai/gpt-4o-mini": {"rpm": 2}, "user:*": {"rpm": 1}}, clock=clock, sleep=clock.sleep
    )
    await limiter.acquire(DEP, _req(), _ctx(tags={"user": "a"}))
    with pytest.raises(RateLimitedError):
        await limiter.acquire(DEP, _req(), _ctx(tags={"user": "a"}))  # user refuses
    await limiter.acquire(DEP, _req(), _ctx(tags={"user": "b"}))  # the deployment kept room


# --------------------------------------------------------------------------- provider headers


def test_parse_durations_and_resets() -> None:
    assert parse_duration("6m0s") == 360.0
    assert parse_duration("1.5s") == 1.5
    assert parse_duration("20ms") == pytest.approx(0.02)
    assert parse_duration("1h2m3.5s") == pytest.approx(3723.5)
    assert parse_duration("7") == 7.0
    for bad in ("", "abc", "5x", "-1s", "1s5", "inf", "nan", "99999999h"):
        assert parse_duration(bad) is None, bad
    now = datetime(2025, 1, 1, tzinfo=UTC)
    later = (now + timedelta(seconds=42)).isoformat().replace("+00:00", "Z")
    assert parse_reset(later, lambda: now.timestamp()) == pytest.approx(42.0)
    assert parse_reset("2025-01-01T00:00:00", lambda: now.timestamp()) is None  # no zone


def test_read_limit_headers_openai_and_anthropic() -> None:
    info = read_limit_headers(
        {
            "X-RateLimit-Limit-Requests": "500",
            "x-ratelimit-remaining-requests": "499",
            "x-ratelimit-limit-tokens": "30000",
            "x-ratelimit-remaining-tokens": "0",
            "x-ratelimit-reset-tokens": "6m0s",
        }
    )
    assert info is not None
    assert info.learned == (500.0, 30000.0, 0.0, 0.0)
    assert info.used == (1.0, 30000.0, -1.0, -1.0)
    assert info.block == 60.0  # a per-minute limit is whole again within a minute
    now = datetime(2025, 1, 1, tzinfo=UTC)
    reset = (now + timedelta(seconds=12)).isoformat()
    info = read_limit_headers(
        {
            "anthropic-ratelimit-input-tokens-limit": "40000",
            "anthropic-ratelimit-input-tokens-remaining": "39000",
            "anthropic-ratelimit-output-tokens-limit": "8000",
            "anthropic-ratelimit-output-tokens-remaining": "0",
            "anthropic-ratelimit-output-tokens-reset": reset,
            "retry-after": "30",
        },
        rate_limited=True,
        now=lambda: now.timestamp(),
    )
    assert info is not None
    assert info.learned == (0.0, 0.0, 40000.0, 8000.0)
    assert info.used[2:] == (1000.0, 8000.0)
    assert info.block == 30.0  # retry-after (a 429) is the longer wait
    assert read_limit_headers({"content-type": "application/json"}) is None
    assert read_limit_headers({"x-ratelimit-remaining-requests": "bogus"}) is not None


async def test_headers_block_the_deployment_until_their_reset(fake: FakeUpstream) -> None:
    clock = Clock()
    limiter = RateLimiter({}, clock=clock, sleep=clock.sleep)  # nothing configured: learning only
    engine = Engine(
        limiter=limiter, clock=clock, sleep=clock.sleep, retry=RetryPolicy(max_retries=0)
    )
    client = llmrelay.Client(engine=engine)
    kw = {"api_key": CANARY_KEY, "base_url": fake.openai_base_url}
    fake.push(
        Reply.ok(
            "last one",
            headers={
                "x-ratelimit-limit-requests": "100",
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": "20s",
            },
        )
    )
    await client.achat("openai/gpt-4o-mini", "a", **kw)
    with pytest.raises(RateLimitedError, match="provider asked us to pause") as ei:
        await client.achat("openai/gpt-4o-mini", "b", **kw)
    assert ei.value.retry_after == pytest.approx(20.0)
    # Named by provider/model: a gateway shows this message to callers, never the base URL.
    assert "deployment openai/gpt-4o-mini;" in ei.value.message
    assert fake.openai_base_url not in str(ei.value) + str(ei.value.body)
    assert len(fake.requests) == 1  # the blocked call never left
    clock.t += 20
    fake.push(Reply.error(429, "slow down", headers={"retry-after": "7"}))
    with pytest.raises(RateLimitedError):
        await client.achat("openai/gpt-4o-mini", "c", **kw)
    with pytest.raises(RateLimitedError) as ei:
        await client.achat("openai/gpt-4o-mini", "d", **kw)
    assert ei.value.retry_after == pytest.approx(7.0)
    assert len(fake.requests) == 2
    await client.aclose()


async def test_learned_limits_apply_where_none_is_configured() -> None:
    clock = Clock()
    limiter = RateLimiter({}, clock=clock, sleep=clock.sleep)
    permit = await limiter.acquire(DEP, _req(), _ctx())
    headers = {"x-ratelimit-limit-requests": "3", "x-ratelimit-remaining-requests": "2"}
    await limiter.release(permit, Response(text="x", usage=Usage(5, 5)), headers, None)
    await limiter.acquire(DEP, _req(), _ctx())
    await limiter.acquire(DEP, _req(), _ctx())
    with pytest.raises(RateLimitedError, match="requests"):
        await limiter.acquire(DEP, _req(), _ctx())


# --------------------------------------------------------------------------- the store


async def test_a_failing_store_fails_open_or_closed(caplog: pytest.LogCaptureFixture) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    store = RedisStore(url, retry_interval=60, timeout=0.5)
    limiter = RateLimiter({"openai/gpt-4o-mini": {"rpm": 1}}, store=store)
    for _ in range(3):  # unlimited while the store is down
        permit = await limiter.acquire(DEP, _req(), _ctx())
        assert permit is not None
        assert not permit.enforced
        await limiter.release(permit, None, None, None)
    assert limiter.store_errors == 3
    assert caplog.text.count("not enforced") == 1  # warned once, not per call
    closed = RateLimiter({"openai/gpt-4o-mini": {"rpm": 1}}, store=store, on_store_error="closed")
    with pytest.raises(StateStoreError, match="refused"):
        await closed.acquire(DEP, _req(), _ctx())
    await store.aclose()


@pytest.mark.services
async def test_redis_limits_behave_like_memory_limits(redis_store: RedisStore) -> None:
    limiter = RateLimiter(
        {"openai/gpt-4o-mini": {"rpm": 2, "concurrent": 5}, "user:*": {"rpm": 10}},
        store=redis_store,
    )
    p1 = await limiter.acquire(DEP, _req(), _ctx(tags={"user": "u"}))
    await limiter.acquire(DEP, _req(), _ctx(tags={"user": "u"}))
    with pytest.raises(RateLimitedError) as ei:
        await limiter.acquire(DEP, _req(), _ctx(tags={"user": "u"}))
    assert ei.value.retry_after is not None
    assert 25 < ei.value.retry_after <= 30
    # the refused call took nothing from the user scope: 2 of its 10 are used
    user_only = RateLimiter({"user:*": {"rpm": 10}}, store=redis_store, learn_from_headers=False)
    for _ in range(8):
        await user_only.acquire(DEP, _req(), _ctx(tags={"user": "u"}))
    with pytest.raises(RateLimitedError, match="user 'u'"):
        await user_only.acquire(DEP, _req(), _ctx(tags={"user": "u"}))
    # learned blocks are shared
    other = make_deployment("openai", "gpt-4.1-mini", api_key="sk-test", base_url="http://x/v1")
    learner = RateLimiter({}, store=redis_store)
    p = await learner.acquire(other, _req(), _ctx())
    await learner.release(p, None, {"retry-after": "9"}, _RateLimited429())
    with pytest.raises(RateLimitedError, match="pause") as ei:
        await RateLimiter({}, store=redis_store).acquire(other, _req(), _ctx())
    assert ei.value.retry_after is not None
    assert 8 < ei.value.retry_after <= 9
    await limiter.release(p1, None, None, None)


@pytest.mark.services
async def test_redis_concurrency_slots_are_released(redis_store: RedisStore) -> None:
    limiter = RateLimiter({"openai/gpt-4o-mini": {"concurrent": 1}}, store=redis_store)
    p = await limiter.acquire(DEP, _req(), _ctx())
    with pytest.raises(RateLimitedError, match="concurrent"):
        await limiter.acquire(DEP, _req(), _ctx())
    await limiter.release(p, Response(usage=Usage(1, 1)), None, None)
    q = await limiter.acquire(DEP, _req(), _ctx())
    await limiter.release(q, None, None, None)


class _RateLimited429(RateLimitedError):
    def __init__(self) -> None:
        super().__init__("429", status=429)
