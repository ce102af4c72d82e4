"""``llmrelay keys``: create, list, revoke and update the gateway's virtual keys.

Keys live in the gateway's key store (``[server] key_store`` or ``--key-store``): a SQLite path
or a ``postgresql://`` DSN. A new key is printed once; only its hash is stored.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from typing import Any

import orjson

from ..errors import ConfigurationError, InvalidRequestError

__all__ = ["add_parser", "parse_expiry", "run"]


def parse_expiry(text: str, now: float | None = None) -> float:
    """``30d``, ``12h``, ``90m`` from now, or an ISO date/time (UTC when no zone is given)."""
    import time

    now = time.time() if now is None else now
    t = text.strip()
    units = {"d": 86400, "h": 3600, "m": 60}
    if t[:-1].isascii() and t[:-1].isdigit() and t[-1:] in units:  # not "2²d": int() refuses
        return now + int(t[:-1]) * units[t[-1]]
    try:
        when = dt.datetime.fromisoformat(t)
    except ValueError:
        raise InvalidRequestError(
            f"--expires must be like 30d, 12h, 90m or an ISO date (2027-01-31), not {t[:40]!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "keys",
        help="manage the gateway's virtual keys",
        description="Create, list, revoke and update virtual keys in the gateway's key store.",
    )
    p.add_argument("--key-store", metavar="PATH|DSN", help="default: [server] key_store")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    ks = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)

    def policy(q: argparse.ArgumentParser, create: bool) -> None:
        q.add_argument("--name", required=create, help="a name for the key")
        q.add_argument("--team", help="the team (team budgets; cache shared per team)")
        q.add_argument("--models", help="comma-separated models or patterns (claude-*)")
        q.add_argument("--budget-usd", type=float, metavar="X", help="spending limit in USD")
        q.add_argument("--budget-period", choices=("day", "month", "total"), help="default month")
        q.add_argument("--rpm", type=int, help="requests per minute")
        q.add_argument("--tpm", type=int, help="tokens per minute")
        q.add_argument("--expires", help="30d, 12h, or an ISO date")

    policy(ks.add_parser("create", help="create a key (printed once)"), True)
    ks.add_parser("list", help="list keys (never the keys themselves)")
    r = ks.add_parser("revoke", help="revoke a key (every instance refuses it within 1 s)")
    r.add_argument("id")
    u = ks.add_parser("update", help="change a key's policy")
    u.add_argument("id")
    policy(u, False)


def _policy(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": args.name,
        "team": args.team,
        "budget_usd": args.budget_usd,
        "budget_period": args.budget_period,
        "rpm": args.rpm,
        "tpm": args.tpm,
    }
    if args.models is not None:
        out["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.expires is not None:
        out["expires_at"] = parse_expiry(args.expires)
    return out


async def _run(args: argparse.Namespace, where: str) -> int:
    from ..gateway.keys import open_key_store

    store = open_key_store(where)
    out = sys.stdout
    try:
        action = args.keys_command
        if action == "create":
            fields = {k: v for k, v in _policy(args).items() if v is not None}
            secret, rec = await store.create(**fields)
            if args.json:
                out.write(orjson.dumps({"key": secret, "id": rec.id}).decode() + "\n")
            else:
                out.write(f"{secret}\n")
                sys.stderr.write(f"created {rec.id} ({rec.name}); the key is shown only once\n")
        elif action == "list":
            rows = [k.public() for k in await store.all()]
            if args.json:
                out.write(orjson.dumps(rows).decode() + "\n")
            else:
                for k in rows:
                    state = "revoked" if k["revoked_at"] else "active"
                    models = ",".join(k["models"]) or "*"
                    budget = (
                        f"${k['budget_usd']:g}/{k['budget_period']}" if k["budget_usd"] else "-"
                    )
                    out.write(
                        f"{k['id']}  {k['name']}  team={k['team'] or '-'}  models={models}  "
                        f"budget={budget}  rpm={k['rpm'] or '-'}  tpm={k['tpm'] or '-'}  {state}\n"
                    )
        elif action == "revoke":
            rec = await store.revoke(args.id)
            out.write(
                (orjson.dumps(rec.public()).decode() if args.json else f"revoked {rec.id}") + "\n"
            )
        else:
            rec = await store.update(args.id, **_policy(args))
            out.write(
                (orjson.dumps(rec.public()).decode() if args.json else f"updated {rec.id}") + "\n"
            )
    finally:
        await store.close()
    return 0


def run(args: argparse.Namespace) -> int:
    from ..settings.file import file_settings

    where = args.key_store or file_settings("server").get("key_store")
    if not where:
        raise ConfigurationError(
            "no key store: pass --key-store keys.db (or a postgresql:// DSN), or set "
            "[server] key_store in llmrelay.toml"
        )
    return asyncio.run(_run(args, where))
