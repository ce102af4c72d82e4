"""From configurations to targets: reading a configuration through its ``get_params()``,
validating it the way a call would use it, and instantiating registered classes.

A configuration is read only through its ``get_params()`` dict, so hand-written seed-style
configurations (which subclass ``BaseModelConfig`` directly) work exactly like ours. The
parameter checks themselves (``target_from_params``) belong to the alias table
(:mod:`llmrelay.providers.aliases`), which checks the configuration file's aliases with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...errors import ConfigurationError
from ...providers.aliases import (
    PARAM_KEYS,
    POLICY_KEYS,
    InvalidConfigValueError,
    Target,
    target_from_params,
)
from .base import BaseModelConfig
from .callers import uses_llmrelay_caller

__all__ = [
    "PARAM_KEYS",
    "POLICY_KEYS",
    "InvalidConfigValueError",
    "instantiate",
    "target_from_config",
    "target_from_params",
    "validate_config",
]


def _caller_provider(config: BaseModelConfig) -> str | None:
    """The provider of the config's caller class, for seed-style configs whose ``get_params()``
    does not say it (``caller_class()`` returning ``GroqCaller`` means Groq)."""
    try:
        caller = config.caller_class()
    except Exception:  # a broken caller_class() is reported when the caller is built
        return None
    provider = getattr(caller, "provider", None)
    return provider if isinstance(provider, str) and provider else None


def target_from_config(config: BaseModelConfig, alias: str | None = None) -> Target:
    """Read a configuration through its ``get_params()`` (so seed-style configs work too)."""
    alias = alias or type(config).alias()
    what = f"configuration {alias!r} ({type(config).__name__})"
    p = config.get_params()
    if not isinstance(p, Mapping):
        raise ConfigurationError(f"{what}: get_params() must return a dict, not {type(p).__name__}")
    provider = getattr(config, "provider", None) or None
    if not p.get("provider") and not provider:
        provider = _caller_provider(config)
    return target_from_params(
        p,
        alias=alias,
        provider=provider,
        key_env=getattr(config, "api_key_env", None) or None,
        what=what,
    )


def validate_config(config: BaseModelConfig, alias: str | None = None) -> Target | None:
    """Check a configuration the way a call would use it; raise ``ConfigurationError``.

    Returns the target, or ``None`` for a configuration whose caller is the user's own class
    (then only the shape of ``get_params()`` is checked: llmrelay cannot know its meaning).
    """
    if uses_llmrelay_caller(config):
        return target_from_config(config, alias)
    p = config.get_params()
    if not isinstance(p, Mapping):
        raise ConfigurationError(
            f"{type(config).__name__}.get_params() must return a dict, not {type(p).__name__}"
        )
    return None


def instantiate(cls: Any, alias: str) -> BaseModelConfig:
    """``cls()`` for the configuration registered as ``alias``, with a clear error when the
    registry holds something that is not a configuration class or that cannot be built."""
    if not isinstance(cls, type):
        raise ConfigurationError(
            f"the registry maps alias {alias!r} to {cls!r}, which is not a configuration class; "
            "register classes (e.g. with @register_config), not instances"
        )
    try:
        config = cls()
    except TypeError as exc:
        raise ConfigurationError(
            f"configuration class {cls.__name__} (alias {alias!r}) cannot be instantiated "
            f"without arguments: {exc}. Implement alias(), get_params() and caller_class(), "
            "and give __init__ no required parameters"
        ) from exc
    for method in ("get_params", "caller_class"):
        if not callable(getattr(config, method, None)):
            raise ConfigurationError(
                f"configuration class {cls.__name__} (alias {alias!r}) has no {method}() "
                "method; subclass llmrelay.BaseModelConfig"
            )
    return config  # type: ignore[no-any-return]
