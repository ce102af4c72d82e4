"""The provider registry (seed 003's ``ProviderRegistry``): where each provider lives, its rate
limits and its per-model settings.

.. code-block:: python

    providers = ProviderRegistry()
    providers.register_provider(
        "anthropic",
        Provider(api_base="https://api.anthropic.com", rate_limits={"requests_per_minute": 60}),
    )
    providers.rate_limits("anthropic")      # {"requests_per_minute": 60} for the rate limiter
    client = llmrelay.Client(providers=providers)   # this client uses it

**Which registry applies.** A registry applies to the clients that use it: the default one
(:func:`default_providers`) to every ``Client`` (and every facade built on one) not handed
another, a registry of your own to ``Client(providers=registry)``. Registering into the default
registry also feeds the process-wide provider table (``llmrelay.providers.table``), so every
adapter and ``provider/model`` name uses it at once; registering into a ``ProviderRegistry()``
no client uses changes nothing process-wide. An existing provider keeps its wire format and key
variable and takes the new base URL (the provider's default: ``<PROVIDER>_BASE_URL`` and a
call's ``base_url=`` still win); a new name becomes an OpenAI-compatible provider (or the
``wire`` you name).

**Rate limits** a provider declares (``requests_per_second``, ``requests_per_minute``,
``requests_per_day``, ``tokens_per_minute``, ``tokens_per_day``, ``input_tokens_per_minute``,
``output_tokens_per_minute``, ``concurrent_requests``) are enforced by the rate limiter of every
client using the registry (:mod:`llmrelay.reliability.ratelimit`; shared through Redis when
``LLMRELAY_REDIS_URL`` is set): one scope per provider and API key, shared by its models, and
one per model for limits a ``models`` entry declares. A client without a limiter gets one when
the first limits are declared. The limits are the provider's quota, so every client in a process
counts against the same scope (per provider, base URL, API key and declared limits); in Redis,
every process does.

**Per-model settings** are keyed by the model's id (``gpt-4.1-nano``) or ``<provider>/<id>``
(``openai/gpt-4.1-nano``); both are stored as the id. For a provider the catalog knows, a key
naming none of its models is a ``ConfigurationError`` when the provider is registered.
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigurationError, UnknownModelError, finite, shown
from ..providers.table import PROVIDERS, ProviderSpec, register_provider_spec
from ..transport.headers import header_problem

__all__ = ["RATE_LIMIT_KEYS", "Provider", "ProviderRegistry", "default_providers"]

#: The rate-limit keys a provider may declare (all positive numbers).
RATE_LIMIT_KEYS: tuple[str, ...] = (
    "requests_per_second",
    "requests_per_minute",
    "requests_per_day",
    "tokens_per_minute",
    "tokens_per_day",
    "input_tokens_per_minute",
    "output_tokens_per_minute",
    "concurrent_requests",
)
_WIRES = ("openai_chat", "anthropic_messages", "gemini")


@dataclass(frozen=True, slots=True)
class Provider:
    """One provider's configuration.

    ``api_base``: base URL (``https://api.groq.com/openai/v1``); ``api_key_env``: the variable
    holding its key; ``wire``: ``openai_chat`` (default for new providers),
    ``anthropic_messages`` or ``gemini``; ``rate_limits``: see ``RATE_LIMIT_KEYS``; ``models``:
    per-model settings (``{"openai/gpt-oss-20b": {"rate_limits": {...}}}``).
    """

    api_base: str | None = None
    rate_limits: Mapping[str, float] = field(default_factory=dict)
    api_key_env: str | None = None
    wire: str | None = None
    display_name: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    models: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    key_required: bool = True

    def __repr__(self) -> str:
        # Header values may be keys and a URL may carry a password: names and host only.
        parts = []
        if self.api_base is not None:
            u = urlsplit(self.api_base)
            host = u.hostname or ""
            netloc = f"{host}:{u.port}" if u.port else host
            parts.append(f"api_base={u._replace(netloc=netloc, query='').geturl()!r}")
        for name in ("rate_limits", "api_key_env", "wire", "display_name"):
            value = getattr(self, name)
            if value:
                parts.append(f"{name}={value!r}")
        if self.headers:
            parts.append(f"headers=[{', '.join(sorted(self.headers))}]")
        if self.models:
            parts.append(f"models=[{', '.join(sorted(self.models))}]")
        if not self.key_required:
            parts.append("key_required=False")
        return f"Provider({', '.join(parts)})"

    def __post_init__(self) -> None:
        if self.api_base is not None:
            _check_url(self.api_base)
        if self.wire is not None and (not isinstance(self.wire, str) or self.wire not in _WIRES):
            raise ConfigurationError(
                f"wire must be one of {', '.join(_WIRES)}, not {shown(self.wire)}"
            )
        if self.api_key_env is not None and (
            not isinstance(self.api_key_env, str) or not _ENV_NAME.fullmatch(self.api_key_env)
        ):
            raise ConfigurationError(
                "api_key_env must name an environment variable (letters, digits and '_', not "
                f"starting with a digit, e.g. 'GROQ_API_KEY'), not {shown(self.api_key_env)}"
            )
        if self.display_name is not None and (
            not isinstance(self.display_name, str) or not self.display_name.strip()
        ):
            raise ConfigurationError(
                f"display_name must be a non-empty string, not {shown(self.display_name)}"
            )
        if not isinstance(self.key_required, bool):
            raise ConfigurationError(
                f"key_required must be True or False, not {shown(self.key_required)}"
            )
        _check_headers(self.headers)
        _check_limits(self.rate_limits, "rate_limits")
        if not isinstance(self.models, Mapping):
            raise ConfigurationError("models must be a mapping of model name -> settings")
        for name, settings in self.models.items():
            if not isinstance(name, str) or not name.strip():
                raise ConfigurationError(
                    f"models lists {shown(name)}: each key must be a model name"
                )
            if not isinstance(settings, Mapping):
                raise ConfigurationError(f"models[{shown(name)}] must be a mapping of settings")
            if "rate_limits" in settings:
                _check_limits(settings["rate_limits"], f"models[{shown(name)}].rate_limits")
        # Own copies: the caller's dicts changed later cannot bypass these checks.
        object.__setattr__(self, "rate_limits", dict(self.rate_limits))
        object.__setattr__(self, "headers", dict(self.headers))
        models = {}
        for name, settings in self.models.items():
            own = dict(settings)
            if "rate_limits" in own:
                own["rate_limits"] = dict(own["rate_limits"])
            models[name] = own
        object.__setattr__(self, "models", models)


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


_USERINFO = re.compile(r"(?<=//)[^/?#]*@")


def _shown_url(url: str) -> str:
    """``shown(url)`` with any ``user:password@`` replaced: a bad URL may still hold a key."""
    return shown(_USERINFO.sub("***@", url))


def _check_url(url: object) -> None:
    if not isinstance(url, str):
        raise ConfigurationError(f"api_base must be an http(s) URL, not {shown(url)}")
    fix = "give the full URL of the API, like 'https://api.groq.com/openai/v1'"
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise ConfigurationError(
            f"api_base {_shown_url(url)} holds whitespace or control characters; {fix}"
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (a bad port raises ValueError here)
    except ValueError:
        raise ConfigurationError(f"api_base {_shown_url(url)} is not a valid URL; {fix}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ConfigurationError(
            f"api_base must be an http:// or https:// URL, not {_shown_url(url)}; {fix}"
        )
    if not parts.hostname:
        raise ConfigurationError(f"api_base {_shown_url(url)} names no host; {fix}")


def _check_headers(headers: object) -> None:
    """Header names are RFC 9110 tokens and values strings without CR, LF or NUL (a header
    injection otherwise). Values are never shown: they may be keys."""
    if not isinstance(headers, Mapping):
        raise ConfigurationError(
            f"headers must be a mapping of header name -> value, not {shown(headers)}"
        )
    for k, v in headers.items():
        problem = header_problem(k, v)
        if problem is not None:
            raise ConfigurationError(f"headers: {shown(k)} {problem}")


def _check_limits(limits: Any, where: str) -> None:
    if not isinstance(limits, Mapping):
        raise ConfigurationError(f"{where} must be a mapping like {{'requests_per_minute': 60}}")
    for k, v in limits.items():
        if k not in RATE_LIMIT_KEYS:
            raise ConfigurationError(
                f"unknown rate limit {shown(k)} in {where}; valid keys: "
                f"{', '.join(RATE_LIMIT_KEYS)}"
            )
        integer = k == "concurrent_requests"
        if (
            isinstance(v, bool)
            or not isinstance(v, int if integer else int | float)
            or not finite(v)
            or v <= 0
        ):
            kind = "positive whole number" if integer else "positive number (finite)"
            name = RATE_LIMIT_KEYS[RATE_LIMIT_KEYS.index(k)]  # the plain str, not the caller's
            raise ConfigurationError(f"{where}[{name!r}] must be a {kind}, not {shown(v)}")


class ProviderRegistry:
    """Providers by name, for the clients that use this registry (see the module docs)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._providers: dict[str, Provider] = {}
        self._specs: dict[str, ProviderSpec] = {}
        self._default = False
        #: Bumped by every registration (the rate limiter re-reads limits when it changes).
        self.version = 0
        self._watchers: list[weakref.ref[Any]] = []

    @property
    def is_default(self) -> bool:
        """Is this the registry every client uses unless handed another?"""
        return self._default

    def register_provider(
        self, name: str, provider: Provider, *, apply: bool | None = None
    ) -> None:
        """Register (or replace) a provider. ``apply``: also feed the process-wide provider
        table -- by default only the default registry does."""
        if not isinstance(name, str) or not name.strip() or "/" in name:
            raise ConfigurationError(
                f"a provider name must be a non-empty word without '/', not {shown(name)}"
            )
        if not isinstance(provider, Provider):
            raise ConfigurationError(
                f"register_provider takes a Provider, not {type(provider).__name__}"
            )
        if apply is not None and not isinstance(apply, bool):
            raise ConfigurationError(
                "apply must be True, False or None (only the default registry feeds the "
                f"process-wide provider table), not {shown(apply)}"
            )
        provider = _normalised_models(name, provider)
        spec = self._spec(name, provider)
        if self._default if apply is None else apply:
            register_provider_spec(spec)
        with self._lock:
            self._providers[name] = provider
            self._specs[name] = spec
            self.version += 1
            watchers = [w() for w in self._watchers]
            self._watchers = [w for w, o in zip(self._watchers, watchers, strict=True) if o]
        if self.has_limits:
            for engine in watchers:
                if engine is not None:
                    engine.use_provider_limits(self)

    def watch(self, engine: Any) -> None:
        """Tell ``engine`` (weakly held) when providers here declare rate limits -- now, if
        some do: it calls ``engine.use_provider_limits(self)``."""
        with self._lock:
            self._watchers = [w for w in self._watchers if w() is not None]
            self._watchers.append(weakref.ref(engine))
        if self.has_limits:
            engine.use_provider_limits(self)

    @property
    def has_limits(self) -> bool:
        """Does any provider here declare rate limits (its own or a model's)?"""
        return any(
            p.rate_limits or any("rate_limits" in m for m in p.models.values())
            for p in list(self._providers.values())
        )

    def spec_for(self, name: str) -> ProviderSpec | None:
        """How this registry reaches provider ``name`` (None: not registered here). The default
        registry's specs are the process-wide table's."""
        return self._specs.get(name)

    @staticmethod
    def _spec(name: str, p: Provider) -> ProviderSpec:
        existing = PROVIDERS.get(name)
        if existing is not None:
            changes: dict[str, Any] = {}
            if p.api_base is not None:
                changes["base_url"] = p.api_base
            if p.api_key_env is not None:
                changes["key_env"] = p.api_key_env
            if p.wire is not None:
                changes["wire"] = p.wire
            if p.headers:
                changes["extra_headers"] = {**existing.extra_headers, **p.headers}
            if p.display_name:
                changes["display_name"] = p.display_name
            return replace(existing, **changes)
        if p.api_base is None:
            raise ConfigurationError(
                f"provider {shown(name)} is new: give its api_base (the URL its API lives at)"
            )
        wire = p.wire or "openai_chat"
        return ProviderSpec(
            name=name,
            wire=wire,
            base_url=p.api_base,
            key_env=p.api_key_env or f"{name.upper().replace('-', '_')}_API_KEY",
            key_required=p.key_required,
            auth={"anthropic_messages": "x-api-key", "gemini": "x-goog-api-key"}.get(
                wire, "bearer"
            ),  # type: ignore[arg-type]
            extra_headers=dict(p.headers),
            display_name=p.display_name or name,
        )

    def get_provider(self, name: str) -> Provider:
        p = self._providers.get(name) if isinstance(name, str) else None
        if p is None:
            raise UnknownModelError(
                f"provider {shown(name)} is not registered here; registered: "
                f"{', '.join(sorted(self._providers)) or 'none'}"
            )
        return p

    def list_providers(self) -> list[str]:
        return sorted(self._providers)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._providers

    def rate_limits(self, name: str, model: str | None = None) -> dict[str, float]:
        """The provider's rate limits, with the model's own limits over them when given.
        Empty when none are declared."""
        p = self._providers.get(name) if isinstance(name, str) else None
        if p is None:
            return {}
        limits = dict(p.rate_limits)
        if model is not None:
            limits.update(_model_settings(name, p, model).get("rate_limits") or {})
        return limits

    def declared_limits(
        self, name: str, model: str
    ) -> tuple[Mapping[str, float], Mapping[str, float]] | None:
        """What the rate limiter enforces for ``name``/``model``: the provider's own limits
        (shared by its models) and the model's (empty when none); None when the provider is
        not registered here."""
        p = self._providers.get(name) if isinstance(name, str) else None
        if p is None:
            return None
        return p.rate_limits, _model_settings(name, p, model).get("rate_limits") or {}

    def get_provider_model_config(self, name: str, model: str) -> dict[str, Any]:
        """The per-model settings a provider declares for ``model`` (empty when none)."""
        return dict(_model_settings(name, self.get_provider(name), model))

    def __repr__(self) -> str:
        what = "default: " if self._default else ""
        return f"ProviderRegistry({what}{', '.join(sorted(self._providers))})"


def _normalised_models(name: str, provider: Provider) -> Provider:
    """``provider`` with its ``models`` keyed by the provider's own model ids: a key may be
    the bare id (``gpt-4.1-nano``) or ``<name>/<id>`` (``openai/gpt-4.1-nano``); a catalog
    name of the model (an alias, a dated id) becomes its id. For a provider the catalog knows,
    a key naming no model of it is a ``ConfigurationError`` (its limits would never apply)."""
    if not provider.models:
        return provider
    from .model_registry import default_registry

    catalog = default_registry()
    known = name in catalog.providers()
    out: dict[str, Mapping[str, Any]] = {}
    for key, settings in provider.models.items():
        model = key
        prefix = f"{name}/"
        # "openai/gpt-4.1-nano" at openai; Groq's own "openai/gpt-oss-20b" stays itself
        if (
            key.startswith(prefix)
            and len(key) > len(prefix)
            and not (known and catalog.lookup(name, key) is not None)
        ):
            model = key[len(prefix) :]
        if known:
            profile = catalog.lookup(name, model)
            if profile is None:
                raise ConfigurationError(
                    f"models[{shown(key)}] of provider {shown(name)}: the catalog knows no such "
                    f"model of {name}, so its settings would never apply. Use the model's id "
                    f"(bare, or '{name}/<id>'; `llmrelay models --provider {name}` lists them), "
                    "or add the model to the catalog first (LLMRegistry.register)"
                )
            model = profile.name
        if model in out:
            raise ConfigurationError(
                f"models of provider {shown(name)} name the model {shown(model)} twice "
                f"(as {shown(key)} too); keep one entry"
            )
        out[model] = settings
    return replace(provider, models=out)


def _model_settings(name: str, p: Provider, model: str) -> Mapping[str, Any]:
    """The settings ``p`` declares for ``model`` (by id, or by another catalog name of it)."""
    if not p.models or not isinstance(model, str):
        return {}
    hit = p.models.get(model)
    if hit is None:
        from .model_registry import default_registry

        profile = default_registry().lookup(name, model)
        hit = p.models.get(profile.name) if profile is not None else None
    return hit or {}


_DEFAULT: ProviderRegistry | None = None
_DEFAULT_LOCK = threading.Lock()


def default_providers() -> ProviderRegistry:
    """The registry every client uses unless handed another; registering here also feeds the
    process-wide provider table."""
    global _DEFAULT
    if _DEFAULT is None:
        with _DEFAULT_LOCK:
            if _DEFAULT is None:
                reg = ProviderRegistry()
                reg._default = True
                _DEFAULT = reg
    return _DEFAULT
