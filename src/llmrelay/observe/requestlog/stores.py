"""Opening the request log's store: a ``postgresql://`` DSN, a SQLite path, or the configured one.

Where the log goes is read by :mod:`llmrelay.settings.requestlog` (``[log]`` and
``LLMRELAY_LOG_*``); this module only turns a location into a :class:`LogStore`.
"""

from __future__ import annotations

import os
from pathlib import Path

from ...errors import ConfigurationError
from ...settings.requestlog import is_dsn, log_settings
from .base import LogStore
from .postgres import PostgresStore
from .sqlite import SQLiteStore

__all__ = ["open_store"]


def open_store(target: str | os.PathLike[str] | None = None) -> LogStore:
    """A store for ``target``: a ``postgresql://`` DSN, a SQLite path, or (None) the configured
    one (``[log]`` / environment; SQLite at the default path when nothing is set). Nothing is
    connected or created here: the store opens on first use."""
    if target is None:
        target = log_settings().target
    text = os.fspath(target)
    if not text.strip():
        raise ConfigurationError("the request log location is empty: give a file path or a DSN")
    if is_dsn(text):
        return PostgresStore(text)
    return SQLiteStore(Path(text).expanduser())
