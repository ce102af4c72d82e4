"""Seed 002: ``BaseModelConfig``, the ``CONFIG_REGISTRY`` and ``register_config``, and the
provider base configuration every model configuration inherits its defaults from.

Nothing of seed 002 is imported here: the caller classes register themselves in
:data:`CALLER_CLASSES` (``callers.py``), which ``ProviderBaseConfig.caller_class()`` reads."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

from ...errors import ConfigurationError, shown
from ...providers.table import PROVIDERS, Secret
from ...settings.file import did_you_mean

__all__ = [
    "CALLER_CLASSES",
    "CONFIG_REGISTRY",
    "BaseModelConfig",
    "ProviderBaseConfig",
    "did_you_mean",
    "register_config",
]


class BaseModelConfig(ABC):
    """Abstract base class for all model configurations (seed 002)."""

    def __init__(self) -> None:  # noqa: B027 - the seed's documented no-op initialiser
        pass

    @classmethod
    @abstractmethod
    def alias(cls) -> str:
        """Returns a unique string identifier for this model configuration."""

    @abstractmethod
    def get_params(self) -> dict[str, Any]:
        """Returns a dictionary of parameters needed by the caller."""

    @abstractmethod
    def caller_class(self) -> type[Any]:
        """Returns the reference to the appropriate caller class."""


#: alias -> configuration class (seed 002's global registry).
CONFIG_REGISTRY: dict[str, type[BaseModelConfig]] = {}


def register_config(cls: type[BaseModelConfig]) -> type[BaseModelConfig]:
    """Class decorator: register a configuration under its ``alias()`` (the seed's decorator).

    Registering another class under an existing alias replaces it (that is how a TOML file or
    user code overrides a built-in alias).
    """
    if not (isinstance(cls, type) and issubclass(cls, BaseModelConfig)):
        raise ConfigurationError(
            f"register_config expects a BaseModelConfig subclass, not {shown(cls)}; "
            "decorate the class itself: @register_config above `class MyConfig(...)`"
        )
    alias = cls.alias()
    if not isinstance(alias, str) or not alias.strip():
        raise ConfigurationError(
            f"{cls.__name__}.alias() must return a non-empty string, not {shown(alias)}; define "
            "`@classmethod def alias(cls) -> str: return 'my-alias'`"
        )
    CONFIG_REGISTRY[alias] = cls
    return cls


#: provider -> its caller class (``GroqCaller``, ...), filled by ``callers.py``.
CALLER_CLASSES: dict[str, type[Any]] = {}
#: ``callers.caller_for_provider``, which makes the caller class of any other known provider.
CALLER_FACTORY: list[Callable[[str], type[Any]]] = []


class ProviderBaseConfig(BaseModelConfig):
    """Common base of the provider configurations: the seed's attributes plus provider,
    base_url and fallbacks. Subclasses set ``provider`` and, per model, ``model``."""

    provider: ClassVar[str] = ""

    def __init__(self) -> None:
        super().__init__()
        self.temperature: float | None = 0.7
        self.max_tokens: int | None = 1024
        spec = PROVIDERS.get(self.provider)
        #: The environment variable holding the key (the provider's, e.g. ``GROQ_API_KEY``).
        self.api_key_env: str | None = (
            spec.key_env
            if spec is not None
            else f"{self.provider.upper()}_API_KEY"
            if self.provider
            else None
        )
        self.top_p: float | None = 1.0
        self.frequency_penalty: float | None = 0.0
        self.presence_penalty: float | None = 0.0
        self.model: str | None = None  # set by model subclasses
        self.system_message: str | None = "You are a helpful assistant."
        self.stream: bool = False
        self.stop: str | list[str] | None = None
        self.base_url: str | None = None
        #: Aliases or provider/model names to try when this model fails.
        self.fallbacks: list[str] = []
        #: Per-alias reliability settings (retries, timeouts, ...), read by the engine.
        self.policy: dict[str, Any] = {}
        #: The OpenAI API to call: "responses" or "chat" (None: what the model needs).
        self.api: str | None = None

    def get_params(self) -> dict[str, Any]:
        """The seed's parameter dictionary, plus ``provider``, ``base_url``, ``api_key_env``,
        ``fallbacks`` and ``policy``. ``api_key`` is a :class:`~llmrelay.Secret` (it never
        prints; ``.get()`` returns the value), or ``""`` when the variable is unset."""
        key = os.getenv(self.api_key_env, "") if self.api_key_env else ""
        spec = PROVIDERS.get(self.provider)
        if not key and spec is not None:
            for alt in spec.alt_key_envs:
                key = os.getenv(alt, "")
                if key:
                    break
        return {
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
            "frequency_penalty": self.frequency_penalty,
            "presence_penalty": self.presence_penalty,
            "api_key": Secret(key) if key else "",
            "system_message": self.system_message,
            "stream": self.stream,
            "stop": self.stop,
            "provider": self.provider,
            "base_url": self.base_url,
            "api_key_env": self.api_key_env,
            # Copies, so a caller cannot change the config (bad values are passed on as they
            # are, for validation to name them).
            "fallbacks": list(self.fallbacks)
            if isinstance(self.fallbacks, list | tuple)
            else self.fallbacks,
            "policy": dict(self.policy) if isinstance(self.policy, dict) else self.policy,
            **({"api": self.api} if self.api is not None else {}),
        }

    def caller_class(self) -> type[Any]:
        cls = CALLER_CLASSES.get(self.provider)
        return cls if cls is not None else CALLER_FACTORY[0](self.provider)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} alias={self.alias()!r} {self.provider}/{self.model}>"
