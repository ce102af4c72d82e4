"""What the rate limiter prepares once and reuses must not change what it decides: scopes
planned per deployment, API key and alias; slots per scope while its limits stay the same; the
dimensions a scope counts; header names looked at once. Each cache is bounded, and the
in-process counters and the header reader decide exactly as the straightforward versions
below (every dimension of every scope on every call) do."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay.core.layers import CallContext
from llmrelay.core.options import CallOptions
from llmrelay.errors import RateLimitedError
from llmrelay.gateway.keys import VirtualKey
from llmrelay.gateway.policy import KeyRateLimiter
from llmrelay.providers.table import make_deployment
from llmrelay.reliability import ratelimit, ratelimit_headers
from llmrelay.reliability.ratelimit import RateLimiter
from llmrelay.reliability.ratelimit_buckets import (
    DIMS,
    WINDOWS,
    Charge,
    MemoryBuckets,
    Refusal,
    Settle,
)
from llmrelay.reliability.ratelimit_headers import (
    _FAMILIES,
    parse_reset,
    read_limit_headers,
)
from llmrelay.state import RedisStore
from llmrelay.transport.headers import parse_retry_after
from llmrelay.types import Response, Usage

from .. import redis_services
from ..conftest import FakeClock
from .test_ratelimit import DEP, _ctx, _req

# pytest fixtures
redis_prefix = redis_services.redis_prefix
redis_store = redis_services.redis_store
redis_url = redis_services.redis_url


def _key(rpm: int | None = None, tpm: int | None = None) -> VirtualKey:
    return VirtualKey(id="key_1", name="k", key_hash="h", rpm=rpm, tpm=tpm)


async def test_a_keys_changed_limits_apply_on_its_next_call() -> None:
    clock = FakeClock()
    limiter = KeyRateLimiter(clock=clock)
    ctx = _ctx(tags={"vkey": "key_1"})
    limiter.limits_for(_key(rpm=1))
    assert await limiter.acquire(DEP, _req(), ctx) is not None
    clock.advance(20)
    with pytest.raises(RateLimitedError, match="vkey 'key_1'"):
        await limiter.acquire(DEP, _req(), ctx)  # one a minute: the next in 40 s
    limiter.limits_for(_key(rpm=1))  # a new record with the same limits: nothing changes
    with pytest.raises(RateLimitedError, match="vkey 'key_1'"):
        await limiter.acquire(DEP, _req(), ctx)
    limiter.limits_for(_key(rpm=3))  # `keys update`: three a minute, from this call on
    assert await limiter.acquire(DEP, _req(), ctx) is not None
    with pytest.raises(RateLimitedError, match="vkey 'key_1'"):
        await limiter.acquire(DEP, _req(), ctx)
    clock.advance(20)
    limiter.limits_for(_key(rpm=1, tpm=100_000))  # lowered again
    with pytest.raises(RateLimitedError, match="vkey 'key_1'"):
        await limiter.acquire(DEP, _req(), ctx)
    limiter.limits_for(_key())  # no limits left: the key's scope is gone
    for _ in range(5):
        assert await limiter.acquire(DEP, _req(), ctx) is not None
    assert await limiter.acquire(DEP, _req(), _ctx(tags={"vkey": "key_2"})) is not None


async def test_a_call_in_flight_keeps_its_key_limit_when_the_key_table_starts_afresh() -> None:
    """The gateway takes a key's limits when the request comes in (``limits_for``) and the
    limiter finds them by key id when the call acquires, after awaits. Past 100,000 keys the
    table was cleared: a call looked up just before and acquiring after found no limit and was
    admitted past its key's rpm. An emptied table is kept one more round (as budgets do)."""
    import dataclasses

    limiter = KeyRateLimiter(clock=FakeClock())
    ctx = _ctx(tags={"vkey": "key_1"})
    limiter.limits_for(_key(rpm=1))
    assert await limiter.acquire(DEP, _req(), ctx) is not None
    limiter.limits_for(_key(rpm=1))  # the key's second request comes in ...
    for i in range(100_002):  # ... and other keys' requests meanwhile
        limiter.limits_for(dataclasses.replace(_key(rpm=5), id=f"other-{i}"))
    with pytest.raises(RateLimitedError, match="vkey 'key_1'"):
        await limiter.acquire(DEP, _req(), ctx)
    limiter.limits_for(_key())  # the key's limits removed: from both tables
    assert await limiter.acquire(DEP, _req(), ctx) is not None


