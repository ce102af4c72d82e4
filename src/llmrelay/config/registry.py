"""From configurations to targets: validation, alias lookup, and defining configurations
from data (the TOML file and the built-in model list)."""

from __future__ import annotations

import os
from typing import Any

from ..errors import ConfigurationError, InvalidRequestError, UnknownModelError
from ..providers import PROVIDERS, Secret, infer_provider
from ..resolve import Target
from ..types import build_params
from .base import CONFIG_REGISTRY, BaseModelConfig, ProviderBaseConfig, register_config

__all__ = ["aliases", "define_config", "lookup", "target_from_config", "validate_config"]

_PARAM_KEYS = (
    "temperature",
    "max_tokens",
    "top_p",
    "frequency_penalty",
    "presence_penalty",
    "stop",
)
_BASES: dict[str, type[ProviderBaseConfig]] = {}


def _provider_base(provider: str) -> type[ProviderBaseConfig]:
    if not _BASES:
        from . import provider_configs

        for name in provider_configs.__all__:
            cls = getattr(provider_configs, name)
            _BASES[cls.provider] = cls
    base = _BASES.get(provider)
    if base is None:
        if provider not in PROVIDERS:
            raise UnknownModelError(
                f"unknown provider {provider!r}; known providers: {', '.join(sorted(PROVIDERS))}"
            )
        base = type(
            f"{provider.capitalize()}BaseConfig", (ProviderBaseConfig,), {"provider": provider}
        )
        _BASES[provider] = base
    return base


def define_config(
    alias: str, provider: str, model: str, *, module: str | None = None, **attrs: Any
) -> type[ProviderBaseConfig]:
    """Create and register a configuration class for ``alias`` (as if written by hand)."""
    base = _provider_base(provider)

    def __init__(self: ProviderBaseConfig) -> None:
        base.__init__(self)
        self.model = model
        for k, v in attrs.items():
            setattr(self, k, v)

    def _alias(cls: type) -> str:
        return alias

    name = "".join(p.capitalize() for p in alias.replace(".", "-").replace("/", "-").split("-"))
    cls: type[ProviderBaseConfig] = type(
        f"{name}Config",
        (base,),
        {
            "__init__": __init__,
            "alias": classmethod(_alias),
            "__doc__": f"{alias}: {provider}/{model}",
            "__module__": module or __name__,
        },
    )
    register_config(cls)
    return cls


def target_from_config(config: BaseModelConfig, alias: str | None = None) -> Target:
    """Read a configuration through its ``get_params()`` (so seed-style configs work too)."""
    alias = alias or type(config).alias()
    p = config.get_params()
    if not isinstance(p, dict):
        raise ConfigurationError(f"{type(config).__name__}.get_params() must return a dict")
    model = p.get("model")
    if not isinstance(model, str) or not model:
        raise ConfigurationError(f"configuration {alias!r} has no model; set self.model")
    provider = p.get("provider") or getattr(config, "provider", None) or infer_provider(model)
    if not provider:
        raise ConfigurationError(
            f"configuration {alias!r} does not say its provider; add 'provider' to get_params() "
            "or subclass one of the provider base configs (e.g. GroqBaseConfig)"
        )
    if provider not in PROVIDERS:
        raise UnknownModelError(f"configuration {alias!r} names unknown provider {provider!r}")
    try:
        params = build_params({k: p[k] for k in _PARAM_KEYS if p.get(k) is not None})
    except InvalidRequestError as exc:
        raise ConfigurationError(f"configuration {alias!r}: {exc.message}") from None
    key_env = p.get("api_key_env") or getattr(config, "api_key_env", None)
    key = p.get("api_key")
    secret: Secret | None = None
    if isinstance(key, Secret):
        key = key.get()
    if isinstance(key, str) and key and key != (os.getenv(key_env) if key_env else None):
        secret = Secret(key)  # a literal key in the config (env keys are read per call)
    fallbacks = p.get("fallbacks") or ()
    if isinstance(fallbacks, str) or not all(isinstance(f, str) for f in fallbacks):
        raise ConfigurationError(f"configuration {alias!r}: fallbacks must be a list of names")
    system = p.get("system_message")
    return Target(
        provider=provider,
        model=model,
        alias=alias,
        params=params,
        system_message=system if isinstance(system, str) and system else None,
        base_url=p.get("base_url") or None,
        api_key=secret,
        api_key_env=key_env,
        fallbacks=tuple(fallbacks),
        policy=dict(p.get("policy") or {}),
    )


def validate_config(config: BaseModelConfig) -> Target:
    """Check a configuration the way a call would use it; raise ``ConfigurationError``."""
    return target_from_config(config)


_cache: dict[str, tuple[type[BaseModelConfig], Target]] = {}


def lookup(alias: str) -> Target | None:
    from . import ensure_loaded

    ensure_loaded()
    cls = CONFIG_REGISTRY.get(alias)
    if cls is None:
        return None
    hit = _cache.get(alias)
    if hit is not None and hit[0] is cls:
        return hit[1]
    t = target_from_config(cls(), alias)
    _cache[alias] = (cls, t)
    return t


def aliases() -> list[str]:
    from . import ensure_loaded

    ensure_loaded()
    return list(CONFIG_REGISTRY)
