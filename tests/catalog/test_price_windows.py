"""Time-of-day price windows: DeepSeek's peak hours, the rates cache at window edges, budget
reservations across an edge, the rows' validation and round trips, and promotions with no end.

Every time here is an epoch time on an injected clock; the reference for "the rate in force"
is computed independently from ``datetime`` (weekday and seconds after midnight, UTC)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import redirect_stdout
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llmrelay
from llmrelay.catalog import layer as layer_mod
from llmrelay.catalog import model_registry as registry_mod
from llmrelay.catalog.check import check_catalog
from llmrelay.catalog.costs import RESERVE_AHEAD_S, highest_rates, rates_for
from llmrelay.catalog.layer import Catalog
from llmrelay.catalog.model_registry import LLMRegistry, set_default_registry
from llmrelay.catalog.persistence import profile_from_row, profile_to_row
from llmrelay.catalog.profiles import WEEKDAYS
from llmrelay.cli.main import main as cli_main
from llmrelay.core.engine import Engine
from llmrelay.errors import ConfigFileError, ConfigurationError
from llmrelay.providers.table import make_deployment
from llmrelay.reliability.budgets import bound_request_cost, prompt_token_bound
from llmrelay.testing.fake import FakeUpstream, Reply
from llmrelay.types import ChatRequest, GenerationParams, Message

from ..config_isolation import isolated_config

Point = Callable[[FakeUpstream], FakeUpstream]

M = 1_000_000
USAGE = {"input_tokens": M, "output_tokens": M}
#: Thursday 2026-12-03 00:00 UTC.
THU = datetime(2026, 12, 3, tzinfo=UTC).timestamp()
HOUR = 3600.0


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(registry_mod, "_warned", set())
    monkeypatch.setattr(layer_mod, "_alias_warned", set())
    with isolated_config():
        yield


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def registry_at(clock: Clock, **kw: Any) -> LLMRegistry:
    kw.setdefault("catalog_files", ())
    return LLMRegistry(now=clock, **kw)


def deepseek_peak(t: float) -> bool:
    """DeepSeek's peak hours from its pricing page, computed without llmrelay."""
    d = datetime.fromtimestamp(t, UTC)
    hour = d.hour + d.minute / 60 + (d.second + d.microsecond / 1e6) / 3600
    return d.weekday() < 5 and (1 <= hour < 4 or 6 <= hour < 10)


# --------------------------------------------------------------------------- DeepSeek's rows


@pytest.mark.parametrize(
    ("model", "off_in", "off_out", "off_cached"),
    [("deepseek-flash", 0.15, 0.6, 0.003), ("deepseek-v4-pro", 0.66, 1.98, 0.022)],
)
def test_deepseek_rows_bill_peak_hours_at_twice_the_off_peak_rate(
    model: str, off_in: float, off_out: float, off_cached: float
) -> None:
    r = registry_at(Clock(THU))
    usage = {"input_tokens": 2 * M, "cached_tokens": M, "output_tokens": M}
    off = off_in + off_cached + off_out
    for when, factor in [
        (THU + 0.5 * HOUR, 1),  # Thursday 00:30
        (THU + 1 * HOUR, 2),  # 01:00: the window's start is inclusive
        (THU + 4 * HOUR - 0.001, 2),
        (THU + 4 * HOUR, 1),  # 04:00: its end is exclusive
        (THU + 6 * HOUR, 2),
        (THU + 10 * HOUR - 1e-3, 2),
        (THU + 10 * HOUR, 1),
        (THU + 2 * 86400 + 2 * HOUR, 1),  # Saturday 02:00: off-peak all weekend
        (THU + 4 * 86400 + 2 * HOUR, 2),  # Monday 02:00
    ]:
        cost = llmrelay.calculate_cost(f"deepseek/{model}", usage, registry=r, at=when)
        assert cost.usd == pytest.approx(factor * off), (model, when)
    row = r.get(f"deepseek/{model}")
    assert all(w.multiplier == 2.0 and w.source for w in row.price_windows)
    assert "modelled in price_windows" in (row.pricing.note or "")
    assert "not modelled" not in (row.pricing.note or "").split("holiday")[0]


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=THU - 400 * 86400, max_value=THU + 400 * 86400))
def test_the_cost_at_any_instant_is_the_rate_of_its_window(t: float) -> None:
    r = registry_at(Clock(t))
    cost = llmrelay.calculate_cost("deepseek/deepseek-flash", USAGE, registry=r, at=t)
    assert cost.usd == pytest.approx((0.15 + 0.6) * (2 if deepseek_peak(t) else 1))
    # the profile alone (no registry) prices the same
    row = r.get("deepseek/deepseek-flash")
    assert llmrelay.calculate_cost(row, USAGE, at=t).usd == cost.usd


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.floats(min_value=0, max_value=14 * 86400, allow_nan=False), min_size=1, max_size=30)
)
def test_a_cached_rate_is_never_used_past_its_window(offsets: list[float]) -> None:
    """One registry (one rates cache) asked at times in any order, across window edges."""
    clock = Clock(THU)
    r = registry_at(clock)
    for off in offsets:
        clock.t = THU - 3 * 86400 + off
        rates = rates_for(r, "deepseek", "deepseek-flash")
        assert rates is not None
        assert rates.input == pytest.approx((0.15 if not deepseek_peak(clock.t) else 0.3) / M)


