"""Blocks learned from provider rate-limit headers are capped (issue 8, timing rules).

One answer saying ``x-ratelimit-remaining-requests: 0`` with ``x-ratelimit-reset-requests:
160h`` blocked the deployment for 160 hours. A block now lasts at most the limit's own period
(a minute for per-minute limits, a day for per-day ones) and at most the limiter's
``max_block`` (60 s by default); nonsense values are ignored. Checked on the pure header
reader, on both bucket stores, and end to end over a real socket, in process and in Redis.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import llmrelay
from llmrelay.core.engine import CallOptions, Engine
from llmrelay.core.layers import CallContext
from llmrelay.core.retry import RetryPolicy
from llmrelay.errors import ConfigFileError, ConfigurationError, RateLimitedError
from llmrelay.providers.table import make_deployment
from llmrelay.reliability.ratelimit import RateLimiter
from llmrelay.reliability.ratelimit_buckets import Charge, MemoryBuckets, Settle
from llmrelay.reliability.ratelimit_headers import DEFAULT_MAX_BLOCK, read_limit_headers
from llmrelay.reliability.ratelimit_redis import RedisBuckets
from llmrelay.state import RedisStore
from llmrelay.testing.fake import FakeUpstream, Reply
from llmrelay.types import ChatRequest, Message, build_params

from .. import redis_services
from ..conftest import CANARY_KEY, FakeClock

redis_prefix = redis_services.redis_prefix
redis_store = redis_services.redis_store
redis_url = redis_services.redis_url

NOW = datetime(2025, 1, 1, tzinfo=UTC)
MODEL = "openai/gpt-4o-mini"
DEP = make_deployment("openai", "gpt-4o-mini", api_key="sk-test", base_url="http://x/v1")


def now() -> float:
    return NOW.timestamp()


def rfc3339(seconds: float) -> str:
    return (NOW + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def out_of(family: str, reset: str) -> dict[str, str]:
    """OpenAI-style headers: nothing left of ``family`` until ``reset``."""
    return {
        f"x-ratelimit-limit-{family}": "100",
        f"x-ratelimit-remaining-{family}": "0",
        f"x-ratelimit-reset-{family}": reset,
    }


def bare(family: str, reset: str) -> dict[str, str]:
    """Nothing left of ``family`` until ``reset``, with no limit announced (so no per-minute
    counter fills up: only the block keeps calls away)."""
    return {f"x-ratelimit-remaining-{family}": "0", f"x-ratelimit-reset-{family}": reset}


def anthropic_out(reset: str) -> dict[str, str]:
    return {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": reset,
    }


H = 3600.0
DAY = 86400.0

# (id, headers, is a 429, max_block, expected block in seconds)
BLOCKS: list[tuple[str, dict[str, str], bool, float, float]] = [
    ("160h on requests per minute", out_of("requests", "160h"), False, 60, 60.0),
    ("160h, a longer max_block: still a minute", out_of("requests", "160h"), False, DAY, 60.0),
    ("6m0s on tokens per minute", out_of("tokens", "6m0s"), False, 60, 60.0),
    ("20s is obeyed", out_of("requests", "20s"), False, 60, 20.0),
    ("20s under a 5 s max_block", out_of("requests", "20s"), False, 5, 5.0),
    ("inf", out_of("requests", "inf"), False, 60, 0.0),
    ("nan", out_of("requests", "nan"), False, 60, 0.0),
    ("negative", out_of("requests", "-5s"), False, 60, 0.0),
    ("garbage", out_of("requests", "soon"), False, 60, 0.0),
    ("beyond a week", out_of("requests", "99999999h"), False, 60, 0.0),
    ("empty", out_of("requests", ""), False, 60, 0.0),
    ("Anthropic reset in 160 h", anthropic_out(rfc3339(160 * H)), False, DAY, 60.0),
    ("Anthropic reset in 12 s", anthropic_out(rfc3339(12)), False, 60, 12.0),
    ("Anthropic reset in the past", anthropic_out(rfc3339(-30)), False, 60, 0.0),
    ("Anthropic reset without a zone", anthropic_out("2025-01-01T00:00:30"), False, 60, 0.0),
    ("per-day reset 5 h, day-long max_block", out_of("requests-day", "5h"), False, DAY, 5 * H),
    ("per-day reset 160 h: a day at most", out_of("requests-day", "160h"), False, 9 * DAY, DAY),
    ("per-day reset 160 h, default max_block", out_of("requests-day", "160h"), False, 60, 60.0),
    ("per-hour reset 3 h: an hour at most", out_of("tokens-hour", "3h"), False, DAY, H),
    ("per-minute family", out_of("tokens-minute", "160h"), False, DAY, 60.0),
    ("429 retry-after 30", {"retry-after": "30"}, True, 60, 30.0),
    ("429 retry-after 3600: max_block", {"retry-after": "3600"}, True, 60, 60.0),
    ("429 retry-after 3600, longer max_block", {"retry-after": "3600"}, True, 2 * H, 3600.0),
    ("429 retry-after inf", {"retry-after": "inf"}, True, 60, 0.0),
    ("retry-after on a success is no block", {"retry-after": "30"}, False, 60, 0.0),
    (
        "remaining left: no block",
        {**out_of("requests", "160h"), "x-ratelimit-remaining-requests": "3"},
        False,
        60,
        0.0,
    ),
]


@pytest.mark.parametrize(
    ("headers", "rate_limited", "max_block", "expected"),
    [pytest.param(h, r, m, e, id=name) for name, h, r, m, e in BLOCKS],
)
def test_learned_block_is_capped(
    headers: dict[str, str], rate_limited: bool, max_block: float, expected: float
) -> None:
    info = read_limit_headers(headers, rate_limited=rate_limited, now=now, max_block=max_block)
    assert info is not None
    assert info.block == pytest.approx(expected)
    assert 0.0 <= info.block <= max_block


def test_per_period_families_learn_only_per_minute_limits() -> None:
    info = read_limit_headers(
        {
            "x-ratelimit-limit-requests-day": "14400",
            "x-ratelimit-remaining-requests-day": "14000",
            "x-ratelimit-limit-tokens-minute": "60000",
            "x-ratelimit-remaining-tokens-minute": "59000",
        },
        now=now,
    )
    assert info is not None
    # A per-day limit is not a per-minute one: it is not learned as such.
    assert info.learned == (0.0, 60000.0, 0.0, 0.0)
    assert info.used == (-1.0, 1000.0, -1.0, -1.0)
    assert info.block == 0.0


@pytest.mark.parametrize("limit", ["0.001", "0.5", "1e-300", "-3", "inf", "nan", "many"])
def test_garbage_learned_limits_are_ignored(limit: str) -> None:
    """A limit below one unit a minute would refuse every call as "never fits", forever."""
    info = read_limit_headers(
        {"x-ratelimit-limit-requests": limit, "x-ratelimit-remaining-requests": "0"}, now=now
    )
    assert info is not None
    assert info.learned[0] == 0.0
    assert info.used[0] == -1.0


RESETS = [
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
    "x-ratelimit-reset-requests-day",
    "x-ratelimit-reset-tokens-hour",
    "anthropic-ratelimit-output-tokens-reset",
    "retry-after",
    "retry-after-ms",
]
values = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["0", "160h", "inf", "-inf", "nan", "-1", "1e309", "99999h", "6m0s", "1e6"]),
    st.floats().map(repr),
    st.floats(min_value=-1e7, max_value=1e7).map(
        lambda f: (datetime.now(UTC) + timedelta(seconds=f)).isoformat()
    ),
)
remaining = st.one_of(st.sampled_from(["0", "0.5", "-0", "3", "nan", "inf"]), st.text(max_size=5))


@st.composite
def limit_headers(draw: st.DrawFn) -> dict[str, str]:
    """Headers where a limit is (often) used up and its reset is anything at all."""
    out: dict[str, str] = {}
    for reset_name in draw(st.lists(st.sampled_from(RESETS), unique=True)):
        out[reset_name] = draw(values)
        remaining_name = reset_name.replace("-reset", "-remaining")
        if remaining_name != reset_name:
            out[remaining_name] = draw(remaining)
            out[reset_name.replace("-reset", "-limit")] = draw(values)
    return out


@given(limit_headers(), st.booleans(), st.floats(min_value=0.001, max_value=30 * DAY))
def test_any_headers_give_a_bounded_block(
    headers: dict[str, str], rate_limited: bool, max_block: float
) -> None:
    info = read_limit_headers(headers, rate_limited=rate_limited, max_block=max_block)
    if info is None:
        return
    assert math.isfinite(info.block)
    assert 0.0 <= info.block <= max_block
    if not rate_limited:  # without a 429 only the limits' own periods bound it (a day at most)
        assert info.block <= DAY
    assert all(math.isfinite(x) and (x == 0 or x >= 1) for x in info.learned)
    assert all(math.isfinite(x) for x in info.used)


def test_max_block_is_validated() -> None:
    for bad in (0, -1, math.nan, math.inf, "60", True, None):
        with pytest.raises(ConfigurationError, match="max_block"):
            RateLimiter({}, max_block=bad)  # type: ignore[arg-type]
    assert RateLimiter({}).max_block == DEFAULT_MAX_BLOCK == 60.0
    with pytest.raises(ConfigurationError, match="max_block"):
        llmrelay.Client(limits=RateLimiter({}, max_block=-5))


def test_max_block_from_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ..config_isolation import isolated_config

    path = tmp_path / "llmrelay.toml"
    monkeypatch.setenv("LLMRELAY_CONFIG", str(path))
    path.write_text('[limits]\nmax_block = 300\n[limits."openai/gpt-4o-mini"]\nrpm = 5\n')
    with isolated_config():
        limiter = llmrelay.Client().engine.limiter
        assert isinstance(limiter, RateLimiter)
        assert limiter.max_block == 300.0
    path.write_text('[limits]\nmax_block = -1\n[limits."openai/gpt-4o-mini"]\nrpm = 5\n')
    with isolated_config(), pytest.raises(ConfigFileError, match="max_block"):
        llmrelay.Client()


# --------------------------------------------------------------------------- the stores


def _charge() -> Charge:
    return Charge("dep:x", (0.0, 0.0, 0.0, 0.0), (1.0, 10.0, 5.0, 5.0), 0)


def _settle(block: float) -> Settle:
    return Settle("dep:x", (0.0, 0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 0.0), block)


NONSENSE = [math.inf, -math.inf, math.nan, -5.0, 0.0]


@pytest.mark.parametrize("block", NONSENSE)
async def test_memory_buckets_ignore_nonsense_blocks(block: float) -> None:
    b = MemoryBuckets(FakeClock(), max_block=60.0)
    await b.release([_settle(block)], "")
    assert await b.acquire([_charge()], "", 1.0) is None


async def test_memory_buckets_cap_a_block() -> None:
    clock = FakeClock()
    b = MemoryBuckets(clock, max_block=60.0)
    await b.release([_settle(160 * H)], "")
    r = await b.acquire([_charge()], "", 1.0)
    assert r is not None
    assert r.dim == "blocked"
    assert r.retry_after == 60.0
    clock.advance(60.0)
    assert await b.acquire([_charge()], "", 1.0) is None


@pytest.mark.services
@pytest.mark.parametrize("block", NONSENSE)
async def test_redis_buckets_ignore_nonsense_blocks(redis_store: RedisStore, block: float) -> None:
    b = RedisBuckets(redis_store, max_block=60.0)
    await b.release([_settle(block)], "")
    assert await b.acquire([_charge()], "", 1.0) is None


@pytest.mark.services
async def test_redis_buckets_cap_a_block_when_written_and_when_read(
    redis_store: RedisStore,
) -> None:
    await RedisBuckets(redis_store, max_block=60.0).release([_settle(160 * H)], "")
    r = await RedisBuckets(redis_store, max_block=3600.0).acquire([_charge()], "", 1.0)
    assert r is not None
    assert r.retry_after is not None
    assert 59.0 < r.retry_after <= 60.0
    # A process with a longer ceiling wrote a long block: one with a shorter ceiling reads it
    # cut back to its own (and stores it so), never waiting longer than it was configured to.
    await RedisBuckets(redis_store, max_block=DAY).release(
        [Settle("dep:y", (0.0,) * 4, (0.0,) * 4, 5 * H)], ""
    )
    y = Charge("dep:y", (0.0,) * 4, (1.0, 0.0, 0.0, 0.0), 0)
    long = await RedisBuckets(redis_store, max_block=DAY).acquire([y], "", 1.0)
    assert long is not None
    assert long.retry_after is not None
    assert long.retry_after > 4 * H
    short = await RedisBuckets(redis_store, max_block=10.0).acquire([y], "", 1.0)
    assert short is not None
    assert short.retry_after is not None
    assert 9.0 < short.retry_after <= 10.0
    again = await RedisBuckets(redis_store, max_block=DAY).acquire([y], "", 1.0)
    assert again is not None
    assert again.retry_after is not None
    assert again.retry_after <= 10.0


# --------------------------------------------------------------------------- end to end


class Clock(FakeClock):
    def __init__(self) -> None:
        super().__init__(1000.0)
        self.slept: list[float] = []

    async def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += s


def _client(limiter: RateLimiter, clock: Clock) -> llmrelay.Client:
    engine = Engine(
        limiter=limiter, clock=clock, sleep=clock.sleep, retry=RetryPolicy(max_retries=0)
    )
    return llmrelay.Client(engine=engine)


def _kw(fake: FakeUpstream) -> dict[str, Any]:
    return {"api_key": CANARY_KEY, "base_url": fake.openai_base_url}


async def test_a_160h_reset_blocks_at_most_a_minute(fake: FakeUpstream) -> None:
    clock = Clock()
    client = _client(RateLimiter({}, clock=clock, sleep=clock.sleep), clock)
    fake.push(Reply.ok("last one", headers=out_of("requests", "160h")))
    await client.achat(MODEL, "a", **_kw(fake))
    with pytest.raises(RateLimitedError, match="provider asked us to pause") as ei:
        await client.achat(MODEL, "b", **_kw(fake))
    assert ei.value.retry_after == pytest.approx(60.0)
    assert len(fake.requests) == 1
    clock.advance(60.0)
    r = await client.achat(MODEL, "c", **_kw(fake))  # the deployment is back
    assert r.text == "Echo: c"
    assert len(fake.requests) == 2
    await client.aclose()


async def test_a_configured_max_block_is_the_ceiling(fake: FakeUpstream) -> None:
    clock = Clock()
    client = _client(RateLimiter({}, clock=clock, sleep=clock.sleep, max_block=5), clock)
    fake.push(Reply.error(429, "slow down", headers={"retry-after": "3600"}))
    with pytest.raises(RateLimitedError) as ei:
        await client.achat(MODEL, "a", **_kw(fake))
    assert ei.value.retry_after == 3600.0  # the provider's error keeps what the server said
    with pytest.raises(RateLimitedError, match="pause") as ei:
        await client.achat(MODEL, "b", **_kw(fake))
    assert ei.value.retry_after == pytest.approx(5.0)
    clock.advance(5.0)
    assert (await client.achat(MODEL, "c", **_kw(fake))).text == "Echo: c"
    assert len(fake.requests) == 2
    await client.aclose()


async def test_waiting_for_a_learned_block_waits_at_most_the_cap(fake: FakeUpstream) -> None:
    clock = Clock()
    limiter = RateLimiter({}, clock=clock, sleep=clock.sleep, wait=True, max_wait=120)
    client = _client(limiter, clock)
    # Resets in RFC 3339 are read against the wall clock.
    in_an_hour = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    for headers in (
        bare("requests", "160h"),
        {
            "anthropic-ratelimit-tokens-remaining": "0",
            "anthropic-ratelimit-tokens-reset": in_an_hour,
        },
    ):
        fake.push(Reply.ok("last one", headers=headers))
    await client.achat(MODEL, "a", **_kw(fake))
    await client.achat(MODEL, "b", **_kw(fake))  # waits out the first block: a minute
    assert clock.slept == [pytest.approx(60.0)]
    r = await client.achat(MODEL, "c", **_kw(fake))  # and the second (an hour away): a minute
    assert r.text == "Echo: c"
    assert clock.slept == [pytest.approx(60.0)] * 2
    assert len(fake.requests) == 3
    await client.aclose()


@pytest.mark.services
async def test_redis_shared_limiter_caps_a_160h_reset(
    fake: FakeUpstream, redis_store: RedisStore
) -> None:
    """Two clients sharing Redis: the block one learned is at most a minute for both."""
    clock = Clock()
    first = _client(RateLimiter({}, store=redis_store), clock)
    second = _client(RateLimiter({}, store=redis_store), clock)
    fake.push(Reply.ok("last one", headers=out_of("requests", "160h")))
    await first.achat(MODEL, "a", **_kw(fake))
    for client in (first, second):
        with pytest.raises(RateLimitedError, match="pause") as ei:
            await client.achat(MODEL, "b", **_kw(fake))
        assert ei.value.retry_after is not None
        assert 55.0 < ei.value.retry_after <= 60.0
    assert len(fake.requests) == 1
    # A configured ceiling applies to what another process stored, too.
    third = _client(RateLimiter({}, store=redis_store, max_block=2), clock)
    with pytest.raises(RateLimitedError, match="pause") as ei:
        await third.achat(MODEL, "c", **_kw(fake))
    assert ei.value.retry_after is not None
    assert 0.0 < ei.value.retry_after <= 2.0
    for c in (first, second, third):
        await c.aclose()


@pytest.mark.services
async def test_redis_shared_limiter_ignores_nonsense_resets(
    fake: FakeUpstream, redis_store: RedisStore
) -> None:
    clock = Clock()
    client = _client(RateLimiter({}, store=redis_store), clock)
    for reset in ("inf", "nan", "-5s", "garbage", "1e309"):
        fake.push(Reply.ok("x", headers=bare("requests", reset)))
        await client.achat(MODEL, "a", **_kw(fake))
    assert len(fake.requests) == 5  # never blocked
    await client.aclose()


def _ctx() -> CallContext:
    return CallContext(CallOptions(), "t", 0.0)


def _req() -> ChatRequest:
    return ChatRequest([Message("user", "hi")], build_params({"max_tokens": 5}))


async def test_limiter_release_caps_what_it_learns() -> None:
    clock = Clock()
    limiter = RateLimiter({}, clock=clock, sleep=clock.sleep)
    p = await limiter.acquire(DEP, _req(), _ctx())
    await limiter.release(p, None, out_of("tokens-day", "160h"), None)
    with pytest.raises(RateLimitedError) as ei:
        await limiter.acquire(DEP, _req(), _ctx())
    assert ei.value.retry_after == pytest.approx(60.0)


@pytest.mark.services
def test_processes_sharing_redis_see_a_capped_block(
    fake_thread: FakeUpstream, redis_url: str, redis_prefix: str
) -> None:
    """One OS process learns "reset in 160h" over a real socket; it and another process (with
    a shorter ceiling) are kept away at most their ceiling, and the fake sees one request."""
    from ..state.test_shared_state import run_workers

    fake_thread.push(Reply.ok("last one", headers=out_of("requests", "160h")))
    base = fake_thread.openai_base_url
    (first,) = run_workers(["learned_block", redis_url, redis_prefix, base, CANARY_KEY, 60, 2])
    assert first["store_errors"] == 0
    assert first["seen"][0] == "ok"
    assert 50.0 < first["seen"][1] <= 60.0
    (second,) = run_workers(["learned_block", redis_url, redis_prefix, base, CANARY_KEY, 3, 1])
    assert 0.0 < second["seen"][0] <= 3.0
    assert len(fake_thread.requests) == 1


# --------------------------------------------------------------------------- learned limits expire

#: One answer announcing a per-minute token limit of 100 (nothing used yet).
TOKENS_100 = {
    "x-ratelimit-limit-tokens": "100",
    "x-ratelimit-remaining-tokens": "100",
    "x-ratelimit-reset-tokens": "1s",
}


async def test_a_call_above_a_learned_limit_is_sent_and_only_a_configured_one_refuses(
    fake: FakeUpstream,
) -> None:
    """A learned limit is the provider's word of a moment: a call needing more is sent (the
    provider decides), never refused as "can never be admitted". A configured one still is."""
    clock = Clock()
    client = _client(RateLimiter({}, clock=clock, sleep=clock.sleep), clock)
    fake.push(Reply.ok("x", headers=TOKENS_100))
    await client.achat(MODEL, "a", **_kw(fake))
    for _ in range(3):
        r = await client.achat(MODEL, "big", max_tokens=500, **_kw(fake))
        assert r.text == "Echo: big"
    assert len(fake.requests) == 4
    configured = _client(RateLimiter({MODEL: {"tpm": 100}}, clock=clock, sleep=clock.sleep), clock)
    with pytest.raises(RateLimitedError, match="never be admitted") as ei:
        await configured.achat(MODEL, "big", max_tokens=500, **_kw(fake))
    assert ei.value.retry_after is None
    assert len(fake.requests) == 4
    for c in (client, configured):
        await c.aclose()


async def test_a_learned_limit_blocks_at_most_max_block(fake: FakeUpstream) -> None:
    """An answer reporting far more usage than the learned limit allows pushes the counter
    days ahead: the deployment is kept away at most ``max_block`` (the learned limit expires)."""
    clock = Clock()
    client = _client(RateLimiter({}, clock=clock, sleep=clock.sleep, max_block=30), clock)
    fake.push(Reply.ok("x", headers=TOKENS_100, input_tokens=5, output_tokens=10**6))
    await client.achat(MODEL, "a", max_tokens=10, **_kw(fake))
    with pytest.raises(RateLimitedError, match="per-minute limit") as ei:
        await client.achat(MODEL, "b", max_tokens=10, **_kw(fake))
    assert ei.value.retry_after is not None
    assert 0.0 < ei.value.retry_after <= 30.0
    clock.advance(30.0)
    fake.push(Reply.ok("y", headers=TOKENS_100))  # the limit is learned again, counts afresh
    assert (await client.achat(MODEL, "c", max_tokens=10, **_kw(fake))).text == "y"
    assert (await client.achat(MODEL, "d", max_tokens=10, **_kw(fake))).text == "Echo: d"
    assert len(fake.requests) == 3
    await client.aclose()


@pytest.mark.services
async def test_a_limit_learned_in_redis_never_refuses_forever(
    fake: FakeUpstream, redis_store: RedisStore, redis_url: str
) -> None:
    """Shared through Redis: another limiter (another process's view) sends the call needing
    more than the learned limit, and the learned limit is stored with an expiry of at most
    ``max_block``."""
    import redis

    clock = Clock()
    first = _client(RateLimiter({}, store=redis_store), clock)
    second = _client(RateLimiter({}, store=redis_store), clock)
    fake.push(Reply.ok("x", headers=TOKENS_100))
    await first.achat(MODEL, "a", **_kw(fake))
    r = await second.achat(MODEL, "big", max_tokens=500, **_kw(fake))
    assert r.text == "Echo: big"
    assert len(fake.requests) == 2
    raw = redis.Redis.from_url(redis_url)
    try:
        # (Not the concurrency set, nor the answers kept for a resend: ``once`` scripts.)
        [key] = [
            k
            for k in raw.scan_iter(f"{redis_store.prefix}rl:*")
            if not k.endswith(b":c") and b":once:" not in k
        ]
        assert raw.hget(key, "Ltpm") == b"100"
        secs, micros = raw.time()
        left_ms = float(raw.hget(key, "Lexp") or 0) - (secs * 1000 + micros / 1000)
        assert 0.0 < left_ms <= DEFAULT_MAX_BLOCK * 1000
    finally:
        raw.close()
    for c in (first, second):
        await c.aclose()
