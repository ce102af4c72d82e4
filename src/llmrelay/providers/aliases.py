"""The alias table: what a model alias (``"gpt-4o"``, ``"fast"``) stands for.

Filled from, in order of precedence:

1. sources registered by upper layers (:func:`register_alias_source`): seed 002's
   ``CONFIG_REGISTRY`` registers itself when ``llmrelay.config`` is imported, and then answers
   for every alias (it materialises the built-in and file aliases as configuration classes);
2. the configuration file's ``[models]`` tables (read through :mod:`llmrelay.settings.file`,
   which also applies the file's ``[providers]`` tables here);
3. the built-in aliases (:data:`BUILTIN_ALIASES`, from :data:`SEED_ALIASES` and
   :data:`CURRENT_MODELS`): a built-in alias stands for its provider and model only, so
   ``chat("gpt-4o-mini", ...)`` sends the same request as ``chat("openai/gpt-4o-mini", ...)``.

A file alias is the parameter dict of a seed-002 configuration (``get_params()``), validated by
:func:`target_from_params` into a :class:`~llmrelay.providers.resolve.Target` once, then cached.
Seed 002's defaults (system message, temperature 0.7, ...) belong to its configuration classes
(and so to ``ModelHandler`` and ``create_model``), not to the built-in aliases.
Nothing here imports the seeds.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import (
    ConfigurationError,
    InvalidRequestError,
    LLMRelayError,
    UnknownModelError,
)
from ..settings import file as settings_file
from ..types import NO_PARAMS, GenerationParams, _kind, build_params
from .table import PROVIDERS, ProviderSpec, Secret, infer_provider, register_provider_spec

__all__ = [
    "BUILTIN_ALIASES",
    "CURRENT_MODELS",
    "PARAM_KEYS",
    "POLICY_KEYS",
    "SEED_ALIASES",
    "BuiltinAlias",
    "InvalidConfigValueError",
    "Target",
    "alias_sources",
    "base_params",
    "builtin_target",
    "file_models",
    "known_aliases",
    "lookup",
    "pull_file",
    "register_alias_source",
    "target_from_params",
]


@dataclass(frozen=True, slots=True)
class Target:
    """A model as configured: provider, model and the alias's defaults."""

    provider: str
    model: str
    alias: str | None = None
    params: GenerationParams = NO_PARAMS
    system_message: str | None = None
    base_url: str | None = None
    api_key: Secret | None = None
    api_key_env: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    #: Aliases or provider/model names to try, in order, when this one fails.
    fallbacks: tuple[str, ...] = ()
    #: Per-alias reliability settings (retries, timeouts, ...), read by the engine.
    policy: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.alias or f"{self.provider}/{self.model}"


# --------------------------------------------------------------------------- built-in data

#: The seeds' aliases (kept although their models are retired): alias -> (provider, model,
#: max_tokens, the seed-002 class name). ``max_tokens`` is the attribute of the alias's seed-002
#: configuration class (the seed's ``MixtralEightXSevenBConfig`` has ``max_tokens = 32768``);
#: a call through the alias does not send it (see :func:`builtin_target`).
SEED_ALIASES: dict[str, tuple[str, str, int, str]] = {
    "mixtral-8x7b": ("groq", "mixtral-8x7b-32768", 32768, "MixtralEightXSevenBConfig"),
    "llama3-70b": ("groq", "llama3-70b-8192", 8192, "LlamaThreeSeventyBConfig"),
    "llama3-8b": ("groq", "llama3-8b-8192", 8192, "LlamaThreeEightBConfig"),
    "gemma2-9b": ("groq", "gemma2-9b-it", 8192, "GemmaTwoNineBConfig"),
    "qwen-coder-32b": ("groq", "qwen-2.5-coder-32b", 8192, "QwenCoderThirtyTwoBConfig"),
    "c3opus": ("anthropic", "claude-3-opus-20240229", 4096, "ClaudeThreeOpusConfig"),
}