def test_the_cache_holds_to_the_window_edge_and_no_further() -> None:
    clock = Clock(THU + 1 * HOUR - 1e-3)  # Thursday 00:59:59.999
    r = registry_at(clock)
    off = rates_for(r, "deepseek", "deepseek-flash")
    entry = r.cache[("rates", "deepseek", "deepseek-flash")]
    assert entry[2] == THU + 1 * HOUR  # held until the window opens
    clock.t = THU + 1 * HOUR
    peak = rates_for(r, "deepseek", "deepseek-flash")
    assert off is not None
    assert peak is not None
    assert peak.output == pytest.approx(2 * (off.output or 0))
    assert r.cache[("rates", "deepseek", "deepseek-flash")][1:] == (THU + HOUR, THU + 4 * HOUR)


WRAP = {
    "provider": "vllm",
    "model": "night",
    "prices": {"input": 1.0, "output": 2.0},
    "price_windows": [
        {"days": ["sun"], "start": "22:00", "end": "24:00", "multiplier": 3},
        {"days": ["mon"], "start": "00:00", "end": "02:00", "input": 5.0},
    ],
}


def test_windows_across_the_week_boundary() -> None:
    sun = THU + 3 * 86400  # Sunday 2026-12-06 00:00
    mon = THU + 4 * 86400
    r = registry_at(Clock(sun), bundled=False, profiles=[WRAP])

    def usd(t: float) -> float | None:
        return llmrelay.calculate_cost("vllm/night", USAGE, registry=r, at=t).usd

    assert usd(sun + 22 * HOUR - 1e-3) == pytest.approx(3.0)
    assert usd(sun + 22 * HOUR) == pytest.approx(9.0)
    assert usd(mon - 1e-3) == pytest.approx(9.0)
    assert usd(mon) == pytest.approx(7.0)  # its own input price, the day's output price
    assert usd(mon + 2 * HOUR - 1e-3) == pytest.approx(7.0)
    assert usd(mon + 2 * HOUR) == pytest.approx(3.0)
    # UTC: the same instants in any local timezone (a DST change moves nothing)
    local = datetime.fromtimestamp(sun + 23 * HOUR, UTC).astimezone()
    assert llmrelay.calculate_cost("vllm/night", USAGE, registry=r, at=local).usd == 9.0


def test_windows_over_a_dated_price() -> None:
    """A multiplier applies to the price of the day, whichever schedule period that is."""
    row = {
        **WRAP,
        "price_windows": WRAP["price_windows"][:1],
        "price_schedule": [{"from": "2026-12-10", "input": 2.0, "output": 4.0}],
    }
    r = registry_at(Clock(THU), bundled=False, profiles=[row])
    sun_late = THU + 3 * 86400 + 23 * HOUR
    week = 7 * 86400
    assert llmrelay.calculate_cost("vllm/night", USAGE, registry=r, at=sun_late).usd == 9.0
    assert llmrelay.calculate_cost("vllm/night", USAGE, registry=r, at=sun_late + week).usd == 18.0


# --------------------------------------------------------------------------- budgets


def test_the_budget_reserves_the_peak_rate_at_any_hour() -> None:
    dep = make_deployment("deepseek", "deepseek-flash", api_key="k")
    req = ChatRequest([Message("user", "hello")], GenerationParams(max_tokens=1000))
    bound_peak = prompt_token_bound(req) * 0.3 / M + 1000 * 1.2 / M
    for t in (THU + 0.999 * HOUR, THU + HOUR, THU + 12 * HOUR, THU + 2 * 86400):
        r = registry_at(Clock(t))
        assert bound_request_cost(req, dep, registry=r) == pytest.approx(bound_peak)
        top = highest_rates(r, "deepseek", "deepseek-flash")
        assert top is not None
        assert top.label == "deepseek/deepseek-flash"
    # a row without windows reserves its rate in force
    plain = make_deployment("deepseek", "deepseek-chat", api_key="k")
    r = registry_at(Clock(THU))
    assert highest_rates(r, "deepseek", "deepseek-chat") is rates_for(
        r, "deepseek", "deepseek-chat"
    )
    assert bound_request_cost(req, plain, registry=r) is not None


