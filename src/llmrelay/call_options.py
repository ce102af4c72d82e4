"""Per-call options (:class:`CallOptions`) and the checks on them.

These are the keyword arguments of a call that are not generation parameters: keys and URLs,
timeouts and deadlines, fallbacks, cache and budget scoping. ``llmrelay.engine`` re-exports them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from .errors import InvalidRequestError
from .providers import Secret
from .resolve import Target
from .retry import RetryPolicy
from .transport.base import Timeouts

__all__ = [
    "DEFAULT_TIMEOUTS",
    "NO_OPTIONS",
    "OPTION_NAMES",
    "CallOptions",
    "positive_option",
    "timeouts_from",
]

DEFAULT_TIMEOUTS = Timeouts(connect=10.0, read=600.0, total=600.0)


@dataclass(slots=True)
class CallOptions:
    """Per-call options that are not generation parameters."""

    api_key: str | Secret | None = None
    base_url: str | None = None
    headers: Mapping[str, str] | None = None
    #: Seconds per attempt, or a ``Timeouts`` for connect/read/total of each attempt.
    timeout: float | Timeouts | None = None
    #: Seconds for the whole call: every attempt, backoff and fallback.
    deadline: float | None = None
    #: Streams: seconds from the start of an attempt to its first content chunk.
    first_token_timeout: float | None = None
    #: A system message prepended to the messages.
    system: str | None = None
    #: A pydantic model class: validate the output into it (structured output).
    response_model: Any = None
    #: Re-asks with the validation error after a structured-output failure.
    max_reasks: int = 1
    #: Retries per deployment (overrides the alias and engine settings).
    retries: int | None = None
    #: A full retry policy for this call.
    retry: RetryPolicy | None = None
    #: Aliases, provider/model names or Targets to try in order after the model fails.
    fallbacks: Sequence[str | Target] | None = None
    context_window_fallbacks: Sequence[str | Target] | None = None
    content_filter_fallbacks: Sequence[str | Target] | None = None
    #: Who the call is for: scopes the cache, budgets and limits (defaults to the API key).
    tenant: str | None = None
    #: Labels for budgets, limits and the request log, e.g. {"user": "u1", "team": "search"}.
    tags: Mapping[str, str] | None = None
    #: False skips the response cache for this call (read and write).
    use_cache: bool | None = None
    #: Seconds a cached answer of this call stays valid (overrides the cache's default).
    cache_ttl: float | None = None
    #: Read the cache but do not store this call's answer.
    no_store: bool = False
    #: Wait for a rate limit to free up (up to the deadline) instead of failing over at once.
    wait_for_rate_limit: bool | None = None
    #: Correlates this call's log rows and spans; generated when not given.
    trace_id: str | None = None


OPTION_NAMES = frozenset(f.name for f in fields(CallOptions))
#: The options of a call that sets none.
NO_OPTIONS = CallOptions()


def timeouts_from(value: float | Timeouts | None, default: Timeouts) -> Timeouts:
    """The per-attempt timeouts a ``timeout=`` option asks for (``default`` when unset)."""
    if value is None:
        return default
    if isinstance(value, Timeouts):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidRequestError(f"timeout must be a positive number of seconds, not {value!r}")
    return Timeouts(connect=min(float(value), default.connect or value), read=value, total=value)


def positive_option(name: str, value: float | None) -> None:
    """Raise ``InvalidRequestError`` unless ``value`` is None or a positive number."""
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not value > 0
    ):
        raise InvalidRequestError(f"{name} must be a positive number of seconds, not {value!r}")
