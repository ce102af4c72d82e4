"""Model configurations (seed 002): classes, the registry, the built-in aliases and the
optional TOML file (``llmrelay.toml`` in the working directory, or ``$LLMRELAY_CONFIG``)."""

from __future__ import annotations

import threading

from ...providers.resolve import register_alias_source
from . import registry as _registry
from .base import (
    CONFIG_REGISTRY,
    BaseModelConfig,
    ProviderBaseConfig,
    create_model,
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

_state = "new"  # -> "loading" -> "loaded"
_lock = threading.RLock()


def ensure_loaded() -> None:
    """Register the built-in models and, once, the aliases of the TOML file (if any).

    A malformed file raises ``ConfigFileError`` here, and again on the next call until fixed.
    """
    global _state
    if _state == "loaded":
        return
    with _lock:
        if _state != "new":  # loaded meanwhile, or loading further up this thread's stack
            return
        _state = "loading"
        try:
            from ...settings.file import load_default_file
            from . import builtin as models  # noqa: F401  (registers the built-in aliases)

            load_default_file()
            _state = "loaded"
        except BaseException:
            _state = "new"
            raise


def load_config(path: str) -> list[str]:
    """Load a TOML configuration file now (in addition to ``llmrelay.toml`` /
    ``$LLMRELAY_CONFIG``); returns the aliases it defined. A bad file raises
    ``ConfigFileError`` naming the file, line and key, and changes nothing."""
    ensure_loaded()
    from ...settings.file import load_file

    return load_file(path)


register_alias_source(_registry.lookup, _registry.aliases)