#: ``(alias, provider model id)`` per provider: the models each provider serves on 2026-11-24
#: (newest first), including deprecated ones that still answer until their shutdown date (see
#: the catalog). Models already shut down have no built-in alias, except the seeds' above.
#: Their seed-002 configuration classes have ``max_tokens = 4096``.
CURRENT_MODELS: dict[str, tuple[tuple[str, str], ...]] = {
    "openai": (
        ("gpt-6.2-astra", "gpt-6.2-astra"),
        ("gpt-6.2-sol", "gpt-6.2-sol"),
        ("gpt-6-astra", "gpt-6-astra"),
        ("gpt-6.1-sol", "gpt-6.1-sol"),
        ("gpt-6-sol", "gpt-6-sol"),
        ("gpt-6.1-terra", "gpt-6.1-terra"),
        ("gpt-6-luna", "gpt-6-luna"),
        ("gpt-5.6-sol", "gpt-5.6-sol"),
        ("gpt-5.6-terra", "gpt-5.6-terra"),
        ("gpt-5.6-luna", "gpt-5.6-luna"),
        ("gpt-5.5", "gpt-5.5"),
        ("gpt-5", "gpt-5"),  # shuts down 2026-12-11
        ("gpt-5-mini", "gpt-5-mini"),  # shuts down 2026-12-11
        ("gpt-5-nano", "gpt-5-nano"),  # shuts down 2026-12-11
        ("o3", "o3"),  # shuts down 2026-12-11
        ("gpt-4.1", "gpt-4.1"),  # shuts down 2027-01-14
        ("gpt-4.1-mini", "gpt-4.1-mini"),  # shuts down 2027-01-14
        ("gpt-4o", "gpt-4o"),  # shuts down 2027-01-14
        ("gpt-4o-mini", "gpt-4o-mini"),  # shuts down 2027-01-14
    ),
    "anthropic": (
        ("claude-fable-5-1", "claude-fable-5-1"),
        ("claude-opus-5-5", "claude-opus-5-5"),
        ("claude-sonnet-5-5", "claude-sonnet-5-5"),
        ("claude-haiku-5-5", "claude-haiku-5-5"),
        ("claude-opus-5", "claude-opus-5"),
        ("claude-sonnet-5", "claude-sonnet-5"),
        ("claude-opus-4-8", "claude-opus-4-8"),
        ("claude-opus-4-6", "claude-opus-4-6"),
        ("claude-sonnet-4-6", "claude-sonnet-4-6"),
        ("claude-opus-4-5", "claude-opus-4-5"),
        ("claude-haiku-4-5", "claude-haiku-4-5"),
    ),
    "gemini": (
        ("gemini-4-argon", "gemini-4-argon"),
        ("gemini-3.8-flash", "gemini-3.8-flash"),
        ("gemini-3.5-flash", "gemini-3.5-flash"),
        ("gemini-3.5-flash-lite", "gemini-3.5-flash-lite"),
        ("gemini-3.1-flash-lite", "gemini-3.1-flash-lite"),
        ("gemini-2.5-flash-lite", "gemini-2.5-flash-lite"),
    ),
    "groq": (
        ("gpt-oss-120b", "openai/gpt-oss-120b"),
        ("gpt-oss-20b", "openai/gpt-oss-20b"),
        ("qwen3.6-27b", "qwen/qwen3.6-27b"),  # a preview model on Groq
    ),
}


@dataclass(frozen=True, slots=True)
class BuiltinAlias:
    """A built-in alias: the provider and model it names. A call through it sends exactly what
    a call through ``provider/model`` sends. ``config_max_tokens`` and ``class_name`` are for
    the alias's seed-002 configuration class only (generated from this row by
    ``llmrelay.seeds.seed002.builtin``, with the seed's defaults)."""

    provider: str
    model: str
    config_max_tokens: int = 4096
    class_name: str | None = None


#: Every built-in alias (the one source of the alias table and of seed 002's built-in classes).
BUILTIN_ALIASES: dict[str, BuiltinAlias] = {
    **{a: BuiltinAlias(p, m, n, c) for a, (p, m, n, c) in SEED_ALIASES.items()},
    **{a: BuiltinAlias(p, m) for p, rows in CURRENT_MODELS.items() for a, m in rows},
}


def builtin_target(name: str) -> Target | None:
    """The target of built-in alias ``name`` (``None`` if it is not one): its provider and
    model, nothing else -- no system message, no sampling parameters, no ``max_tokens``."""
    b = BUILTIN_ALIASES.get(name)
    return None if b is None else Target(b.provider, b.model, alias=name)


#: The seed-002 defaults every provider configuration starts from.
_DEFAULTS: dict[str, Any] = {
    "temperature": 0.7,
    "max_tokens": 1024,
    "top_p": 1.0,
    "frequency_penalty": 0.0,
    "presence_penalty": 0.0,
    "system_message": "You are a helpful assistant.",
    "stream": False,
    "stop": None,
    "base_url": None,
    "fallbacks": [],
    "policy": {},
}
#: Defaults a provider does not accept (unset in its seed-002 base configuration).
UNSET_DEFAULTS: dict[str, tuple[str, ...]] = {
    "anthropic": ("top_p", "frequency_penalty", "presence_penalty"),
    "gemini": ("frequency_penalty", "presence_penalty"),
    "mistral": ("frequency_penalty", "presence_penalty"),
}


