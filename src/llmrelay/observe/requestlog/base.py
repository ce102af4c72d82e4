"""What every request-log store provides, and the filters of its queries."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from ...errors import ConfigurationError, InvalidRequestError
from .rows import AttemptRow, RequestRow

__all__ = [
    "OUTCOMES",
    "USAGE_COLUMNS",
    "LogFilter",
    "LogStore",
    "UsageBy",
    "check_identifier",
    "usage_row",
]

OUTCOMES = ("success", "error", "cancelled", "cache_hit")
UsageBy = Literal["model", "day"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,40}$")


def check_identifier(value: str, what: str) -> str:
    """A SQL identifier we compose into statements: letters, digits and ``_`` only."""
    if not isinstance(value, str) or not _IDENT.match(value):
        raise ConfigurationError(
            f"{what} must be letters, digits and underscores (starting with a letter or _, at "
            f"most 41 characters), not {value!r}"
        )
    return value


@dataclass(frozen=True, slots=True)
class LogFilter:
    """Which request rows a query returns (newest first). Every field is optional.

    ``model`` matches the model name (``gpt-4.1-mini``) or ``provider/model``; ``since`` and
    ``until`` are Unix times (seconds).
    """

    model: str | None = None
    alias: str | None = None
    outcome: str | None = None
    trace_id: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 50

    def __post_init__(self) -> None:
        if self.outcome is not None and self.outcome not in OUTCOMES:
            raise InvalidRequestError(
                f"outcome must be one of {', '.join(OUTCOMES)}, not {self.outcome!r}"
            )
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise InvalidRequestError(f"limit must be a whole number >= 1, not {self.limit!r}")
        for name in ("since", "until"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
                raise InvalidRequestError(f"{name} must be a Unix time in seconds, not {v!r}")

    def model_parts(self) -> tuple[str | None, str | None]:
        """``(provider, model)`` to match: ``"openai/gpt-4o"`` -> both, ``"gpt-4o"`` -> model."""
        if self.model is None:
            return None, None
        provider, sep, model = self.model.partition("/")
        return (provider, model) if sep else (None, self.model)

    def equals(self) -> list[tuple[str, str]]:
        """The ``(column, value)`` pairs a row must match exactly (every store's ``WHERE``)."""
        provider, model = self.model_parts()
        pairs = (
            ("provider", provider),
            ("model", model),
            ("alias", self.alias),
            ("outcome", self.outcome),
            ("trace_id", self.trace_id),
        )
        return [(column, value) for column, value in pairs if value is not None]


#: The aggregates of a usage report over the request rows, in SQL that SQLite and PostgreSQL
#: both run (booleans are 0/1 integers in SQLite); :func:`usage_row` reads them.
USAGE_COLUMNS = """
    COUNT(*) AS requests,
    SUM(CASE WHEN outcome IN ('error', 'cancelled') THEN 1 ELSE 0 END) AS errors,
    SUM(CASE WHEN cache_hit THEN 1 ELSE 0 END) AS cache_hits,
    SUM(CASE WHEN cache_hit THEN 0 ELSE input_tokens END) AS input_tokens,
    SUM(CASE WHEN cache_hit THEN 0 ELSE output_tokens END) AS output_tokens,
    SUM(cost_usd) AS cost_usd,
    SUM(CASE WHEN cost_known THEN 0 ELSE 1 END) AS cost_unknown
"""


def usage_row(key: str, value: str, r: dict[str, Any]) -> dict[str, Any]:
    """One line of a usage report, from a store's aggregate row (keys as in the SQL)."""
    inp = int(r["input_tokens"] or 0)
    out = int(r["output_tokens"] or 0)
    unknown = int(r["cost_unknown"] or 0)
    cost = r["cost_usd"]
    return {
        key: value,
        "requests": int(r["requests"]),
        "errors": int(r["errors"] or 0),
        "cache_hits": int(r["cache_hits"] or 0),
        "input_tokens": inp,
        "output_tokens": out,
        "total_tokens": inp + out,
        #: The sum of the known costs; None when some are unknown and the known add up to 0.
        "cost_usd": None if cost is None or (unknown and not cost) else float(cost),
        #: Requests whose cost is unknown (not included in cost_usd).
        "cost_unknown_requests": unknown,
    }


@runtime_checkable
class LogStore(Protocol):
    """A place the request log is written to and read from.

    ``write`` is atomic (all rows of a batch or none) and idempotent (rows whose id exists are
    skipped), so a batch may always be written again. Every failure is a ``StateStoreError``.
    A store is used by one thread at a time (it may lock internally).
    """

    #: Where the store is, for messages (never contains a password).
    description: str

    def open(self) -> None:
        """Connect and bring the schema up to date (idempotent)."""
        ...

    def write(self, requests: Sequence[RequestRow], attempts: Sequence[AttemptRow]) -> None: ...

    def usage(
        self, by: UsageBy, since: float | None = None, until: float | None = None
    ) -> list[dict[str, Any]]:
        """Totals per ``provider/model`` or per UTC day (``YYYY-MM-DD``), see :func:`usage_row`."""
        ...

    def recent(self, f: LogFilter) -> list[dict[str, Any]]:
        """Request rows (as dicts, newest first) matching ``f``."""
        ...

    def attempts_of(self, request_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """The attempt rows of these requests, in trace order, by request id."""
        ...

    def close(self) -> None: ...
