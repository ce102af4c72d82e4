"""``llmrelay models``: every alias (or provider) and whether its API key is set.

Only the *name* of a key variable and whether it is set are ever shown, never its value.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import orjson

from ..errors import ConfigurationError
from ..providers.resolve import Target, known_aliases, resolve_target
from ..providers.table import PROVIDERS, ProviderSpec
from ._output import Console

__all__ = ["alias_rows", "key_status", "provider_rows", "run"]

YES, NO, NOT_NEEDED = "yes", "no", "not needed"


def key_status(spec: ProviderSpec, key_env: str | None, configured: bool = False) -> str:
    """``yes``, ``no`` or ``not needed`` for a provider's key (a config-file key counts)."""
    if configured:
        return YES
    if not spec.key_required:
        return NOT_NEEDED
    names = (key_env or spec.key_env, *spec.alt_key_envs)
    return YES if any(n and os.environ.get(n) for n in names) else NO


def _alias_row(alias: str) -> dict[str, Any]:
    try:
        t: Target = resolve_target(alias)
    except ConfigurationError as exc:
        return {
            "alias": alias,
            "provider": None,
            "model": None,
            "key_env": None,
            "key_status": None,
            "error": exc.message,
        }
    spec = PROVIDERS[t.provider]
    key_env = t.api_key_env or spec.key_env
    return {
        "alias": alias,
        "provider": t.provider,
        "model": t.model,
        "key_env": key_env,
        "key_status": key_status(spec, key_env, configured=t.api_key is not None),
    }


def alias_rows() -> list[dict[str, Any]]:
    """One dict per alias, in registration order (built-ins, then the config file's)."""
    seen: set[str] = set()
    rows = []
    for alias in known_aliases():
        if alias not in seen:
            seen.add(alias)
            rows.append(_alias_row(alias))
    return rows


def provider_rows() -> list[dict[str, Any]]:
    """One dict per provider: name, wire API, default base URL, key variable and status."""
    return [
        {
            "provider": spec.name,
            "display_name": spec.display_name or spec.name,
            "wire": spec.wire,
            "base_url": spec.base_url,
            "base_url_env": spec.base_url_var if spec.wire != "test" else None,
            "key_env": spec.key_env,
            "key_status": key_status(spec, spec.key_env),
        }
        for spec in PROVIDERS.values()
    ]


def run(args: argparse.Namespace) -> int:
    rows = provider_rows() if args.providers else alias_rows()
    out = Console(sys.stdout)
    if args.json:
        out.line(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return 0
    if args.providers:
        out.table(
            ("provider", "wire API", "default base URL", "key variable", "key set"),
            [
                (
                    r["provider"],
                    r["wire"],
                    r["base_url"] or (f"(set {r['base_url_env']})" if r["base_url_env"] else "-"),
                    r["key_env"] or "-",
                    r["key_status"],
                )
                for r in rows
            ],
        )
        return 0
    out.table(
        ("alias", "provider", "model", "key variable", "key set"),
        [
            (
                r["alias"],
                r["provider"] or "?",
                r["model"] or f"(invalid: {r['error']})",
                r["key_env"] or "-",
                r["key_status"] or "-",
            )
            for r in rows
        ],
    )
    n_ready = sum(1 for r in rows if r["key_status"] in (YES, NOT_NEEDED))
    Console(sys.stderr).line(
        f"{len(rows)} aliases, {n_ready} ready to call. Any provider/model works too "
        "(e.g. groq/openai/gpt-oss-20b); `llmrelay models --providers` lists providers."
    )
    return 0