def base_params(provider: str) -> dict[str, Any]:
    """The parameters of a provider's base configuration (seed 002's defaults), without key."""
    spec = PROVIDERS.get(provider)
    p = {
        **_DEFAULTS,
        "fallbacks": [],
        "policy": {},
        "provider": provider,
        "api_key_env": spec.key_env if spec is not None else f"{provider.upper()}_API_KEY",
    }
    for k in UNSET_DEFAULTS.get(provider, ()):
        p[k] = None
    return p


# --------------------------------------------------------------------------- validation

#: The keys of ``get_params()`` that are generation parameters.
PARAM_KEYS = (
    "temperature",
    "max_tokens",
    "top_p",
    "frequency_penalty",
    "presence_penalty",
    "stop",
)
#: What an alias's ``policy`` may set: retries per deployment, seconds per attempt, seconds
#: for the whole call.
POLICY_KEYS = ("retries", "timeout", "deadline")


class InvalidConfigValueError(ConfigurationError):
    """One attribute of a configuration has an invalid value; ``field`` names it."""

    def __init__(self, message: str, *, field: str, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.field = field


def _known_providers() -> str:
    return ", ".join(sorted(PROVIDERS))


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
    api = _api(p, spec, what)
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
        options={"api": api} if api else {},
    )


def _api(p: Mapping[str, Any], spec: ProviderSpec, what: str) -> str | None:
    """The configuration's ``api`` ("chat" | "responses"); Responses only for a provider that
    speaks the OpenAI API."""
    api = p.get("api")
    if api is None:
        return None
    if api not in ("chat", "responses"):
        raise InvalidConfigValueError(
            f"{what}: api must be 'chat' or 'responses', not {_kind(api)}", field="api"
        )
    if api == "responses" and spec.wire != "openai_chat":
        raise InvalidConfigValueError(
            f"{what}: api = 'responses' needs an OpenAI or OpenAI-compatible provider; "
            f"{spec.name} speaks the {spec.wire} API",
            field="api",
        )
    return str(api)


def _optional_str(p: Mapping[str, Any], name: str, what: str) -> str | None:
    v = p.get(name)
    if v is None or isinstance(v, str):
        return v
    raise InvalidConfigValueError(
        f"{what}: {name} must be a string, not {type(v).__name__} {v!r}", field=name
    )


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


# --------------------------------------------------------------------------- the file's tables


