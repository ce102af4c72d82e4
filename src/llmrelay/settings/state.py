"""Where shared state lives: the ``[state]`` table of the configuration file and the environment.

Read only: :mod:`llmrelay.state.open` opens the store these settings name, and
:mod:`llmrelay.settings.layers` builds the cache, limits, breakers and budgets on it.

.. code-block:: toml

    [state]
    backend = "redis"                  # "memory" (default), "sqlite" or "redis"
    url = "redis://127.0.0.1:6379/0"   # redis; LLMRELAY_REDIS_URL overrides it
    path = "~/.cache/llmrelay/state.sqlite3"   # sqlite
    prefix = "llmrelay:"               # put in front of every key
    connect_now = false                # true: an unreachable Redis is an error at start
    timeout = 1.0                      # seconds per Redis operation
    retry_interval = 1.0               # after a failure, seconds before trying Redis again

``LLMRELAY_REDIS_URL`` alone selects Redis: every facade built afterwards (``llmrelay.Client()``
and the module-level functions, ``ModelHandler``, ``LLMClient``, ``LLMManager``, the CLI) then
shares its response cache (when caching is on), rate limits (when configured), circuit breakers
and budgets through that server. Without it and without a ``[state]`` table, state lives in
each process. An unreachable Redis is not an error at start unless ``connect_now = true``:
the layers fail open (cache, limits, breakers fall back to in-process) or closed (budgets) as
documented in ``llmrelay.state``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigFileError, ConfigurationError
from ..state.base import check_positive, redact_url
from .file import error_at, file_settings

__all__ = [
    "ENV_REDIS_URL",
    "StateSettings",
    "parse_state",
    "settings_from_config",
    "settings_from_env",
]

ENV_REDIS_URL = "LLMRELAY_REDIS_URL"
_BACKENDS = ("memory", "sqlite", "redis")
_STATE_KEYS = {"backend", "url", "path", "prefix", "connect_now", "timeout", "retry_interval"}


@dataclass(frozen=True, slots=True)
class StateSettings:
    """Where shared state lives (see the module docs for each field)."""

    backend: str = "memory"
    url: str | None = None
    path: str | None = None
    prefix: str = "llmrelay:"
    connect_now: bool = False
    timeout: float = 1.0
    retry_interval: float = 1.0

    def __post_init__(self) -> None:
        if self.backend not in _BACKENDS:
            raise ConfigurationError(
                f"state backend must be one of {', '.join(_BACKENDS)}, not {self.backend!r}"
            )
        if self.backend == "redis" and not self.url:
            raise ConfigurationError(
                "the redis state backend needs a url (redis://host:6379/0), in [state] url or "
                f"{ENV_REDIS_URL}"
            )
        if not isinstance(self.prefix, str):
            raise ConfigurationError(f"state prefix must be a string, not {self.prefix!r}")
        check_positive(self.timeout, "state timeout")
        check_positive(self.retry_interval, "state retry_interval", zero=True)


# --------------------------------------------------------------------------- reading config


def _file_table(section: str, known: set[str] | None) -> dict[str, Any]:
    table = file_settings(section)
    if known is not None:
        unknown = set(table) - known
        if unknown:
            raise _file_error(
                section,
                sorted(unknown)[0],
                f"unknown key(s) {', '.join(sorted(unknown))} in [{section}]; known keys: "
                f"{', '.join(sorted(known))}",
            )
    return table


def _file_error(section: str, key: str, message: str) -> ConfigFileError:
    return error_at(section, key, message)


def _typed(section: str, table: Mapping[str, Any], key: str, types: tuple[type, ...]) -> Any:
    v = table.get(key)
    if v is not None and (not isinstance(v, types) or (bool not in types and isinstance(v, bool))):
        want = " or ".join(t.__name__ for t in types)
        raise _file_error(section, key, f"{key} must be {want}, not {v!r}")
    return v


def settings_from_env() -> StateSettings | None:
    url = os.environ.get(ENV_REDIS_URL, "").strip()
    return StateSettings("redis", url=url) if url else None


def settings_from_config() -> StateSettings | None:
    """``[state]`` of the configuration file, with ``LLMRELAY_REDIS_URL`` winning; None when
    neither says anything."""
    table = _file_table("state", _STATE_KEYS)
    env = os.environ.get(ENV_REDIS_URL, "").strip()
    if not table and not env:
        return None
    kw: dict[str, Any] = {}
    for key, types in (
        ("backend", (str,)),
        ("url", (str,)),
        ("path", (str,)),
        ("prefix", (str,)),
        ("connect_now", (bool,)),
        ("timeout", (int, float)),
        ("retry_interval", (int, float)),
    ):
        v = _typed("state", table, key, types)
        if v is not None:
            kw[key] = v
    if env:
        kw["backend"], kw["url"] = "redis", env
    try:
        return StateSettings(**kw)
    except ConfigurationError as exc:
        if env:
            raise
        raise _file_error("state", "backend", exc.message) from None


def parse_state(value: str) -> StateSettings:
    """``"memory"``, a SQLite URL or a Redis URL as settings. SQLite URLs follow SQLAlchemy:
    ``sqlite:///state.db`` is relative to the working directory, ``sqlite:////abs/state.db``
    absolute."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"state must be a store URL or a Store, not {value!r}")
    v = value.strip()
    if v in ("memory", "memory://"):
        return StateSettings("memory")
    if v.startswith("sqlite://"):
        path = v[len("sqlite:///") :] if v.startswith("sqlite:///") else ""
        if not path:
            raise ConfigurationError(
                "a SQLite state URL needs a file: sqlite:///state.db (relative) or "
                "sqlite:////abs/path/state.db"
            )
        return StateSettings("sqlite", path=path)
    if v.startswith(("redis://", "rediss://", "unix://")):
        return StateSettings("redis", url=v)
    raise ConfigurationError(
        f"unknown state {redact_url(v)!r}: use 'memory', 'sqlite:////path/to/state.db' or a Redis "
        "URL (redis://host:6379/0)"
    )
