"""Rate limits declared on a ``Provider`` (seed 003) are enforced by the engine.

Every key seed 003's provider registry names -- per second, per minute, per day, requests and
tokens -- goes through the one rate limiter: in process with a fake clock here, and shared
through a real Redis by two clients. Calls go to the fake upstream over real sockets, as the
``openai`` provider pointed at it by ``OPENAI_BASE_URL``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import llmrelay
from llmrelay.catalog.provider_registry import Provider, ProviderRegistry, default_providers
from llmrelay.core.engine import Engine
from llmrelay.core.retry import RetryPolicy
from llmrelay.errors import ConfigurationError, RateLimitedError
from llmrelay.providers.table import PROVIDERS
from llmrelay.reliability.ratelimit import RateLimiter
from llmrelay.state import RedisStore
from llmrelay.testing.fake import FakeUpstream, Reply

from .. import redis_services
from ..config_isolation import isolated_config
from ..conftest import FakeClock

# pytest fixtures
redis_prefix = redis_services.redis_prefix
redis_store = redis_services.redis_store
redis_url = redis_services.redis_url

MODEL = "openai/gpt-4.1-mini"


class Clock(FakeClock):
    """A fake clock whose ``sleep`` records the delay and moves the clock on."""

    def __init__(self, t: float = 1000.0) -> None:
        super().__init__(t)
        self.slept: list[float] = []

    async def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += s


@pytest.fixture
def openai(fake: FakeUpstream, keys: str, monkeypatch: pytest.MonkeyPatch) -> FakeUpstream:
    monkeypatch.setenv("OPENAI_BASE_URL", fake.openai_base_url)
    return fake


@pytest.fixture
def restore_default() -> Iterator[None]:
    """Leave the default registry and the provider table as they were; engines made before
    the test (another test's ``default_client()``) do not see what it declares."""
    saved = dict(PROVIDERS)
    default = default_providers()
    registered = dict(default._providers), dict(default._specs)
    watchers, default._watchers = default._watchers, []
    yield
    PROVIDERS.clear()
    PROVIDERS.update(saved)
    default._providers, default._specs = registered
    default._watchers = watchers
    default.version += 1


def registry(**limits: float) -> ProviderRegistry:
    providers = ProviderRegistry()
    providers.register_provider("openai", Provider(rate_limits=limits))
    return providers


def client(providers: ProviderRegistry, clock: Clock, **kw: object) -> llmrelay.Client:
    limiter = RateLimiter({}, clock=clock, sleep=clock.sleep, **kw)  # type: ignore[arg-type]
    return llmrelay.Client(providers=providers, limits=limiter)


# --------------------------------------------------------------------------- per minute


async def test_rpm_2_limits_the_third_call_in_the_window(openai: FakeUpstream) -> None:
    clock = Clock()
    c = client(registry(requests_per_minute=2), clock)
    await c.achat(MODEL, "1")
    await c.achat(MODEL, "2")
    with pytest.raises(RateLimitedError) as ei:
        await c.achat(MODEL, "3")
    e = ei.value
    assert e.retry_after == pytest.approx(30.0)  # GCRA: one request every 30 s
    assert e.body["scope"] == "provider openai (its declared rate limits)"
    assert "requests per-minute limit" in str(e)
    assert len(openai.requests) == 2  # the third was never sent
    assert clock.slept == []
    clock.advance(30)
    await c.achat(MODEL, "4")
    assert len(openai.requests) == 3


async def test_the_limit_is_the_providers_shared_by_its_models(openai: FakeUpstream) -> None:
    clock = Clock()
    c = client(registry(requests_per_minute=2), clock)
    await c.achat("openai/gpt-4.1-mini", "1")
    await c.achat("openai/gpt-4.1-nano", "2")
    with pytest.raises(RateLimitedError):
        await c.achat("openai/gpt-4o-mini", "3")


async def test_waiting_instead_of_raising(openai: FakeUpstream) -> None:
    """With ``wait=True`` (the limiter's documented option) the third call waits its turn."""
    clock = Clock()
    c = client(registry(requests_per_minute=2), clock, wait=True)
    for i in range(3):
        await c.achat(MODEL, str(i))
    assert clock.slept == [pytest.approx(30.0)]
    assert len(openai.requests) == 3


async def test_a_models_own_limits_add_a_scope(openai: FakeUpstream) -> None:
    clock = Clock()
    providers = ProviderRegistry()
    providers.register_provider(
        "openai",
        Provider(
            rate_limits={"requests_per_minute": 100},
            models={"gpt-4.1-nano": {"rate_limits": {"requests_per_minute": 1}}},
        ),
    )
    c = client(providers, clock)
    await c.achat("openai/gpt-4.1-nano", "1")
    with pytest.raises(RateLimitedError) as ei:
        await c.achat("openai/gpt-4.1-nano", "2")
    assert "gpt-4.1-nano" in ei.value.body["scope"]
    await c.achat("openai/gpt-4.1-mini", "another model: the provider has room")


# --------------------------------------------------------------------------- per second, per day


async def test_requests_per_second(openai: FakeUpstream) -> None:
    clock = Clock()
    c = client(registry(requests_per_second=1), clock)
    await c.achat(MODEL, "1")
    with pytest.raises(RateLimitedError) as ei:
        await c.achat(MODEL, "2")
    assert ei.value.retry_after == pytest.approx(1.0)
    assert "requests per-second limit" in str(ei.value)
    clock.advance(1)
    await c.achat(MODEL, "3")


async def test_requests_per_day(openai: FakeUpstream) -> None:
    clock = Clock()
    c = client(registry(requests_per_day=3), clock)
    for i in range(3):
        await c.achat(MODEL, str(i))
    with pytest.raises(RateLimitedError) as ei:
        await c.achat(MODEL, "4")
    assert ei.value.retry_after == pytest.approx(86_400 / 3)
    assert "requests per-day limit" in str(ei.value)
    clock.advance(3600)  # an hour later: still the same day's allowance
    with pytest.raises(RateLimitedError):
        await c.achat(MODEL, "5")
    clock.advance(86_400 / 3 - 3600)
    await c.achat(MODEL, "6")
    assert len(openai.requests) == 4


async def test_tokens_per_day(openai: FakeUpstream) -> None:
    clock = Clock()
    c = client(registry(tokens_per_day=1000), clock)
    await c.achat(MODEL, "hello", max_tokens=400)
    # the first call's reservation was settled with the tokens the fake reported
    with pytest.raises(RateLimitedError) as ei:
        await c.achat(MODEL, "hello", max_tokens=990)
    assert "tokens per-day limit" in str(ei.value)
    with pytest.raises(RateLimitedError, match="can never be admitted"):
        await c.achat(MODEL, "hello", max_tokens=2000)  # more than a whole day allows
    await c.achat(MODEL, "hello", max_tokens=400)


async def test_tokens_per_minute(openai: FakeUpstream) -> None:
    clock = Clock()
    c = client(registry(tokens_per_minute=500), clock)
    openai.push(Reply.ok("long answer", input_tokens=20, output_tokens=380))
    r = await c.achat(MODEL, "hello", max_tokens=400)
    assert r.usage.total_tokens == 400
    # settled with what the answer used: 100 tokens are left in the minute
    with pytest.raises(RateLimitedError, match="tokens per-minute limit"):
        await c.achat(MODEL, "hello", max_tokens=200)
    await c.achat(MODEL, "hello", max_tokens=50)
    clock.advance(60)
    await c.achat(MODEL, "hello", max_tokens=400)


def test_every_key_the_seed_names_is_accepted() -> None:
    Provider(
        rate_limits={
            "requests_per_second": 1,
            "requests_per_minute": 2,
            "requests_per_day": 3,
            "tokens_per_minute": 4,
            "tokens_per_day": 5,
        }
    )
    for bad in ({"requests_per_hour": 1}, {"requests_per_day": 0}, {"tokens_per_day": "5"}):
        with pytest.raises(ConfigurationError):
            Provider(rate_limits=bad)


# --------------------------------------------------------------------------- which registry


async def test_a_registry_no_client_uses_changes_nothing(openai: FakeUpstream) -> None:
    registry(requests_per_minute=1)  # registered, handed to nobody
    c = llmrelay.Client()
    for i in range(3):
        await c.achat(MODEL, str(i))
    assert c.engine.limiter is None  # no limiter was made for it


async def test_the_default_registry_applies_to_existing_clients(
    openai: FakeUpstream, restore_default: None
) -> None:
    """A client made before the limits were declared gets a limiter when they are."""
    clock = Clock()
    engine = Engine(clock=clock, sleep=clock.sleep, retry=RetryPolicy(max_retries=0))
    c = llmrelay.Client(engine=engine)
    assert engine.limiter is None
    default_providers().register_provider(
        "openai", Provider(rate_limits={"requests_per_minute": 2})
    )
    assert engine.limiter is not None
    await c.achat(MODEL, "1")
    await c.achat(MODEL, "2")
    with pytest.raises(RateLimitedError):
        await c.achat(MODEL, "3")
    # A client with its own registry is not bound by the default one's limits.
    own = client(ProviderRegistry(), Clock())
    for i in range(3):
        await own.achat(MODEL, str(i))


async def test_limits_declared_later_reach_a_client_using_the_registry(
    openai: FakeUpstream,
) -> None:
    clock = Clock()
    providers = ProviderRegistry()
    c = client(providers, clock)
    for i in range(3):
        await c.achat(MODEL, str(i))
    providers.register_provider("openai", Provider(rate_limits={"requests_per_minute": 1}))
    await c.achat(MODEL, "first under the new limit")
    with pytest.raises(RateLimitedError):
        await c.achat(MODEL, "second")


# --------------------------------------------------------------------------- shared via Redis


async def test_shared_over_redis_by_two_clients(
    openai: FakeUpstream, redis_store: RedisStore
) -> None:
    """Two clients on one Redis (as two processes would be): rpm 2 for both together."""
    providers = registry(requests_per_minute=2)
    a = llmrelay.Client(providers=providers, state=redis_store)
    b = llmrelay.Client(providers=providers, state=redis_store)
    assert a.engine.limiter is not b.engine.limiter
    await a.achat(MODEL, "1")
    await b.achat(MODEL, "2")
    with pytest.raises(RateLimitedError) as ei:
        await a.achat(MODEL, "3")
    assert ei.value.retry_after is not None
    assert 0 < ei.value.retry_after <= 30.0
    with pytest.raises(RateLimitedError):
        await b.achat(MODEL, "4")
    assert len(openai.requests) == 2


async def test_per_day_limits_shared_over_redis(
    openai: FakeUpstream, redis_store: RedisStore
) -> None:
    providers = registry(requests_per_day=2)
    a = llmrelay.Client(providers=providers, state=redis_store)
    b = llmrelay.Client(providers=providers, state=redis_store)
    await a.achat(MODEL, "1")
    await b.achat(MODEL, "2")
    with pytest.raises(RateLimitedError) as ei:
        await b.achat(MODEL, "3")
    assert ei.value.retry_after is not None
    assert ei.value.retry_after > 60  # a day's allowance, not a minute's
    assert "requests per-day limit" in str(ei.value)


async def test_shared_over_redis_when_llmrelay_redis_url_is_set(
    openai: FakeUpstream,
    redis_url: str,
    redis_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No ``limits=`` and no ``state=``: the configured Redis (``LLMRELAY_REDIS_URL``) holds the
    limiter each client makes for the declared limits."""
    config = tmp_path / "llmrelay.toml"
    config.write_text(f'[state]\nprefix = "{redis_prefix}"\n')
    monkeypatch.setenv("LLMRELAY_CONFIG", str(config))
    monkeypatch.setenv("LLMRELAY_REDIS_URL", redis_url)
    with isolated_config():
        providers = registry(requests_per_minute=2)
        a, b = llmrelay.Client(providers=providers), llmrelay.Client(providers=providers)
        for c in (a, b):
            limiter = c.engine.limiter
            assert isinstance(limiter, RateLimiter)
            assert isinstance(limiter.store, RedisStore)
        await a.achat(MODEL, "1")
        await b.achat(MODEL, "2")
        with pytest.raises(RateLimitedError):
            await b.achat(MODEL, "3")
        for c in (a, b):
            await c.aclose()
    assert len(openai.requests) == 2


# --------------------------------------------------------------------------- one count per process


async def test_two_clients_share_a_providers_limit_in_process(openai: FakeUpstream) -> None:
    """A provider's declared limits are its quota, not each client's: two clients (each with
    the limiter it makes for them) together get two calls a minute, not four."""
    providers = registry(requests_per_minute=2)
    a, b = llmrelay.Client(providers=providers), llmrelay.Client(providers=providers)
    assert a.engine.limiter is not None
    assert b.engine.limiter is not None
    assert a.engine.limiter is not b.engine.limiter
    await a.achat(MODEL, "1")
    await b.achat(MODEL, "2")
    for c in (a, b):
        with pytest.raises(RateLimitedError) as ei:
            await c.achat(MODEL, "3")
        assert ei.value.retry_after is not None
        assert 0 < ei.value.retry_after <= 30.0
        assert ei.value.body["scope"] == "provider openai (its declared rate limits)"
    assert len(openai.requests) == 2


async def test_clients_with_their_own_limiters_share_it_and_wait(openai: FakeUpstream) -> None:
    """Two clients with limiters of their own (on one clock) share the provider's count; the
    one that waits (``wait=True``) waits the provider's turn."""
    clock = Clock()
    providers = registry(requests_per_minute=2)
    a, b = client(providers, clock), client(providers, clock, wait=True)
    await a.achat(MODEL, "1")
    await a.achat(MODEL, "2")
    await b.achat(MODEL, "3")  # waits for the provider's next slot
    assert clock.slept == [pytest.approx(30.0)]
    with pytest.raises(RateLimitedError):
        await a.achat(MODEL, "4")
    assert len(openai.requests) == 3


async def test_registries_declaring_the_same_limits_share_one_count(
    openai: FakeUpstream,
) -> None:
    clock = Clock()
    a = client(registry(requests_per_minute=2), clock)
    b = client(registry(requests_per_minute=2), clock)
    await a.achat(MODEL, "1")
    await b.achat(MODEL, "2")
    with pytest.raises(RateLimitedError):
        await b.achat(MODEL, "3")
    # other limits are another count (the provider keyed with its limits) ...
    other = client(registry(requests_per_minute=3), clock)
    await other.achat(MODEL, "4")
    # ... and so is the same provider at another base URL
    elsewhere = client(registry(requests_per_minute=2), clock)
    other_url = openai.openai_base_url.replace("127.0.0.1", "localhost")
    await elsewhere.achat(MODEL, "5", base_url=other_url)
    assert len(openai.requests) == 4


async def test_one_api_key_is_one_count_across_clients(openai: FakeUpstream, keys: str) -> None:
    clock = Clock()
    a = client(registry(requests_per_minute=1), clock)
    b = client(registry(requests_per_minute=1), clock)
    await a.achat(MODEL, "1")
    with pytest.raises(RateLimitedError):
        await b.achat(MODEL, "2")


def test_the_process_wide_counts_are_freed() -> None:
    """The shared table of a clock goes with the clock; past its bound, idle scopes go."""
    import gc
    import weakref

    from llmrelay.reliability import ratelimit_buckets as rb

    clock = Clock()
    table = rb.shared_scopes(clock)
    assert rb.shared_scopes(clock) is table
    assert rb.MemoryBuckets(clock)._shared is table
    assert rb.shared_scopes(clock.sleep) is not table  # another method: another clock
    gone = weakref.ref(table)
    del clock, table
    gc.collect()
    assert gone() is None


async def test_idle_process_wide_scopes_are_dropped_past_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from llmrelay.reliability import ratelimit_buckets as rb

    monkeypatch.setattr(rb, "MAX_SHARED_SCOPES", 3)
    clock = Clock()
    buckets = rb.MemoryBuckets(clock)
    buckets._shared.prune_at = 3
    limits = (60.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    costs = (1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    for i in range(3):
        assert await buckets.acquire([rb.Charge(f"provider:p{i}", limits, costs, 0)], "", 1) is None
    clock.advance(1.0)  # each used one second of its minute: all idle again
    assert await buckets.acquire([rb.Charge("provider:p3", limits, costs, 0)], "", 1) is None
    assert sorted(buckets._shared.scopes) == ["provider:p3"]
    # a scope still counting is kept
    assert await buckets.acquire([rb.Charge("provider:p4", limits, costs, 0)], "", 1) is None
    assert await buckets.acquire([rb.Charge("provider:p5", limits, costs, 0)], "", 1) is None
    assert await buckets.acquire([rb.Charge("provider:p6", limits, costs, 0)], "", 1) is None
    assert len(buckets._shared.scopes) == 4
    # nothing could go: the next sweep waits until the table has doubled
    assert buckets._shared.prune_at == 6
    # the scopes kept still count: p4's request still holds a second of its minute
    one_a_minute = (1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    assert await buckets.acquire([rb.Charge("provider:p4", one_a_minute, costs, 0)], "", 1)
    assert await buckets.acquire([rb.Charge("provider:p9", one_a_minute, costs, 0)], "", 1) is None


async def test_a_shared_limiter_applies_each_clients_own_registry(openai: FakeUpstream) -> None:
    """One RateLimiter handed to two clients: the limits a registry declares apply to the
    client using that registry, not to a client using another. Before, the limiter applied
    every registry it had seen to every call, so a client whose registry declares nothing (or
    other limits) got the first registry's limits (outside review of issue 11)."""
    clock = Clock()
    shared = RateLimiter({}, clock=clock, sleep=clock.sleep)
    strict = registry(requests_per_minute=1)
    a = llmrelay.Client(providers=strict, limits=shared)
    b = llmrelay.Client(providers=ProviderRegistry(), limits=shared)  # declares nothing
    c = llmrelay.Client(providers=registry(requests_per_minute=100), limits=shared)
    await a.achat(MODEL, "a1")
    with pytest.raises(RateLimitedError):
        await a.achat(MODEL, "a2")
    for i in range(3):
        await b.achat(MODEL, f"b{i}")
        await c.achat(MODEL, f"c{i}")
    assert len(openai.requests) == 7


async def test_idle_scopes_of_one_limiter_are_dropped_past_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A limiter's own scopes (a user, tenant or virtual key each, a deployment per model name
    a caller sends) were never dropped: every name a caller made up stayed for the process's
    life. They are pruned like the process-wide ones, and the ones still counting stay."""
    from llmrelay.reliability import ratelimit_buckets as rb

    monkeypatch.setattr(rb, "MAX_SHARED_SCOPES", 3)
    clock = Clock()
    buckets = rb.MemoryBuckets(clock)
    buckets._prune_at = 3
    limits = (60.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    costs = (1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    for i in range(1000):
        clock.advance(1.0)  # each user's request holds one second of its minute
        assert await buckets.acquire([rb.Charge(f"user:u{i}", limits, costs, 0)], "", 1) is None
    assert len(buckets._scopes) <= 120  # the last minute's users at most, not all 1,000
    one_a_minute = (1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    # the last user's request still holds a second of its minute: it was kept and counts
    assert await buckets.acquire([rb.Charge("user:u999", one_a_minute, costs, 0)], "", 1)
