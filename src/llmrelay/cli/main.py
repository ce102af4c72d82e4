"""``llmrelay``: the command-line interface (argument parsing, dispatch, exit codes).

Commands live in their own modules (``chat``, ``models``, ``batch``, ``demo``) and are imported
only when run, so ``llmrelay --help`` stays fast. Errors print one line, ``error: <message>``, on
stderr and exit with a code a shell script can branch on:

====  ==========================================================================
0     success
1     unexpected failure of the command itself
2     usage or configuration: bad arguments, unknown model, missing API key
3     authentication or permission refused by the provider (401/403)
4     rate limited or out of quota (429, 402)
5     any other provider or network error (5xx, timeout, connection, bad response)
6     ``batch``: the batch ran to the end but some items failed (errors in the output file)
7     ``batch``: every item succeeded but malformed input lines were skipped
8     ``catalog check``: a row is due for re-verification or a change takes effect soon
130   interrupted (Ctrl-C; ``batch`` keeps every finished item in its journal)
====  ==========================================================================
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib import import_module

__all__ = [
    "EXIT_AUTH",
    "EXIT_CONFIG",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PROVIDER",
    "EXIT_RATE_LIMITED",
    "build_parser",
    "exit_code_for",
    "main",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_AUTH = 3
EXIT_RATE_LIMITED = 4
EXIT_PROVIDER = 5
EXIT_INTERRUPTED = 130

_EPILOG = """\
exit codes: 0 ok, 2 usage/configuration (unknown model, missing key), 3 authentication or
permission, 4 rate limited or out of quota, 5 other provider or network error, 130 interrupted.
Start with `llmrelay demo` (no key, no network needed)."""


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from .._version import __version__
    from ._logread import add_logs_parser, add_usage_parser, int_at_least

    non_negative_int = int_at_least(0)

    parser = argparse.ArgumentParser(
        prog="llmrelay",
        description="One fast, typed interface to many LLM providers.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"llmrelay {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    chat = sub.add_parser(
        "chat",
        help="send one prompt to a model and print the answer",
        description="Send one prompt to a model and print the answer. The prompt comes from the "
        "argument, or from stdin when it is omitted or '-'.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    chat.add_argument("prompt", nargs="?", help="the prompt ('-' or omitted: read stdin)")
    chat.add_argument(
        "-m",
        "--model",
        help="an alias (see `llmrelay models`) or provider/model; default: $LLMRELAY_MODEL",
    )
    chat.add_argument("--system", metavar="TEXT", help="a system message")
    chat.add_argument(
        "--stream",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="print the answer as it arrives (default: on when stdout is a terminal)",
    )
    chat.add_argument(
        "--json", action="store_true", help="print the complete response as one JSON document"
    )
    chat.add_argument("-t", "--temperature", type=float, help="sampling temperature")
    chat.add_argument("--max-tokens", type=int, metavar="N", help="limit on output tokens")
    chat.add_argument(
        "--timeout", type=_positive_float, metavar="SECONDS", help="timeout for the whole call"
    )
    chat.add_argument(
        "--retries",
        type=non_negative_int,
        metavar="N",
        help="retries on a retryable failure (default: the alias's or the engine's setting)",
    )
    chat.add_argument(
        "--base-url", metavar="URL", help="send to this base URL instead of the provider's"
    )
    chat.add_argument(
        "--api",
        choices=("chat", "responses"),
        help="the OpenAI API to call: chat (Chat Completions) or responses (default: the "
        "alias's or provider's setting, else Responses only where the model needs it)",
    )
    chat.add_argument(
        "--trace", action="store_true", help="print the decision trace on stderr after the answer"
    )

    from .embed import add_parser as add_embed_parser
    from .keys import add_parser as add_keys_parser
    from .serve import add_parser as add_serve_parser

    add_serve_parser(sub)
    add_keys_parser(sub)
    add_embed_parser(sub)

    models = sub.add_parser(
        "models",
        help="list model aliases (or providers) and whether their API key is set",
        description="List every model alias with its provider, model and whether its API key "
        "variable is set (the value is never shown).",
    )
    models.add_argument("--json", action="store_true", help="machine-readable output")
    models.add_argument(
        "--providers", action="store_true", help="list providers instead of aliases"
    )

    demo = sub.add_parser(
        "demo",
        help="a guided tour of real calls against an in-process fake upstream",
        description="Start a fake LLM upstream on 127.0.0.1 and make real calls through "
        "llmrelay's real code paths. Needs no API key and no network.",
    )
    demo.add_argument("-q", "--quiet", action="store_true", help="one line per step")

    batch = sub.add_parser(
        "batch",
        help="run every line of a JSONL file through a model (concurrent, resumable)",
        description="Send one call per input line, N at a time, and write the answers as JSONL "
        'in input order. Lines: {"id": ..., "prompt": ...}, {"messages": [...]} or plain '
        "text; a malformed line is reported with its line number and skipped. Finished items "
        "are journaled (default <output>.journal): after a crash or Ctrl-C, run the same "
        "command again to resume without re-running them.",
        epilog="exit codes: 0 every item ok, 2 usage/configuration (nothing ran), 6 some items "
        "failed, 7 malformed lines skipped, 130 interrupted (resume by running it again).",
    )
    batch.add_argument("input", help="the input JSONL file ('-': read stdin)")
    batch.add_argument("-o", "--output", required=True, metavar="PATH", help="the output file")
    batch.add_argument("-m", "--model", help="an alias or provider/model; default: $LLMRELAY_MODEL")
    batch.add_argument(
        "--concurrency", type=int, default=8, metavar="N", help="calls in flight (default 8)"
    )
    batch.add_argument("--journal", metavar="PATH", help="the journal (default <output>.journal)")
    batch.add_argument(
        "--retry-failed", action="store_true", help="re-run items the journal records as failed"
    )
    batch.add_argument("--system", metavar="TEXT", help="a system message for every item")
    batch.add_argument("-t", "--temperature", type=float, help="sampling temperature")
    batch.add_argument("--max-tokens", type=int, metavar="N", help="limit on output tokens")
    batch.add_argument(
        "--timeout", type=_positive_float, metavar="SECONDS", help="timeout for each call"
    )
    batch.add_argument(
        "--retries", type=non_negative_int, metavar="N", help="retries per call on failure"
    )
    batch.add_argument(
        "--base-url", metavar="URL", help="send to this base URL instead of the provider's"
    )

    catalog = sub.add_parser(
        "catalog",
        help="keep the model catalog true (check it for stale rows and upcoming changes)",
        description="Commands on the model catalog (bundled data + your catalog file).",
    )
    catalog_sub = catalog.add_subparsers(dest="catalog_command", metavar="SUBCOMMAND")
    catalog_sub.required = True
    check = catalog_sub.add_parser(
        "check",
        help="rows verified too long ago, and prices or shutdowns taking effect soon",
        description="List rows whose verified_at is older than --max-age days, and dated "
        "price changes, promotion ends, shutdowns and built-in aliases to shutting-down models "
        "within --within days, and built-in aliases to models already shut down.",
        epilog="exit codes: 0 nothing to act on, 8 something listed, 2 usage/configuration.",
    )
    check.add_argument(
        "--max-age",
        type=non_negative_int,
        default=30,
        metavar="DAYS",
        help="a row verified more than DAYS ago is stale (default 30)",
    )
    check.add_argument(
        "--within",
        type=non_negative_int,
        default=30,
        metavar="DAYS",
        help="list changes taking effect in the next DAYS days (default 30)",
    )
    check.add_argument("--json", action="store_true", help="machine-readable output")

    add_usage_parser(sub)
    add_logs_parser(sub)
    return parser


def exit_code_for(exc: BaseException) -> int:
    """The exit code for an error (see the module docstring)."""
    from ..errors import (
        AllAttemptsFailedError,
        AuthenticationError,
        ConfigurationError,
        LLMRelayError,
        PermissionDeniedError,
        QuotaExhaustedError,
        RateLimitedError,
    )

    if isinstance(exc, AllAttemptsFailedError):
        codes = {exit_code_for(e) for e in exc.exceptions}
        return codes.pop() if len(codes) == 1 else EXIT_PROVIDER
    if isinstance(exc, ConfigurationError):
        return EXIT_CONFIG
    if isinstance(exc, AuthenticationError | PermissionDeniedError):
        return EXIT_AUTH
    if isinstance(exc, RateLimitedError | QuotaExhaustedError):
        return EXIT_RATE_LIMITED
    if isinstance(exc, LLMRelayError):
        return EXIT_PROVIDER
    return EXIT_FAILURE


def error_line(exc: BaseException) -> str:
    """One line describing ``exc`` for a shell user; never contains an API key."""
    from ..errors import AuthenticationError, MissingAPIKeyError, PermissionDeniedError
    from ..providers.table import PROVIDERS
    from ._output import scrub

    if isinstance(exc, MissingAPIKeyError) and exc.variable:
        # The library's message suggests api_key=...; a shell user sets the variable instead.
        where = "/".join(p for p in (exc.provider, exc.model) if p)
        prefix = f"[{where}] " if where else ""
        return (
            f"error: {prefix}no API key: set the environment variable {exc.variable} "
            f"(export {exc.variable}=...)"
        )
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, AuthenticationError | PermissionDeniedError) and exc.provider:
        spec = PROVIDERS.get(exc.provider)
        if spec is not None and spec.key_env:
            text += f"; check {spec.key_env}"
    return "error: " + scrub(text)


def report_error(exc: BaseException, *, trace: bool = False) -> int:
    """Print ``exc`` on stderr (and its decision trace when asked); return its exit code."""
    from ._output import Console, scrub

    err = Console(sys.stderr)
    err.line(error_line(exc), style="bold red")
    attempts = getattr(exc, "trace", None)
    if trace and attempts:
        from ..core.trace import format_trace

        err.line("trace:", style="bold")
        err.line(scrub(format_trace(attempts)))
    return exit_code_for(exc)


def _close_stdout_quietly() -> None:
    """After a broken pipe (``llmrelay chat ... | head -1``): silence the final flush."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (argparse printed it)
        return exc.code if isinstance(exc.code, int) else EXIT_CONFIG
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_CONFIG
    command = import_module(f"{__package__}.{args.command}")
    from ..errors import LLMRelayError

    try:
        code: int = command.run(args)
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _close_stdout_quietly()
        return EXIT_FAILURE
    except LLMRelayError as exc:
        return report_error(exc, trace=bool(getattr(args, "trace", False)))
    return code


if __name__ == "__main__":
    sys.exit(main())
