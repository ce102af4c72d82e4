"""``llmrelay logs``: the most recent requests of the request log, newest first.

Filters: ``--model``, ``--alias``, ``--outcome``, ``--trace-id``, ``--since``; ``-n`` rows.
``--attempts`` adds each call's attempts (retries, fallbacks, skipped candidates) under it.
``--json`` prints the rows as stored, prompts and answers included when content logging was on.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from ._logread import fmt_cost, fmt_seconds, fmt_time, open_log
from ._output import Console, scrub

__all__ = ["run"]

_HEADERS = ("time (UTC)", "trace id", "model", "alias", "outcome", "in", "out", "cost", "latency")


def _outcome(row: dict[str, Any]) -> str:
    """``success``, or ``error ServerError 500``: the outcome, error class and status."""
    outcome: str = row["outcome"]
    if row["error"]:
        outcome += f" {row['error']}" + (f" {row['status']}" if row["status"] else "")
    return scrub(outcome)


def _request_cells(r: dict[str, Any]) -> list[str]:
    return [
        fmt_time(r["started_at"]),
        r["trace_id"],
        f"{r['provider']}/{r['model']}",
        r["alias"] or "-",
        _outcome(r),
        f"{r['input_tokens']:,}",
        f"{r['output_tokens']:,}",
        fmt_cost(r["cost_usd"]),
        fmt_seconds(r["latency_s"]),
    ]


def _attempt_cells(a: dict[str, Any]) -> list[str]:
    detail = a["reason"] or a["message"] or ""
    if a["backoff_s"]:
        detail = f"after {fmt_seconds(a['backoff_s'])} backoff" + (f"; {detail}" if detail else "")
    return [
        f"  #{a['idx']} try {a['number']}",
        scrub(detail)[:80],
        f"{a['provider']}/{a['model']}",
        "",
        _outcome(a),
        f"{a['input_tokens']:,}",
        f"{a['output_tokens']:,}",
        fmt_cost(a["cost_usd"]),
        fmt_seconds(a["latency_s"]),
    ]


def run(args: argparse.Namespace) -> int:
    from ..observe.requestlog.base import LogFilter

    f = LogFilter(
        model=args.model,
        alias=args.alias,
        outcome=args.outcome,
        trace_id=args.trace_id,
        since=args.since,
        limit=args.limit,
    )
    store = open_log(args.db)
    try:
        rows = store.recent(f)
        attempts = store.attempts_of([r["id"] for r in rows]) if args.attempts and rows else {}
    finally:
        store.close()
    out = Console(sys.stdout)
    if args.json:
        docs = []
        for r in rows:
            doc = dict(r)
            doc["tags"] = orjson.loads(r["tags"]) if r["tags"] else {}
            if r.get("prompt") is not None:
                doc["prompt"] = orjson.loads(r["prompt"])
            if args.attempts:
                doc["attempt_rows"] = attempts.get(r["id"], [])
            docs.append(doc)
        out.line(scrub(orjson.dumps(docs, option=orjson.OPT_INDENT_2).decode()))
        return 0
    if not rows:
        Console(sys.stderr).line(f"no matching requests in the log ({store.description})")
        return 0
    table: list[list[str]] = []
    for r in rows:
        table.append(_request_cells(r))
        for a in attempts.get(r["id"], []):
            table.append(_attempt_cells(a))
    out.table(_HEADERS, table)
    return 0
