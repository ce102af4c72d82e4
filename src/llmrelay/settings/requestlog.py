"""Where the request log goes, from the ``[log]`` table of the config file and the environment.

The library writes no file unless logging is turned on: ``Client(log=...)``, an
``Engine(recorder=RequestLog(...))``, or -- for the CLI's ``chat`` -- ``[log] enabled = true``
or ``LLMRELAY_LOG``.

This module only reads the settings; :func:`llmrelay.observe.requestlog.stores.open_store` opens
the store they name.

.. code-block:: toml

    [log]
    enabled = true                 # the CLI's `chat` logs every call (default false)
    path = "~/llm/requests.db"     # SQLite file (default: $XDG_DATA_HOME/llmrelay/requests.db,
                                   #   i.e. ~/.local/share/llmrelay/requests.db)
    postgres_dsn = "postgresql://llm@db.internal/llm"   # log to PostgreSQL instead of SQLite
    content = false                # also store prompts and answers (default false)

Environment variables override the file: ``LLMRELAY_LOG`` (``1``/``true``/``yes``/``on``
turns logging on, ``0``/``false``/``no``/``off`` turns it off, anything else is a SQLite path or
a ``postgresql://`` DSN and turns it on), ``LLMRELAY_LOG_PATH``, ``LLMRELAY_LOG_DSN`` and
``LLMRELAY_LOG_CONTENT`` (``1``/``0``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigFileError, ConfigurationError
from .file import file_settings, settings_path

__all__ = [
    "ENV_CONTENT",
    "ENV_DSN",
    "ENV_LOG",
    "ENV_PATH",
    "LogSettings",
    "default_log_path",
    "is_dsn",
    "log_settings",
]

ENV_LOG = "LLMRELAY_LOG"
ENV_PATH = "LLMRELAY_LOG_PATH"
ENV_DSN = "LLMRELAY_LOG_DSN"
ENV_CONTENT = "LLMRELAY_LOG_CONTENT"

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})
_KEYS: dict[str, type] = {"enabled": bool, "path": str, "postgres_dsn": str, "content": bool}


def default_log_path() -> Path:
    """``$XDG_DATA_HOME/llmrelay/requests.db`` (``~/.local/share/llmrelay/requests.db``)."""
    base = os.environ.get("XDG_DATA_HOME", "").strip()
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".local" / "share"
    return root / "llmrelay" / "requests.db"


def is_dsn(value: str) -> bool:
    return value.startswith(("postgres://", "postgresql://"))


@dataclass(frozen=True, slots=True)
class LogSettings:
    """The resolved logging settings."""

    enabled: bool = False
    path: Path | None = None
    postgres_dsn: str | None = None
    content: bool = False

    @property
    def target(self) -> str:
        """The DSN when PostgreSQL is configured, otherwise the SQLite path."""
        if self.postgres_dsn:
            return self.postgres_dsn
        return str(self.path or default_log_path())


def _file_table() -> dict[str, Any]:
    table = file_settings("log")
    where = settings_path("log") or "<config>"
    for key, value in table.items():
        want = _KEYS.get(key)
        if want is None:
            raise ConfigFileError(
                f"unknown key {key!r} in [log]; known keys: {', '.join(sorted(_KEYS))}",
                path=where,
                key="log",
            )
        if not isinstance(value, want):
            kind = "true or false" if want is bool else "a string"
            raise ConfigFileError(
                f"[log] {key} must be {kind}, not {value!r}", path=where, key=f"log.{key}"
            )
    return table


def _env_flag(name: str) -> bool | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    v = raw.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ConfigurationError(f"{name} must be 1 or 0 (true/false, yes/no, on/off), not {raw!r}")


def log_settings() -> LogSettings:
    """The settings from the config file's ``[log]`` table and the environment."""
    table = _file_table()
    enabled = bool(table.get("enabled", False))
    path = Path(table["path"]).expanduser() if table.get("path") else None
    dsn: str | None = table.get("postgres_dsn") or None
    content = bool(table.get("content", False))
    if os.environ.get(ENV_PATH, "").strip():
        path = Path(os.environ[ENV_PATH].strip()).expanduser()
    if os.environ.get(ENV_DSN, "").strip():
        dsn = os.environ[ENV_DSN].strip()
    raw = os.environ.get(ENV_LOG)
    if raw is not None:
        v = raw.strip()
        if v.lower() in _TRUE:
            enabled = True
        elif v.lower() in _FALSE:
            enabled = False
        else:
            enabled = True
            if is_dsn(v):
                dsn = v
            else:
                path, dsn = Path(v).expanduser(), None
    flag = _env_flag(ENV_CONTENT)
    if flag is not None:
        content = flag
    return LogSettings(enabled, path, dsn, content)
