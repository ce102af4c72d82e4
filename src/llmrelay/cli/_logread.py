"""Shared by ``llmrelay usage`` and ``llmrelay logs``: which log to read, times and formats."""

from __future__ import annotations

import argparse
import os
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..observe.requestlog.base import LogStore

__all__ = [
    "add_log_arguments",
    "add_logs_parser",
    "add_usage_parser",
    "days_ago",
    "fmt_cost",
    "fmt_seconds",
    "fmt_time",
    "int_at_least",
    "open_log",
    "parse_since",
    "positive_int",
]

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_ENABLE_HINT = (
    "turn logging on with LLMRELAY_LOG=1 or `[log] enabled = true` in llmrelay.toml "
    "(in code: Client(log=True))"
)


def parse_since(text: str, now: float | None = None) -> float:
    """A Unix time from ``2h``/``30m``/``7d``/``2w`` ago, a date ``2025-06-01`` (UTC midnight)
    or a date and time ``2025-06-01T14:30`` (UTC unless it has an offset)."""
    now = time.time() if now is None else now
    m = _RELATIVE.match(text)
    if m:
        return now - float(m.group(1)) * _UNITS[m.group(2).lower()]
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a time like 2h, 30m, 7d, 2025-06-01 or 2025-06-01T14:30 (UTC), got {text!r}"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def int_at_least(least: int) -> Callable[[str], int]:
    """An argparse ``type``: a whole number, ``least`` or more."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be {least} or more, got {text!r}")
        return value

    return parse


positive_int = int_at_least(1)


def days_ago(days: int, now: float | None = None) -> float:
    """The start (UTC midnight) of the day ``days - 1`` days before today: ``1`` is today."""
    today = datetime.fromtimestamp(time.time() if now is None else now, UTC).date()
    start = datetime(today.year, today.month, today.day, tzinfo=UTC) - timedelta(days=days - 1)
    return start.timestamp()


def _add_since(p: Any) -> None:
    """``--since WHEN`` on a parser or an argument group."""
    p.add_argument(
        "--since",
        type=parse_since,
        metavar="WHEN",
        help="only requests since WHEN: 2h, 30m, 7d, 2025-06-01 or 2025-06-01T14:30 (UTC)",
    )


def add_log_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db",
        metavar="PATH|DSN",
        help="the request log to read: a SQLite file or a postgresql:// DSN (default: the "
        "configured log, [log] / LLMRELAY_LOG_PATH / LLMRELAY_LOG_DSN, else "
        "~/.local/share/llmrelay/requests.db)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")


def open_log(db: str | None) -> LogStore:
    """The store to read; a SQLite file that does not exist is an error (nothing is created)."""
    from ..errors import ConfigurationError, StateStoreError
    from ..observe.requestlog.stores import open_store
    from ..settings.requestlog import ENV_LOG, is_dsn, log_settings

    target = db or log_settings().target
    if not is_dsn(target):
        path = Path(target).expanduser()
        if not path.is_file():
            where = "given with --db" if db else "the configured location"
            hint = f", or set {ENV_LOG}=PATH" if not db and not os.environ.get(ENV_LOG) else ""
            raise ConfigurationError(
                f"no request log at {path} ({where}): nothing has been logged there yet; "
                f"{_ENABLE_HINT}{hint}"
            )
    store = open_store(target)
    try:
        store.open()
    except StateStoreError as exc:
        if is_dsn(target):
            if not isinstance(exc.__cause__ or exc.__context__, ValueError):
                raise  # the database server may be down: not a usage error
            raise ConfigurationError(f"{exc.message}; check the DSN given") from None
        raise ConfigurationError(
            f"{Path(target).expanduser()} is not a request log (a SQLite database written by "
            f"llmrelay): {exc.message}; pass the log's path with --db"
        ) from None
    return store


def fmt_cost(usd: float | None, unknown: int = 0) -> str:
    """``0.001234``; ``?`` when unknown; ``0.001234+?`` when part of it is unknown."""
    if usd is None:
        return "?"
    text = f"{usd:.6f}" if usd < 100 else f"{usd:,.2f}"
    return text + ("+?" if unknown else "")


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s * 1000:.0f} ms" if s < 10 else f"{s:.1f} s"


def fmt_time(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


def add_usage_parser(sub: Any) -> None:
    """Register ``llmrelay usage`` (the command runs in :mod:`.usage`)."""
    p = sub.add_parser(
        "usage",
        help="totals from the request log, by model and by day",
        description="Requests, errors, cache hits, tokens and cost from the request log, by "
        "model and by day (UTC). An unknown price is shown as ?, never as 0.",
    )
    when = p.add_mutually_exclusive_group()
    _add_since(when)
    when.add_argument(
        "--days", type=positive_int, metavar="N", help="only the last N days (1 = today, UTC)"
    )
    add_log_arguments(p)


def add_logs_parser(sub: Any) -> None:
    """Register ``llmrelay logs`` (the command runs in :mod:`.logs`)."""
    p = sub.add_parser(
        "logs",
        help="recent requests from the request log",
        description="The most recent requests in the request log, newest first, with filters. "
        "Times are UTC.",
    )
    p.add_argument(
        "-n", "--limit", type=positive_int, default=20, metavar="N", help="at most N (default 20)"
    )
    p.add_argument("-m", "--model", help="only this model (gpt-4.1-mini or openai/gpt-4.1-mini)")
    p.add_argument("--alias", help="only calls made through this alias")
    p.add_argument("--outcome", choices=("success", "error", "cache_hit"), help="only this outcome")
    p.add_argument("--trace-id", metavar="ID", help="only the call(s) with this trace id")
    _add_since(p)
    p.add_argument(
        "--attempts",
        action="store_true",
        help="also show each attempt (retries, fallbacks, skipped candidates)",
    )
    add_log_arguments(p)
