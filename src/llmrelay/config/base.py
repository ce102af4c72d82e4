"""Seed 002: ``BaseModelConfig``, the ``CONFIG_REGISTRY`` and ``register_config``, and the
provider base configurations every model configuration inherits its defaults from."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from ..errors import ConfigurationError, UnknownModelError
from ..providers import PROVIDERS, Secret

__all__ = [
    "CONFIG_REGISTRY",
    "BaseModelConfig",
    "ProviderBaseConfig",
    "create_model",
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
    """Class decorator: register a configuration under its ``alias()``."""
    if not (isinstance(cls, type) and issubclass(cls, BaseModelConfig)):
        raise ConfigurationError(f"register_config expects a BaseModelConfig subclass, not {cls!r}")
    alias = cls.alias()
    if not isinstance(alias, str) or not alias.strip():
        raise ConfigurationError(f"{cls.__name__}.alias() must return a non-empty string")
    CONFIG_REGISTRY[alias] = cls
    return cls


class ProviderBaseConfig(BaseModelConfig):
    """Common base of the provider configurations: the seed's attributes plus provider,
    base_url and fallbacks. Subclasses set ``provider`` and, per model, ``model``."""

    provider: ClassVar[str] = ""

    def __init__(self) -> None:
        super().__init__()
        self.temperature: float | None = 0.7
        self.max_tokens: int | None = 1024
        self.api_key_env: str = f"{self.provider.upper()}_API_KEY"
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

    def get_params(self) -> dict[str, Any]:
        """The seed's parameter dictionary, plus ``provider``, ``base_url`` and
        ``api_key_env``. ``api_key`` is a :class:`~llmrelay.Secret` (it never prints)."""
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
            "fallbacks": list(self.fallbacks),
        }

    def caller_class(self) -> type[Any]:
        from .callers import caller_for_provider

        return caller_for_provider(self.provider)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} alias={self.alias()!r} {self.provider}/{self.model}>"


def create_model(alias: str, **overrides: Any) -> BaseModelConfig:
    """Seed 002's factory, generalised to every provider: instantiate the configuration of
    ``alias`` and apply ``overrides``. An attribute the configuration does not have is an error
    (not silently ignored), and the result is validated."""
    from . import ensure_loaded

    ensure_loaded()
    cls = CONFIG_REGISTRY.get(alias)
    if cls is None:
        raise UnknownModelError(f"Model alias '{alias}' not found.")
    config = cls()
    for key, value in overrides.items():
        if key.startswith("_") or not hasattr(config, key) or callable(getattr(config, key)):
            known = sorted(
                k for k, v in vars(config).items() if not k.startswith("_") and not callable(v)
            )
            raise ConfigurationError(
                f"configuration {alias!r} has no attribute {key!r}; settable attributes: "
                f"{', '.join(known)}"
            )
        setattr(config, key, value)
    from .registry import validate_config

    validate_config(config)
    return config
