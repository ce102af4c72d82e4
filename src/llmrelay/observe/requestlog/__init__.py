"""The request log: one row per logical call and one per attempt, in SQLite or PostgreSQL.

    >>> from llmrelay import Client
    >>> client = Client(log=True)          # doctest: +SKIP  (the configured SQLite file)
    >>> client.log.recent(limit=5)         # doctest: +SKIP

Nothing is written unless logging is turned on (``Client(log=...)``,
``Engine(recorder=RequestLog(...))``, or ``[log] enabled = true`` / ``LLMRELAY_LOG=1`` for the
CLI). Prompts and answers are stored only with content logging on (``Engine(log_content=True)``,
``[log] content = true``). See :mod:`.writer` for how rows are written and kept safe,
:mod:`llmrelay.settings.requestlog` for the configuration (:mod:`.stores` opens the store it
names), ``llmrelay usage`` and ``llmrelay logs`` to read it.
"""

from __future__ import annotations

from .base import OUTCOMES, LogFilter, LogStore
from .postgres import PostgresStore
from .rows import AttemptRow, RequestRow, rows_from_record
from .sqlite import SQLiteStore
from .writer import RequestLog

__all__ = [
    "OUTCOMES",
    "AttemptRow",
    "LogFilter",
    "LogStore",
    "PostgresStore",
    "RequestLog",
    "RequestRow",
    "SQLiteStore",
    "rows_from_record",
]
