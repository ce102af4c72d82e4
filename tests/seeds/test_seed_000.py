"""Seed 000: ``ModelHandler`` -- the seed's usage examples against the fake upstream, plus its
best practices (injected registry, caching, validation, logging, async)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

import llmrelay
from llmrelay import (
    CONFIG_REGISTRY,
    BaseModelConfig,
    ConfigurationError,
    GroqBaseConfig,
    MissingAPIKeyError,
    ModelHandler,
    UnknownModelError,
)
from llmrelay.seeds.seed002.builtin import LlamaThreeEightBConfig, MixtralEightXSevenBConfig
from llmrelay.testing.fake import FakeUpstream, Reply

from ..config_isolation import isolated_config
from ..conftest import CANARY_KEY

SEED_ALIASES = ("mixtral-8x7b", "llama3-70b", "llama3-8b", "gemma2-9b", "c3opus", "qwen-coder-32b")


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    with isolated_config():
        yield


@pytest.fixture
def groq(fake_thread: FakeUpstream, keys: str, monkeypatch: pytest.MonkeyPatch) -> FakeUpstream:
    """The fake upstream (on a thread, for sync code) as Groq and Anthropic, with the keys set."""
    monkeypatch.setenv("GROQ_BASE_URL", fake_thread.openai_base_url)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_thread.anthropic_base_url)
    return fake_thread


# --------------------------------------------------------------------------- the seed's examples


def test_basic_usage(groq: FakeUpstream) -> None:
    """Seed 000, "Basic Usage"."""
    handler = ModelHandler()

    available_models = handler.list_available_models()
    assert set(SEED_ALIASES) <= set(available_models)
    assert available_models == list(CONFIG_REGISTRY)  # the seed's list(CONFIG_REGISTRY.keys())

    response = handler.get_response("mixtral-8x7b", "Explain quantum computing in simple terms.")
    assert response == "Echo: Explain quantum computing in simple terms."

    req = groq.requests[-1]
    assert req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {CANARY_KEY}"
    body = req.body
    assert body["model"] == "mixtral-8x7b-32768"
    assert body["messages"] == [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Explain quantum computing in simple terms."},
    ]
    assert body["temperature"] == 0.7
    assert body["max_tokens"] == 32768
    assert body["top_p"] == 1.0
    assert body["frequency_penalty"] == 0.0
    assert body["presence_penalty"] == 0.0
    assert "stop" not in body
    assert not body.get("stream")


def test_handling_multiple_models(groq: FakeUpstream) -> None:
    """Seed 000, "Handling Multiple Models" (c3opus needs the anthropic_messages adapter)."""
    handler = ModelHandler()

    quick_response = handler.get_response("llama3-8b", "What is the capital of France?")
    assert quick_response == "Echo: What is the capital of France?"
    assert groq.requests[-1].body["model"] == "llama3-8b-8192"

    detailed_response = handler.get_response(
        "c3opus", "Explain the implications of quantum computing for cryptography."
    )
    assert (
        detailed_response == "Echo: Explain the implications of quantum computing for cryptography."
    )
    req = groq.requests[-1]
    assert req.path == "/v1/messages"
    assert req.headers["x-api-key"] == CANARY_KEY
    assert req.body["model"] == "claude-3-opus-20240229"
    assert req.body["system"] in (
        "You are a helpful assistant.",
        [{"type": "text", "text": "You are a helpful assistant."}],
    )
    assert req.body["max_tokens"] == 4096

    code_response = handler.get_response(
        "qwen-coder-32b",
        "Write a Python function to find prime numbers using the Sieve of Eratosthenes.",
    )
    assert code_response.startswith("Echo: Write a Python function")
    assert groq.requests[-1].body["model"] == "qwen-2.5-coder-32b"
    assert len(groq.requests) == 3


def test_unknown_alias_is_the_seeds_value_error(groq: FakeUpstream) -> None:
    handler = ModelHandler()
    with pytest.raises(ValueError) as ei:
        handler.get_response("mixtral-8x7", "hi")
    assert type(ei.value) is UnknownModelError
    assert str(ei.value) == "No configuration found for alias 'mixtral-8x7'."
    assert any("mixtral-8x7b" in n for n in ei.value.__notes__)  # a hint, outside the message
    with pytest.raises(UnknownModelError) as ei2:
        handler.get_response(None, "hi")  # type: ignore[arg-type]
    assert str(ei2.value) == "No configuration found for alias 'None'."
    assert groq.requests == []


async def test_unknown_alias_async() -> None:
    with pytest.raises(ValueError) as ei:
        await ModelHandler().aget_response("nope", "hi")
    assert str(ei.value) == "No configuration found for alias 'nope'."


# --------------------------------------------------------------------------- injected registry


def test_injected_registry(groq: FakeUpstream) -> None:
    registry: dict[str, type[BaseModelConfig]] = {"fast": LlamaThreeEightBConfig}
    handler = ModelHandler(registry=registry)
    assert handler.list_available_models() == ["fast"]
    assert handler.get_response("fast", "hello") == "Echo: hello"
    assert groq.requests[-1].body["model"] == "llama3-8b-8192"
    # Only the injected registry counts.
    with pytest.raises(ValueError, match="No configuration found for alias 'mixtral-8x7b'"):
        handler.get_response("mixtral-8x7b", "hello")
    # It is read live.
    registry["big"] = MixtralEightXSevenBConfig
    assert handler.list_available_models() == ["fast", "big"]
    assert handler.get_response("big", "x") == "Echo: x"
    assert groq.requests[-1].body["model"] == "mixtral-8x7b-32768"


def test_injected_registry_must_be_a_mapping() -> None:
    with pytest.raises(ConfigurationError, match="registry must be a mapping"):
        ModelHandler(registry=["mixtral-8x7b"])  # type: ignore[arg-type]


# --------------------------------------------------------------------------- caching


def test_configuration_and_caller_are_cached_per_alias(groq: FakeUpstream) -> None:
    built: list[str] = []

    class Counting(LlamaThreeEightBConfig):
        def __init__(self) -> None:
            super().__init__()
            built.append("llama")

    class Other(MixtralEightXSevenBConfig):
        def __init__(self) -> None:
            super().__init__()
            built.append("mixtral")

    registry: dict[str, type[BaseModelConfig]] = {"m": Counting}
    handler = ModelHandler(registry)
    for i in range(3):
        assert handler.get_response("m", f"call {i}") == f"Echo: call {i}"
    assert built == ["llama"]
    assert len(groq.requests) == 3
    config = handler.get_config("m")
    assert isinstance(config, Counting)
    assert handler.get_config("m") is config

    # The registry maps the alias to another class: rebuilt.
    registry["m"] = Other
    handler.get_response("m", "again")
    assert built == ["llama", "mixtral"]
    assert groq.requests[-1].body["model"] == "mixtral-8x7b-32768"

    # clear_cache forgets it.
    handler.clear_cache("m")
    handler.get_response("m", "again")
    assert built == ["llama", "mixtral", "mixtral"]


# --------------------------------------------------------------------------- keys


def test_missing_key_names_the_variable_before_any_request(
    fake_thread: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GROQ_BASE_URL", fake_thread.openai_base_url)
    handler = ModelHandler()
    with pytest.raises(MissingAPIKeyError) as ei:
        handler.get_response("llama3-8b", "hi")
    assert ei.value.variable == "GROQ_API_KEY"
    assert "GROQ_API_KEY" in str(ei.value)
    assert fake_thread.requests == []
    # The key is read at each call: setting it makes the cached caller work.
    monkeypatch.setenv("GROQ_API_KEY", CANARY_KEY)
    assert handler.get_response("llama3-8b", "hi") == "Echo: hi"
    assert len(fake_thread.requests) == 1


def test_canary_key_and_prompt_never_logged(
    groq: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="llmrelay")
    handler = ModelHandler()
    secret_prompt = "my-private-prompt-4711"
    assert handler.get_response("llama3-8b", secret_prompt) == f"Echo: {secret_prompt}"
    groq.push(Reply.error(401, f"Incorrect API key provided: {CANARY_KEY}"))
    with pytest.raises(llmrelay.AuthenticationError) as ei:
        handler.get_response("llama3-8b", secret_prompt)
    assert CANARY_KEY not in str(ei.value)

    records = [r for r in caplog.records if r.name == "llmrelay.handler"]
    ok = [r for r in records if getattr(r, "outcome", None) == "success"]
    failed = [r for r in records if getattr(r, "outcome", None) == "error"]
    assert len(ok) == 1
    assert len(failed) == 1
    assert ok[0].levelno == logging.INFO
    assert ok[0].alias == "llama3-8b"
    assert ok[0].latency_s >= 0  # type: ignore[attr-defined]
    assert "llama3-8b" in ok[0].getMessage()
    assert "groq/llama3-8b-8192" in ok[0].getMessage()
    assert failed[0].levelno == logging.WARNING
    assert failed[0].error == "AuthenticationError"  # type: ignore[attr-defined]
    for r in caplog.records:
        text = r.getMessage() + repr(r.__dict__)
        assert CANARY_KEY not in text
        assert secret_prompt not in text
    assert CANARY_KEY not in caplog.text


def test_user_caller_exception_text_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    class LeakyCaller:
        def __init__(self, params: dict[str, Any]) -> None:
            self.params = params

        def call_llm(self, prompt: str) -> str:
            raise RuntimeError(f"failed with key {CANARY_KEY}")

    class LeakyConfig(BaseModelConfig):
        @classmethod
        def alias(cls) -> str:
            return "leaky"

        def get_params(self) -> dict[str, Any]:
            return {"model": "m"}

        def caller_class(self) -> type[LeakyCaller]:
            return LeakyCaller

    caplog.set_level(logging.DEBUG, logger="llmrelay")
    with pytest.raises(RuntimeError):
        ModelHandler({"leaky": LeakyConfig}).get_response("leaky", "hi")
    assert "RuntimeError" in caplog.text
    assert CANARY_KEY not in caplog.text


# --------------------------------------------------------------------------- validation


class _NoModel(GroqBaseConfig):
    @classmethod
    def alias(cls) -> str:
        return "no-model"


class _HotTemperature(LlamaThreeEightBConfig):
    def __init__(self) -> None:
        super().__init__()
        self.temperature = 7


class _NeedsArgs(LlamaThreeEightBConfig):
    def __init__(self, model: str) -> None:
        super().__init__()
        self.model = model


class _BadCallerClass(LlamaThreeEightBConfig):
    def caller_class(self) -> Any:
        return "GroqCaller"


class _BadParams(LlamaThreeEightBConfig):
    def get_params(self) -> Any:
        return [("model", "x")]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (_NoModel, r"configuration 'bad' \(_NoModel\) has no model"),
        (
            _HotTemperature,
            r"configuration 'bad' \(_HotTemperature\): temperature=7 is out of range",
        ),
        (_NeedsArgs, r"_NeedsArgs \(alias 'bad'\) cannot be instantiated without arguments"),
        (_BadCallerClass, r"caller_class\(\) \(alias 'bad'\) returned 'GroqCaller'"),
        (_BadParams, r"get_params\(\) must return a dict, not list"),
        (LlamaThreeEightBConfig(), r"maps alias 'bad' to .*, which is not a configuration class"),
    ],
)
def test_invalid_configuration_is_a_clear_error_before_any_request(
    groq: FakeUpstream, entry: Any, message: str
) -> None:
    handler = ModelHandler({"bad": entry})
    with pytest.raises(ConfigurationError, match=message):
        handler.get_response("bad", "hi")
    assert groq.requests == []


def test_caller_must_return_text() -> None:
    class NumberCaller:
        def __init__(self, params: dict[str, Any]) -> None:
            pass

        def call_llm(self, prompt: str) -> Any:
            return 42

    class NumberConfig(BaseModelConfig):
        @classmethod
        def alias(cls) -> str:
            return "n"

        def get_params(self) -> dict[str, Any]:
            return {}

        def caller_class(self) -> type[NumberCaller]:
            return NumberCaller

    with pytest.raises(ConfigurationError, match="call_llm\\(prompt\\) must return a str"):
        ModelHandler({"n": NumberConfig}).get_response("n", "hi")


def test_prompt_must_be_text(groq: FakeUpstream) -> None:
    with pytest.raises(llmrelay.InvalidRequestError, match="prompt must be a string"):
        ModelHandler().get_response("llama3-8b", ["hi"])  # type: ignore[arg-type]
    with pytest.raises(llmrelay.InvalidRequestError, match="the prompt is empty"):
        ModelHandler().get_response("llama3-8b", "")
    assert groq.requests == []


# --------------------------------------------------------------------------- user callers


class EchoCaller:
    """A caller written by a user, as the seed describes: built with params, call_llm -> str."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params

    def call_llm(self, prompt: str) -> str:
        return f"{self.params['model']} says {prompt}"


