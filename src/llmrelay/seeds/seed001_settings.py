"""Seed 001's enums and settings: ``LLMProviders``, ``LLMModels`` and ``LLMSettings``.

``LLMSettings`` holds which providers and models a client may use, the default (provider,
model), and a base URL and API key per provider. Build it directly or from the environment with
:meth:`LLMSettings.from_env`:

==========================  ========================================================
``LLM_ALLOWED_PROVIDERS``   comma list (or JSON list); empty or unset: every provider
``LLM_ALLOWED_MODELS``      comma list; empty or unset: any model. ``provider/model``
                            entries name the provider; bare names use the known model
                            table, then the name's prefix, then the default provider
``LLM_DEFAULT_PROVIDER``    default ``openai``
``LLM_DEFAULT_MODEL``       default ``gpt-4.1-mini``
``<PROVIDER>_BASE_URL``     e.g. ``OPENAI_BASE_URL``, ``GROQ_BASE_URL``
``<PROVIDER>_API_KEY``      e.g. ``OPENAI_API_KEY`` (stored as ``llmrelay.Secret``)
==========================  ========================================================

Everything is validated at construction; a problem raises ``ConfigurationError`` naming the
setting, its variable and the fix. Keys never appear in a repr or an error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from enum import Enum, StrEnum
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, ValidationError

from ..errors import ConfigurationError
from ..providers.table import PROVIDERS, Secret, infer_provider

__all__ = ["LLMModels", "LLMProviders", "LLMSettings", "field_errors", "plain", "split_model_ref"]


class LLMProviders(StrEnum):
    """Every provider llmrelay can chat with (the ``test`` doubles and the embeddings-only
    ``voyage`` and ``cohere`` aside)."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    GEMINI = "gemini"
    GROQ = "groq"
    MISTRAL = "mistral"
    DEEPSEEK = "deepseek"
    TOGETHER = "together"
    OPENROUTER = "openrouter"
    FIREWORKS = "fireworks"
    XAI = "xai"
    OLLAMA = "ollama"
    VLLM = "vllm"
    LMSTUDIO = "lmstudio"
    AZURE = "azure"
    GEMINI_OPENAI = "gemini_openai"


class LLMModels(StrEnum):
    """Well-known model ids. Any other model name works too, as a plain string.

    The seed's three come first; the rest are the models their providers serve on 2026-11-24,
    newest first (deprecated ones answer until their shutdown date: see the catalog), and the
    two Groq Llama ids kept for existing code although Groq shut them down."""

    # the seed's (gpt-4.1-nano and o4-mini were shut down on 2026-10-23)
    GPT_4_1_NANO = "gpt-4.1-nano"
    GPT_4_1_MINI = "gpt-4.1-mini"
    O4_MINI = "o4-mini"
    # OpenAI
    GPT_6_2_ASTRA = "gpt-6.2-astra"
    GPT_6_2_SOL = "gpt-6.2-sol"
    GPT_6_ASTRA = "gpt-6-astra"
    GPT_6_1_SOL = "gpt-6.1-sol"
    GPT_6_SOL = "gpt-6-sol"
    GPT_6_1_TERRA = "gpt-6.1-terra"
    GPT_6_LUNA = "gpt-6-luna"
    GPT_5_6_SOL = "gpt-5.6-sol"
    GPT_5_6_TERRA = "gpt-5.6-terra"
    GPT_5_6_LUNA = "gpt-5.6-luna"
    GPT_5_5 = "gpt-5.5"
    GPT_5 = "gpt-5"
    GPT_5_MINI = "gpt-5-mini"
    GPT_5_NANO = "gpt-5-nano"
    O3 = "o3"
    GPT_4_1 = "gpt-4.1"
    GPT_4O = "gpt-4o"
    GPT_4O_MINI = "gpt-4o-mini"
    # Anthropic
    CLAUDE_FABLE_5_1 = "claude-fable-5-1"
    CLAUDE_OPUS_5_5 = "claude-opus-5-5"
    CLAUDE_SONNET_5_5 = "claude-sonnet-5-5"
    CLAUDE_HAIKU_5_5 = "claude-haiku-5-5"
    CLAUDE_OPUS_4_6 = "claude-opus-4-6"
    CLAUDE_SONNET_4_6 = "claude-sonnet-4-6"
    CLAUDE_OPUS_4_5 = "claude-opus-4-5"
    CLAUDE_SONNET_4_5 = "claude-sonnet-4-5"
    CLAUDE_HAIKU_4_5 = "claude-haiku-4-5"
    # Google Gemini
    GEMINI_4_ARGON = "gemini-4-argon"
    GEMINI_3_8_FLASH = "gemini-3.8-flash"
    GEMINI_3_5_FLASH = "gemini-3.5-flash"
    GEMINI_3_5_FLASH_LITE = "gemini-3.5-flash-lite"
    GEMINI_3_1_FLASH_LITE = "gemini-3.1-flash-lite"
    GEMINI_2_5_PRO = "gemini-2.5-pro"
    GEMINI_2_5_FLASH = "gemini-2.5-flash"
    GEMINI_2_5_FLASH_LITE = "gemini-2.5-flash-lite"
    # Groq
    GPT_OSS_120B = "openai/gpt-oss-120b"
    GPT_OSS_20B = "openai/gpt-oss-20b"
    QWEN_3_6_27B = "qwen/qwen3.6-27b"
    LLAMA_3_3_70B_VERSATILE = "llama-3.3-70b-versatile"  # shut down 2026-08-16
    LLAMA_3_1_8B_INSTANT = "llama-3.1-8b-instant"  # shut down 2026-08-16

    @property
    def provider(self) -> LLMProviders:
        return _MODEL_PROVIDERS[self.value]