async def test_each_api_key_of_a_deployment_is_counted_apart() -> None:
    limiter = RateLimiter({"openai/gpt-4o-mini": {"rpm": 1}}, clock=FakeClock())
    dep_a = make_deployment("openai", "gpt-4o-mini", api_key="sk-a", base_url="http://x/v1")
    dep_b = make_deployment("openai", "gpt-4o-mini", api_key="sk-b", base_url="http://x/v1")
    again_a = make_deployment("openai", "gpt-4o-mini", api_key="sk-a", base_url="http://x/v1")
    pa = await limiter.acquire(dep_a, _req(), _ctx())
    pb = await limiter.acquire(dep_b, _req(), _ctx())
    assert pa is not None
    assert pb is not None
    assert pa.dep_scope != pb.dep_scope
    assert "sk-a" not in pa.dep_scope
    assert "sk-b" not in pb.dep_scope
    with pytest.raises(RateLimitedError):
        await limiter.acquire(again_a, _req(), _ctx())  # another object, the same key
    other_url = make_deployment("openai", "gpt-4o-mini", api_key="sk-a", base_url="http://y/v1")
    assert await limiter.acquire(other_url, _req(), _ctx()) is not None


async def test_the_calls_alias_chooses_the_limits() -> None:
    """One deployment, one count; the limits are those of the alias the call used."""
    limiter = RateLimiter({"fast": {"rpm": 1}, "openai/gpt-4o-mini": {"rpm": 2}}, clock=FakeClock())
    assert await limiter.acquire(DEP, _req(), _ctx()) is not None  # 1 of 2
    fast = CallContext(CallOptions(), "t", 0.0, alias="fast")
    with pytest.raises(RateLimitedError):
        await limiter.acquire(DEP, _req(), fast)  # 1 of 1
    assert await limiter.acquire(DEP, _req(), _ctx()) is not None  # 2 of 2


async def test_a_per_call_scope_limiting_concurrency_gives_each_permit_an_id() -> None:
    """The deployment's scope limits nothing, the user's limits concurrency: each call holds
    a slot of its own (permits without ids would share one)."""
    limiter = RateLimiter({"user:*": {"concurrent": 2}}, clock=FakeClock())
    ctx = _ctx(tags={"user": "u"})
    p1 = await limiter.acquire(DEP, _req(), ctx)
    p2 = await limiter.acquire(DEP, _req(), ctx)
    assert p1 is not None
    assert p2 is not None
    assert p1.permit_id != p2.permit_id
    with pytest.raises(RateLimitedError, match="concurrent"):
        await limiter.acquire(DEP, _req(), ctx)
    await limiter.release(p1, None, None, None)
    p3 = await limiter.acquire(DEP, _req(), ctx)
    assert p3 is not None
    assert (await limiter.acquire(DEP, _req(), _ctx())) is not None  # no user: no slot
    assert (await limiter.acquire(DEP, _req(), _ctx())).permit_id == ""  # type: ignore[union-attr]