@settings(max_examples=200, deadline=None)
@given(
    st.floats(min_value=0, max_value=7 * 86400),
    st.floats(min_value=0, max_value=6 * HOUR),
    st.integers(min_value=0, max_value=10_000),
    st.integers(min_value=1, max_value=5_000),
)
def test_a_reservation_never_under_reserves_across_a_window_edge(
    start: float, runs: float, cached: int, out: int
) -> None:
    """Reserved when the call is admitted; the call (or its retry) starts up to six hours
    later, in whatever window: what it is billed never exceeds what was reserved."""
    dep = make_deployment("deepseek", "deepseek-flash", api_key="k")
    req = ChatRequest([Message("user", "x" * 50)], GenerationParams(max_tokens=out))
    t0 = THU + start
    reserved = bound_request_cost(req, dep, registry=registry_at(Clock(t0)))
    assert reserved is not None
    prompt = prompt_token_bound(req)
    usage = {"input_tokens": prompt, "cached_tokens": min(cached, prompt), "output_tokens": out}
    billed = llmrelay.calculate_cost(
        "deepseek/deepseek-flash", usage, registry=registry_at(Clock(t0)), at=t0 + runs
    )
    assert billed.usd is not None
    assert billed.usd <= reserved * (1 + 1e-12)


# --------------------------------------------------------------------------- calls


async def test_a_call_is_priced_at_its_start(fake: FakeUpstream, point_at: Point) -> None:
    """The answer arrives after 01:00 (the registry's clock says so), but the call started
    before it, off-peak: Response.cost is the off-peak price."""
    point_at(fake)
    clock = Clock(THU + HOUR)  # when the answer is priced: the window has just opened
    r = registry_at(clock)
    client = llmrelay.Client(engine=Engine(catalog=Catalog(r)))
    fake.push(Reply.ok("hi", input_tokens=M, output_tokens=0))
    resp = await client.achat("deepseek/deepseek-flash", "hi")
    assert resp.latency_s > 0
    assert resp.cost is not None
    assert resp.cost.usd == pytest.approx(0.15)
    clock.t = THU + 2 * HOUR
    fake.push(Reply.ok("hi", input_tokens=M, output_tokens=0))
    resp = await client.achat("deepseek/deepseek-flash", "hi")
    assert resp.cost is not None
    assert resp.cost.usd == pytest.approx(0.3)
    await client.aclose()
    dep = make_deployment("deepseek", "deepseek-flash", api_key="k")
    cat = Catalog(r)
    usage = llmrelay.Usage(M, 0)
    clock.t = THU + HOUR + 0.5
    assert cat.cost_at(dep, usage, 1.0).usd == pytest.approx(0.15)
    assert cat.cost_at(dep, usage, None).usd == pytest.approx(0.3)
    assert cat.cost(dep, usage).usd == pytest.approx(0.3)


# --------------------------------------------------------------------------- rows


BASE = {"provider": "vllm", "model": "w", "prices": {"input": 1.0, "output": 2.0}}


