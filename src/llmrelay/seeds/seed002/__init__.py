"""Model configurations (seed 002): classes, the registry, the built-in aliases and the
optional TOML file (``llmrelay.toml`` in the working directory, or ``$LLMRELAY_CONFIG``)."""

from __future__ import annotations

from ...errors import ConfigFileError
from ...providers.aliases import register_alias_source
from ...settings.file import load_file
from . import builtin as _builtin  # noqa: F401  (registers the built-in aliases' classes)
from . import registry as _registry
from .base import (
    CONFIG_REGISTRY,
    BaseModelConfig,
    ProviderBaseConfig,
    register_config,
)
from .callers import (
    AnthropicCaller,
    ChatCaller,
    GeminiCaller,
    GroqCaller,
    OpenAICaller,
    caller_for_provider,
)
from .provider_configs import *  # noqa: F403
from .provider_configs import __all__ as _provider_all
from .registry import create_model, ensure_loaded

__all__ = [
    "CONFIG_REGISTRY",
    "AnthropicCaller",
    "BaseModelConfig",
    "ChatCaller",
    "GeminiCaller",
    "GroqCaller",
    "OpenAICaller",
    "ProviderBaseConfig",
    "caller_for_provider",
    "create_model",
    "ensure_loaded",
    "load_config",
    "register_config",
    *_provider_all,
]


def load_config(path: str) -> list[str]:
    """Load a TOML configuration file now (in addition to ``llmrelay.toml`` /
    ``$LLMRELAY_CONFIG``); returns the aliases it defined. A bad file raises
    ``ConfigFileError`` naming the file, line and key, and changes nothing."""
    ensure_loaded()
    aliases = load_file(path)
    ensure_loaded()
    return aliases


# CONFIG_REGISTRY answers for every alias (built-in, file and user-registered ones).
register_alias_source(_registry.lookup, _registry.aliases, whole_table=True)

# ... from first access: the file's aliases are registered now, as the built-in ones are, so the
# seed's `alias in CONFIG_REGISTRY` sees them before any lookup has run. A malformed file does
# not break this import: the first lookup raises ConfigFileError naming its line.
try:
    ensure_loaded()
except ConfigFileError:
    pass
