"""``llmrelay demo``: a guided tour of real calls, with no API key and no network.

It starts the in-repo fake upstream (:class:`llmrelay.testing.fake.FakeUpstream`) on 127.0.0.1,
points every provider's ``<PROVIDER>_BASE_URL`` at it and sets every ``<PROVIDER>_API_KEY`` to a
generated dummy key (in this process only, restored afterwards), then makes real calls through
the real code paths: alias resolution, the wire adapters, the transport, SSE streaming,
structured output, error mapping and the seed-000 ``ModelHandler``. The fake echoes prompts
unless scripted otherwise.

Steps whose module is not part of this build (another wire adapter, structured output, the
handler) say so and are skipped, so the demo always runs.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import secrets
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._output import Console, scrub

if TYPE_CHECKING:
    from ..api import Client
    from ..testing.fake import FakeUpstream
    from ..types import Response

__all__ = ["run"]

ALIAS = "gpt-4.1-mini"
OTHER_PROVIDERS = (
    # (wire adapter module, fake dialect, alias)
    ("anthropic_messages", "anthropic", "claude-sonnet-4-5"),
    ("gemini", "gemini", "gemini-2.5-flash"),
)
HANDLER_ALIAS = "llama3-8b"
DOCS_URL = "https://github.com/llmrelay/llmrelay#readme"


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


@contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block, then restore the previous state exactly."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _point_env(fake: FakeUpstream, key: str) -> dict[str, str]:
    """Every provider's base URL at the fake and its key variable(s) set to ``key``."""
    from ..providers import PROVIDERS

    env: dict[str, str] = {}
    for spec in PROVIDERS.values():
        if spec.wire == "test":
            continue
        for url_var in (spec.base_url_var, *spec.alt_base_url_envs):
            env[url_var] = fake.base_url_for(spec.wire)
        for key_var in (spec.key_env, *spec.alt_key_envs):
            if key_var:
                env[key_var] = key
    return env


def _usage(r: Response) -> str:
    u = r.usage
    parts = [f"{u.input_tokens} input + {u.output_tokens} output tokens"]
    parts.append(f"{r.latency_s * 1000:.1f} ms")
    if r.request_id:
        parts.append(f"request id {r.request_id}")
    return ", ".join(parts)


@dataclass
class Tour:
    """Prints the tour; ``quiet`` keeps one line per step."""

    out: Console
    quiet: bool
    calls: int = 0
    skipped: list[str] = field(default_factory=list)

    def step(self, n: int, title: str) -> None:
        if not self.quiet:
            self.out.line()
            self.out.line(f"{n}. {title}", style="bold cyan")

    def say(self, text: str, style: str | None = None) -> None:
        if not self.quiet:
            self.out.line("   " + text, style=style)

    def summary(self, n: int, text: str) -> None:
        """The line that quiet mode keeps."""
        if self.quiet:
            self.out.line(f"{n}. {text}")

    def skip(self, n: int, what: str, module: str) -> None:
        note = f"skipped {what}: {module} is not part of this build"
        self.skipped.append(what)
        self.say(note, style="yellow")
        self.summary(n, note)


# --------------------------------------------------------------------------- the steps


async def _alias_lookup(tour: Tour, client: Client) -> None:
    from ..resolve import resolve_target

    tour.step(1, "Alias lookup: one name, resolved to a provider and a model")
    t = resolve_target(ALIAS)
    tour.say(f"alias {ALIAS!r} -> provider {t.provider!r}, model {t.model!r}")
    prompt = "What does llmrelay do?"
    tour.say(f"> await client.achat({ALIAS!r}, {prompt!r})", style="dim")
    r = await client.achat(ALIAS, prompt)
    tour.calls += 1
    tour.say(f"answer: {r.text}", style="green")
    tour.say(f"from {r.provider}/{r.model}: {_usage(r)}")
    tour.summary(1, f"alias {ALIAS} -> {r.provider}/{r.model}: {r.text}")


