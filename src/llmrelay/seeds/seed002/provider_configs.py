"""One base configuration per provider, with the seed's defaults (seed 002's GroqBaseConfig
pattern). Model configurations subclass these and set ``model`` (and maybe ``max_tokens``)."""

from __future__ import annotations

from .base import ProviderBaseConfig

__all__ = [
    "AnthropicBaseConfig",
    "AzureBaseConfig",
    "DeepSeekBaseConfig",
    "FireworksBaseConfig",
    "GeminiBaseConfig",
    "GroqBaseConfig",
    "LMStudioBaseConfig",
    "MistralBaseConfig",
    "OllamaBaseConfig",
    "OpenAIBaseConfig",
    "OpenRouterBaseConfig",
    "TogetherBaseConfig",
    "VLLMBaseConfig",
    "XAIBaseConfig",
]


class GroqBaseConfig(ProviderBaseConfig):
    """Groq: temperature 0.7, max_tokens 1024, GROQ_API_KEY, top_p 1.0, penalties 0.0,
    system message "You are a helpful assistant.", stream False, stop None (seed 002)."""

    provider = "groq"


class OpenAIBaseConfig(ProviderBaseConfig):
    provider = "openai"


class AzureBaseConfig(ProviderBaseConfig):
    provider = "azure"


class AnthropicBaseConfig(ProviderBaseConfig):
    """Anthropic has no frequency/presence penalties, and its newer models reject
    temperature together with top_p: those defaults are unset."""

    provider = "anthropic"

    def __init__(self) -> None:
        super().__init__()
        self.top_p = None
        self.frequency_penalty = None
        self.presence_penalty = None


class GeminiBaseConfig(ProviderBaseConfig):
    provider = "gemini"

    def __init__(self) -> None:
        super().__init__()
        self.frequency_penalty = None
        self.presence_penalty = None


class MistralBaseConfig(ProviderBaseConfig):
    provider = "mistral"

    def __init__(self) -> None:
        super().__init__()
        self.frequency_penalty = None
        self.presence_penalty = None


class DeepSeekBaseConfig(ProviderBaseConfig):
    provider = "deepseek"


class TogetherBaseConfig(ProviderBaseConfig):
    provider = "together"


class OpenRouterBaseConfig(ProviderBaseConfig):
    provider = "openrouter"


class FireworksBaseConfig(ProviderBaseConfig):
    provider = "fireworks"


class XAIBaseConfig(ProviderBaseConfig):
    provider = "xai"


class OllamaBaseConfig(ProviderBaseConfig):
    provider = "ollama"


class VLLMBaseConfig(ProviderBaseConfig):
    provider = "vllm"


class LMStudioBaseConfig(ProviderBaseConfig):
    provider = "lmstudio"
