"""What the budget layer remembers between calls changes nothing it decides.

A reservation's prices are kept in the registry's cache for the span they hold for, and the
gateway's per-key ledger entries for the day: these tests move one clock across price windows,
the ``RESERVE_AHEAD_S`` mark, dated price changes and UTC midnights (forwards and back) and
check each answer against the same computation done afresh; a key's budget changed through
``keys update`` applies on the next call; and concurrent calls on real Redis still stop at the
limit."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay.catalog.costs import RESERVE_AHEAD_S, Cost, highest_rates
from llmrelay.catalog.layer import Catalog
from llmrelay.catalog.model_registry import LLMRegistry, default_registry
from llmrelay.core.layers import CallContext
from llmrelay.core.options import CallOptions
from llmrelay.errors import BudgetExceededError
from llmrelay.gateway.keys import VirtualKey
from llmrelay.gateway.policy import KeyBudgets, TeamBudget
from llmrelay.providers.table import Deployment, make_deployment
from llmrelay.reliability.budgets import (
    BudgetLimit,
    Budgets,
    Ledger,
    MemoryLedger,
    Reservation,
    _holding,
    bound_request_cost,
    prompt_token_bound,
)
from llmrelay.reliability.budgets_ledger import RedisLedger
from llmrelay.state import RedisStore
from llmrelay.types import ChatRequest, GenerationParams, Message, Usage

from .. import redis_services

redis_url = redis_services.redis_url
redis_prefix = redis_services.redis_prefix
redis_store = redis_services.redis_store

#: Thursday 2026-12-03 00:00 UTC.
THU = datetime(2026, 12, 3, tzinfo=UTC).timestamp()
HOUR = 3600.0
DAY = 86400.0

ROWS: list[dict[str, Any]] = [
    {  # a dated rise at Friday's midnight; cache-write and reasoning dearer than the base
        "provider": "vllm",
        "model": "rise",
        "max_output_tokens": 1000,
        "context_window": 8000,
        "prices": {"input": 1.0, "output": 2.0, "cache_write": 1.5, "reasoning": 2.5},
        "price_schedule": [{"from": "2026-12-04", "input": 5.0, "output": 10.0}],
    },
    {  # dearer windows (a reservation holds the highest of them all), no answer maximum
        "provider": "vllm",
        "model": "win",
        "context_window": 4000,
        "prices": {"input": 1.0, "output": 2.0},
        "price_windows": [
            {"days": ["fri"], "start": "20:00", "end": "22:00", "multiplier": 3},
            {"days": ["sat"], "start": "01:00", "end": "02:00", "input": 7.0},
            {"days": ["mon", "tue", "wed", "thu"], "start": "09:00", "end": "10:00", "output": 9},
        ],
    },
    {  # a promotion that ends at Saturday's midnight, over windows
        "provider": "vllm",
        "model": "promo",
        "max_output_tokens": 500,
        "prices": {"input": 2.0, "output": 4.0},
        "price_schedule": [{"from": "2026-12-02", "until": "2026-12-06", "output": 1.0}],
        "price_windows": [{"days": ["sun"], "start": "23:00", "end": "24:00", "multiplier": 2}],
    },
    {  # priced only in a window: a budget can check it only then
        "provider": "vllm",
        "model": "late",
        "max_output_tokens": 500,
        "prices": {},
        "price_windows": [
            {"days": ["thu", "fri"], "start": "22:00", "end": "23:00", "input": 1.0, "output": 2.0}
        ],
    },
    {  # no price at all: a budget cannot check it
        "provider": "vllm",
        "model": "free",
        "max_output_tokens": 500,
        "prices": {},
    },
]
MODELS = [r["model"] for r in ROWS] + ["unknown"]


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def registry(clock: Clock) -> LLMRegistry:
    return LLMRegistry(ROWS, bundled=False, catalog_files=(), now=clock)


def dep(model: str) -> Deployment:
    return make_deployment("vllm", model, api_key="k", base_url="http://127.0.0.1:9")


def request(max_tokens: int | None = None) -> ChatRequest:
    return ChatRequest([Message("user", "x" * 40)], GenerationParams(max_tokens=max_tokens))


def uncached_bound(req: ChatRequest, model: str, t: float) -> float | None:
    """What ``bound_request_cost`` computed before it remembered anything: ``highest_rates``
    on a registry that has seen no other time, at the higher of each pair of prices."""
    reg = registry(Clock(t))
    rates = highest_rates(reg, "vllm", model)
    if rates is None or rates.reason is not None:
        return None
    assert rates.input is not None
    assert rates.output is not None
    profile = reg.lookup("vllm", model)
    assert profile is not None
    caps = profile.capabilities
    out = req.params.max_tokens or caps.max_output_tokens or caps.max_context_window
    if out is None:
        return None
    per_in = max(rates.input, rates.cache_write or 0.0)
    per_out = max(rates.output, rates.reasoning or 0.0)
    return prompt_token_bound(req) * per_in + out * per_out


#: Instants where what a reservation holds may change: window edges, the RESERVE_AHEAD_S mark,
#: midnights (Thursday to Monday), each a hair before, on and after.
_EDGES = [
    THU + d * DAY + h * HOUR
    for d in range(-1, 5)
    for h in (0, 1, 2, 9, 10, 20, 22, 23, 24 - RESERVE_AHEAD_S / HOUR)
]
_TIMES = st.one_of(
    st.floats(min_value=THU - DAY, max_value=THU + 5 * DAY),
    st.builds(lambda e, d: e + d, st.sampled_from(_EDGES), st.sampled_from([-1e-3, 0.0, 1e-3])),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(_TIMES, st.sampled_from(MODELS)), min_size=1, max_size=40),
    st.sampled_from([None, 1, 300]),
)
def test_a_remembered_bound_is_the_bound_computed_afresh(
    calls: list[tuple[float, str]], max_tokens: int | None
) -> None:
    """One registry, its clock moved to each instant in turn (forwards and back): every bound
    is the one a registry that never saw another instant gives."""
    clock = Clock(THU)
    reg = registry(clock)
    req = request(max_tokens)
    for t, model in calls:
        clock.t = t
        got = bound_request_cost(req, dep(model), registry=reg)
        assert got == uncached_bound(req, model, t), (t, model)


def test_across_the_reserve_ahead_mark_and_midnight_on_one_registry() -> None:
    """A dated rise at Friday's midnight: reserved at the old price until RESERVE_AHEAD_S
    before it, at the new one from then on, and Saturday at the new one only."""
    friday = THU + DAY
    clock = Clock(friday - RESERVE_AHEAD_S - 1)
    reg = registry(clock)
    req = request(100)
    prompt = prompt_token_bound(req)
    old = prompt * 1.5e-6 + 100 * 2.5e-6  # the cache-write and reasoning prices are higher
    new = prompt * 5e-6 + 100 * 10e-6
    assert bound_request_cost(req, dep("rise"), registry=reg) == pytest.approx(old)
    clock.t = friday - RESERVE_AHEAD_S
    assert bound_request_cost(req, dep("rise"), registry=reg) == pytest.approx(new)
    clock.t = friday - RESERVE_AHEAD_S - 1  # a clock set back
    assert bound_request_cost(req, dep("rise"), registry=reg) == pytest.approx(old)
    clock.t = friday + 12 * HOUR
    assert bound_request_cost(req, dep("rise"), registry=reg) == pytest.approx(new)


def test_a_promotion_ending_at_midnight_under_windows_on_one_registry() -> None:
    """Windows double the price on Sundays' last hour (a reservation holds the highest any
    window sets); the promotion on output ends at Sunday's midnight: Saturday reserves the
    promotional output until the RESERVE_AHEAD_S mark, the list price after it and on
    Sunday, and again the promotional one when the clock is set back."""
    sat, sun = THU + 2 * DAY, THU + 3 * DAY
    clock = Clock(sat + 12 * HOUR)
    reg = registry(clock)
    req = request(100)
    prompt = prompt_token_bound(req)
    promo = prompt * 4e-6 + 100 * 2e-6
    listed = prompt * 4e-6 + 100 * 8e-6
    assert bound_request_cost(req, dep("promo"), registry=reg) == pytest.approx(promo)
    clock.t = sun - RESERVE_AHEAD_S
    assert bound_request_cost(req, dep("promo"), registry=reg) == pytest.approx(listed)
    clock.t = sun + 23.5 * HOUR  # in the window
    assert bound_request_cost(req, dep("promo"), registry=reg) == pytest.approx(listed)
    clock.t = sat + 1
    assert bound_request_cost(req, dep("promo"), registry=reg) == pytest.approx(promo)


def test_a_price_known_only_in_a_window_is_reserved_only_then() -> None:
    clock = Clock(THU + 21 * HOUR)
    reg = registry(clock)
    req = request(100)
    assert bound_request_cost(req, dep("late"), registry=reg) is None
    clock.t = THU + 22 * HOUR
    assert bound_request_cost(req, dep("late"), registry=reg) == pytest.approx(
        (prompt_token_bound(req) + 200) * 1e-6
    )
    clock.t = THU + 23 * HOUR
    assert bound_request_cost(req, dep("late"), registry=reg) is None


def test_a_price_changed_in_the_registry_is_reserved_on_the_next_call() -> None:
    reg = registry(Clock(THU + 12 * HOUR))
    req = request(100)
    before = bound_request_cost(req, dep("free"), registry=reg)
    assert before is None
    assert bound_request_cost(req, dep("unknown"), registry=reg) is None
    reg.register({"provider": "vllm", "model": "free", "prices": {"input": 1.0, "output": 2.0}})
    reg.register({"provider": "vllm", "model": "unknown", "prices": {"input": 3.0, "output": 4.0}})
    prompt = prompt_token_bound(req)
    assert bound_request_cost(req, dep("free"), registry=reg) == pytest.approx(
        prompt * 1e-6 + 100 * 2e-6
    )
    assert bound_request_cost(req, dep("unknown"), registry=reg) == pytest.approx(
        prompt * 3e-6 + 100 * 4e-6
    )
    reg.register({"provider": "vllm", "model": "unknown", "prices": {"output": 40.0}})
    assert bound_request_cost(req, dep("unknown"), registry=reg) == pytest.approx(
        prompt * 3e-6 + 100 * 40e-6
    )
    reg.unregister("vllm/unknown")
    assert bound_request_cost(req, dep("unknown"), registry=reg) is None


def test_an_empty_registry_leaves_the_price_to_the_default_one() -> None:
    """``registry or the default``, as before: an empty registry prices nothing itself, and
    once it holds a model it prices that model."""
    empty = LLMRegistry(bundled=False, catalog_files=())
    openai = make_deployment("openai", "gpt-4.1-mini", api_key="k")
    req = request(100)
    expected = bound_request_cost(req, openai, registry=default_registry())
    assert expected is not None
    assert bound_request_cost(req, openai, registry=empty) == expected
    assert bound_request_cost(req, openai, registry=None) == expected
    empty.register(
        {"provider": "openai", "model": "gpt-4.1-mini", "prices": {"input": 100, "output": 100}}
    )
    assert bound_request_cost(req, openai, registry=empty) == pytest.approx(
        (prompt_token_bound(req) + 100) * 100e-6
    )


async def test_unknown_cost_is_still_refused_or_allowed_after_a_price_was_known() -> None:
    clock = Clock(THU + 12 * HOUR)
    reg = registry(clock)
    for unknown_cost in ("deny", "allow"):
        budgets = Budgets(
            [BudgetLimit(10.0, period="total")],
            ledger=MemoryLedger(),
            unknown_cost=unknown_cost,  # type: ignore[arg-type]
        )
        ok = await budgets.reserve(request(10), dep("rise"), _ctx({}, reg))
        assert ok is not None
        ctx = _ctx({}, reg)
        if unknown_cost == "deny":
            with pytest.raises(BudgetExceededError, match="price of vllm/free is unknown"):
                await budgets.reserve(request(10), dep("free"), ctx)
        else:
            assert await budgets.reserve(request(10), dep("free"), ctx) is None


# --------------------------------------------------------------------------- the ledger path


def test_the_made_reservation_is_the_dataclass_reservation() -> None:
    keys = ["a|1|day|2026-12-03", "b|2|total|total"]
    limits = [BudgetLimit(1.0, "day", "tag:a"), BudgetLimit(2.0, "total", "tag:b")]
    fast = _holding(keys, 0.25, limits)
    full = Reservation(keys, 0.25, limits, held=dict.fromkeys(keys, 0.25), current=keys)
    assert fast == full
    for f in dataclasses.fields(Reservation):  # a new field must be set by _holding too
        assert getattr(fast, f.name) == getattr(full, f.name), f.name
    assert fast.current is fast.keys  # as the reservation made in place shared them


class _Recording:
    """A ledger that is not a MemoryLedger (so it is awaited) and records its calls."""

    def __init__(self) -> None:
        self.inner = MemoryLedger()
        self.calls: list[str] = []

    async def reserve(self, entries: Any, amount: float) -> int | None:
        self.calls.append("reserve")
        return await self.inner.reserve(entries, amount)

    async def settle(self, keys: Any, reserved: float, actual: float) -> None:
        self.calls.append("settle")
        await self.inner.settle(keys, reserved, actual)

    async def spent(self, key: str) -> tuple[float, float]:
        return await self.inner.spent(key)


async def test_a_ledger_assigned_later_is_the_one_used() -> None:
    budgets = Budgets(
        [BudgetLimit(1.0, period="total")], ledger=MemoryLedger(), estimator=lambda r, d: 0.1
    )
    recording = _Recording()
    budgets.ledger = recording
    ledger: Ledger = budgets.ledger
    assert ledger is recording
    ctx = _ctx({}, None)
    res = await budgets.reserve(request(), dep("rise"), ctx)
    _answered(ctx, 0.05)
    await budgets.settle(res, ctx)
    assert recording.calls == ["reserve", "settle"]
    assert await recording.spent("global|*|total|total") == (pytest.approx(0.05), 0.0)
    budgets.ledger = MemoryLedger()
    res = await budgets.reserve(request(), dep("rise"), ctx := _ctx({}, None))
    await budgets.settle(res, ctx)
    assert recording.calls == ["reserve", "settle"]


def test_memory_ledger_functions_are_its_operations() -> None:
    ledger = MemoryLedger()
    entries = [("a", 1.0), ("b", 0.5)]
    assert ledger.reserve_now(entries, 0.4) is None
    assert ledger.reserve_now(entries, 0.2) == 1  # b would pass its limit: nothing reserved
    assert asyncio.run(ledger.spent("a")) == (0.0, pytest.approx(0.4))
    ledger.settle_now(["a", "b"], 0.4, 0.1)
    assert asyncio.run(ledger.spent("b")) == (pytest.approx(0.1), 0.0)
    ledger.settle_now(["a"], 5.0, math.nan)  # releasing more than held leaves 0, not less
    assert asyncio.run(ledger.spent("a"))[1] == 0.0


# --------------------------------------------------------------------------- gateway keys


def _ctx(tags: dict[str, str], reg: LLMRegistry | None) -> CallContext:
    return CallContext(CallOptions(tags=tags), "t", 0.0, catalog=Catalog(reg) if reg else None)


def _answered(ctx: CallContext, usd: float) -> None:
    ctx.usage = Usage(10, 5)
    ctx.cost = Cost(usd, True)


def _key(budget: float | None, period: Any = "day", team: str | None = None) -> VirtualKey:
    return VirtualKey(
        id="k1", name="n", key_hash="h", budget_usd=budget, budget_period=period, team=team
    )


_TAGS = st.fixed_dictionaries(
    {},
    optional={
        "vkey": st.sampled_from(["k1", "k2", ""]),
        "team": st.sampled_from(["red", "blue", "odd", "none"]),
        "user": st.just("u"),
    },
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(_TAGS, _TIMES), min_size=1, max_size=20),
    st.booleans(),
    st.sampled_from(["day", "month", "total"]),
)
def test_a_keys_remembered_entries_are_the_generic_entries(
    calls: list[tuple[dict[str, str], float]], static: bool, period: Any
) -> None:
    """Whatever the tags and the day (forwards and back), the entries a key remembers are
    what ``applicable`` + ``value_for`` + ``ledger_key`` give."""
    budgets = KeyBudgets(
        static=[BudgetLimit(3.0, "day", "user")] if static else (),
        teams={
            "red": TeamBudget("red", 5.0, "month"),
            "odd": TeamBudget("other", 5.0),  # names another team: applies to none
        },
        ledger=MemoryLedger(),
    )
    budgets.limit_for(_key(1.0, period))
    budgets.limit_for(dataclasses.replace(_key(2.0, "total"), id="k2"))
    d = dep("rise")
    for tags, now in calls:
        ctx = _ctx(tags, None)
        entries, applied, keys = budgets.call_entries(d, ctx, now)
        want, want_applied, want_keys = Budgets.call_entries(budgets, d, ctx, now)
        assert list(entries) == list(want)
        assert list(applied) == list(want_applied)
        assert list(keys) == list(want_keys)


@pytest.mark.parametrize(
    ("period", "last_second"),
    [
        ("day", datetime(2026, 12, 3, 23, 59, 59, tzinfo=UTC).timestamp()),
        ("month", datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC).timestamp()),
    ],
)
async def test_a_key_budget_starts_afresh_at_the_period_boundary(
    period: Any, last_second: float
) -> None:
    clock = Clock(last_second)
    ledger = MemoryLedger()
    budgets = KeyBudgets(ledger=ledger, clock=clock, estimator=lambda r, d: 0.6)
    limit = budgets.limit_for(_key(1.0, period))
    assert limit is not None
    ctx = _ctx({"vkey": "k1"}, None)
    res = await budgets.reserve(request(), dep("rise"), ctx)
    _answered(ctx, 0.6)
    await budgets.settle(res, ctx)
    with pytest.raises(BudgetExceededError):
        await budgets.reserve(request(), dep("rise"), _ctx({"vkey": "k1"}, None))
    before = limit.ledger_key("k1", last_second)
    clock.t = last_second + 2  # the next period
    after = limit.ledger_key("k1", clock.t)
    assert after != before
    ctx = _ctx({"vkey": "k1"}, None)
    assert await budgets.reserve(request(), dep("rise"), ctx) is not None
    assert await ledger.spent(before) == (pytest.approx(0.6), 0.0)
    assert await ledger.spent(after) == (0.0, pytest.approx(0.6))
    clock.t = last_second  # a clock set back charges the earlier period again
    with pytest.raises(BudgetExceededError):
        await budgets.reserve(request(), dep("rise"), _ctx({"vkey": "k1"}, None))


async def test_a_key_budget_changed_by_keys_update_applies_on_the_next_call() -> None:
    """``keys update`` gives the gateway a new record: its budget (raised, lowered, moved to
    another period, removed) is the one the next call is checked against."""
    ledger = MemoryLedger()
    budgets = KeyBudgets(ledger=ledger, estimator=lambda r, d: 0.4)

    async def call(record: VirtualKey) -> bool:
        budgets.limit_for(record)  # what the gateway does with each request's record
        ctx = _ctx({"vkey": "k1"}, None)
        try:
            res = await budgets.reserve(request(), dep("rise"), ctx)
        except BudgetExceededError:
            return False
        _answered(ctx, 0.4)
        await budgets.settle(res, ctx)
        return True

    v1 = _key(1.0, "total")
    assert [await call(v1) for _ in range(3)] == [True, True, False]
    v2 = dataclasses.replace(v1, budget_usd=1.9)
    assert [await call(v2) for _ in range(3)] == [True, True, False]
    v3 = dataclasses.replace(v1, budget_usd=0.5)
    assert not await call(v3)
    v4 = dataclasses.replace(v1, budget_usd=0.5, budget_period="day")  # another account
    assert [await call(v4) for _ in range(2)] == [True, False]
    v5 = dataclasses.replace(v1, budget_usd=None)
    assert [await call(v5) for _ in range(3)] == [True, True, True]
    assert await call(v2) is False  # the total account still holds what was spent


async def test_a_call_of_another_team_is_charged_to_that_team() -> None:
    ledger = MemoryLedger()
    budgets = KeyBudgets(
        ledger=ledger,
        teams={"red": TeamBudget("red", 5.0), "blue": TeamBudget("blue", 5.0)},
        estimator=lambda r, d: 0.1,
        clock=Clock(THU),
    )
    budgets.limit_for(_key(1.0, "total"))
    for team in ("red", "blue", "red", None):
        tags = {"vkey": "k1"} if team is None else {"vkey": "k1", "team": team}
        ctx = _ctx(tags, None)
        res = await budgets.reserve(request(), dep("rise"), ctx)
        assert isinstance(res, Reservation)
        want = ["tag:vkey|k1|total|total"]
        if team is not None:
            want.append(f"tag:team|{team}|month|2026-12")
        assert res.keys == want
        res.keys.append("written by a caller")  # the reservation's own list
        _answered(ctx, 0.1)
        await budgets.settle(res, ctx)
    assert (await ledger.spent("tag:vkey|k1|total|total"))[0] == pytest.approx(0.4)


async def test_concurrent_calls_on_one_key_never_pass_its_budget_in_redis(
    redis_store: RedisStore,
) -> None:
    """500 calls at once on one key (the estimate from the catalog, its prices remembered):
    exactly as many are admitted as the budget holds, and what they spend is recorded."""
    clock = Clock(THU + 12 * HOUR)
    reg = registry(clock)
    req = request(100)
    estimate = bound_request_cost(req, dep("rise"), registry=reg)
    assert estimate is not None
    ledger = RedisLedger(redis_store)
    budgets = KeyBudgets(ledger=ledger)
    budgets.limit_for(_key(estimate * 50.5, "total"))

    tried = 0
    all_tried = asyncio.Event()

    async def call() -> bool:
        nonlocal tried
        ctx = _ctx({"vkey": "k1"}, reg)
        try:
            res = await budgets.reserve(req, dep("rise"), ctx)
        except BudgetExceededError:
            return False
        finally:
            tried += 1
            if tried == 500:
                all_tried.set()
        await all_tried.wait()  # nothing settles (and frees what it held) before all tried
        _answered(ctx, estimate / 2)
        await budgets.settle(res, ctx)
        return True

    admitted = await asyncio.gather(*(call() for _ in range(500)))
    assert sum(admitted) == 50
    spent, reserved = await ledger.spent("tag:vkey|k1|total|total")
    assert spent == pytest.approx(25 * estimate)
    assert reserved == pytest.approx(0.0, abs=1e-12)


def test_made_up_model_names_do_not_grow_the_registry_cache_without_bound() -> None:
    """Any key holder may name models the catalog does not know (the gateway answers 429:
    unknown price); each name was remembered in the registry's cache forever (the bound's,
    the rates' and the catalog layer's entries), so a loop of made-up names grew a gateway
    worker without bound. The cache holds only derived data: it starts afresh when full, and
    what it answers afterwards is what it answered before."""
    from llmrelay.catalog.derived_cache import MAX_ENTRIES
    from llmrelay.reliability.budgets_bound import bound_rates

    most = MAX_ENTRIES

    clock = Clock(THU + 12 * HOUR)
    reg = registry(clock)
    req = request(100)
    known = bound_request_cost(req, dep("rise"), registry=reg)
    assert known is not None
    for i in range(most + 1000):
        assert bound_rates(reg, "vllm", f"made-up-{i}") is None
        assert len(reg.cache) <= most
    assert bound_request_cost(req, dep("rise"), registry=reg) == known
    assert bound_request_cost(req, dep("made-up-1"), registry=reg) is None


def test_a_price_registered_while_a_bound_is_computed_is_not_hidden_by_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another thread registers a dearer price while a call computes its bound (here: right
    after the rates were resolved). The edit clears the cache; the computation, finishing
    after it, stored what it had read of the old price (the rates, the day's top rates, the
    bound) into the fresh cache, valid for the rest of the span -- hours of reservations at
    the old price. A value computed across a change is now used once, not remembered."""
    from llmrelay.catalog import costs

    clock = Clock(THU + 12 * HOUR)
    reg = registry(clock)
    req = request(100)
    real = costs.resolve_rates
    edited = []

    def resolve_then_edit(*a: Any, **kw: Any) -> Any:
        out = real(*a, **kw)
        if not edited:
            edited.append(True)
            reg.register({"provider": "vllm", "model": "rise", "prices": {"output": 200.0}})
        return out

    monkeypatch.setattr(costs, "resolve_rates", resolve_then_edit)
    bound_request_cost(req, dep("rise"), registry=reg)  # computed across the edit
    monkeypatch.setattr(costs, "resolve_rates", real)
    assert edited
    other = registry(Clock(clock.t))  # the same edit on a registry that saw nothing else
    other.register({"provider": "vllm", "model": "rise", "prices": {"output": 200.0}})
    fresh = bound_request_cost(req, dep("rise"), registry=other)
    assert fresh is not None
    assert fresh > uncached_bound(req, "rise", clock.t)  # type: ignore[operator]
    assert bound_request_cost(req, dep("rise"), registry=reg) == fresh


