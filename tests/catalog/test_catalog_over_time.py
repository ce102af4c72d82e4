"""Prices and lifecycle over time, parameter rules, ``catalog check`` and old catalog files.

Everything runs on an injected clock (a registry's ``today`` / ``now``); calls go through
``Client.achat`` against the fake upstream (or a mock transport at the provider's own URL,
where retirement is enforced)."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from contextlib import redirect_stdout
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

import llmrelay
from llmrelay.catalog import layer as layer_mod
from llmrelay.catalog import model_registry as registry_mod
from llmrelay.catalog.check import check_catalog
from llmrelay.catalog.costs import rates_for
from llmrelay.catalog.layer import Catalog
from llmrelay.catalog.model_registry import LLMRegistry, set_default_registry
from llmrelay.catalog.persistence import profile_from_row, profile_to_row
from llmrelay.cli.main import main as cli_main
from llmrelay.core.engine import Engine
from llmrelay.errors import ConfigFileError, ModelRetiredError, UnsupportedCapabilityError
from llmrelay.providers.resolve import resolve_target
from llmrelay.providers.table import Deployment
from llmrelay.testing.fake import FakeUpstream, Reply
from llmrelay.transport.base import HttpRequest, HttpResponse, MockTransport
from llmrelay.types import ChatRequest, Message, build_params

from ..config_isolation import isolated_config
from ..conftest import Run

Point = Callable[[FakeUpstream], FakeUpstream]
TODAY = date(2026, 12, 3)
M = 1_000_000


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(registry_mod, "_warned", set())
    monkeypatch.setattr(layer_mod, "_alias_warned", set())
    with isolated_config():
        yield


def registry_on(day: date, **kw: Any) -> LLMRegistry:
    kw.setdefault("catalog_files", ())
    return LLMRegistry(today=lambda: day, **kw)


def client_for(registry: LLMRegistry, transport: Any = None) -> llmrelay.Client:
    engine = (
        Engine(transport, catalog=Catalog(registry))
        if transport
        else Engine(catalog=Catalog(registry))
    )
    return llmrelay.Client(engine=engine)


USAGE = {"input_tokens": M, "output_tokens": M}


# --------------------------------------------------------------------------- prices over time


@pytest.mark.parametrize(
    ("day", "usd"),
    [(date(2026, 11, 30), 12.0), (date(2026, 12, 1), 24.0), (TODAY, 24.0)],
)
def test_gemini_4_argon_costs_the_price_in_force_on_the_day(day: date, usd: float) -> None:
    """$2/$10 through 2026-11-30, $4/$20 from 2026-12-01 (Google's dated price)."""
    r = registry_on(TODAY)
    cost = llmrelay.calculate_cost("gemini/gemini-4-argon", USAGE, registry=r, at=day)
    assert cost.usd == pytest.approx(usd)
    # the same through a registry whose clock is that day
    assert llmrelay.calculate_cost(
        "gemini/gemini-4-argon", USAGE, registry=registry_on(day)
    ).usd == pytest.approx(usd)


def test_price_queries_use_the_price_in_force() -> None:
    def cheap(day: date) -> list[str]:
        found = registry_on(day).get_models_by_capability(
            "vision", max_cost_per_1k=0.005, provider="gemini"
        )
        return [p.name for p in found]

    # blended 3:1 input:output: ($2 x 3 + $10) / 4 = $4 per million, then $8 since 2026-12-01
    assert "gemini-4-argon" in cheap(date(2026, 11, 30))
    assert "gemini-4-argon" not in cheap(TODAY)
    # a profile priced without a registry uses its own schedule
    argon = registry_on(TODAY).get("gemini/gemini-4-argon")
    assert llmrelay.calculate_cost(argon, USAGE, at=date(2026, 11, 1)).usd == pytest.approx(12.0)


def test_a_promotion_ends_and_the_list_price_returns() -> None:
    r = registry_on(TODAY)
    last = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    first = datetime(2027, 1, 1, 0, 0, 0, tzinfo=UTC)
    assert llmrelay.calculate_cost("gemini/gemini-3.8-flash", USAGE, registry=r, at=last).usd == (
        pytest.approx(0.75 + 3.75)
    )
    assert llmrelay.calculate_cost(
        "gemini/gemini-3.8-flash", USAGE, registry=r, at=first
    ).usd == pytest.approx(1.5 + 7.5)


SCHEDULED = {
    "provider": "vllm",
    "model": "dated",
    "prices": {"input": 1.0, "output": 2.0},
    "price_schedule": [
        {"from": "2027-01-01", "input": 3.0},
        {"from": "2027-02-01", "until": "2027-02-08", "input": 0.5, "output": 0.5},
    ],
}


def test_schedule_periods_inherit_and_promotions_fall_back() -> None:
    r = registry_on(TODAY, bundled=False, profiles=[SCHEDULED])
    p = r.get("vllm/dated")
    assert p.pricing_on(date(2026, 12, 31)).input == 1.0
    assert (p.pricing_on(date(2027, 1, 1)).input, p.pricing_on(date(2027, 1, 1)).output) == (
        3.0,
        2.0,  # not given in the period: the row's price
    )
    assert p.pricing_on(date(2027, 2, 7)).input == 0.5
    assert p.pricing_on(date(2027, 2, 8)).input == 3.0  # the promotion ended
    assert p.price_boundaries() == (date(2027, 1, 1), date(2027, 2, 1), date(2027, 2, 8))


def test_rates_are_resolved_once_per_span_not_per_call() -> None:
    clock = [datetime(2026, 12, 31, 12, tzinfo=UTC).timestamp()]
    r = LLMRegistry(bundled=False, catalog_files=(), profiles=[SCHEDULED], now=lambda: clock[0])
    first = rates_for(r, "vllm", "dated")
    assert first is not None
    assert first.input == pytest.approx(1.0 / M)
    clock[0] += 3600  # still 2026-12-31: the cached rates, the same object
    assert rates_for(r, "vllm", "dated") is first
    clock[0] = datetime(2027, 1, 1, tzinfo=UTC).timestamp()  # the boundary: new rates
    after = rates_for(r, "vllm", "dated")
    assert after is not None
    assert after.input == pytest.approx(3.0 / M)
    assert r.today() == date(2027, 1, 1)


def test_bad_schedules_are_typed_errors(tmp_path: Path) -> None:
    for sched, match in [
        ([{"input": 2.0}], "needs 'from'"),
        ([{"from": "2027-13-01"}], "YYYY-MM-DD"),
        ([{"from": "2027-01-05", "until": "2027-01-01"}], "not after it starts"),
        ([{"from": "2027-02-01"}, {"from": "2027-01-01"}], "date order"),
        ([{"from": "2027-01-01", "inptu": 1}], "unknown field"),
    ]:
        f = tmp_path / "c.json"
        row = {"provider": "a", "model": "b", "prices": {"input": 1}, "price_schedule": sched}
        f.write_bytes(orjson.dumps({"models": [row]}))
        with pytest.raises(ConfigFileError, match=match):
            LLMRegistry.from_file(f)


async def test_a_call_is_billed_at_the_price_in_force_then(
    fake: FakeUpstream, point_at: Point
) -> None:
    point_at(fake)
    for day, per_m in ((date(2026, 11, 30), 2.0), (TODAY, 4.0)):
        client = client_for(registry_on(day))
        fake.push(Reply.ok("hi", input_tokens=1000, output_tokens=0))
        r = await client.achat("gemini/gemini-4-argon", "hi")
        assert r.cost.usd == pytest.approx(1000 * per_m / M)
        await client.aclose()


# --------------------------------------------------------------------------- lifecycle states


async def test_deprecated_model_warns_and_is_sent(
    fake: FakeUpstream, point_at: Point, caplog: pytest.LogCaptureFixture
) -> None:
    point_at(fake)
    caplog.set_level(logging.WARNING, logger="llmrelay.catalog")
    client = client_for(registry_on(TODAY))
    r = await client.achat("openai/gpt-5", "hi")
    assert r.text == "Echo: hi"
    msgs = [rec.getMessage() for rec in caplog.records]
    assert any("openai/gpt-5 is deprecated; it shuts down on 2026-12-11" in m for m in msgs)
    assert any("gpt-6.1-sol" in m for m in msgs)
    await client.aclose()


def _refuse(request: HttpRequest) -> HttpResponse:
    raise AssertionError("nothing may be sent")


async def test_retired_and_refused_raises_naming_the_replacement(keys: str) -> None:
    transport = MockTransport(_refuse)
    client = client_for(registry_on(TODAY), transport)
    with pytest.raises(ModelRetiredError, match="shut down on 2026-04-20") as ei:
        await client.achat("anthropic/claude-3-haiku-20240307", "hi")
    assert ei.value.replacement == "claude-haiku-4-5"
    with pytest.raises(ModelRetiredError, match="shut down on 2026-02-19"):
        await client.achat("anthropic/claude-3-5-haiku-20241022", "hi")
    assert transport.requests == []
    await client.aclose()


async def test_claude_sonnet_4_5_retired_on_2026_11_30(keys: str) -> None:
    """Re-verified 2026-12-03: Anthropic's Sonnet 4.5 page says it retires on 2026-11-30 with
    Sonnet 5.5 as the replacement (the row had it active). The day before, it is sent."""
    transport = MockTransport(_refuse)
    client = client_for(registry_on(TODAY), transport)
    with pytest.raises(ModelRetiredError, match="shut down on 2026-11-30") as ei:
        await client.achat("anthropic/claude-sonnet-4-5-20250929", "hi")
    assert ei.value.replacement == "claude-sonnet-5-5"
    assert transport.requests == []
    await client.aclose()
    before = registry_on(date(2026, 11, 29)).get("anthropic/claude-sonnet-4-5")
    assert not before.is_retired(date(2026, 11, 29))
    assert before.is_retired(date(2026, 11, 30))


@pytest.mark.parametrize(
    ("model", "day", "in_out"),
    [
        # GPT-5.6 Sol: list price, the promotion OpenAI's page gives through 2026-11-21, list again
        ("openai/gpt-5.6-sol", date(2026, 8, 20), (5.0, 30.0)),
        ("openai/gpt-5.6-sol", date(2026, 8, 21), (4.0, 20.0)),
        ("openai/gpt-5.6-sol", date(2026, 11, 21), (4.0, 20.0)),
        ("openai/gpt-5.6-sol", date(2026, 11, 22), (5.0, 30.0)),
        # Terra and Luna: the launch price until OpenAI's 2026-07-30 cut
        ("openai/gpt-5.6-terra", date(2026, 7, 29), (2.5, 15.0)),
        ("openai/gpt-5.6-terra", date(2026, 7, 30), (2.0, 12.0)),
        ("openai/gpt-5.6-luna", date(2026, 7, 9), (1.0, 6.0)),
        ("openai/gpt-5.6-luna", TODAY, (0.2, 1.2)),
    ],
)
def test_gpt_5_6_prices_over_time(model: str, day: date, in_out: tuple[float, float]) -> None:
    cost = llmrelay.calculate_cost(model, USAGE, registry=registry_on(TODAY), at=day)
    assert cost.usd == pytest.approx(sum(in_out))


def test_rows_rechecked_on_2026_12_03_name_their_sources() -> None:
    r = registry_on(TODAY)
    rows = {(row["provider"], row["model"]): row for row in r.rows()}
    for key in (
        ("anthropic", "claude-sonnet-4-5"),
        ("anthropic", "claude-opus-5"),
        ("openai", "gpt-5.6-terra"),
        ("openai", "gpt-5.6-luna"),
    ):
        row = rows[key]
        assert row["verified_at"] == "2026-12-03", key
        assert row["sources"], key
    # the promotion is not assumed to continue: Sol's row was not re-dated
    assert rows[("openai", "gpt-5.6-sol")]["verified_at"] != "2026-12-03"


def _gemini_ok(sent: list[HttpRequest]) -> Callable[[HttpRequest], HttpResponse]:
    def ok(request: HttpRequest) -> HttpResponse:
        sent.append(request)
        body = {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": "routed"}]},
                    "finishReason": "STOP",
                }
            ],
            "usageMetadata": {"promptTokenCount": 1000, "candidatesTokenCount": 100},
            "modelVersion": "gemini-3.8-flash",
        }
        return HttpResponse(200, {"content-type": "application/json"}, orjson.dumps(body))

    return ok


