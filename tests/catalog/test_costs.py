"""Costs: usage priced from the catalog, cached and reasoning tokens apart, unknown != $0."""

from __future__ import annotations

import pytest

import llmrelay
from llmrelay.catalog.costs import (
    Cost,
    Rates,
    calculate_cost,
    estimate_request_cost,
    rates_for,
    to_usage,
)
from llmrelay.catalog.layer import Catalog
from llmrelay.catalog.model_registry import LLMRegistry
from llmrelay.errors import InvalidRequestError
from llmrelay.providers.table import make_deployment
from llmrelay.types import ChatRequest, GenerationParams, Message, Usage

M = 1_000_000


def registry() -> LLMRegistry:
    reg = LLMRegistry(bundled=False, catalog_files=())
    reg.register(
        {
            "provider": "acme",
            "model": "thinker",
            "aliases": ["thinker-2026-01-01"],
            "context_window": 100_000,
            "max_output_tokens": 10_000,
            "prices": {
                "input": 2.0,
                "output": 8.0,
                "cached_input": 0.5,
                "cache_write": 2.5,
                "reasoning": 10.0,
                "source": "https://acme.example/pricing",
                "as_of": "2026-11-24",
            },
        }
    )
    reg.register({"provider": "acme", "model": "mystery", "prices": {"note": "not published"}})
    return reg


def test_plain_usage() -> None:
    c = calculate_cost("acme/thinker", Usage(1000, 500), registry=registry())
    assert c.known
    assert c.usd == pytest.approx(1000 * 2 / M + 500 * 8 / M)
    assert c.input_usd == pytest.approx(1000 * 2 / M)
    assert c.output_usd == pytest.approx(500 * 8 / M)
    assert c.cached_usd == 0
    assert c.reasoning_usd == 0


def test_cached_and_reasoning_tokens_priced_apart() -> None:
    # 1000 input of which 600 cache reads and 100 cache writes; 500 output of which 200 reasoning
    u = Usage(
        input_tokens=1000,
        output_tokens=500,
        cached_tokens=600,
        cache_write_tokens=100,
        reasoning_tokens=200,
    )
    c = calculate_cost("thinker", u, registry=registry())
    assert c.input_usd == pytest.approx((300 * 2.0 + 100 * 2.5) / M)
    assert c.cached_usd == pytest.approx(600 * 0.5 / M)
    assert c.output_usd == pytest.approx(300 * 8.0 / M)
    assert c.reasoning_usd == pytest.approx(200 * 10.0 / M)
    assert c.usd == pytest.approx((300 * 2.0 + 100 * 2.5 + 600 * 0.5 + 300 * 8.0 + 200 * 10.0) / M)


def test_reasoning_defaults_to_the_output_price() -> None:
    reg = LLMRegistry(bundled=False, catalog_files=())
    reg.register({"provider": "acme", "model": "r", "prices": {"input": 1.0, "output": 4.0}})
    c = calculate_cost("acme/r", Usage(0, 100, reasoning_tokens=100), registry=reg)
    assert c.reasoning_usd == pytest.approx(100 * 4.0 / M)
    # and cached tokens at the input price when no cache price is published
    c2 = calculate_cost("acme/r", Usage(100, 0, cached_tokens=100), registry=reg)
    assert c2.cached_usd == pytest.approx(100 * 1.0 / M)


def test_unknown_prices_are_typed_unknown_never_zero() -> None:
    reg = registry()
    c = calculate_cost("acme/mystery", Usage(10, 10), registry=reg)
    assert (c.usd, c.known) == (None, False)
    assert "no price for acme/mystery" in (c.reason or "")
    assert "not published" in (c.reason or "")
    c2 = calculate_cost("acme/nothing-like-this", {"input_tokens": 5}, registry=reg)
    assert (c2.usd, c2.known) == (None, False)
    assert "not in the catalog" in (c2.reason or "")
    # summing a known and an unknown cost stays unknown
    total = calculate_cost("acme/thinker", Usage(1, 1), registry=reg) + c
    assert (total.usd, total.known) == (None, False)


def test_usage_as_a_dict_in_every_spelling() -> None:
    reg = registry()
    ours = calculate_cost(
        "acme/thinker",
        {"input_tokens": 1000, "output_tokens": 500, "cached_tokens": 600, "reasoning_tokens": 200},
        registry=reg,
    )
    openai = calculate_cost(
        "acme/thinker",
        {
            "prompt_tokens": 1000,
            "completion_tokens": 500,
            "total_tokens": 1500,
            "prompt_tokens_details": {"cached_tokens": 600},
            "completion_tokens_details": {"reasoning_tokens": 200},
        },
        registry=reg,
    )
    assert ours == openai
    # Anthropic reports cache reads and writes beside input_tokens
    anthropic = to_usage(
        {
            "input_tokens": 300,
            "cache_read_input_tokens": 600,
            "cache_creation_input_tokens": 100,
            "output_tokens": 5,
        }
    )
    assert anthropic == Usage(1000, 5, cached_tokens=600, cache_write_tokens=100)


