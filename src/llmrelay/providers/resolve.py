"""Resolving what the caller named (an alias, ``provider/model``, a bare model name, or a
backend object) into a :class:`Target`, and a target into a concrete ``Deployment``."""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from ..errors import UnknownModelError
from ..types import _kind
from .aliases import Target, alias_sources, known_aliases, lookup, register_alias_source
from .table import PROVIDERS, Deployment, ProviderSpec, Secret, infer_provider, make_deployment

__all__ = [
    "Target",
    "alias_sources",
    "known_aliases",
    "register_alias_source",
    "resolve_target",
    "to_deployment",
]


def resolve_target(name: str) -> Target:
    """Alias first, then ``provider/model``, then a bare model name with a known prefix."""
    if not isinstance(name, str) or not name.strip():
        raise UnknownModelError(
            f"model must be a non-empty string (an alias or 'provider/model'), not {_kind(name)}"
        )
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
    spec: ProviderSpec | None = None,
) -> Deployment:
    """Resolve the key and base URL of a target (call arguments win over the alias config);
    ``spec``: the provider as a client's own registry has it (else the process-wide table)."""
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
        spec=spec,
    )