async def test_retired_but_routed_warns_sends_and_bills_the_replacement(
    keys: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Google answers gemini-2.5-pro with gemini-3.8-flash since 2026-12-01, at its rate."""
    caplog.set_level(logging.WARNING, logger="llmrelay.catalog")
    sent: list[HttpRequest] = []
    client = client_for(registry_on(TODAY), MockTransport(_gemini_ok(sent)))
    r = await client.achat("gemini/gemini-2.5-pro", "hi")
    assert r.text == "routed"
    assert len(sent) == 1
    assert "gemini-2.5-pro" in sent[0].url  # sent as asked: the provider routes it
    flash = 1000 * 0.75 / M + 100 * 3.75 / M  # Gemini 3.8 Flash's (promotional) rate
    assert r.cost.usd == pytest.approx(flash)
    assert any(
        "answers requests for it with 'gemini-3.8-flash'" in m.getMessage() for m in caplog.records
    )
    # before the shutdown it was billed at its own rate
    own = llmrelay.calculate_cost(
        "gemini/gemini-2.5-pro",
        {"input_tokens": 1000, "output_tokens": 100},
        registry=registry_on(TODAY),
        at=date(2026, 11, 30),
    )
    assert own.usd == pytest.approx(1000 * 1.25 / M + 100 * 10.0 / M)
    await client.aclose()


async def test_tier_specific_retirement_warns_and_sends(
    keys: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="llmrelay.catalog")
    sent: list[HttpRequest] = []

    def ok(request: HttpRequest) -> HttpResponse:
        sent.append(request)
        body = (
            b'{"id":"x","object":"chat.completion","created":1,"model":"llama-3.3-70b-versatile",'
            b'"choices":[{"index":0,"message":{"role":"assistant","content":"paid tier"},'
            b'"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,'
            b'"total_tokens":5}}'
        )
        return HttpResponse(200, {"content-type": "application/json"}, body)

    client = client_for(registry_on(TODAY), MockTransport(ok))
    r = await client.achat("groq/llama-3.3-70b-versatile", "hi")
    assert r.text == "paid tier"
    assert len(sent) == 1
    assert r.cost.known
    msgs = [rec.getMessage() for rec in caplog.records]
    assert any("for the free, developer tier(s)" in m for m in msgs)
    await client.aclose()


def test_lifecycle_states() -> None:
    r = registry_on(TODAY)
    state = {
        m: r.get(m).lifecycle_state(TODAY)
        for m in (
            "openai/gpt-6.1-sol",
            "openai/gpt-5",
            "anthropic/claude-3-haiku-20240307",
            "gemini/gemini-2.5-flash",
            "groq/llama-3.1-8b-instant",
        )
    }
    assert state == {
        "openai/gpt-6.1-sol": "active",
        "openai/gpt-5": "deprecated",
        "anthropic/claude-3-haiku-20240307": "retired",
        "gemini/gemini-2.5-flash": "retired_routed",
        "groq/llama-3.1-8b-instant": "retired_tiers",
    }


def test_bad_lifecycle_rows_are_typed_errors() -> None:
    r = registry_on(TODAY, bundled=False)
    with pytest.raises(Exception, match="retirement must be one of"):
        r.register({"provider": "a", "model": "b", "retirement": "gone"})
    with pytest.raises(Exception, match="needs the replacement"):
        r.register({"provider": "a", "model": "c", "retirement": "routed"})
    with pytest.raises(Exception, match="needs retired_tiers"):
        r.register({"provider": "a", "model": "d", "retirement": "tiers"})


# --------------------------------------------------------------------------- aliases


async def test_alias_to_a_model_shutting_down_soon_warns_once(
    fake: FakeUpstream, point_at: Point, caplog: pytest.LogCaptureFixture
) -> None:
    point_at(fake)
    caplog.set_level(logging.WARNING, logger="llmrelay.catalog")
    client = client_for(registry_on(TODAY))
    for _ in range(3):
        await client.achat("o3", "hi")
    alias_msgs = [m.getMessage() for m in caplog.records if "alias 'o3'" in m.getMessage()]
    assert alias_msgs == [
        "alias 'o3' points at openai/o3, which shuts down on 2026-12-11 (in 8 days); point it "
        "at 'gpt-6.1-sol' instead"
    ]
    await client.aclose()
    # 40 days before, no alias warning
    caplog.clear()
    layer_mod._alias_warned.clear()
    client = client_for(registry_on(date(2026, 11, 1)))
    await client.achat("o3", "hi")
    assert not [m for m in caplog.records if "alias 'o3'" in m.getMessage()]
    await client.aclose()


def test_no_builtin_alias_points_at_a_retired_model() -> None:
    from llmrelay.providers.aliases import CURRENT_MODELS

    r = registry_on(TODAY)
    for provider, rows in CURRENT_MODELS.items():
        for alias, model in rows:
            p = r.lookup(provider, model)
            assert p is not None, alias
            assert not p.is_retired(TODAY), alias


# --------------------------------------------------------------------------- parameter rules


async def test_claude_5_5_sampling_is_dropped_and_reported(
    fake: FakeUpstream, point_at: Point
) -> None:
    point_at(fake)
    client = client_for(registry_on(TODAY))
    r = await client.achat(
        "anthropic/claude-sonnet-5-5", "hi", temperature=0.2, top_p=0.9, max_tokens=50
    )
    body = fake.requests[-1].body
    assert "temperature" not in body
    assert "top_p" not in body
    assert set(r.adjusted_params) >= {"temperature", "top_p"}
    assert "rejects it" in r.adjusted_params["temperature"]
    await client.aclose()


async def test_strict_params_refuses_before_sending(fake: FakeUpstream, point_at: Point) -> None:
    point_at(fake)
    client = client_for(registry_on(TODAY))
    with pytest.raises(UnsupportedCapabilityError, match=r"rejects temperature=0\.2") as ei:
        await client.achat("anthropic/claude-sonnet-5-5", "hi", temperature=0.2, strict_params=True)
    assert ei.value.capability == "parameters"
    assert "platform.claude.com" in ei.value.message  # the rule's source
    assert fake.requests == []
    with pytest.raises(llmrelay.errors.InvalidRequestError, match="strict_params"):
        await client.achat("anthropic/claude-sonnet-5-5", "hi", strict_params="yes")
    # a parameter the model takes passes strict mode
    r = await client.achat("anthropic/claude-sonnet-5-5", "hi", max_tokens=20, strict_params=True)
    assert r.text == "Echo: hi"
    await client.aclose()


async def test_forced_tool_choice_rules(fake: FakeUpstream, point_at: Point) -> None:
    point_at(fake)
    client = client_for(registry_on(TODAY))
    tool = {"name": "f", "parameters": {"type": "object", "properties": {}}}
    r = await client.achat(
        "anthropic/claude-opus-5-5", "hi", tools=[tool], tool_choice="required", max_tokens=50
    )
    assert "tool_choice" in r.adjusted_params
    assert fake.requests[-1].body.get("tool_choice") is None
    r = await client.achat(
        "anthropic/claude-opus-5-5", "hi", tools=[tool], tool_choice="auto", max_tokens=50
    )
    assert "tool_choice" not in r.adjusted_params  # "auto" is not forced
    await client.aclose()


def _dep(model: str) -> Deployment:
    t = resolve_target(model)
    return Deployment(t.provider, t.model, "openai", "https://example.invalid")


def _prepared(model: str, **params: Any) -> Any:
    req = ChatRequest([Message("user", "hi")], build_params(params))
    return Catalog(registry_on(TODAY)).prepare(req, _dep(model))


def test_rule_conditions() -> None:
    # Claude 4.5 rejects temperature only with extended thinking on
    assert _prepared("anthropic/claude-haiku-4-5", temperature=0.3).params.temperature == 0.3
    out = _prepared("anthropic/claude-haiku-4-5", temperature=0.3, reasoning_effort="high")
    assert out.params.temperature is None
    assert "temperature" in out.adjusted
    # GPT-6 takes sampling parameters only with reasoning_effort="none"
    keep = _prepared("openai/gpt-6-sol", temperature=0.3, reasoning_effort="none")
    assert keep.params.temperature == 0.3
    assert _prepared("openai/gpt-6-sol", temperature=0.3).params.temperature is None
    # OpenAI reasoning models accept the default value: sent as set, nothing reported
    quiet = _prepared("openai/gpt-5.5", temperature=1.0)
    assert quiet.params.temperature == 1.0
    assert not quiet.adjusted
    # top_k travels in extra
    k = _prepared("anthropic/claude-haiku-5-5", extra={"top_k": 5, "other": 1})
    assert k.params.extra == {"other": 1}
    assert "top_k" in k.adjusted


async def test_reasoning_effort_a_model_does_not_take_is_not_sent(
    fake: FakeUpstream, point_at: Point
) -> None:
    """The catalog says which reasoning_effort values each OpenAI model takes: gpt-4o-mini
    none at all (OpenAI answers 400), o3 low/medium/high (no 'none'), GPT-5 no 'none', GPT-5.5
    no 'minimal'. Others are dropped and reported, or refused with strict_params=True before
    anything is sent; a value the model takes is sent as given."""
    point_at(fake)
    client = client_for(registry_on(TODAY))
    r = await client.achat("openai/gpt-4o-mini", "hi", reasoning_effort="low")
    assert "reasoning_effort" not in fake.requests[-1].body
    assert r.adjusted_params["reasoning_effort"].startswith(
        "dropped: openai/gpt-4o-mini rejects it (not a reasoning model"
    )
    for model, effort in [("o3", "none"), ("gpt-5", "none"), ("gpt-5.5", "minimal")]:
        r = await client.achat(f"openai/{model}", "hi", reasoning_effort=effort)
        assert "reasoning_effort" not in fake.requests[-1].body, model
        assert f"rejects reasoning_effort='{effort}'" in r.adjusted_params["reasoning_effort"]
    for model, effort in [("o3", "high"), ("gpt-5", "minimal"), ("gpt-5.5", "none")]:
        r = await client.achat(f"openai/{model}", "hi", reasoning_effort=effort)
        assert fake.requests[-1].body["reasoning_effort"] == effort, model
        assert "reasoning_effort" not in r.adjusted_params
    sent = len(fake.requests)
    with pytest.raises(UnsupportedCapabilityError) as ei:
        await client.achat("openai/o3", "hi", reasoning_effort="none", strict_params=True)
    assert ei.value.capability == "parameters"
    assert "rejects reasoning_effort='none' (it takes low, medium or high)" in ei.value.message
    assert "community.openai.com" in ei.value.message  # the rule's source
    with pytest.raises(UnsupportedCapabilityError, match=r"gpt-4o-mini rejects reasoning_effort"):
        await client.achat("openai/gpt-4o-mini", "hi", reasoning_effort="high", strict_params=True)
    assert len(fake.requests) == sent
    await client.aclose()


def test_reasoning_effort_rules_sans_io() -> None:
    """The same decision without a socket: the catalog layer prepares the request, the Chat
    Completions adapter builds the body from what is left."""
    from llmrelay.providers.adapters.openai_chat import OpenAIChatAdapter

    out = _prepared("openai/gpt-6.2-astra", reasoning_effort="none", temperature=0.3)
    # 'none' is not taken: not sent, so the model reasons and rejects temperature too
    assert (out.params.reasoning_effort, out.params.temperature) == (None, None)
    assert set(out.adjusted) == {"reasoning_effort", "temperature"}
    body = orjson.loads(OpenAIChatAdapter().build_request(out, _dep("openai/gpt-6.2-astra")).body)
    assert "reasoning_effort" not in body
    assert "temperature" not in body
    kept = _prepared("openai/gpt-6-sol", reasoning_effort="none", temperature=0.3)
    assert (kept.params.reasoning_effort, kept.params.temperature) == ("none", 0.3)
    assert not kept.adjusted
    # a user row of an OpenAI model that does not reason: reasoning_effort is implied rejected
    r = registry_on(TODAY, bundled=False)
    r.register({"provider": "openai", "model": "my-chat", "capabilities": {"reasoning": False}})
    t = ChatRequest([Message("user", "hi")], build_params({"reasoning_effort": "low"}))
    assert Catalog(r).prepare(t, _dep("openai/my-chat")).params.reasoning_effort is None
    # rules are checked when loaded, and kept through a round trip
    with pytest.raises(Exception, match="accepts applies to reasoning_effort only"):
        r.register(
            {
                "provider": "a",
                "model": "b",
                "rejected_params": [{"param": "temperature", "accepts": ["low"]}],
            }
        )
    with pytest.raises(Exception, match="unknown value"):
        r.register(
            {
                "provider": "a",
                "model": "c",
                "rejected_params": [{"param": "reasoning_effort", "accepts": ["xhigh"]}],
            }
        )
    with pytest.raises(Exception, match="must be a list of values"):
        r.register(
            {
                "provider": "a",
                "model": "d",
                "rejected_params": [{"param": "reasoning_effort", "accepts": "low"}],
            }
        )
    o3 = registry_on(TODAY).get("openai/o3")
    again = profile_from_row(orjson.loads(orjson.dumps(profile_to_row(o3))))
    assert again.rejected_params == o3.rejected_params
    assert again.rejected_params[0].accepts == ("low", "medium", "high")


def test_row_fields_for_the_adapters() -> None:
    r = registry_on(TODAY)
    assert r.get("openai/gpt-6.1-sol").tools_api == "responses"
    assert r.get("openai/gpt-4.1").tools_api is None
    caps = r.get("anthropic/claude-sonnet-5-5").capabilities
    assert caps.supports_native_json_schema
    assert not r.get(
        "anthropic/claude-3-7-sonnet-20250219"
    ).capabilities.supports_native_json_schema
    with pytest.raises(Exception, match="unknown parameter"):
        r.register({"provider": "a", "model": "b", "rejected_params": [{"param": "tempreature"}]})


# --------------------------------------------------------------------------- catalog check


def test_check_lists_stale_rows_and_upcoming_changes() -> None:
    rows = [
        {
            "provider": "vllm",
            "model": "fresh",
            "verified_at": "2026-12-01",
            "sources": ["https://x"],
        },
        {"provider": "vllm", "model": "old", "verified_at": "2026-09-01", "sources": ["https://x"]},
        {"provider": "vllm", "model": "never"},
        {**SCHEDULED, "verified_at": "2026-12-01"},
        {
            "provider": "vllm",
            "model": "ending",
            "verified_at": "2026-12-01",
            "shutdown_date": "2026-12-20",
            "replacement": "fresh",
        },
    ]
    r = registry_on(TODAY, bundled=False, profiles=rows)
    rep = check_catalog(r, max_age_days=30, within_days=30)
    assert [(s.model, s.age_days) for s in rep.stale] == [("vllm/old", 93), ("vllm/never", None)]
    assert [(c.on, c.model, c.kind) for c in rep.changes] == [
        (date(2026, 12, 20), "vllm/ending", "shutdown"),
        (date(2027, 1, 1), "vllm/dated", "price"),
    ]
    assert rep.actionable
    wider = check_catalog(r, max_age_days=365, within_days=90)
    assert wider.stale[0].model == "vllm/never"
    assert (date(2027, 2, 8), "vllm/dated", "promotion_end") in [
        (c.on, c.model, c.kind) for c in wider.changes
    ]
    calm = check_catalog(
        registry_on(TODAY, bundled=False, profiles=rows[:1]), max_age_days=30, within_days=30
    )
    assert not calm.actionable


def test_catalog_check_cli_on_the_bundled_catalog() -> None:
    set_default_registry(registry_on(TODAY))
    try:
        out = io.StringIO()
        with redirect_stdout(out):
            code = cli_main(["catalog", "check", "--json"])
        doc = orjson.loads(out.getvalue())
        assert code == 8  # gpt-5, gpt-5-mini, gpt-5-nano and o3 shut down on 2026-12-11
        kinds = {(c["model"], c["kind"]) for c in doc["changes"]}
        assert ("openai/gpt-5", "shutdown") in kinds
        assert ("openai/o3", "alias") in kinds
        assert doc["stale"] == []  # every bundled row was verified within 30 days
        out = io.StringIO()
        with redirect_stdout(out):
            code = cli_main(["catalog", "check", "--within", "0", "--max-age", "30"])
        # Mistral Large 4's sale price has no known end: listed until someone re-checks it
        assert code == 8
        text = out.getvalue()
        assert "Promotional prices with no end date (1)" in text
        assert "mistral/mistral-large-4-0" in text
        assert "Taking effect" not in text
        assert "verified more than" not in text
        out = io.StringIO()
        with redirect_stdout(out):
            code = cli_main(["catalog", "check", "--max-age", "5", "--within", "0"])
        assert code == 8
        assert "Rows verified more than 5 days ago" in out.getvalue()
    finally:
        set_default_registry(None)


# --------------------------------------------------------------------------- old files


def test_version_1_catalog_files_are_still_read(tmp_path: Path) -> None:
    f = tmp_path / "old.json"
    f.write_bytes(
        orjson.dumps(
            {
                "schema_version": 1,
                "models": [
                    {
                        "provider": "vllm",
                        "model": "mine",
                        "prices": {"input": 0.5, "output": 1.0, "as_of": "2025-01-01"},
                        "capabilities": {"tools": True},
                    },
                    {"provider": "openai", "model": "gpt-4.1", "prices": {"input": 1.5}},
                ],
            }
        )
    )
    r = LLMRegistry.from_file(f, bundled=True, today=lambda: TODAY)
    p = r.get("vllm/mine")
    assert (p.retirement, p.price_schedule, p.rejected_params, p.verified_at) == (
        "refused",
        (),
        (),
        None,
    )
    assert r.get("openai/gpt-4.1").pricing.input == 1.5  # merged over the bundled row
    # saved again, it is a current-version file that reads back the same
    out = tmp_path / "new.json"
    r.save(out)
    assert orjson.loads(out.read_bytes())["schema_version"] == 3
    again = LLMRegistry.from_file(out, today=lambda: TODAY)
    assert (
        again.get("gemini/gemini-4-argon").price_schedule
        == r.get("gemini/gemini-4-argon").price_schedule
    )
    assert (
        again.get("anthropic/claude-sonnet-5-5").rejected_params
        == r.get("anthropic/claude-sonnet-5-5").rejected_params
    )


def test_a_newer_schema_is_refused_naming_the_fix(tmp_path: Path) -> None:
    f = tmp_path / "future.json"
    f.write_bytes(orjson.dumps({"schema_version": 4, "models": []}))
    with pytest.raises(
        ConfigFileError,
        match=r"reads versions 1, 2, 3\): a newer llmrelay wrote it; upgrade llmrelay",
    ):
        LLMRegistry.from_file(f)


def test_account_tiers_decide_a_tier_specific_retirement(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="llmrelay.catalog")
    p = registry_on(TODAY).get("groq/llama-3.3-70b-versatile")
    # unknown tier: a warning that says how to decide, no error
    registry_on(TODAY).check_lifecycle(p)
    assert "account_tiers" in caplog.records[-1].getMessage()
    caplog.clear()
    registry_mod._warned.clear()
    # a tier that keeps the model: silent
    registry_on(TODAY, account_tiers={"groq": "enterprise"}).check_lifecycle(p)
    assert caplog.records == []
    # a retired tier: refused like a retired model, naming the replacement
    free = registry_on(TODAY, account_tiers={"groq": "free"})
    with pytest.raises(ModelRetiredError, match="for the free tier") as ei:
        free.check_lifecycle(p)
    assert ei.value.replacement == "openai/gpt-oss-120b"
    free.check_lifecycle(p, enforce=False)  # at a mirror: warned, not refused


def test_account_tiers_setting_is_checked() -> None:
    from llmrelay.catalog.lifecycle import tiers_setting

    assert tiers_setting({"account_tiers": {"groq": "developer"}}) == {"groq": "developer"}
    with pytest.raises(ConfigFileError, match="account_tiers must be a table"):
        tiers_setting({"account_tiers": "free"})


@pytest.mark.parametrize(
    "at",
    [
        1e20,
        -1e20,
        -1.0,
        datetime.max.replace(tzinfo=timezone(timedelta(hours=-1))),
        date(9999, 12, 31),
    ],
)
def test_a_time_outside_the_calendar_is_a_typed_error(at: object) -> None:
    with pytest.raises(llmrelay.InvalidRequestError, match="between 1970-01-01 and 9999-12-30"):
        llmrelay.calculate_cost("gemini/gemini-4-argon", USAGE, at=at)  # type: ignore[arg-type]


def test_catalog_check_refuses_a_window_past_a_century(cli: Run) -> None:
    code, _, err = cli("catalog", "check", "--within", "99999999")
    assert code == 2
    assert "--within must be at most 36500 days" in err


def test_check_lists_builtin_aliases_whose_model_has_already_shut_down(cli: Run) -> None:
    """The day after gpt-5, gpt-5-mini, gpt-5-nano and o3 shut down (2026-12-11), their
    built-in aliases point at refused models: the routine check must still name them (the
    window only looked ahead, so they vanished from the report once the date passed)."""
    after = date(2026, 12, 12)
    rep = check_catalog(registry_on(after), max_age_days=3650, within_days=0)
    retired = {(c.model, c.detail.split("'")[1]) for c in rep.retired_aliases}
    assert {
        ("openai/gpt-5", "gpt-5"),
        ("openai/gpt-5-mini", "gpt-5-mini"),
        ("openai/gpt-5-nano", "gpt-5-nano"),
        ("openai/o3", "o3"),
    } <= retired
    assert all(
        c.kind == "alias_retired" and c.on == date(2026, 12, 11) for c in rep.retired_aliases
    )
    assert "point it at gpt-6.1-sol" in next(
        c.detail for c in rep.retired_aliases if c.model == "openai/gpt-5"
    )
    assert rep.actionable
    assert rep.as_dict()["retired_aliases"][0]["kind"] == "alias_retired"
    set_default_registry(registry_on(after))
    try:
        code, out, _ = cli("catalog", "check", "--max-age", "3650", "--within", "0")
    finally:
        set_default_registry(None)
    assert code == 8
    assert "Built-in aliases to models already shut down (" in out
    assert "built-in alias 'o3'" in out


def test_check_lists_stale_embedding_rows_too() -> None:
    """The embedding models' table (data/embeddings.json: prices per 1M input tokens, limits,
    ``source`` and ``checked``) is part of the routine: 31 days after its rows were checked
    they are listed as stale like chat rows (they were never looked at: their prices could go
    stale with ``catalog check`` exiting 0)."""
    later = date(2027, 1, 3)
    rep = check_catalog(registry_on(later, bundled=False), max_age_days=30, within_days=0)
    embedding = {s.model: s for s in rep.stale}
    row = embedding["openai/text-embedding-3-small (embeddings)"]
    assert (row.verified_at, row.age_days) == (date(2026, 12, 3), 31)
    assert "https://openai.com/api/pricing/" in row.sources
    assert rep.actionable
    fresh = check_catalog(registry_on(TODAY, bundled=False), max_age_days=30, within_days=0)
    assert not fresh.actionable
