"""The provider table: where each provider lives, which wire API it speaks, which key it needs.

A *provider* (where, which key) is separate from a *wire adapter* (how to talk): every
OpenAI-compatible vendor reuses the ``openai_chat`` adapter with its own row here. Each provider
reads ``<PROVIDER>_API_KEY`` and ``<PROVIDER>_BASE_URL`` from the environment; both can be
overridden per config and per call.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ..errors import MissingAPIKeyError, UnknownModelError

__all__ = [
    "EMBEDDINGS_ONLY_WIRES",
    "PROVIDERS",
    "Deployment",
    "ProviderSpec",
    "Secret",
    "get_provider",
    "make_deployment",
    "register_provider_spec",
]

#: Wires of providers llmrelay reaches for embeddings only (no chat adapter).
EMBEDDINGS_ONLY_WIRES = frozenset({"voyage", "cohere"})

AuthStyle = Literal["bearer", "api-key", "x-api-key", "x-goog-api-key", "none"]


class Secret:
    """An API key. Its repr and str never show the value; ``get()`` returns it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    # pydantic.SecretStr's spelling, for users who know it.
    get_secret_value = get

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("llmrelay.Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> Any:  # never pickle the value into logs/caches by accident
        raise TypeError("Secret values cannot be pickled")


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """How to reach one provider."""

    name: str
    wire: str
    base_url: str | None
    key_env: str | None
    key_required: bool = True
    auth: AuthStyle = "bearer"
    alt_key_envs: tuple[str, ...] = ()
    base_url_env: str | None = None
    alt_base_url_envs: tuple[str, ...] = ()
    #: openai_chat: which body field carries the output limit.
    max_tokens_field: str = "max_tokens"
    #: openai_chat: ask for the final usage chunk when streaming.
    stream_usage: bool = True
    #: Parameters the provider rejects; the adapter drops them and says so.
    unsupported_params: frozenset[str] = frozenset()
    #: Parameters the provider spells differently; the adapter renames them and says so.
    param_renames: Mapping[str, str] = field(default_factory=dict)
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    display_name: str = ""
    docs: str = ""
    #: The host of the provider's own API: the catalog enforces retirements only there (a
    #: proxy or mirror may still serve a model). None: official at the spec's base URL.
    official_host: str | None = None
    #: The GenAI semantic conventions' ``gen_ai.provider.name`` (OpenTelemetry); "" = ``name``.
    otel_name: str = ""
    #: openai_chat providers: ``"responses"`` sends every call through the Responses API,
    #: ``"chat"`` none; None: Chat Completions unless the model needs Responses
    #: (``llmrelay.providers.api_choice``).
    api: str | None = None

    @property
    def base_url_var(self) -> str:
        return self.base_url_env or f"{self.name.upper()}_BASE_URL"


def _openai_compat(
    name: str,
    base_url: str | None,
    *,
    key_required: bool = True,
    display: str,
    **kw: Any,
) -> ProviderSpec:
    return ProviderSpec(
        name=name,
        wire="openai_chat",
        base_url=base_url,
        key_env=f"{name.upper()}_API_KEY",
        key_required=key_required,
        display_name=display,
        **kw,
    )


PROVIDERS: dict[str, ProviderSpec] = {
    p.name: p
    for p in (
        ProviderSpec(
            "openai",
            "openai_chat",
            "https://api.openai.com/v1",
            "OPENAI_API_KEY",
            max_tokens_field="max_completion_tokens",
            display_name="OpenAI",
            official_host="api.openai.com",
        ),
        ProviderSpec(
            "azure",
            "openai_chat",
            None,
            "AZURE_API_KEY",
            auth="api-key",
            alt_key_envs=("AZURE_OPENAI_API_KEY",),
            alt_base_url_envs=("AZURE_OPENAI_BASE_URL",),
            max_tokens_field="max_completion_tokens",
            display_name="Azure OpenAI",
            otel_name="azure.ai.openai",
            docs="base URL like https://<resource>.openai.azure.com/openai/v1",
        ),
        ProviderSpec(
            "anthropic",
            "anthropic_messages",
            "https://api.anthropic.com",
            "ANTHROPIC_API_KEY",
            auth="x-api-key",
            display_name="Anthropic",
            official_host="api.anthropic.com",
        ),
        ProviderSpec(
            "gemini",
            "gemini",
            "https://generativelanguage.googleapis.com/v1beta",
            "GEMINI_API_KEY",
            auth="x-goog-api-key",
            alt_key_envs=("GOOGLE_API_KEY",),
            display_name="Google Gemini",
            official_host="generativelanguage.googleapis.com",
            otel_name="gcp.gemini",
        ),
        ProviderSpec(
            # Gemini through its OpenAI-compatible endpoint (Chat Completions): the Gemini key
            # as a bearer token; thought signatures travel in tool calls' ``extra_content``.
            "gemini_openai",
            "openai_chat",
            "https://generativelanguage.googleapis.com/v1beta/openai",
            "GEMINI_API_KEY",
            alt_key_envs=("GOOGLE_API_KEY",),
            display_name="Google Gemini (OpenAI-compatible)",
            official_host="generativelanguage.googleapis.com",
            otel_name="gcp.gemini",
            api="chat",
            docs="https://ai.google.dev/gemini-api/docs/openai",
        ),
        # Embeddings-only rows: their wires have an embeddings adapter and no chat adapter.
        ProviderSpec(
            "voyage",
            "voyage",
            "https://api.voyageai.com/v1",
            "VOYAGE_API_KEY",
            display_name="Voyage AI",
            official_host="api.voyageai.com",
            docs="https://docs.voyageai.com/reference/embeddings-api",
        ),
        ProviderSpec(
            "cohere",
            "cohere",
            "https://api.cohere.com",
            "COHERE_API_KEY",
            alt_key_envs=("CO_API_KEY",),
            display_name="Cohere",
            official_host="api.cohere.com",
            docs="https://docs.cohere.com/reference/embed",
        ),
        _openai_compat(
            "groq", "https://api.groq.com/openai/v1", display="Groq", official_host="api.groq.com"
        ),
        _openai_compat(
            "mistral",
            "https://api.mistral.ai/v1",
            display="Mistral",
            official_host="api.mistral.ai",
            otel_name="mistral_ai",
            param_renames={"seed": "random_seed"},
            unsupported_params=frozenset({"user"}),
        ),
        _openai_compat(
            "deepseek",
            "https://api.deepseek.com/v1",
            display="DeepSeek",
            official_host="api.deepseek.com",
        ),
        _openai_compat(
            "together",
            "https://api.together.xyz/v1",
            display="Together AI",
            official_host="api.together.xyz",
        ),
        _openai_compat(
            "openrouter",
            "https://openrouter.ai/api/v1",
            display="OpenRouter",
            official_host="openrouter.ai",
        ),
        _openai_compat(
            "fireworks",
            "https://api.fireworks.ai/inference/v1",
            display="Fireworks",
            official_host="api.fireworks.ai",
        ),
        _openai_compat(
            "xai", "https://api.x.ai/v1", display="xAI", official_host="api.x.ai", otel_name="x_ai"
        ),
        _openai_compat("ollama", "http://localhost:11434/v1", key_required=False, display="Ollama"),
        _openai_compat("vllm", "http://localhost:8000/v1", key_required=False, display="vLLM"),
        _openai_compat(
            "lmstudio", "http://localhost:1234/v1", key_required=False, display="LM Studio"
        ),
        ProviderSpec(
            "test",
            "test",
            None,
            None,
            key_required=False,
            auth="none",
            display_name="llmrelay test doubles (no network)",
        ),
    )
}

#: Model-name prefixes that identify a provider when a bare model name is given.
_PREFIXES: tuple[tuple[str, str], ...] = (
    ("gpt-", "openai"),
    ("chatgpt-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("claude-", "anthropic"),
    ("gemini-", "gemini"),
)


def register_provider_spec(spec: ProviderSpec) -> None:
    """Add or replace a provider (e.g. another OpenAI-compatible vendor)."""
    PROVIDERS[spec.name] = spec


def get_provider(name: str) -> ProviderSpec:
    spec = PROVIDERS.get(name)
    if spec is None:
        raise UnknownModelError(
            f"unknown provider {name!r}; known providers: {', '.join(sorted(PROVIDERS))}. "
            "Register another OpenAI-compatible vendor with llmrelay.register_provider_spec()"
        )
    return spec


def infer_provider(model: str) -> str | None:
    for prefix, provider in _PREFIXES:
        if model.startswith(prefix):
            return provider
    return None


@dataclass(frozen=True, slots=True)
class Deployment:
    """One concrete place to send a call: provider + model + base URL (+ key)."""

    provider: str
    model: str
    wire: str
    base_url: str
    api_key: Secret | None = None
    api_key_env: str | None = None
    alias: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    spec: ProviderSpec | None = None
    #: Adapter-specific options (e.g. Azure ``api_version``, the test provider's script).
    options: Mapping[str, Any] = field(default_factory=dict)
    #: Identity for breakers, limits and metrics: provider, model and base URL (computed once:
    #: it is read several times per call).
    key: str = field(init=False, repr=False, compare=False)
    #: ``provider/model``, as traces, errors and logs name the deployment (computed once).
    label: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        label = f"{self.provider}/{self.model}"
        object.__setattr__(self, "label", label)
        object.__setattr__(self, "key", f"{label}@{self.base_url}")

    def replace(self, **changes: Any) -> Deployment:
        return replace(self, **changes)


def _env_first(names: tuple[str | None, ...]) -> str | None:
    for n in names:
        if n:
            v = _env(n)
            if v is not None:
                return v
    return None


#: ``os.environ``'s own table (encoded name -> encoded value) and how it encodes a name.
_ENV_DATA: Mapping[Any, Any] | None = getattr(os.environ, "_data", None)
_ENV_KEY: Callable[[str], Any] | None = getattr(os.environ, "encodekey", None)
#: name -> (its encoded form, the encoded value last read, that value stripped or None).
_ENV_READ: dict[str, tuple[Any, Any, str | None]] = {}


def env_reads(
    spec: ProviderSpec, api_key_env: str | None, key_given: bool, url_given: bool
) -> tuple[Any, ...] | None:
    """How ``os.environ`` names (encoded) every variable ``make_deployment`` may read for a
    deployment of ``spec`` (the base URL's unless ``url_given``, the key's unless
    ``key_given``); None when ``os.environ`` is not CPython's."""
    if _ENV_DATA is None or _ENV_KEY is None:
        return None
    names: tuple[str | None, ...] = (
        () if url_given else (spec.base_url_var, *spec.alt_base_url_envs)
    )
    if not key_given:
        names += (api_key_env or spec.key_env, *spec.alt_key_envs)
    return tuple([_ENV_KEY(n) for n in names if n])


def env_values(reads: tuple[Any, ...]) -> tuple[Any, ...]:
    """The (encoded) values of the variables ``reads`` names, None for an unset one: equal
    values, the same deployment."""
    assert _ENV_DATA is not None
    return tuple(map(_ENV_DATA.get, reads))


def _env(name: str) -> str | None:
    """``os.environ.get(name)``, stripped (keys and URLs pasted with a trailing newline still
    work); None when unset or blank. Read on every call (a variable set later counts), but
    decoded only when its value changed: setting a variable stores a new object, so the one
    read last time, if it is still there, still says the same."""
    data, encode = _ENV_DATA, _ENV_KEY
    if data is None or encode is None:  # not CPython's os.environ
        v = os.environ.get(name)
        return v.strip() if v and v.strip() else None
    read = _ENV_READ.get(name)
    if read is None:
        read = (encode(name), object(), None)
    raw = data.get(read[0])
    if raw is read[1]:
        return read[2]
    v = os.environ.get(name)
    value = v.strip() if v and v.strip() else None
    if len(_ENV_READ) >= 256:
        _ENV_READ.clear()
    _ENV_READ[name] = (read[0], raw, value)
    return value


def make_deployment(
    provider: str,
    model: str,
    *,
    api_key: str | Secret | None = None,
    api_key_env: str | None = None,
    base_url: str | None = None,
    alias: str | None = None,
    headers: Mapping[str, str] | None = None,
    options: Mapping[str, Any] | None = None,
    require_key: bool = True,
    spec: ProviderSpec | None = None,
) -> Deployment:
    """Resolve key and base URL (call > config > environment > provider default).

    Raises ``MissingAPIKeyError`` naming the variable when a required key is unset, so nothing
    is sent without credentials. ``spec``: how to reach the provider when not the process-wide
    table's row (a client's own provider registry).
    """
    if spec is None:
        spec = get_provider(provider)
    url = base_url or _env_first((spec.base_url_var, *spec.alt_base_url_envs)) or spec.base_url
    if not url and spec.wire == "test":
        url = f"local://{provider}"  # network-free backends have no URL
    if not url:
        raise UnknownModelError(
            f"provider {provider!r} has no default base URL; set {spec.base_url_var} or pass "
            f"base_url=... ({spec.docs or 'the URL of your deployment'})",
            provider=provider,
            model=model,
        )
    key_var = api_key_env or spec.key_env
    key_value: str | None
    if isinstance(api_key, Secret):
        key_value = api_key.get()
    elif api_key:
        key_value = api_key
    else:
        key_value = _env_first((key_var, *spec.alt_key_envs))
    # The same inputs give the same (immutable) deployment: reuse it instead of rebuilding one
    # per call. Headers/options are compared by identity (they come from a cached Target).
    ck = (provider, model, key_value, url, key_var, alias, id(spec), id(headers), id(options))
    hit = _DEPLOYMENTS.get(ck)
    if hit is not None and hit[0] is spec and hit[1] is headers and hit[2] is options:
        return hit[3]
    secret = Secret(key_value) if key_value else None
    if secret is None and spec.key_required and require_key:
        raise MissingAPIKeyError(
            f"no API key for {spec.display_name or provider}: set the environment variable "
            f"{key_var} (or pass api_key=...)",
            variable=key_var,
            provider=provider,
            model=model,
        )
    dep = Deployment(
        provider=provider,
        model=model,
        wire=spec.wire,
        base_url=url.rstrip("/"),
        api_key=secret,
        api_key_env=key_var,
        alias=alias,
        headers=dict(headers) if headers else {},
        spec=spec,
        options=dict(options) if options else {},
    )
    if len(_DEPLOYMENTS) >= 512:
        _DEPLOYMENTS.clear()
    _DEPLOYMENTS[ck] = (spec, headers, options, dep)
    return dep


#: make_deployment's reuse cache: inputs -> (spec, headers, options, deployment).
_DEPLOYMENTS: dict[tuple[Any, ...], tuple[Any, Any, Any, Deployment]] = {}