@pytest.mark.parametrize(
    ("usage", "match"),
    [
        ({"input_tokens": -1}, "non-negative"),
        ({"input_tokens": 1.5}, "whole number"),
        ({"input_tokens": "12"}, "non-negative integer"),
        ({"tokens": 3}, "unknown usage field 'tokens'"),
        ([1, 2], "dict of token counts"),
    ],
)
def test_bad_usage_is_a_typed_error(usage: object, match: str) -> None:
    with pytest.raises(InvalidRequestError, match=match):
        calculate_cost("acme/thinker", usage, registry=registry())  # type: ignore[arg-type]


def test_public_calculate_cost_uses_the_bundled_prices() -> None:
    profile = llmrelay.LLMRegistry().get("openai/gpt-4.1-mini")
    p = profile.pricing
    assert p.input is not None
    assert p.output is not None
    c = llmrelay.calculate_cost("openai/gpt-4.1-mini", {"input_tokens": 1200, "output_tokens": 300})
    assert isinstance(c, llmrelay.Cost)
    assert c.usd == pytest.approx((1200 * p.input + 300 * p.output) / M)
    assert llmrelay.calculate_cost("gpt-4.1-mini", Usage(1200, 300)) == c  # bare id
    assert llmrelay.calculate_cost(profile, Usage(1200, 300)) == c  # a profile


def test_catalog_layer_cost() -> None:
    layer = Catalog(registry())
    dep = make_deployment("openai", "gpt-x", api_key="k")
    unknown = layer.cost(dep, Usage(5, 5))
    assert (unknown.usd, unknown.known) == (None, False)
    assert "no price for openai/gpt-x" in (unknown.reason or "")
    reg = registry()
    reg.register({"provider": "openai", "model": "gpt-x", "prices": {"input": 1.0, "output": 2.0}})
    assert Catalog(reg).cost(dep, Usage(10, 10)).usd == pytest.approx(30 / M)


def test_estimate_request_cost_for_budgets() -> None:
    reg = registry()
    dep = make_deployment("openai", "gpt-x", api_key="k")
    reg.register(
        {
            "provider": "openai",
            "model": "gpt-x",
            "context_window": 1000,
            "max_output_tokens": 200,
            "tokenizer": "o200k_base",
            "prices": {"input": 1.0, "output": 2.0, "reasoning": 3.0},
        }
    )
    req = ChatRequest([Message("user", "hello world")], GenerationParams(max_tokens=50))
    prompt = llmrelay.count_message_tokens("hello world", "openai/gpt-x", encoding="o200k_base")
    assert estimate_request_cost(req, dep, registry=reg) == pytest.approx(
        (prompt * 1.0 + 50 * 3.0) / M
    )
    # max_tokens unset: the model's maximum output
    req2 = ChatRequest([Message("user", "hello world")], GenerationParams())
    assert estimate_request_cost(req2, dep, registry=reg) == pytest.approx(
        (prompt * 1.0 + 200 * 3.0) / M
    )
    unknown = make_deployment("openai", "not-in-catalog", api_key="k")
    assert estimate_request_cost(req, unknown, registry=reg) is None


def test_rates_cost_is_cheap_and_pure() -> None:
    rates = Rates(1e-6, 2e-6, 5e-7, None, None, "x/y")
    u = Usage(100, 50, cached_tokens=20, reasoning_tokens=10)
    assert rates.cost(u) == rates.cost(u)
    assert rates.cost(u).usd == pytest.approx((80 * 1 + 20 * 0.5 + 40 * 2 + 10 * 2) / M)
    assert Rates(None, 1.0, None, None, None, "x/y", "no price").cost(u) == Cost.unknown("no price")


def test_costs_are_computed_once_per_model(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = registry()
    calls = []
    real = LLMRegistry.lookup

    def counting(self: LLMRegistry, provider: str | None, model: str) -> object:
        calls.append(model)
        return real(self, provider, model)

    monkeypatch.setattr(LLMRegistry, "lookup", counting)
    for _ in range(5):
        rates_for(reg, "acme", "thinker")
    assert calls == ["thinker"]
    reg.register({"provider": "acme", "model": "thinker", "prices": {"input": 3.0}})
    rates = rates_for(reg, "acme", "thinker")  # a change clears the cache
    assert rates is not None
    assert rates.input == pytest.approx(3.0 / M)
    assert calls == ["thinker", "thinker"]
