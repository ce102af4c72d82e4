"""Seed 002: BaseModelConfig, the registry, provider base configs, model configs, callers and
the factory -- the seed's examples against the fake upstream, and the bad-input cases."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

import llmrelay
from llmrelay import (
    CONFIG_REGISTRY,
    PROVIDERS,
    AnthropicBaseConfig,
    BaseModelConfig,
    ConfigurationError,
    GroqBaseConfig,
    ModelHandler,
    ProviderBaseConfig,
    Secret,
    UnknownModelError,
    create_model,
    register_config,
)
from llmrelay.providers.resolve import Target, resolve_target
from llmrelay.seeds.seed002 import callers, registry
from llmrelay.seeds.seed002.builtin import (
    ClaudeThreeOpusConfig,
    GemmaTwoNineBConfig,
    LlamaThreeEightBConfig,
    LlamaThreeSeventyBConfig,
    MixtralEightXSevenBConfig,
    QwenCoderThirtyTwoBConfig,
)
from llmrelay.seeds.seed002.callers import ChatCaller, GroqCaller
from llmrelay.testing.fake import FakeUpstream

from ..config_isolation import isolated_config
from ..conftest import CANARY_KEY

SEED_PARAM_KEYS = {
    "model",
    "temperature",
    "max_tokens",
    "top_p",
    "frequency_penalty",
    "presence_penalty",
    "api_key",
    "system_message",
    "stream",
    "stop",
}


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    with isolated_config():
        yield


@pytest.fixture
def groq(fake_thread: FakeUpstream, keys: str, monkeypatch: pytest.MonkeyPatch) -> FakeUpstream:
    monkeypatch.setenv("GROQ_BASE_URL", fake_thread.openai_base_url)
    return fake_thread


# --------------------------------------------------------------------------- the seed's classes


def test_base_model_config_is_abstract() -> None:
    with pytest.raises(TypeError, match="abstract"):
        BaseModelConfig()  # type: ignore[abstract]
    with pytest.raises(TypeError, match="abstract"):
        GroqBaseConfig()  # type: ignore[abstract]  # no alias: the seed's provider base


def test_groq_base_config_has_the_seeds_defaults() -> None:
    class PlainGroq(GroqBaseConfig):
        @classmethod
        def alias(cls) -> str:
            return "plain-groq"

    c = PlainGroq()
    assert c.temperature == 0.7
    assert c.max_tokens == 1024
    assert c.api_key_env == "GROQ_API_KEY"
    assert c.top_p == 1.0
    assert c.frequency_penalty == 0.0
    assert c.presence_penalty == 0.0
    assert c.model is None
    assert c.system_message == "You are a helpful assistant."
    assert c.stream is False
    assert c.stop is None
    assert c.caller_class() is GroqCaller


@pytest.mark.parametrize(
    ("alias", "cls", "model", "max_tokens", "base"),
    [
        ("mixtral-8x7b", MixtralEightXSevenBConfig, "mixtral-8x7b-32768", 32768, GroqBaseConfig),
        ("llama3-70b", LlamaThreeSeventyBConfig, "llama3-70b-8192", 8192, GroqBaseConfig),
        ("llama3-8b", LlamaThreeEightBConfig, "llama3-8b-8192", 8192, GroqBaseConfig),
        ("gemma2-9b", GemmaTwoNineBConfig, "gemma2-9b-it", 8192, GroqBaseConfig),
        ("qwen-coder-32b", QwenCoderThirtyTwoBConfig, "qwen-2.5-coder-32b", 8192, GroqBaseConfig),
        ("c3opus", ClaudeThreeOpusConfig, "claude-3-opus-20240229", 4096, AnthropicBaseConfig),
    ],
)
def test_seed_model_configs(
    alias: str, cls: type[ProviderBaseConfig], model: str, max_tokens: int, base: type
) -> None:
    assert CONFIG_REGISTRY[alias] is cls
    assert cls.alias() == alias
    assert issubclass(cls, base)
    c = cls()
    assert c.model == model
    assert c.max_tokens == max_tokens
    assert c.temperature == 0.7
    assert c.system_message == "You are a helpful assistant."
    assert c.caller_class().provider == base.provider
    assert repr(c) == f"<{cls.__name__} alias={alias!r} {base.provider}/{model}>"


def test_get_params_is_the_seeds_dict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_API_KEY", CANARY_KEY)
    p = MixtralEightXSevenBConfig().get_params()
    assert set(p) >= SEED_PARAM_KEYS
    assert {k: p[k] for k in SEED_PARAM_KEYS - {"api_key"}} == {
        "model": "mixtral-8x7b-32768",
        "temperature": 0.7,
        "max_tokens": 32768,
        "top_p": 1.0,
        "frequency_penalty": 0.0,
        "presence_penalty": 0.0,
        "system_message": "You are a helpful assistant.",
        "stream": False,
        "stop": None,
    }
    assert p["provider"] == "groq"
    assert p["api_key_env"] == "GROQ_API_KEY"
    # The key (seed: os.getenv(self.api_key_env, "")) is wrapped so it never prints.
    key = p["api_key"]
    assert isinstance(key, Secret)
    assert key.get() == CANARY_KEY
    assert CANARY_KEY not in repr(key)
    assert CANARY_KEY not in str(key)
    assert CANARY_KEY not in repr(p)
    assert CANARY_KEY not in str(p)
    assert CANARY_KEY not in f"{p}"
    caller = MixtralEightXSevenBConfig().caller_class()(p)
    assert CANARY_KEY not in repr(caller)
    assert CANARY_KEY not in repr(vars(caller))


def test_get_params_without_a_key_is_empty_string() -> None:
    assert MixtralEightXSevenBConfig().get_params()["api_key"] == ""


def test_register_config_decorator_as_in_the_seed(groq: FakeUpstream) -> None:
    # The seed's "Creating Model-Specific Configurations" example, verbatim in spirit.
    @register_config
    class LlamaThreeSeventyBConfig(GroqBaseConfig):
        @classmethod
        def alias(cls) -> str:
            return "llama3-70b"

        def __init__(self) -> None:
            super().__init__()
            self.model = "llama3-70b-8192"
            self.max_tokens = 8192

    assert CONFIG_REGISTRY["llama3-70b"] is LlamaThreeSeventyBConfig  # replaces the built-in
    assert ModelHandler().get_response("llama3-70b", "hi") == "Echo: hi"
    # Alias resolution everywhere follows the registry (its target cache is per class).
    assert resolve_target("llama3-70b").model == "llama3-70b-8192"


def test_caller_from_caller_class_and_get_params(groq: FakeUpstream) -> None:
    config = CONFIG_REGISTRY["llama3-8b"]()
    caller_cls = config.caller_class()
    assert caller_cls is GroqCaller
    assert issubclass(caller_cls, ChatCaller)
    caller = caller_cls(config.get_params())
    assert (
        caller.call_llm("What is the capital of France?") == "Echo: What is the capital of France?"
    )
    body = groq.requests[-1].body
    assert body["model"] == "llama3-8b-8192"
    assert body["max_tokens"] == 8192
    assert body["messages"][0] == {"role": "system", "content": "You are a helpful assistant."}
    assert groq.requests[-1].headers["authorization"] == f"Bearer {CANARY_KEY}"


async def test_caller_acall_llm(
    fake: FakeUpstream, keys: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GROQ_BASE_URL", fake.openai_base_url)
    client = llmrelay.Client()
    try:
        caller = GroqCaller(GemmaTwoNineBConfig().get_params(), client=client)
        assert await caller.acall_llm("async") == "Echo: async"
        assert caller.provider_name == "groq"
        assert caller.model == "gemma2-9b-it"
    finally:
        await client.aclose()


def test_caller_class_names() -> None:
    assert callers.caller_for_provider("openai").__name__ == "OpenAICaller"
    assert callers.caller_for_provider("deepseek").__name__ == "DeepSeekCaller"
    assert callers.caller_for_provider("openrouter").__name__ == "OpenRouterCaller"
    assert callers.caller_for_provider("groq") is GroqCaller
    with pytest.raises(UnknownModelError, match="no caller for unknown provider 'nope'"):
        callers.caller_for_provider("nope")


# --------------------------------------------------------------------------- user configs


class SeedStyleGroqConfig(BaseModelConfig):
    """A configuration written exactly in the seed's style: BaseModelConfig directly, its own
    attributes, get_params() with os.getenv, and a caller class."""

    def __init__(self) -> None:
        self.temperature = 0.7
        self.max_tokens = 1024
        self.api_key_env = "GROQ_API_KEY"
        self.top_p = 1.0
        self.frequency_penalty = 0.0
        self.presence_penalty = 0.0
        self.model = "llama3-8b-8192"
        self.system_message = "You are a helpful assistant."
        self.stream = False
        self.stop = None

    @classmethod
    def alias(cls) -> str:
        return "my-llama"

    def get_params(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
            "frequency_penalty": self.frequency_penalty,
            "presence_penalty": self.presence_penalty,
            "api_key": os.getenv(self.api_key_env, ""),
            "system_message": self.system_message,
            "stream": self.stream,
            "stop": self.stop,
        }

    def caller_class(self) -> type[GroqCaller]:
        from llmrelay.seeds.seed002.callers import GroqCaller

        return GroqCaller


def test_user_config_in_the_seeds_style(groq: FakeUpstream) -> None:
    register_config(SeedStyleGroqConfig)
    assert "my-llama" in ModelHandler().list_available_models()
    assert ModelHandler().get_response("my-llama", "one") == "Echo: one"
    config = SeedStyleGroqConfig()
    assert config.caller_class()(config.get_params()).call_llm("two") == "Echo: two"
    # The alias works everywhere a model name does.
    assert llmrelay.chat("my-llama", "three").text == "Echo: three"
    assert [r.body["model"] for r in groq.requests] == ["llama3-8b-8192"] * 3
    assert all(r.headers["authorization"] == f"Bearer {CANARY_KEY}" for r in groq.requests)
    # create_model works on it too, and validates it.
    assert create_model("my-llama", temperature=0.1).temperature == 0.1  # type: ignore[attr-defined]
    with pytest.raises(ConfigurationError, match="temperature=3 is out of range"):
        create_model("my-llama", temperature=3)


def test_seed_style_config_reads_a_rotated_key(
    groq: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_config(SeedStyleGroqConfig)
    handler = ModelHandler()
    assert handler.get_response("my-llama", "a") == "Echo: a"
    monkeypatch.delenv("GROQ_API_KEY")
    with pytest.raises(llmrelay.MissingAPIKeyError, match="GROQ_API_KEY"):
        handler.get_response("my-llama", "b")  # the cached caller does not keep the old key
    assert len(groq.requests) == 1


def test_user_config_without_provider_is_a_clear_error() -> None:
    class Vague(BaseModelConfig):
        @classmethod
        def alias(cls) -> str:
            return "vague"

        def get_params(self) -> dict[str, Any]:
            return {"model": "some-model"}

        def caller_class(self) -> type[ChatCaller]:
            return ChatCaller

    with pytest.raises(ConfigurationError, match="does not say its provider; subclass a provider"):
        ModelHandler({"vague": Vague}).get_response("vague", "hi")


def test_provider_base_config_without_provider() -> None:
    class Nowhere(ProviderBaseConfig):
        @classmethod
        def alias(cls) -> str:
            return "nowhere"

    with pytest.raises(UnknownModelError, match="must set `provider`"):
        Nowhere().caller_class()


# --------------------------------------------------------------------------- create_model


def test_create_model_as_in_the_seed() -> None:
    custom_model = create_model("mixtral-8x7b", temperature=0.9)
    assert isinstance(custom_model, MixtralEightXSevenBConfig)
    assert custom_model.temperature == 0.9
    assert custom_model.max_tokens == 32768
    assert custom_model.model == "mixtral-8x7b-32768"
    assert custom_model.get_params()["temperature"] == 0.9
    c = create_model("c3opus", max_tokens=100, system_message="Be brief.", stop=["END"])
    assert (c.max_tokens, c.system_message, c.stop) == (100, "Be brief.", ["END"])  # type: ignore[attr-defined]


def test_create_model_unknown_attribute_names_the_known_ones() -> None:
    with pytest.raises(ConfigurationError) as ei:
        create_model("mixtral-8x7b", temprature=0.9)
    msg = str(ei.value)
    assert "has no attribute 'temprature'" in msg
    assert "did you mean 'temperature'?" in msg
    for known in ("temperature", "max_tokens", "top_p", "system_message", "stop", "base_url"):
        assert known in msg
    with pytest.raises(ConfigurationError, match="has no attribute 'get_params'"):
        create_model("mixtral-8x7b", get_params=dict)
    with pytest.raises(ConfigurationError, match="has no attribute '_private'"):
        create_model("mixtral-8x7b", _private=1)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"temperature": 7}, r"temperature=7 is out of range; use a value from 0 to 2"),
        ({"max_tokens": -1}, r"max_tokens must be a positive integer, not -1"),
        ({"top_p": 1.5}, r"top_p=1.5 is out of range"),
        ({"stop": [1]}, r"stop must be a string or a list of strings"),
        ({"model": ""}, r"has no model"),
        ({"system_message": 3}, r"system_message must be a string"),
        ({"base_url": "localhost:8000"}, r"base_url must start with http:// or https://"),
        ({"stream": "yes"}, r"stream must be True or False"),
        ({"fallbacks": "gpt-4o"}, r"fallbacks must be a list"),
        ({"fallbacks": ["mixtral-8x7b"]}, r"lists itself \('mixtral-8x7b'\) as a fallback"),
    ],
)
def test_create_model_validates_values(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as ei:
        create_model("mixtral-8x7b", **overrides)
    assert "configuration 'mixtral-8x7b' (MixtralEightXSevenBConfig)" in str(ei.value)
    field = next(iter(overrides))
    assert getattr(ei.value, "field", None) == field


def test_create_model_unknown_alias() -> None:
    with pytest.raises(ValueError, match=r"Model alias 'mixtral' not found\.") as ei:
        create_model("mixtral")
    assert isinstance(ei.value, UnknownModelError)
    assert "Did you mean" in str(ei.value)
    assert "'mixtral-8x7b'" in str(ei.value)


# --------------------------------------------------------------------------- the registry


def test_every_builtin_alias_resolves_to_a_known_provider() -> None:
    assert len(CONFIG_REGISTRY) >= 20
    for alias, cls in CONFIG_REGISTRY.items():
        assert cls.alias() == alias
        target = registry.lookup(alias)
        assert target is not None
        assert target.alias == alias
        assert target.provider in PROVIDERS, alias
        assert target.model
        config = cls()
        caller_cls = config.caller_class()
        assert issubclass(caller_cls, ChatCaller)
        assert caller_cls.provider == target.provider
        # The class (ModelHandler, create_model) keeps the seed's defaults; the alias itself
        # stands for its provider and model only (issue 10).
        seeded = registry.validate_config(config)
        assert seeded is not None
        assert (seeded.provider, seeded.model, seeded.alias) == (
            target.provider,
            target.model,
            alias,
        )
        assert seeded.system_message == "You are a helpful assistant."
        assert seeded.params.temperature == 0.7
        assert target == Target(target.provider, target.model, alias=alias)


def test_current_models_of_every_wire_api() -> None:
    providers = {registry.lookup(a).provider for a in CONFIG_REGISTRY}  # type: ignore[union-attr]
    assert {"openai", "anthropic", "gemini", "groq"} <= providers


def test_register_config_rejects_bad_input() -> None:
    with pytest.raises(ConfigurationError, match="expects a BaseModelConfig subclass"):
        register_config(MixtralEightXSevenBConfig())  # type: ignore[arg-type]

    class NoAlias(GroqBaseConfig):
        @classmethod
        def alias(cls) -> str:
            return ""

    with pytest.raises(ConfigurationError, match=r"NoAlias.alias\(\) must return a non-empty"):
        register_config(NoAlias)


def test_define_config_unknown_attribute() -> None:
    with pytest.raises(
        ConfigurationError, match=r"unknown attribute 'temprature'.*did you mean 'temperature'"
    ):
        registry.define_config("x", "groq", "m", temprature=0.1)
    assert "x" not in CONFIG_REGISTRY


def test_define_config_unknown_provider() -> None:
    with pytest.raises(
        UnknownModelError, match=r"unknown provider 'nope'; known providers: .*groq"
    ):
        registry.define_config("x", "nope", "m")


def test_lookup_follows_a_replaced_class() -> None:
    first = registry.lookup("llama3-8b")
    assert first is not None
    assert first.model == "llama3-8b-8192"
    registry.define_config("llama3-8b", "groq", "llama-3.1-8b-instant")
    second = registry.lookup("llama3-8b")
    assert second is not None
    assert second.model == "llama-3.1-8b-instant"


def test_literal_key_in_a_config_is_kept_secret(
    groq: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GROQ_API_KEY")

    class WithKey(LlamaThreeEightBConfig):
        def get_params(self) -> dict[str, Any]:
            return {**super().get_params(), "api_key": CANARY_KEY}

    target = registry.target_from_config(WithKey(), "with-key")
    assert target.api_key == Secret(CANARY_KEY)
    assert CANARY_KEY not in repr(target)
    assert ModelHandler({"k": WithKey}).get_response("k", "hi") == "Echo: hi"
    assert groq.requests[-1].headers["authorization"] == f"Bearer {CANARY_KEY}"