@pytest.mark.parametrize(
    ("windows", "match"),
    [
        ({"days": ["mon"]}, r"must be a list of windows"),
        ([{"days": [], "start": "01:00", "end": "02:00", "multiplier": 2}], "weekdays"),
        ([{"days": ["monday"], "start": "01:00", "end": "02:00", "multiplier": 2}], "weekdays"),
        ([{"days": ["mon"], "start": "1:00", "end": "02:00", "multiplier": 2}], "HH:MM"),
        ([{"days": ["mon"], "start": "24:30", "end": "02:00", "multiplier": 2}], "HH:MM"),
        ([{"days": ["mon"], "start": "01:60", "end": "02:00", "multiplier": 2}], "HH:MM"),
        ([{"days": ["mon"], "end": "02:00", "multiplier": 2}], "start must be a UTC time"),
        ([{"days": ["mon"], "start": "22:00", "end": "02:00", "multiplier": 2}], "two windows"),
        ([{"days": ["mon"], "start": "02:00", "end": "02:00", "multiplier": 2}], "before end"),
        ([{"days": ["mon"], "start": "01:00", "end": "02:00"}], "either a multiplier"),
        (
            [{"days": ["mon"], "start": "01:00", "end": "02:00", "multiplier": 2, "input": 3}],
            "either a multiplier",
        ),
        ([{"days": ["mon"], "start": "01:00", "end": "02:00", "multiplier": 0}], "positive"),
        # str.isdigit() is true of "²" (int() refuses it) and of full-width digits
        ([{"days": ["mon"], "start": "0\u00b2:00", "end": "23:00", "multiplier": 2}], "HH:MM"),
        ([{"days": ["mon"], "start": "\uff11\uff12:00", "end": "23:00", "multiplier": 2}], "HH:MM"),
        ([{"days": ["mon"], "start": "01:00", "end": "02:00", "multiplier": True}], "positive"),
        (
            [{"days": ["mon"], "start": "01:00", "end": "02:00", "multiplier": "2"}],
            "positive",
        ),
        ([{"days": ["mon"], "start": "01:00", "end": "02:00", "input": -1}], "non-negative"),
        ([{"days": ["mon"], "start": "01:00", "end": "02:00", "mutliplier": 2}], "unknown field"),
        (
            [
                {"days": ["mon", "tue"], "start": "01:00", "end": "04:00", "multiplier": 2},
                {"days": ["tue"], "start": "03:00", "end": "05:00", "multiplier": 3},
            ],
            r"overlaps price_windows\[0\].* on tue",
        ),
    ],
)
def test_bad_windows_are_refused_naming_the_row(tmp_path: Path, windows: Any, match: str) -> None:
    f = tmp_path / "c.json"
    f.write_bytes(orjson.dumps({"models": [{**BASE, "price_windows": windows}]}))
    with pytest.raises(ConfigFileError, match=match) as info:
        LLMRegistry.from_file(f)
    assert "models[0] (vllm/w)" in str(info.value)
    r = registry_at(Clock(THU), bundled=False)
    with pytest.raises(ConfigurationError, match=match):
        r.register({**BASE, "price_windows": windows})
    assert r.lookup("vllm", "w") is None  # nothing half-registered


def test_adjacent_windows_are_not_an_overlap() -> None:
    row = {
        **BASE,
        "price_windows": [
            {"days": ["mon"], "start": "01:00", "end": "02:00", "multiplier": 2},
            {"days": ["mon"], "start": "02:00", "end": "03:00", "multiplier": 3},
            {"days": ["tue"], "start": "01:30", "end": "02:30", "multiplier": 4},
        ],
    }
    p = profile_from_row(row)
    assert len(p.price_windows) == 3


@pytest.mark.parametrize("ext", ["json", "yaml", "sqlite"])
def test_windows_and_promotions_survive_save_and_load(tmp_path: Path, ext: str) -> None:
    if ext == "yaml":
        pytest.importorskip("yaml")
    r = registry_at(Clock(THU))
    path = tmp_path / f"catalog.{ext}"
    r.save(path)
    again = LLMRegistry.from_file(path)
    for name in ("deepseek/deepseek-flash", "deepseek/deepseek-v4-pro"):
        assert again.get(name).price_windows == r.get(name).price_windows
        assert len(again.get(name).price_windows) == 2
    mistral = again.get("mistral/mistral-large-4-0").pricing
    assert mistral.promotion_source == r.get("mistral/mistral-large-4-0").pricing.promotion_source
    assert mistral.promotion_source is not None
    own = profile_from_row(WRAP)
    assert profile_from_row(orjson.loads(orjson.dumps(profile_to_row(own)))) == own


def test_old_files_and_windows_of_every_weekday() -> None:
    row = {
        **BASE,
        "price_windows": [
            {"days": list(WEEKDAYS), "start": "00:00", "end": "24:00", "multiplier": 1.5}
        ],
    }
    r = registry_at(Clock(THU), bundled=False, profiles=[row])
    for day in range(7):
        t = THU + day * 86400 + 5.5 * HOUR
        assert llmrelay.calculate_cost("vllm/w", USAGE, registry=r, at=t).usd == 4.5


# --------------------------------------------------------------------------- catalog check