class EchoConfig(BaseModelConfig):
    def __init__(self) -> None:
        self.model = "echo-1"

    @classmethod
    def alias(cls) -> str:
        return "echo"

    def get_params(self) -> dict[str, Any]:
        return {"model": self.model}

    def caller_class(self) -> type[EchoCaller]:
        return EchoCaller


def test_user_defined_caller() -> None:
    handler = ModelHandler({"echo": EchoConfig})
    assert handler.get_response("echo", "hi") == "echo-1 says hi"


async def test_async_user_defined_caller_runs_in_a_thread() -> None:
    handler = ModelHandler({"echo": EchoConfig})
    assert await handler.aget_response("echo", "hi") == "echo-1 says hi"


# --------------------------------------------------------------------------- async / event loops


async def test_aget_response(
    fake: FakeUpstream, keys: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GROQ_BASE_URL", fake.openai_base_url)
    client = llmrelay.Client()
    handler = ModelHandler(client=client)
    try:
        assert await handler.aget_response("gemma2-9b", "async hi") == "Echo: async hi"
        assert fake.requests[-1].body["model"] == "gemma2-9b-it"
    finally:
        await client.aclose()


async def test_sync_get_response_inside_a_running_loop(groq: FakeUpstream) -> None:
    # e.g. Jupyter: sync code called while an event loop runs in this thread.
    assert ModelHandler().get_response("llama3-70b", "from a loop") == "Echo: from a loop"
    assert groq.requests[-1].body["model"] == "llama3-70b-8192"


def test_streaming_configuration(groq: FakeUpstream) -> None:
    class Streamed(LlamaThreeEightBConfig):
        def __init__(self) -> None:
            super().__init__()
            self.stream = True

    assert ModelHandler({"s": Streamed}).get_response("s", "stream this") == "Echo: stream this"
    assert groq.requests[-1].body["stream"] is True


def test_repr() -> None:
    assert "CONFIG_REGISTRY" in repr(ModelHandler())
    assert "1 aliases" in repr(ModelHandler({"echo": EchoConfig}))