_CHILD = """
import asyncio, sys, time
from pathlib import Path
from tests.reliability.test_budgets_cache import (
    THU, HOUR, Clock, _answered, _ctx, _key, dep, registry, request)
from llmrelay.errors import BudgetExceededError
from llmrelay.gateway.policy import KeyBudgets
from llmrelay.reliability.budgets import bound_request_cost
from llmrelay.reliability.budgets_ledger import RedisLedger
from llmrelay.state import RedisStore

url, prefix, mine, theirs = sys.argv[1:5]

async def main() -> None:
    reg = registry(Clock(THU + 12 * HOUR))
    req = request(100)
    estimate = bound_request_cost(req, dep("rise"), registry=reg)
    store = RedisStore(url, prefix=prefix, retry_interval=0)
    budgets = KeyBudgets(ledger=RedisLedger(store))
    budgets.limit_for(_key(estimate * 50.5, "total"))
    tried = 0
    all_tried = asyncio.Event()

    async def call() -> bool:
        nonlocal tried
        ctx = _ctx({"vkey": "k1"}, reg)
        try:
            res = await budgets.reserve(req, dep("rise"), ctx)
        except BudgetExceededError:
            return False
        finally:
            tried += 1
            if tried == 250:
                all_tried.set()
        await all_tried.wait()
        while not Path(theirs).exists():  # nothing settles before the other process tried
            await asyncio.sleep(0.01)
        _answered(ctx, estimate / 2)
        await budgets.settle(res, ctx)
        return True

    async def mark() -> None:
        await all_tried.wait()
        Path(mine).touch()

    out = await asyncio.gather(mark(), *(call() for _ in range(250)))
    await store.aclose()
    print(sum(out[1:]))

asyncio.run(main())
"""


