"""Capability detection against the fake upstream's model lists (OpenAI-compatible, Anthropic,
Gemini), merged with the catalog."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

import llmrelay
from llmrelay.catalog.detect import ModelCapabilityDetectorFactory as Factory
from llmrelay.catalog.model_registry import LLMRegistry
from llmrelay.errors import AllAttemptsFailedError, AuthenticationError, InvalidResponseError
from llmrelay.testing.fake import FakeUpstream
from llmrelay.transport.base import HttpRequest, HttpResponse, MockTransport, Transport
from llmrelay.transport.native import default_transport

from ..conftest import CANARY_KEY

MODELS = (
    "gpt-4.1-mini",
    "gpt-4.1-2026-02-02",
    "my-local-model",
    "text-embedding-3-small",
    "claude-sonnet-4-5",
    "claude-experimental-9",
    "gemini-2.5-flash",
    "gemini-9-ultra",
)


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(api_key=CANARY_KEY, models=MODELS) as f:
        yield f


@pytest.fixture
async def transport() -> AsyncIterator[Transport]:
    t = default_transport()
    yield t
    await t.aclose()


def fresh() -> LLMRegistry:
    return LLMRegistry(catalog_files=())


async def test_openai_compatible_models_list(upstream: FakeUpstream, transport: Transport) -> None:
    reg = fresh()
    known_price = reg.get("openai/gpt-4.1-mini").pricing
    found = await Factory.register_openai_models(
        CANARY_KEY, base_url=upstream.openai_base_url, registry=reg, transport=transport
    )
    req = upstream.requests[-1]
    assert (req.method, req.path) == ("GET", "/v1/models")
    assert req.headers["authorization"] == f"Bearer {CANARY_KEY}"
    ids = [p.id for p in found]
    assert "openai/text-embedding-3-small" not in ids  # not a chat model
    assert "openai/gpt-4.1-mini" in ids
    # a known model keeps its curated row (price and all)
    assert reg.get("openai/gpt-4.1-mini").pricing == known_price
    # a dated snapshot inherits its model's row
    snap = reg.get("openai/gpt-4.1-2026-02-02")
    assert snap.pricing.input == reg.get("openai/gpt-4.1").pricing.input
    assert snap.origin == "detected"
    # an unknown model: registered, with an unknown price (never $0)
    local = reg.get("openai/my-local-model")
    assert local.origin == "detected"
    assert local.pricing.input is None
    cost = llmrelay.calculate_cost("openai/my-local-model", {"input_tokens": 10}, registry=reg)
    assert (cost.usd, cost.known) == (None, False)
    assert "not in the catalog" in (cost.reason or "")


async def test_anthropic_models_list(upstream: FakeUpstream, transport: Transport) -> None:
    reg = fresh()
    found = await Factory.register_anthropic_models(
        CANARY_KEY, base_url=upstream.anthropic_base_url, registry=reg, transport=transport
    )
    req = upstream.requests[-1]
    assert req.path == "/v1/models"
    assert req.query["limit"] == "1000"
    assert req.headers["x-api-key"] == CANARY_KEY
    assert req.headers["anthropic-version"] == "2023-06-01"
    assert {p.name for p in found} == set(MODELS)  # Anthropic's list has no embeddings filter
    assert reg.get("anthropic/claude-sonnet-4-5").pricing.input == 3.0
    new = reg.get("anthropic/claude-experimental-9")
    assert new.display_name == "Claude Experimental 9"
    assert new.pricing.input is None


async def test_gemini_models_list(upstream: FakeUpstream, transport: Transport) -> None:
    reg = fresh()
    await Factory.register_gemini_models(
        CANARY_KEY, base_url=upstream.gemini_base_url, registry=reg, transport=transport
    )
    req = upstream.requests[-1]
    assert req.path == "/v1beta/models"
    assert req.headers["x-goog-api-key"] == CANARY_KEY
    ultra = reg.get("gemini/gemini-9-ultra")
    caps = ultra.capabilities
    assert (caps.max_context_window, caps.max_output_tokens) == (1048576, 65536)
    assert caps.supports_reasoning  # "thinking": true
    assert ultra.pricing.input is None
    assert reg.get("gemini/gemini-2.5-flash").pricing.input == 0.30  # curated row kept


async def test_register_all_models_as_the_seed_shows(upstream: FakeUpstream) -> None:
    reg = fresh()
    out = await Factory.register_all_models(
        anthropic_api_key=CANARY_KEY,
        openai_api_key=CANARY_KEY,
        gemini_api_key=CANARY_KEY,
        base_urls={
            "anthropic": upstream.anthropic_base_url,
            "openai": upstream.openai_base_url,
            "gemini": upstream.gemini_base_url,
        },
        registry=reg,
    )
    assert out is reg
    assert {"openai/my-local-model", "anthropic/claude-experimental-9"} <= {
        p.id for p in reg.list()
    }
    assert "gemini/gemini-9-ultra" in reg
    assert sorted(r.path for r in upstream.requests) == [
        "/v1/models",
        "/v1/models",
        "/v1beta/models",
    ]


async def test_register_model_and_the_seed_helper(upstream: FakeUpstream) -> None:
    reg = fresh()
    p = await Factory.register_model(
        "openai", "my-local-model", CANARY_KEY, base_url=upstream.openai_base_url, registry=reg
    )
    assert p.id == "openai/my-local-model"
    with pytest.raises(llmrelay.LLMRelayError, match="does not list 'claude-3-5-sonnet-latest'"):
        await Factory.register_claude_3_5_sonnet_latest(
            CANARY_KEY, base_url=upstream.anthropic_base_url, registry=reg
        )


async def test_wrong_key_is_a_typed_error_without_the_key(upstream: FakeUpstream) -> None:
    wrong = "sk-wrong-" + CANARY_KEY[::-1]
    with pytest.raises(AuthenticationError) as ei:
        await Factory.register_openai_models(
            wrong, base_url=upstream.openai_base_url, registry=fresh()
        )
    assert wrong not in str(ei.value)
    assert wrong not in repr(ei.value.body)
    with pytest.raises(AllAttemptsFailedError) as group:
        await Factory.register_all_models(
            anthropic_api_key=wrong,
            openai_api_key=wrong,
            base_urls={
                "anthropic": upstream.anthropic_base_url,
                "openai": upstream.openai_base_url,
            },
            registry=fresh(),
        )
    assert len(group.value.exceptions) == 2
    assert wrong not in str(group.value)


async def test_no_key_at_all() -> None:
    with pytest.raises(llmrelay.LLMRelayError, match="at least one API key"):
        await Factory.register_all_models(registry=fresh())


def _json(data: object) -> HttpResponse:
    return HttpResponse(200, {"content-type": "application/json"}, orjson.dumps(data))


async def test_anthropic_and_gemini_paging() -> None:
    def handler(request: HttpRequest) -> HttpResponse:
        url = urlsplit(request.url)
        q = parse_qs(url.query)
        if url.path == "/v1/models":
            if "after_id" not in q:
                return _json({"data": [{"id": "a-1"}], "has_more": True, "last_id": "a-1"})
            assert q["after_id"] == ["a-1"]
            return _json(
                {"data": [{"id": "a-2", "max_input_tokens": 1000, "max_tokens": 100}],
                 "has_more": False, "last_id": "a-2"}
            )  # fmt: skip
        if "pageToken" not in q:
            return _json(
                {"models": [{"name": "models/g-1", "supportedGenerationMethods": ["embedContent"]}],
                 "nextPageToken": "p2"}
            )  # fmt: skip
        return _json(
            {"models": [{"name": "models/g-2", "inputTokenLimit": 2000, "outputTokenLimit": 200,
                         "supportedGenerationMethods": ["generateContent"]}]}
        )  # fmt: skip

    transport = MockTransport(handler)
    reg = LLMRegistry(bundled=False, catalog_files=())
    a = await Factory.register_anthropic_models(
        "k", base_url="https://anthropic.test", registry=reg, transport=transport
    )
    g = await Factory.register_gemini_models(
        "k", base_url="https://gemini.test/v1beta", registry=reg, transport=transport
    )
    assert [p.name for p in a] == ["a-1", "a-2"]
    assert reg.get("anthropic/a-2").capabilities.max_context_window == 1000
    assert [p.name for p in g] == ["g-2"]  # g-1 cannot generate content
    assert reg.get("gemini/g-2").capabilities.max_output_tokens == 200


async def test_openai_compatible_vendor_extensions() -> None:
    listing = {
        "data": [
            {
                "id": "vendor/model-a",
                "context_length": 32768,
                "top_provider": {"max_completion_tokens": 4096},
                "pricing": {"prompt": "0.000001", "completion": "0.000002"},
                "architecture": {"input_modalities": ["text"]},
                "supported_parameters": ["temperature"],
                "shutdown_date": "2027-02-01",
            },
            {"id": "vendor/model-b", "capabilities": {"vision": True, "function_calling": False}},
        ]
    }
    transport = MockTransport(lambda request: _json(listing))
    reg = LLMRegistry(bundled=False, catalog_files=())
    await Factory.register_provider_models("openrouter", "k", registry=reg, transport=transport)
    a = reg.get("openrouter/vendor/model-a")
    assert a.capabilities.max_context_window == 32768
    assert a.capabilities.max_output_tokens == 4096
    assert (a.pricing.input, a.pricing.output) == (pytest.approx(1.0), pytest.approx(2.0))
    assert not a.capabilities.supports_tools
    assert not a.capabilities.supports_vision
    assert str(a.shutdown_date) == "2027-02-01"
    b = reg.get("openrouter/vendor/model-b")
    assert b.capabilities.supports_vision
    assert not b.capabilities.supports_tools
    assert transport.requests[0].url == "https://openrouter.ai/api/v1/models"


@pytest.mark.parametrize(
    "body",
    [b"<html>oops</html>", b'{"nothing": []}', b'{"data": [{"name": "no id"}]}'],
)
async def test_malformed_model_lists_are_typed_errors(body: bytes) -> None:
    transport = MockTransport(lambda request: HttpResponse(200, {}, body))
    with pytest.raises(InvalidResponseError):
        await Factory.register_openai_models(
            "k", registry=LLMRegistry(bundled=False, catalog_files=()), transport=transport
        )
