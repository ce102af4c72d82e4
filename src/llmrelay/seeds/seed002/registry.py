"""Seed 002's registry of configuration classes: defining configurations from data (the
built-in aliases and the configuration file's ``[models]``), looking an alias up, and
``create_model``.

The file's aliases are read through :mod:`llmrelay.providers.aliases` (which loads and checks
the file); :func:`ensure_loaded` gives each of them a configuration class in ``CONFIG_REGISTRY``,
like the built-in ones, so the registry lists every alias.
"""

from __future__ import annotations

import difflib
import re
import threading
from typing import Any

from ...errors import ConfigurationError, UnknownModelError
from ...providers.aliases import (
    PARAM_KEYS,
    POLICY_KEYS,
    BuiltinAlias,
    InvalidConfigValueError,
    Target,
    builtin_target,
    file_models,
    pull_file,
    target_from_params,
)
from ...providers.table import PROVIDERS
from . import provider_configs
from .base import (
    CONFIG_REGISTRY,
    BaseModelConfig,
    ProviderBaseConfig,
    did_you_mean,
    register_config,
)
from .callers import uses_llmrelay_caller
from .targets import instantiate, target_from_config, validate_config

__all__ = [
    "PARAM_KEYS",
    "POLICY_KEYS",
    "InvalidConfigValueError",
    "aliases",
    "create_model",
    "define_builtin",
    "define_config",
    "ensure_loaded",
    "instantiate",
    "lookup",
    "make_config_class",
    "target_from_config",
    "target_from_params",
    "uses_llmrelay_caller",
    "validate_config",
]

#: provider -> its base configuration class (seed 002's ``GroqBaseConfig`` pattern).
_BASES: dict[str, type[ProviderBaseConfig]] = {
    cls.provider: cls for cls in (getattr(provider_configs, n) for n in provider_configs.__all__)
}


def _known_providers() -> str:
    return ", ".join(sorted(PROVIDERS))


def _provider_base(provider: str) -> type[ProviderBaseConfig]:
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


#: alias -> the configuration class generated for the built-in alias (:func:`define_builtin`).
_BUILTIN_CLASSES: dict[str, type[BaseModelConfig]] = {}


def define_builtin(
    alias: str, row: BuiltinAlias, *, module: str | None = None
) -> type[ProviderBaseConfig]:
    """Create and register the seed-002 class of a built-in alias (a row of the alias table).

    While the registry maps ``alias`` to this class, :func:`lookup` answers with the alias
    table's target (the provider's model, nothing else); the class itself keeps the seed's
    defaults for ``ModelHandler``, ``create_model`` and ``get_params()``."""
    cls = make_config_class(
        alias,
        row.provider,
        row.model,
        module=module,
        name=row.class_name,
        max_tokens=row.config_max_tokens,
    )
    register_config(cls)
    _BUILTIN_CLASSES[alias] = cls
    return cls


def make_config_class(
    alias: str,
    provider: str,
    model: str,
    *,
    module: str | None = None,
    name: str | None = None,
    **attrs: Any,
) -> type[ProviderBaseConfig]:
    """The class ``define_config`` registers, without registering it (named ``name``, default
    from the alias). Attributes that the provider's base configuration does not have are an
    error."""
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

    if name is None:
        name = "".join(p.capitalize() for p in re.split(r"[^A-Za-z0-9]+", alias)) + "Config"
    cls: type[ProviderBaseConfig] = type(
        name,
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


_cache: dict[str, tuple[type[BaseModelConfig], Target]] = {}
#: how many configuration files have their aliases registered as classes
_materialised = 0
_lock = threading.RLock()


def ensure_loaded() -> None:
    """Register a configuration class for each alias of the configuration file (loaded once,
    through :mod:`llmrelay.providers.aliases`), as for the built-in aliases.

    A malformed file raises ``ConfigFileError`` here, and again on the next call until fixed.
    """
    global _materialised
    if pull_file() == _materialised:
        return
    with _lock:
        files = file_models()
        for models in files[_materialised:]:
            for alias, entry in models.items():
                attrs = {k: v for k, v in entry.items() if k not in ("provider", "model")}
                register_config(
                    make_config_class(
                        alias,
                        entry["provider"],
                        entry["model"],
                        module="llmrelay.seeds.seed002.toml",
                        **attrs,
                    )
                )
        _materialised = len(files)


def lookup(alias: str) -> Target | None:
    """The target of a registered alias (``None`` if it is not one), built once per class.

    A built-in alias still mapped to its generated class resolves to the alias table's target
    (provider and model only): the seed's defaults of the class are not sent by a call through
    the alias. A class registered by user code or a file alias is read through its
    ``get_params()``."""
    ensure_loaded()
    cls = CONFIG_REGISTRY.get(alias)
    if cls is None:
        return None
    hit = _cache.get(alias)
    if hit is not None and hit[0] is cls:
        return hit[1]
    t = builtin_target(alias) if _BUILTIN_CLASSES.get(alias) is cls else None
    if t is None:
        t = target_from_config(instantiate(cls, alias), alias)
    _cache[alias] = (cls, t)
    return t


def aliases() -> list[str]:
    ensure_loaded()
    return list(CONFIG_REGISTRY)


def create_model(alias: str, **overrides: Any) -> BaseModelConfig:
    """Seed 002's factory, generalised to every provider: instantiate the configuration of
    ``alias`` and apply ``overrides``. An attribute the configuration does not have is an error
    (not silently ignored), and the result is validated (``temperature=7`` is an error).

    >>> create_model("mixtral-8x7b", temperature=0.9).temperature
    0.9
    """
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