def test_check_lists_promotions_with_no_end() -> None:
    rows = [
        {
            **BASE,
            "model": "sale",
            "verified_at": "2026-12-01",
            "prices": {"input": 1.0, "output": 2.0, "promotion_source": "https://p"},
        },
        {  # a promotion with an end date is a scheduled change, not an open one
            **BASE,
            "model": "ending",
            "verified_at": "2026-12-01",
            "price_schedule": [
                {
                    "from": "2026-11-01",
                    "until": "2027-06-01",
                    "input": 0.5,
                    "promotion_source": "https://p",
                }
            ],
        },
        {  # a sale on the base price, but a later list price is in force now
            **BASE,
            "model": "over",
            "verified_at": "2026-12-01",
            "prices": {"input": 1.0, "output": 2.0, "promotion_source": "https://p"},
            "price_schedule": [{"from": "2026-11-01", "input": 2.0}],
        },
        {  # an open-ended promotional period in force
            **BASE,
            "model": "open",
            "verified_at": "2026-12-01",
            "price_schedule": [
                {"from": "2026-11-01", "input": 0.5, "promotion_source": "https://q"}
            ],
        },
    ]
    r = registry_at(Clock(THU), bundled=False, profiles=rows)
    rep = check_catalog(r)
    assert [(o.model, o.source) for o in rep.open_promotions] == [
        ("vllm/open", "https://q"),
        ("vllm/sale", "https://p"),
    ]
    assert rep.actionable
    assert rep.as_dict()["open_promotions"][1] == {
        "model": "vllm/sale",
        "price": "$1 in / $2 out per 1M tokens",
        "source": "https://p",
    }
    # a period does not inherit the base price's promotion flag
    assert r.get("vllm/over").price_schedule[0].pricing.promotion_source is None


def test_check_cli_with_windows_and_nothing_to_do(tmp_path: Path) -> None:
    row = {**WRAP, "verified_at": "2026-12-01", "sources": ["https://x"]}
    set_default_registry(registry_at(Clock(THU), bundled=False, profiles=[row]))
    try:
        out = io.StringIO()
        with redirect_stdout(out):
            code = cli_main(["catalog", "check", "--within", "0"])
        assert code == 0
        assert "Nothing to do" in out.getvalue()
    finally:
        set_default_registry(None)


def test_check_cli_lists_the_bundled_open_promotion() -> None:
    set_default_registry(registry_at(Clock(THU + 12 * HOUR)))
    try:
        out = io.StringIO()
        with redirect_stdout(out):
            code = cli_main(["catalog", "check", "--json", "--within", "0"])
        doc = orjson.loads(out.getvalue())
        assert code == 8
        assert [o["model"] for o in doc["open_promotions"]] == ["mistral/mistral-large-4-0"]
    finally:
        set_default_registry(None)


def test_bundled_deepseek_windows_are_sourced_and_dated() -> None:
    r = registry_at(Clock(THU))
    for name in ("deepseek/deepseek-flash", "deepseek/deepseek-v4-pro"):
        row = r.get(name)
        assert str(row.verified_at) == "2026-12-03"
        for w in row.price_windows:
            assert w.source == "https://api-docs.deepseek.com/quick_start/pricing"
            assert w.days == frozenset(range(5))
        assert {(w.start, w.end) for w in row.price_windows} == {
            (3600, 4 * 3600),
            (6 * 3600, 10 * 3600),
        }


def test_an_infinite_multiplier_is_refused() -> None:
    r = registry_at(Clock(THU), bundled=False)
    w = {"days": ["mon"], "start": "01:00", "end": "02:00", "multiplier": float("inf")}
    with pytest.raises(ConfigurationError, match="positive finite"):
        r.register({**BASE, "price_windows": [w]})


@pytest.mark.parametrize(
    ("field", "where"),
    [("multiplier", "price_windows"), ("input", "price_windows"), ("input", "prices")],
)
def test_an_int_too_large_for_a_float_is_refused_not_an_overflow(field: str, where: str) -> None:
    huge = 10**400  # a TOML/JSON integer Python reads exactly; float(huge) overflows
    r = registry_at(Clock(THU), bundled=False)
    window = {"days": ["thu"], "start": "00:00", "end": "24:00", field: huge}
    row: dict[str, Any] = {**BASE, "price_windows": [window]}
    if where == "prices":
        row = {**BASE, "prices": {"input": huge, "output": 2.0}}
    with pytest.raises(ConfigurationError, match=r"number|positive"):
        r.register(row)
    assert r.lookup("vllm", "w") is None