_P = LLMProviders
_MODEL_PROVIDERS: dict[str, LLMProviders] = {
    m.value: (
        _P.ANTHROPIC
        if m.value.startswith("claude-")
        else _P.GEMINI
        if m.value.startswith("gemini-")
        else _P.GROQ
        if m.value.startswith(("llama-", "openai/gpt-oss", "qwen/"))
        else _P.OPENAI
    )
    for m in LLMModels
}


def split_model_ref(ref: str) -> tuple[str, str] | None:
    """``(provider, model)`` for a known model id, ``provider/model``, or a name whose prefix
    implies its provider (``gpt-``, ``claude-``, ``gemini-``, ...); None if unknown."""
    known = _MODEL_PROVIDERS.get(ref)
    if known is not None:
        return known.value, ref
    provider, sep, model = ref.partition("/")
    if sep and model and provider in PROVIDERS:
        return provider, model
    inferred = infer_provider(ref)
    return (inferred, ref) if inferred else None


# --------------------------------------------------------------------------- field types


def plain(v: Any) -> Any:
    """An enum member's value (``LLMProviders.OPENAI`` -> ``"openai"``); anything else as is."""
    return v.value if isinstance(v, Enum) else v


def field_errors(exc: ValidationError) -> str:
    """Pydantic errors without the input values (which may be secrets)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
        for e in exc.errors(include_url=False, include_input=False)
    )


def _names(v: Any) -> Any:
    """A list setting: a list, or a comma-separated / JSON-list string; blanks dropped."""
    if v is None:
        return []
    if isinstance(v, str):
        text = v.strip()
        if text.startswith("["):
            try:
                v = orjson.loads(text)
            except orjson.JSONDecodeError:
                raise ValueError(f"{text!r} is not a JSON list") from None
        else:
            v = text.split(",")
    if isinstance(v, list | tuple | set | frozenset):
        out = []
        for item in v:
            item = plain(item)
            if isinstance(item, str):
                item = item.strip()
                if not item:
                    continue
            out.append(item)
        return out
    return v


def _provider_names(v: Any) -> Any:
    v = _names(v)
    return [x.lower() if isinstance(x, str) else x for x in v] if isinstance(v, list) else v


def _provider_name(v: Any) -> Any:
    v = plain(v)
    return v.strip().lower() if isinstance(v, str) else v


def _model_name(v: Any) -> Any:
    v = plain(v)
    return v.strip() if isinstance(v, str) else v


def _url(v: Any) -> Any:
    if isinstance(v, str):
        v = v.strip()
        return v or None
    return v


def _secret(v: Any) -> Any:
    if isinstance(v, Secret):
        return v if v.get() else None
    if isinstance(v, str):
        return Secret(v) if v else None
    if v is not None:
        raise ValueError("an API key must be a string")  # the value itself is never shown
    return v


def _mask(v: Secret | None) -> str | None:
    return None if v is None else "**********"


Names = Annotated[list[str], BeforeValidator(_names)]
ProviderNames = Annotated[list[str], BeforeValidator(_provider_names)]
ProviderName = Annotated[str, BeforeValidator(_provider_name)]
ModelName = Annotated[str, BeforeValidator(_model_name)]
Url = Annotated[str | None, BeforeValidator(_url)]
Key = Annotated[Secret | None, BeforeValidator(_secret), PlainSerializer(_mask, when_used="json")]


# --------------------------------------------------------------------------- settings


class LLMSettings(BaseModel):
    """Allowed and default providers/models, and each provider's base URL and API key."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    allowed_providers: ProviderNames = []
    allowed_models: Names = []
    default_provider: ProviderName = "openai"
    default_model: ModelName = "gpt-4.1-mini"

    provider_openai_base_url: Url = None
    provider_openai_api_key: Key = None
    provider_anthropic_base_url: Url = None
    provider_anthropic_api_key: Key = None
    provider_gemini_base_url: Url = None
    provider_gemini_api_key: Key = None
    provider_groq_base_url: Url = None
    provider_groq_api_key: Key = None
    provider_mistral_base_url: Url = None
    provider_mistral_api_key: Key = None
    provider_deepseek_base_url: Url = None
    provider_deepseek_api_key: Key = None
    provider_together_base_url: Url = None
    provider_together_api_key: Key = None
    provider_openrouter_base_url: Url = None
    provider_openrouter_api_key: Key = None
    provider_fireworks_base_url: Url = None
    provider_fireworks_api_key: Key = None
    provider_xai_base_url: Url = None
    provider_xai_api_key: Key = None
    provider_ollama_base_url: Url = None
    provider_ollama_api_key: Key = None
    provider_vllm_base_url: Url = None
    provider_vllm_api_key: Key = None
    provider_lmstudio_base_url: Url = None
    provider_lmstudio_api_key: Key = None
    provider_azure_base_url: Url = None
    provider_azure_api_key: Key = None
    provider_gemini_openai_base_url: Url = None
    provider_gemini_openai_api_key: Key = None

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigurationError(f"invalid LLMSettings: {field_errors(exc)}") from None
        self._check()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> LLMSettings:
        """Settings from environment variables (see the module docstring); ``overrides`` win."""
        env = os.environ if environ is None else environ
        data: dict[str, Any] = {}
        for name, var in (
            ("allowed_providers", "LLM_ALLOWED_PROVIDERS"),
            ("allowed_models", "LLM_ALLOWED_MODELS"),
            ("default_provider", "LLM_DEFAULT_PROVIDER"),
            ("default_model", "LLM_DEFAULT_MODEL"),
        ):
            value = env.get(var)
            if value is not None and value.strip():
                data[name] = value
        for p in LLMProviders:
            spec = PROVIDERS.get(p.value)
            if spec is None:
                continue
            url = _first(env, (spec.base_url_var, *spec.alt_base_url_envs))
            key = _first(env, (spec.key_env, *spec.alt_key_envs))
            if url:
                data[f"provider_{p.value}_base_url"] = url
            if key:
                data[f"provider_{p.value}_api_key"] = key
        data.update(overrides)
        return cls(**data)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            if value is not None or not (name or "").startswith("provider_"):
                yield name, value

    # ------------------------------------------------------------------ validation

    def _check(self) -> None:
        known = ", ".join(sorted(p for p in PROVIDERS if p != "test"))
        for p in self.allowed_providers:
            if p not in PROVIDERS:
                raise ConfigurationError(
                    f"allowed_providers (LLM_ALLOWED_PROVIDERS) names unknown provider {p!r}; "
                    f"known providers: {known}"
                )
        if self.default_provider not in PROVIDERS:
            raise ConfigurationError(
                f"default_provider (LLM_DEFAULT_PROVIDER) {self.default_provider!r} is not a "
                f"known provider; known providers: {known}"
            )
        if self.allowed_providers and self.default_provider not in self.allowed_providers:
            raise ConfigurationError(
                f"default_provider {self.default_provider!r} is not in allowed_providers "
                f"({', '.join(self.allowed_providers)}); add it to LLM_ALLOWED_PROVIDERS or "
                "change LLM_DEFAULT_PROVIDER"
            )
        if not self.default_model:
            raise ConfigurationError("default_model (LLM_DEFAULT_MODEL) must not be empty")
        if not self.model_allowed(self.default_provider, self.default_model):
            raise ConfigurationError(
                f"default_model {self.default_model!r} is not in allowed_models "
                f"({', '.join(self.allowed_models)}); add it to LLM_ALLOWED_MODELS or change "
                "LLM_DEFAULT_MODEL"
            )
        for entry in self.allowed_models:
            provider, _ = self._entry(entry)
            if self.allowed_providers and provider not in self.allowed_providers:
                raise ConfigurationError(
                    f"allowed_models entry {entry!r} belongs to provider {provider!r}, which is "
                    f"not in allowed_providers ({', '.join(self.allowed_providers)}); write it "
                    "as 'provider/model' or allow the provider"
                )
        for p in LLMProviders:
            url = self.base_url_for(p.value)
            if url is not None and not url.startswith(("http://", "https://")):
                var = PROVIDERS[p.value].base_url_var if p.value in PROVIDERS else "?"
                raise ConfigurationError(
                    f"provider_{p.value}_base_url ({var}) must be an http:// or https:// URL, "
                    f"not {url[:100]!r}"
                )

    # ------------------------------------------------------------------ queries

    def api_key_for(self, provider: str) -> Secret | None:
        value = getattr(self, f"provider_{provider}_api_key", None)
        return value if isinstance(value, Secret) else None

    def base_url_for(self, provider: str) -> str | None:
        value = getattr(self, f"provider_{provider}_base_url", None)
        return value if isinstance(value, str) else None

    def api_keys(self) -> list[Secret]:
        """Every key set (for scrubbing them out of error text)."""
        keys = (self.api_key_for(p.value) for p in LLMProviders)
        return [k for k in keys if k is not None]

    def model_allowed(self, provider: str, model: str) -> bool:
        if not self.allowed_models:
            return True
        return model in self.allowed_models or f"{provider}/{model}" in self.allowed_models

    def not_allowed_reason(self, provider: str, model: str) -> str | None:
        """Why (provider, model) may not be used under these settings, or None."""
        if self.allowed_providers and provider not in self.allowed_providers:
            return f"provider {provider!r} is not in allowed_providers"
        if not self.model_allowed(provider, model):
            return f"model {model!r} is not in allowed_models"
        return None

    def fallback_candidates(self) -> list[tuple[str, str]]:
        """The default (provider, model), then every allowed model, in order."""
        out = [(self.default_provider, self.default_model)]
        out.extend(self._entry(e) for e in self.allowed_models)
        return list(dict.fromkeys(out))

    def _entry(self, entry: str) -> tuple[str, str]:
        return split_model_ref(entry) or (self.default_provider, entry)


def _first(env: Mapping[str, str], names: tuple[str | None, ...]) -> str | None:
    """The first of ``names`` set in ``env``, stripped (as the engine reads the environment:
    a key pasted with a trailing newline still works)."""
    for n in names:
        if n:
            v = env.get(n, "").strip()
            if v:
                return v
    return None
