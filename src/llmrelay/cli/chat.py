"""``llmrelay chat``: send one prompt and print the answer (streamed on a terminal)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from ..errors import InvalidRequestError, UnknownModelError
from ..types import Response
from ._output import Console, scrub

__all__ = ["MODEL_ENV", "call_kwargs", "read_prompt", "run"]

#: The environment variable naming the default model of ``llmrelay chat``.
MODEL_ENV = "LLMRELAY_MODEL"

_NOTES = {
    "length": "note: the answer was cut short by the output-token limit (raise --max-tokens)",
    "content_filter": "note: the provider filtered the answer on content grounds",
}


def read_prompt(arg: str | None) -> str:
    """The prompt from the argument, or from stdin when it is omitted or ``-``."""
    if arg is not None and arg != "-":
        prompt = arg
    else:
        if sys.stdin is None:
            raise InvalidRequestError("no prompt: pass it as an argument or pipe it on stdin")
        if sys.stdin.isatty():
            sys.stderr.write("reading the prompt from stdin; end it with Ctrl-D\n")
        prompt = sys.stdin.read()
        if prompt.endswith("\n"):
            prompt = prompt[:-1]
    if not prompt.strip():
        raise InvalidRequestError(
            "the prompt is empty: pass it as an argument (llmrelay chat -m MODEL 'Hello') or "
            "pipe it on stdin (echo Hello | llmrelay chat -m MODEL)"
        )
    return prompt


def _model(arg: str | None) -> str:
    model = arg or os.environ.get(MODEL_ENV, "").strip()
    if not model:
        raise UnknownModelError(
            f"no model given: pass -m/--model with an alias or provider/model (e.g. -m "
            f"gpt-4.1-mini; `llmrelay models` lists the aliases), or set {MODEL_ENV}"
        )
    return model


def call_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The call options given on the command line (``chat`` and ``batch`` share them)."""
    kwargs: dict[str, Any] = {}
    for name in ("system", "temperature", "max_tokens", "timeout", "retries"):
        value = getattr(args, name)
        if value is not None:
            kwargs[name] = value
    if args.base_url:
        kwargs["base_url"] = args.base_url
    api = getattr(args, "api", None)  # chat only (batch has no --api)
    if api is not None:
        kwargs["api"] = api
    return kwargs


async def _call(
    model: str, prompt: str, kwargs: dict[str, Any], stream: bool, out: Console | None
) -> Response:
    """One call; with ``stream``, deltas go to ``out`` as they arrive (``None``: collect only)."""
    from ..client import Client
    from ..settings.requestlog import log_settings

    # The call goes to the request log when `[log] enabled = true` or LLMRELAY_LOG is set;
    # otherwise nothing is written.
    client = Client(log=True if log_settings().enabled else None)
    try:
        if not stream:
            return await client.achat(model, prompt, **kwargs)
        s = client.astream(model, prompt, **kwargs)
        wrote = False
        try:
            async for c in s:
                if c.delta and out is not None:
                    out.write(c.delta)
                    wrote = True
        except BaseException:
            if wrote and out is not None:
                out.write("\n")  # end the partial answer so the error starts its own line
            raise
        finally:
            await s.aclose()
        assert s.response is not None  # the engine always ends a stream with a response
        return s.response
    finally:
        await client.aclose()


def run(args: argparse.Namespace) -> int:
    model = _model(args.model)
    prompt = read_prompt(args.prompt)
    kwargs = call_kwargs(args)
    out = Console(sys.stdout, plain=True)
    stream = args.stream if args.stream is not None else (sys.stdout.isatty() and not args.json)
    printing = stream and not args.json
    resp = asyncio.run(_call(model, prompt, kwargs, stream, out if printing else None))
    if args.json:
        out.line(resp.to_json())
    elif printing:
        if not resp.text.endswith("\n"):
            out.write("\n")
    else:
        out.line(resp.text)
    err = Console(sys.stderr)
    note = _NOTES.get(resp.finish_reason or "")
    if note and not args.json:
        err.line(note, style="yellow")
    if args.trace:
        from ..core.trace import format_trace

        err.line("trace:", style="bold")
        err.line(scrub(format_trace(resp.trace)) if resp.trace else "(no attempts recorded)")
    return 0