@pytest.mark.parametrize("t", [float("nan"), float("inf"), -1e18, 1e30, -1.0])
def test_a_clock_giving_no_real_time_is_a_typed_error(t: float) -> None:
    """A registry's injected clock that returns NaN, infinity or a time outside 1970..9999:
    pricing and budget reservations refuse it with a ConfigurationError, never a raw
    ValueError / OverflowError / OSError from ``datetime``."""
    r = registry_at(Clock(t))
    dep = make_deployment("deepseek", "deepseek-flash", api_key="k")
    req = ChatRequest([Message("user", "hello")], GenerationParams(max_tokens=10))
    for attempt in (
        lambda: rates_for(r, "deepseek", "deepseek-flash"),
        lambda: highest_rates(r, "deepseek", "deepseek-flash"),
        lambda: bound_request_cost(req, dep, registry=r),
        lambda: Catalog(r).cost_at(dep, llmrelay.Usage(1, 1), 0.5),
        lambda: llmrelay.calculate_cost("deepseek/deepseek-flash", USAGE, registry=r),
    ):
        with pytest.raises(ConfigurationError, match="now= must return epoch seconds"):
            attempt()


class _Hostile:
    """A dict key or value whose str, repr and format all raise (register() takes any dict)."""

    def __str__(self) -> str:
        raise RuntimeError("str'd")

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        raise RuntimeError("formatted")


@pytest.mark.parametrize(
    "row",
    [
        {**BASE, _Hostile(): 1},
        {**BASE, "price_windows": [{_Hostile(): 1}]},
        {**BASE, "price_schedule": [{_Hostile(): 1}]},
        {**BASE, "reasoning": {_Hostile(): 1}},
        {**BASE, "rejected_params": [{"param": "temperature", _Hostile(): 1}]},
        {**BASE, "rejected_params": [_Hostile()]},
        {**BASE, "provider": _Hostile()},
    ],
)
def test_hostile_keys_and_values_in_a_row_get_a_typed_error(row: dict[Any, Any]) -> None:
    r = registry_at(Clock(THU), bundled=False)
    with pytest.raises(ConfigurationError, match="_Hostile"):
        r.register(row)


@pytest.mark.parametrize("before_midnight", [1.0, 3600.0, RESERVE_AHEAD_S])
def test_a_reservation_before_a_dated_price_rise_covers_a_call_after_midnight(
    before_midnight: float,
) -> None:
    """Reserved shortly before midnight under the old price; the call (or its retry) starts
    after 00:00, when a dearer dated price is in force, and is billed at it (found by the
    outside review: the reservation read only that day's prices)."""
    row = {
        "provider": "vllm",
        "model": "rise",
        "prices": {"input": 1.0, "output": 2.0},
        "price_schedule": [{"from": "2026-12-04", "input": 5.0, "output": 10.0}],
    }
    midnight = THU + 86400  # Friday 2026-12-04 00:00 UTC
    r = registry_at(Clock(midnight - before_midnight), bundled=False)
    r.register(row)
    dep = make_deployment("vllm", "rise", api_key="k", base_url="http://127.0.0.1:9")
    req = ChatRequest([Message("user", "x" * 50)], GenerationParams(max_tokens=1000))
    reserved = bound_request_cost(req, dep, registry=r)
    assert reserved is not None
    usage = {"input_tokens": prompt_token_bound(req), "output_tokens": 1000}
    billed = llmrelay.calculate_cost("vllm/rise", usage, registry=r, at=midnight + 2)
    assert billed.usd is not None
    assert billed.usd <= reserved * (1 + 1e-12)
    # what is billed now is still the old price
    now = llmrelay.calculate_cost("vllm/rise", usage, registry=r).usd
    assert now == pytest.approx(billed.usd / 5)


def test_earlier_in_the_day_a_reservation_uses_that_days_prices() -> None:
    """More than RESERVE_AHEAD_S before midnight the next day's rise is not reserved (a budget
    is not refused for a whole day ahead of a price change)."""
    row = {
        "provider": "vllm",
        "model": "rise2",
        "prices": {"input": 1.0, "output": 2.0},
        "price_schedule": [{"from": "2026-12-04", "input": 5.0, "output": 10.0}],
    }
    midnight = THU + 86400
    r = registry_at(Clock(midnight - RESERVE_AHEAD_S - 1), bundled=False)
    r.register(row)
    dep = make_deployment("vllm", "rise2", api_key="k", base_url="http://127.0.0.1:9")
    req = ChatRequest([Message("user", "x")], GenerationParams(max_tokens=1000))
    reserved = bound_request_cost(req, dep, registry=r)
    assert reserved == pytest.approx(prompt_token_bound(req) * 1e-6 + 1000 * 2e-6)
