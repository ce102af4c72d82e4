"""Built-in model configurations: the aliases the seeds use (kept although their models are
retired), plus the current OpenAI, Anthropic, Gemini and Groq models. Each is registered in
``CONFIG_REGISTRY`` under its alias when seed 002 is imported.

The aliases themselves are data of the alias table (:mod:`llmrelay.providers.aliases`:
``SEED_ALIASES``, ``CURRENT_MODELS``), which resolves them without seed 002; the classes here
give seed 002's registry the same aliases, with the same targets."""

from __future__ import annotations

from ...providers.aliases import CURRENT_MODELS as _CURRENT_MODELS
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

#: The current models (data of the alias table, :mod:`llmrelay.providers.aliases`).
CURRENT_MODELS = _CURRENT_MODELS

for _provider, _rows in CURRENT_MODELS.items():
    for _alias, _model in _rows:
        define_config(_alias, _provider, _model, max_tokens=4096, module=__name__)