def _file_params(provider: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    p = base_params(provider)
    p.update({k: v for k, v in entry.items() if k != "provider"})
    return p


def _strip_what(message: str) -> str:
    """Drop the "configuration 'x': " prefix: the file error already locates it."""
    return re.sub(r"^configuration '[^']*'(?: \([^)]*\))?:?\s*", "", message)


def check_file(f: settings_file.LoadedFile) -> list[ProviderSpec]:
    """Check a file's ``[providers]`` and ``[models]`` against the provider table; return the
    provider specs it changes. Raises ``ConfigFileError`` (path, line, key); changes nothing."""
    changes: list[ProviderSpec] = []
    for name, entry in f.tables.get("providers", {}).items():
        spec = PROVIDERS.get(name)
        if spec is None:
            raise f.error(
                ("providers", name),
                f"unknown provider {name!r}{settings_file.did_you_mean(name, PROVIDERS)}; "
                f"known providers: {_known_providers()}",
            )
        new: dict[str, Any] = {}
        if "base_url" in entry:
            new["base_url"] = entry["base_url"]
        if "api_key_env" in entry:
            new["key_env"] = entry["api_key_env"]
        if "api" in entry:
            if entry["api"] == "responses" and spec.wire != "openai_chat":
                raise f.error(
                    ("providers", name, "api"),
                    f'api = "responses" needs a provider that speaks the OpenAI API; {name} '
                    f"speaks the {spec.wire} API",
                )
            new["api"] = entry["api"]
        if new:
            changes.append(replace(spec, **new))
    models: dict[str, Any] = f.tables.get("models", {})
    for alias, entry in models.items():
        table = ("models", alias)
        provider = entry["provider"]
        if provider not in PROVIDERS:
            raise f.error(
                (*table, "provider"),
                f"unknown provider {provider!r}{settings_file.did_you_mean(provider, PROVIDERS)}"
                f"; known providers: {_known_providers()}",
            )
        for fb in entry.get("fallbacks", []):
            prov, sep, _ = fb.partition("/")
            if sep and prov not in PROVIDERS and fb not in models and not _is_alias(fb):
                raise f.error(
                    (*table, "fallbacks"),
                    f"fallback {fb!r} names unknown provider {prov!r}; known providers: "
                    f"{_known_providers()}",
                )
        try:
            target_from_params(
                _file_params(provider, entry), alias=alias, what=f"configuration {alias!r}"
            )
        except InvalidConfigValueError as exc:
            raise f.error((*table, exc.field), _strip_what(exc.message)) from None
        except LLMRelayError as exc:
            raise f.error(table, _strip_what(exc.message)) from None
    return changes


def _is_alias(name: str) -> bool:
    return name in BUILTIN_ALIASES or name in _from_files


#: per applied file, its ``[models]`` entries (alias -> the TOML table), in load order
_file_models: list[dict[str, dict[str, Any]]] = []
#: alias -> its parameters from the files (a later file's alias replaces an earlier one)
_from_files: dict[str, dict[str, Any]] = {}
_lock = threading.RLock()


def pull_file() -> int:
    """Apply the configuration files loaded and not applied yet (their ``[providers]`` and
    ``[models]``); return how many files are applied. Loads ``llmrelay.toml`` on first use."""
    n = settings_file.generation()
    if n == len(_file_models):
        return n
    return _apply_files(settings_file.loaded_files())


def _apply_files(files: tuple[settings_file.LoadedFile, ...]) -> int:
    with _lock:
        for f in files[len(_file_models) :]:
            for spec in check_file(f):
                register_provider_spec(spec)
            models: dict[str, dict[str, Any]] = dict(f.tables.get("models", {}))
            for alias, entry in models.items():
                _from_files[alias] = _file_params(entry["provider"], entry)
            _file_models.append(models)
            _targets.clear()  # the file may change a provider (key variable) of any alias
        return len(_file_models)


def _on_load(f: settings_file.LoadedFile) -> None:
    """A file was kept (checked by :func:`check_file`): apply it now, as seed 002 did."""
    _apply_files(settings_file.loaded_files())


def file_models() -> list[dict[str, dict[str, Any]]]:
    """Each applied file's ``[models]`` entries, in load order (for seed 002's classes)."""
    pull_file()
    return list(_file_models)


settings_file.register_check(check_file, _on_load)

# --------------------------------------------------------------------------- lookup

AliasLookup = Callable[[str], "Target | None"]
AliasLister = Callable[[], list[str]]

#: Registered alias sources, consulted first, in order.
_SOURCES: list[tuple[AliasLookup, AliasLister]] = []
#: Whether a registered source answers for the whole table (seed 002's registry does).
_replaced = False
#: alias -> its target, or None for a name that is not an alias (both until the next file)
_targets: dict[str, Target | None] = {}
_UNKNOWN: Any = object()


def register_alias_source(
    lookup: AliasLookup, lister: AliasLister, *, whole_table: bool = False
) -> None:
    """Consult ``lookup(alias) -> Target | None`` before the file and built-in aliases.

    With ``whole_table=True`` the source answers for every alias, the built-in and file ones
    included (seed 002's ``CONFIG_REGISTRY``, where user code may replace or remove them).
    """
    global _replaced
    _SOURCES.append((lookup, lister))
    _replaced = _replaced or whole_table


def alias_sources() -> list[tuple[AliasLookup, AliasLister]]:
    return _SOURCES


def lookup(name: str) -> Target | None:
    """The target of alias ``name``, or ``None`` when it is not an alias."""
    for find, _ in _SOURCES:
        t = find(name)
        if t is not None:
            return t
    if _replaced:
        return None
    pull_file()
    t = _targets.get(name, _UNKNOWN)
    if t is not _UNKNOWN:
        return t  # a Target, or None: not an alias
    p = _from_files.get(name)
    if p is None:
        t = builtin_target(name)
        if t is None:
            if len(_targets) >= 4096:  # names a gateway's callers choose: keep this bounded
                _targets.clear()
            _targets[name] = None  # until the next file (``_apply_files`` clears the table)
            return None
    else:
        t = target_from_params(p, alias=name, what=f"configuration {name!r}")
    _targets[name] = t
    return t


def known_aliases() -> list[str]:
    out: list[str] = []
    for _, lister in _SOURCES:
        out.extend(lister())
    if not _replaced:
        pull_file()
        seen = set(out)
        for a in (*BUILTIN_ALIASES, *_from_files):
            if a not in seen:
                seen.add(a)
                out.append(a)
    return out