async def _streaming(tour: Tour, client: Client) -> None:
    tour.step(2, "Streaming: the answer arrives chunk by chunk")
    prompt = "Stream a short sentence, please."
    tour.say(f"> async for chunk in client.astream({ALIAS!r}, {prompt!r})", style="dim")
    if not tour.quiet:
        tour.out.write("   chunks: ")
    n = 0
    s = client.astream(ALIAS, prompt)
    async with s:
        async for c in s:
            if c.delta:
                n += 1
                if not tour.quiet:
                    tour.out.write(f"[{c.delta}]")
    tour.calls += 1
    if not tour.quiet:
        tour.out.write("\n")
    r = s.response
    assert r is not None  # the engine always ends a stream with the complete response
    tour.say(f"{n} chunks, then the complete response (finish reason {r.finish_reason!r})")
    tour.say(f"usage: {_usage(r)}")
    tour.summary(2, f"streamed {n} chunks; usage {r.usage.input_tokens}+{r.usage.output_tokens}")


async def _structured(tour: Tour, client: Client, fake: FakeUpstream) -> None:
    tour.step(3, "Structured output: a validated pydantic object instead of text")
    if not _has_module("llmrelay.structured"):
        tour.skip(3, "structured output", "llmrelay.structured")
        return
    from pydantic import BaseModel

    from ..testing.fake import Reply

    class City(BaseModel):
        name: str
        country: str
        population: int

    tour.say("class City(BaseModel): name: str; country: str; population: int")
    prompt = "Which city has the most people?"
    tour.say(f"> await client.achat({ALIAS!r}, {prompt!r}, response_model=City)", style="dim")
    tour.say("(the fake upstream plays the model: it is scripted to answer Tokyo)")
    fake.push(Reply.ok('{"name": "Tokyo", "country": "Japan", "population": 37400000}'))
    r = await client.achat(ALIAS, prompt, response_model=City)
    tour.calls += 1
    sent = fake.requests[-1].body if fake.requests else None
    fmt = sent.get("response_format") if isinstance(sent, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        tour.say(f"sent: response_format json_schema {fmt['json_schema'].get('name')!r}")
    city = r.object
    tour.say(f"object: {city!r}", style="green")
    tour.say(f"type: {type(city).__name__}, population + 1 = {city.population + 1}")
    tour.summary(3, f"structured output: {city!r}")


async def _error(tour: Tour, client: Client, fake: FakeUpstream) -> None:
    from ..engine import OPTION_NAMES
    from ..errors import RateLimitedError
    from ..testing.fake import Reply
    from ..trace import format_trace

    tour.step(4, "Errors: a provider failure becomes a typed exception")
    tour.say("the fake answers the next call with HTTP 429 and 'retry-after: 1'")
    fake.push(
        Reply.error(429, "Rate limit reached for requests per minute", headers={"retry-after": "1"})
    )
    # Show the error itself rather than the retry that would follow it.
    opts: dict[str, Any] = {"retries": 0} if "retries" in OPTION_NAMES else {}
    shown = ", retries=0" if opts else ""
    tour.say(f"> await client.achat({ALIAS!r}, 'Hello again'{shown})", style="dim")
    try:
        await client.achat(ALIAS, "Hello again", **opts)
    except RateLimitedError as exc:
        tour.calls += 1
        tour.say(f"raised {type(exc).__name__}: {scrub(str(exc))}", style="red")
        tour.say(f"exc.status = {exc.status}, exc.retry_after = {exc.retry_after} (seconds)")
        if exc.trace:
            tour.say("decision trace (what `llmrelay chat --trace` prints):")
            for line in scrub(format_trace(exc.trace)).splitlines():
                tour.say("  " + line)
        tour.summary(4, f"{type(exc).__name__}, retry_after={exc.retry_after}")
        return
    raise RuntimeError("the scripted 429 did not raise RateLimitedError")


async def _providers(tour: Tour, client: Client) -> None:
    from ..resolve import resolve_target
    from ..testing.fake_dialects import DIALECTS

    tour.step(5, "One interface, many providers")
    prompt = "Hello from the same call"
    for adapter, dialect, alias in OTHER_PROVIDERS:
        module = f"llmrelay.adapters.{adapter}"
        if not _has_module(module):
            tour.skip(5, f"the {alias} call", module)
            continue
        if dialect not in DIALECTS:
            tour.skip(5, f"the {alias} call", f"the fake upstream's {dialect} dialect")
            continue
        t = resolve_target(alias)
        r = await client.achat(alias, prompt)
        tour.calls += 1
        tour.say(f"{alias} -> {t.provider}/{t.model} ({adapter} wire API): {r.text}")
        tour.say(f"   {_usage(r)}", style="dim")
        tour.summary(5, f"{alias} via {adapter}: {r.text}")


def _handler(tour: Tour) -> None:
    """Seed 000's sync ``ModelHandler`` (run outside the tour's event loop)."""
    if not _has_module("llmrelay.handler"):
        tour.skip(5, "the ModelHandler call", "llmrelay.handler")
        return
    from .._sync import run_sync
    from ..handler import ModelHandler
    from ..transport.http import default_transport

    prompt = "Hello from seed 000"
    tour.say(f"> ModelHandler().get_response({HANDLER_ALIAS!r}, {prompt!r})", style="dim")
    try:
        text = ModelHandler().get_response(HANDLER_ALIAS, prompt)
    finally:
        run_sync(default_transport().aclose())  # this thread's pooled session
    tour.calls += 1
    tour.say(f"-> {text!r}")
    tour.summary(5, f"ModelHandler().get_response({HANDLER_ALIAS!r}): {text}")


async def _tour(tour: Tour, fake: FakeUpstream) -> None:
    from ..api import Client

    client = Client(timeout=10.0)
    try:
        await _alias_lookup(tour, client)
        await _streaming(tour, client)
        await _structured(tour, client, fake)
        await _error(tour, client, fake)
        await _providers(tour, client)
    finally:
        await client.aclose()


def _next_steps(out: Console) -> None:
    out.line()
    out.line("Next steps", style="bold cyan")
    for text in (
        "export OPENAI_API_KEY=...   (or ANTHROPIC_API_KEY, GEMINI_API_KEY, GROQ_API_KEY, ...)",
        'llmrelay chat -m gpt-4.1-mini "Hello"   (an alias, or any provider/model)',
        "llmrelay models             every alias, and whether its key is set",
        "llmrelay chat --help        streaming, --json, --trace, exit codes",
        f"docs: README.md, docs/ and {DOCS_URL}",
    ):
        out.line("   " + text)


def run(args: argparse.Namespace) -> int:
    from ..testing.fake import FakeUpstream

    out = Console(sys.stdout)
    tour = Tour(out, quiet=args.quiet)
    started = time.perf_counter()
    dummy_key = "sk-demo-" + secrets.token_hex(12)
    with FakeUpstream.running(api_key=dummy_key) as fake:
        if not tour.quiet:
            out.line("llmrelay demo: real calls through the real code paths", style="bold")
            out.line(f"A fake LLM upstream listens on {fake.url} and speaks the providers' wire")
            out.line("formats; every provider's base URL points at it and a generated dummy key")
            out.line(
                "is set, in this process only. Nothing leaves this machine. It echoes prompts."
            )
        with _env(_point_env(fake, dummy_key)):
            asyncio.run(_tour(tour, fake))
            _handler(tour)
    elapsed = time.perf_counter() - started
    out.line()
    out.line(
        f"Done: {tour.calls} calls in {elapsed:.2f} s, no API key and no network needed.",
        style="bold green",
    )
    if not tour.quiet:
        _next_steps(out)
    return 0
