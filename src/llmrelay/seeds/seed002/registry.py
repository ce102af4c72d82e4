"""From configurations to targets: validation, alias lookup, and defining configurations
from data (the TOML file and the built-in model list).

A configuration is read only through its ``get_params()`` dict, so hand-written seed-style
configurations (which subclass ``BaseModelConfig`` directly) work exactly like ours.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from typing import Any

from ...errors import ConfigurationError, InvalidRequestError, UnknownModelError
from ...providers.resolve import Target
from ...providers.table import PROVIDERS, Secret, infer_provider
from ...types import build_params
from .base import (
    CONFIG_REGISTRY,
    BaseModelConfig,
    ProviderBaseConfig,
    did_you_mean,
    register_config,
)

__all__ = [
    "InvalidConfigValueError",
    "aliases",
    "define_config",
    "instantiate",
    "lookup",
    "make_config_class",
    "target_from_config",
    "target_from_params",
    "uses_llmrelay_caller",
    "validate_config",
]

#: The keys of ``get_params()`` that are generation parameters.
PARAM_KEYS = (
    "temperature",
    "max_tokens",
    "top_p",
    "frequency_penalty",
    "presence_penalty",
    "stop",
)
_BASES: dict[str, type[ProviderBaseConfig]] = {}


class InvalidConfigValueError(ConfigurationError):
    """One attribute of a configuration has an invalid value; ``field`` names it."""

    def __init__(self, message: str, *, field: str, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.field = field


def _known_providers() -> str:
    return ", ".join(sorted(PROVIDERS))


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
                f"unknown provider {provider!r}; known providers: {_known_providers()}"
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
    cls = make_config_class(alias, provider, model, module=module, **attrs)
    register_config(cls)
    return cls


def make_config_class(
    alias: str, provider: str, model: str, *, module: str | None = None, **attrs: Any
) -> type[ProviderBaseConfig]:
    """The class ``define_config`` registers, without registering it. Attributes that the
    provider's base configuration does not have are an error."""
    if not isinstance(alias, str) or not alias.strip():
        raise ConfigurationError(f"an alias must be a non-empty string, not {alias!r}")
    base = _provider_base(provider)

    def __init__(self: ProviderBaseConfig) -> None:
        base.__init__(self)
        self.model = model
        for k, v in attrs.items():
            if k.startswith("_") or k not in vars(self):
                known = sorted(a for a in vars(self) if not a.startswith("_"))
                raise InvalidConfigValueError(
                    f"configuration {alias!r}: unknown attribute {k!r}{did_you_mean(k, known)}; "
                    f"known attributes: {', '.join(known)}",
                    field=k,
                )
            setattr(self, k, v)

    def _alias(cls: type) -> str:
        return alias

    name = "".join(p.capitalize() for p in re.split(r"[^A-Za-z0-9]+", alias))
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
    cls()  # an unknown attribute fails here, at definition time
    return cls


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


