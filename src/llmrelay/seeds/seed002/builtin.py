"""Built-in model configurations: the aliases the seeds use (kept although their models are
retired), plus the current OpenAI, Anthropic, Gemini and Groq models. Each is registered in
``CONFIG_REGISTRY`` under its alias when seed 002 is imported.

The classes are generated from the alias table's data (:data:`llmrelay.providers.aliases.
BUILTIN_ALIASES`, the one place a built-in alias is defined): each subclasses its provider's
base configuration (``GroqBaseConfig``, ...) and sets ``model`` and ``max_tokens``, as the
seed's ``MixtralEightXSevenBConfig`` does, so it has the seed's defaults (temperature 0.7, the
system message, ...) -- which ``ModelHandler`` and ``create_model`` use. A call through the
alias itself (``Client.chat("mixtral-8x7b", ...)``) sends only the provider's model: the
registry answers it with the alias table's target while the alias still maps to its built-in
class (see :func:`~llmrelay.seeds.seed002.registry.lookup`).
"""

from __future__ import annotations

from ...providers.aliases import BUILTIN_ALIASES
from .base import ProviderBaseConfig
from .registry import define_builtin

__all__ = [
    "BUILTIN_CLASSES",
    "ClaudeThreeOpusConfig",
    "GemmaTwoNineBConfig",
    "LlamaThreeEightBConfig",
    "LlamaThreeSeventyBConfig",
    "MixtralEightXSevenBConfig",
    "QwenCoderThirtyTwoBConfig",
]

#: alias -> its generated configuration class.
BUILTIN_CLASSES: dict[str, type[ProviderBaseConfig]] = {
    alias: define_builtin(alias, row, module=__name__) for alias, row in BUILTIN_ALIASES.items()
}

# The seed's classes by name (``from llmrelay.config import MixtralEightXSevenBConfig``).
MixtralEightXSevenBConfig = BUILTIN_CLASSES["mixtral-8x7b"]
LlamaThreeSeventyBConfig = BUILTIN_CLASSES["llama3-70b"]
LlamaThreeEightBConfig = BUILTIN_CLASSES["llama3-8b"]
GemmaTwoNineBConfig = BUILTIN_CLASSES["gemma2-9b"]
QwenCoderThirtyTwoBConfig = BUILTIN_CLASSES["qwen-coder-32b"]
ClaudeThreeOpusConfig = BUILTIN_CLASSES["c3opus"]
