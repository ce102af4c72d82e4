"""Resolving what the caller named (an alias, ``provider/model``, a bare model name, or a
backend object) into a :class:`Target`, and a target into a concrete ``Deployment``."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import UnknownModelError
from ..types import NO_PARAMS, GenerationParams
from .table import PROVIDERS, Deployment, Secret, infer_provider, make_deployment

__all__ = ["Target", "alias_sources", "register_alias_source", "resolve_target", "to_deployment"]


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


AliasLookup = Callable[[str], "Target | None"]
AliasLister = Callable[[], list[str]]

# Alias sources, consulted in order (the config registry registers itself on import).
_SOURCES: list[tuple[AliasLookup, AliasLister]] = []


def register_alias_source(lookup: AliasLookup, lister: AliasLister) -> None:
    _SOURCES.append((lookup, lister))


def alias_sources() -> list[tuple[AliasLookup, AliasLister]]:
    if not _SOURCES:
        from ..seeds import seed002 as config  # noqa: F401  (registers the config registry as a source)
    return _SOURCES


def known_aliases() -> list[str]:
    out: list[str] = []
    for _, lister in alias_sources():
        out.extend(lister())
    return out


def resolve_target(name: str) -> Target:
    """Alias first, then ``provider/model``, then a bare model name with a known prefix."""
    if not isinstance(name, str) or not name.strip():
        raise UnknownModelError(
            f"model must be a non-empty string (an alias or 'provider/model'), not {name!r}"
        )
    for lookup, _ in alias_sources():
        t = lookup(name)
        if t is not None:
            return t
    t = _NAMED.get(name)
    if t is not None and t.provider in PROVIDERS:
        return t  # a provider/model name resolved before (Targets are immutable)
    t = _resolve_name(name)
    if len(_NAMED) >= 1024:
        _NAMED.clear()
    _NAMED[name] = t
    return t


#: provider/model and bare model names already resolved (aliases are looked up first).
_NAMED: dict[str, Target] = {}


def _resolve_name(name: str) -> Target:
    provider, sep, model = name.partition("/")
    if sep:
        if provider in PROVIDERS:
            if not model:
                raise UnknownModelError(f"{name!r} names no model; write '{provider}/<model>'")
            return Target(provider, model)
        raise UnknownModelError(
            f"unknown provider {provider!r} in {name!r}; known providers: "
            f"{', '.join(sorted(PROVIDERS))}"
        )
    inferred = infer_provider(name)
    if inferred:
        return Target(inferred, name)
    aliases = known_aliases()
    close = difflib.get_close_matches(name, aliases, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownModelError(
        f"unknown model {name!r}: not an alias and not 'provider/model'.{hint} "
        f"Use an alias ({len(aliases)} known; `llmrelay models` lists them) or write "
        "'provider/model', e.g. 'groq/openai/gpt-oss-20b'"
    )


def to_deployment(
    t: Target,
    *,
    api_key: str | Secret | None = None,
    base_url: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Deployment:
    """Resolve the key and base URL of a target (call arguments win over the alias config)."""
    hdrs: Mapping[str, str] | None = t.headers
    if headers:
        hdrs = {**t.headers, **headers}
    return make_deployment(
        t.provider,
        t.model,
        api_key=api_key or t.api_key,
        api_key_env=t.api_key_env,
        base_url=base_url or t.base_url,
        alias=t.alias,
        headers=hdrs,
        options=t.options,
    )