def target_from_params(
    p: Mapping[str, Any],
    *,
    alias: str | None = None,
    provider: str | None = None,
    key_env: str | None = None,
    what: str = "the configuration",
) -> Target:
    """Validate a ``get_params()`` dict and turn it into a ``Target``.

    ``provider`` is used when the dict has no ``"provider"`` (e.g. the caller class's provider).
    A key equal to its environment variable's value is not stored: it is read again at each call,
    so a rotated or removed key takes effect without rebuilding anything.
    """
    if not isinstance(p, Mapping):
        raise ConfigurationError(f"{what}: the params must be a dict, not {type(p).__name__}")
    model = p.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidConfigValueError(
            f"{what} has no model (model={model!r}); set self.model to the provider's model "
            "id, e.g. 'openai/gpt-oss-20b'",
            field="model",
        )
    prov = p.get("provider") or provider or infer_provider(model)
    if not prov:
        raise InvalidConfigValueError(
            f"{what} does not say its provider; subclass a provider base config (e.g. "
            "GroqBaseConfig), add 'provider' to get_params(), or return a provider's caller "
            "from caller_class() (e.g. llmrelay.config.callers.GroqCaller)",
            field="provider",
        )
    if not isinstance(prov, str) or prov not in PROVIDERS:
        raise UnknownModelError(
            f"{what} names unknown provider {prov!r}; known providers: {_known_providers()}. "
            "Register another OpenAI-compatible vendor with llmrelay.register_provider_spec()"
        )
    spec = PROVIDERS[prov]
    values: dict[str, Any] = {}
    for k in PARAM_KEYS:
        v = p.get(k)
        if v is None:
            continue
        try:
            build_params({k: v})
        except InvalidRequestError as exc:
            raise InvalidConfigValueError(f"{what}: {exc.message}", field=k) from None
        values[k] = v
    params = build_params(values)

    system = _optional_str(p, "system_message", what)
    base_url = _optional_str(p, "base_url", what)
    if base_url and not base_url.startswith(("http://", "https://")):
        raise InvalidConfigValueError(
            f"{what}: base_url must start with http:// or https://, not {base_url!r}",
            field="base_url",
        )
    env_name = _optional_str(p, "api_key_env", what) or key_env or None
    stream = p.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidConfigValueError(
            f"{what}: stream must be True or False, not {stream!r}", field="stream"
        )

    key = p.get("api_key")
    if isinstance(key, Secret):
        key = key.get()
    elif key is not None and not isinstance(key, str):
        raise InvalidConfigValueError(
            f"{what}: api_key must be a string (or llmrelay.Secret), not {type(key).__name__}",
            field="api_key",
        )
    secret: Secret | None = None
    if key:
        env_names = (env_name or spec.key_env, *spec.alt_key_envs)
        if key not in {os.environ.get(n) for n in env_names if n}:
            secret = Secret(key)  # a literal key in the config (env keys are read per call)

    fallbacks = p.get("fallbacks") or ()
    if isinstance(fallbacks, str) or not isinstance(fallbacks, list | tuple):
        raise InvalidConfigValueError(
            f"{what}: fallbacks must be a list of aliases or 'provider/model' names, "
            f"not {fallbacks!r}",
            field="fallbacks",
        )
    if not all(isinstance(f, str) and f.strip() for f in fallbacks):
        raise InvalidConfigValueError(
            f"{what}: every fallback must be a non-empty alias or 'provider/model' name, "
            f"not {list(fallbacks)!r}",
            field="fallbacks",
        )
    if alias is not None and alias in fallbacks:
        raise InvalidConfigValueError(
            f"{what} lists itself ({alias!r}) as a fallback", field="fallbacks"
        )
    policy = p.get("policy") or {}
    if not isinstance(policy, Mapping):
        raise InvalidConfigValueError(
            f"{what}: policy must be a dict, not {type(policy).__name__}", field="policy"
        )
    _check_policy(policy, what)
    return Target(
        provider=prov,
        model=model,
        alias=alias,
        params=params,
        system_message=system or None,
        base_url=base_url or None,
        api_key=secret,
        api_key_env=env_name,
        fallbacks=tuple(fallbacks),
        policy=dict(policy),
    )


def _optional_str(p: Mapping[str, Any], name: str, what: str) -> str | None:
    v = p.get(name)
    if v is None or isinstance(v, str):
        return v
    raise InvalidConfigValueError(
        f"{what}: {name} must be a string, not {type(v).__name__} {v!r}", field=name
    )


def uses_llmrelay_caller(config: BaseModelConfig) -> bool:
    """Whether the configuration's caller is one of ours (so its params must make a target)."""
    if isinstance(config, ProviderBaseConfig):
        return True
    from .callers import ChatCaller

    try:
        caller = config.caller_class()
    except Exception:
        return False
    return isinstance(caller, type) and issubclass(caller, ChatCaller)


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


#: What an alias's ``policy`` may set: retries per deployment, seconds per attempt, seconds
#: for the whole call.
POLICY_KEYS = ("retries", "timeout", "deadline")


def _check_policy(policy: Mapping[str, Any], what: str) -> None:
    for key, value in policy.items():
        if key not in POLICY_KEYS:
            raise InvalidConfigValueError(
                f"{what}: unknown policy key {key!r}; allowed: {', '.join(POLICY_KEYS)}",
                field="policy",
            )
        ok = not isinstance(value, bool) and (
            isinstance(value, int) and value >= 0
            if key == "retries"
            else isinstance(value, int | float) and value > 0
        )
        if not ok:
            need = "a whole number >= 0" if key == "retries" else "a positive number of seconds"
            raise InvalidConfigValueError(
                f"{what}: policy {key} must be {need}, not {value!r}", field="policy"
            )


_cache: dict[str, tuple[type[BaseModelConfig], Target]] = {}


def _ensure_loaded() -> None:
    """``config.ensure_loaded`` without an import statement on every lookup (hot path)."""
    pkg = sys.modules["llmrelay.seeds.seed002"]
    pkg.ensure_loaded()


def lookup(alias: str) -> Target | None:
    """The target of a registered alias (``None`` if it is not one), built once per class."""
    _ensure_loaded()
    cls = CONFIG_REGISTRY.get(alias)
    if cls is None:
        return None
    hit = _cache.get(alias)
    if hit is not None and hit[0] is cls:
        return hit[1]
    t = target_from_config(instantiate(cls, alias), alias)
    _cache[alias] = (cls, t)
    return t


def aliases() -> list[str]:
    from . import ensure_loaded

    ensure_loaded()
    return list(CONFIG_REGISTRY)
