"""``prompt_cache_key``: a first-class parameter, sent where the provider documents it (OpenAI and
Azure OpenAI, Chat Completions and Responses), dropped and reported elsewhere, refused before
sending when OpenAI would refuse it (empty, not a string, over 64 characters)."""

from __future__ import annotations

from typing import Any

import pytest

import llmrelay
from llmrelay.errors import InvalidRequestError
from llmrelay.providers.adapters.anthropic_messages import AnthropicMessagesAdapter
from llmrelay.providers.adapters.gemini import GeminiAdapter
from llmrelay.providers.adapters.openai_chat import OpenAIChatAdapter
from llmrelay.providers.adapters.openai_responses import OpenAIResponsesAdapter
from llmrelay.testing.fake import FakeUpstream
from llmrelay.types import MAX_PROMPT_CACHE_KEY, NO_PARAMS, build_params

from ..conftest import CANARY_KEY
from .sansio import body_of, chat, deployment

KEY = "tenant-7/support-bot"


@pytest.mark.parametrize("provider", ["openai", "azure"])
def test_chat_completions_sends_it_where_documented(provider: str) -> None:
    http = OpenAIChatAdapter().build_request(
        chat("hi", prompt_cache_key=KEY), deployment(provider, "gpt-4.1-mini")
    )
    assert body_of(http)["prompt_cache_key"] == KEY
    assert "prompt_cache_key" not in http.adjusted


@pytest.mark.parametrize("provider", ["groq", "openrouter", "mistral", "gemini_openai"])
def test_other_compatible_vendors_drop_and_report_it(provider: str) -> None:
    http = OpenAIChatAdapter().build_request(
        chat("hi", prompt_cache_key=KEY), deployment(provider, "some-model")
    )
    assert "prompt_cache_key" not in body_of(http)
    assert http.adjusted["prompt_cache_key"].startswith("dropped:")
    assert KEY not in http.adjusted["prompt_cache_key"]


def test_extra_still_sends_it_as_given() -> None:
    # The escape hatch stays: what the caller puts in extra is sent, and not reported.
    http = OpenAIChatAdapter().build_request(
        chat("hi", extra={"prompt_cache_key": KEY}), deployment("groq", "some-model")
    )
    assert body_of(http)["prompt_cache_key"] == KEY
    assert "prompt_cache_key" not in http.adjusted


def test_responses_api_sends_it() -> None:
    http = OpenAIResponsesAdapter().build_request(
        chat("hi", prompt_cache_key=KEY), deployment("openai", "gpt-5-mini")
    )
    assert body_of(http)["prompt_cache_key"] == KEY
    assert "prompt_cache_key" not in http.adjusted


@pytest.mark.parametrize(
    ("adapter", "provider", "model"),
    [
        (AnthropicMessagesAdapter(), "anthropic", "claude-sonnet-4-5"),
        (GeminiAdapter(), "gemini", "gemini-2.5-flash"),
    ],
)
def test_anthropic_and_gemini_drop_and_report_it(adapter: Any, provider: str, model: str) -> None:
    http = adapter.build_request(chat("hi", prompt_cache_key=KEY), deployment(provider, model))
    assert b"prompt_cache_key" not in http.body
    assert http.adjusted["prompt_cache_key"].startswith("dropped:")


