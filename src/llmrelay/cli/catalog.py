"""``llmrelay catalog check``: rows due for a re-check and changes taking effect soon.

Exit status: 0 when there is nothing to act on, 8 when a row is stale or a price change,
promotion end, shutdown or alias retirement falls within the window, a built-in alias
points at a model already shut down, or a promotional price is in force with no end date (so a
scheduled CI job fails until the catalog is updated).
"""

from __future__ import annotations

import argparse
import sys

import orjson

from ..catalog.check import check_catalog
from ..catalog.model_registry import default_registry
from ..errors import ConfigurationError
from ._output import Console

__all__ = ["EXIT_ACTION_NEEDED", "run"]

#: ``catalog check`` found something to act on.
EXIT_ACTION_NEEDED = 8


def run(args: argparse.Namespace) -> int:
    for flag, days in (("--max-age", args.max_age), ("--within", args.within)):
        if days > 36500:
            raise ConfigurationError(f"{flag} must be at most 36500 days (100 years), not {days}")
    report = check_catalog(default_registry(), max_age_days=args.max_age, within_days=args.within)
    out = Console(sys.stdout)
    if args.json:
        out.line(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode())
        return EXIT_ACTION_NEEDED if report.actionable else 0
    if report.stale:
        out.line(f"Rows verified more than {report.max_age_days} days ago ({len(report.stale)}):")
        out.table(
            ("model", "verified", "age (days)", "source"),
            [
                (
                    s.model,
                    s.verified_at.isoformat() if s.verified_at else "never",
                    "-" if s.age_days is None else str(s.age_days),
                    s.sources[0] if s.sources else "-",
                )
                for s in report.stale
            ],
        )
    if report.changes:
        out.line(f"Taking effect within {report.within_days} days ({len(report.changes)}):")
        out.table(
            ("date", "model", "what", "detail"),
            [(c.on.isoformat(), c.model, c.kind, c.detail) for c in report.changes],
        )
    if report.retired_aliases:
        out.line(f"Built-in aliases to models already shut down ({len(report.retired_aliases)}):")
        out.table(
            ("shut down", "model", "detail"),
            [(c.on.isoformat(), c.model, c.detail) for c in report.retired_aliases],
        )
    if report.open_promotions:
        out.line(f"Promotional prices with no end date ({len(report.open_promotions)}):")
        out.table(
            ("model", "price", "promotion source"),
            [(o.model, o.price, o.source) for o in report.open_promotions],
        )
    if not report.actionable:
        out.line(
            f"Nothing to do: every row was verified within {report.max_age_days} days and "
            f"nothing changes in the next {report.within_days} days."
        )
        return 0
    return EXIT_ACTION_NEEDED
