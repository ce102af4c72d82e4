"""Built-in model configurations: the aliases the seeds use (kept although their models are
retired), plus the current OpenAI, Anthropic, Gemini and Groq models. Each is registered in
``CONFIG_REGISTRY`` under its alias."""

from __future__ import annotations

from .base import register_config
from .provider_configs import AnthropicBaseConfig, GroqBaseConfig
from .registry import define_config

# --------------------------------------------------------------------------- the seeds' aliases


@register_config
class MixtralEightXSevenBConfig(GroqBaseConfig):
    """Mixtral 8x7B on Groq (seed 002)."""

    @classmethod
    def alias(cls) -> str:
        return "mixtral-8x7b"

    def __init__(self) -> None:
        super().__init__()
        self.model = "mixtral-8x7b-32768"
        self.max_tokens = 32768


@register_config
class LlamaThreeSeventyBConfig(GroqBaseConfig):
    """Llama 3 70B on Groq (seed 002)."""

    @classmethod
    def alias(cls) -> str:
        return "llama3-70b"

    def __init__(self) -> None:
        super().__init__()
        self.model = "llama3-70b-8192"
        self.max_tokens = 8192


@register_config
class LlamaThreeEightBConfig(GroqBaseConfig):
    """Llama 3 8B on Groq (seed 000)."""

    @classmethod
    def alias(cls) -> str:
        return "llama3-8b"

    def __init__(self) -> None:
        super().__init__()
        self.model = "llama3-8b-8192"
        self.max_tokens = 8192


@register_config
class GemmaTwoNineBConfig(GroqBaseConfig):
    """Gemma 2 9B on Groq (seed 002)."""

    @classmethod
    def alias(cls) -> str:
        return "gemma2-9b"

    def __init__(self) -> None:
        super().__init__()
        self.model = "gemma2-9b-it"
        self.max_tokens = 8192


@register_config
class QwenCoderThirtyTwoBConfig(GroqBaseConfig):
    """Qwen 2.5 Coder 32B on Groq (seed 000)."""

    @classmethod
    def alias(cls) -> str:
        return "qwen-coder-32b"

    def __init__(self) -> None:
        super().__init__()
        self.model = "qwen-2.5-coder-32b"
        self.max_tokens = 8192


@register_config
class ClaudeThreeOpusConfig(AnthropicBaseConfig):
    """Claude 3 Opus (seed 000's ``c3opus``)."""

    @classmethod
    def alias(cls) -> str:
        return "c3opus"

    def __init__(self) -> None:
        super().__init__()
        self.model = "claude-3-opus-20240229"
        self.max_tokens = 4096


# --------------------------------------------------------------------------- current models

#: ``(alias, provider model id)`` per provider: the models each provider serves on 2026-11-24
#: (newest first), including deprecated ones that still answer until their shutdown date (see
#: the catalog). Models already shut down have no built-in alias, except the seeds' above.
CURRENT_MODELS: dict[str, tuple[tuple[str, str], ...]] = {
    "openai": (
        ("gpt-6.2-astra", "gpt-6.2-astra"),
        ("gpt-6.2-sol", "gpt-6.2-sol"),
        ("gpt-6-astra", "gpt-6-astra"),
        ("gpt-6.1-sol", "gpt-6.1-sol"),
        ("gpt-6-sol", "gpt-6-sol"),
        ("gpt-6.1-terra", "gpt-6.1-terra"),
        ("gpt-6-luna", "gpt-6-luna"),
        ("gpt-5.6-sol", "gpt-5.6-sol"),
        ("gpt-5.6-terra", "gpt-5.6-terra"),
        ("gpt-5.6-luna", "gpt-5.6-luna"),
        ("gpt-5.5", "gpt-5.5"),
        ("gpt-5", "gpt-5"),  # shuts down 2026-12-11
        ("gpt-5-mini", "gpt-5-mini"),  # shuts down 2026-12-11
        ("gpt-5-nano", "gpt-5-nano"),  # shuts down 2026-12-11
        ("o3", "o3"),  # shuts down 2026-12-11
        ("gpt-4.1", "gpt-4.1"),  # shuts down 2027-01-14
        ("gpt-4.1-mini", "gpt-4.1-mini"),  # shuts down 2027-01-14
        ("gpt-4o", "gpt-4o"),  # shuts down 2027-01-14
        ("gpt-4o-mini", "gpt-4o-mini"),  # shuts down 2027-01-14
    ),
    "anthropic": (
        ("claude-fable-5-1", "claude-fable-5-1"),
        ("claude-opus-5-5", "claude-opus-5-5"),
        ("claude-sonnet-5-5", "claude-sonnet-5-5"),
        ("claude-haiku-5-5", "claude-haiku-5-5"),
        ("claude-opus-5", "claude-opus-5"),
        ("claude-sonnet-5", "claude-sonnet-5"),
        ("claude-opus-4-8", "claude-opus-4-8"),
        ("claude-opus-4-6", "claude-opus-4-6"),
        ("claude-sonnet-4-6", "claude-sonnet-4-6"),
        ("claude-opus-4-5", "claude-opus-4-5"),
        ("claude-sonnet-4-5", "claude-sonnet-4-5"),
        ("claude-haiku-4-5", "claude-haiku-4-5"),
    ),
    "gemini": (
        ("gemini-4-argon", "gemini-4-argon"),
        ("gemini-3.8-flash", "gemini-3.8-flash"),
        ("gemini-3.5-flash", "gemini-3.5-flash"),
        ("gemini-3.5-flash-lite", "gemini-3.5-flash-lite"),
        ("gemini-3.1-flash-lite", "gemini-3.1-flash-lite"),
        ("gemini-2.5-pro", "gemini-2.5-pro"),  # shuts down 2026-12-01
        ("gemini-2.5-flash", "gemini-2.5-flash"),  # shuts down 2026-12-01
        ("gemini-2.5-flash-lite", "gemini-2.5-flash-lite"),
    ),
    "groq": (
        ("gpt-oss-120b", "openai/gpt-oss-120b"),
        ("gpt-oss-20b", "openai/gpt-oss-20b"),
        ("qwen3.6-27b", "qwen/qwen3.6-27b"),  # a preview model on Groq
    ),
}

for _provider, _rows in CURRENT_MODELS.items():
    for _alias, _model in _rows:
        define_config(_alias, _provider, _model, max_tokens=4096, module=__name__)