async def test_the_caches_are_bounded_and_counts_outlive_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ratelimit, "_MAX_CACHED", 4)
    limiter = RateLimiter(
        {"openai/gpt-4o-mini": {"rpm": 1}, "user:*": {"rpm": 1}}, clock=FakeClock()
    )
    deps = [
        make_deployment("openai", "gpt-4o-mini", api_key=f"sk-{i}", base_url="http://x/v1")
        for i in range(20)
    ]
    for i, dep in enumerate(deps):
        assert await limiter.acquire(dep, _req(), _ctx(tags={"user": f"u{i}"})) is not None
        assert len(limiter._plans) <= 4
        assert len(limiter._slots) <= 4
    fresh = make_deployment("openai", "gpt-4o-mini", api_key="sk-new", base_url="http://x/v1")
    for i, dep in enumerate(deps):  # long gone from the caches; still counted
        with pytest.raises(RateLimitedError, match="deployment"):
            await limiter.acquire(dep, _req(), _ctx())
        with pytest.raises(RateLimitedError, match=f"user 'u{i}'"):
            await limiter.acquire(fresh, _req(), _ctx(tags={"user": f"u{i}"}))


async def test_a_learned_limit_beside_a_configured_one_on_one_scope() -> None:
    """Configured rpm and a learned tpm on the deployment's scope: both count."""
    limiter = RateLimiter({"openai/gpt-4o-mini": {"rpm": 100}}, clock=FakeClock())
    permit = await limiter.acquire(DEP, _req(max_tokens=10), _ctx())
    told = {"x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": "1000"}
    await limiter.release(permit, None, told, None)
    assert await limiter.acquire(DEP, _req(max_tokens=600), _ctx()) is not None
    with pytest.raises(RateLimitedError, match="tokens") as ei:
        await limiter.acquire(DEP, _req(max_tokens=600), _ctx())
    assert ei.value.body["limit"] == "tpm"
    # more than the learned limit at all: sent (the provider decides), as before
    assert await limiter.acquire(DEP, _req(max_tokens=5000), _ctx()) is not None


async def test_usage_settles_against_the_estimate_per_scope() -> None:
    """Two scopes counting tokens both take the usage over the estimate on release."""
    clock = FakeClock()
    limiter = RateLimiter(
        {"openai/gpt-4o-mini": {"tpm": 1000}, "user:*": {"tpm": 1000}}, clock=clock
    )
    ctx = _ctx(tags={"user": "u"})
    permit = await limiter.acquire(DEP, _req(max_tokens=10), ctx)
    resp = Response(text="x", usage=Usage(input_tokens=500, output_tokens=400))
    await limiter.release(permit, resp, None, None)
    with pytest.raises(RateLimitedError, match="tokens"):
        await limiter.acquire(DEP, _req(max_tokens=200), ctx)
    clock.advance(60)
    assert await limiter.acquire(DEP, _req(max_tokens=200), ctx) is not None


def test_header_names_are_read_in_any_case_and_their_table_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ratelimit_headers, "_NAMES", {})
    monkeypatch.setattr(ratelimit_headers, "_MAX_NAMES", 3)
    for spelling in (
        "x-ratelimit-limit-requests",
        "X-RateLimit-Limit-Requests",
        "X-RATELIMIT-LIMIT-REQUESTS",
    ):
        info = read_limit_headers({spelling: "50", "Content-Type": "a", f"x-other-{spelling}": "1"})
        assert info is not None
        assert info.learned == (50.0, 0.0, 0.0, 0.0)
    assert len(ratelimit_headers._NAMES) == 3
    for i in range(10):  # past the bound: still read, not remembered
        info = read_limit_headers({f"X-Unknown-{i}": "1", "x-ratelimit-limit-tokens": "70"})
        assert info is not None
        assert info.learned == (0.0, 70.0, 0.0, 0.0)
    assert len(ratelimit_headers._NAMES) == 3
    assert read_limit_headers({"X-RateLimit-Whatever": "1"}) is not None  # a prefix of ours
    assert read_limit_headers({"X-Request-Id": "1"}) is None


def test_a_later_family_of_headers_wins_in_any_order_of_the_headers() -> None:
    """Limits of one dimension in several families: the last family (in ``_FAMILIES``' order)
    is the one learned, wherever its header comes in the answer."""
    for headers in (
        {"x-ratelimit-limit-requests-minute": "30", "x-ratelimit-limit-requests": "50"},
        {"x-ratelimit-limit-requests": "50", "x-ratelimit-limit-requests-minute": "30"},
        {"anthropic-ratelimit-requests-limit": "30", "x-ratelimit-limit-requests": "50"},
    ):
        info = read_limit_headers(headers)
        assert info is not None
        assert info.learned == (30.0, 0.0, 0.0, 0.0)