async def test_two_processes_on_one_key_never_pass_its_budget_in_redis(
    redis_url: str, redis_prefix: str, tmp_path: Any
) -> None:
    """250 calls at once in each of two processes on one key, on real Redis, the prices
    remembered in each: exactly as many are admitted as the budget holds (nothing settles
    before both processes tried), and what they spend is recorded."""
    import os
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, *sys.path])}
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _CHILD,
            redis_url,
            redis_prefix,
            mine,
            theirs,
            env=env,
            cwd=root,
            stdout=asyncio.subprocess.PIPE,
        )
        for mine, theirs in ((a, b), (b, a))
    ]
    outs = [await asyncio.wait_for(p.communicate(), 120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    admitted = [int(o[0].decode().split()[-1]) for o in outs]
    assert sum(admitted) == 50, admitted
    estimate = bound_request_cost(request(100), dep("rise"), registry=registry(Clock(THU)))
    assert estimate is not None
    store = RedisStore(redis_url, prefix=redis_prefix, retry_interval=0)
    try:
        spent, reserved = await RedisLedger(store).spent("tag:vkey|k1|total|total")
    finally:
        await store.aclose()
    assert spent == pytest.approx(25 * estimate)
    assert reserved == pytest.approx(0.0, abs=1e-12)


async def test_a_call_in_flight_keeps_its_key_budget_when_the_key_table_starts_afresh() -> None:
    """The gateway looks a key's limit up when the request comes in (``limit_for``) and the
    budget layer finds it by the key id when the call reserves. Past 100,000 keys the table
    was cleared: a call of a key looked up before the clearing and reserving after it found
    no limit and was admitted past its key's budget. An emptied table is kept one more round."""
    clock = Clock(THU + 12 * HOUR)
    reg = registry(clock)
    budgets = KeyBudgets(ledger=MemoryLedger(), clock=clock)
    assert budgets.limit_for(_key(1e-9, "total")) is not None  # less than any call costs
    for i in range(100_002):  # other keys' requests come in meanwhile
        budgets.limit_for(dataclasses.replace(_key(1.0), id=f"other-{i}"))
    with pytest.raises(BudgetExceededError):
        await budgets.reserve(request(100), dep("rise"), _ctx({"vkey": "k1"}, reg))
