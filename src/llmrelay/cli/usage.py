"""``llmrelay usage``: totals from the request log, by model and by day (UTC).

Requests, errors, cache hits, input and output tokens and cost per ``provider/model`` and per
day. A cost the catalog does not know is shown as ``?`` (``0.0123+?`` when only part of it is
known), never as 0. Tokens and cost count what was spent: cache hits add nothing.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from ._logread import days_ago, fmt_cost, fmt_time, open_log
from ._output import Console

__all__ = ["run", "totals"]

_HEADERS = ("requests", "errors", "cache hits", "input tokens", "output tokens", "cost (USD)")


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The sum of usage rows (the same keys, without the group key)."""
    known = [r["cost_usd"] for r in rows if r["cost_usd"] is not None]
    unknown = sum(r["cost_unknown_requests"] for r in rows)
    out: dict[str, Any] = {
        k: sum(r[k] for r in rows)
        for k in (
            "requests",
            "errors",
            "cache_hits",
            "input_tokens",
            "output_tokens",
            "total_tokens",
        )
    }
    cost = sum(known) if known else None
    out["cost_usd"] = None if cost is None or (unknown and not cost) else cost
    out["cost_unknown_requests"] = unknown
    return out


def _cells(r: dict[str, Any]) -> list[str]:
    return [
        f"{r['requests']:,}",
        f"{r['errors']:,}",
        f"{r['cache_hits']:,}",
        f"{r['input_tokens']:,}",
        f"{r['output_tokens']:,}",
        fmt_cost(r["cost_usd"], r["cost_unknown_requests"]),
    ]


def run(args: argparse.Namespace) -> int:
    since = args.since
    if args.days is not None:
        since = days_ago(args.days)
    store = open_log(args.db)
    try:
        by_model = store.usage("model", since)
        by_day = store.usage("day", since)
    finally:
        store.close()
    total = totals(by_model)
    out = Console(sys.stdout)
    if args.json:
        doc = {
            "since": since,
            "log": store.description,
            "by_model": by_model,
            "by_day": by_day,
            "total": total,
        }
        out.line(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        return 0
    err = Console(sys.stderr)
    scope = f"since {fmt_time(since)} UTC" if since is not None else "all time"
    if not by_model:
        err.line(f"no requests in the log ({store.description}), {scope}")
        return 0
    out.table(
        ("model", *_HEADERS),
        [[r["model"], *_cells(r)] for r in by_model] + [["total", *_cells(total)]],
    )
    out.line()
    out.table(("day (UTC)", *_HEADERS), [[r["day"], *_cells(r)] for r in by_day])
    note = f"{total['requests']:,} requests, {scope}, from {store.description}"
    if total["cost_unknown_requests"]:
        note += (
            f"; {total['cost_unknown_requests']:,} with an unknown price (shown as ?, "
            "not included in the cost)"
        )
    err.line(note)
    return 0
