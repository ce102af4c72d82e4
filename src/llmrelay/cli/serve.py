"""``llmrelay serve``: run the OpenAI- and Anthropic-compatible gateway (``docs/gateway.md``)."""

from __future__ import annotations

import argparse

from ..errors import ConfigurationError

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="run the OpenAI- and Anthropic-compatible gateway",
        description="Serve POST /v1/chat/completions, /v1/messages, /v1/messages/count_tokens, "
        "GET /v1/models, /health/live, /health/ready and /metrics over the llmrelay engine. "
        "Settings come from the [server] table of llmrelay.toml; the options here win. Without "
        "LLMRELAY_ADMIN_KEY the gateway only listens on loopback.",
    )
    p.add_argument("--config", metavar="PATH", help="llmrelay.toml to read (default: as usual)")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 4000)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="processes (default 1)")
    p.add_argument("--key-store", metavar="PATH|DSN", help="SQLite path or postgresql:// DSN")


def run(args: argparse.Namespace) -> int:
    import os

    if args.config:
        os.environ["LLMRELAY_CONFIG"] = args.config
    from ..gateway.server import run as serve
    from ..gateway.server import settings_from
    from ..settings.file import file_settings

    if args.workers < 1:
        raise ConfigurationError("--workers must be at least 1")
    settings, log = settings_from(
        file_settings("server"), host=args.host, port=args.port, key_store=args.key_store
    )
    return serve(settings, workers=args.workers, log=log)