def test_unset_costs_nothing() -> None:
    # A call that sets nothing is still the shared empty parameters object (the lean path).
    assert build_params({"prompt_cache_key": None}) is NO_PARAMS
    http = OpenAIChatAdapter().build_request(chat("hi"), deployment("openai", "gpt-4.1-mini"))
    assert "prompt_cache_key" not in body_of(http)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("", "a string of 0 characters"),
        ("k" * (MAX_PROMPT_CACHE_KEY + 1), f"a string of {MAX_PROMPT_CACHE_KEY + 1} characters"),
        (42, "not 42"),
        (["a"], "not list"),
        (b"key", "not bytes"),
    ],
)
def test_bad_keys_are_refused_before_sending(value: object, says: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        build_params({"prompt_cache_key": value})
    assert says in info.value.message
    assert "at most 64 characters" in info.value.message


def test_a_long_key_is_not_echoed() -> None:
    secret_ish = "user-" + "x" * 80
    with pytest.raises(InvalidRequestError) as info:
        build_params({"prompt_cache_key": secret_ish})
    assert "xxxx" not in str(info.value)


class _Lying(str):
    """A str subclass whose methods lie: a 100-character key claiming to be 1 long."""

    def __len__(self) -> int:
        return 1

    def __bool__(self) -> bool:
        return True

    def __str__(self) -> str:
        return "short"


def test_a_str_subclass_cannot_lie_its_way_past_the_limit() -> None:
    with pytest.raises(InvalidRequestError, match="a string of 100 characters"):
        build_params({"prompt_cache_key": _Lying("k" * 100)})
    kept = build_params({"prompt_cache_key": _Lying("k" * 10), "user": _Lying("u" * 10)})
    assert type(kept.prompt_cache_key) is str
    assert kept.prompt_cache_key == "k" * 10
    assert type(kept.user) is str
    assert kept.user == "u" * 10
    http = OpenAIChatAdapter().build_request(
        chat("hi", prompt_cache_key=_Lying("k" * 10)), deployment("openai", "gpt-4.1-mini")
    )
    assert body_of(http)["prompt_cache_key"] == "k" * 10


def test_the_longest_key_passes() -> None:
    key = "k" * MAX_PROMPT_CACHE_KEY
    assert build_params({"prompt_cache_key": key}).prompt_cache_key == key


async def test_over_a_socket_both_apis(fake: FakeUpstream) -> None:
    client = llmrelay.Client()
    kw: dict[str, Any] = {"api_key": CANARY_KEY, "base_url": fake.openai_base_url}
    r = await client.achat("openai/gpt-4.1-mini", "hi", prompt_cache_key=KEY, **kw)
    assert fake.requests[-1].path.endswith("/chat/completions")
    assert fake.requests[-1].body["prompt_cache_key"] == KEY
    assert "prompt_cache_key" not in r.adjusted_params
    r = await client.achat("openai/gpt-4.1-mini", "hi", prompt_cache_key=KEY, api="responses", **kw)
    assert fake.requests[-1].path.endswith("/responses")
    assert fake.requests[-1].body["prompt_cache_key"] == KEY
    n = len(fake.requests)
    with pytest.raises(InvalidRequestError):
        await client.achat("openai/gpt-4.1-mini", "hi", prompt_cache_key="", **kw)
    assert len(fake.requests) == n  # refused before anything was sent
    await client.aclose()


async def test_over_a_socket_a_vendor_without_it(fake: FakeUpstream) -> None:
    client = llmrelay.Client()
    r = await client.achat(
        "groq/llama-3.1-8b-instant",
        "hi",
        prompt_cache_key=KEY,
        api_key=CANARY_KEY,
        base_url=fake.openai_base_url,
    )
    assert "prompt_cache_key" not in fake.requests[-1].body
    assert r.adjusted_params["prompt_cache_key"].startswith("dropped: Groq")
    await client.aclose()


def test_the_gateway_forwards_it_from_both_openai_wires() -> None:
    from llmrelay.gateway.openai_wire import parse_chat_request
    from llmrelay.gateway.responses_wire import parse_responses_request

    msgs = [{"role": "user", "content": "hi"}]
    call = parse_chat_request({"model": "m", "messages": msgs, "prompt_cache_key": KEY})
    assert call.params["prompt_cache_key"] == KEY
    call = parse_responses_request(
        {"model": "m", "input": "hi", "prompt_cache_key": KEY, "max_output_tokens": 9}
    )
    assert call.params == {"max_tokens": 9, "prompt_cache_key": KEY}