@pytest.mark.services
async def test_two_gateway_limiters_on_redis_admit_exactly_a_keys_limit(
    redis_store: RedisStore,
) -> None:
    """Two instances, 60 concurrent calls of one key limited to 10 a minute: exactly 10 pass;
    what one instance learns from a provider's headers limits the other."""
    a, b = KeyRateLimiter(store=redis_store), KeyRateLimiter(store=redis_store)
    for limiter in (a, b):
        limiter.limits_for(_key(rpm=10))
    ctx = _ctx(tags={"vkey": "key_1"})

    async def one(limiter: KeyRateLimiter) -> Any:
        try:
            return limiter, await limiter.acquire(DEP, _req(), ctx)
        except RateLimitedError:
            return None

    got = [g for g in await asyncio.gather(*(one((a, b)[i % 2]) for i in range(60))) if g]
    assert len(got) == 10
    for limiter, permit in got:
        await limiter.release(permit, Response(usage=Usage(5, 5)), None, None)
    other = make_deployment("openai", "gpt-4.1-mini", api_key="sk-test", base_url="http://x/v1")
    permit = await a.acquire(other, _req(), _ctx())
    told = {"x-ratelimit-limit-requests": "3", "x-ratelimit-remaining-requests": "1"}
    await a.release(permit, None, told, None)  # 2 of 3 used: 1 left
    assert await b.acquire(other, _req(), _ctx()) is not None
    with pytest.raises(RateLimitedError, match=r"deployment openai/gpt-4\.1-mini"):
        await b.acquire(other, _req(), _ctx())


# --------------------------------------------------------------------------- the references


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        f = float(value.strip())
    except ValueError:
        return None
    return f if math.isfinite(f) and f >= 0 else None


def reference_headers(
    headers: dict[str, str], rate_limited: bool, now: Any, max_block: float
) -> tuple[float, tuple[float, ...], tuple[float, ...]] | None:
    """``read_limit_headers`` reading every family on every call."""
    found: dict[str, str] = {}
    for k, v in headers.items():
        lk = k.lower()
        if lk.startswith(("x-ratelimit-", "anthropic-ratelimit-", "retry-after")):
            found[lk] = v
    if not found:
        return None
    learned = [0.0, 0.0, 0.0, 0.0]
    used = [-1.0, -1.0, -1.0, -1.0]
    block = 0.0
    for i, lim_h, rem_h, reset_h, period in _FAMILIES:
        remaining = _number(found.get(rem_h))
        if i >= 0:
            limit = _number(found.get(lim_h))
            if limit is not None and limit >= 1:
                learned[i] = limit
                if remaining is not None:
                    used[i] = max(0.0, limit - remaining)
        if remaining is not None and remaining < 1:
            raw = found.get(reset_h)
            reset = parse_reset(raw, now) if raw is not None else None
            if reset is not None:
                block = max(block, min(reset, period))
    if rate_limited:
        ra = parse_retry_after(found, now)
        if ra is not None:
            block = max(block, ra)
    return min(block, max_block), tuple(learned), tuple(used)


_HEADER_NAMES = [name for family in _FAMILIES for name in family[1:4]] + [
    "retry-after",
    "retry-after-ms",
    "x-ratelimit-other",
    "content-type",
]
_VALUES = st.sampled_from(
    ["0", "1", "0.5", "7", "60", "1000", "-1", "nan", "inf", "6m0s", "20ms", "1h", "x", " 5 "]
)


