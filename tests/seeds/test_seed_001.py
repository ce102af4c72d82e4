"""Seed 001: ``LLMClient`` -- the seed's usage examples against the fake upstream, plus
fallbacks, typed ERROR responses, settings validation and secrets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pydantic import BaseModel

import llmrelay
from llmrelay import (
    ConfigurationError,
    InvalidRequestError,
    LLMClient,
    LLMError,
    LLMMessage,
    LLMMessageRole,
    LLMModels,
    LLMProviders,
    LLMResponse,
    LLMResponseType,
    LLMSettings,
    Message,
    Secret,
)
from llmrelay.core.engine import Engine
from llmrelay.core.retry import RetryPolicy
from llmrelay.providers.table import EMBEDDINGS_ONLY_WIRES, PROVIDERS
from llmrelay.testing.fake import FakeUpstream, Reply

from ..conftest import CANARY_KEY


class UserProfile(BaseModel):
    name: str
    age: int
    interests: list[str]


messages = [LLMMessage(role="user", content="Tell me about Ada")]


@pytest.fixture
def openai_env(fake: FakeUpstream, keys: str, monkeypatch: pytest.MonkeyPatch) -> FakeUpstream:
    """Settings from the environment point OpenAI at the fake, with the canary key."""
    monkeypatch.setenv("OPENAI_BASE_URL", fake.openai_base_url)
    return fake


@pytest.fixture
async def no_retry(openai_env: FakeUpstream) -> AsyncIterator[Callable[..., LLMClient]]:
    """LLMClients whose engine does not retry, so each scripted error hits one candidate."""
    made: list[llmrelay.Client] = []

    def make(settings: LLMSettings | None = None) -> LLMClient:
        c = llmrelay.Client(engine=Engine(retry=RetryPolicy(max_retries=0)))
        made.append(c)
        return LLMClient(settings, client=c)

    yield make
    for c in made:
        await c.aclose()


# --------------------------------------------------------------------------- the seed's examples


async def test_basic_text_generation(openai_env: FakeUpstream) -> None:
    """Seed 001, "Basic Text Generation"."""
    client = LLMClient()
    response = await client.get_response(
        messages=[LLMMessage(role="user", content="Hello")], temperature=0.7
    )
    print(response.text)
    assert response.text == "Echo: Hello"
    assert response.response_type == LLMResponseType.TEXT
    assert response.object is None
    assert response.error is None
    assert response.provider == "openai"
    assert response.model == "gpt-4.1-mini"  # the default model
    assert response.usage is not None
    assert response.usage.output_tokens > 0
    assert response.total_usage == response.usage
    assert response.request_id is not None
    assert response.latency > 0
    assert [a.outcome for a in response.trace] == ["success"]
    sent = openai_env.requests[-1]
    assert sent.body["temperature"] == 0.7
    assert sent.body["model"] == "gpt-4.1-mini"
    assert sent.body["messages"] == [{"role": "user", "content": "Hello"}]
    assert sent.headers["authorization"] == f"Bearer {CANARY_KEY}"
    await client.aclose()


async def test_structured_output(openai_env: FakeUpstream) -> None:
    """Seed 001, "Structured Output"."""
    client = LLMClient()
    response = await client.get_response(
        messages=messages, response_model=UserProfile, temperature=0.3
    )
    assert response.response_type == LLMResponseType.OBJECT
    if response.response_type == LLMResponseType.OBJECT:
        profile = response.object
        print(f"Name: {profile.name}, Age: {profile.age}")
    assert isinstance(profile, UserProfile)
    assert profile == UserProfile.model_validate_json(response.text or "")
    rf = openai_env.requests[-1].body["response_format"]
    assert rf["type"] == "json_schema"
    assert rf["json_schema"]["name"] == "UserProfile"
    assert rf["json_schema"]["strict"] is True
    await client.aclose()


async def test_provider_selection(openai_env: FakeUpstream) -> None:
    """Seed 001, "Provider Selection": the first preferred candidate answers."""
    client = LLMClient()
    response = await client.get_response(
        messages=messages,
        preferred_models=[
            (LLMProviders.OPENAI, LLMModels.GPT_4_1_MINI),
            (LLMProviders.OPENAI, LLMModels.GPT_4_1_NANO),
        ],
        auto=False,  # Only use specified providers
    )
    assert response.response_type == LLMResponseType.TEXT
    assert response.model == "gpt-4.1-mini"
    assert [r.body["model"] for r in openai_env.requests] == ["gpt-4.1-mini"]
    await client.aclose()


# --------------------------------------------------------------------------- fallbacks


async def test_fallback_to_the_second_candidate_on_500(
    openai_env: FakeUpstream, no_retry: Callable[..., LLMClient]
) -> None:
    openai_env.push(Reply.error(500))
    client = no_retry()
    response = await client.get_response(
        messages=messages,
        preferred_models=[
            (LLMProviders.OPENAI, LLMModels.GPT_4_1_MINI),
            (LLMProviders.OPENAI, LLMModels.GPT_4_1_NANO),
        ],
        auto=False,
    )
    assert response.response_type == LLMResponseType.TEXT
    assert response.text == "Echo: Tell me about Ada"
    assert response.model == "gpt-4.1-nano"
    assert [r.body["model"] for r in openai_env.requests] == ["gpt-4.1-mini", "gpt-4.1-nano"]
    first, second = response.trace
    assert (first.deployment, first.outcome, first.error, first.status) == (
        "openai/gpt-4.1-mini",
        "error",
        "ServerError",
        500,
    )
    assert (second.deployment, second.outcome) == ("openai/gpt-4.1-nano", "success")


async def test_fallback_on_authentication_error_with_plain_string_candidates(
    openai_env: FakeUpstream,
) -> None:
    openai_env.push(Reply.error(401, "Incorrect API key provided"))
    client = LLMClient()
    response = await client.get_response(
        "Hello",
        preferred_models=[("openai", "gpt-4o"), "openai/my-fine-tune"],
        auto=False,
    )
    assert response.model == "my-fine-tune"  # any model name works
    assert [a.error for a in response.trace] == ["AuthenticationError", None]
    await client.aclose()


async def test_auto_appends_the_default_then_allowed_models(
    openai_env: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_ALLOWED_MODELS", "gpt-4.1-mini, gpt-4.1-nano, claude-sonnet-4-5")
    client = LLMClient()
    assert client.candidates([(LLMProviders.OPENAI, LLMModels.GPT_4_1_NANO)]) == [
        ("openai", "gpt-4.1-nano"),
        ("openai", "gpt-4.1-mini"),
        ("anthropic", "claude-sonnet-4-5"),
    ]
    assert client.candidates(auto=True) == [
        ("openai", "gpt-4.1-mini"),
        ("openai", "gpt-4.1-nano"),
        ("anthropic", "claude-sonnet-4-5"),
    ]
    assert client.candidates([("openai", "gpt-4.1-nano")], auto=False) == [
        ("openai", "gpt-4.1-nano")
    ]
    # The preferred model fails (404): the settings' default answers.
    openai_env.push(Reply.error(404, "The model `gpt-4.1-nano` does not exist"))
    response = await client.get_response(
        messages, preferred_models=[(LLMProviders.OPENAI, LLMModels.GPT_4_1_NANO)]
    )
    assert response.model == "gpt-4.1-mini"
    assert [a.error for a in response.trace] == ["NotFoundError", None]
    await client.aclose()


def test_candidate_forms() -> None:
    client = LLMClient(LLMSettings())
    assert client.candidates(
        [
            (LLMProviders.GROQ, "my-model"),
            ("openrouter", "meta-llama/llama-3.3-70b-instruct"),
            "openrouter/meta-llama/llama-3.3-70b-instruct",  # a duplicate: dropped
            "claude-haiku-4-5",  # a bare name: the provider comes from the name
            LLMModels.GPT_OSS_120B,  # a known Groq model id that contains a slash
        ],
        auto=False,
    ) == [
        ("groq", "my-model"),
        ("openrouter", "meta-llama/llama-3.3-70b-instruct"),
        ("anthropic", "claude-haiku-4-5"),
        ("groq", "openai/gpt-oss-120b"),
    ]
    with pytest.raises(InvalidRequestError, match="names no provider"):
        client.candidates(["my-local-model"])


async def test_candidate_not_allowed_by_settings_is_skipped_and_recorded(
    openai_env: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_ALLOWED_PROVIDERS", "openai")
    client = LLMClient()
    response = await client.get_response(
        messages, preferred_models=[(LLMProviders.GROQ, LLMModels.LLAMA_3_1_8B_INSTANT)]
    )
    assert response.model == "gpt-4.1-mini"
    skipped, ok = response.trace
    assert skipped.deployment == "groq/llama-3.1-8b-instant"
    assert skipped.outcome == "skipped"
    assert skipped.reason == "provider 'groq' is not in allowed_providers"
    assert ok.outcome == "success"
    assert len(openai_env.requests) == 1
    await client.aclose()


async def test_candidate_without_a_key_is_skipped(
    openai_env: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GROQ_API_KEY")
    client = LLMClient()
    response = await client.get_response(messages, preferred_models=[("groq", "llama-3.1-8b")])
    assert response.model == "gpt-4.1-mini"
    assert response.trace[0].outcome == "skipped"
    assert response.trace[0].error == "MissingAPIKeyError"
    assert len(openai_env.requests) == 1
    await client.aclose()


async def test_structured_output_that_never_validates_falls_back(
    openai_env: FakeUpstream,
) -> None:
    openai_env.push(Reply.ok("not json", output_tokens=3), Reply.ok("still not", output_tokens=4))
    client = LLMClient()
    response = await client.get_response(
        messages,
        response_model=UserProfile,
        preferred_models=[("openai", "gpt-4o")],
    )
    assert response.response_type == LLMResponseType.OBJECT
    assert response.model == "gpt-4.1-mini"
    assert isinstance(response.object, UserProfile)
    # Both failed attempts and the successful one are counted.
    assert response.total_usage is not None
    assert response.usage is not None
    assert response.total_usage.output_tokens == 3 + 4 + response.usage.output_tokens
    assert len(response.trace) == 3
    await client.aclose()


# --------------------------------------------------------------------------- ERROR responses


async def test_all_candidates_fail_gives_a_typed_error_response(
    openai_env: FakeUpstream, no_retry: Callable[..., LLMClient]
) -> None:
    openai_env.push(
        Reply.error(500, "boom"), Reply.error(429, "Slow down", headers={"retry-after": "7"})
    )
    response = await no_retry().get_response(
        messages,
        preferred_models=[("openai", "gpt-4.1-nano"), ("openai", "gpt-4.1-mini")],
        auto=False,
    )
    assert response.response_type == LLMResponseType.ERROR
    assert response.text is None
    assert response.object is None
    error = response.error
    assert isinstance(error, LLMError)
    assert error.type == "AllAttemptsFailedError"
    assert "openai/gpt-4.1-nano: ServerError: boom" in error.message
    assert error.details is not None
    attempts = error.details["attempts"]
    assert [(a["type"], a["model"], a["status"]) for a in attempts] == [
        ("ServerError", "gpt-4.1-nano", 500),
        ("RateLimitedError", "gpt-4.1-mini", 429),
    ]
    assert attempts[1]["retry_after"] == 7.0
    assert attempts[1]["request_id"].startswith("req_fake_")
    assert [a.outcome for a in response.trace] == ["error", "error"]


async def test_single_candidate_failure_keeps_its_error_type(
    openai_env: FakeUpstream, no_retry: Callable[..., LLMClient]
) -> None:
    openai_env.push(Reply.error(429, "Rate limit reached", headers={"retry-after": "3"}))
    response = await no_retry().get_response(
        messages, preferred_models=[("openai", "gpt-4.1-mini")], auto=False
    )
    assert response.error is not None
    assert response.error.type == "RateLimitedError"
    assert response.error.message == "Rate limit reached"
    assert response.error.details == {
        "provider": "openai",
        "model": "gpt-4.1-mini",
        "status": 429,
        "request_id": response.error.details["request_id"],
        "retry_after": 3.0,
    }
    assert not response.ok


async def test_every_candidate_disallowed_is_an_error_response(openai_env: FakeUpstream) -> None:
    settings = LLMSettings(allowed_models=["gpt-4.1-mini"])
    client = LLMClient(settings)
    response = await client.get_response(
        messages, preferred_models=[("openai", "gpt-4o")], auto=False
    )
    assert response.response_type == LLMResponseType.ERROR
    assert response.error is not None
    assert response.error.type == "ConfigurationError"
    assert "openai/gpt-4o (model 'gpt-4o' is not in allowed_models)" in response.error.message
    assert openai_env.requests == []
    await client.aclose()


def test_llm_error_from_exception() -> None:
    err = llmrelay.MissingAPIKeyError(
        "no API key for Groq: set GROQ_API_KEY", variable="GROQ_API_KEY", provider="groq"
    )
    e = LLMError.from_exception(err)
    assert e.type == "MissingAPIKeyError"
    assert e.details is not None
    assert e.details["variable"] == "GROQ_API_KEY"
    assert e.details["provider"] == "groq"
    leaky = llmrelay.AuthenticationError(f"bad key {CANARY_KEY}", status=401)
    scrubbed = LLMError.from_exception(leaky, secrets=[CANARY_KEY])
    assert CANARY_KEY not in scrubbed.model_dump_json()


# --------------------------------------------------------------------------- programming errors


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"messages": []}, "messages is empty"),
        ({"messages": "x", "response_model": dict}, "response_model must be a pydantic"),
        ({"messages": "x", "temperature": 7}, "temperature=7 is out of range"),
        ({"messages": "x", "max_tokens": -1}, "max_tokens must be a positive integer"),
        ({"messages": "x", "bogus": 1}, "unknown argument 'bogus'"),
        ({"messages": "x", "api_key": "k"}, "api_key cannot be passed"),
        ({"messages": "x", "fallbacks": ["a"]}, "fallbacks cannot be passed"),
        ({"messages": "x", "preferred_models": [("nope", "m")]}, "unknown provider 'nope'"),
        ({"messages": "x", "preferred_models": ["openai"]}, r"preferred_models\[0\]"),
        ({"messages": "x", "preferred_models": [("openai", "")]}, "non-empty string"),
        ({"messages": "x", "preferred_models": ("openai", "gpt-4o")}, r"preferred_models\[0\]"),
        ({"messages": "x", "preferred_models": "openai/gpt-4o"}, "list of"),
        ({"messages": "x", "auto": False}, "auto=False"),
        ({"messages": "x", "auto": "yes"}, "auto must be True or False"),
        ({"messages": [42]}, r"messages\[0\] is a int"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "role 'robot'"),
    ],
)
async def test_programming_errors_raise_invalid_request(
    openai_env: FakeUpstream, kwargs: dict[str, Any], match: str
) -> None:
    client = LLMClient()
    with pytest.raises(InvalidRequestError, match=match):
        await client.get_response(**kwargs)
    assert openai_env.requests == []
    await client.aclose()


def test_llm_message() -> None:
    m = LLMMessage(role=LLMMessageRole.SYSTEM, content="Be brief.")
    assert m.to_message() == Message("system", "Be brief.")
    assert LLMMessage(role="user", content="hi").role is LLMMessageRole.USER
    with pytest.raises(InvalidRequestError, match="invalid LLMMessage: role"):
        LLMMessage(role="robot", content="hi")
    with pytest.raises(InvalidRequestError, match="content"):
        LLMMessage(role="user", content=None)
    with pytest.raises(InvalidRequestError, match="tool_call_id"):
        LLMMessage(role="tool", content="42").to_message()
    tool = LLMMessage(role="tool", content="42", tool_call_id="call_1").to_message()
    assert tool.tool_call_id == "call_1"


async def test_mixed_message_kinds(openai_env: FakeUpstream) -> None:
    client = LLMClient()
    r = await client.get_response(
        [
            LLMMessage(role="system", content="Be brief."),
            Message.user("first"),
            {"role": "assistant", "content": "ok"},
            LLMMessage(role="user", content="second"),
        ],
        system=None,
        max_tokens=20,
    )
    assert r.text == "Echo: second"
    body = openai_env.requests[-1].body
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    assert body["max_completion_tokens"] == 20
    await client.aclose()


def test_get_response_sync(
    fake_thread: FakeUpstream, keys: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", fake_thread.openai_base_url)
    client = LLMClient()
    r = client.get_response_sync(messages, response_model=UserProfile)
    assert r.response_type == LLMResponseType.OBJECT
    assert isinstance(r.object, UserProfile)


async def test_get_response_sync_inside_a_running_loop(
    fake_thread: FakeUpstream, keys: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", fake_thread.openai_base_url)
    r = LLMClient().get_response_sync("Hello")
    assert r.text == "Echo: Hello"


# --------------------------------------------------------------------------- enums


def test_enums() -> None:
    # Every chat provider: the embeddings-only rows (Voyage, Cohere) are not chat candidates.
    chat = {n for n, spec in PROVIDERS.items() if spec.wire not in EMBEDDINGS_ONLY_WIRES}
    assert {p.value for p in LLMProviders} == chat - {"test"}
    assert LLMProviders.OPENAI == "openai"
    assert LLMModels.GPT_4_1_NANO == "gpt-4.1-nano"
    assert LLMModels.GPT_4_1_MINI == "gpt-4.1-mini"
    assert LLMModels.O4_MINI == "o4-mini"
    assert LLMModels.CLAUDE_SONNET_4_5.provider is LLMProviders.ANTHROPIC
    assert LLMModels.GEMINI_2_5_FLASH.provider is LLMProviders.GEMINI
    assert LLMModels.LLAMA_3_3_70B_VERSATILE.provider is LLMProviders.GROQ
    assert LLMModels.GPT_OSS_120B.provider is LLMProviders.GROQ
    assert LLMModels.O4_MINI.provider is LLMProviders.OPENAI
    assert [t.value for t in LLMResponseType] == ["text", "object", "error"]
    assert [r.value for r in LLMMessageRole] == ["system", "user", "assistant", "tool"]


# --------------------------------------------------------------------------- settings


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_ALLOWED_PROVIDERS", "OpenAI, groq,")
    monkeypatch.setenv("LLM_ALLOWED_MODELS", '["gpt-4.1-nano", "groq/llama-3.1-8b-instant"]')
    monkeypatch.setenv("LLM_DEFAULT_PROVIDER", "groq")
    monkeypatch.setenv("LLM_DEFAULT_MODEL", "llama-3.1-8b-instant")
    monkeypatch.setenv("GROQ_BASE_URL", "http://127.0.0.1:9/openai/v1")
    monkeypatch.setenv("GROQ_API_KEY", CANARY_KEY)
    monkeypatch.setenv("GOOGLE_API_KEY", "gemini-key")  # the alternative variable counts too
    s = LLMSettings.from_env()
    assert s.allowed_providers == ["openai", "groq"]
    assert s.allowed_models == ["gpt-4.1-nano", "groq/llama-3.1-8b-instant"]
    assert (s.default_provider, s.default_model) == ("groq", "llama-3.1-8b-instant")
    assert s.provider_groq_base_url == "http://127.0.0.1:9/openai/v1"
    assert s.provider_groq_api_key == Secret(CANARY_KEY)
    assert s.api_key_for("gemini") == Secret("gemini-key")
    assert s.provider_openai_api_key is None
    assert s.base_url_for("openai") is None
    assert s.fallback_candidates() == [
        ("groq", "llama-3.1-8b-instant"),
        ("openai", "gpt-4.1-nano"),
    ]


def test_settings_defaults_and_explicit_environ() -> None:
    s = LLMSettings()
    assert (s.default_provider, s.default_model) == ("openai", "gpt-4.1-mini")
    assert s.allowed_providers == []
    assert s.allowed_models == []
    assert s.not_allowed_reason("anthropic", "claude-sonnet-4-5") is None
    s = LLMSettings.from_env(
        {"LLM_DEFAULT_MODEL": "gpt-4.1-nano", "OPENAI_API_KEY": "k"},
        allowed_models=[LLMModels.GPT_4_1_NANO, LLMModels.O4_MINI],
    )
    assert s.default_model == "gpt-4.1-nano"
    assert s.allowed_models == ["gpt-4.1-nano", "o4-mini"]
    assert s.api_key_for("openai") == Secret("k")
    assert s.not_allowed_reason("openai", "gpt-4o") == "model 'gpt-4o' is not in allowed_models"
    # Keys and URLs pasted with a newline work, as everywhere else in llmrelay.
    s = LLMSettings.from_env({"OPENAI_API_KEY": "k\n", "OPENAI_BASE_URL": " http://h/v1\n"})
    assert (s.api_key_for("openai"), s.base_url_for("openai")) == (Secret("k"), "http://h/v1")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"allowed_providers": ["openai", "acme"]}, "unknown provider 'acme'"),
        ({"default_provider": "acme"}, "default_provider .*'acme' is not a known provider"),
        ({"allowed_providers": ["groq"]}, "default_provider 'openai' is not in allowed_providers"),
        ({"allowed_models": ["gpt-4o"]}, "default_model 'gpt-4.1-mini' is not in allowed_models"),
        (
            {
                "allowed_providers": ["openai"],
                "allowed_models": ["gpt-4.1-mini", "claude-haiku-4-5"],
            },
            "'claude-haiku-4-5' belongs to provider 'anthropic'",
        ),
        ({"default_model": " "}, "default_model .* must not be empty"),
        ({"provider_groq_base_url": "api.groq.com"}, r"provider_groq_base_url \(GROQ_BASE_URL\)"),
        ({"provider_openai_api_key": 12345}, "provider_openai_api_key"),
        ({"provider_acme_api_key": "k"}, "provider_acme_api_key: Extra inputs are not permitted"),
        ({"allowed_models": "[not json"}, "allowed_models"),
    ],
)
def test_settings_validation(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match) as info:
        LLMSettings(**kwargs)
    assert "12345" not in str(info.value)  # input values (maybe keys) are never echoed


def test_settings_validation_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_DEFAULT_PROVIDER", "acme")
    with pytest.raises(ConfigurationError, match="LLM_DEFAULT_PROVIDER"):
        LLMSettings.from_env()
    with pytest.raises(ConfigurationError, match="LLM_DEFAULT_PROVIDER"):
        LLMClient()


def test_client_argument_types() -> None:
    with pytest.raises(InvalidRequestError, match="settings must be an LLMSettings"):
        LLMClient({"default_model": "x"})  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match=r"client must be an llmrelay\.Client"):
        LLMClient(LLMSettings(), client=object())  # type: ignore[arg-type]


# --------------------------------------------------------------------------- secrets


async def test_keys_never_appear_in_reprs_errors_or_responses(
    openai_env: FakeUpstream, no_retry: Callable[..., LLMClient]
) -> None:
    settings = LLMSettings.from_env()
    assert settings.provider_openai_api_key == Secret(CANARY_KEY)
    client = no_retry(settings)
    openai_env.push(Reply.error(401, f"Incorrect API key provided: {CANARY_KEY}"))
    failed = await client.get_response(
        messages, preferred_models=[("openai", "gpt-4.1-mini")], auto=False
    )
    ok = await client.get_response(messages, response_model=UserProfile)
    assert failed.error is not None
    assert failed.error.type == "AuthenticationError"
    texts = [
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        str(settings.model_dump()),
        repr(client),
        repr(failed),
        failed.model_dump_json(),
        repr(failed.error),
        repr(ok),
        ok.model_dump_json(),
    ]
    for text in texts:
        assert CANARY_KEY not in text
    assert '"provider_openai_api_key":"**********"' in settings.model_dump_json()
    with pytest.raises(ConfigurationError) as info:
        LLMSettings(default_provider="acme", provider_openai_api_key=CANARY_KEY)
    assert CANARY_KEY not in str(info.value)
    assert CANARY_KEY not in repr(info.value)


def test_llm_response_model() -> None:
    r = LLMResponse(response_type="text", text="hi")
    assert r.response_type is LLMResponseType.TEXT
    assert r.ok
    assert r.trace == []
