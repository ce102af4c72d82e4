"""Requests checked against the model before sending, through the engine, against the fake
upstream: images, tools, the context window, max_tokens, retired models, costs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from datetime import date

import pytest

import llmrelay
from llmrelay.catalog import model_registry as registry_mod
from llmrelay.catalog.layer import Catalog
from llmrelay.catalog.model_registry import LLMRegistry
from llmrelay.core.engine import Engine
from llmrelay.core.routing import moves_on
from llmrelay.errors import (
    ContextWindowExceededError,
    ModelRetiredError,
    UnsupportedCapabilityError,
)
from llmrelay.testing.fake import FakeUpstream, Reply
from llmrelay.transport.base import HttpRequest, HttpResponse, MockTransport

from ..conftest import CANARY_KEY

IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
TEXT_ONLY = "groq/openai/gpt-oss-120b"  # no vision in the catalog
VISION = "openai/gpt-4.1-mini"
WEATHER = {"name": "weather", "parameters": {"type": "object", "properties": {}}}

Point = Callable[[FakeUpstream], FakeUpstream]


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_mod, "_warned", set())


@pytest.fixture
async def client(fake: FakeUpstream, point_at: Point) -> AsyncIterator[llmrelay.Client]:
    point_at(fake)
    c = llmrelay.Client()
    yield c
    await c.aclose()


def with_image(text: str = "what is this?") -> list[dict[str, object]]:
    return [{"role": "user", "content": [{"type": "text", "text": text}, IMAGE]}]


async def test_image_to_a_text_only_model_is_a_typed_error(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    with pytest.raises(UnsupportedCapabilityError, match="does not accept images") as ei:
        await client.achat(TEXT_ONLY, with_image())
    assert ei.value.capability == "vision"
    assert (ei.value.provider, ei.value.model) == ("groq", "openai/gpt-oss-120b")
    assert fake.requests == []  # nothing was sent
    assert ei.value.trace[0].outcome == "skipped"


async def test_with_a_fallback_chain_the_next_model_answers(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    r = await client.achat(TEXT_ONLY, with_image("describe"), fallbacks=[VISION])
    assert r.text == "Echo: describe"
    assert (r.provider, r.model) == ("openai", "gpt-4.1-mini")
    assert [a.outcome for a in r.trace] == ["skipped", "success"]
    assert r.trace[0].error == "UnsupportedCapabilityError"
    assert [q.body["model"] for q in fake.requests] == ["gpt-4.1-mini"]


async def test_tools_to_a_model_without_tools(fake: FakeUpstream, point_at: Point) -> None:
    # every current bundled model calls tools: a catalog file describes one that does not
    point_at(fake)
    registry = LLMRegistry(
        catalog_files=(),
        profiles=[{"provider": "deepseek", "model": "no-tools", "capabilities": {"tools": False}}],
    )
    client = llmrelay.Client(engine=Engine(catalog=Catalog(registry)))
    try:
        with pytest.raises(UnsupportedCapabilityError, match="does not support tools") as ei:
            await client.achat("deepseek/no-tools", "weather?", tools=[WEATHER])
        assert ei.value.capability == "tools"
        assert fake.requests == []
        r = await client.achat(
            "deepseek/no-tools", "weather?", tools=[WEATHER], fallbacks=["deepseek/deepseek-flash"]
        )
        assert r.model == "deepseek-flash"
    finally:
        await client.aclose()


async def test_context_window_exceeded_before_sending(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    prompt = "word " * 130_000  # 130,000 o200k tokens: over gpt-4o-mini's 128,000
    with pytest.raises(ContextWindowExceededError, match="128000-token context window") as ei:
        await client.achat("openai/gpt-4o-mini", prompt)
    assert "is 130" in ei.value.message  # counted, not guessed: the exact prompt size
    assert fake.requests == []
    # the context-window chain takes over
    r = await client.achat(
        "openai/gpt-4o-mini", prompt, context_window_fallbacks=["openai/gpt-4.1-mini"]
    )
    assert r.model == "gpt-4.1-mini"
    assert len(fake.requests) == 1


async def test_prompt_plus_max_tokens_over_the_window(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    prompt = "word " * 120_000
    await client.achat("openai/gpt-4o-mini", prompt, max_tokens=100)  # fits
    with pytest.raises(ContextWindowExceededError, match="plus max_tokens=16384"):
        await client.achat("openai/gpt-4o-mini", prompt, max_tokens=16_384)
    assert len(fake.requests) == 1


async def test_max_tokens_above_the_model_maximum_is_clamped_and_said(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    r = await client.achat("openai/gpt-4o-mini", "hi", max_tokens=50_000)
    assert fake.requests[-1].body["max_completion_tokens"] == 16_384
    assert r.adjusted_params["max_tokens"] == "clamped to 16384: the model's maximum output"
    s = client.astream("openai/gpt-4o-mini", "hi", max_tokens=50_000)
    chunks = [c async for c in s]
    assert fake.requests[-1].body["max_completion_tokens"] == 16_384
    final = chunks[-1].response
    assert final is not None
    assert "max_tokens" in final.adjusted_params


async def test_streams_are_checked_too(fake: FakeUpstream, client: llmrelay.Client) -> None:
    with pytest.raises(UnsupportedCapabilityError):
        async for _ in client.astream(TEXT_ONLY, with_image()):
            pass
    assert fake.requests == []


async def test_unknown_models_pass_through_unchecked(
    fake: FakeUpstream, client: llmrelay.Client
) -> None:
    r = await client.achat("openai/ft:gpt-4o-mini:acme::xyz", with_image("ok"), max_tokens=10**6)
    assert r.text == "Echo: ok"
    assert fake.requests[-1].body["max_completion_tokens"] == 10**6
    assert r.cost is not None
    assert (r.cost.usd, r.cost.known) == (None, False)
    assert "no price for openai/ft:gpt-4o-mini:acme::xyz" in r.cost.reason


async def test_every_response_has_a_cost(fake: FakeUpstream, client: llmrelay.Client) -> None:
    fake.push(Reply.ok("fine", input_tokens=1000, output_tokens=200, cached_tokens=400))
    r = await client.achat(VISION, "price me")
    expected = llmrelay.calculate_cost(VISION, r.usage)
    assert r.usage.cached_tokens == 400
    assert r.cost == expected
    assert r.cost.known
    assert r.cost.usd is not None
    assert r.cost.usd > 0
    # a retry's usage counts too
    fake.push(
        Reply.error(500, "boom"),
        Reply.ok("again", input_tokens=10, output_tokens=5),
    )
    r2 = await client.achat(VISION, "retry me", retries=1)
    assert r2.cost == llmrelay.calculate_cost(VISION, r2.total_usage or r2.usage)


async def test_deprecated_model_warns_once(
    fake: FakeUpstream, client: llmrelay.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="llmrelay.catalog")
    for _ in range(3):
        await client.achat(VISION, "hi")  # gpt-4.1-mini: deprecated, shuts down 2027-01-14
    records = [r for r in caplog.records if r.name == "llmrelay.catalog"]
    assert len(records) == 1
    assert "openai/gpt-4.1-mini is deprecated" in records[0].getMessage()
    assert "migrate to" in records[0].getMessage()


async def test_retired_model_at_a_mirror_passes_with_a_warning(
    fake: FakeUpstream, client: llmrelay.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="llmrelay.catalog")
    r = await client.achat("groq/llama3-8b-8192", "still served here")
    assert r.text == "Echo: still served here"
    assert any("was shut down" in rec.getMessage() for rec in caplog.records)


def _refuse(request: HttpRequest) -> HttpResponse:
    raise AssertionError(f"nothing may be sent, got {request!r}")


async def test_retired_model_at_the_provider_is_refused_before_sending(keys: str) -> None:
    transport = MockTransport(_refuse)
    engine = Engine(transport, catalog=Catalog())
    client = llmrelay.Client(engine=engine)
    with pytest.raises(ModelRetiredError, match="shut down on 2025-08-30") as ei:
        await client.achat("groq/llama3-8b-8192", "hello")
    assert ei.value.replacement == "openai/gpt-oss-20b"
    assert transport.requests == []
    assert moves_on(ei.value)
    await client.aclose()


async def test_retired_model_moves_on_to_the_fallback(keys: str) -> None:
    def ok(request: HttpRequest) -> HttpResponse:
        assert "api.groq.com" in request.url
        body = (
            b'{"id":"x","object":"chat.completion","created":1,"model":"openai/gpt-oss-20b",'
            b'"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},'
            b'"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,'
            b'"total_tokens":4}}'
        )
        return HttpResponse(200, {"content-type": "application/json"}, body)

    transport = MockTransport(ok)
    client = llmrelay.Client(engine=Engine(transport, catalog=Catalog()))
    r = await client.achat("groq/llama3-8b-8192", "hello", fallbacks=["groq/openai/gpt-oss-20b"])
    assert r.text == "hi"
    assert r.trace[0].error == "ModelRetiredError"
    assert len(transport.requests) == 1
    await client.aclose()


async def test_allowing_retired_models(keys: str) -> None:
    sent: list[HttpRequest] = []

    def ok(request: HttpRequest) -> HttpResponse:
        sent.append(request)
        body = (
            b'{"id":"x","object":"chat.completion","created":1,"model":"llama3-8b-8192",'
            b'"choices":[{"index":0,"message":{"role":"assistant","content":"old"},'
            b'"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,'
            b'"total_tokens":4}}'
        )
        return HttpResponse(200, {"content-type": "application/json"}, body)

    registry = LLMRegistry(allow_retired=True, catalog_files=())
    client = llmrelay.Client(engine=Engine(MockTransport(ok), catalog=Catalog(registry)))
    r = await client.achat("groq/llama3-8b-8192", "hello")
    assert r.text == "old"
    assert r.cost.known  # its last published price
    await client.aclose()


async def test_custom_registry_in_the_engine(fake: FakeUpstream, point_at: Point) -> None:
    point_at(fake)
    registry = LLMRegistry(
        bundled=False,
        catalog_files=(),
        profiles=[
            {
                "provider": "vllm",
                "model": "tiny",
                "context_window": 64,
                "max_output_tokens": 16,
                "prices": {"input": 0.0, "output": 0.0},
            }
        ],
        today=lambda: date(2026, 11, 24),
    )
    client = llmrelay.Client(engine=Engine(catalog=Catalog(registry)))
    try:
        r = await client.achat("vllm/tiny", "short", base_url=fake.openai_base_url)
        assert r.cost.usd == 0.0
        with pytest.raises(ContextWindowExceededError, match="64-token context window"):
            await client.achat("vllm/tiny", "a longer prompt " * 20, base_url=fake.openai_base_url)
        assert len(fake.requests) == 1
    finally:
        await client.aclose()


def test_unsupported_capability_moves_on() -> None:
    assert moves_on(UnsupportedCapabilityError("no images", capability="vision"))
    assert moves_on(ModelRetiredError("gone"))


async def test_openai_reasoning_models_get_only_default_sampling(fake: FakeUpstream) -> None:
    """gpt-5 / o-series / gpt-6 answer 400 to temperature 0.2: it is dropped, and said so."""
    client = llmrelay.Client()
    r = await client.achat(
        "openai/gpt-6-luna",
        "hi",
        temperature=0.2,
        top_p=1.0,
        presence_penalty=0.5,
        api_key=CANARY_KEY,
        base_url=fake.openai_base_url,
    )
    body = fake.requests[-1].body
    for name in ("temperature", "presence_penalty"):
        assert name not in body
    assert body["top_p"] == 1.0  # the model's own default is accepted: sent as set
    assert set(r.adjusted_params) == {"temperature", "presence_penalty"}
    assert "reasoning model" in r.adjusted_params["temperature"]
    # A model that is not a reasoning model keeps its sampling parameters.
    r = await client.achat(
        "openai/gpt-4.1", "hi", temperature=0.2, api_key=CANARY_KEY, base_url=fake.openai_base_url
    )
    assert fake.requests[-1].body["temperature"] == 0.2
    assert "temperature" not in r.adjusted_params
    await client.aclose()
