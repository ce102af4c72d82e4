"""Engine-wide reliability defaults from the configuration file's ``[defaults]`` table.

.. code-block:: toml

    [defaults]
    retries = 2                      # retries per deployment (the SDKs' default)
    timeout = 600                    # seconds per attempt
    deadline = 120                   # seconds per call: every attempt, backoff and fallback
    fallbacks = ["gpt-6-luna"]       # tried in order when a model fails
    context_window_fallbacks = ["gemini-3.5-flash"]
    content_filter_fallbacks = []

    [defaults.retry]                 # RetryPolicy options
    base_delay = 0.5
    max_delay = 8.0
    max_retry_after = 60.0
    jitter = true

    [defaults.breaker]               # CircuitBreaker options per deployment
    enabled = true
    failure_threshold = 5
    recovery_timeout = 30

Every facade built on ``llmrelay.Client`` reads it (the default client, ``ModelHandler``'s
callers, ``LLMClient``, the CLI); arguments given in code win. Problems are
``ConfigFileError`` naming the file and the key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, TypeVar

from ..errors import ConfigFileError, ConfigurationError

__all__ = ["engine_defaults"]

T = TypeVar("T")

_TOP: dict[str, tuple[type, ...]] = {
    "retries": (int,),
    "timeout": (int, float),
    "deadline": (int, float),
    "fallbacks": (list,),
    "context_window_fallbacks": (list,),
    "content_filter_fallbacks": (list,),
    "retry": (dict,),
    "breaker": (dict,),
}
_RETRY_KEYS = ("base_delay", "max_delay", "max_retry_after", "jitter")
_BREAKER_KEYS = (
    "enabled",
    "failure_threshold",
    "recovery_timeout",
    "window_type",
    "window_size",
    "failure_rate_threshold",
    "minimum_calls",
    "slow_call_duration",
    "slow_call_rate_threshold",
    "half_open_max_calls",
)


def _error(message: str, key: str) -> ConfigFileError:
    from .file import settings_path

    return ConfigFileError(message, path=settings_path("defaults"), key=f"defaults.{key}")


def engine_defaults() -> dict[str, Any]:
    """``Engine`` keyword arguments from the configuration file's ``[defaults]``.

    Returns only what the table sets, plus ``breaker_settings`` for the state layer.
    """
    from ..seeds.seed002 import ensure_loaded
    from .file import file_settings

    ensure_loaded()
    table = file_settings("defaults")
    out: dict[str, Any] = {}
    if not table:
        return out
    for key, value in table.items():
        types = _TOP.get(key)
        if types is None:
            raise _error(f"unknown key {key!r}; allowed: {', '.join(_TOP)}", key)
        if isinstance(value, bool) or not isinstance(value, types):
            raise _error(f"{key} must be {' or '.join(t.__name__ for t in types)}", key)
    from ..core.options import DEFAULT_TIMEOUTS, timeouts_from
    from ..core.retry import RetryPolicy
    from ..core.routing import validate_chain

    retry_table = dict(table.get("retry") or {})
    _only(retry_table, _RETRY_KEYS, "retry")
    if "retries" in table or retry_table:
        policy = _checked("retry", lambda: RetryPolicy(**retry_table))
        if "retries" in table:
            n = table["retries"]
            policy = _checked("retries", lambda: dataclasses.replace(policy, max_retries=n))
        out["retry"] = policy
    if "timeout" in table:
        out["timeouts"] = _checked(
            "timeout", lambda: timeouts_from(table["timeout"], DEFAULT_TIMEOUTS)
        )
    if "deadline" in table:
        if not table["deadline"] > 0:
            raise _error("deadline must be a positive number of seconds", "deadline")
        out["deadline"] = float(table["deadline"])
    for chain in ("fallbacks", "context_window_fallbacks", "content_filter_fallbacks"):
        if table.get(chain):
            out[chain] = _checked(chain, partial(validate_chain, table[chain], what=chain))
    breaker = dict(table.get("breaker") or {})
    _only(breaker, _BREAKER_KEYS, "breaker")
    if breaker.pop("enabled", True) is False:
        out["breakers"] = None
    elif breaker:
        from ..reliability.breaker import CircuitBreaker

        _checked("breaker", lambda: CircuitBreaker(**breaker))  # validate now
        out["breaker_settings"] = breaker
    return out


def _only(table: Mapping[str, Any], allowed: tuple[str, ...], key: str) -> None:
    unknown = set(table) - set(allowed)
    if unknown:
        raise _error(
            f"unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(allowed)}", key
        )


def _checked(key: str, build: Callable[[], T]) -> T:
    """Run a constructor, turning its configuration error into one that names the key."""
    try:
        return build()
    except ConfigurationError as exc:
        raise _error(exc.message, key) from None
    except TypeError as exc:
        raise _error(str(exc), key) from None
