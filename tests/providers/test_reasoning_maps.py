"""``reasoning_effort`` for Anthropic and Gemini follows the catalog row's ``reasoning`` map
(``ReasoningMap``): each style sans-IO, a user-registered row changing what is sent (through the
catalog layer and over a socket), the bundled rows agreeing with the adapters' family defaults
(the fallback for models the catalog does not know), and bad maps refused when loaded."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

import llmrelay
from llmrelay.catalog.layer import Catalog
from llmrelay.catalog.model_registry import LLMRegistry, default_registry
from llmrelay.catalog.persistence import profile_from_row, profile_to_row
from llmrelay.core.engine import Engine
from llmrelay.errors import ConfigFileError, ConfigurationError
from llmrelay.providers.adapters import anthropic_models, gemini
from llmrelay.providers.adapters.anthropic_messages import AnthropicMessagesAdapter
from llmrelay.providers.adapters.gemini import GeminiAdapter
from llmrelay.providers.table import make_deployment
from llmrelay.testing.fake import FakeUpstream
from llmrelay.types import ChatRequest, ReasoningMap, build_params, normalize_messages

from ..conftest import CANARY_KEY
from .sansio import deployment

EFFORT = ReasoningMap("effort", {"low": "low", "high": "max"}, {"medium": "high"})


def request(effort: str, rmap: ReasoningMap | None = None, **params: Any) -> ChatRequest:
    p = build_params({"reasoning_effort": effort, **params})
    return ChatRequest(normalize_messages("hi"), p, False, None, rmap)


def anthropic(req: ChatRequest, model: str = "claude-sonnet-4-5") -> tuple[Any, dict[str, str]]:
    http = AnthropicMessagesAdapter().build_request(req, deployment("anthropic", model))
    return orjson.loads(http.body), http.adjusted


def gemini_body(req: ChatRequest, model: str = "gemini-2.5-flash") -> tuple[Any, dict[str, str]]:
    http = GeminiAdapter().build_request(req, deployment("gemini", model))
    body = orjson.loads(http.body)
    return body.get("generationConfig", {}).get("thinkingConfig"), http.adjusted


# ------------------------------------------------------------------------- each style, sans-IO


def test_anthropic_effort_style_from_the_map() -> None:
    # claude-sonnet-4-5's family default is a thinking budget: the map wins.
    body, adjusted = anthropic(request("high", EFFORT))
    assert body["thinking"] == {"type": "adaptive", "display": "summarized"}
    assert body["output_config"] == {"effort": "max"}
    assert "reasoning_effort" not in adjusted
    body, adjusted = anthropic(request("medium", EFFORT))
    assert body["output_config"] == {"effort": "max"}
    assert adjusted["reasoning_effort"] == "sent as effort 'max': this model takes no 'medium'"
    body, adjusted = anthropic(request("minimal", EFFORT))
    assert "thinking" not in body
    assert adjusted["reasoning_effort"].startswith("dropped: this model takes no 'minimal'")
    body, adjusted = anthropic(request("none", EFFORT))
    assert "thinking" not in body  # Anthropic's thinking is off unless asked for
    assert adjusted == {}


def test_anthropic_budget_style_from_the_map() -> None:
    rmap = ReasoningMap("budget", {"low": 3000, "high": 20000}, {"none": "low"})
    body, adjusted = anthropic(request("high", rmap), model="claude-opus-4-6")
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 20000}
    assert body["max_tokens"] == 4096 + 20000
    assert "output_config" not in body
    body, adjusted = anthropic(request("none", rmap), model="claude-opus-4-6")
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 3000}
    assert adjusted["reasoning_effort"].startswith("sent as a 3000-token budget: this model always")


def test_anthropic_none_style_from_the_map() -> None:
    body, adjusted = anthropic(request("high", ReasoningMap("none")), model="claude-opus-4-6")
    assert "thinking" not in body
    assert adjusted["reasoning_effort"] == "dropped: this model has no extended thinking"


def test_gemini_level_style_from_the_map() -> None:
    rmap = ReasoningMap("level", {"low": "LOW", "high": "HIGH"}, {"medium": "high"})
    tc, adjusted = gemini_body(request("medium", rmap))  # 2.5 Flash's default is a budget
    assert tc == {"thinkingLevel": "HIGH", "includeThoughts": True}
    assert adjusted["reasoning_effort"] == "sent as high: gemini-2.5-flash takes low, high"
    tc, adjusted = gemini_body(request("none", rmap))
    assert tc is None
    assert adjusted["reasoning_effort"] == "dropped: gemini-2.5-flash cannot turn thinking off"


def test_gemini_budget_style_from_the_map() -> None:
    rmap = ReasoningMap("budget", {"low": 700, "high": 9000}, off=0)
    tc, _ = gemini_body(request("high", rmap), model="gemini-3.5-flash")  # default: levels
    assert tc == {"thinkingBudget": 9000, "includeThoughts": True}
    tc, _ = gemini_body(request("none", rmap), model="gemini-3.5-flash")
    assert tc == {"thinkingBudget": 0}
    tc, adjusted = gemini_body(request("medium", rmap), model="gemini-3.5-flash")
    assert tc is None
    assert adjusted["reasoning_effort"].startswith("dropped: gemini-3.5-flash takes no medium")


def test_gemini_none_style_from_the_map() -> None:
    tc, adjusted = gemini_body(request("low", ReasoningMap("none")))
    assert tc is None
    assert adjusted["reasoning_effort"] == "dropped: gemini-2.5-flash does not think"


def test_without_a_map_the_family_default_applies() -> None:
    body, _ = anthropic(request("high"))
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 16384}
    tc, _ = gemini_body(request("high"))
    assert tc == {"thinkingBudget": 24576, "includeThoughts": True}
    tc, adjusted = gemini_body(request("high"), model="gemini-1.5-flash")
    assert tc is None
    assert "no known thinking setting" in adjusted["reasoning_effort"]


# ------------------------------------------------------------------- the catalog's rows decide

ROW = {
    "provider": "anthropic",
    "model": "claude-haiku-4-5",
    "reasoning": {
        "style": "effort",
        "values": {"low": "low", "medium": "medium", "high": "high"},
        "source": "https://platform.claude.com/docs/en/build-with-claude/effort",
    },
}


def test_a_registered_row_changes_the_mapping_through_the_catalog_layer() -> None:
    dep = make_deployment("anthropic", "claude-haiku-4-5", api_key="k")
    req = ChatRequest(normalize_messages("hi"), build_params({"reasoning_effort": "low"}))
    bundled = Catalog(LLMRegistry()).prepare(req, dep)
    assert bundled.reasoning is not None
    assert bundled.reasoning.style == "budget"
    registry = LLMRegistry()
    registry.register(ROW)
    mine = Catalog(registry).prepare(req, dep)
    assert mine.reasoning is not None
    assert mine.reasoning.style == "effort"
    body, _ = anthropic(mine)
    assert body["output_config"] == {"effort": "low"}
    # A call without an effort carries no map (nothing to map; the lean path stays lean).
    plain = ChatRequest(normalize_messages("hi"), build_params({"max_tokens": 5}))
    assert Catalog(registry).prepare(plain, dep).reasoning is None


async def test_a_registered_row_changes_what_is_sent_over_a_socket(fake: FakeUpstream) -> None:
    kw: dict[str, Any] = {"api_key": CANARY_KEY, "base_url": fake.anthropic_base_url}
    client = llmrelay.Client()
    await client.achat("anthropic/claude-haiku-4-5", "hi", reasoning_effort="medium", **kw)
    assert fake.requests[-1].body["thinking"] == {"type": "enabled", "budget_tokens": 8192}
    await client.aclose()
    registry = LLMRegistry()
    registry.register(ROW)
    client = llmrelay.Client(engine=Engine(catalog=Catalog(registry)))
    await client.achat("anthropic/claude-haiku-4-5", "hi", reasoning_effort="medium", **kw)
    body = fake.requests[-1].body
    assert body["thinking"] == {"type": "adaptive", "display": "summarized"}
    assert body["output_config"] == {"effort": "medium"}
    await client.aclose()


# ------------------------------------------------------------------------ the bundled rows


def _family_default(provider: str, model: str) -> ReasoningMap:
    if provider == "anthropic":
        return anthropic_models.thinking_map(model)
    return gemini.thinking_map(model) or ReasoningMap("none")


def test_bundled_rows_agree_with_the_family_defaults() -> None:
    # The defaults are the fallback for models the catalog does not know: a bundled row that
    # says otherwise must be a deliberate, sourced change (update this test with it).
    rows = [p for p in default_registry().list() if p.provider in ("anthropic", "gemini")]
    assert len(rows) > 20
    for p in rows:
        m = p.reasoning
        assert m is not None, p.id
        assert (m.source or "").startswith("https://"), p.id
        d = _family_default(p.provider, p.name)
        assert (m.style, dict(m.values), dict(m.nearest), m.off) == (
            d.style,
            dict(d.values),
            dict(d.nearest),
            d.off,
        ), p.id


def test_a_map_survives_the_row_form() -> None:
    p = profile_from_row(ROW)
    assert p.reasoning is not None
    again = profile_from_row(profile_to_row(p))
    assert again.reasoning == p.reasoning


class _Hostile:
    """A nearest key whose formatting raises (a register() caller's dict may hold anything)."""

    def __format__(self, spec: str) -> str:
        raise RuntimeError("formatted")

    def __repr__(self) -> str:
        raise RuntimeError("repr'd")


@pytest.mark.parametrize(
    ("reasoning", "says"),
    [
        ({"style": "thinking"}, "reasoning.style must be one of"),
        ({"style": "budget", "values": {"low": "LOW"}}, "reasoning.values.low must be a number"),
        ({"style": "budget", "values": {"low": True}}, "must be a number of tokens"),
        ({"style": "level", "values": {"low": 3}}, "reasoning.values.low must be the provider"),
        ({"style": "level", "values": {}}, "reasoning.values must map"),
        ({"style": "level", "values": {"huge": "X"}}, "unknown effort 'huge'"),
        ({"style": "level", "values": {"low": "L"}, "nearest": {"high": "max"}}, "nearest.high"),
        ({"style": "level", "values": {"low": "L"}, "nearest": {"low": "low"}}, "nearest: 'low'"),
        ({"style": "level", "values": {"low": "L"}, "nearest": {_Hostile(): "low"}}, "_Hostile"),
        ({"style": "effort", "values": {"low": "low"}, "off": "x"}, "off applies to"),
        ({"style": "none", "values": {"low": "low"}}, "style 'none' takes no values"),
        ({"style": "level", "values": {"low": "L"}, "budget": 3}, "unknown field(s) budget"),
        ({"style": "level", "values": {"low": "L"}, "source": 3}, "source must be a string"),
        ("effort", "reasoning must be a table"),
    ],
)
def test_bad_maps_are_refused_when_loaded(reasoning: Any, says: str) -> None:
    with pytest.raises(ConfigFileError) as info:
        profile_from_row({**ROW, "reasoning": reasoning})
    assert says in info.value.message
    with pytest.raises(ConfigurationError):
        LLMRegistry().register({**ROW, "reasoning": reasoning})


def test_the_callers_dicts_changed_after_register_never_change_the_map() -> None:
    values = {"low": "low", "medium": "medium", "high": "high"}
    nearest = {"minimal": "low"}
    registry = LLMRegistry()
    registry.register(
        {**ROW, "reasoning": {"style": "effort", "values": values, "nearest": nearest}}
    )
    values["low"] = 12345  # type: ignore[assignment]  # would never pass validation
    values["bogus"] = "x"
    nearest["none"] = "nope"
    p = registry.lookup("anthropic", "claude-haiku-4-5")
    assert p is not None
    assert p.reasoning is not None
    assert dict(p.reasoning.values) == {"low": "low", "medium": "medium", "high": "high"}
    assert dict(p.reasoning.nearest) == {"minimal": "low"}


@pytest.mark.parametrize(
    ("provider", "model", "rmap"),
    [
        ("anthropic", "claude-haiku-4-5", ReasoningMap("level", {"low": "LOW"})),
        ("gemini", "gemini-2.5-flash", ReasoningMap("effort", {"low": "low"})),
    ],
)
def test_a_map_of_another_apis_style_is_refused_before_sending(
    provider: str, model: str, rmap: ReasoningMap
) -> None:
    """A row's map that validates but names a style the provider's API does not take (a
    Gemini ``level`` map on an Anthropic row would send ``output_config.effort: "LOW"``; an
    Anthropic ``effort`` map on a Gemini row ``thinkingBudget: "low"``)."""
    registry = LLMRegistry()
    registry.register({"provider": provider, "model": model, "reasoning": rmap.to_row()})
    dep = make_deployment(provider, model, api_key="k")
    req = Catalog(registry).prepare(request("low"), dep)
    assert req.reasoning == rmap
    build = anthropic if provider == "anthropic" else gemini_body
    with pytest.raises(ConfigurationError, match=r"reasoning map .* style 'level'|style 'effort'"):
        build(req, model)
