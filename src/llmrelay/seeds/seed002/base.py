"""Seed 002: ``BaseModelConfig``, the ``CONFIG_REGISTRY`` and ``register_config``, and the
provider base configurations every model configuration inherits its defaults from."""

from __future__ import annotations

import difflib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar

from ...errors import ConfigurationError, UnknownModelError
from ...providers.table import PROVIDERS, Secret

__all__ = [
    "CONFIG_REGISTRY",
    "BaseModelConfig",
    "ProviderBaseConfig",
    "create_model",
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


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or ``""``."""
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


#: alias -> configuration class (seed 002's global registry).
CONFIG_REGISTRY: dict[str, type[BaseModelConfig]] = {}


def register_config(cls: type[BaseModelConfig]) -> type[BaseModelConfig]:
    """Class decorator: register a configuration under its ``alias()`` (the seed's decorator).

    Registering another class under an existing alias replaces it (that is how a TOML file or
    user code overrides a built-in alias).
    """
    if not (isinstance(cls, type) and issubclass(cls, BaseModelConfig)):
        raise ConfigurationError(
            f"register_config expects a BaseModelConfig subclass, not {cls!r}; "
            "decorate the class itself: @register_config above `class MyConfig(...)`"
        )
    alias = cls.alias()
    if not isinstance(alias, str) or not alias.strip():
        raise ConfigurationError(
            f"{cls.__name__}.alias() must return a non-empty string, not {alias!r}; define "
            "`@classmethod def alias(cls) -> str: return 'my-alias'`"
        )
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
        }

    def caller_class(self) -> type[Any]:
        from .callers import caller_for_provider

        return caller_for_provider(self.provider)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} alias={self.alias()!r} {self.provider}/{self.model}>"


def create_model(alias: str, **overrides: Any) -> BaseModelConfig:
    """Seed 002's factory, generalised to every provider: instantiate the configuration of
    ``alias`` and apply ``overrides``. An attribute the configuration does not have is an error
    (not silently ignored), and the result is validated (``temperature=7`` is an error).

    >>> create_model("mixtral-8x7b", temperature=0.9).temperature
    0.9
    """
    from . import ensure_loaded
    from .registry import instantiate, validate_config

    ensure_loaded()
    cls = CONFIG_REGISTRY.get(alias) if isinstance(alias, str) else None
    if cls is None:
        close = difflib.get_close_matches(str(alias), list(CONFIG_REGISTRY), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownModelError(
            f"Model alias '{alias}' not found.{hint} Known aliases: "
            f"{', '.join(sorted(CONFIG_REGISTRY))}"
        )
    config = instantiate(cls, alias)
    known = sorted(k for k, v in vars(config).items() if not k.startswith("_") and not callable(v))
    for key, value in overrides.items():
        if key.startswith("_") or not hasattr(config, key) or callable(getattr(config, key)):
            raise ConfigurationError(
                f"configuration {alias!r} ({cls.__name__}) has no attribute {key!r}"
                f"{did_you_mean(key, known)}; "
                f"settable attributes: {', '.join(known)}"
            )
        setattr(config, key, value)
    validate_config(config)
    return config