def _spelled(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from([name, name.upper(), name.title()])


@settings(max_examples=300)
@given(
    st.lists(st.tuples(st.sampled_from(_HEADER_NAMES).flatmap(_spelled), _VALUES), max_size=10),
    st.booleans(),
    st.sampled_from([0.5, 30.0, 60.0, 86_400.0]),
)
def test_headers_are_read_as_reading_every_family_does(
    pairs: list[tuple[str, str]], rate_limited: bool, max_block: float
) -> None:
    headers = dict(pairs)
    now = 1_000_000.0
    expected = reference_headers(headers, rate_limited, lambda: now, max_block)
    info = read_limit_headers(
        headers, rate_limited=rate_limited, now=lambda: now, max_block=max_block
    )
    got = None if info is None else (info.block, info.learned, info.used)
    assert got == expected


@dataclass
class _RefScope:
    tat: list[float] = field(default_factory=lambda: [0.0] * 7)
    learned: list[float] = field(default_factory=lambda: [0.0] * 4)
    learned_until: float = 0.0
    blocked_until: float = 0.0
    holders: dict[str, float] = field(default_factory=dict)


def _full(v: tuple[float, ...]) -> tuple[float, ...]:
    return v if len(v) == 7 else (*v, *(0.0,) * (7 - len(v)))


def _worse(a: Refusal | None, b: Refusal) -> Refusal:
    if a is None or (a.retry_after or 0.0) < (b.retry_after or 0.0):
        return b
    return a


class ReferenceBuckets:
    """The in-process counters looking at every dimension of every scope on every call."""

    def __init__(self, clock: FakeClock, max_block: float) -> None:
        self.clock, self.max_block = clock, max_block
        self.scopes: dict[str, _RefScope] = {}

    def _scope(self, name: str) -> _RefScope:
        return self.scopes.setdefault(name, _RefScope())

    def acquire(self, charges: list[Charge], permit_id: str, lease: float) -> Refusal | None:
        now = self.clock()
        updates: list[tuple[_RefScope, int, float]] = []
        worst: Refusal | None = None
        for c in charges:
            s = self._scope(c.scope)
            if s.blocked_until > now:
                worst = _worse(worst, Refusal(c.scope, "blocked", s.blocked_until - now))
                continue
            learned = s.learned_until > now
            limits, costs = _full(c.limits), _full(c.costs)
            for i in range(7):
                configured = limits[i]
                lim = configured or (s.learned[i] if learned and i < 4 else 0.0)
                cost = costs[i]
                if lim <= 0 or cost <= 0:
                    continue
                if cost > lim:
                    if configured:
                        return Refusal(c.scope, DIMS[i], None, lim)
                    continue
                w = WINDOWS[i]
                nt = max(s.tat[i], now) + cost * w / lim
                over = nt - now - w
                if over > 1e-9:
                    if not configured:
                        over = min(over, s.learned_until - now)
                    worst = _worse(worst, Refusal(c.scope, DIMS[i], over))
                else:
                    updates.append((s, i, nt))
            if c.concurrent:
                for pid in [p for p, exp in s.holders.items() if exp <= now]:
                    del s.holders[pid]
                if len(s.holders) >= c.concurrent:
                    worst = _worse(worst, Refusal(c.scope, "concurrent", 0.0))
        if worst is not None:
            return worst
        for s, i, nt in updates:
            s.tat[i] = nt
        for c in charges:
            if c.concurrent:
                self._scope(c.scope).holders[permit_id] = now + lease
        return None

    def release(self, settles: list[Settle], permit_id: str) -> None:
        now = self.clock()
        for st_ in settles:
            s = self._scope(st_.scope)
            s.holders.pop(permit_id, None)
            limits, deltas = _full(st_.limits), _full(st_.deltas)
            if any(x > 0 for x in st_.learned):
                if s.learned_until <= now:
                    for i in range(4):
                        if not limits[i]:
                            s.tat[i] = 0.0
                s.learned_until = now + self.max_block
            learned = s.learned_until > now
            for i in range(7):
                header = i < 4
                if header and st_.learned[i] > 0:
                    s.learned[i] = st_.learned[i]
                lim = limits[i] or (s.learned[i] if learned and header else 0.0)
                if lim <= 0:
                    continue
                w = WINDOWS[i]
                d = deltas[i]
                tat = s.tat[i]
                if d > 0:
                    tat = max(tat, now) + d * w / lim
                elif d < 0 and tat > 0:
                    tat += d * w / lim
                if header and st_.used[i] >= 0:
                    tat = max(tat, now + st_.used[i] * w / lim)
                s.tat[i] = tat
            block = st_.block
            block = min(block, self.max_block) if block > 0 and math.isfinite(block) else 0.0
            if block > 0:
                s.blocked_until = max(s.blocked_until, now + block)


_SCOPES = st.sampled_from(["dep:a", "dep:b", "user:u", "provider:p"])
_LIMIT = st.sampled_from([0.0, 0.0, 0.0, 1.0, 3.0, 60.0, 1000.0])
_LIMITS = st.one_of(
    st.lists(_LIMIT, min_size=4, max_size=4), st.lists(_LIMIT, min_size=7, max_size=7)
)
_COSTS = st.lists(st.sampled_from([0.0, 1.0, 2.0, 40.0, 900.0]), min_size=7, max_size=7)
_CHARGE = st.builds(
    lambda s, lim, c, n: Charge(s, tuple(lim), tuple(c), n),
    _SCOPES,
    _LIMITS,
    _COSTS,
    st.sampled_from([0, 0, 1, 2]),
)
_VEC4 = st.lists(st.sampled_from([0.0, 0.0, 1.0, 10.0, 600.0, 5000.0]), min_size=4, max_size=4)
_SETTLE = st.builds(
    lambda s, lim, d, b, learned, used: Settle(
        s, tuple(lim), tuple(d), b, tuple(learned), tuple(used)
    ),
    _SCOPES,
    _LIMITS,
    st.lists(st.sampled_from([0.0, -40.0, -1.0, 5.0, 300.0]), min_size=7, max_size=7),
    st.sampled_from([0.0, 0.0, 0.5, 30.0, 500.0, math.nan, math.inf, -3.0]),
    st.one_of(st.just((0.0, 0.0, 0.0, 0.0)), _VEC4),
    st.one_of(
        st.just((-1.0, -1.0, -1.0, -1.0)),
        st.lists(st.sampled_from([-1.0, 0.0, 3.0, 700.0]), min_size=4, max_size=4),
    ),
)
_STEP = st.one_of(
    st.tuples(
        st.just("acquire"),
        st.lists(_CHARGE, min_size=1, max_size=3),
        st.sampled_from(["", "p1", "p2"]),
    ),
    st.tuples(
        st.just("release"),
        st.lists(_SETTLE, min_size=1, max_size=3),
        st.sampled_from(["", "p1", "p2"]),
    ),
    st.tuples(
        st.just("advance"), st.sampled_from([0.0, 0.5, 1.0, 20.0, 61.0, 3600.0]), st.just("")
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_STEP, max_size=25), st.sampled_from([1.0, 60.0, 600.0]))
async def test_memory_buckets_decide_as_looking_at_every_dimension_does(
    steps: list[tuple[str, Any, str]], max_block: float
) -> None:
    clock = FakeClock()  # a fresh clock: process-wide scopes of its own
    buckets = MemoryBuckets(clock, max_block)
    reference = ReferenceBuckets(clock, max_block)
    for kind, what, permit_id in steps:
        if kind == "advance":
            clock.advance(what)
        elif kind == "acquire":
            got = await buckets.acquire(what, permit_id, 5.0)
            assert got == reference.acquire(what, permit_id, 5.0)
        else:
            await buckets.release(what, permit_id)
            reference.release(what, permit_id)
        for name, ref in reference.scopes.items():
            s = (
                buckets._shared.scopes[name]
                if name.startswith("provider:")
                else buckets._scopes[name]
            )
            assert (s.tat, s.learned, s.learned_until, s.blocked_until, s.holders) == (
                ref.tat,
                ref.learned,
                ref.learned_until,
                ref.blocked_until,
                ref.holders,
            )
            assert s.ldims == tuple(i for i in range(4) if s.learned[i] > 0)
